/* config.h - settings of the long-running daemons (mailhaul-coordinator, mailhaul-worker).
 *
 * Each setting comes from a flag, else from its MAILHAUL_* environment variable, else its
 * default:
 *   --redis URL            MAILHAUL_REDIS            redis://127.0.0.1:6379
 *   --seal-key-file F      MAILHAUL_SEAL_KEY_FILE    (required)
 *   --concurrency N        MAILHAUL_CONCURRENCY      2 (workers only)
 *   --name NAME            MAILHAUL_NAME             host-pid
 *   --log-format F         MAILHAUL_LOG_FORMAT       json (text for humans)
 *   --log-level L          MAILHAUL_LOG_LEVEL        info
 *   --trace FILE           MAILHAUL_TRACE_FILE       (off)
 *   --batch-messages N     MAILHAUL_BATCH_MESSAGES   500 (coordinator only)
 *   --batch-mb N           MAILHAUL_BATCH_MB         32 (coordinator only)
 */
#ifndef MH_CONFIG_H
#define MH_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>

#include "err.h"
#include "log.h"

struct mh_daemon_config {
	const char *redis_url;
	const char *seal_key_file;
	unsigned concurrency;
	const char *name;
	enum mh_log_format log_format;
	enum mh_log_level log_level;
	const char *trace_file;
	unsigned batch_messages; /* 0: default */
	unsigned batch_mb;       /* 0: default */
	bool help;
};

/* Parses argv (with_concurrency: accept --concurrency). 0, or -1 with MH_E_USAGE. */
int mh_daemon_config_parse(int argc, char **argv, bool with_concurrency, struct mh_daemon_config *c,
			   struct mh_err *err);
void mh_daemon_config_usage(const char *prog, bool with_concurrency);

struct mh_seal_key;
/* Everything a daemon does before its loop: parse the settings (printing usage for
 * --help), set up logging and tracing, load the seal key, and make SIGTERM/SIGINT set
 * *stop. Returns -1 to go on, or the exit status to end with (0 after --help, 2 on a
 * bad setting). */
int mh_daemon_init(int argc, char **argv, const char *prog, bool with_concurrency, struct mh_daemon_config *cfg,
		   struct mh_seal_key *key, atomic_int *stop);

#endif
