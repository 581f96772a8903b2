/* submit.c - `mailhaul submit FILE.csv`: one job per row of a bulk file.
 *
 * Every row is validated before anything is queued; a file with bad rows queues nothing
 * unless --skip-invalid. Passwords in the file are never echoed. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "csv_jobs.h"
#include "endpoint.h"
#include "imap_parser.h"
#include "rq.h"
#include "wire.h"

struct submit_args {
	const char *file;
	const char *redis_url;
	const char *seal_key_file;
	bool skip_invalid, json, dry_run, skip_check;
	struct mh_csv_defaults defaults;
	const char *to_password_file;
	char *to_password;
	const char *ca_file; /* for rows that name none */
};

static void usage(FILE *out)
{
	fputs("usage: mailhaul submit FILE.csv [options]\n"
	      "\n"
	      "  --redis URL               the cluster's Redis (default $MAILHAUL_REDIS)\n"
	      "  --seal-key-file F         the cluster's credential key (default $MAILHAUL_SEAL_KEY_FILE)\n"
	      "  --skip-invalid            queue the good rows even when some rows are bad\n"
	      "  --dry-run                 validate only; queue nothing\n"
	      "  --skip-check              plan the jobs without the health check that otherwise runs first\n"
	      "  --json                    print the created jobs as JSON\n"
	      "  --ca-file F               also trust this CA for rows that name no ca_file\n"
	      "for files without hosts (Microsoft 365 and imapsync formats):\n"
	      "  --from-host H --from-port N --from-security tls|starttls|plain\n"
	      "  --to-host H --to-port N --to-security tls|starttls|plain\n"
	      "  --to-password-file F      destination password for every row (e.g. a master user)\n",
	      out);
}

static int parse_security(const char *s)
{
	if (strcmp(s, "tls") == 0)
		return MH_SEC_TLS;
	if (strcmp(s, "starttls") == 0)
		return MH_SEC_STARTTLS;
	if (strcmp(s, "plain") == 0)
		return MH_SEC_PLAIN;
	return -1;
}

static int parse_port(const char *s, uint16_t *port)
{
	uint64_t v;

	if (imap_parse_number(s, strlen(s), 65535, &v) < 0 || v == 0)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int parse_submit_args(int argc, char **argv, struct submit_args *a)
{
	enum { O_REDIS = 256, O_SEAL, O_SKIP, O_JSON, O_DRY, O_FH, O_FP, O_FS, O_TH, O_TP, O_TS, O_TPW, O_CA, O_SKIP_CHECK, O_HELP };
	static const struct option opts[] = {
		{"redis", required_argument, NULL, O_REDIS},
		{"seal-key-file", required_argument, NULL, O_SEAL},
		{"skip-invalid", no_argument, NULL, O_SKIP},
		{"skip-check", no_argument, NULL, O_SKIP_CHECK},
		{"json", no_argument, NULL, O_JSON},
		{"dry-run", no_argument, NULL, O_DRY},
		{"from-host", required_argument, NULL, O_FH},
		{"from-port", required_argument, NULL, O_FP},
		{"from-security", required_argument, NULL, O_FS},
		{"to-host", required_argument, NULL, O_TH},
		{"to-port", required_argument, NULL, O_TP},
		{"to-security", required_argument, NULL, O_TS},
		{"to-password-file", required_argument, NULL, O_TPW},
		{"ca-file", required_argument, NULL, O_CA},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(a, 0, sizeof(*a));
	a->redis_url = cli_default_redis_url();
	a->seal_key_file = cli_default_seal_key_file();
	a->defaults.src_security = a->defaults.dst_security = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_REDIS: a->redis_url = optarg; break;
		case O_SEAL: a->seal_key_file = optarg; break;
		case O_SKIP: a->skip_invalid = true; break;
		case O_SKIP_CHECK: a->skip_check = true; break;
		case O_JSON: a->json = true; break;
		case O_DRY: a->dry_run = true; break;
		case O_FH: a->defaults.src_host = optarg; break;
		case O_TH: a->defaults.dst_host = optarg; break;
		case O_FP:
		case O_TP:
			if (parse_port(optarg, c == O_FP ? &a->defaults.src_port : &a->defaults.dst_port) < 0) {
				fprintf(stderr, "mailhaul submit: bad port \"%s\"\n", optarg);
				return -1;
			}
			break;
		case O_FS:
		case O_TS: {
			int sec = parse_security(optarg);
			if (sec < 0) {
				fprintf(stderr, "mailhaul submit: security is tls, starttls or plain, not \"%s\"\n", optarg);
				return -1;
			}
			*(c == O_FS ? &a->defaults.src_security : &a->defaults.dst_security) = sec;
			break;
		}
		case O_TPW: a->to_password_file = optarg; break;
		case O_CA: a->ca_file = optarg; break;
		case O_HELP: usage(stdout); exit(MH_EXIT_OK);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return -1;
	}
	a->file = argv[optind];
	return 0;
}

/* Reads the whole file (the parser's own cap applies beyond 64 MiB). */
static char *read_file(const char *path, size_t *len_r, struct mh_err *err)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *data;

	if (f == NULL)
		return mh_err_set(err, MH_E_CONFIG_FILE, "%s: %s", path, strerror(errno)), NULL;
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MH_CSV_FILE_MAX) {
		fclose(f);
		mh_err_set(err, MH_E_CONFIG_FILE, "%s: not a regular file of at most %u MiB", path,
			   MH_CSV_FILE_MAX / (1024 * 1024));
		return NULL;
	}
	data = malloc((size_t)st.st_size + 1);
	if (data == NULL)
		abort();
	*len_r = fread(data, 1, (size_t)st.st_size, f);
	fclose(f);
	return data;
}

