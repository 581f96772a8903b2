/* worker.h - the stateless worker: pulls batches from Redis, copies, reports results.
 *
 * Runs `concurrency` threads; each owns one Redis connection, one event_base and at most
 * one source and one target IMAP connection (kept open between batches of the same job).
 * A batch is acknowledged only after its results are published, so a worker killed at any
 * moment loses nothing: its batches stay pending and other workers claim them. */
#ifndef MH_WORKER_H
#define MH_WORKER_H

#include <stdatomic.h>

#include "err.h"
#include "planner.h"
#include "seal.h"

struct worker_opts {
	const char *redis_url;
	const struct mh_seal_key *seal_key;
	unsigned concurrency;       /* threads; default 2 */
	const char *name;           /* consumer name prefix; default "<host>-<pid>" */
	unsigned claim_idle_ms;     /* take over batches idle this long (default 60000) */
	unsigned command_timeout_ms;/* IMAP command timeout (default 120000) */
	unsigned shutdown_grace_ms; /* after *stop, time to finish batches in hand (default 30000) */
	unsigned planners;          /* jobs planned at once in this process (planpool.h); 0: none */
	struct planner_opts planner;
};

/* Blocks until *stop becomes non-zero (checked at least once a second), then lets the
 * threads finish their current batch and returns 0; -1 if it could not start. */
int worker_run(const struct worker_opts *o, const atomic_int *stop, struct mh_err *err);

#endif
