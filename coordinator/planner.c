/* planner.c - folders, identities and batches of one job (see planner.h). */
#include "planner.h"

#include <event2/buffer.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "check.h"
#include "folder_map.h"
#include "flagsync.h"
#include "folders.h"
#include "imap_connect.h"
#include "imap_utf7.h"
#include "jobstore.h"
#include "log.h"
#include "msgheader.h"
#include "plan_pop3.h"
#include "rq.h"
#include "syncstore.h"
#include "uidsearch.h"
#include "uidset.h"
#include "wire.h"

#define PLAN_INLINE_MAX (32u * 1024)

struct plan_msg {
	uint32_t uid;
	uint32_t seq;
	uint64_t size;
	char *key; /* identity, or NULL until known */
};

struct plan_box {
	struct plan_msg *msgs; /* ascending UID (and so ascending sequence number) */
	size_t count, cap;
	uint32_t uidvalidity, uidnext;
	uint32_t exists;
	uint64_t modseq;       /* HIGHESTMODSEQ (EXAMINE with CONDSTORE), else 0 */
	bool want_modseq;      /* CONDSTORE offered: a HIGHESTMODSEQ means something */
	EVP_MD_CTX *hash;      /* header hash in progress */
	struct plan_msg *hashing;
};

struct plan_side {
	struct mh_conn conn;
	struct mh_side_folders f; /* NAMESPACE and LIST (folders.h) */
};

struct plan {
	struct rq *q;
	struct event_base *base;
	const struct planner_opts *opts;
	const char *job_id;
	struct plan_side src, dst;

	/* the command in flight */
	struct imap_cmd_handlers h;
	bool done, ok;
	struct mh_err cmd_err;
	struct plan_box *box;   /* EXAMINE/FETCH target */

	uint64_t total_msgs, total_bytes, batches;
	unsigned batch_msgs; /* this job's batch size (adaptive, per target server) */
	bool replan;         /* an earlier plan was interrupted: its batches may be out there */
	bool sync;           /* "sync now" (jobstore.h): folders unchanged since the last plan are not read */
	unsigned sync_opts;  /* MH_SYNC_* (syncstore.h): flag sync, delete propagation */
	uint32_t known_folders; /* folders the job had before this plan */
	struct flagsync_outcome pass_total; /* what this run's flag/delete passes did */
};

/* --- running one command to completion -------------------------------------------- */

static void plan_cmd_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct plan *p = ctx;

	(void)tagged;
	p->done = true;
	p->ok = err == NULL;
	if (err != NULL)
		p->cmd_err = *err;
}

static const struct imap_cmd_handlers *handlers(struct plan *p, imap_untagged_cb_t *u, imap_literal_cb_t *l)
{
	p->h.untagged = u;
	p->h.literal = l;
	p->h.done = plan_cmd_done;
	p->h.ctx = p;
	p->done = p->ok = false;
	mh_err_clear(&p->cmd_err);
	return &p->h;
}

/* Waits for the command queued by imap_client_cmd (whose return value is queued). */
static int wait_cmd(struct plan *p, int queued, struct mh_err *err)
{
	if (queued < 0) {
		*err = p->cmd_err;
		return -1;
	}
	if (imap_run_until(p->base, &p->done) < 0 && !p->done)
		return mh_err_set(err, MH_E_INTERNAL, "event loop ended while waiting for a reply");
	if (!p->ok) {
		*err = p->cmd_err;
		return -1;
	}
	return 0;
}

#define PLAN_CMD(p, side, u, l, err, ...)                                                                      \
	wait_cmd((p), imap_client_cmd((side)->conn.imap, handlers((p), (u), (l)), &(p)->cmd_err, __VA_ARGS__), \
		 (err))

/* --- NAMESPACE and LIST ---------------------------------------------------------------- */

static int list_folders(struct plan *p, struct plan_side *s, struct mh_err *err)
{
	return mh_side_folders_read(p->base, s->conn.imap, &s->f, err);
}

static void side_cleanup(struct plan_side *s)
{
	mh_side_folders_cleanup(&s->f);
	mh_conn_close(&s->conn);
	memset(s, 0, sizeof(*s));
}

/* --- message identities --------------------------------------------------------------- */

static void box_cleanup(struct plan_box *b)
{
	for (size_t i = 0; i < b->count; i++)
		free(b->msgs[i].key);
	free(b->msgs);
	if (b->hash != NULL)
		EVP_MD_CTX_free(b->hash);
	memset(b, 0, sizeof(*b));
}

static struct plan_msg *box_by_seq(struct plan_box *b, uint32_t seq)
{
	size_t lo = 0, hi = b->count;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (b->msgs[mid].seq < seq)
			lo = mid + 1;
		else if (b->msgs[mid].seq > seq)
			hi = mid;
		else
			return &b->msgs[mid];
	}
	return NULL;
}

static void on_ids(void *ctx, const struct imap_response *r)
{
	struct plan *p = ctx;
	struct plan_box *b = p->box;
	uint32_t uid = imap_fetch_uid(r);
	uint64_t size = 0;
	const struct imap_arg *hdr = imap_fetch_attr_prefix(r, "BODY[HEADER.FIELDS");
	struct plan_msg *m;

	if (uid == 0 || !r->has_number)
		return;
	imap_arg_number(imap_fetch_attr(r, "RFC822.SIZE"), UINT64_MAX, &size);
	if (b->count == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 256;
		b->msgs = realloc(b->msgs, b->cap * sizeof(*b->msgs));
		if (b->msgs == NULL)
			abort();
	}
	m = &b->msgs[b->count++];
	memset(m, 0, sizeof(*m));
	m->uid = uid;
	m->seq = r->number;
	m->size = size;
	if (hdr != NULL && (hdr->type == IMAP_ARG_LITERAL || hdr->type == IMAP_ARG_STRING)) {
		char *id = mh_header_message_id(hdr->str, hdr->len);
		if (id != NULL) {
			size_t n = strlen(id) + 3;
			m->key = malloc(n);
			if (m->key == NULL)
				abort();
			snprintf(m->key, n, "M:%s", id);
			free(id);
		}
	}
}

