/* coordinator.h - aggregates results from mh:results, schedules retries, finishes jobs
 * and, with planners, plans jobs from mh:jobs. Everything it knows lives in Redis, so a restarted coordinator
 * resumes where the last one stopped. */
#ifndef MH_COORDINATOR_H
#define MH_COORDINATOR_H

#include <stdatomic.h>
#include <stdint.h>

#include "err.h"
#include "planner.h"
#include "seal.h"

struct coordinator_opts {
	const char *redis_url;
	const struct mh_seal_key *seal_key;
	const char *name; /* consumer name; default "coordinator" */
	struct planner_opts planner;
	unsigned planners; /* jobs planned at once here (planpool.h); 0: none, the workers plan */
	/* Transient failures (connection lost, timeout, [UNAVAILABLE], throttling) go back as
	 * smaller batches after retry_base_ms * 2^attempt (at most retry_max_ms, +-20% jitter),
	 * up to retry_attempts deliveries in all; then they count as failed. */
	unsigned retry_attempts; /* default 5 */
	unsigned retry_base_ms;  /* default 2000 */
	unsigned retry_max_ms;   /* default 300000 */
	/* Ended jobs are forgotten (forget.h) this long after they ended; 0: never. */
	uint64_t record_ttl_ms;
};

/* Blocks until *stop becomes non-zero (checked at least every 250 ms). 0, or -1 when it
 * could not start (err says why). */
int coordinator_run(const struct coordinator_opts *o, const atomic_int *stop, struct mh_err *err);

#endif
