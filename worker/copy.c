/* copy.c - one batch, source folder to target folder, streamed (see copy.h).
 *
 * Phases: EXAMINE the folder (when not selected yet) and check UIDVALIDITY; fetch the
 * metadata (FLAGS INTERNALDATE RFC822.SIZE) of the batch's UIDs; fetch the bodies with
 * every literal streamed, appending each one to the target as it arrives. A MULTIAPPEND
 * that the target refuses is retried message by message, so one bad message does not
 * fail its neighbours. */
#include "copy.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "flagset.h"
#include "imap_client.h"
#include "uidset.h"
#include "log.h"

/* Pause reading the source while this much is queued for the target. */
#define COPY_HIGH_WATER (4u * 1024 * 1024)
#define COPY_LOW_WATER (1u * 1024 * 1024)

struct copy_msg {
	uint32_t uid;
	uint32_t seq;     /* from the metadata FETCH; 0 while unknown */
	char *flags;      /* space-separated, without \Recent */
	char *date;       /* INTERNALDATE as sent by the source */
	bool have_meta;
	bool done;        /* a final result is set */
	bool retry_alone; /* its MULTIAPPEND was refused: try it on its own */
};

/* The messages of one APPEND command. Freed by whichever comes last: its completion,
 * or close_append() (a completion may come first: a refused synchronizing literal, or
 * a dead connection, ends the command while we are still writing it). */
struct append_group {
	struct copy_run *run;
	size_t *idx; /* indexes into run->msgs, in APPEND order */
	size_t count;
	uint64_t bytes;
	bool completed; /* the server's verdict is in */
	bool closed;    /* we wrote all of it (imap_append_finish) */
};

struct copy_run {
	struct event_base *base;
	struct imap_client *src, *dst;
	const struct mh_batch *batch;
	struct mh_batch_result *res;
	struct copy_msg *msgs;
	size_t count;

	/* body phase */
	size_t max_per_append;
	struct imap_append *append; /* open APPEND command, or NULL */
	struct append_group *group; /* messages of the open APPEND */
	size_t cur;                 /* message whose literal streams now */
	bool streaming;             /* cur is valid and its bytes go to the target */
	bool paused;
	unsigned appends_pending;
	bool fetch_done;

	/* outcome */
	bool src_broken, dst_broken;
	struct mh_err conn_err;  /* why a connection broke */
	struct mh_err multi_err; /* why a MULTIAPPEND was refused */
	uint32_t uidvalidity, uidnext;
};

void copy_source_state_reset(struct copy_source_state *s)
{
	free(s->folder);
	s->folder = NULL;
	s->uidvalidity = s->uidnext = 0;
}

static struct copy_msg *msg_by_uid(struct copy_run *r, uint32_t uid)
{
	size_t lo = 0, hi = r->count;

	/* batch UIDs are ascending (the planner sorts them) */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->msgs[mid].uid < uid)
			lo = mid + 1;
		else if (r->msgs[mid].uid > uid)
			hi = mid;
		else
			return &r->msgs[mid];
	}
	return NULL;
}

static struct copy_msg *msg_by_seq(struct copy_run *r, uint32_t seq)
{
	for (size_t i = 0; i < r->count; i++)
		if (r->msgs[i].have_meta && r->msgs[i].seq == seq)
			return &r->msgs[i];
	return NULL;
}

static void set_result(struct copy_run *r, size_t i, enum mh_msg_status st, uint32_t dst_uid, uint64_t bytes,
		       const struct mh_err *e)
{
	struct mh_msg_result *m = &r->res->msgs[i];

	free(m->date);
	m->date = st == MH_MSG_FAILED && r->msgs[i].date != NULL ? strdup(r->msgs[i].date) : NULL;
	m->uid = r->msgs[i].uid;
	m->status = st;
	m->dst_uid = dst_uid;
	m->bytes = bytes;
	free(m->error);
	free(m->detail);
	m->error = e != NULL ? strdup(mh_err_name(e->code)) : NULL;
	m->detail = e != NULL && e->detail[0] != '\0' ? strdup(e->detail) : NULL;
	r->msgs[i].done = true;
}

static void fail_open(struct copy_run *r, const struct mh_err *e)
{
	for (size_t i = 0; i < r->count; i++)
		if (!r->msgs[i].done)
			set_result(r, i, MH_MSG_FAILED, 0, r->batch->msgs[i].size, e);
}

/* --- synchronous steps on the source ---------------------------------------------- */

