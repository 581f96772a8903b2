/* copy.h - copies one batch of messages from a source IMAP folder to a target folder.
 *
 * The source is only read: EXAMINE and UID FETCH ... BODY.PEEK[]. Bodies stream from the
 * source's FETCH literal straight into the target's APPEND literal (MULTIAPPEND of up to
 * COPY_APPEND_MAX_MSGS messages when offered, else pipelined APPENDs), so memory does not
 * grow with message size: when the target falls behind, reading from the source pauses. */
#ifndef MH_COPY_H
#define MH_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "wire.h"

struct event_base;
struct imap_client;

#define COPY_APPEND_MAX_MSGS 50
#define COPY_APPEND_MAX_BYTES (16u * 1024 * 1024)

/* What the source connection has selected, kept between batches of one job. */
struct copy_source_state {
	char *folder;
	uint32_t uidvalidity;
	uint32_t uidnext; /* at the EXAMINE: later messages are not in the session's view */
};
void copy_source_state_reset(struct copy_source_state *s);

/* EXAMINEs b's source folder unless state says it is selected, and checks that its
 * UIDVALIDITY is still the planned one. 0, or -1 (state is reset). */
int copy_select_source(struct event_base *base, struct imap_client *src, struct copy_source_state *state,
		       const struct mh_batch *b, struct mh_err *err);

/* Copies batch b (UIDs in any order). res->msgs gets one result per message of the batch,
 * in ascending UID order (res->count is set); failed ones carry their INTERNALDATE and
 * Subject (a SHA-256 fingerprint of it unless plain_subjects) for the failure ledger.
 * Returns 0 when both connections are still usable afterwards, -1 (err set) when at least
 * one of them must be dropped; per-message results are filled in either case. */
int copy_batch(struct event_base *base, struct imap_client *src, struct imap_client *dst,
	       struct copy_source_state *src_state, const struct mh_batch *b, bool plain_subjects,
	       struct mh_batch_result *res, struct mh_err *err);

/* A failed message's subject as the failure ledger keeps it: readable (sanitized) when
 * plain (--ledger-subjects), else "sha256:" and the first 12 hex digits of its hash. */
char *copy_ledger_subject(const char *subject, bool plain);

#endif
