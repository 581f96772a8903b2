/* jobstore.h - a job's state in Redis: keys, states, counters, results, summaries.
 *
 * Redis holds metadata only. Layout (all keys of one job start with "mh:job:<id>"):
 *   mh:jobs                  stream: job submissions (group "coordinators")
 *   mh:batches               stream: batches for workers (group "workers")
 *   mh:results               stream: batch results (group "coordinators")
 *   mh:job:<id>              hash: spec (msgpack, passwords sealed), state, counters, times
 *   mh:job:<id>:folder:<i>   hash: src, dst, counters of folder i
 *   mh:job:<id>:done         hash: "<folder>:<uid>" -> c|s|f, so a result counts once
 *   mh:job:<id>:fail         hash: "<folder>:<uid>" -> "CODE\tsize\tdetail"
 *   mh:job:<id>:inflight     hash: "<folder>:<uid>" -> "1" while an attempt may have appended
 *                            the message but its result is not recorded (see settle.c)
 *   mh:job:<id>:claimed      hash: "<folder>:<target uid>" -> source uid: which target copy
 *                            belongs to which source message
 *   mh:job:<id>:parked       list: batches held back while the job is paused
 *   mh:job:<id>:pop3         hash: POP3 sources: job-local message id -> identity
 *   mh:pop3:<account hash>   hash: POP3 identity -> "<job> <ms>": what was copied from that
 *                            source account, by any job (kept across jobs; pop3store.h)
 *   mh:index                 sorted set of job ids by creation time
 *   mh:active                set of jobs not yet in a final state (swept by the coordinator)
 *   mh:retry                 sorted set: batches waiting for their retry time (score: due ms)
 *   mh:planner:<owner>       string with a TTL: a planner pool (in a coordinator or a worker)
 *                            is alive; the jobs it plans name it in their "planner" field
 * Every stream has one consumer group, and its readers delete what they acknowledge
 * (rq_xack_del): a stream holds only entries not yet handled.
 */
#ifndef MH_JOBSTORE_H
#define MH_JOBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "wire.h"

struct rq;
struct mh_counts;

#define MH_STREAM_JOBS "mh:jobs"
#define MH_STREAM_BATCHES "mh:batches"
#define MH_STREAM_RESULTS "mh:results"
#define MH_GROUP_WORKERS "workers"
#define MH_GROUP_COORDINATORS "coordinators"
#define MH_GROUP_PLANNERS "planners" /* mh:jobs: planner pools of coordinators and workers */
#define MH_ZSET_RETRY "mh:retry"
#define MH_ZSET_AUTOSYNC "mh:autosync" /* auto-synced jobs by the time of their next run (ms) */
#define MH_SET_ACTIVE "mh:active"

#define MH_JOB_ID_MAX 40
#define MH_KEY_MAX 128

enum mh_job_state {
	MH_JOB_QUEUED,
	MH_JOB_PLANNING,
	MH_JOB_RUNNING,
	MH_JOB_DONE,     /* every message copied or skipped */
	MH_JOB_PARTIAL,  /* finished, some messages failed */
	MH_JOB_FAILED,   /* could not run (login, connection, ...) */
	MH_JOB_CANCELLED,
	MH_JOB_PAUSED,   /* workers park its batches until it is resumed */
};
const char *mh_job_state_name(enum mh_job_state s);
int mh_job_state_parse(const char *s, enum mh_job_state *s_r);
int mh_job_state_is_final(enum mh_job_state s);

/* "j-" + 16 random hex digits. */
void mh_job_id_new(char id[MH_JOB_ID_MAX]);
void mh_key_job(char *buf, size_t len, const char *job_id, const char *suffix /* NULL or ":done" */);
void mh_key_folder(char *buf, size_t len, const char *job_id, uint32_t folder_idx);