struct step {
	struct copy_run *run;
	bool done;
	bool ok;
	struct mh_err err;
};

static void step_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct step *s = ctx;

	(void)tagged;
	s->done = true;
	s->ok = err == NULL;
	if (err != NULL)
		s->err = *err;
}

static bool conn_error(const struct mh_err *e)
{
	return mh_err_class_of(e->code) == MH_CLASS_CONNECTION || e->code == MH_E_CANCELED;
}

/* Waits for the source command just queued (queued: imap_client_cmd's result). */
static int source_step_wait(struct copy_run *r, struct step *s, int queued, struct mh_err *err)
{
	if (queued < 0 || imap_run_until(r->base, &s->done) < 0) {
		r->src_broken = true;
		return -1;
	}
	if (!s->ok) {
		*err = s->err;
		if (conn_error(&s->err))
			r->src_broken = true;
		return -1;
	}
	return 0;
}

static void on_examine_untagged(void *ctx, const struct imap_response *resp)
{
	struct step *s = ctx;
	uint64_t v;

	if (resp->status == IMAP_STATUS_OK && resp->code != NULL && strcmp(resp->code, "UIDVALIDITY") == 0 &&
	    imap_parse_number(resp->code_args, strlen(resp->code_args), UINT32_MAX, &v) == 0)
		s->run->uidvalidity = (uint32_t)v;
	else if (resp->status == IMAP_STATUS_OK && resp->code != NULL && strcmp(resp->code, "UIDNEXT") == 0 &&
		 imap_parse_number(resp->code_args, strlen(resp->code_args), UINT32_MAX, &v) == 0)
		s->run->uidnext = (uint32_t)v;
}

/* A folder selected earlier shows the messages it held then: a batch with a UID beyond
 * its UIDNEXT of that moment (planned later, e.g. by a sync) needs a fresh EXAMINE. */
static bool selection_covers(const struct copy_source_state *st, const struct mh_batch *b)
{
	for (size_t i = 0; i < b->count; i++)
		if (st->uidnext == 0 || b->msgs[i].uid >= st->uidnext)
			return false;
	return true;
}

static int select_source(struct copy_run *r, struct copy_source_state *st, struct mh_err *err)
{
	const struct mh_batch *b = r->batch;
	struct step s = {.run = r};
	struct imap_cmd_handlers h = {.untagged = on_examine_untagged, .done = step_done, .ctx = &s};

	if (st->folder != NULL && strcmp(st->folder, b->src_folder) == 0 && st->uidvalidity == b->src_uidvalidity &&
	    selection_covers(st, b))
		return 0;
	copy_source_state_reset(st);
	/* EXAMINE, never SELECT: the source must not change, not even \Recent (RFC 3501 6.3.2) */
	if (source_step_wait(r, &s, imap_client_cmd(r->src, &h, err, "EXAMINE %s", b->src_folder), err) < 0)
		return -1;
	if (r->uidvalidity != b->src_uidvalidity)
		return mh_err_set(err, MH_E_FOLDER_UIDVALIDITY, "%s: UIDVALIDITY is %" PRIu32 ", planned %" PRIu32,
				  b->src_folder, r->uidvalidity, b->src_uidvalidity);
	st->folder = strdup(b->src_folder);
	st->uidvalidity = r->uidvalidity;
	st->uidnext = r->uidnext;
	return 0;
}

int copy_select_source(struct event_base *base, struct imap_client *src, struct copy_source_state *state,
		       const struct mh_batch *b, struct mh_err *err)
{
	struct copy_run r = {.base = base, .src = src, .batch = b};

	if (select_source(&r, state, err) < 0) {
		copy_source_state_reset(state);
		return -1;
	}
	return 0;
}

static void on_meta_untagged(void *ctx, const struct imap_response *resp)
{
	struct step *s = ctx;
	struct copy_run *r = s->run;
	const struct imap_arg *flags = imap_fetch_attr(resp, "FLAGS"), *date = imap_fetch_attr(resp, "INTERNALDATE");
	uint32_t uid = imap_fetch_uid(resp);
	struct copy_msg *m = uid != 0 && resp->has_number ? msg_by_uid(r, uid) : NULL;

	if (m == NULL || flags == NULL || flags->type != IMAP_ARG_LIST || date == NULL || date->type != IMAP_ARG_STRING)
		return; /* unsolicited or incomplete: the message counts as vanished */
	free(m->flags);
	free(m->date);
	m->flags = mh_flags_from_list(flags);
	m->date = strndup(date->str, date->len);
	m->seq = resp->number;
	m->have_meta = true;
}

