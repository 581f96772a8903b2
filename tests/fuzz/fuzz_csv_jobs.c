/* fuzz_csv_jobs.c - libFuzzer target: any bytes give either -1 with an empty result, or
 * rows that are complete and in file order and problems that are printable; never a
 * crash or a leak. The first byte picks the caller's defaults, the rest is the file. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv_jobs.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd = open("/dev/null", O_RDONLY);

	(void)argc;
	(void)argv;
	/* A "file:/dev/stdin" cell must not wait for a terminal. */
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	setenv("MH_FUZZ_PW", "fuzz-password", 1);
	return 0;
}

static void endpoint_check(const struct mh_endpoint *ep)
{
	if (ep->host[0] == '\0' || ep->user[0] == '\0' || ep->port == 0)
		abort();
	if (ep->password == NULL || ep->password[0] == '\0' || strpbrk(ep->password, "\r\n"))
		abort();
	if (ep->security != MH_SEC_PLAIN && ep->security != MH_SEC_STARTTLS &&
	    ep->security != MH_SEC_TLS)
		abort();
	for (const char *s = ep->host; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			abort();
	for (const char *s = ep->user; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mh_csv_defaults d = {.src_security = -1, .dst_security = -1};
	struct mh_csv_result res;
	struct mh_err err;
	unsigned sel = 0;
	unsigned prev = 0;

	if (size > 0) {
		sel = data[0];
		data++;
		size--;
	}
	if (sel & 1)
		d.src_host = "imap.old.example";
	if (sel & 2)
		d.dst_host = "mail.new.example";
	if (sel & 4)
		d.dst_password = "master";
	if (sel & 8)
		d.src_port = 1143;
	d.src_security = (int)((sel >> 4) & 3) - 1;
	d.dst_security = (const int[]){-1, MH_SEC_STARTTLS, MH_SEC_TLS, 7}[(sel >> 6) & 3];

	if (mh_csv_parse((const char *)data, size, &d, &res, &err) < 0) {
		if (res.rows != NULL || res.problems != NULL || res.row_count != 0 ||
		    res.problem_count != 0 || err.code != MH_E_USAGE)
			abort();
		mh_csv_result_cleanup(&res);
		return 0;
	}
	if (res.format != MH_CSV_NATIVE && res.format != MH_CSV_M365 &&
	    res.format != MH_CSV_IMAPSYNC)
		abort();
	if (res.problem_count > MH_CSV_PROBLEMS_MAX + 1)
		abort();
	for (size_t i = 0; i < res.row_count; i++) {
		const struct mh_csv_row *r = &res.rows[i];

		if (r->line <= prev)
			abort();
		prev = r->line;
		endpoint_check(&r->src);
		endpoint_check(&r->dst);
		if (r->dst.proto != MH_PROTO_IMAP)
			abort();
		if (r->max_connections > MH_CSV_CONNECTIONS_MAX ||
		    r->autosync_minutes > MH_CSV_AUTOSYNC_MAX_MINUTES)
			abort();
	}
	for (size_t i = 0; i < res.problem_count; i++) {
		const struct mh_csv_problem *p = &res.problems[i];
		size_t n = strnlen(p->reason, sizeof(p->reason));

		if (p->line == 0 || n == 0 || n == sizeof(p->reason))
			abort();
		for (size_t j = 0; j < n; j++)
			if ((unsigned char)p->reason[j] < ' ' || p->reason[j] == 0x7f)
				abort();
	}
	mh_csv_result_cleanup(&res);
	return 0;
}
