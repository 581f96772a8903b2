/* check.h - the health check: can this migration work, and what will it meet?
 *
 * For both servers: DNS, TCP connect, TLS (certificate problems named), greeting and
 * capabilities, login (wrong password, access disabled, account locked, mechanism refused,
 * by RFC 5530 codes where the server sends them). Then the source inventory (folders with
 * special use, messages, sizes, the largest message) and the target's side: folders that
 * already hold mail, quota (GETQUOTAROOT) against the source's volume, APPENDLIMIT against
 * every source message, names the target cannot hold and collisions, and the planned folder
 * mapping. Ends with a duration estimate and a verdict; every problem comes with one plain
 * sentence of cause and one of fix. Nothing is changed on either server: the source and
 * target folders are only EXAMINEd or STATUSed. */
#ifndef MH_CHECK_H
#define MH_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "imap_connect.h"
#include "seal.h"
#include "tls.h"
#include "wire.h"

struct event_base;

struct check_opts {
	unsigned connect_timeout_ms; /* default 15 s */
	unsigned command_timeout_ms; /* default 60 s */
	uint64_t rate_bytes_per_s;   /* for the estimate; default 8 MiB/s */
	unsigned rate_msgs_per_s;    /* default 100 */
	size_t list_max;             /* too-big messages listed; default 50 */
};

enum check_status { CHECK_SKIPPED, CHECK_OK, CHECK_WARN, CHECK_FAIL };
enum check_step { CHECK_DNS, CHECK_CONNECT, CHECK_TLS, CHECK_GREETING, CHECK_LOGIN, CHECK_FOLDERS, CHECK_STEPS };
const char *check_step_name(enum check_step s);     /* "dns", "connect", ... */
const char *check_status_name(enum check_status s); /* "ok", "warning", "failed", "skipped" */

struct check_folder {
	char *name;       /* display (UTF-8) */
	char *target;     /* source folders: where it goes (display); NULL when it cannot */
	unsigned special; /* MH_SU_* (source: as listed or guessed) */
	bool target_exists;
	bool renamed;
	uint64_t messages, bytes;
	uint64_t largest;
};

struct check_side {
	enum mh_side side;
	char host[256];
	uint16_t port;
	char user[256];
	enum mh_security security;
	enum check_status steps[CHECK_STEPS];
	char step_detail[CHECK_STEPS][MH_ERR_DETAIL_MAX];
	struct mh_err error;  /* the failure that stopped the check of this side */
	bool tls;
	struct mh_tls_info tls_info;
	char *capabilities;   /* space-separated */
	struct check_folder *folders;
	size_t folder_count;
	uint64_t messages, bytes, largest;
	char *largest_folder;
	bool has_quota;
	uint64_t quota_used, quota_limit;          /* bytes (STORAGE) */
	bool has_message_quota;
	uint64_t quota_msgs_used, quota_msgs_limit;
	uint64_t appendlimit; /* bytes, 0 when the server sets none */
};

struct check_problem {
	bool blocking;
	enum mh_err_code code;
	char cause[600];
	char fix[400];
};

struct check_big_message {
	char *folder; /* display */
	uint32_t uid;
	uint64_t size;
};

enum check_verdict { CHECK_VERDICT_OK, CHECK_VERDICT_WARNINGS, CHECK_VERDICT_BLOCKED };

struct check_report {
	struct check_side src, dst;
	struct check_problem *problems;
	size_t problem_count;
	struct check_big_message *too_big; /* source messages above the target's APPENDLIMIT */
	size_t too_big_listed;             /* in too_big (at most list_max) */
	size_t too_big_count;              /* all of them */
	uint64_t estimate_s;
	enum check_verdict verdict;
	uint64_t started_ms, ended_ms;
};

/* Runs the whole check for spec's two sides (passwords unsealed with key). Always fills r
 * (a side that cannot be reached is reported as such); returns 0, or -1 only for a problem
 * of ours (err set). */
int check_run(struct event_base *base, const struct mh_job_spec *spec, const struct mh_seal_key *key,
	      const struct check_opts *opts, struct check_report *r, struct mh_err *err);
void check_report_cleanup(struct check_report *r);
/* The first blocking problem, or NULL. */
const struct check_problem *check_first_blocking(const struct check_report *r);
const char *check_verdict_name(enum check_verdict v); /* "ok", "warnings", "blocked" */

/* For people (several lines, ends with the verdict) and for programs (one JSON object). */
void check_render_text(FILE *out, const struct check_report *r);
void check_render_json(FILE *out, const struct check_report *r);

#endif