static int fetch_meta(struct copy_run *r, const char *uidset, struct mh_err *err)
{
	struct step s = {.run = r};
	struct imap_cmd_handlers h = {.untagged = on_meta_untagged, .done = step_done, .ctx = &s};

	return source_step_wait(r, &s, imap_client_cmd(r->src, &h, err, "UID FETCH %a (UID FLAGS INTERNALDATE)", uidset),
				err);
}

/* --- the failure ledger's subjects ------------------------------------------------------ */

struct subject_fetch {
	struct step step;
	bool plain; /* keep subjects readable instead of hashing them */
};

/* The Subject value of a "Subject: ...\r\n\r\n" block, unfolded, or NULL. */
static char *subject_value(const char *h, size_t len)
{
	char buf[512];
	size_t o = 0, i = 0;

	if (len < 8 || strncasecmp(h, "subject:", 8) != 0)
		return NULL;
	for (i = 8; i < len && (h[i] == ' ' || h[i] == '\t'); i++)
		;
	for (; i < len && o + 1 < sizeof(buf); i++) {
		if (h[i] == '\r' || h[i] == '\n') {
			/* a continuation line starts with white space; anything else ends it */
			size_t j = i;
			while (j < len && (h[j] == '\r' || h[j] == '\n'))
				j++;
			if (j >= len || (h[j] != ' ' && h[j] != '\t'))
				break;
			i = j - 1;
			continue;
		}
		buf[o++] = h[i];
	}
	buf[o] = '\0';
	return o > 0 ? strdup(buf) : NULL;
}

char *copy_ledger_subject(const char *subject, bool plain)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	char out[MH_ERR_DETAIL_MAX];

	if (plain) {
		mh_err_sanitize(out, sizeof(out), subject, strlen(subject));
		return strdup(out);
	}
	/* privacy: a fingerprint support staff can match against the user's mail, not the text */
	EVP_Digest(subject, strlen(subject), md, &mdlen, EVP_sha256(), NULL);
	snprintf(out, sizeof(out), "sha256:%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2], md[3], md[4], md[5]);
	return strdup(out);
}

static void on_subject_untagged(void *ctx, const struct imap_response *resp)
{
	struct subject_fetch *f = ctx;
	struct copy_run *r = f->step.run;
	const struct imap_arg *hdr = imap_fetch_attr_prefix(resp, "BODY[HEADER.FIELDS");
	uint32_t uid = imap_fetch_uid(resp);
	struct copy_msg *m = uid != 0 ? msg_by_uid(r, uid) : NULL;

	if (m != NULL && hdr != NULL && (hdr->type == IMAP_ARG_LITERAL || hdr->type == IMAP_ARG_STRING)) {
		char *subject = subject_value(hdr->str, hdr->len);
		struct mh_msg_result *res = &r->res->msgs[m - r->msgs];
		if (subject != NULL) {
			free(res->subject);
			res->subject = copy_ledger_subject(subject, f->plain);
			free(subject);
		}
	}
}

/* Best effort: the ledger is still useful without subjects. */
static void fetch_failed_subjects(struct copy_run *r, bool plain)
{
	struct subject_fetch f = {.step = {.run = r}, .plain = plain};
	struct imap_cmd_handlers h = {.untagged = on_subject_untagged, .done = step_done, .ctx = &f.step};
	uint32_t *uids = calloc(r->count + 1, sizeof(*uids));
	size_t n = 0;
	struct mh_err err;
	char *set;

	if (uids == NULL)
		abort();
	for (size_t i = 0; i < r->count; i++)
		if (r->res->msgs[i].status == MH_MSG_FAILED && r->msgs[i].have_meta)
			uids[n++] = r->msgs[i].uid;
	if (n > 0) {
		set = imap_uid_set_format(uids, n);
		imap_client_set_inline_max(r->src, 32 * 1024);
		source_step_wait(r, &f.step,
				 imap_client_cmd(r->src, &h, &err, "UID FETCH %a (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])", set),
				 &err);
		free(set);
	}
	free(uids);
}

/* --- the body phase: FETCH literals into APPEND literals ----------------------------- */

static void group_free(struct append_group *g)
{
	free(g->idx);
	free(g);
}

