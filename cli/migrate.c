/* migrate.c - `mailhaul migrate --from URL --to URL`: one mailbox, end to end.
 *
 * Without --redis it brings its own private Redis and runs coordinator and workers in
 * this process; with --redis it submits to a running cluster. Either way the job goes
 * through the same streams, and this command follows it to the end. */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"
#include "log.h"
#include "rq.h"
#include "trace.h"
#include "wire.h"

struct migrate_args {
	struct mh_endpoint from, to;
	const char *from_password_file, *to_password_file;
	const char *ca_file;
	bool insecure, allow_plaintext;
	const char *redis_url;
	const char *seal_key_file;
	unsigned workers;
	bool json, quiet;
	bool ledger_subjects;
	bool skip_check;
	bool sync_flags, propagate_deletes;
	const char *pop3_folder; /* POP3 sources: target folder (NULL: INBOX) */
	const char *pop3_flags;  /* POP3 sources: flags of the copies (NULL: none) */
	const char *trace_file;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *out)
{
	fputs("usage: mailhaul migrate --from URL --to URL [options]\n"
	      "\n"
	      "  --from URL                source: imap://user@host[:port] (STARTTLS) or imaps://user@host[:port],\n"
	      "                            or pop3://user@host[:port] (STLS) or pop3s://user@host[:port]\n"
	      "  --to URL                  target: imap:// or imaps://\n"
	      "  --pop3-folder NAME        POP3 source: the target folder (default INBOX; created when missing)\n"
	      "  --pop3-flags FLAGS        POP3 source: flags for the copies, e.g. '\\Seen' (default none)\n"
	      "  --from-password-file F    source password (first line of F); else $MAILHAUL_FROM_PASSWORD\n"
	      "  --to-password-file F      target password; else $MAILHAUL_TO_PASSWORD\n"
	      "  --ca-file F               also trust this CA (PEM)\n"
	      "  --insecure                do not verify TLS certificates (dangerous)\n"
	      "  --allow-plaintext         go on without TLS when a server offers no STARTTLS\n"
	      "  --redis URL               submit to a running cluster (redis://host:port or unix:///path)\n"
	      "  --seal-key-file F         the cluster's credential key (with --redis); else $MAILHAUL_SEAL_KEY_FILE\n"
	      "  --workers N               worker threads when running embedded (default 2)\n"
	      "  --json                    print the summary as one JSON object on stdout\n"
	      "  --quiet                   no progress output\n"
	      "  --trace FILE              append every IMAP command and reply (passwords redacted) to FILE\n"
	      "  --skip-check              start copying without the health check (mailhaul check) that\n"
	      "                            otherwise runs first and stops a job that cannot work\n"
	      "  --sync-flags              later syncs (mailhaul sync/autosync, with --redis) also give the\n"
	      "                            copies the flag changes made on the source (\\Seen, \\Flagged...)\n"
	      "  --propagate-deletes       later syncs delete the copies of messages deleted on the source\n"
	      "                            (expunged or marked \\Deleted): see README, Sync\n"
	      "  --ledger-subjects         list failed messages with their subject (default: a SHA-256\n"
	      "                            fingerprint of it, for privacy)\n"
	      "  --log-level L             debug, info, warn (default) or error\n"
	      "  --log-format F            text (default) or json\n"
	      "\n"
	      "exit status: 0 all copied or skipped, 1 some messages failed, 2 usage error,\n"
	      "             3 could not connect or log in\n",
	      out);
}

