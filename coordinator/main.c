/* main.c - mailhaul-coordinator: the long-running coordinator daemon. */
#include <signal.h>
#include <stdio.h>

#include "config.h"
#include "coordinator.h"
#include "log.h"
#include "trace.h"

static atomic_int stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_requested, 1);
}

int main(int argc, char **argv)
{
	struct mh_daemon_config cfg;
	struct coordinator_opts o = {0};
	struct mh_seal_key key;
	struct mh_err err;
	struct sigaction sa = {.sa_handler = on_signal};

	if (mh_daemon_config_parse(argc, argv, false, &cfg, &err) < 0) {
		fprintf(stderr, "mailhaul-coordinator: %s\n", err.detail);
		return 2;
	}
	if (cfg.help) {
		mh_daemon_config_usage("mailhaul-coordinator", false);
		return 0;
	}
	mh_log_setup(cfg.log_format, cfg.log_level);
	if (mh_seal_key_load(cfg.seal_key_file, &key, &err) < 0 || mh_trace_open(cfg.trace_file, &err) < 0) {
		mh_error("coordinator", "%s", err.detail);
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	o.redis_url = cfg.redis_url;
	o.seal_key = &key;
	o.name = cfg.name;
	planner_opts_default(&o.planner);
	if (coordinator_run(&o, &stop_requested, &err) < 0) {
		mh_error("coordinator", "%s: %s", mh_err_text(err.code), err.detail);
		return 1;
	}
	mh_info("coordinator", "stopped");
	return 0;
}
