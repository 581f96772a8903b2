/* copy_pop3.c - one batch from a POP3 maildrop to a target folder (see copy_pop3.h). */
#include "copy_pop3.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "copy.h"
#include "fault.h"
#include "imap_client.h"
#include "log.h"
#include "msgdate.h"
#include "msgheader.h"
#include "pop3_client.h"
#include "pop3_ident.h"
#include "pop3store.h"

struct pmsg {
	char *ident;
	uint32_t msgno;          /* in this session; 0 when not on the source */
	struct evbuffer *body;   /* while retrieved */
	bool retrieved, done, retry_alone;
	char date[MH_IMAP_DATE_LEN];
	char *subject;           /* for the failure ledger (hashed unless --ledger-subjects) */
};

struct prun {
	const struct copy_pop3_args *a;
	const struct mh_batch *b;
	struct mh_batch_result *res;
	struct pmsg *msgs;
	char acct[128];
	unsigned pending; /* RETRs or APPENDs outstanding */
	bool src_broken, dst_broken;
	struct mh_err conn_err, multi_err;
};

static bool conn_error(const struct mh_err *e)
{
	return mh_err_class_of(e->code) == MH_CLASS_CONNECTION || e->code == MH_E_CANCELED;
}

static void set_result(struct prun *r, size_t i, enum mh_msg_status st, uint32_t dst_uid, const struct mh_err *e)
{
	struct mh_msg_result *m = &r->res->msgs[i];

	mh_msg_result_cleanup(m);
	m->uid = r->b->msgs[i].uid;
	m->status = st;
	m->dst_uid = dst_uid;
	m->bytes = r->b->msgs[i].size;
	m->error = e != NULL ? strdup(mh_err_name(e->code)) : NULL;
	m->detail = e != NULL && e->detail[0] != '\0' ? strdup(e->detail) : NULL;
	m->date = st == MH_MSG_FAILED && r->msgs[i].date[0] != '\0' ? strdup(r->msgs[i].date) : NULL;
	m->subject = st == MH_MSG_FAILED && r->msgs[i].subject != NULL ? strdup(r->msgs[i].subject) : NULL;
	r->msgs[i].done = true;
	if (r->msgs[i].body != NULL) {
		evbuffer_free(r->msgs[i].body);
		r->msgs[i].body = NULL;
	}
}

static void fail_rest(struct prun *r, const struct mh_err *e)
{
	for (size_t i = 0; i < r->b->count; i++)
		if (!r->msgs[i].done)
			set_result(r, i, MH_MSG_FAILED, 0, e);
}

static int run_pending(struct prun *r)
{
	while (r->pending > 0)
		if (event_base_loop(r->a->base, EVLOOP_ONCE) != 0)
			return -1;
	return 0;
}

/* --- retrieving ----------------------------------------------------------------------- */

struct retr_ctx {
	struct prun *r;
	size_t i;
};

static void on_retr_data(void *ctx, struct evbuffer *in, size_t len)
{
	struct retr_ctx *c = ctx;

	evbuffer_remove_buffer(in, c->r->msgs[c->i].body, len);
}

static void on_retr_done(void *ctx, uint64_t size, const struct mh_err *err)
{
	struct retr_ctx *c = ctx;
	struct prun *r = c->r;

	(void)size;
	r->pending--;
	if (err == NULL) {
		r->msgs[c->i].retrieved = true;
	} else if (conn_error(err) || err->code == MH_E_PROTOCOL) {
		r->src_broken = true;
		r->conn_err = *err;
	} else {
		set_result(r, c->i, MH_MSG_FAILED, 0, err); /* e.g. deleted meanwhile: MSG_VANISHED */
	}
	free(c);
}