static int parse_args(int argc, char **argv, struct migrate_args *a, struct mh_err *err)
{
	enum { O_FROM = 256, O_TO, O_FROM_PW, O_TO_PW, O_CA, O_INSECURE, O_PLAIN, O_REDIS, O_SEAL, O_WORKERS,
	       O_JSON, O_QUIET, O_TRACE, O_LOG_LEVEL, O_LOG_FORMAT, O_SUBJECTS, O_SKIP_CHECK, O_POP3_FOLDER, O_POP3_FLAGS, O_SYNC_FLAGS, O_DELETES, O_HELP };
	static const struct option opts[] = {
		{"from", required_argument, NULL, O_FROM},
		{"to", required_argument, NULL, O_TO},
		{"from-password-file", required_argument, NULL, O_FROM_PW},
		{"to-password-file", required_argument, NULL, O_TO_PW},
		{"ca-file", required_argument, NULL, O_CA},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"allow-plaintext", no_argument, NULL, O_PLAIN},
		{"redis", required_argument, NULL, O_REDIS},
		{"seal-key-file", required_argument, NULL, O_SEAL},
		{"workers", required_argument, NULL, O_WORKERS},
		{"json", no_argument, NULL, O_JSON},
		{"quiet", no_argument, NULL, O_QUIET},
		{"trace", required_argument, NULL, O_TRACE},
		{"ledger-subjects", no_argument, NULL, O_SUBJECTS},
		{"skip-check", no_argument, NULL, O_SKIP_CHECK},
		{"sync-flags", no_argument, NULL, O_SYNC_FLAGS},
		{"propagate-deletes", no_argument, NULL, O_DELETES},
		{"pop3-folder", required_argument, NULL, O_POP3_FOLDER},
		{"pop3-flags", required_argument, NULL, O_POP3_FLAGS},
		{"log-level", required_argument, NULL, O_LOG_LEVEL},
		{"log-format", required_argument, NULL, O_LOG_FORMAT},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	const char *from = NULL, *to = NULL;
	enum mh_log_level level = MH_LOG_WARN;
	enum mh_log_format format = MH_LOG_TEXT;
	int c;

	a->workers = 2;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_FROM: from = optarg; break;
		case O_TO: to = optarg; break;
		case O_FROM_PW: a->from_password_file = optarg; break;
		case O_TO_PW: a->to_password_file = optarg; break;
		case O_CA: a->ca_file = optarg; break;
		case O_INSECURE: a->insecure = true; break;
		case O_PLAIN: a->allow_plaintext = true; break;
		case O_REDIS: a->redis_url = optarg; break;
		case O_SEAL: a->seal_key_file = optarg; break;
		case O_WORKERS: {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || n == 0 || n > 64)
				return mh_err_set(err, MH_E_USAGE, "--workers takes a number from 1 to 64");
			a->workers = (unsigned)n;
			break;
		}
		case O_JSON: a->json = true; break;
		case O_QUIET: a->quiet = true; break;
		case O_TRACE: a->trace_file = optarg; break;
		case O_SUBJECTS: a->ledger_subjects = true; break;
		case O_SKIP_CHECK: a->skip_check = true; break;
		case O_SYNC_FLAGS: a->sync_flags = true; break;
		case O_DELETES: a->propagate_deletes = true; break;
		case O_POP3_FOLDER:
			if (*optarg == '\0' || strpbrk(optarg, "\r\n") != NULL)
				return mh_err_set(err, MH_E_USAGE, "--pop3-folder takes a folder name");
			a->pop3_folder = optarg;
			break;
		case O_POP3_FLAGS:
			if (!mh_imap_flags_valid(optarg))
				return mh_err_set(err, MH_E_USAGE,
						  "--pop3-flags takes IMAP flags separated by spaces, e.g. '\\Seen \\Flagged'");
			a->pop3_flags = optarg;
			break;
		case O_LOG_LEVEL:
			if (mh_log_level_parse(optarg, &level) < 0)
				return mh_err_set(err, MH_E_USAGE, "--log-level takes debug, info, warn or error");
			break;
		case O_LOG_FORMAT:
			if (mh_log_format_parse(optarg, &format) < 0)
				return mh_err_set(err, MH_E_USAGE, "--log-format takes text or json");
			break;
		case O_HELP:
			usage(stdout);
			exit(MH_EXIT_OK);
		default:
			return mh_err_set(err, MH_E_USAGE, "unknown option (see mailhaul migrate --help)");
		}
	}
	mh_log_setup(format, level);
	if (optind < argc)
		return mh_err_set(err, MH_E_USAGE, "unexpected argument \"%s\"", argv[optind]);
	if (from == NULL || to == NULL)
		return mh_err_set(err, MH_E_USAGE, "both --from and --to are required");
	if ((a->pop3_folder != NULL || a->pop3_flags != NULL) && strncmp(from, "pop3", 4) != 0)
		return mh_err_set(err, MH_E_USAGE, "--pop3-folder and --pop3-flags are for pop3:// and pop3s:// sources");
	if ((a->sync_flags || a->propagate_deletes) && strncmp(from, "pop3", 4) == 0)
		return mh_err_set(err, MH_E_USAGE, "--sync-flags and --propagate-deletes need an IMAP source");
	return cli_endpoints_resolve((char *)from, (char *)to, a->from_password_file, a->to_password_file, a->insecure,
				     &a->from, &a->to, err);
}

