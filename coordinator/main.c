/* main.c - mailhaul-coordinator: the long-running coordinator daemon. */
#include "config.h"
#include "coordinator.h"
#include "log.h"

int main(int argc, char **argv)
{
	static atomic_int stop_requested;
	struct mh_daemon_config cfg;
	struct coordinator_opts o = {0};
	struct mh_seal_key key;
	struct mh_err err;
	int rc = mh_daemon_init(argc, argv, "mailhaul-coordinator", MH_DAEMON_COORDINATOR, &cfg, &key,
				&stop_requested);

	if (rc >= 0) {
		mh_daemon_config_cleanup(&cfg);
		return rc;
	}
	o.redis_url = cfg.redis_url;
	o.seal_key = &key;
	o.name = cfg.name;
	o.planners = cfg.planners;
	o.record_ttl_ms = (uint64_t)cfg.record_ttl_days * 24 * 3600 * 1000;
	planner_opts_from_settings(&o.planner, cfg.batch_messages, cfg.batch_mb);
	rc = 0;
	if (coordinator_run(&o, &stop_requested, &err) < 0) {
		mh_error("coordinator", "%s: %s", mh_err_text(err.code), err.detail);
		rc = 1;
	} else {
		mh_info("coordinator", "stopped");
	}
	mh_daemon_config_cleanup(&cfg);
	return rc;
}
