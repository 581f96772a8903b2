/* main.c - mailhaul-worker: pulls batches from Redis and copies them. SIGTERM: finish the
 * batches in hand, take no new ones, exit 0. */
#include "config.h"
#include "log.h"
#include "worker.h"

int main(int argc, char **argv)
{
	static atomic_int stop_requested;
	struct mh_daemon_config cfg;
	struct worker_opts o = {0};
	struct mh_seal_key key;
	struct mh_err err;
	int rc = mh_daemon_init(argc, argv, "mailhaul-worker", MH_DAEMON_WORKER, &cfg, &key, &stop_requested);

	if (rc >= 0) {
		mh_daemon_config_cleanup(&cfg);
		return rc;
	}
	o.redis_url = cfg.redis_url;
	o.seal_key = &key;
	o.concurrency = cfg.concurrency;
	o.name = cfg.name;
	o.claim_idle_ms = cfg.claim_idle_ms;
	o.shutdown_grace_ms = cfg.shutdown_grace_ms;
	o.planners = cfg.planners;
	planner_opts_from_settings(&o.planner, cfg.batch_messages, cfg.batch_mb);
	rc = 0;
	if (worker_run(&o, &stop_requested, &err) < 0) {
		mh_error("worker", "%s: %s", mh_err_text(err.code), err.detail);
		rc = 1;
	} else {
		mh_info("worker", "stopped");
	}
	mh_daemon_config_cleanup(&cfg);
	return rc;
}
