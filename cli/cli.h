/* cli.h - the mailhaul command-line tool's pieces. */
#ifndef MH_CLI_H
#define MH_CLI_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "err.h"
#include "jobstore.h"
#include "seal.h"
#include "textfmt.h"

/* Exit codes (documented in the README). */
enum {
	MH_EXIT_OK = 0,      /* every message copied or skipped */
	MH_EXIT_FAILED = 1,  /* some messages (or the job) failed */
	MH_EXIT_USAGE = 2,   /* the command line is wrong */
	MH_EXIT_CONNECT = 3, /* could not connect or log in, or the health check said it cannot work */
};

int cmd_migrate(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
/* status, pause, resume, cancel, failures, requeue (jobs.c) */
int cmd_jobs(const char *cmd, int argc, char **argv);
/* errors [CODE] [--markdown] [--json]: the error catalogue (errors.c) */
int cmd_errors(int argc, char **argv);

/* --- endpoints.c: the two accounts of a command line ------------------------------- */
struct mh_endpoint;
/* Parses both URLs (then masks a password in them, so it leaves `ps`), checks the
 * protocols, and finds each password: --*-password-file, else $MAILHAUL_FROM_PASSWORD /
 * $MAILHAUL_TO_PASSWORD, else the URL (warned about). 0, or -1 with err. */
int cli_endpoints_resolve(char *from_url, char *to_url, const char *from_password_file, const char *to_password_file,
			  bool insecure, struct mh_endpoint *from, struct mh_endpoint *to, struct mh_err *err);
int cmd_check(int argc, char **argv);
/* records, forget (records.c) */
int cmd_records(const char *cmd, int argc, char **argv);

/* --- spec.c: a job from two endpoints ------------------------------------------------- */
struct mh_endpoint;
struct mh_job_spec;
/* Fills spec for a new job (id written into job_id, which spec points to): passwords
 * sealed with key, ca_file made absolute into ca_path (PATH_MAX bytes). The sealed
 * passwords are heap memory: free them with cli_spec_cleanup(). */
int cli_build_spec(const struct mh_endpoint *from, const struct mh_endpoint *to, bool allow_plaintext,
		   bool insecure, const char *ca_file, const struct mh_seal_key *key, struct mh_job_spec *spec,
		   char *job_id, char *ca_path, struct mh_err *err);
void cli_spec_cleanup(struct mh_job_spec *spec);
int cmd_submit(int argc, char **argv);
/* The cluster commands' defaults: $MAILHAUL_REDIS, else redis://127.0.0.1:6379; and
 * $MAILHAUL_SEAL_KEY_FILE, else NULL. */
const char *cli_default_redis_url(void);
const char *cli_default_seal_key_file(void);

/* --- embedded.c: a private Redis plus in-process coordinator and workers ------------- */
struct embedded;
/* Starts redis-server on a unix socket in a private temp dir (no TCP port, no
 * persistence), then a coordinator thread and a worker with `workers` threads. */
struct embedded *embedded_start(unsigned workers, const struct mh_seal_key *key, struct mh_err *err);
const char *embedded_redis_url(const struct embedded *e);
/* Stops the threads and redis-server and removes the temp dir. NULLs *e. */
void embedded_stop(struct embedded **e);

/* --- report.c: progress and summaries ------------------------------------------------ */
struct progress {
	bool tty, quiet;
	uint64_t started_ms, last_print_ms;
	bool line_open;
};
void progress_init(struct progress *p, bool quiet);
void progress_update(struct progress *p, const struct mh_job_summary *s);
void progress_end(struct progress *p);
void report_human(FILE *out, const struct mh_job_summary *s);
void report_json(FILE *out, const struct mh_job_summary *s);        /* one line */

#endif
