/* copy_pop3.h - copies one batch of a POP3 source to its target folder.
 *
 * The source is only read (LIST, UIDL or TOP, RETR; never DELE or RSET). A batch names
 * messages by job-local ids (pop3store.h); this session's message numbers come from its
 * own listing. Each message is retrieved into memory (RETRs pipelined when the server
 * offers PIPELINING; a chunk holds at most COPY_APPEND_MAX_MSGS messages and
 * COPY_APPEND_MAX_BYTES, a large message alone), then appended (MULTIAPPEND when offered,
 * a refused MULTIAPPEND retried one by one) with the job's pop3_flags and an
 * INTERNALDATE from its headers (msgdate.h). The source account's dedup hash records a
 * message right after the target accepted it, before its result is reported; a message
 * that hash already holds is reported without copying (copied when this job recorded it,
 * else skipped), and an in-flight one is first looked for on the target (settle.h). */
#ifndef MH_COPY_POP3_H
#define MH_COPY_POP3_H

#include <stdbool.h>

#include "err.h"
#include "settle.h"
#include "wire.h"

struct event_base;
struct imap_client;
struct pop3_client;
struct rq;

struct copy_pop3_args {
	struct event_base *base;
	struct rq *q;
	const struct mh_job_spec *spec;
	struct pop3_client *src;
	struct imap_client *dst;
	const bool *inflight;                /* per batch message */
	struct settle_target target;         /* the target folder as planned */
	settle_claim_cb_t *claim;
	void *claim_ctx;
};

/* One result per message of b in res (res->count set). Returns 0 when both connections
 * are still usable, -1 (err set) when one must be dropped; results are filled either way. */
int copy_pop3_batch(const struct copy_pop3_args *a, const struct mh_batch *b, struct mh_batch_result *res,
		    struct mh_err *err);

#endif
