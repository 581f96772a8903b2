/* flagsync.c - flag changes and deletions of copied messages (see flagsync.h). */
#include "flagsync.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "flagset.h"
#include "imap_client.h"
#include "imap_parser.h"
#include "log.h"
#include "uidsearch.h"
#include "uidset.h"
#include "wire.h"

/* UIDs per STORE, EXPUNGE or FETCH command: keeps command lines far below servers' limits */
#define FS_CMD_UIDS 500u
/* The most UIDs a recorded or announced set may expand to */
#define FS_MAX_UIDS (64u * 1024 * 1024)

struct uid_list {
	uint32_t *v;
	size_t n, cap;
};

static void uids_push(struct uid_list *l, uint32_t uid)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (l->v == NULL)
			abort();
	}
	l->v[l->n++] = uid;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static bool uids_has(const uint32_t *v, size_t n, uint32_t uid)
{
	return bsearch(&uid, v, n, sizeof(*v), cmp_u32) != NULL;
}

/* --- what a SELECT or EXAMINE says ------------------------------------------------------ */

struct box_state {
	uint64_t uidvalidity, modseq, exists;
};

static void on_select(void *ctx, const struct imap_response *r)
{
	struct box_state *b = ctx;

	if (r->status == IMAP_STATUS_OK && r->code != NULL && r->code_args != NULL) {
		if (strcmp(r->code, "UIDVALIDITY") == 0)
			imap_parse_number(r->code_args, strlen(r->code_args), UINT32_MAX, &b->uidvalidity);
		else if (strcmp(r->code, "HIGHESTMODSEQ") == 0)
			imap_parse_number(r->code_args, strlen(r->code_args), UINT64_MAX, &b->modseq);
	} else if (r->name != NULL && strcmp(r->name, "EXISTS") == 0 && r->has_number) {
		b->exists = r->number;
	}
}

/* SELECT or EXAMINE, with CONDSTORE when offered (for HIGHESTMODSEQ). 1, 0 refused, -1. */
static int open_box(struct event_base *base, struct imap_client *c, bool writable, const char *name,
		    struct box_state *b, struct mh_err *err)
{
	bool condstore = imap_client_has_cap(c, "CONDSTORE");
	int rc;

	memset(b, 0, sizeof(*b));
	if (writable)
		rc = condstore ? imap_client_run(base, c, on_select, NULL, b, err, "SELECT %s (CONDSTORE)", name)
			       : imap_client_run(base, c, on_select, NULL, b, err, "SELECT %s", name);
	else
		rc = condstore ? imap_client_run(base, c, on_select, NULL, b, err, "EXAMINE %s (CONDSTORE)", name)
			       : imap_client_run(base, c, on_select, NULL, b, err, "EXAMINE %s", name);
	/* a server may send HIGHESTMODSEQ without offering CONDSTORE (Dovecot does, once a
	 * mailbox has modseqs): without the capability CHANGEDSINCE and UNCHANGEDSINCE are not
	 * ours to use */
	if (!condstore)
		b->modseq = 0;
	return rc;
}

/* --- flags of messages ------------------------------------------------------------------- */

struct msg_flags {
	uint32_t uid;
	char *flags;
};

struct flags_list {
	struct msg_flags *v;
	size_t n, cap;
	uint32_t below; /* UIDs from here on are ignored */
};

static void on_flags(void *ctx, const struct imap_response *r)
{
	struct flags_list *l = ctx;
	const struct imap_arg *flags = imap_fetch_attr(r, "FLAGS");
	uint32_t uid = imap_fetch_uid(r);

	if (uid == 0 || flags == NULL || flags->type != IMAP_ARG_LIST || uid >= l->below)
		return;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (l->v == NULL)
			abort();
	}
	l->v[l->n++] = (struct msg_flags){uid, mh_flags_from_list(flags)};
}