/* Stores the spec, state=queued and created time, and publishes the job on mh:jobs. */
int mh_job_submit(struct rq *q, const struct mh_job_spec *spec, struct mh_err *err);
int mh_job_load_spec(struct rq *q, const char *job_id, struct mh_job_spec *spec, struct mh_err *err);
/* Re-encodes the spec without sealed passwords (a finished job keeps no credentials). */
int mh_job_purge_credentials(struct rq *q, const char *job_id, struct mh_err *err);
int mh_job_get_state(struct rq *q, const char *job_id, enum mh_job_state *state_r, struct mh_err *err);
/* The step a planning job is at, shown by status ("checking"); NULL clears it. */
int mh_job_set_phase(struct rq *q, const char *job_id, const char *phase, struct mh_err *err);
/* Keeps the health check's outcome with the job: its verdict and its report for people
 * (no passwords in it). */
int mh_job_store_check(struct rq *q, const char *job_id, const char *verdict, const char *text, struct mh_err *err);
/* A warning about the whole job that its summary shows (e.g. a POP3 server without UIDL:
 * duplicates are recognised by size and headers only). */
int mh_job_set_warning(struct rq *q, const char *job_id, const char *text, struct mh_err *err);
/* Sets the state; final states also set "ended" (unix ms). error may be NULL. */
int mh_job_set_state(struct rq *q, const char *job_id, enum mh_job_state state, const struct mh_err *error,
		     struct mh_err *err);

/* One folder of the plan: display names (UTF-8), the names as on the servers (modified
 * UTF-7), the source UIDVALIDITY, and totals. */
struct mh_folder_ref {
	char *src, *dst;         /* display */
	char *src_raw, *dst_raw; /* as on the servers */
	uint32_t uidvalidity;
	/* The target folder when planned: every copy of ours has a UID >= dst_uidnext as long
	 * as its UIDVALIDITY is still dst_uidvalidity (0: created by the plan, any). */
	uint32_t dst_uidvalidity, dst_uidnext;
};
int mh_job_add_folder(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_folder_ref *f,
		      uint64_t messages, uint64_t bytes, struct mh_err *err);
int mh_job_load_folder(struct rq *q, const char *job_id, uint32_t folder_idx, struct mh_folder_ref *f,
		       struct mh_err *err);
void mh_folder_ref_cleanup(struct mh_folder_ref *f);
/* A new batch id, unique within the job. */
int mh_job_next_batch_id(struct rq *q, const char *job_id, uint64_t *id_r, struct mh_err *err);

/* Job control; each is one atomic step in Redis. Return 1 when the state changed, 0 when
 * the job was not in a state that allows it (e.g. resuming a running job), -1 on error. */
int mh_job_pause(struct rq *q, const char *job_id, struct mh_err *err);
/* Back to the state it was paused in; parked batches go back on mh:batches. */
int mh_job_resume(struct rq *q, const char *job_id, struct mh_err *err);
/* Any non-final state -> cancelled; parked batches are dropped. */
int mh_job_cancel(struct rq *q, const char *job_id, struct mh_err *err);
/* "pause", "resume" or "cancel" (which also deletes the job's sealed passwords), as the
 * CLI and the HTTP API do them: 1 done, 0 not allowed in the job's state, -1 on error
 * (MH_E_USAGE for an unknown action). */
int mh_job_control(struct rq *q, const char *job_id, const char *action, struct mh_err *err);
/* planning -> running, or, for a job paused while planning, running becomes the state it
 * resumes to. */
int mh_job_planned(struct rq *q, const char *job_id, struct mh_err *err);
/* queued -> planning, atomically, so that one planner alone plans a job: records owner
 * (the planner pool's id, see mh_planner_alive) as its planner and the start time.
 * 1: planning is ours; 2: ours, and an earlier plan of the job was interrupted (its
 * planner died: mh_job_sweep queued it again); 0: not queued (already planned, being
 * planned, paused, cancelled); -1 on error. */
int mh_job_start_planning(struct rq *q, const char *job_id, const char *owner, struct mh_err *err);
/* A plan of owner's that broke off for a reason of ours (Redis went away): planning ->
 * queued, to be planned again (as after an interrupted plan) once delay_ms have passed
 * (mh_job_sweep submits it then), so that the batches it already published are likely
 * handled by then. A job paused while planning is queued when resumed. 1 done, 0 not
 * planning in owner's name (any more), -1 on error. */