static void on_append_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct append_group *g = ctx;
	struct copy_run *r = g->run;
	uint32_t uids[COPY_APPEND_MAX_MSGS], uidvalidity;
	int n = -1;

	r->appends_pending--;
	g->completed = true;
	if (err == NULL) {
		if (tagged != NULL)
			n = imap_reply_appenduid(tagged, &uidvalidity, uids, COPY_APPEND_MAX_MSGS);
		for (size_t i = 0; i < g->count; i++) {
			size_t k = g->idx[i];
			uint32_t dst_uid = n == (int)g->count ? uids[i] : 0;
			set_result(r, k, MH_MSG_COPIED, dst_uid, r->batch->msgs[k].size, NULL);
		}
		if (mh_fault("append-ok")) {
			/* crash tests: the target has the messages, nobody else knows */
			mh_error("copy", "fault append-ok: exiting as if killed");
			_exit(137);
		}
	} else if (conn_error(err)) {
		r->dst_broken = true;
		r->conn_err = *err;
		for (size_t i = 0; i < g->count; i++)
			set_result(r, g->idx[i], MH_MSG_FAILED, 0, r->batch->msgs[g->idx[i]].size, err);
	} else if (g->count > 1) {
		/* One refused message fails a whole MULTIAPPEND (RFC 3502): retry them one by
		 * one. The server has read every non-synchronizing literal (RFC 7888), so the
		 * connection is still in step. */
		r->multi_err = *err;
		for (size_t i = 0; i < g->count; i++)
			r->msgs[g->idx[i]].retry_alone = true;
	} else if (g->count == 1) {
		set_result(r, g->idx[0], MH_MSG_FAILED, 0, r->batch->msgs[g->idx[0]].size, err);
	}
	if (g->closed)
		group_free(g);
}

/* Ends the open APPEND command (the client drops bytes of a command already refused). */
static void close_append(struct copy_run *r)
{
	struct imap_append *a = r->append;
	struct append_group *g = r->group;
	bool completed;

	if (a == NULL)
		return;
	r->append = NULL;
	r->group = NULL;
	g->closed = true;
	completed = g->completed;
	imap_append_finish(a); /* its completion never runs inside this call */
	if (completed)
		group_free(g);
}

static int open_append(struct copy_run *r, struct mh_err *err)
{
	struct append_group *g = calloc(1, sizeof(*g));
	struct imap_cmd_handlers h = {.done = on_append_done};

	if (g == NULL)
		abort();
	g->run = r;
	g->idx = calloc(r->max_per_append, sizeof(*g->idx));
	if (g->idx == NULL)
		abort();
	h.ctx = g;
	r->append = imap_client_append_start(r->dst, r->batch->dst_folder, &h, err);
	if (r->append == NULL) {
		group_free(g);
		r->dst_broken = true;
		return -1;
	}
	r->group = g;
	r->appends_pending++;
	return 0;
}

static void on_dst_drained(void *ctx)
{
	struct copy_run *r = ctx;

	if (r->paused) {
		r->paused = false;
		imap_client_pause_reading(r->src, false);
	}
}

static void literal_begin(struct copy_run *r, const struct imap_event *ev)
{
	struct copy_msg *m = NULL;
	struct mh_err err;

	r->streaming = false;
	if (ev->resp != NULL && ev->resp->has_number && ev->literal_key != NULL &&
	    strcmp(ev->literal_key, "BODY[]") == 0)
		m = msg_by_seq(r, ev->resp->number);
	if (m == NULL || m->done || r->dst_broken)
		return; /* not ours, or nowhere to put it: drained */
	if (r->append != NULL && (r->group->completed || r->group->count >= r->max_per_append ||
				  r->group->bytes + ev->literal_size > COPY_APPEND_MAX_BYTES))
		close_append(r);
	if (r->append == NULL && open_append(r, &err) < 0) {
		r->conn_err = err;
		return;
	}
	if (imap_append_add(r->append, m->flags, m->date, ev->literal_size, &err) < 0) {
		r->dst_broken = true;
		r->conn_err = err;
		return;
	}
	r->cur = (size_t)(m - r->msgs);
	r->group->idx[r->group->count++] = r->cur;
	if (mh_fault("body-stall")) {
		/* shutdown tests: a transfer that never ends (paused, no timeout runs) */
		mh_error("copy", "fault body-stall: the source stalls");
		imap_client_pause_reading(r->src, true);
	}
	r->group->bytes += ev->literal_size;
	r->streaming = true;
}