static int retrieve(struct prun *r, const size_t *idx, size_t n, struct mh_err *err)
{
	for (size_t k = 0; k < n; k++) {
		struct retr_ctx *c = calloc(1, sizeof(*c));
		struct pop3_retr_handlers h = {.data = on_retr_data, .done = on_retr_done};
		if (c == NULL)
			abort();
		*c = (struct retr_ctx){r, idx[k]};
		h.ctx = c;
		r->msgs[idx[k]].body = evbuffer_new();
		if (r->msgs[idx[k]].body == NULL)
			abort();
		/* queued all at once: the client pipelines them when the server allows it */
		if (pop3_client_retr(r->a->src, r->msgs[idx[k]].msgno, &h, err) < 0) {
			free(c);
			r->src_broken = true;
			r->conn_err = *err;
			break;
		}
		r->pending++;
	}
	if (run_pending(r) < 0) {
		r->src_broken = true;
		return mh_err_set(err, MH_E_INTERNAL, "event loop stopped while retrieving");
	}
	return r->src_broken ? -1 : 0;
}

/* The header block (through its empty line) of a retrieved message. */
static size_t header_len(struct evbuffer *body)
{
	struct evbuffer_ptr p = evbuffer_search(body, "\r\n\r\n", 4, NULL);

	if (p.pos >= 0)
		return (size_t)p.pos + 4;
	p = evbuffer_search(body, "\n\n", 2, NULL);
	return p.pos >= 0 ? (size_t)p.pos + 2 : evbuffer_get_length(body);
}

/* --- appending -------------------------------------------------------------------------- */

struct append_ctx {
	struct prun *r;
	size_t idx[COPY_APPEND_MAX_MSGS];
	size_t n;
};

static void record_copied(struct prun *r, const size_t *idx, size_t n)
{
	const char **idents = calloc(n + 1, sizeof(*idents));
	struct mh_err e;

	if (idents == NULL)
		abort();
	for (size_t k = 0; k < n; k++)
		idents[k] = r->msgs[idx[k]].ident;
	if (mh_pop3_copied_set(r->a->q, r->acct, idents, n, r->b->job_id, &e) < 0)
		mh_warn("copy", "%s: cannot record %zu copied POP3 messages (%s): a later run may copy them again",
			r->b->job_id, n, e.detail);
	free(idents);
}

static void on_append_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct append_ctx *c = ctx;
	struct prun *r = c->r;
	uint32_t uids[COPY_APPEND_MAX_MSGS], uidvalidity;
	int got = -1;

	r->pending--;
	if (err == NULL) {
		if (tagged != NULL)
			got = imap_reply_appenduid(tagged, &uidvalidity, uids, COPY_APPEND_MAX_MSGS);
		/* the worst moment to die: on the target, recorded nowhere (settle.h finds them) */
		if (mh_fault("append-ok")) {
			mh_error("copy", "fault append-ok: exiting as if killed");
			_exit(137);
		}
		/* recorded before the results exist: a crash now leaves at most in-flight marks */
		record_copied(r, c->idx, c->n);
		for (size_t k = 0; k < c->n; k++)
			set_result(r, c->idx[k], MH_MSG_COPIED, got == (int)c->n ? uids[k] : 0, NULL);
	} else if (conn_error(err)) {
		r->dst_broken = true;
		r->conn_err = *err;
		for (size_t k = 0; k < c->n; k++)
			set_result(r, c->idx[k], MH_MSG_FAILED, 0, err);
	} else if (c->n > 1) {
		/* one refused message fails a whole MULTIAPPEND (RFC 3502): one by one */
		r->multi_err = *err;
		for (size_t k = 0; k < c->n; k++)
			r->msgs[c->idx[k]].retry_alone = true;
	} else {
		set_result(r, c->idx[0], MH_MSG_FAILED, 0, err);
	}
	free(c);
}

/* One APPEND command for the messages idx[0..n) (n > 1 only with MULTIAPPEND). */
static int append_group(struct prun *r, const size_t *idx, size_t n, struct mh_err *err)
{
	const char *flags = r->a->spec->pop3_flags != NULL ? r->a->spec->pop3_flags : "";
	struct append_ctx *c = calloc(1, sizeof(*c));
	struct imap_cmd_handlers h = {.done = on_append_done};
	struct imap_append *ap;

	if (c == NULL)
		abort();
	c->r = r;
	c->n = n;
	memcpy(c->idx, idx, n * sizeof(*idx));
	h.ctx = c;
	ap = imap_client_append_start(r->a->dst, r->b->dst_folder, &h, err);
	if (ap == NULL) {
		free(c);
		r->dst_broken = true;
		r->conn_err = *err;
		return -1;
	}
	r->pending++;
	for (size_t k = 0; k < n; k++) {
		struct pmsg *m = &r->msgs[idx[k]];
		size_t len = evbuffer_get_length(m->body);
		if (imap_append_add(ap, flags, m->date, len, err) < 0)
			break; /* the completion reports it */
		imap_append_data(ap, m->body, len);
	}
	imap_append_finish(ap);
	return 0;
}

