/* main.c - mailhaul-coordinator: the long-running coordinator daemon. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "coordinator.h"
#include "endpoint.h"
#include "http.h"
#include "log.h"
#include "seal.h"

/* The HTTP server when --http is given; *s stays NULL otherwise. 0 or -1. */
static int start_http(const struct mh_daemon_config *cfg, struct http_server **s, struct mh_err *err)
{
	struct http_opts o = {cfg->http_listen, cfg->redis_url, NULL};
	char *token = NULL;
	int rc;

	if (cfg->http_listen == NULL)
		return 0;
	if (cfg->http_token_file != NULL) {
		if (mh_password_read_file(cfg->http_token_file, &token, err) < 0)
			return -1;
		if (token[0] == '\0') {
			mh_secret_free(&token);
			return mh_err_set(err, MH_E_CONFIG_FILE, "%s: the HTTP token is empty", cfg->http_token_file);
		}
		o.token = token;
	} else if (strncmp(cfg->http_listen, "127.", 4) != 0 && strncmp(cfg->http_listen, "[::1]", 5) != 0 &&
		   strncmp(cfg->http_listen, "localhost:", 10) != 0) {
		mh_warn("http", "%s is not a loopback address and no --http-token-file is set: anyone who reaches it "
				"can see and control every job",
			cfg->http_listen);
	}
	rc = http_start(&o, s, err);
	if (token != NULL)
		mh_secret_free(&token);
	return rc;
}

int main(int argc, char **argv)
{
	static atomic_int stop_requested;
	struct mh_daemon_config cfg;
	struct coordinator_opts o = {0};
	struct mh_seal_key key;
	struct mh_err err;
	struct http_server *http = NULL;
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
	if (start_http(&cfg, &http, &err) < 0) {
		mh_error("coordinator", "%s: %s", mh_err_text(err.code), err.detail);
		mh_daemon_config_cleanup(&cfg);
		return 1;
	}
	if (coordinator_run(&o, &stop_requested, &err) < 0) {
		mh_error("coordinator", "%s: %s", mh_err_text(err.code), err.detail);
		rc = 1;
	} else {
		mh_info("coordinator", "stopped");
	}
	http_stop(&http);
	mh_daemon_config_cleanup(&cfg);
	return rc;
}
