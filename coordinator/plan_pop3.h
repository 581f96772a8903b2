/* plan_pop3.h - planning a job whose source is a POP3 maildrop.
 *
 * One virtual source folder, "POP3 INBOX", goes to one target folder (the job's
 * pop3_folder, else INBOX; created when missing). Steps: log in to the source (under its
 * fleet-wide lease, limit 1), LIST and UIDL (or the header-hash fallback, pop3_ident.h),
 * QUIT, so that the maildrop is free before any batch can be worked; give every message a
 * job-local id (kept in mh:job:<id>:pop3; a job planned again keeps them); messages whose
 * identity the source account's dedup hash already holds are recorded as skipped; the
 * rest go out in batches (uid = job-local id). The target folder is examined for the
 * summary's "before" count and for settle.c's UID range. */
#ifndef MH_PLAN_POP3_H
#define MH_PLAN_POP3_H

#include <stdbool.h>

#include "err.h"
#include "planner.h"
#include "seal.h"
#include "wire.h"

struct rq;
struct event_base;

/* The display name of the virtual source folder. */
#define MH_POP3_FOLDER_DISPLAY "POP3 INBOX"

/* Plans spec's job (the caller moved it to "planning" and ran the check). batch_msgs:
 * this target server's batch size. Sets the job's plan totals; the caller then marks it
 * planned. 0, or -1 with err (prefixed "source: " / "target: " for login problems). */
int plan_pop3(struct rq *q, struct event_base *base, const struct mh_seal_key *key, const struct planner_opts *o,
	      const struct mh_job_spec *spec, bool replan, unsigned batch_msgs, struct mh_err *err);

#endif