static void flags_list_free(struct flags_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].flags);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int cmp_msg_flags(const void *a, const void *b)
{
	return cmp_u32(&((const struct msg_flags *)a)->uid, &((const struct msg_flags *)b)->uid);
}

static const struct msg_flags *flags_of(const struct flags_list *l, uint32_t uid)
{
	struct msg_flags probe = {uid, NULL};
	return bsearch(&probe, l->v, l->n, sizeof(*l->v), cmp_msg_flags);
}

/* --- the source: changed flags and UIDs still there ----------------------------------- */

/* The source UIDs below f->handled_below that are not marked \Deleted. */
static int source_present(struct event_base *base, struct imap_client *src, const struct flagsync_folder *f,
			  struct uid_list *present, struct mh_err *err)
{
	int rc = uid_search(base, src, f->handled_below, true, &present->v, &present->n, err);

	present->cap = present->n;
	return rc == 1 ? 0 : rc < 0 ? -1 : -2;
}

/* Source messages handled by earlier runs whose flags may have changed: those with a
 * MODSEQ above the recorded one, or all without CONDSTORE (or nothing usable recorded). */
static int source_flags(struct event_base *base, struct imap_client *src, const struct flagsync_folder *f,
			uint64_t modseq_now, struct flags_list *out, struct mh_err *err)
{
	int rc;

	out->below = f->handled_below;
	/* the recorded MODSEQ counts only if flags were looked at when it was taken (a pass
	 * for deletions alone did not) */
	if (f->known->modseq > 0 && modseq_now > 0 && (f->known->opts & MH_SYNC_FLAGS)) {
		if (modseq_now == f->known->modseq)
			return 0;
		rc = imap_client_run(base, src, on_flags, NULL, out, err, "UID FETCH 1:%u (UID FLAGS) (CHANGEDSINCE %U)",
				     (unsigned)(f->handled_below - 1), f->known->modseq);
	} else {
		rc = imap_client_run(base, src, on_flags, NULL, out, err, "UID FETCH 1:%u (UID FLAGS)",
				     (unsigned)(f->handled_below - 1));
	}
	if (rc <= 0)
		return rc < 0 ? -1 : -2;
	qsort(out->v, out->n, sizeof(*out->v), cmp_msg_flags);
	return 0;
}

/* --- the target -------------------------------------------------------------------------- */

struct store_ctx {
	struct uid_list modified;
};

static int modified_range(void *ctx, uint32_t lo, uint32_t hi)
{
	struct store_ctx *s = ctx;

	for (uint64_t u = lo; u <= hi && s->modified.n < FS_MAX_UIDS; u++)
		uids_push(&s->modified, (uint32_t)u);
	return 0;
}

/* "OK [MODIFIED 7,9] Conditional STORE failed" (RFC 7162 3.1.3) */
static void on_store_ok(void *ctx, const struct imap_response *r)
{
	if (r->code != NULL && strcmp(r->code, "MODIFIED") == 0 && r->code_args != NULL)
		imap_uid_set_walk(r->code_args, strlen(r->code_args), modified_range, ctx);
}

/* A command over many UIDs, FS_CMD_UIDS at a time: fmt is "UID VERB %a%a", given the
 * UID set and then tail (raw text after it, e.g. " +FLAGS.SILENT (\\Deleted)").
 * 0, -2 when the server refused it (err set), -1 when the connection failed. */
static int per_chunk(struct event_base *base, struct imap_client *c, const uint32_t *uids, size_t n,
		     imap_untagged_cb_t *untagged, imap_untagged_cb_t *tagged_ok, void *ctx, struct mh_err *err,
		     const char *fmt, const char *tail)
{
	for (size_t i = 0; i < n; i += FS_CMD_UIDS) {
		size_t k = n - i < FS_CMD_UIDS ? n - i : FS_CMD_UIDS;
		char *set = imap_uid_set_format(uids + i, k);
		int rc = imap_client_run_tagged(base, c, untagged, tagged_ok, ctx, err, fmt, set, tail);

		free(set);
		if (rc <= 0)
			return rc < 0 ? -1 : -2;
	}
	return 0;
}