int mh_job_plan_later(struct rq *q, const char *job_id, const char *owner, unsigned delay_ms, struct mh_err *err);
/* running with every planned message accounted for -> done (partial when some failed),
 * atomically: ends the job and takes it out of mh:active. 1 when this call finished it
 * (*final_r and, unless NULL, the message counts of *counts_r set; the byte counts are
 * not), 0 when it is not complete or not running (e.g. finished already), -1 on error. */
int mh_job_finish(struct rq *q, const char *job_id, enum mh_job_state *final_r, struct mh_counts *counts_r,
		  struct mh_err *err);
/* Before a complete job is finished, a planner counts what its target folders hold
 * (coordinator/verify.c). For a running, complete job: 1 when this call asked for that (a
 * "verify:<id>" entry on mh:jobs), 2 when it is done and the job can be finished, 0 when
 * the job is not complete or its verification is under way; -1 on error. */
int mh_job_request_verify(struct rq *q, const char *job_id, struct mh_err *err);
/* Takes a requested verification in owner's (a planner pool's) name: 1 ours, 0 not
 * wanted (not complete any more, taken by a live pool, done), -1 on error. */
int mh_job_take_verify(struct rq *q, const char *job_id, const char *owner, struct mh_err *err);
/* Verification over: error NULL when the target folders were counted, else why not. */
int mh_job_verified(struct rq *q, const char *job_id, const char *error, struct mh_err *err);
/* A per-folder count (the target's "dst_before" at planning, "dst_after" when verified);
 * only_if_unset keeps the first value (a job planned again keeps its first count). */
int mh_job_folder_set_count(struct rq *q, const char *job_id, uint32_t folder_idx, const char *field,
			    uint64_t value, bool only_if_unset, struct mh_err *err);
/* One pass over mh:active (one script, one round trip): lists the running jobs that are
 * complete but not finished (their last result came while they were paused, or their
 * coordinator died before finishing them), and submits again (on mh:jobs) the jobs left
 * "planning" by a planner pool that is no longer alive (unless owner planned them) and
 * those whose mh_job_plan_later delay is over; *requeued_r counts both.
 * *complete_r as for mh_job_list (free with mh_job_list_free). 0 or -1. */
int mh_job_sweep(struct rq *q, const char *owner, char ***complete_r, size_t *count_r, size_t *requeued_r,
		 struct mh_err *err);

/* Planner pool liveness: mh:planner:<owner> exists for ttl_ms after each call. */
void mh_key_planner(char *buf, size_t len, const char *owner);
int mh_planner_alive(struct rq *q, const char *owner, unsigned ttl_ms, struct mh_err *err);
/* A pool that stops cleanly says so, and nobody waits for its key to expire. */
int mh_planner_gone(struct rq *q, const char *owner, struct mh_err *err);
/* "Sync now": an ended job (done, partial, failed) is queued again, to be planned as an
 * incremental run (its "sync" field set until planned): messages that have a result are
 * left alone, unchanged folders are not read (planner.c). Counts accumulate over runs.
 * 1 queued, 0 not ended (running, paused, cancelled...), -1 on error. */
int mh_job_sync_submit(struct rq *q, const char *job_id, struct mh_err *err);
/* Auto-sync: every_ms > 0 runs a sync of the job every every_ms (the next one every_ms
 * from now) and keeps its sealed passwords meanwhile; 0 stops it (the caller then purges
 * the passwords of an ended job). 0 or -1. */
int mh_job_set_autosync(struct rq *q, const char *job_id, uint64_t every_ms, struct mh_err *err);
/* Starts the syncs that are due at now_ms (an ended job is queued as by mh_job_sync_submit;
 * one still running waits for its next turn: never two runs at once) and schedules their
 * next turn. Returns how many were started, or -1. */