static void on_header_literal(void *ctx, enum imap_ev kind, const struct imap_event *ev, struct evbuffer *in)
{
	struct plan *p = ctx;
	struct plan_box *b = p->box;

	if (kind == IMAP_EV_LITERAL_BEGIN) {
		b->hashing = NULL;
		if (ev->resp != NULL && ev->resp->has_number && ev->literal_key != NULL &&
		    strcmp(ev->literal_key, "BODY[HEADER]") == 0)
			b->hashing = box_by_seq(b, ev->resp->number);
		if (b->hashing != NULL && b->hashing->key == NULL)
			EVP_DigestInit_ex(b->hash, EVP_sha256(), NULL);
		else
			b->hashing = NULL;
	} else if (kind == IMAP_EV_LITERAL_DATA) {
		size_t left = ev->len;
		while (left > 0) {
			char buf[16384], out[16384];
			size_t n = left < sizeof(buf) ? left : sizeof(buf), o = 0;
			evbuffer_remove(in, buf, n);
			left -= n;
			if (b->hashing == NULL)
				continue;
			/* CRs are left out so that a server storing LF-only text matches */
			for (size_t i = 0; i < n; i++)
				if (buf[i] != '\r')
					out[o++] = buf[i];
			EVP_DigestUpdate(b->hash, out, o);
		}
	} else if (kind == IMAP_EV_LITERAL_END && b->hashing != NULL) {
		unsigned char md[32];
		unsigned int mdlen = 0;
		char key[128];
		int o;

		EVP_DigestFinal_ex(b->hash, md, &mdlen);
		o = snprintf(key, sizeof(key), "H:%" PRIu64 ":", b->hashing->size);
		for (unsigned i = 0; i < mdlen && o + 3 < (int)sizeof(key); i++)
			o += snprintf(key + o, sizeof(key) - (size_t)o, "%02x", md[i]);
		b->hashing->key = strdup(key);
		b->hashing = NULL;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_msg_uid(const void *a, const void *b)
{
	return cmp_u32(&((const struct plan_msg *)a)->uid, &((const struct plan_msg *)b)->uid);
}

static void on_examine(void *ctx, const struct imap_response *r)
{
	struct plan *p = ctx;
	uint64_t v;

	if (r->status == IMAP_STATUS_OK && r->code != NULL && strcmp(r->code, "UIDVALIDITY") == 0 &&
	    imap_parse_number(r->code_args, strlen(r->code_args), UINT32_MAX, &v) == 0)
		p->box->uidvalidity = (uint32_t)v;
	else if (r->status == IMAP_STATUS_OK && r->code != NULL && strcmp(r->code, "UIDNEXT") == 0 &&
		 imap_parse_number(r->code_args, strlen(r->code_args), UINT32_MAX, &v) == 0)
		p->box->uidnext = (uint32_t)v;
	else if (r->status == IMAP_STATUS_OK && r->code != NULL && strcmp(r->code, "HIGHESTMODSEQ") == 0 &&
		 imap_parse_number(r->code_args, strlen(r->code_args), UINT64_MAX, &v) == 0 && p->box->want_modseq)
		p->box->modseq = v;
	else if (r->name != NULL && strcmp(r->name, "EXISTS") == 0 && r->has_number)
		p->box->exists = r->number;
}

/* EXAMINE: the folder's UIDVALIDITY, UIDNEXT, size (and HIGHESTMODSEQ, for flag sync). */
static int examine_box(struct plan *p, struct plan_side *s, const char *folder, struct plan_box *b,
		       struct mh_err *err)
{
	memset(b, 0, sizeof(*b));
	p->box = b;
	/* a job that syncs flags records the source's HIGHESTMODSEQ: later runs look only at
	 * messages changed since */
	if (s == &p->src && p->sync_opts != 0 && imap_client_has_cap(s->conn.imap, "CONDSTORE")) {
		b->want_modseq = true;
		return PLAN_CMD(p, s, on_examine, NULL, err, "EXAMINE %s (CONDSTORE)", folder);
	}
	return PLAN_CMD(p, s, on_examine, NULL, err, "EXAMINE %s", folder);
}

/* Learns the UID, size and identity of the EXAMINEd folder's messages: those of uids[0..n)
 * (in sets of FETCH_UIDS), or with uids NULL every one from UID `from` on. */
#define FETCH_UIDS 500u
static int fetch_ids(struct plan *p, struct plan_side *s, struct plan_box *b, const uint32_t *uids, size_t n,
		     uint32_t from, struct mh_err *err)
{
	uint32_t *need;
	size_t nneed = 0, keep = 0;
	int rc = 0;

	p->box = b;
	if (uids == NULL) {
		if (b->exists == 0)
			return 0;
		rc = PLAN_CMD(p, s, on_ids, NULL, err,
			      "UID FETCH %u:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])", (unsigned)from);
	}
	for (size_t i = 0; uids != NULL && i < n && rc == 0; i += FETCH_UIDS) {
		char *set = imap_uid_set_format(uids + i, n - i < FETCH_UIDS ? n - i : FETCH_UIDS);
		rc = PLAN_CMD(p, s, on_ids, NULL, err, "UID FETCH %a (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
			      set);
		free(set);
	}
	if (rc < 0)
		return -1;
	qsort(b->msgs, b->count, sizeof(*b->msgs), cmp_msg_uid);
	/* "n:*" also names the last message when it is below n */
	for (size_t i = 0; i < b->count; i++) {
		if (b->msgs[i].uid >= from)
			b->msgs[keep++] = b->msgs[i];
		else
			free(b->msgs[i].key);
	}
	b->count = keep;

	/* Messages without a Message-ID: identity from size and header hash. */
	need = calloc(b->count + 1, sizeof(*need));
	if (need == NULL)
		abort();
	for (size_t i = 0; i < b->count; i++)
		if (b->msgs[i].key == NULL)
			need[nneed++] = b->msgs[i].uid;
	if (nneed > 0) {
		char *set = imap_uid_set_format(need, nneed);
		b->hash = EVP_MD_CTX_new();
		if (b->hash == NULL)
			abort();
		imap_client_set_inline_max(s->conn.imap, 0);
		rc = PLAN_CMD(p, s, NULL, on_header_literal, err, "UID FETCH %a (BODY.PEEK[HEADER])", set);
		imap_client_set_inline_max(s->conn.imap, PLAN_INLINE_MAX);
		free(set);
	}
	free(need);
	/* A message whose header could not be read still needs an identity of its own. */
	for (size_t i = 0; rc == 0 && i < b->count; i++) {
		if (b->msgs[i].key == NULL) {
			char key[64];
			snprintf(key, sizeof(key), "U:%" PRIu32, b->msgs[i].uid);
			b->msgs[i].key = strdup(key);
		}
	}
	return rc;
}

/* EXAMINEs folder and learns every message's UID, size and identity. */
static int read_box(struct plan *p, struct plan_side *s, const char *folder, struct plan_box *b, struct mh_err *err)
{
	if (examine_box(p, s, folder, b, err) < 0)
		return -1;
	return fetch_ids(p, s, b, NULL, 0, 1, err);
}

/* --- multiset difference and batches -------------------------------------------------- */

struct key_count {
	const char *key;
	size_t first, count; /* the target messages with this key: byk[first .. first + count) */
};

static int cmp_key_count(const void *a, const void *b)
{
	return strcmp(((const struct key_count *)a)->key, ((const struct key_count *)b)->key);
}

/* by key, then UID: the oldest target copy stands for the first source message */
static int cmp_msg_key(const void *a, const void *b)
{
	const struct plan_msg *x = *(const struct plan_msg *const *)a, *y = *(const struct plan_msg *const *)b;
	int c = strcmp(x->key, y->key);
	return c != 0 ? c : cmp_u32(&x->uid, &y->uid);
}

/* Sets found[i] to the target UID of a copy of source message i when the target holds
 * one (a multiset: each target message stands for one source message). */
static void mark_present(const struct plan_box *src, const struct plan_box *dst, uint32_t *found)
{
	const struct plan_msg **byk;
	struct key_count *counts;
	size_t ndistinct = 0;

	if (dst->count == 0)
		return;
	byk = calloc(dst->count, sizeof(*byk));
	counts = calloc(dst->count, sizeof(*counts));
	if (byk == NULL || counts == NULL)
		abort();
	for (size_t i = 0; i < dst->count; i++)
		byk[i] = &dst->msgs[i];
	qsort(byk, dst->count, sizeof(*byk), cmp_msg_key);
	for (size_t i = 0; i < dst->count; i++) {
		if (ndistinct > 0 && strcmp(counts[ndistinct - 1].key, byk[i]->key) == 0)
			counts[ndistinct - 1].count++;
		else
			counts[ndistinct++] = (struct key_count){byk[i]->key, i, 1};
	}
	for (size_t i = 0; i < src->count; i++) {
		struct key_count probe = {src->msgs[i].key, 0, 0};
		struct key_count *kc = bsearch(&probe, counts, ndistinct, sizeof(*counts), cmp_key_count);
		if (kc != NULL && kc->count > 0) {
			found[i] = byk[kc->first++]->uid;
			kc->count--;
		}
	}
	free(byk);
	free(counts);
}

static int publish_batch(struct plan *p, struct mh_batch *b, struct mh_err *err)
{
	struct mh_bytes enc = {0};
	int rc;

	if (mh_job_next_batch_id(p->q, p->job_id, &b->batch_id, err) < 0 || mh_batch_encode(b, &enc, err) < 0)
		return -1;
	rc = rq_xadd(p->q, MH_STREAM_BATCHES, "b", enc.data, enc.len, NULL, err);
	mh_bytes_free(&enc);
	p->batches++;
	b->count = 0;
	return rc;
}

/* Planning again after an interrupted plan: what the first plan's batches already did
 * must not be redone or miscounted. A message with a result is left alone; one in
 * flight (a worker may have appended it) goes into a batch even when the target seems
 * to hold it already, so that its worker looks for that copy (settle.c) and counts it
 * as copied, not as skipped. */
static int settled_by_earlier_plan(struct plan *p, uint32_t idx, const struct plan_box *src,
				   enum mh_msg_mark *marks, struct mh_err *err)
{
	struct mh_batch_msg *msgs = calloc(src->count + 1, sizeof(*msgs));
	int rc;

	if (msgs == NULL)
		abort();
	for (size_t i = 0; i < src->count; i++)
		msgs[i] = (struct mh_batch_msg){src->msgs[i].uid, src->msgs[i].size};
	rc = mh_job_msg_marks(p->q, p->job_id, idx, msgs, src->count, marks, err);
	free(msgs);
	return rc;
}

static int plan_folder_batches(struct plan *p, uint32_t idx, const struct mh_side_folder *sf, const char *dst_name,
			       const struct plan_box *src, const uint32_t *found, struct mh_err *err)
{
	const struct planner_opts *o = p->opts;
	struct mh_batch b = {0};
	struct mh_msg_result *skipped;
	enum mh_msg_mark *marks;
	size_t nskipped = 0;
	uint64_t bytes = 0;
	int rc = 0;

	b.job_id = (char *)p->job_id;
	b.folder_idx = idx;
	b.src_folder = sf->name;
	b.dst_folder = (char *)dst_name;
	b.src_uidvalidity = src->uidvalidity;
	b.msgs = calloc(p->batch_msgs + 1, sizeof(*b.msgs));
	skipped = calloc(src->count + 1, sizeof(*skipped));
	marks = calloc(src->count + 1, sizeof(*marks)); /* all MH_MARK_NEW */
	if (b.msgs == NULL || skipped == NULL || marks == NULL)
		abort();

	if (p->replan && settled_by_earlier_plan(p, idx, src, marks, err) < 0)
		rc = -1;
	for (size_t i = 0; i < src->count && rc == 0; i++) {
		const struct plan_msg *m = &src->msgs[i];

		if (marks[i] == MH_MARK_DONE)
			continue;
		if (found[i] != 0 && marks[i] == MH_MARK_NEW) {
			/* with its copy's UID: a flag sync finds the copy by it */
			skipped[nskipped++] = (struct mh_msg_result){
				.uid = m->uid, .status = MH_MSG_SKIPPED, .dst_uid = found[i], .bytes = m->size};
			continue;
		}
		if (m->size >= o->large_msg_bytes) {
			struct mh_batch alone = b;
			struct mh_batch_msg one = {m->uid, m->size};
			alone.msgs = &one;
			alone.count = 1;
			rc = publish_batch(p, &alone, err);
			continue;
		}
		if (b.count > 0 && (b.count >= p->batch_msgs || bytes + m->size > o->batch_max_bytes)) {
			rc = publish_batch(p, &b, err);
			bytes = 0;
		}
		b.msgs[b.count++] = (struct mh_batch_msg){m->uid, m->size};
		bytes += m->size;
	}
	if (rc == 0 && b.count > 0)
		rc = publish_batch(p, &b, err);
	if (rc == 0 && nskipped > 0)
		rc = mh_job_record_results(p->q, p->job_id, idx, 0, skipped, nskipped, NULL, err);
	free(b.msgs);
	free(skipped);
	free(marks);
	return rc;
}

/* --- folders ------------------------------------------------------------------------- */

struct folder_status {
	uint64_t uidnext, uidvalidity, messages, modseq;
};

static void on_status(void *ctx, const struct imap_response *r)
{
	struct folder_status *st = ctx;
	const struct imap_arg *list;

	if (r->name == NULL || strcmp(r->name, "STATUS") != 0 || r->count < 2 || r->args[1].type != IMAP_ARG_LIST)
		return;
	list = &r->args[1];
	for (size_t i = 0; i + 1 < list->count; i += 2) {
		if (imap_arg_is(&list->items[i], "UIDNEXT"))
			imap_arg_number(&list->items[i + 1], UINT32_MAX, &st->uidnext);
		else if (imap_arg_is(&list->items[i], "UIDVALIDITY"))
			imap_arg_number(&list->items[i + 1], UINT32_MAX, &st->uidvalidity);
		else if (imap_arg_is(&list->items[i], "MESSAGES"))
			imap_arg_number(&list->items[i + 1], UINT32_MAX, &st->messages);
		else if (imap_arg_is(&list->items[i], "HIGHESTMODSEQ"))
			imap_arg_number(&list->items[i + 1], UINT64_MAX, &st->modseq);
	}
}

/* CREATE, then the new folder's UIDVALIDITY and UIDNEXT into b: a flag sync must know
 * the folder its copies' UIDs belong to. */
static int create_folder(struct plan *p, const char *name, struct plan_box *b, struct mh_err *err)
{
	struct folder_status st = {0};

	/* somebody (another run, the server's autocreate) may have been first: fine */
	if (PLAN_CMD(p, &p->dst, NULL, NULL, err, "CREATE %s", name) < 0 &&
	    !(err->code == MH_E_FOLDER_CREATE && strstr(err->detail, "ALREADYEXISTS") != NULL))
		return -1;
	if (imap_client_run(p->base, p->dst.conn.imap, on_status, NULL, &st, err, "STATUS %s (UIDNEXT UIDVALIDITY)",
			    name) < 0)
		return -1;
	b->uidvalidity = (uint32_t)st.uidvalidity;
	b->uidnext = (uint32_t)st.uidnext;
	return 0;
}

/* INBOX first, then by name: the order folders are copied in. */
static int cmp_folder(const void *a, const void *b)
{
	const struct mh_folder *x = a, *y = b;
	int xi = strcasecmp(x->name, "INBOX") == 0, yi = strcasecmp(y->name, "INBOX") == 0;

	if (xi != yi)
		return yi - xi;
	return strcmp(x->name, y->name);
}

/* --- sync: what changed since the last plan ------------------------------------------- */

enum folder_change { FOLDER_NEW, FOLDER_UNCHANGED, FOLDER_GREW, FOLDER_RENUMBERED };

/* What an earlier plan recorded of a folder, read once per sync plan. */
struct known_folder {
	char *src_raw, *dst_raw;
	uint32_t uidvalidity, dst_uidvalidity;
	struct mh_folder_sync sync; /* what flag sync recorded (syncstore.h) */
	uint64_t src_uidnext; /* the next source UID when last planned */
	uint64_t messages, bytes; /* what earlier plans counted in the folder */
	bool settled;         /* every message has a result (a sync may have taken failures
			       * out to try them again: then it is read even if unchanged) */
};

static void known_free(struct known_folder *k, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		free(k[i].src_raw);
		free(k[i].dst_raw);
		mh_folder_sync_cleanup(&k[i].sync);
	}
	free(k);
}

static int known_load(struct plan *p, struct known_folder **known_r, struct mh_err *err)
{
	static const char *const fields[] = {"src_uidnext", "messages", "copied", "skipped", "failed", "bytes"};
	struct known_folder *k = calloc(p->known_folders + 1, sizeof(*k));

	if (k == NULL)
		abort();
	for (uint32_t i = 0; i < p->known_folders; i++) {
		struct mh_folder_ref f;
		uint64_t v[6] = {0};

		if (mh_job_load_folder(p->q, p->job_id, i, &f, err) < 0) {
			known_free(k, i);
			return -1;
		}
		k[i].src_raw = f.src_raw;
		k[i].dst_raw = f.dst_raw;
		k[i].uidvalidity = f.uidvalidity;
		k[i].dst_uidvalidity = f.dst_uidvalidity;
		f.src_raw = f.dst_raw = NULL;
		mh_folder_ref_cleanup(&f);
		if (mh_job_folder_sync_load(p->q, p->job_id, i, &k[i].sync, err) < 0) {
			known_free(k, i + 1);
			return -1;
		}
		if (mh_job_folder_get_counts(p->q, p->job_id, i, fields, 6, v, err) < 0) {
			known_free(k, i + 1);
			return -1;
		}
		k[i].src_uidnext = v[0];
		k[i].messages = v[1];
		k[i].bytes = v[5];
		k[i].settled = v[2] + v[3] + v[4] >= v[1];
	}
	*known_r = k;
	return 0;
}

/* Where a source folder stands against the job's earlier plans: *idx_r is its folder
 * index (a new one for a new folder, or for one whose UIDVALIDITY changed: its old UIDs
 * mean nothing any more, and its old results stay with the old index). One STATUS. */
static int folder_change(struct plan *p, const struct known_folder *known, const char *name, uint32_t *next_idx,
			 uint32_t *idx_r, enum folder_change *change_r, struct folder_status *status_r, struct mh_err *err)
{
	struct folder_status st = {0};

	for (uint32_t i = 0; i < p->known_folders; i++) {
		int rc;

		if (strcmp(known[i].src_raw, name) != 0)
			continue;
		/* with flag sync, a change of flags (MODSEQ) or an expunge (count) matters too */
		if (p->sync_opts == 0)
			rc = imap_client_run(p->base, p->src.conn.imap, on_status, NULL, &st, err,
					     "STATUS %s (UIDNEXT UIDVALIDITY)", name);
		else if (imap_client_has_cap(p->src.conn.imap, "CONDSTORE"))
			rc = imap_client_run(p->base, p->src.conn.imap, on_status, NULL, &st, err,
					     "STATUS %s (UIDNEXT UIDVALIDITY MESSAGES HIGHESTMODSEQ)", name);
		else
			rc = imap_client_run(p->base, p->src.conn.imap, on_status, NULL, &st, err,
					     "STATUS %s (UIDNEXT UIDVALIDITY MESSAGES)", name);
		if (rc <= 0)
			return -1;
		*status_r = st;
		if (st.uidvalidity != known[i].uidvalidity) {
			*idx_r = (*next_idx)++;
			*change_r = FOLDER_RENUMBERED;
		} else {
			*idx_r = i;
			*change_r = st.uidnext != 0 && st.uidnext == known[i].src_uidnext && known[i].settled
					    ? FOLDER_UNCHANGED
					    : FOLDER_GREW;
		}
		return 0;
	}
	*idx_r = (*next_idx)++;
	*change_r = FOLDER_NEW;
	return 0;
}

/* The job's totals over every folder it ever planned (a sync leaves some unread). */
static int sum_folders(struct plan *p, uint32_t folders, struct mh_err *err)
{
	p->total_msgs = p->total_bytes = 0;
	for (uint32_t i = 0; i < folders; i++) {
		static const char *const fields[] = {"messages", "bytes"};
		uint64_t v[2];

		if (mh_job_folder_get_counts(p->q, p->job_id, i, fields, 2, v, err) < 0)
			return -1;
		p->total_msgs += v[0];
		p->total_bytes += v[1];
	}
	return 0;
}

/* Whether a folder earlier runs copied needs a flag/delete pass (flagsync.h): always
 * without CONDSTORE (nothing tells what changed), else when its HIGHESTMODSEQ or its
 * message count (an expunge) moved since recorded, or when an option is on that the
 * recorded state did not cover (deletions after a pass for flags alone). */
static bool pass_needed(const struct plan *p, const struct known_folder *k, const struct folder_status *st)
{
	if (p->sync_opts == 0)
		return false;
	if (k->sync.modseq == 0 || st->modseq == 0 || (p->sync_opts & ~k->sync.opts) != 0)
		return true;
	return st->modseq != k->sync.modseq || st->messages != k->sync.messages;
}

/* The pass over one folder; *modseq_r is the source MODSEQ to record when the folder is
 * read next: the pass's when it ran, the old one when it could not (tried again next run). */
static int run_pass(struct plan *p, uint32_t idx, const struct known_folder *k, uint64_t *modseq_r,
		    unsigned *opts_r, struct mh_err *err)
{
	struct flagsync_folder f = {idx, k->src_raw, k->dst_raw, k->uidvalidity, k->dst_uidvalidity,
				    (uint32_t)k->src_uidnext, &k->sync};
	struct flagsync_outcome o;
	struct flagsync_outcome *t = &p->pass_total;
	char *disp;
	int rc = 0;

	if (flagsync_folder(p->base, p->src.conn.imap, p->dst.conn.imap, p->q, p->job_id, p->sync_opts, &f, &o,
			    err) < 0)
		return -1;
	disp = mh_folder_display_name(k->src_raw);
	t->flags_updated += o.flags_updated;
	t->conflicts += o.conflicts;
	t->deleted += o.deleted;
	t->unmapped += o.unmapped;
	if (o.left_alone != NULL) {
		char text[MH_ERR_DETAIL_MAX];
		mh_warn("planner", "%s: flag sync of %s left for the next run: %s", p->job_id, disp, o.left_alone);
		snprintf(text, sizeof(text), "flag sync of folder %s left for the next run: %s", disp, o.left_alone);
		rc = mh_job_set_warning(p->q, p->job_id, text, err);
		*modseq_r = k->sync.modseq;
		*opts_r = k->sync.opts;
	} else {
		if (o.flags_updated + o.deleted + o.conflicts + o.unmapped > 0)
			mh_info("planner",
				"%s: %s: %" PRIu64 " copies got their source's flags, %" PRIu64 " deleted, %" PRIu64
				" changed on the target meanwhile (kept), %" PRIu64 " without a known copy",
				p->job_id, disp, o.flags_updated, o.deleted, o.conflicts, o.unmapped);
		*modseq_r = o.now.modseq;
		*opts_r = o.now.opts;
		rc = mh_job_folder_sync_store(p->q, p->job_id, idx, &o.now, err);
	}
	free(disp);
	flagsync_outcome_cleanup(&o);
	return rc;
}

/* What a later flag sync compares with: the source folder's MODSEQ, message count and
 * UIDs as read now (or, after a pass in this run, the pass's MODSEQ); older: the UIDs of
 * the messages a partial read (read_grown) left out. */
static int record_source_state(struct plan *p, uint32_t idx, const uint32_t *older, size_t nolder,
			       const struct plan_box *b, const uint64_t *keep_modseq, unsigned keep_opts, struct mh_err *err)
{
	uint32_t *uids = calloc(nolder + b->count + 1, sizeof(*uids));
	struct mh_folder_sync st = {.modseq = keep_modseq != NULL ? *keep_modseq : b->modseq,
				    .opts = keep_opts,
				    .messages = b->exists};
	int rc;

	if (uids == NULL)
		abort();
	/* older (a part read: the earlier messages still there) are below b's, both ascending */
	if (nolder > 0)
		memcpy(uids, older, nolder * sizeof(*uids));
	for (size_t i = 0; i < b->count; i++)
		uids[nolder + i] = b->msgs[i].uid;
	st.uids = imap_uid_set_format(uids, nolder + b->count);
	rc = mh_job_folder_sync_store(p->q, p->job_id, idx, &st, err);
	free(uids);
	mh_folder_sync_cleanup(&st);
	return rc;
}

/* A sync's read of a folder that only grew since the last run (same UIDVALIDITY, every
 * message with a result): not every message again, but the new source messages (UIDs from
 * the recorded src_uidnext on), and on the target only the messages that no source message
 * still there accounts for (its recorded copy, or the one it was found as). Compared with
 * those alone, the multiset comparison gives what a full read would: a new message
 * identical to an old one is copied, one delivered to the target too is skipped.
 * present_r: the old source UIDs still there. 1 done; 0 when the records do not allow it
 * (a copy whose target UID is unknown, a failure, no recorded UIDs): read the folder in
 * full then; -1 on error. */
static int read_grown(struct plan *p, uint32_t idx, const struct known_folder *k, const char *src_name,
		      const char *dst_name, struct plan_box *sbox, struct plan_box *dbox, uint32_t **present_r,
		      size_t *npresent_r, struct mh_err *err)
{
	uint32_t *present = NULL, *copies = NULL, *all = NULL, *spare = NULL;
	size_t npresent = 0, nall = 0, unknown = 0, nspare = 0;
	int rc;

	*present_r = NULL;
	*npresent_r = 0;
	if (!k->settled || k->sync.uids == NULL || k->src_uidnext <= 1 || k->src_uidnext > UINT32_MAX ||
	    strcmp(k->dst_raw, dst_name) != 0 || mh_side_folders_find(&p->dst.f, dst_name) == NULL) {
		mh_info("planner", "%s: %s is read in full (%s)", p->job_id, src_name,
			!k->settled ? "messages without a result" : k->sync.uids == NULL ? "no UIDs recorded"
								: "its target folder changed");
		return 0;
	}
	if (examine_box(p, &p->src, src_name, sbox, err) < 0)
		return -1;
	rc = uid_search(p->base, p->src.conn.imap, (uint32_t)k->src_uidnext, false, &present, &npresent, err);
	if (rc <= 0)
		return rc < 0 ? -1 : 0;
	copies = calloc(npresent + 1, sizeof(*copies));
	if (copies == NULL)
		abort();
	if (mh_job_copy_uids(p->q, p->job_id, idx, present, npresent, copies, &unknown, err) < 0) {
		rc = -1;
		goto out;
	}
	if (unknown > 0) {
		/* some copy cannot be told apart from other target messages */
		mh_info("planner", "%s: %s is read in full (%zu copies without a known target UID)", p->job_id, src_name,
			unknown);
		rc = 0;
		goto out;
	}
	if (fetch_ids(p, &p->src, sbox, NULL, 0, (uint32_t)k->src_uidnext, err) < 0) {
		rc = -1;
		goto out;
	}
	/* the target: every UID, less those of the copies */
	if (examine_box(p, &p->dst, dst_name, dbox, err) < 0) {
		rc = -1;
		goto out;
	}
	rc = dbox->uidnext > 0 ? uid_search(p->base, p->dst.conn.imap, dbox->uidnext, false, &all, &nall, err) : 0;
	if (rc <= 0) {
		rc = rc < 0 ? -1 : 0;
		goto out;
	}
	qsort(copies, npresent, sizeof(*copies), cmp_u32);
	spare = calloc(nall + 1, sizeof(*spare));
	if (spare == NULL)
		abort();
	for (size_t i = 0; i < nall; i++)
		if (bsearch(&all[i], copies, npresent, sizeof(*copies), cmp_u32) == NULL)
			spare[nspare++] = all[i];
	rc = nspare > 0 && fetch_ids(p, &p->dst, dbox, spare, nspare, 1, err) < 0 ? -1 : 1;
	if (rc == 1) {
		mh_info("planner", "%s: %s grew: %zu new messages read, %zu of %zu target messages unaccounted for",
			p->job_id, src_name, sbox->count, nspare, nall);
		*present_r = present;
		*npresent_r = npresent;
		present = NULL;
	}
out:
	free(present);
	free(copies);
	free(all);
	free(spare);
	return rc;
}

static int plan_folders(struct plan *p, struct mh_err *err)
{
	struct mh_folder *src = calloc(p->src.f.count + 1, sizeof(*src));
	struct mh_folder *dst = calloc(p->dst.f.count + 1, sizeof(*dst));
	struct mh_namespace src_ns = {p->src.f.ns_prefix, p->src.f.ns_sep};
	struct mh_namespace dst_ns = {p->dst.f.ns_prefix, p->dst.f.ns_sep};
	size_t nsrc = 0;
	uint32_t idx = 0, next_idx = p->known_folders;
	struct known_folder *known = NULL;
	size_t unchanged = 0;
	int rc = 0;

	if (src == NULL || dst == NULL)
		abort();
	if (p->sync && known_load(p, &known, err) < 0) {
		free(src);
		free(dst);
		return -1;
	}
	for (size_t i = 0; i < p->src.f.count; i++) {
		const struct mh_side_folder *f = &p->src.f.items[i];
		unsigned special = f->special;
		if (f->noselect)
			continue;
		if (special == 0) {
			/* servers without SPECIAL-USE: recognise "Sent Items" and friends by name */
			char *utf8 = mh_folder_display_name(f->name);
			special = mh_special_use_guess(utf8);
			free(utf8);
		}
		src[nsrc++] = (struct mh_folder){f->name, f->sep, special};
	}
	for (size_t i = 0; i < p->dst.f.count; i++)
		dst[i] = (struct mh_folder){p->dst.f.items[i].name, p->dst.f.items[i].sep, p->dst.f.items[i].special};
	if (src_ns.sep == 0 && p->src.f.count > 0)
		src_ns.sep = p->src.f.items[0].sep;
	if (dst_ns.sep == 0 && p->dst.f.count > 0)
		dst_ns.sep = p->dst.f.items[0].sep;
	qsort(src, nsrc, sizeof(*src), cmp_folder);
	mh_special_use_dedupe(src, nsrc);

	for (size_t i = 0; i < nsrc && rc == 0; i++) {
		struct plan_box sbox, dbox;
		char *dst_name = NULL, *src_disp, *dst_disp;
		bool renamed = false;
		uint32_t *found;
		uint64_t bytes = 0;
		const struct mh_side_folder *sf = NULL;
		uint32_t this_idx = idx;
		uint64_t keep_modseq = 0; /* a pass ran (or failed): the MODSEQ to keep, */
		unsigned keep_opts = 0;   /* and what it covers */
		bool keep = false, grew = false;
		int incremental = 0;      /* read_grown() read only what is new */
		uint32_t *present = NULL; /* then: the old source UIDs still there */
		size_t npresent = 0;
		uint64_t folder_msgs, folder_bytes;

		if (p->sync) {
			enum folder_change change;
			struct folder_status st = {0};
			if (folder_change(p, known, src[i].name, &next_idx, &this_idx, &change, &st, err) < 0) {
				rc = -1;
				break;
			}
			if ((change == FOLDER_UNCHANGED || change == FOLDER_GREW) && pass_needed(p, &known[this_idx], &st)) {
				/* before the folder is read: the MODSEQ it records must not pass a change it missed */
				if (run_pass(p, this_idx, &known[this_idx], &keep_modseq, &keep_opts, err) < 0) {
					rc = -1;
					break;
				}
				keep = true;
			}
			if (change == FOLDER_UNCHANGED) {
				unchanged++;
				continue; /* one STATUS (and the pass), nothing read */
			}
			grew = change == FOLDER_GREW;
			if (change == FOLDER_RENUMBERED) {
				char *disp = mh_folder_display_name(src[i].name);
				mh_warn("planner", "%s: the UIDVALIDITY of %s changed: compared with the target in full",
					p->job_id, disp);
				if (mh_job_set_warning(p->q, p->job_id, "a source folder was recreated (its UIDVALIDITY changed): "
							"it was compared with the target in full, and nothing was copied twice", err) < 0)
					rc = -1;
				free(disp);
				if (rc < 0)
					break;
			}
		}

		for (size_t k = 0; k < p->src.f.count; k++)
			if (p->src.f.items[k].name == src[i].name)
				sf = &p->src.f.items[k];
		if (mh_folder_map(&src[i], &src_ns, dst, p->dst.f.count, &dst_ns, &dst_name, &renamed, err) < 0) {
			mh_warn("planner", "%s: folder %s cannot be mapped: %s", p->job_id, src[i].name, err->detail);
			continue;
		}
		memset(&sbox, 0, sizeof(sbox));
		memset(&dbox, 0, sizeof(dbox));
		if (grew) {
			incremental = read_grown(p, this_idx, &known[this_idx], src[i].name, dst_name, &sbox, &dbox, &present,
						 &npresent, err);
			if (incremental <= 0) {
				box_cleanup(&sbox);
				box_cleanup(&dbox);
			}
			/* a folder's own trouble: the full read below meets it and says so */
			if (incremental < 0 && mh_err_class_of(err->code) == MH_CLASS_FOLDER)
				incremental = 0;
			if (incremental < 0) {
				free(dst_name);
				rc = -1;
				break;
			}
		}
		if (incremental == 0 && read_box(p, &p->src, src[i].name, &sbox, err) < 0) {
			box_cleanup(&sbox);
			free(dst_name);
			if (mh_err_class_of(err->code) == MH_CLASS_FOLDER) {
				mh_warn("planner", "%s: source folder %s: %s", p->job_id, src[i].name, err->detail);
				continue;
			}
			rc = -1;
			break;
		}
		if (incremental == 1) {
			/* read already */
		} else if (mh_side_folders_find(&p->dst.f, dst_name) == NULL) {
			if (create_folder(p, dst_name, &dbox, err) < 0) {
				mh_warn("planner", "%s: cannot create %s: %s", p->job_id, dst_name, err->detail);
				box_cleanup(&sbox);
				free(dst_name);
				if (mh_err_class_of(err->code) != MH_CLASS_FOLDER)
					rc = -1;
				continue;
			}
		} else if (read_box(p, &p->dst, dst_name, &dbox, err) < 0) {
			box_cleanup(&sbox);
			box_cleanup(&dbox);
			free(dst_name);
			rc = -1;
			break;
		}
		found = calloc(sbox.count + 1, sizeof(*found));
		if (found == NULL)
			abort();
		mark_present(&sbox, &dbox, found);
		for (size_t k = 0; k < sbox.count; k++)
			bytes += sbox.msgs[k].size;
		/* read in part, the folder holds what earlier plans counted besides */
		folder_msgs = sbox.count + (incremental == 1 ? known[this_idx].messages : 0);
		folder_bytes = bytes + (incremental == 1 ? known[this_idx].bytes : 0);

		src_disp = mh_folder_display_name(src[i].name);
		dst_disp = mh_folder_display_name(dst_name);
		if (renamed)
			mh_warn("planner", "%s: folder \"%s\" becomes \"%s\" on the target (separator clash)", p->job_id,
				src_disp, dst_disp);
		{
			/* Our copies will get UIDs from here on (a folder we created holds only
			 * ours: dbox is empty then); a server that sent no UIDNEXT gets one past
			 * the highest UID it has. */
			uint32_t uidnext = dbox.uidnext > 0 ? dbox.uidnext : 1;
			if (dbox.count > 0 && dbox.msgs[dbox.count - 1].uid >= uidnext)
				uidnext = dbox.msgs[dbox.count - 1].uid + 1;
			struct mh_folder_ref ref = {src_disp, dst_disp, (char *)src[i].name, dst_name, sbox.uidvalidity,
						    dbox.uidvalidity, uidnext};
			rc = mh_job_add_folder(p->q, p->job_id, this_idx, &ref, folder_msgs, folder_bytes, err);
			/* for the summary's before/after table; a job planned again keeps the first */
			if (rc == 0)
				rc = mh_job_folder_set_count(p->q, p->job_id, this_idx, "dst_before", dbox.count, true, err);
		}
		if (rc == 0 && sf != NULL)
			rc = plan_folder_batches(p, this_idx, sf, dst_name, &sbox, found, err);
		if (rc == 0)
			rc = record_source_state(p, this_idx, present, npresent, &sbox, keep ? &keep_modseq : NULL,
						 keep ? keep_opts : MH_SYNC_FLAGS | MH_SYNC_DELETES, err);
		if (rc == 0) {
			/* what a sync compares with: the next UID the source will give */
			uint32_t next = sbox.uidnext;
			if (sbox.count > 0 && sbox.msgs[sbox.count - 1].uid >= next)
				next = sbox.msgs[sbox.count - 1].uid + 1;
			rc = mh_job_folder_set_count(p->q, p->job_id, this_idx, "src_uidnext", next, false, err);
		}
		p->total_msgs += sbox.count;
		p->total_bytes += bytes;
		idx++;
		free(src_disp);
		free(dst_disp);
		free(found);
		free(present);
		free(dst_name);
		box_cleanup(&sbox);
		box_cleanup(&dbox);
	}
	free(src);
	free(dst);
	if (known != NULL)
		known_free(known, p->known_folders);
	if (p->sync) {
		/* every folder ever planned counts, read this time or not */
		idx = next_idx;
		if (rc == 0)
			rc = sum_folders(p, idx, err);
		mh_info("planner", "%s: sync: %zu unchanged folders not read", p->job_id, unchanged);
		if (p->sync_opts != 0)
			mh_info("planner",
				"%s: sync (%s): %" PRIu64 " copies got their source's flags, %" PRIu64
				" deleted, %" PRIu64 " changed on the target meanwhile (kept), %" PRIu64
				" without a known copy",
				p->job_id, mh_sync_opts_describe(p->sync_opts), p->pass_total.flags_updated,
				p->pass_total.deleted, p->pass_total.conflicts, p->pass_total.unmapped);
	}
	if (rc == 0)
		rc = mh_job_set_plan(p->q, p->job_id, idx, p->total_msgs, p->total_bytes, p->batches, err);
	return rc;
}

int planner_open_side(struct rq *q, struct event_base *base, const struct mh_seal_key *key,
		      const struct mh_job_spec *spec, enum mh_side side, const struct mh_conn_opts *co,
		      struct mh_conn *conn, struct mh_err *err)
{
	char holder[128];
	uint64_t deadline = mh_now_ms() + 120000;

	snprintf(holder, sizeof(holder), "planner-%s-%s", spec->job_id, mh_side_name(side));
	for (;;) {
		unsigned retry_ms = 0;
		int got = mh_conn_open_leased(base, q, holder, spec, side, key, co, conn, &retry_ms, err);
		struct timespec pause;

		if (got != 0)
			return got > 0 ? 0 : -1;
		if (mh_now_ms() > deadline)
			return mh_err_set(err, MH_E_THROTTLED, "every connection slot for this account is busy");
		if (retry_ms < 100 || retry_ms > 2000)
			retry_ms = retry_ms < 100 ? 100 : 2000;
		pause.tv_sec = retry_ms / 1000;
		pause.tv_nsec = (long)(retry_ms % 1000) * 1000000L;
		nanosleep(&pause, NULL);
	}
}

void planner_opts_default(struct planner_opts *o)
{
	o->batch_max_msgs = 500;
	o->batch_start_msgs = 100;
	o->batch_max_bytes = 32u * 1024 * 1024;
	o->large_msg_bytes = 8u * 1024 * 1024;
	o->command_timeout_ms = 0;
}

void planner_opts_from_settings(struct planner_opts *o, unsigned batch_messages, unsigned batch_mb)
{
	planner_opts_default(o);
	if (batch_messages > 0)
		o->batch_max_msgs = batch_messages;
	if (batch_mb > 0)
		o->batch_max_bytes = (uint64_t)batch_mb * 1024 * 1024;
}

/* Renders the report into a heap string (NULL when out of memory). */
static char *render(void (*fn)(FILE *, const struct check_report *), const struct check_report *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	fn(f, r);
	fclose(f);
	return buf;
}

/* The health check as a job's first phase: its report is kept with the job, and a
 * blocking problem fails the job before anything is created on the target. 0 to go on. */
static int check_phase(struct rq *q, struct event_base *base, const struct mh_seal_key *key,
		       const struct mh_job_spec *spec, const char *job_id, struct mh_err *err)
{
	struct check_opts co = {0};
	struct check_report r;
	const struct check_problem *stop;
	char *text;
	int rc = 0;

	if (mh_job_set_phase(q, job_id, "checking", err) < 0)
		return -1;
	mh_info("planner", "%s: checking", job_id);
	if (check_run(base, spec, key, &co, &r, err) < 0)
		return -1;
	text = render(check_render_text, &r);
	if (text == NULL)
		abort();
	if (mh_job_store_check(q, job_id, check_verdict_name(r.verdict), text, err) < 0 ||
	    mh_job_set_phase(q, job_id, NULL, err) < 0) {
		rc = -1;
	} else if ((stop = check_first_blocking(&r)) != NULL) {
		mh_err_set(err, stop->code, "%s (fix: %s)", stop->cause, stop->fix);
		rc = -1;
	}
	mh_info("planner", "%s: check %s", job_id, check_verdict_name(r.verdict));
	free(text);
	check_report_cleanup(&r);
	return rc;
}

/* The target server's batch size as learnt so far (see jobstore.h). */
static int job_batch_size(struct rq *q, const struct planner_opts *o, const struct mh_job_spec *spec,
			  unsigned *size_r, struct mh_err *err)
{
	char server[MH_KEY_MAX];
	unsigned start = o->batch_start_msgs < o->batch_max_msgs ? o->batch_start_msgs : o->batch_max_msgs;

	mh_key_server(server, sizeof(server), spec->dst.host, spec->dst.port);
	return mh_batch_size_get(q, server, start, o->batch_max_msgs, size_r, err);
}

/* Whether this plan is a "sync now" run, and how many folders earlier plans recorded. */
static int sync_state(struct rq *q, const char *job_id, bool *sync_r, uint32_t *folders_r, struct mh_err *err)
{
	struct mh_job_summary s;
	char key[MH_KEY_MAX];
	struct redisReply *r;

	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err, "HGET %s sync", key);
	if (r == NULL)
		return -1;
	*sync_r = r->type == REDIS_REPLY_STRING && strcmp(r->str, "1") == 0;
	rq_reply_free(r);
	if (mh_job_load_summary(q, job_id, 0, &s, err) < 0)
		return -1;
	*folders_r = s.planned_folders;
	mh_job_summary_cleanup(&s);
	return 0;
}