/* Appends the retrieved messages of idx[0..n): MULTIAPPEND groups, or one APPEND each
 * (pipelined); then the messages of a refused MULTIAPPEND one by one. */
static void append_all(struct prun *r, const size_t *idx, size_t n, bool multi, struct mh_err *err)
{
	size_t step = multi ? COPY_APPEND_MAX_MSGS : 1;

	for (size_t start = 0; start < n && !r->dst_broken; start += step) {
		size_t m = n - start < step ? n - start : step;
		for (size_t k = 0; k < m; k++)
			r->msgs[idx[start + k]].retry_alone = false;
		append_group(r, &idx[start], m, err);
	}
	if (run_pending(r) < 0)
		r->dst_broken = true;
}

/* INTERNALDATE, and the subject should the message fail. */
static void mark_date(struct pmsg *m, bool plain_subject)
{
	size_t hl = header_len(m->body);
	const char *h = (const char *)evbuffer_pullup(m->body, (ev_ssize_t)hl);
	char *subject = h != NULL ? mh_header_field(h, hl, "Subject") : NULL;

	if (h == NULL || mh_header_internaldate(h, hl, m->date) == MH_DATE_NONE)
		mh_imap_date_from_time(time(NULL), m->date);
	if (subject != NULL) {
		free(m->subject);
		m->subject = copy_ledger_subject(subject, plain_subject);
		free(subject);
	}
}

/* --- the batch --------------------------------------------------------------------------- */

/* Messages already in the account's dedup hash need no copy. 0 or -1 (Redis). */
static int known_copies(struct prun *r, struct mh_err *err)
{
	const struct mh_batch *b = r->b;
	uint32_t *ids = calloc(b->count + 1, sizeof(*ids));
	char **idents = NULL, **records = NULL;
	struct mh_err e;
	int rc = -1;

	if (ids == NULL)
		abort();
	for (size_t i = 0; i < b->count; i++)
		ids[i] = b->msgs[i].uid;
	if (mh_pop3_ids_get(r->a->q, b->job_id, ids, b->count, &idents, err) < 0)
		goto out;
	for (size_t i = 0; i < b->count; i++) {
		r->msgs[i].ident = idents[i];
		idents[i] = NULL;
		if (r->msgs[i].ident == NULL) {
			mh_err_set(&e, MH_E_MSG_VANISHED, "message %" PRIu32 " has no POP3 identity in this job",
				   b->msgs[i].uid);
			set_result(r, i, MH_MSG_FAILED, 0, &e);
		}
	}
	{
		const char **want = calloc(b->count + 1, sizeof(*want));
		size_t *at = calloc(b->count + 1, sizeof(*at)), n = 0;
		if (want == NULL || at == NULL)
			abort();
		for (size_t i = 0; i < b->count; i++)
			if (!r->msgs[i].done) {
				at[n] = i;
				want[n++] = r->msgs[i].ident;
			}
		rc = n == 0 ? 0 : mh_pop3_copied_get(r->a->q, r->acct, want, n, &records, err);
		for (size_t k = 0; rc == 0 && k < n; k++) {
			if (records[k] == NULL)
				continue;
			/* ours: an attempt of this job appended it and died before reporting */
			set_result(r, at[k], mh_pop3_copied_by(records[k], b->job_id) ? MH_MSG_COPIED : MH_MSG_SKIPPED, 0,
				   NULL);
		}
		if (rc == 0)
			mh_pop3_strv_free(records, n);
		free(want);
		free(at);
	}
out:
	mh_pop3_strv_free(idents, b->count);
	free(ids);
	return rc;
}