static int exit_code_for(const struct mh_job_summary *s)
{
	enum mh_err_code code;
	enum mh_err_class cls;

	switch (s->state) {
	case MH_JOB_DONE:
		return MH_EXIT_OK;
	case MH_JOB_FAILED:
		if (strcmp(s->check_verdict, "blocked") == 0)
			return MH_EXIT_CONNECT; /* the health check said it cannot work, as `mailhaul check` does */
		code = mh_err_from_name(s->error);
		cls = mh_err_class_of(code);
		/* "could not connect or log in", certificates and transport security included:
		 * those are configuration problems (never retried), met while connecting */
		if (cls == MH_CLASS_CONNECTION || cls == MH_CLASS_ACCOUNT || code == MH_E_TLS_CERT_EXPIRED ||
		    code == MH_E_TLS_CERT_HOSTNAME || code == MH_E_TLS_CERT_SELF_SIGNED || code == MH_E_TLS_CERT_UNTRUSTED ||
		    code == MH_E_STARTTLS_UNAVAILABLE || code == MH_E_PLAINTEXT_REFUSED)
			return MH_EXIT_CONNECT;
		return MH_EXIT_FAILED;
	default:
		return MH_EXIT_FAILED;
	}
}

/* Polls the job until it ends, showing progress. */
static int follow(struct rq *q, const char *job_id, bool quiet, struct mh_err *err)
{
	struct progress prog;
	struct timespec tick = {0, 200 * 1000 * 1000};

	progress_init(&prog, quiet);
	for (;;) {
		struct mh_job_summary s;

		if (mh_job_load_summary(q, job_id, 0, &s, err) < 0)
			return -1;
		if (mh_job_state_is_final(s.state)) {
			progress_end(&prog);
			return 0;
		}
		if (interrupted) {
			progress_end(&prog);
			mh_job_cancel(q, job_id, err);
			mh_job_purge_credentials(q, job_id, err);
			fprintf(stderr, "interrupted: job %s cancelled\n", job_id);
			return 0;
		}
		progress_update(&prog, &s);
		nanosleep(&tick, NULL);
	}
}