static void on_body_literal(void *ctx, enum imap_ev kind, const struct imap_event *ev, struct evbuffer *in)
{
	struct step *s = ctx;
	struct copy_run *r = s->run;

	switch (kind) {
	case IMAP_EV_LITERAL_BEGIN:
		literal_begin(r, ev);
		break;
	case IMAP_EV_LITERAL_DATA:
		if (!r->streaming || r->dst_broken || r->append == NULL) {
			evbuffer_drain(in, ev->len);
			break;
		}
		imap_append_data(r->append, in, ev->len);
		if (!r->paused && imap_client_output_pending(r->dst) > COPY_HIGH_WATER) {
			/* the target is slower than the source: hold the source back */
			r->paused = true;
			imap_client_pause_reading(r->src, true);
			imap_client_on_drain(r->dst, COPY_LOW_WATER, on_dst_drained, r);
		}
		break;
	case IMAP_EV_LITERAL_END:
		if (r->streaming && r->append != NULL &&
		    (r->group->count >= r->max_per_append || r->group->bytes >= COPY_APPEND_MAX_BYTES))
			close_append(r);
		r->streaming = false;
		break;
	default:
		break;
	}
}

static void on_body_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct step *s = ctx;
	struct copy_run *r = s->run;

	(void)tagged;
	r->fetch_done = true;
	if (err != NULL) {
		s->ok = false;
		s->err = *err;
		if (conn_error(err))
			r->src_broken = true;
	} else {
		s->ok = true;
	}
	if (r->src_broken && r->streaming && r->append != NULL) {
		/* The source died inside a literal: the target is owed bytes we do not have.
		 * Finishing the APPEND short makes the client drop that connection. */
		r->dst_broken = true;
	}
	close_append(r);
	if (r->paused) {
		r->paused = false;
		imap_client_pause_reading(r->src, false);
	}
}

/* Streams the bodies of the messages selected by want[] (max_per_append per APPEND). */
static int stream_bodies(struct copy_run *r, const bool *want, size_t max_per_append, struct mh_err *err)
{
	struct step s = {.run = r};
	struct imap_cmd_handlers h = {.literal = on_body_literal, .done = on_body_done, .ctx = &s};
	uint32_t *uids = calloc(r->count + 1, sizeof(*uids));
	size_t n = 0;
	char *set;
	bool finished = false;
	int rc = 0;

	if (uids == NULL)
		abort();
	for (size_t i = 0; i < r->count; i++)
		if (want[i])
			uids[n++] = r->msgs[i].uid;
	if (n == 0) {
		free(uids);
		return 0;
	}
	set = imap_uid_set_format(uids, n);
	free(uids);

	r->max_per_append = max_per_append;
	r->fetch_done = false;
	r->appends_pending = 0;
	imap_client_set_inline_max(r->src, 0);
	if (imap_client_cmd(r->src, &h, err, "UID FETCH %a (BODY.PEEK[])", set) < 0) {
		free(set);
		r->src_broken = true;
		return -1;
	}
	free(set);
	while (!finished) {
		if (event_base_loop(r->base, EVLOOP_ONCE) != 0) /* error, or nothing left to wait for */
			break;
		finished = r->fetch_done && r->appends_pending == 0;
	}
	if (!finished) {
		r->src_broken = r->dst_broken = true;
		return mh_err_set(err, MH_E_INTERNAL, "event loop stopped while copying");
	}
	if (!s.ok) {
		*err = s.err;
		rc = -1;
	}
	return rc;
}

static int cmp_batch_msg(const void *a, const void *b)
{
	uint32_t x = ((const struct mh_batch_msg *)a)->uid, y = ((const struct mh_batch_msg *)b)->uid;

	return x < y ? -1 : x > y;
}

static int copy_sorted_batch(struct event_base *base, struct imap_client *src, struct imap_client *dst,
			     struct copy_source_state *src_state, const struct mh_batch *b, bool plain_subjects,
			     struct mh_batch_result *res, struct mh_err *err);

int copy_batch(struct event_base *base, struct imap_client *src, struct imap_client *dst,
	       struct copy_source_state *src_state, const struct mh_batch *b, bool plain_subjects,
	       struct mh_batch_result *res, struct mh_err *err)
{
	/* UIDs ascending: lookups are binary searches and the target gets them in order */
	struct mh_batch sorted = *b;
	int rc;