/* Creates the job of one row. */
static int submit_row(struct rq *q, const struct mh_seal_key *key, const struct mh_csv_row *row,
		      const char *default_ca_file, bool skip_check, char *job_id, struct mh_err *err)
{
	struct mh_job_spec spec;
	char ca_path[PATH_MAX];
	int rc;

	if (cli_build_spec(&row->src, &row->dst, row->allow_plaintext, row->insecure,
			   row->ca_file != NULL ? row->ca_file : default_ca_file, key, &spec, job_id, ca_path, err) < 0)
		return -1;
	spec.max_connections = row->max_connections;
	spec.pop3_folder = row->pop3_folder;
	spec.pop3_flags = row->pop3_flags;
	if (skip_check)
		spec.flags |= MH_JOB_SKIP_CHECK;
	if (row->sync_flags)
		spec.flags |= MH_JOB_SYNC_FLAGS;
	if (row->propagate_deletes)
		spec.flags |= MH_JOB_PROPAGATE_DELETES;
	/* the row's autosync= option, set first: its passwords must outlive the first run */
	rc = row->autosync_minutes > 0
		     ? mh_job_set_autosync(q, job_id, (uint64_t)row->autosync_minutes * 60 * 1000, err)
		     : 0;
	if (rc == 0)
		rc = mh_job_submit(q, &spec, err);
	cli_spec_cleanup(&spec);
	return rc;
}

int cmd_submit(int argc, char **argv)
{
	struct submit_args a;
	struct mh_csv_result res;
	struct mh_seal_key key;
	struct rq *q = NULL;
	struct mh_err err;
	size_t len = 0, queued = 0;
	char *data;
	int rc = MH_EXIT_OK;

	if (parse_submit_args(argc, argv, &a) < 0)
		return MH_EXIT_USAGE;
	if (a.to_password_file != NULL) {
		if (mh_password_read_file(a.to_password_file, &a.to_password, &err) < 0) {
			fprintf(stderr, "mailhaul submit: %s\n", err.detail);
			return MH_EXIT_USAGE;
		}
		a.defaults.dst_password = a.to_password;
	}
	data = read_file(a.file, &len, &err);
	if (data == NULL) {
		fprintf(stderr, "mailhaul submit: %s\n", err.detail);
		mh_secret_free(&a.to_password);
		return MH_EXIT_USAGE;
	}
	if (mh_csv_parse(data, len, &a.defaults, &res, &err) < 0) {
		fprintf(stderr, "mailhaul submit: %s: %s\n", a.file, err.detail);
		free(data);
		mh_secret_free(&a.to_password);
		return MH_EXIT_USAGE;
	}
	free(data);
	for (size_t i = 0; i < res.problem_count; i++)
		fprintf(stderr, "%s:%u: %s\n", a.file, res.problems[i].line, res.problems[i].reason);
	if (res.problem_count > 0 && !a.skip_invalid) {
		fprintf(stderr, "mailhaul submit: %zu bad rows: nothing queued (fix them, or --skip-invalid)\n",
			res.problem_count);
		rc = MH_EXIT_USAGE;
		goto out;
	}
	if (a.dry_run) {
		printf("%zu rows valid, %zu bad; nothing queued (--dry-run)\n", res.row_count, res.problem_count);
		goto out;
	}
	if (a.seal_key_file == NULL) {
		fputs("mailhaul submit: the cluster's seal key is needed: --seal-key-file F or $MAILHAUL_SEAL_KEY_FILE\n",
		      stderr);
		rc = MH_EXIT_USAGE;
		goto out;
	}
	if (mh_seal_key_load(a.seal_key_file, &key, &err) < 0) {
		fprintf(stderr, "mailhaul submit: %s\n", err.detail);
		rc = MH_EXIT_USAGE;
		goto out;
	}
	q = rq_connect(a.redis_url, 5000, &err);
	if (q == NULL) {
		fprintf(stderr, "mailhaul submit: %s: %s\n", mh_err_text(err.code), err.detail);
		rc = MH_EXIT_CONNECT;
		goto out;
	}
	if (a.json)
		fputs("[", stdout);
	for (size_t i = 0; i < res.row_count; i++) {
		const struct mh_csv_row *row = &res.rows[i];
		char job_id[MH_JOB_ID_MAX];

		if (submit_row(q, &key, row, a.ca_file, a.skip_check, job_id, &err) < 0) {
			fprintf(stderr, "%s:%u: %s\n", a.file, row->line, err.detail);
			rc = MH_EXIT_FAILED;
			continue;
		}
		if (a.json)
			printf("%s{\"line\":%u,\"job\":\"%s\"}", queued > 0 ? "," : "", row->line, job_id);
		else
			printf("%s:%u: job %s\n", a.file, row->line, job_id);
		queued++;
	}
	if (a.json)
		fputs("]\n", stdout);
	fprintf(stderr, "%zu jobs queued, %zu rows skipped\n", queued, res.row_count - queued + res.problem_count);
	explicit_bzero(&key, sizeof(key));
out:
	rq_free(&q);
	mh_csv_result_cleanup(&res);
	mh_secret_free(&a.to_password);
	return rc;
}