/* This session's message numbers for the batch; messages gone from the source fail. */
static int find_on_source(struct prun *r, struct mh_err *err)
{
	struct mh_pop3_msg *list = NULL;
	size_t n = 0;
	bool uidl;
	struct mh_err e;

	if (mh_pop3_inventory(r->a->base, r->a->src, true, &list, &n, &uidl, err) < 0) {
		r->src_broken = true;
		r->conn_err = *err;
		return -1;
	}
	for (size_t i = 0; i < r->b->count; i++) {
		long at;
		if (r->msgs[i].done)
			continue;
		at = mh_pop3_find(list, n, r->msgs[i].ident);
		if (at < 0) {
			mh_err_set(&e, MH_E_MSG_VANISHED, "%s is no longer on the POP3 server (deleted since the plan)",
				   r->msgs[i].ident);
			set_result(r, i, MH_MSG_FAILED, 0, &e);
			continue;
		}
		r->msgs[i].msgno = list[at].msgno;
	}
	free(list);
	return 0;
}

/* In-flight messages of a chunk that an earlier attempt appended: found on the target. */
static int settle_chunk(struct prun *r, const size_t *idx, size_t n, struct mh_err *err)
{
	const struct mh_batch *b = r->b;
	const char **headers = calloc(b->count + 1, sizeof(*headers));
	size_t *lens = calloc(b->count + 1, sizeof(*lens));
	uint32_t *found = calloc(b->count + 1, sizeof(*found));
	bool any = false;
	int rc = 0;

	if (headers == NULL || lens == NULL || found == NULL)
		abort();
	for (size_t k = 0; k < n; k++) {
		struct pmsg *m = &r->msgs[idx[k]];
		if (!r->a->inflight[idx[k]] || m->done || !m->retrieved)
			continue;
		lens[idx[k]] = header_len(m->body);
		headers[idx[k]] = (const char *)evbuffer_pullup(m->body, (ev_ssize_t)lens[idx[k]]);
		any = true;
	}
	if (any) {
		rc = settle_with_headers(r->a->base, r->a->dst, b, r->a->inflight, headers, lens, &r->a->target,
					 r->a->claim, r->a->claim_ctx, found, err);
		if (rc < 0) {
			r->dst_broken = true;
			r->conn_err = *err;
		}
		for (size_t i = 0; rc == 0 && i < b->count; i++) {
			if (found[i] == 0)
				continue;
			record_copied(r, &i, 1);
			set_result(r, i, MH_MSG_COPIED, found[i], NULL);
		}
	}
	free(headers);
	free(lens);
	free(found);
	return rc;
}

/* Retrieves and appends the messages idx[0..n). */
static void copy_chunk(struct prun *r, const size_t *idx, size_t n, struct mh_err *err)
{
	size_t *ready = calloc(n + 1, sizeof(*ready)), nready = 0;
	bool multi = imap_client_has_cap(r->a->dst, "MULTIAPPEND");

	if (ready == NULL)
		abort();
	if (retrieve(r, idx, n, err) == 0 && settle_chunk(r, idx, n, err) == 0) {
		for (size_t k = 0; k < n; k++) {
			struct pmsg *m = &r->msgs[idx[k]];
			if (m->done || !m->retrieved)
				continue;
			mark_date(m, (r->a->spec->flags & MH_JOB_LEDGER_SUBJECTS) != 0);
			ready[nready++] = idx[k];
		}
		if (multi && nready > 1) {
			/* a refused MULTIAPPEND consumed the bodies: keep a copy for one by one */
			struct evbuffer **keep = calloc(nready, sizeof(*keep));
			size_t nalone = 0;
			if (keep == NULL)
				abort();
			for (size_t k = 0; k < nready; k++) {
				struct evbuffer *body = r->msgs[ready[k]].body;
				keep[k] = evbuffer_new();
				if (keep[k] == NULL)
					abort();
				evbuffer_add(keep[k], evbuffer_pullup(body, -1), evbuffer_get_length(body));
			}
			append_all(r, ready, nready, true, err);
			for (size_t k = 0; k < nready; k++) {
				struct pmsg *m = &r->msgs[ready[k]];
				if (!r->dst_broken && m->retry_alone && !m->done) {
					if (m->body == NULL && (m->body = evbuffer_new()) == NULL)
						abort();
					evbuffer_drain(m->body, evbuffer_get_length(m->body));
					evbuffer_add_buffer(m->body, keep[k]);
					ready[nalone++] = ready[k];
				}
				evbuffer_free(keep[k]);
			}
			free(keep);
			if (nalone > 0) {
				mh_debug("copy", "%s: %zu messages of a refused MULTIAPPEND go one by one", r->b->dst_folder,
					 nalone);
				append_all(r, ready, nalone, false, err);
			}
		} else if (nready > 0) {
			append_all(r, ready, nready, false, err);
		}
	}
	free(ready);
}

