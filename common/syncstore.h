/* syncstore.h - what flag sync and delete propagation keep in Redis between a job's runs
 * (coordinator/flagsync.c does the IMAP side).
 *
 * Job hash: sync_opts (MH_SYNC_*), flags_updated and deleted (totals over every run).
 * Folder hash: src_modseq (the source's HIGHESTMODSEQ when the folder was last read: a
 * flag change since has a higher MODSEQ, RFC 7162) and src_sync_opts (what was looked at
 * then: a pass for flags alone does not look for deletions), src_messages (its message count then)
 * and src_uids (its UIDs then, as a uid-set: a UID missing now was expunged), and the
 * folder's flags_updated and deleted. The target copy of a source message is the UID in
 * its done entry (jobstore.c: "c<uid>" copied, "s<uid>" found there already; "c-"/"s-" once
 * a sync deleted that copy). */
#ifndef MH_SYNCSTORE_H
#define MH_SYNCSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct rq;

#define MH_SYNC_FLAGS 0x1u   /* apply source flag changes to the copies (--sync-flags) */
#define MH_SYNC_DELETES 0x2u /* delete copies of messages deleted on the source (--propagate-deletes) */

/* The options a job starts with, from its spec's MH_JOB_SYNC_FLAGS/MH_JOB_PROPAGATE_DELETES. */
unsigned mh_sync_opts_from_spec(uint32_t spec_flags);
int mh_job_sync_opts(struct rq *q, const char *job_id, unsigned *opts_r, struct mh_err *err);
int mh_job_set_sync_opts(struct rq *q, const char *job_id, unsigned opts, struct mh_err *err);
/* "flags, deletes", "flags", "deletes" or "off". */
const char *mh_sync_opts_describe(unsigned opts);

struct mh_folder_sync {
	uint64_t modseq;   /* 0: unknown (no CONDSTORE, or not recorded) */
	unsigned opts;     /* what nothing since modseq can have escaped: MH_SYNC_* of the pass
			    * that recorded it (a read of the whole folder covers both) */
	uint64_t messages;
	char *uids;        /* NULL: not recorded */
};
int mh_job_folder_sync_load(struct rq *q, const char *job_id, uint32_t folder_idx, struct mh_folder_sync *s,
			    struct mh_err *err);
/* Records s (a NULL uids keeps the recorded set). */
int mh_job_folder_sync_store(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_folder_sync *s,
			     struct mh_err *err);
void mh_folder_sync_cleanup(struct mh_folder_sync *s);

/* dst_r[i]: the target UID of source message src[i] of the folder, 0 when unknown (not
 * copied yet, failed, copied to a server without UIDPLUS, or its copy deleted). */
int mh_job_target_uids(struct rq *q, const char *job_id, uint32_t folder_idx, const uint32_t *src, size_t n,
		       uint32_t *dst_r, struct mh_err *err);
/* The same, and *unknown_r: how many of the messages have no copy the job knows of and did
 * not have their copy deleted by a sync (no result, failed, or a copy without UID). */
int mh_job_copy_uids(struct rq *q, const char *job_id, uint32_t folder_idx, const uint32_t *src, size_t n,
		     uint32_t *dst_r, size_t *unknown_r, struct mh_err *err);
/* The target copies of these source messages were deleted: their target UIDs are
 * forgotten (the messages stay done: never copied again) and counted as deleted. */
int mh_job_copies_deleted(struct rq *q, const char *job_id, uint32_t folder_idx, const uint32_t *src, size_t n,
			  struct mh_err *err);
/* n copies got their source's flags. */
int mh_job_count_flag_updates(struct rq *q, const char *job_id, uint32_t folder_idx, uint64_t n,
			      struct mh_err *err);

#endif
