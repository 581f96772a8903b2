/* settle.h - before appending a message again, find the copy an earlier attempt made.
 *
 * An APPEND whose OK was never recorded (its worker was killed, or the connection broke
 * after the target had stored the message) leaves the message "in flight" (jobstore.h).
 * Appending it again could duplicate it, so the worker first looks in the target folder,
 * among the UIDs given out since the plan (older messages were there before us and the
 * planner's dedup has accounted for them). */
#ifndef MH_SETTLE_H
#define MH_SETTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "copy.h"
#include "err.h"
#include "wire.h"

/* Makes src_uid the owner of the first target UID of cands[] (ascending) that no other
 * message owns; *uid_r = that UID, or 0 when every one is taken. 0 or -1. */
typedef int settle_claim_cb_t(void *ctx, uint32_t src_uid, const uint32_t *cands, size_t n, uint32_t *uid_r,
			      struct mh_err *err);

struct settle_target {
	uint32_t uidvalidity; /* of the target folder when planned; 0: any */
	uint32_t uidnext;     /* our copies have UIDs from here on */
};

/* For each message i of b with inflight[i], looks for its copy in b's target folder:
 * candidates by Message-ID (SEARCH HEADER), or by size when it has none, confirmed by
 * comparing the whole header block. found_r[i] is the target UID claimed for it through
 * claim, or 0 when it must be appended. The source is only read (EXAMINE, BODY.PEEK); the
 * target folder is EXAMINEd and closed again. Returns 0, or -1 when a connection broke
 * (err set; found_r is then all 0). */
int settle_inflight(struct event_base *base, struct imap_client *src, struct imap_client *dst,
		    struct copy_source_state *src_state, const struct mh_batch *b, const bool *inflight,
		    const struct settle_target *target, settle_claim_cb_t *claim, void *claim_ctx, uint32_t *found_r,
		    struct mh_err *err);

/* The same for a source whose messages are already in memory (POP3): headers[i] is
 * message i's header block with its closing empty line, as BODY[HEADER] would give it
 * (header_lens[i] bytes), or NULL to leave message i alone. The source is not touched.
 * 0 or -1 as above. */
int settle_with_headers(struct event_base *base, struct imap_client *dst, const struct mh_batch *b,
			const bool *inflight, const char *const *headers, const size_t *header_lens,
			const struct settle_target *target, settle_claim_cb_t *claim, void *claim_ctx, uint32_t *found_r,
			struct mh_err *err);

#endif
