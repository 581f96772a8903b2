/* forget.h - deleting a job's every trace in Redis, on request or after the retention time.
 *
 * A job's transfer record (hosts, users, protocol, times, counts, errors: mh:job:<id>) and
 * everything else of it (folders, ledger, in-flight and claim maps, parked and retried
 * batches, its place in mh:index and mh:active) go together. Only a job in a final state
 * can be forgotten: a running one would be recreated by its own results. */
#ifndef MH_FORGET_H
#define MH_FORGET_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct rq;

struct mh_forget_report {
	size_t keys;            /* mh:job:<id>... keys deleted */
	size_t folder_keys;     /* of which folder hashes */
	size_t retry_batches;   /* batches removed from mh:retry */
	size_t index_entries;   /* mh:index and mh:active entries */
};

/* Deletes every key of the job. 1 forgotten, 0 no such job, -1 error (MH_E_USAGE when the
 * job has not ended). */
int mh_job_forget(struct rq *q, const char *job_id, struct mh_forget_report *rep, struct mh_err *err);

/* Jobs whose source or destination user is user (ignoring case). Heap array of heap ids. */
int mh_jobs_of_user(struct rq *q, const char *user, char ***ids_r, size_t *count_r, struct mh_err *err);

/* Forgets the jobs that ended more than ttl_ms before now_ms; returns how many, or -1. */
int mh_jobs_expire(struct rq *q, uint64_t ttl_ms, uint64_t now_ms, struct mh_err *err);

#endif
