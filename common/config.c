/* config.c - daemon settings from flags and MAILHAUL_* variables (see config.h). */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seal.h"
#include "trace.h"

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : fallback;
}

static int parse_count(const char *s, unsigned max, unsigned *n_r)
{
	unsigned long v = 0;

	if (s[0] == '\0' || strlen(s) > 6)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > max)
		return -1;
	*n_r = (unsigned)v;
	return 0;
}

int mh_daemon_config_parse(int argc, char **argv, bool with_concurrency, struct mh_daemon_config *c,
			   struct mh_err *err)
{
	enum { O_REDIS = 256, O_SEAL, O_CONC, O_NAME, O_FORMAT, O_LEVEL, O_TRACE, O_BATCH_MSGS, O_BATCH_MB, O_HELP };
	static const struct option opts[] = {
		{"redis", required_argument, NULL, O_REDIS},
		{"seal-key-file", required_argument, NULL, O_SEAL},
		{"concurrency", required_argument, NULL, O_CONC},
		{"name", required_argument, NULL, O_NAME},
		{"log-format", required_argument, NULL, O_FORMAT},
		{"log-level", required_argument, NULL, O_LEVEL},
		{"trace", required_argument, NULL, O_TRACE},
		{"batch-messages", required_argument, NULL, O_BATCH_MSGS},
		{"batch-mb", required_argument, NULL, O_BATCH_MB},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	const char *conc = env_or("MAILHAUL_CONCURRENCY", "2");
	const char *format = env_or("MAILHAUL_LOG_FORMAT", "json");
	const char *level = env_or("MAILHAUL_LOG_LEVEL", "info");
	/* coordinator settings in a shared environment are not a worker's business */
	const char *batch_msgs = with_concurrency ? NULL : env_or("MAILHAUL_BATCH_MESSAGES", NULL);
	const char *batch_mb = with_concurrency ? NULL : env_or("MAILHAUL_BATCH_MB", NULL);
	int ch;

	memset(c, 0, sizeof(*c));
	c->redis_url = env_or("MAILHAUL_REDIS", "redis://127.0.0.1:6379");
	c->seal_key_file = env_or("MAILHAUL_SEAL_KEY_FILE", NULL);
	c->name = env_or("MAILHAUL_NAME", NULL);
	c->trace_file = env_or("MAILHAUL_TRACE_FILE", NULL);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case O_REDIS: c->redis_url = optarg; break;
		case O_SEAL: c->seal_key_file = optarg; break;
		case O_CONC:
			if (!with_concurrency)
				return mh_err_set(err, MH_E_USAGE, "--concurrency is a worker option");
			conc = optarg;
			break;
		case O_NAME: c->name = optarg; break;
		case O_FORMAT: format = optarg; break;
		case O_LEVEL: level = optarg; break;
		case O_TRACE: c->trace_file = optarg; break;
		case O_BATCH_MSGS: batch_msgs = optarg; break;
		case O_BATCH_MB: batch_mb = optarg; break;
		case O_HELP: c->help = true; return 0;
		default: return mh_err_set(err, MH_E_USAGE, "unknown option (see --help)");
		}
	}
	if (optind < argc)
		return mh_err_set(err, MH_E_USAGE, "unexpected argument \"%s\"", argv[optind]);
	if (parse_count(conc, 256, &c->concurrency) < 0)
		return mh_err_set(err, MH_E_USAGE, "concurrency must be a number from 1 to 256, not \"%s\"", conc);
	if (batch_msgs != NULL && (with_concurrency || parse_count(batch_msgs, 100000, &c->batch_messages) < 0))
		return mh_err_set(err, MH_E_USAGE, "--batch-messages takes 1 to 100000 (coordinator only), not \"%s\"",
				  batch_msgs);
	if (batch_mb != NULL && (with_concurrency || parse_count(batch_mb, 4096, &c->batch_mb) < 0))
		return mh_err_set(err, MH_E_USAGE, "--batch-mb takes 1 to 4096 (coordinator only), not \"%s\"", batch_mb);
	if (mh_log_format_parse(format, &c->log_format) < 0)
		return mh_err_set(err, MH_E_USAGE, "log format must be json or text, not \"%s\"", format);
	if (mh_log_level_parse(level, &c->log_level) < 0)
		return mh_err_set(err, MH_E_USAGE, "log level must be debug, info, warn or error, not \"%s\"", level);
	if (c->seal_key_file == NULL)
		return mh_err_set(err, MH_E_USAGE,
				  "no seal key: pass --seal-key-file F or set MAILHAUL_SEAL_KEY_FILE "
				  "(create one with: mailhaul keygen F)");
	return 0;
}

void mh_daemon_config_usage(const char *prog, bool with_concurrency)
{
	printf("usage: %s [options]\n\n"
	       "  --redis URL          Redis (redis://host:port[/db] or unix:///path); $MAILHAUL_REDIS\n"
	       "  --seal-key-file F    credential seal key shared by the cluster; $MAILHAUL_SEAL_KEY_FILE\n"
	       "%s"
	       "  --name NAME          consumer name in Redis; $MAILHAUL_NAME (default host-pid)\n"
	       "  --log-format F       json (default) or text; $MAILHAUL_LOG_FORMAT\n"
	       "  --log-level L        debug, info (default), warn, error; $MAILHAUL_LOG_LEVEL\n"
	       "  --trace FILE         append IMAP transcripts (passwords redacted); $MAILHAUL_TRACE_FILE\n"
	       "%s",
	       prog,
	       with_concurrency ? "  --concurrency N      batches copied at once (threads); $MAILHAUL_CONCURRENCY (default 2)\n"
				: "",
	       with_concurrency ? ""
				: "  --batch-messages N   messages per batch at most; $MAILHAUL_BATCH_MESSAGES (default 500)\n"
				  "  --batch-mb N         megabytes per batch at most; $MAILHAUL_BATCH_MB (default 32)\n");
}

static atomic_int *stop_flag;

static void on_stop_signal(int sig)
{
	(void)sig;
	atomic_store(stop_flag, 1);
}

int mh_daemon_init(int argc, char **argv, const char *prog, bool with_concurrency, struct mh_daemon_config *cfg,
		   struct mh_seal_key *key, atomic_int *stop)
{
	struct sigaction sa = {.sa_handler = on_stop_signal};
	struct mh_err err;

	if (mh_daemon_config_parse(argc, argv, with_concurrency, cfg, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.detail);
		return 2;
	}
	if (cfg->help) {
		mh_daemon_config_usage(prog, with_concurrency);
		return 0;
	}
	mh_log_setup(cfg->log_format, cfg->log_level);
	if (mh_seal_key_load(cfg->seal_key_file, key, &err) < 0 || mh_trace_open(cfg->trace_file, &err) < 0) {
		mh_error(prog, "%s", err.detail);
		return 2;
	}
	stop_flag = stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* a peer hanging up must be an error reply, not a dead process */
	signal(SIGPIPE, SIG_IGN);
	return -1;
}