int cmd_migrate(int argc, char **argv)
{
	struct migrate_args a;
	struct mh_seal_key key;
	struct mh_job_spec spec;
	struct mh_job_summary s;
	struct embedded *emb = NULL;
	struct rq *q = NULL;
	const char *redis_url;
	char ca_path[PATH_MAX], job_id[MH_JOB_ID_MAX];
	struct mh_err err;
	int rc = MH_EXIT_FAILED, built;

	memset(&a, 0, sizeof(a));
	memset(&spec, 0, sizeof(spec));
	mh_err_clear(&err);
	if (parse_args(argc, argv, &a, &err) < 0) {
		fprintf(stderr, "mailhaul migrate: %s\n", err.detail);
		if (err.code == MH_E_USAGE)
			fputs("see: mailhaul migrate --help\n", stderr);
		rc = err.code == MH_E_CONFIG_FILE ? MH_EXIT_USAGE : MH_EXIT_USAGE;
		goto out;
	}
	if (a.trace_file != NULL && mh_trace_open(a.trace_file, &err) < 0) {
		fprintf(stderr, "mailhaul migrate: %s\n", err.detail);
		rc = MH_EXIT_USAGE;
		goto out;
	}
	if (a.trace_file == NULL && mh_trace_open(getenv("MAILHAUL_TRACE_FILE"), &err) < 0) {
		fprintf(stderr, "mailhaul migrate: %s\n", err.detail);
		rc = MH_EXIT_USAGE;
		goto out;
	}

	if (a.redis_url != NULL) {
		const char *kf = a.seal_key_file != NULL ? a.seal_key_file : getenv("MAILHAUL_SEAL_KEY_FILE");
		if (kf == NULL) {
			fprintf(stderr, "mailhaul migrate: --redis needs the cluster's seal key: --seal-key-file F or "
					"$MAILHAUL_SEAL_KEY_FILE (create one with: mailhaul keygen F)\n");
			rc = MH_EXIT_USAGE;
			goto out;
		}
		if (mh_seal_key_load(kf, &key, &err) < 0) {
			fprintf(stderr, "mailhaul migrate: %s\n", err.detail);
			rc = MH_EXIT_USAGE;
			goto out;
		}
		redis_url = a.redis_url;
	} else {
		mh_seal_key_random(&key);
		emb = embedded_start(a.workers, &key, &err);
		if (emb == NULL) {
			fprintf(stderr, "mailhaul migrate: %s: %s\n  fix: %s\n", mh_err_text(err.code), err.detail,
				mh_err_fix(err.code));
			goto out;
		}
		redis_url = embedded_redis_url(emb);
	}
	q = rq_connect(redis_url, 5000, &err);
	if (q == NULL) {
		fprintf(stderr, "mailhaul migrate: %s: %s\n", mh_err_text(err.code), err.detail);
		goto out;
	}
	built = cli_build_spec(&a.from, &a.to, a.allow_plaintext, a.insecure, a.ca_file, &key, &spec, job_id, ca_path,
			       &err);
	if (built == 0 && a.ledger_subjects)
		spec.flags |= MH_JOB_LEDGER_SUBJECTS;
	if (built == 0 && a.skip_check)
		spec.flags |= MH_JOB_SKIP_CHECK;
	if (built == 0 && a.sync_flags)
		spec.flags |= MH_JOB_SYNC_FLAGS;
	if (built == 0 && a.propagate_deletes)
		spec.flags |= MH_JOB_PROPAGATE_DELETES;
	if (built == 0) {
		spec.pop3_folder = (char *)a.pop3_folder;
		spec.pop3_flags = (char *)a.pop3_flags;
	}
	if (built < 0 || mh_job_submit(q, &spec, &err) < 0) {
		fprintf(stderr, "mailhaul migrate: %s\n", err.detail);
		rc = err.code == MH_E_CONFIG_FILE ? MH_EXIT_USAGE : MH_EXIT_FAILED;
		goto out;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (!a.quiet) /* stderr: the JSON summary alone goes to stdout */
		fprintf(stderr, "job %s submitted\n", spec.job_id);
	if (follow(q, spec.job_id, a.quiet, &err) < 0 ||
	    mh_job_load_summary(q, spec.job_id, 1, &s, &err) < 0) {
		fprintf(stderr, "mailhaul migrate: lost track of the job: %s\n", err.detail);
		goto out;
	}
	if (a.json)
		report_json(stdout, &s);
	else
		report_human(stdout, &s);
	rc = interrupted ? MH_EXIT_FAILED : exit_code_for(&s);
	mh_job_summary_cleanup(&s);
out:
	cli_spec_cleanup(&spec);
	rq_free(&q);
	embedded_stop(&emb);
	mh_endpoint_cleanup(&a.from);
	mh_endpoint_cleanup(&a.to);
	explicit_bzero(&key, sizeof(key));
	mh_trace_close();
	return rc;
}
