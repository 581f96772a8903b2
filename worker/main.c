/* main.c - mailhaul-worker: pulls batches from Redis and copies them. */
#include <signal.h>
#include <stdio.h>

#include "config.h"
#include "log.h"
#include "trace.h"
#include "worker.h"

static atomic_int stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_requested, 1);
}

int main(int argc, char **argv)
{
	struct mh_daemon_config cfg;
	struct worker_opts o = {0};
	struct mh_seal_key key;
	struct mh_err err;
	struct sigaction sa = {.sa_handler = on_signal};

	if (mh_daemon_config_parse(argc, argv, true, &cfg, &err) < 0) {
		fprintf(stderr, "mailhaul-worker: %s\n", err.detail);
		return 2;
	}
	if (cfg.help) {
		mh_daemon_config_usage("mailhaul-worker", true);
		return 0;
	}
	mh_log_setup(cfg.log_format, cfg.log_level);
	if (mh_seal_key_load(cfg.seal_key_file, &key, &err) < 0 || mh_trace_open(cfg.trace_file, &err) < 0) {
		mh_error("worker", "%s", err.detail);
		return 2;
	}
	/* SIGTERM: finish the batches in hand, take no new ones, exit 0 */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	o.redis_url = cfg.redis_url;
	o.seal_key = &key;
	o.concurrency = cfg.concurrency;
	o.name = cfg.name;
	if (worker_run(&o, &stop_requested, &err) < 0) {
		mh_error("worker", "%s: %s", mh_err_text(err.code), err.detail);
		return 1;
	}
	mh_info("worker", "stopped");
	return 0;
}
