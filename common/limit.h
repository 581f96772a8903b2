/* limit.h - fleet-wide connection limits, shared by every worker through Redis.
 *
 * Before opening a connection to a mail server a worker takes a lease on two counters at
 * once: the ACCOUNT (proto, host, port, user; at most account_max connections, default 4)
 * and the HOST (proto, host, port; at most host_max, default 40). Either both are taken or
 * neither is. A lease expires after ttl_ms unless the holder refreshes it, so the leases of
 * a crashed worker lapse by themselves; the connection's owner refreshes it well within
 * the TTL (e.g. every ttl/3) and releases it when the connection closes.
 *
 * In Redis each counter is a sorted set: member = holder id, score = expiry in ms on the
 * Redis server's clock (scripts read TIME, so workers with skewed clocks agree). Keys:
 *   mh:limit:acct:<sha256 hex of proto NUL host NUL port NUL user>
 *   mh:limit:host:<proto>:<host>:<port>
 * The account is hashed so that user names never appear in key names. Proto and host are
 * lowercased. Each key expires with its last lease, so idle keys vanish.
 *
 * Ownership: the caller owns the target, the holder string and the lease; the lease keeps
 * copies of the key names and the holder, so it outlives the target. A struct mh_lease is
 * plain data and may be copied between threads, but one lease is used by one thread at a
 * time (each thread has its own struct rq). */
#ifndef MH_LIMIT_H
#define MH_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct rq;

#define MH_LIMIT_ACCOUNT_MAX_DEFAULT 4u
#define MH_LIMIT_HOST_MAX_DEFAULT 40u
#define MH_LIMIT_TTL_DEFAULT_MS 60000u

struct mh_limit_target {
	const char *proto; /* "imap"; letters and digits, at most 16 */
	const char *host;  /* printable, no spaces, at most 255 bytes */
	uint16_t port;     /* not 0 */
	const char *user;  /* any bytes but NUL; never stored in clear */
	unsigned account_max; /* 0: MH_LIMIT_ACCOUNT_MAX_DEFAULT */
	unsigned host_max;    /* 0: MH_LIMIT_HOST_MAX_DEFAULT */
};

struct mh_lease {
	char account_key[96];
	char host_key[320];
	char holder[96];
	bool held;
};

/* Tries once to lease one connection slot on both the account and the host.
 * holder must be unique per connection fleet-wide (e.g. "<worker>-<thread>-<n>"), 1 to 95
 * bytes; trying again with a holder that already holds both slots just extends them.
 * ttl_ms 0 means MH_LIMIT_TTL_DEFAULT_MS.
 * Returns 1 when acquired (lease filled, held = true; *retry_ms_r = 0);
 *         0 when a limit is full: nothing was taken, lease->held = false, and *retry_ms_r
 *           says when the earliest lease blocking us expires (a release may come sooner,
 *           so callers should cap their wait);
 *        -1 with err on a bad target or holder (MH_E_BAD_URL, MH_E_INTERNAL) or a Redis
 *           error (MH_E_REDIS); lease->held = false.
 * The lease's key names and holder are filled in whenever the arguments are valid.
 * retry_ms_r may be NULL. */
int mh_limit_try_acquire(struct rq *q, const struct mh_limit_target *t, const char *holder,
			 unsigned ttl_ms, struct mh_lease *lease, unsigned *retry_ms_r,
			 struct mh_err *err);

/* Extends a held lease to ttl_ms from now (0: MH_LIMIT_TTL_DEFAULT_MS) on both counters.
 * Returns 0, or -1 with err: MH_E_CONNECTION_LOST when the lease had already lapsed (its
 * slot may have gone to someone else, so the caller must close the connection and acquire
 * again; lease->held becomes false and what is left of the lease is removed), MH_E_REDIS
 * on a Redis error (the lease stays held; try again before it lapses), MH_E_INTERNAL when
 * the lease is not held. */
int mh_limit_refresh(struct rq *q, struct mh_lease *lease, unsigned ttl_ms, struct mh_err *err);

/* Gives both slots back. A lease that is not held is a no-op returning 0.
 * Returns 0, or -1 with MH_E_REDIS. lease->held is false afterwards either way: a lease
 * whose release did not reach Redis lapses by itself within its TTL. */
int mh_limit_release(struct rq *q, struct mh_lease *lease, struct mh_err *err);

/* Counts the current (unexpired) holders of t's account and host, for status and tests.
 * Either output may be NULL. Returns 0, or -1 with err. */
int mh_limit_count(struct rq *q, const struct mh_limit_target *t, unsigned *account_r,
		   unsigned *host_r, struct mh_err *err);

#endif