int copy_pop3_batch(const struct copy_pop3_args *a, const struct mh_batch *b, struct mh_batch_result *res,
		    struct mh_err *err)
{
	struct prun r = {.a = a, .b = b, .res = res};
	size_t *idx = calloc(b->count + 1, sizeof(*idx)), n = 0;
	uint64_t bytes = 0;
	struct mh_err e;
	int rc = 0;

	mh_err_clear(&r.conn_err);
	mh_err_clear(&r.multi_err);
	res->count = b->count;
	res->msgs = calloc(b->count + 1, sizeof(*res->msgs));
	r.msgs = calloc(b->count + 1, sizeof(*r.msgs));
	if (idx == NULL || res->msgs == NULL || r.msgs == NULL)
		abort();
	for (size_t i = 0; i < b->count; i++)
		res->msgs[i].uid = b->msgs[i].uid;
	mh_key_pop3_account(r.acct, sizeof(r.acct), a->spec->src.host, a->spec->src.user);

	if (known_copies(&r, &e) < 0) {
		mh_err_set(&e, MH_E_REDIS, "POP3 identities: %s", e.detail);
		fail_rest(&r, &e);
		*err = e;
		rc = -1;
		goto out;
	}
	if (find_on_source(&r, &e) < 0) {
		fail_rest(&r, &e);
		*err = e;
		rc = -1;
		goto out;
	}
	/* chunks: bounded memory, and each chunk's RETRs go out together */
	for (size_t i = 0; i <= b->count && !r.src_broken && !r.dst_broken; i++) {
		bool flush = i == b->count;
		if (!flush && r.msgs[i].done)
			continue;
		if (!flush && n > 0 && (n >= COPY_APPEND_MAX_MSGS || bytes + b->msgs[i].size > COPY_APPEND_MAX_BYTES))
			flush = true, i--; /* this message starts the next chunk */
		else if (!flush) {
			idx[n++] = i;
			bytes += b->msgs[i].size;
			continue;
		}
		if (n > 0)
			copy_chunk(&r, idx, n, &e);
		n = 0;
		bytes = 0;
	}
	for (size_t i = 0; i < b->count; i++) {
		if (r.msgs[i].done)
			continue;
		if (r.msgs[i].retry_alone && r.conn_err.code == MH_E_OK) {
			set_result(&r, i, MH_MSG_FAILED, 0, &r.multi_err);
		} else if (r.conn_err.code != MH_E_OK) {
			set_result(&r, i, MH_MSG_FAILED, 0, &r.conn_err);
		} else {
			mh_err_set(&e, MH_E_MSG_VANISHED, "the POP3 server sent no message for %s", r.msgs[i].ident);
			set_result(&r, i, MH_MSG_FAILED, 0, &e);
		}
	}
	if (r.src_broken || r.dst_broken) {
		*err = r.conn_err;
		rc = -1;
	}
out:
	for (size_t i = 0; i < b->count; i++) {
		free(r.msgs[i].ident);
		free(r.msgs[i].subject);
		if (r.msgs[i].body != NULL)
			evbuffer_free(r.msgs[i].body);
	}
	free(r.msgs);
	free(idx);
	return rc;
}