int mh_autosync_due(struct rq *q, uint64_t now_ms, struct mh_err *err);
/* One run of a job (the migration, then each sync): what it added to the counts. */
struct mh_run {
	uint64_t started_ms, ended_ms;
	char state[16]; /* how it ended: done, partial, failed, cancelled */
	uint64_t copied, skipped, failed;
	uint64_t flags_updated, deleted; /* by flag sync and delete propagation (syncstore.h) */
};
/* The job's runs, oldest first (mh:job:<id>:history). *runs_r heap (free()). 0 or -1. */
int mh_job_history(struct rq *q, const char *job_id, struct mh_run **runs_r, size_t *n_r, struct mh_err *err);
/* A numeric field of a folder hash (0 when absent). */
/* Several at once (one round trip): values_r[i] for fields[i]. */
int mh_job_folder_get_counts(struct rq *q, const char *job_id, uint32_t folder_idx, const char *const *fields,
			     size_t n, uint64_t *values_r, struct mh_err *err);
int mh_job_folder_get_count(struct rq *q, const char *job_id, uint32_t folder_idx, const char *field,
			    uint64_t *value_r, struct mh_err *err);
/* A finished job (partial, done, failed) becomes running again (for a requeue). */
int mh_job_reopen(struct rq *q, const char *job_id, struct mh_err *err);
/* Takes failed messages out of the counts and the failure ledger, so their next result
 * counts as new (for a requeue). Messages that did not fail are left alone. */
int mh_job_unfail(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_batch_msg *msgs,
		  size_t count, struct mh_err *err);
/* Failed messages a sync tries again: those whose error was transient (a connection
 * lost, throttling: the automatic retries ran out), or all of them (all). Their failures
 * leave the counts, so the sync plans them as new. *n_r: how many. 0 or -1. */
int mh_job_unfail_for_sync(struct rq *q, const char *job_id, bool all, size_t *n_r, struct mh_err *err);
/* What a delivered batch's messages are: recorded as copied or skipped (not again), in
 * flight (an earlier attempt may have appended them: look on the target first), or new. */
enum mh_msg_mark { MH_MARK_NEW, MH_MARK_DONE, MH_MARK_INFLIGHT };
int mh_job_msg_marks(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_batch_msg *msgs,
		     size_t count, enum mh_msg_mark *marks_r, struct mh_err *err);
/* Worker, before appending: these messages are in flight until their result is recorded. */
int mh_job_mark_inflight(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_batch_msg *msgs,
			 size_t count, struct mh_err *err);
/* Gives the source message src_uid the first of the target UIDs cands[] that no other
 * message owns (one already its own counts). *uid_r: that UID, or 0 when all are taken. */
int mh_job_claim_target_uid(struct rq *q, const char *job_id, uint32_t folder_idx, uint32_t src_uid,
			    const uint32_t *cands, size_t n, uint32_t *uid_r, struct mh_err *err);
/* Worker: holds the batch back if its job is paused. 1 parked, 0 not paused, -1 error. */
int mh_job_park_batch(struct rq *q, const char *job_id, const void *batch, size_t len, struct mh_err *err);
/* Lists jobs, newest first (at most max). Heap array of heap strings. */
int mh_job_list(struct rq *q, size_t max, char ***ids_r, size_t *count_r, struct mh_err *err);
void mh_job_list_free(char **ids, size_t count);
/* Jobs not yet final. */
int mh_job_list_active(struct rq *q, char ***ids_r, size_t *count_r, struct mh_err *err);

/* Adaptive batch sizes, per target server ("mh:server:<host>:<port>" hash, field "batch"):
 * new jobs to a server are planned with its current size, which starts at `start`,
 * grows by a quarter (at least one) after a batch that ended fast and clean, and halves
 * after one with transient trouble (timeouts, lost connections, throttling), always
 * between MH_BATCH_MIN and max. */
#define MH_BATCH_MIN 10u
void mh_key_server(char *buf, size_t len, const char *host, uint16_t port);
int mh_batch_size_get(struct rq *q, const char *server_key, unsigned start, unsigned max, unsigned *size_r,
		      struct mh_err *err);
/* outcome: +1 fast and clean, -1 troubled, 0 neither (leave it). */
int mh_batch_size_observe(struct rq *q, const char *server_key, int outcome, unsigned start, unsigned max,
			  struct mh_err *err);