int plan_job(struct rq *q, struct event_base *base, const struct mh_seal_key *key, const struct planner_opts *o,
	     const char *job_id, bool replan, struct mh_err *err)
{
	struct plan p;
	struct mh_job_spec spec;
	struct mh_conn_opts co = {.command_timeout_ms = o->command_timeout_ms};
	int rc = -1;

	memset(&p, 0, sizeof(p));
	p.q = q;
	p.base = base;
	p.opts = o;
	p.job_id = job_id;
	p.replan = replan;
	if (replan && sync_state(q, job_id, &p.sync, &p.known_folders, err) < 0)
		return -1;
	if (mh_job_sync_opts(q, job_id, &p.sync_opts, err) < 0)
		return -1;
	if (p.sync) {
		/* transient failures of earlier runs are tried again by every sync, auto-syncs too
		 * (mailhaul sync --retry-failed took out the others already) */
		size_t retried = 0;
		if (mh_job_unfail_for_sync(q, job_id, false, &retried, err) < 0)
			return -1;
		if (retried > 0)
			mh_info("planner", "%s: sync: %zu messages that failed for a passing reason are tried again",
				job_id, retried);
	}
	if (mh_job_load_spec(q, job_id, &spec, err) < 0)
		return -1;
	/* a job planned again was checked the first time */
	if (!replan && (spec.flags & MH_JOB_SKIP_CHECK) == 0 && check_phase(q, base, key, &spec, job_id, err) < 0)
		goto out;
	if (spec.src.proto == MH_PROTO_POP3) {
		if (job_batch_size(q, o, &spec, &p.batch_msgs, err) < 0 ||
		    plan_pop3(q, base, key, o, &spec, replan, p.batch_msgs, err) < 0)
			goto out;
		rc = mh_job_planned(q, job_id, err) < 0 ? -1 : 0;
		goto out;
	}
	if (planner_open_side(q, base, key, &spec, MH_SIDE_SOURCE, &co, &p.src.conn, err) < 0) {
		mh_err_set(err, err->code, "source: %s", err->detail);
		goto out;
	}
	if (planner_open_side(q, base, key, &spec, MH_SIDE_TARGET, &co, &p.dst.conn, err) < 0) {
		mh_err_set(err, err->code, "target: %s", err->detail);
		goto out;
	}
	if (list_folders(&p, &p.src, err) < 0 || list_folders(&p, &p.dst, err) < 0)
		goto out;
	if (job_batch_size(q, o, &spec, &p.batch_msgs, err) < 0)
		goto out;
	if (plan_folders(&p, err) < 0)
		goto out;
	rc = mh_job_planned(q, job_id, err) < 0 ? -1 : 0;
	mh_info("planner", "%s: %" PRIu64 " messages (%" PRIu64 " bytes) in %zu batches", job_id, p.total_msgs,
		p.total_bytes, (size_t)p.batches);
out:
	side_cleanup(&p.src);
	side_cleanup(&p.dst);
	mh_job_spec_cleanup(&spec);
	return rc;
}
