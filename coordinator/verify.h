/* verify.h - counts what a job's target folders hold once every message has a result.
 *
 * The summary's per-folder table sets the source's count against the target's, the check
 * support staff otherwise do by hand: the target folder held dst_before messages when the
 * job was planned and should now hold dst_before + copied. Counted with STATUS (MESSAGES)
 * over one target connection, before the job ends and its passwords are deleted. */
#ifndef MH_VERIFY_H
#define MH_VERIFY_H

#include "err.h"
#include "planner.h"
#include "seal.h"

struct rq;
struct event_base;

/* Stores each folder's "dst_after". 0, or -1 with err when the target could not be
 * counted (the caller records that as the verification's outcome). */
int verify_job(struct rq *q, struct event_base *base, const struct mh_seal_key *key, const struct planner_opts *o,
	       const char *job_id, struct mh_err *err);

#endif
