/* planner.h - turns a submitted job into batches on mh:batches.
 *
 * For both servers it reads the namespace and the folder list (with special-use
 * attributes), maps every source folder to its target name (folder_map.h), creates the
 * missing target folders, and then, folder by folder, lists the source's UIDs and sizes
 * and the identity of every message on both sides:
 *   identity = "M:" + Message-ID, or for a message without one
 *              "H:" + size + ":" + SHA-256 of its header (CRs removed).
 * Identities are compared as multisets: a target holding k messages with identity X
 * covers the first k source messages with X (in UID order); the others are copied. So a
 * second run copies nothing, and two identical source messages give two target messages.
 * Skipped messages are recorded at once; the rest are split into batches bounded by
 * message count and bytes, a large message travelling alone. */
#ifndef MH_PLANNER_H
#define MH_PLANNER_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "imap_connect.h"
#include "seal.h"

struct rq;
struct event_base;

struct planner_opts {
	unsigned batch_max_msgs;   /* default 500: the most an adaptive batch may grow to */
	unsigned batch_start_msgs; /* default 100: a new server's first batch size */
	uint64_t batch_max_bytes;  /* default 32 MiB */
	uint64_t large_msg_bytes;  /* a message at least this large gets a batch of its own; default 8 MiB */
	unsigned command_timeout_ms;
};
void planner_opts_default(struct planner_opts *o);
/* The defaults, with the daemons' --batch-messages and --batch-mb where non-zero. */
void planner_opts_from_settings(struct planner_opts *o, unsigned batch_messages, unsigned batch_mb);

/* Plans job_id, which the caller has moved to "planning" (mh_job_start_planning); replan
 * when that said an earlier plan was interrupted (messages already handled or in flight
 * are then not planned as new). On success the job is "running" with its totals set. On
 * failure (e.g. a login refused) returns -1 with err; the caller marks the job failed.
 * Uses q and base alone: planners in different threads each bring their own. */
/* Opens one side of spec under the fleet's connection limits, waiting (up to two minutes)
 * for a slot when the account or server is busy. */
int planner_open_side(struct rq *q, struct event_base *base, const struct mh_seal_key *key,
		      const struct mh_job_spec *spec, enum mh_side side, const struct mh_conn_opts *co,
		      struct mh_conn *conn, struct mh_err *err);

int plan_job(struct rq *q, struct event_base *base, const struct mh_seal_key *key, const struct planner_opts *o,
	     const char *job_id, bool replan, struct mh_err *err);

#endif