struct change {
	uint32_t dst_uid;
	const char *flags; /* the source's */
};

static int cmp_change(const void *a, const void *b)
{
	const struct change *x = a, *y = b;
	int c = strcasecmp(x->flags, y->flags);
	return c != 0 ? c : cmp_u32(&x->dst_uid, &y->dst_uid);
}

/* Gives each copy its source's flags: one STORE per distinct set of flags. */
static int apply_flags(struct event_base *base, struct imap_client *dst, struct change *ch, size_t n,
		       uint64_t dst_modseq, struct flagsync_outcome *out, struct mh_err *err)
{
	struct flags_list now = {.below = UINT32_MAX};
	uint32_t *uids = calloc(n + 1, sizeof(*uids));
	size_t keep = 0;
	int rc;

	if (uids == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		uids[i] = ch[i].dst_uid;
	qsort(uids, n, sizeof(*uids), cmp_u32);
	rc = per_chunk(base, dst, uids, n, on_flags, NULL, &now, err, "UID FETCH %a%a", " (UID FLAGS)");
	if (rc < 0)
		goto out;
	qsort(now.v, now.n, sizeof(*now.v), cmp_msg_flags);
	for (size_t i = 0; i < n; i++) {
		const struct msg_flags *t = flags_of(&now, ch[i].dst_uid);
		char *want;

		if (t == NULL)
			continue; /* gone from the target: nothing to set */
		/* \Deleted is no flag to sync: on the source it is a deletion (propagated only
		 * with --propagate-deletes), on the target someone's, and stays as it is */
		want = mh_flags_with(ch[i].flags, "\\Deleted", mh_flags_has(t->flags, "\\Deleted"));
		if (!mh_flags_same(t->flags, want)) {
			/* canonical text, so that one STORE takes every copy with the same flags */
			char *canon = mh_flags_canonical(want);
			if (mh_imap_flags_valid(canon)) {
				ch[keep].dst_uid = ch[i].dst_uid;
				ch[keep++].flags = canon;
			} else {
				/* a server's atom we would not send on: it could break the command line */
				mh_warn("flagsync", "target UID %" PRIu32 ": flags not synced, not IMAP flags: %.80s",
					ch[i].dst_uid, canon);
				free(canon);
			}
		}
		free(want);
	}
	/* from here on ch[0..keep) own their flags */
	qsort(ch, keep, sizeof(*ch), cmp_change);
	for (size_t i = 0; i < keep && rc == 0;) {
		struct store_ctx s = {{0}};
		size_t j = i, m = 0;

		while (j < keep && strcasecmp(ch[j].flags, ch[i].flags) == 0)
			uids[m++] = ch[j++].dst_uid;
		{
			/* conditional with CONDSTORE: a copy changed on the target since we looked is kept */
			size_t tlen = strlen(ch[i].flags) + 64;
			char *tail = malloc(tlen);
			if (tail == NULL)
				abort();
			if (dst_modseq > 0)
				snprintf(tail, tlen, " (UNCHANGEDSINCE %" PRIu64 ") FLAGS.SILENT (%s)", dst_modseq, ch[i].flags);
			else
				snprintf(tail, tlen, " FLAGS.SILENT (%s)", ch[i].flags);
			rc = per_chunk(base, dst, uids, m, NULL, on_store_ok, &s, err, "UID STORE %a%a", tail);
			free(tail);
		}
		if (rc == 0) {
			out->conflicts += s.modified.n < m ? s.modified.n : m;
			out->flags_updated += m - (s.modified.n < m ? s.modified.n : m);
		}
		free(s.modified.v);
		i = j;
	}
	for (size_t i = 0; i < keep; i++)
		free((char *)ch[i].flags);
out:
	flags_list_free(&now);
	free(uids);
	return rc;
}

static int delete_copies(struct event_base *base, struct imap_client *dst, uint32_t *uids, size_t n,
			 struct mh_err *err)
{
	int rc;

	qsort(uids, n, sizeof(*uids), cmp_u32);
	rc = per_chunk(base, dst, uids, n, NULL, NULL, NULL, err, "UID STORE %a%a", " +FLAGS.SILENT (\\Deleted)");
	if (rc == 0 && imap_client_has_cap(dst, "UIDPLUS"))
		rc = per_chunk(base, dst, uids, n, NULL, NULL, NULL, err, "UID EXPUNGE %a%a", "");
	return rc;
}

/* --- one folder --------------------------------------------------------------------------- */

void flagsync_outcome_cleanup(struct flagsync_outcome *out)
{
	mh_folder_sync_cleanup(&out->now);
	memset(out, 0, sizeof(*out));
}

/* The source UIDs recorded at the last read and no longer there (or marked \Deleted). */
static int gone_from_source(const struct flagsync_folder *f, const struct uid_list *present, struct uid_list *gone,
			    struct mh_err *err)
{
	uint32_t *before;
	size_t n;

	if (imap_uid_set_parse(f->known->uids, strlen(f->known->uids), FS_MAX_UIDS, &before, &n) < 0)
		return mh_err_set(err, MH_E_INTERNAL, "the folder's recorded UIDs are malformed");
	for (size_t i = 0; i < n && before[i] < f->handled_below; i++)
		if (!uids_has(present->v, present->n, before[i]))
			uids_push(gone, before[i]);
	free(before);
	return 0;
}

int flagsync_folder(struct event_base *base, struct imap_client *src, struct imap_client *dst, struct rq *q,
		    const char *job_id, unsigned opts, const struct flagsync_folder *f, struct flagsync_outcome *out,
		    struct mh_err *err)
{
	struct box_state sb, db;
	struct flags_list changed = {0};
	struct uid_list present = {0}, gone = {0};
	uint32_t *src_uids = NULL, *dst_uids = NULL;
	struct change *ch = NULL;
	size_t nch = 0, nsrc = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	/* the source first: the HIGHESTMODSEQ it gives now is what the next run starts from */
	if ((rc = open_box(base, src, false, f->src_name, &sb, err)) <= 0) {
		if (rc < 0)
			return -1;
		out->left_alone = "the source folder cannot be opened";
		return 0;
	}
	if (sb.uidvalidity != f->src_uidvalidity) {
		out->left_alone = "the source folder was recreated (new UIDVALIDITY)";
		return 0;
	}
	out->now.modseq = sb.modseq;
	out->now.opts = opts;
	out->now.messages = sb.exists;
	if (f->handled_below <= 1 || sb.exists == 0) {
		if (f->handled_below > 1 && (opts & MH_SYNC_DELETES) && f->known->uids != NULL) {
			/* everything we copied was deleted */
			rc = gone_from_source(f, &present, &gone, err);
			if (rc < 0)
				goto out;
		}
		if ((out->now.uids = strdup("")) == NULL)
			abort();
	} else {
		if ((opts & MH_SYNC_FLAGS) && (rc = source_flags(base, src, f, sb.modseq, &changed, err)) < 0)
			goto source_failed;
		if (opts & MH_SYNC_DELETES) {
			if ((rc = source_present(base, src, f, &present, err)) < 0)
				goto source_failed;
			out->now.uids = imap_uid_set_format(present.v, present.n);
			if (f->known->uids == NULL)
				mh_info("flagsync", "%s: %s: no UIDs recorded yet: deletions are looked for from now on",
					job_id, f->src_name);
			else if ((rc = gone_from_source(f, &present, &gone, err)) < 0)
				goto out;
		}
	}

	/* which copies: changed flags first, then deletions */
	nsrc = changed.n + gone.n;
	if (nsrc == 0) {
		rc = 0;
		goto out;
	}
	src_uids = calloc(nsrc, sizeof(*src_uids));
	dst_uids = calloc(nsrc, sizeof(*dst_uids));
	ch = calloc(changed.n + 1, sizeof(*ch));
	if (src_uids == NULL || dst_uids == NULL || ch == NULL)
		abort();
	for (size_t i = 0; i < changed.n; i++)
		src_uids[i] = changed.v[i].uid;
	for (size_t i = 0; i < gone.n; i++)
		src_uids[changed.n + i] = gone.v[i];
	if ((rc = mh_job_target_uids(q, job_id, f->idx, src_uids, nsrc, dst_uids, err)) < 0)
		goto out;
	for (size_t i = 0; i < changed.n; i++) {
		if (dst_uids[i] == 0)
			out->unmapped++;
		else
			ch[nch++] = (struct change){dst_uids[i], changed.v[i].flags};
	}
	{
		/* the deleted ones with a copy, compacted in place */
		size_t k = 0;
		for (size_t i = 0; i < gone.n; i++) {
			if (dst_uids[changed.n + i] == 0)
				continue; /* none known (or deleted already): nothing to do */
			src_uids[changed.n + k] = gone.v[i];
			dst_uids[changed.n + k++] = dst_uids[changed.n + i];
		}
		gone.n = k;
	}
	if (nch == 0 && gone.n == 0) {
		rc = 0;
		goto out;
	}
	if (f->dst_uidvalidity == 0) {
		out->left_alone = "the target folder's UIDVALIDITY was not recorded (planned by an older version)";
		rc = 0;
		goto out;
	}
	if ((rc = open_box(base, dst, true, f->dst_name, &db, err)) <= 0) {
		if (rc == 0)
			out->left_alone = "the target folder cannot be opened";
		rc = rc < 0 ? -1 : 0;
		goto out;
	}
	if (db.uidvalidity != f->dst_uidvalidity) {
		out->left_alone = "the target folder was recreated (new UIDVALIDITY): its copies are not ours any more";
		rc = 0;
	} else {
		rc = nch > 0 ? apply_flags(base, dst, ch, nch, db.modseq, out, err) : 0;
		if (rc == 0 && gone.n > 0 && (rc = delete_copies(base, dst, dst_uids + changed.n, gone.n, err)) == 0) {
			out->deleted = gone.n;
			if (mh_job_copies_deleted(q, job_id, f->idx, src_uids + changed.n, gone.n, err) < 0)
				rc = -1;
		}
		if (rc == 0 && mh_job_count_flag_updates(q, job_id, f->idx, out->flags_updated, err) < 0)
			rc = -1;
		if (rc == -2) {
			mh_warn("flagsync", "%s: target folder %s: %s", job_id, f->dst_name, err->detail);
			out->left_alone = "the target refused a change (see the log)";
			rc = 0;
		}
	}
	/* out of read-write: a CLOSE would expunge what users marked \Deleted; selecting
	 * again read-only (no UNSELECT) expunges nothing */
	if (rc == 0 && (imap_client_has_cap(dst, "UNSELECT")
				? imap_client_run(base, dst, NULL, NULL, NULL, err, "UNSELECT")
				: imap_client_run(base, dst, NULL, NULL, NULL, err, "EXAMINE %s", f->dst_name)) < 0)
		rc = -1;
	goto out;

source_failed:
	if (rc == -2) {
		mh_warn("flagsync", "%s: source folder %s: %s", job_id, f->src_name, err->detail);
		out->left_alone = "the source refused a command (see the log)";
		rc = 0;
	}
out:
	if (rc == 0 && out->left_alone != NULL) {
		/* nothing recorded: the next run tries again from the same point */
		mh_folder_sync_cleanup(&out->now);
	}
	flags_list_free(&changed);
	free(present.v);
	free(gone.v);
	free(src_uids);
	free(dst_uids);
	free(ch);
	return rc < 0 ? -1 : 0;
}
