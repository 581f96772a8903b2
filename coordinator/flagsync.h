/* flagsync.h - a sync run's pass over the messages earlier runs copied, for one folder:
 * source flag changes are applied to their copies (--sync-flags), and copies of messages
 * deleted on the source are deleted on the target (--propagate-deletes).
 *
 * The source stays read-only (EXAMINE, FETCH FLAGS, SEARCH). With CONDSTORE on the source
 * only messages whose MODSEQ passed the one recorded at the last read are looked at
 * (CHANGEDSINCE, RFC 7162); without it every message's flags are compared. A copy gets
 * exactly its source's flags (\Recent aside); with CONDSTORE on the target the STORE is
 * conditional (UNCHANGEDSINCE the target's HIGHESTMODSEQ when we looked), so a change
 * made on the target meanwhile is not overwritten. Deletion takes only copies whose
 * source message is expunged or marked \Deleted: each is marked \Deleted and expunged by
 * UID (UID EXPUNGE, RFC 4315), never by a plain EXPUNGE that would take other messages
 * someone marked \Deleted on the target; without UIDPLUS the copies are only marked.
 * Copies are found by the target UID recorded with each message (syncstore.h); both
 * folders' UIDVALIDITY must be the one recorded, or the folder is left alone. */
#ifndef MH_FLAGSYNC_H
#define MH_FLAGSYNC_H

#include <stdint.h>

#include "err.h"
#include "syncstore.h"

struct event_base;
struct imap_client;
struct rq;

struct flagsync_folder {
	uint32_t idx;
	const char *src_name, *dst_name; /* as on the servers */
	uint32_t src_uidvalidity, dst_uidvalidity; /* as recorded; dst 0: unknown */
	uint32_t handled_below; /* source UIDs below this were planned by earlier runs */
	const struct mh_folder_sync *known; /* recorded at the last read */
};

struct flagsync_outcome {
	uint64_t flags_updated; /* copies whose flags were set */
	uint64_t conflicts;     /* copies changed on the target meanwhile: left as they are */
	uint64_t deleted;       /* copies deleted (or, without UIDPLUS, marked \Deleted) */
	uint64_t unmapped;      /* changed or deleted source messages without a known copy */
	struct mh_folder_sync now; /* to record: HIGHESTMODSEQ before the pass, the UIDs present */
	const char *left_alone; /* why the folder was not synced (static text), or NULL */
};

/* Runs the pass for one folder. The source connection ends with the folder EXAMINEd, the
 * target's with nothing selected (or, without UNSELECT, the folder selected read-only). 0 (see out->left_alone), or -1 when a connection or
 * Redis failed (err set). */
int flagsync_folder(struct event_base *base, struct imap_client *src, struct imap_client *dst, struct rq *q,
		    const char *job_id, unsigned opts, const struct flagsync_folder *f, struct flagsync_outcome *out,
		    struct mh_err *err);
void flagsync_outcome_cleanup(struct flagsync_outcome *out);

#endif
