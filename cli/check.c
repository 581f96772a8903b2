/* check.c - `mailhaul check --from URL --to URL`: the health check on its own. */
#include "cli.h"

#include <event2/event.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "endpoint.h"
#include "log.h"
#include "trace.h"
#include "wire.h"

static void usage(FILE *out)
{
	fputs("usage: mailhaul check --from URL --to URL [options]\n"
	      "\n"
	      "Checks both servers before a migration: DNS, connection, TLS certificate, login,\n"
	      "the source's folders and sizes, the target's folders, quota and size limit, and\n"
	      "the folder mapping. Nothing is changed on either server.\n"
	      "\n"
	      "  --from URL, --to URL      as for migrate: imap://user@host[:port] or imaps://...\n"
	      "  --from-password-file F    source password; else $MAILHAUL_FROM_PASSWORD\n"
	      "  --to-password-file F      target password; else $MAILHAUL_TO_PASSWORD\n"
	      "  --ca-file F               also trust this CA (PEM)\n"
	      "  --insecure                do not verify TLS certificates (dangerous)\n"
	      "  --allow-plaintext         go on without TLS when a server offers no STARTTLS\n"
	      "  --timeout SECONDS         connect timeout (default 15)\n"
	      "  --json                    the report as one JSON object\n"
	      "  --trace FILE              append the IMAP transcripts (passwords redacted)\n"
	      "  --log-level L             debug, info, warn (default) or error\n"
	      "\n"
	      "exit status: 0 the migration can proceed (maybe with warnings), 2 usage error,\n"
	      "             3 blocking problems (the report says what and how to fix them)\n",
	      out);
}

struct check_args {
	const char *from, *to;
	const char *from_password_file, *to_password_file;
	const char *ca_file, *trace_file;
	bool insecure, allow_plaintext, json;
	unsigned timeout_ms;
};

static int parse_args(int argc, char **argv, struct check_args *a, struct mh_err *err)
{
	enum { O_FROM = 256, O_TO, O_FROM_PW, O_TO_PW, O_CA, O_INSECURE, O_PLAIN, O_TIMEOUT, O_JSON, O_TRACE,
	       O_LOG_LEVEL, O_HELP };
	static const struct option opts[] = {
		{"from", required_argument, NULL, O_FROM},
		{"to", required_argument, NULL, O_TO},
		{"from-password-file", required_argument, NULL, O_FROM_PW},
		{"to-password-file", required_argument, NULL, O_TO_PW},
		{"ca-file", required_argument, NULL, O_CA},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"allow-plaintext", no_argument, NULL, O_PLAIN},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"json", no_argument, NULL, O_JSON},
		{"trace", required_argument, NULL, O_TRACE},
		{"log-level", required_argument, NULL, O_LOG_LEVEL},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	enum mh_log_level level = MH_LOG_WARN;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_FROM: a->from = optarg; break;
		case O_TO: a->to = optarg; break;
		case O_FROM_PW: a->from_password_file = optarg; break;
		case O_TO_PW: a->to_password_file = optarg; break;
		case O_CA: a->ca_file = optarg; break;
		case O_INSECURE: a->insecure = true; break;
		case O_PLAIN: a->allow_plaintext = true; break;
		case O_JSON: a->json = true; break;
		case O_TRACE: a->trace_file = optarg; break;
		case O_TIMEOUT: {
			char *end;
			double s = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' || !(s > 0 && s <= 600))
				return mh_err_set(err, MH_E_USAGE, "--timeout takes seconds, more than 0 and at most 600");
			a->timeout_ms = (unsigned)(s * 1000);
			break;
		}
		case O_LOG_LEVEL:
			if (mh_log_level_parse(optarg, &level) < 0)
				return mh_err_set(err, MH_E_USAGE, "--log-level takes debug, info, warn or error");
			break;
		case O_HELP:
			usage(stdout);
			exit(MH_EXIT_OK);
		default:
			return mh_err_set(err, MH_E_USAGE, "unknown option (see mailhaul check --help)");
		}
	}
	mh_log_setup(MH_LOG_TEXT, level);
	if (optind < argc)
		return mh_err_set(err, MH_E_USAGE, "unexpected argument \"%s\"", argv[optind]);
	if (a->from == NULL || a->to == NULL)
		return mh_err_set(err, MH_E_USAGE, "both --from and --to are required");
	return 0;
}

int cmd_check(int argc, char **argv)
{
	struct check_args a = {0};
	struct mh_endpoint from, to;
	struct mh_seal_key key;
	struct mh_job_spec spec;
	struct check_report report;
	struct check_opts opts = {0};
	struct event_base *base = NULL;
	char ca_path[PATH_MAX], job_id[MH_JOB_ID_MAX];
	struct mh_err err;
	int rc = MH_EXIT_USAGE;

	memset(&from, 0, sizeof(from));
	memset(&to, 0, sizeof(to));
	memset(&spec, 0, sizeof(spec));
	mh_err_clear(&err);
	if (parse_args(argc, argv, &a, &err) < 0 ||
	    cli_endpoints_resolve((char *)a.from, (char *)a.to, a.from_password_file, a.to_password_file, a.insecure,
				  &from, &to, &err) < 0 ||
	    mh_trace_open(a.trace_file != NULL ? a.trace_file : getenv("MAILHAUL_TRACE_FILE"), &err) < 0) {
		fprintf(stderr, "mailhaul check: %s\n", err.detail);
		if (err.code == MH_E_USAGE)
			fputs("see: mailhaul check --help\n", stderr);
		goto out;
	}
	/* the same spec a job gets, sealed with a key that lives only in this process */
	mh_seal_key_random(&key);
	if (cli_build_spec(&from, &to, a.allow_plaintext, a.insecure, a.ca_file, &key, &spec, job_id, ca_path, &err) <
	    0) {
		fprintf(stderr, "mailhaul check: %s\n", err.detail);
		goto out;
	}
	base = event_base_new();
	if (base == NULL)
		abort();
	opts.connect_timeout_ms = a.timeout_ms;
	if (check_run(base, &spec, &key, &opts, &report, &err) < 0) {
		fprintf(stderr, "mailhaul check: %s\n", err.detail);
		rc = MH_EXIT_FAILED;
		goto out;
	}
	if (a.json)
		check_render_json(stdout, &report);
	else
		check_render_text(stdout, &report);
	rc = report.verdict == CHECK_VERDICT_BLOCKED ? MH_EXIT_CONNECT : MH_EXIT_OK;
	check_report_cleanup(&report);
out:
	if (base != NULL)
		event_base_free(base);
	cli_spec_cleanup(&spec);
	mh_endpoint_cleanup(&from);
	mh_endpoint_cleanup(&to);
	explicit_bzero(&key, sizeof(key));
	mh_trace_close();
	return rc;
}
