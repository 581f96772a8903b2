/* planpool.h - threads that plan submitted jobs (planner.h), in a coordinator or a worker.
 *
 * Each thread has its own Redis connection and event loop and reads mh:jobs in the
 * "planners" group; a job is planned by whoever moves it from queued to planning (one
 * atomic step), so an entry read twice, claimed from a slow sibling or submitted again is
 * never planned twice at once. The jobs a pool plans name it (an owner id, fresh per pool),
 * and the pool keeps mh:planner:<owner> alive; a job left "planning" by a pool whose key
 * expired (its process was killed) is queued again by the coordinator's sweep and planned
 * again with what the first plan did taken into account.
 *
 * The same threads take "verify:<id>" entries: the last step of a job whose messages all
 * have results, counting its target folders (verify.h) before it is finished.
 *
 * Planning costs two IMAP logins and a chain of round trips per job, about a third of the
 * CPU of copying a small mailbox: pools in the workers let planning grow with the fleet
 * and keep the coordinator light. */
#ifndef MH_PLANPOOL_H
#define MH_PLANPOOL_H

#include <stdatomic.h>

#include "err.h"
#include "planner.h"
#include "seal.h"

struct planpool_opts {
	const char *redis_url;
	const struct mh_seal_key *seal_key;
	const char *name; /* consumer name prefix: threads read as "<name>-plan-<i>" */
	struct planner_opts planner;
	unsigned threads; /* jobs planned at once; at least 1 */
	const atomic_int *stop; /* optional: once non-zero, no new job is taken */
};

struct planpool;

/* Starts the threads (after the liveness key is set, so no job is ever taken in the name
 * of a pool that does not look alive). NULL with err when Redis cannot be reached or a
 * thread cannot start. */
struct planpool *planpool_start(const struct planpool_opts *o, struct mh_err *err);

/* The id the jobs this pool plans carry in their "planner" field. */
const char *planpool_owner(const struct planpool *p);

/* Stops taking jobs and waits up to wait_ms for the plans in hand (0: as long as they
 * take), keeping the pool alive meanwhile. Plans that finish in time end cleanly and the
 * liveness key is deleted; a plan still running when the time is up is abandoned with
 * the process: the key then lapses and the job is planned again elsewhere. Frees p. */
void planpool_stop(struct planpool *p, unsigned wait_ms);

#endif
