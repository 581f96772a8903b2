/* config.h - settings of the long-running daemons (mailhaul-coordinator, mailhaul-worker).
 *
 * Each setting comes from a flag, else from its MAILHAUL_* environment variable, else from
 * the config file, else its default. The other daemon's flags are errors, its variables
 * are ignored (one environment can serve both):
 *   --redis URL               MAILHAUL_REDIS           redis://127.0.0.1:6379
 *   --seal-key-file F         MAILHAUL_SEAL_KEY_FILE   (required)
 *   --concurrency N           MAILHAUL_CONCURRENCY     2 (worker only)
 *   --name NAME               MAILHAUL_NAME            host-pid
 *   --log-format F            MAILHAUL_LOG_FORMAT      json (text for humans)
 *   --log-level L             MAILHAUL_LOG_LEVEL       info
 *   --trace FILE              MAILHAUL_TRACE_FILE      (off)
 *   --batch-messages N        MAILHAUL_BATCH_MESSAGES  500 (for the jobs planned here)
 *   --batch-mb N              MAILHAUL_BATCH_MB        32 (for the jobs planned here)
 *   --planners N              MAILHAUL_PLANNERS        worker 1, coordinator 0
 *   --record-ttl DAYS         MAILHAUL_RECORD_TTL      90 (coordinator only; 0 keeps records)
 *   --http HOST:PORT          MAILHAUL_HTTP            (off; coordinator only: API, dashboard, metrics)
 *   --http-token-file F       MAILHAUL_HTTP_TOKEN_FILE (none; coordinator only: the API's bearer token)
 *   --claim-idle SECONDS      MAILHAUL_CLAIM_IDLE      60 (worker only)
 *   --shutdown-grace SECONDS  MAILHAUL_SHUTDOWN_GRACE  30 (worker only)
 *   --config FILE             MAILHAUL_CONFIG          (none; see below)
 *
 * The config file holds "key = value" lines; a key is a flag's name without the dashes
 * ("seal-key-file = /etc/mailhaul/seal.key"). Lines starting with '#' and blank lines are
 * ignored, whitespace around key and value is dropped, and a value in double quotes loses
 * them (everything between is the value, '#' and spaces included). One file can serve both
 * daemons: a key of the other daemon is checked but otherwise ignored. A key given twice,
 * an unknown key or a bad value is an error naming FILE:LINE. SECONDS take up to three
 * decimals (2.5).
 */
#ifndef MH_CONFIG_H
#define MH_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>

#include "err.h"
#include "log.h"

/* Which daemon is reading its settings: the other one's flags are errors. */
enum mh_daemon {
	MH_DAEMON_COORDINATOR,
	MH_DAEMON_WORKER,
};

/* Every string is heap memory owned by the struct: mh_daemon_config_cleanup() frees it. */
struct mh_daemon_config {
	char *config_file;     /* NULL: none */
	char *redis_url;
	char *seal_key_file;
	char *name;            /* NULL: default */
	char *trace_file;      /* NULL: off */
	enum mh_log_format log_format;
	enum mh_log_level log_level;
	/* worker */
	unsigned concurrency;
	unsigned claim_idle_ms;
	unsigned shutdown_grace_ms;
	/* planning (either daemon) */
	unsigned batch_messages; /* 0: the planner's default */
	unsigned batch_mb;       /* 0: the planner's default */
	unsigned planners;       /* planner threads; 0: this process plans nothing */
	/* coordinator */
	unsigned record_ttl_days; /* 0: ended jobs are kept until forgotten by hand */
	char *http_listen;        /* "127.0.0.1:8425"; NULL: no HTTP server */
	char *http_token_file;    /* NULL: the API asks for no token */
	bool help;
};

/* Reads argv, the environment and the config file (--config or MAILHAUL_CONFIG) into c.
 * 0, or -1 with MH_E_USAGE (bad flag, variable or file line; the detail names which) or
 * MH_E_CONFIG_FILE (the config file cannot be read). After --help only c->help is
 * meaningful. Call mh_daemon_config_cleanup(c) afterwards, whatever the result. */
int mh_daemon_config_parse(int argc, char **argv, enum mh_daemon daemon, struct mh_daemon_config *c,
			   struct mh_err *err);
/* Frees c's strings and zeroes it; safe to call twice. */
void mh_daemon_config_cleanup(struct mh_daemon_config *c);
void mh_daemon_config_usage(const char *prog, enum mh_daemon daemon);

struct mh_seal_key;
/* Everything a daemon does before its loop: parse the settings (printing usage for
 * --help), set up logging and tracing, load the seal key, and make SIGTERM/SIGINT set
 * *stop. Returns -1 to go on, or the exit status to end with (0 after --help, 2 on a
 * bad setting). Either way the caller cleans cfg up with mh_daemon_config_cleanup(). */
int mh_daemon_init(int argc, char **argv, const char *prog, enum mh_daemon daemon, struct mh_daemon_config *cfg,
		   struct mh_seal_key *key, atomic_int *stop);

#endif