	sorted.msgs = malloc((b->count + 1) * sizeof(*sorted.msgs));
	if (sorted.msgs == NULL)
		abort();
	memcpy(sorted.msgs, b->msgs, b->count * sizeof(*sorted.msgs));
	qsort(sorted.msgs, sorted.count, sizeof(*sorted.msgs), cmp_batch_msg);
	rc = copy_sorted_batch(base, src, dst, src_state, &sorted, plain_subjects, res, err);
	free(sorted.msgs);
	return rc;
}

static int copy_sorted_batch(struct event_base *base, struct imap_client *src, struct imap_client *dst,
			     struct copy_source_state *src_state, const struct mh_batch *b, bool plain_subjects,
			     struct mh_batch_result *res, struct mh_err *err)
{
	struct copy_run r = {.base = base, .src = src, .dst = dst, .batch = b, .res = res, .count = b->count};
	uint32_t *uids;
	bool *want;
	char *set;
	struct mh_err e;
	int rc = 0;

	mh_err_clear(&r.conn_err);
	mh_err_clear(&r.multi_err);
	mh_err_clear(&e);
	res->count = b->count;
	res->msgs = calloc(b->count + 1, sizeof(*res->msgs));
	r.msgs = calloc(b->count + 1, sizeof(*r.msgs));
	uids = calloc(b->count + 1, sizeof(*uids));
	want = calloc(b->count + 1, sizeof(*want));
	if (res->msgs == NULL || r.msgs == NULL || uids == NULL || want == NULL)
		abort();
	for (size_t i = 0; i < b->count; i++) {
		r.msgs[i].uid = uids[i] = b->msgs[i].uid;
		res->msgs[i].uid = b->msgs[i].uid;
	}

	if (select_source(&r, src_state, &e) < 0) {
		fail_open(&r, &e);
		rc = -1;
		goto out;
	}
	set = imap_uid_set_format(uids, b->count);
	if (fetch_meta(&r, set, &e) < 0) {
		free(set);
		fail_open(&r, &e);
		rc = -1;
		goto out;
	}
	free(set);

	for (size_t i = 0; i < b->count; i++)
		want[i] = r.msgs[i].have_meta;
	if (stream_bodies(&r, want, imap_client_has_cap(dst, "MULTIAPPEND") ? COPY_APPEND_MAX_MSGS : 1, &e) < 0)
		r.conn_err = e;

	/* Messages of a refused MULTIAPPEND: one by one, each with its own verdict. */
	if (!r.src_broken && !r.dst_broken) {
		size_t retry = 0;
		for (size_t i = 0; i < b->count; i++) {
			want[i] = r.msgs[i].retry_alone && !r.msgs[i].done;
			retry += want[i];
		}
		if (retry > 0) {
			mh_debug("copy", "%s: %zu messages of a refused MULTIAPPEND go one by one", b->dst_folder,
				 retry);
			if (stream_bodies(&r, want, 1, &e) < 0)
				r.conn_err = e;
		}
	}

	for (size_t i = 0; i < b->count; i++) {
		if (r.msgs[i].done)
			continue;
		if (!r.msgs[i].have_meta) {
			mh_err_set(&e, MH_E_MSG_VANISHED, "UID %" PRIu32 " is no longer in %s", r.msgs[i].uid,
				   b->src_folder);
			set_result(&r, i, MH_MSG_FAILED, 0, b->msgs[i].size, &e);
		} else if (r.msgs[i].retry_alone && r.conn_err.code == MH_E_OK) {
			set_result(&r, i, MH_MSG_FAILED, 0, b->msgs[i].size, &r.multi_err);
		} else {
			const struct mh_err *why = r.conn_err.code != MH_E_OK ? &r.conn_err : NULL;
			if (why == NULL) {
				mh_err_set(&e, MH_E_MSG_VANISHED, "the source sent no body for UID %" PRIu32,
					   r.msgs[i].uid);
				why = &e;
			}
			set_result(&r, i, MH_MSG_FAILED, 0, b->msgs[i].size, why);
		}
	}
	if (!r.src_broken)
		fetch_failed_subjects(&r, plain_subjects);
	if (r.src_broken || r.dst_broken) {
		*err = r.conn_err.code != MH_E_OK ? r.conn_err : e;
		rc = -1;
	}
out:
	if (r.src_broken)
		copy_source_state_reset(src_state);
	for (size_t i = 0; i < b->count; i++) {
		free(r.msgs[i].flags);
		free(r.msgs[i].date);
	}
	free(r.msgs);
	free(uids);
	free(want);
	return rc;
}