/* Retries: a batch waits in mh:retry until due_ms, then goes back on mh:batches. */
int mh_retry_schedule(struct rq *q, const struct mh_batch *b, uint64_t due_ms, struct mh_err *err);
/* Moves up to max due batches to mh:batches atomically; returns how many, or -1. */
int mh_retry_release_due(struct rq *q, unsigned max, struct mh_err *err);
/* Adds the folder's totals to the job's and sets the folder count; called once planning ends. */
int mh_job_set_plan(struct rq *q, const char *job_id, uint32_t folders, uint64_t messages, uint64_t bytes,
		    uint64_t batches, struct mh_err *err);

/* Applies per-message results atomically (a Lua script). A message counts once: a second
 * result for it is ignored, except that a copied/skipped result replaces a failure.
 * *complete_r (may be NULL) tells whether the job is now running with every planned
 * message accounted for: time for mh_job_finish. A job gets its planned total only when
 * planning ends, so one whose results all came before that is never complete here; its
 * planner finishes it. Returns 0 or -1. */
int mh_job_record_results(struct rq *q, const char *job_id, uint32_t folder_idx, uint64_t batch_id,
			  const struct mh_msg_result *msgs, size_t count, bool *complete_r, struct mh_err *err);

struct mh_counts {
	uint64_t messages, bytes; /* planned totals */
	uint64_t copied, copied_bytes;
	uint64_t skipped, skipped_bytes;
	uint64_t failed, failed_bytes;
};

struct mh_folder_summary {
	char *src, *dst;
	struct mh_counts counts;
	int64_t dst_before; /* messages in the target folder when planned; -1 unknown */
	int64_t dst_after;  /* when the job was verified; -1 not verified */
};

struct mh_failure {
	uint32_t folder_idx;
	uint64_t batch_id;
	uint32_t uid;
	uint64_t size;
	char code[48];
	char date[40];    /* INTERNALDATE, "" when unknown */
	char subject[MH_ERR_DETAIL_MAX]; /* or its "sha256:" fingerprint; "" when unknown */
	char detail[MH_ERR_DETAIL_MAX];
};

struct mh_job_summary {
	char job_id[MH_JOB_ID_MAX];
	enum mh_job_state state;
	struct mh_counts counts;
	uint64_t created_ms, started_ms, ended_ms;
	uint32_t planned_folders; /* 0 until planning finished */
	char error[48];           /* job-level error code name, "" if none */
	char error_detail[MH_ERR_DETAIL_MAX];
	char phase[16];           /* "checking" while the health check runs, else "" */
	char check_verdict[16];   /* "ok", "warnings", "blocked"; "" when not checked */
	char *check_text;         /* the check's report for people (with_details; NULL if none) */
	char verify[16];          /* "done" once the target folders were counted, else "" or in progress */
	char verify_error[MH_ERR_DETAIL_MAX]; /* why they could not be counted, "" if they were */
	char warning[MH_ERR_DETAIL_MAX];      /* mh_job_set_warning's text, "" if none */
	uint64_t autosync_ms;                 /* auto-sync interval, 0 when off */
	uint64_t next_sync_ms;                /* when the next auto-sync is due (unix ms) */
	unsigned sync_opts;                   /* MH_SYNC_* (syncstore.h) */
	uint64_t flags_updated, deleted;      /* copies given their source's flags, deleted (all runs) */
	char src[600], dst[600];  /* endpoint descriptions (no password) */
	size_t folder_count;
	struct mh_folder_summary *folders;
	size_t failure_count;
	struct mh_failure *failures;
};

/* The state as people see it: "checking" while a planning job runs its health check. */
const char *mh_job_summary_state(const struct mh_job_summary *s);
/* Loads counters only (cheap; for progress), or everything (with_details). */
int mh_job_load_summary(struct rq *q, const char *job_id, int with_details, struct mh_job_summary *s,
			struct mh_err *err);
void mh_job_summary_cleanup(struct mh_job_summary *s);
/* Complete when every planned message has a result. */
int mh_job_counts_complete(const struct mh_counts *c);

uint64_t mh_now_ms(void);

#endif
