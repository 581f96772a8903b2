/* settle.c - find the copies earlier attempts made of in-flight messages (see settle.h).
 *
 * Steps, each one command at a time (this runs only after a crash or a lost connection):
 * the source headers of the in-flight messages; EXAMINE the target folder; per message a
 * UID SEARCH from the planned UIDNEXT on; the headers of every candidate; compare; claim. */
#include "settle.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_client.h"
#include "log.h"
#include "msgheader.h"
#include "uidset.h"

/* Header blocks larger than this are not compared (no real message has one). */
#define SETTLE_HEADER_MAX (1024u * 1024)
/* Candidates looked at per message (a size search in a huge folder can match many). */
#define SETTLE_CANDS_MAX 200

struct settle_msg {
	uint32_t uid;    /* on the source */
	uint64_t size;
	char *header;    /* source header block without CRs; NULL when it could not be read */
	size_t header_len;
	char *message_id;
	uint32_t *cands; /* target UIDs that SEARCH found, then those confirmed */
	size_t ncands;
	bool *confirmed;
};

struct settle {
	struct settle_msg *msgs;
	size_t count;
	uint32_t min_uid;
	struct settle_msg *searching; /* the message whose SEARCH runs */
	uint32_t dst_uidvalidity;

	/* the command in flight */
	bool done, ok;
	struct mh_err err;
};

static void cmd_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct settle *s = ctx;

	(void)tagged;
	s->done = true;
	s->ok = err == NULL;
	if (err != NULL)
		s->err = *err;
}

static bool connection_error(const struct mh_err *e)
{
	return mh_err_class_of(e->code) == MH_CLASS_CONNECTION || e->code == MH_E_CANCELED;
}

/* Runs the command just queued. 1 OK, 0 refused (NO/BAD), -1 connection gone (err set). */
static int run_cmd(struct event_base *base, struct settle *s, int queued, struct mh_err *err)
{
	if (queued < 0 || imap_run_until(base, &s->done) < 0) {
		if (queued >= 0)
			mh_err_set(err, MH_E_CONNECTION_LOST, "connection lost while looking for earlier copies");
		return -1;
	}
	if (s->ok)
		return 1;
	if (connection_error(&s->err)) {
		*err = s->err;
		return -1;
	}
	return 0;
}

static struct imap_cmd_handlers handlers(struct settle *s, imap_untagged_cb_t *untagged)
{
	s->done = s->ok = false;
	mh_err_clear(&s->err);
	return (struct imap_cmd_handlers){.untagged = untagged, .done = cmd_done, .ctx = s};
}

static struct settle_msg *msg_by_uid(struct settle *s, uint32_t uid)
{
	for (size_t i = 0; i < s->count; i++)
		if (s->msgs[i].uid == uid)
			return &s->msgs[i];
	return NULL;
}

/* The UID and the header literal of a "* n FETCH (UID u BODY[HEADER] {..})" response. */
static bool fetched_header(const struct imap_response *r, uint32_t *uid_r, const struct imap_arg **hdr_r)
{
	const struct imap_arg *hdr = imap_fetch_attr(r, "BODY[HEADER]");

	*uid_r = imap_fetch_uid(r);
	*hdr_r = hdr != NULL && (hdr->type == IMAP_ARG_LITERAL || hdr->type == IMAP_ARG_STRING) ? hdr : NULL;
	return *uid_r != 0 && *hdr_r != NULL;
}

/* CRs are left out: a server that stores bare LFs gives them back as CRLF. */
static char *without_cr(const char *p, size_t len, size_t *len_r)
{
	char *out = malloc(len + 1);
	size_t o = 0;

	if (out == NULL)
		abort();
	for (size_t i = 0; i < len; i++)
		if (p[i] != '\r')
			out[o++] = p[i];
	out[o] = '\0';
	*len_r = o;
	return out;
}

static void on_source_header(void *ctx, const struct imap_response *r)
{
	struct settle *s = ctx;
	const struct imap_arg *hdr;
	struct settle_msg *m;
	uint32_t uid;

	if (!fetched_header(r, &uid, &hdr) || (m = msg_by_uid(s, uid)) == NULL || m->header != NULL)
		return;
	m->header = without_cr(hdr->str, hdr->len, &m->header_len);
	m->message_id = mh_header_message_id(hdr->str, hdr->len);
}

static void on_examine(void *ctx, const struct imap_response *r)
{
	struct settle *s = ctx;
	uint64_t v;

	if (r->status == IMAP_STATUS_OK && r->code != NULL && strcmp(r->code, "UIDVALIDITY") == 0 &&
	    imap_parse_number(r->code_args, strlen(r->code_args), UINT32_MAX, &v) == 0)
		s->dst_uidvalidity = (uint32_t)v;
}

static void on_search(void *ctx, const struct imap_response *r)
{
	struct settle *s = ctx;
	struct settle_msg *m = s->searching;

	if (r->name == NULL || strcmp(r->name, "SEARCH") != 0 || m == NULL)
		return;
	for (size_t i = 0; i < r->count && m->ncands < SETTLE_CANDS_MAX; i++) {
		uint64_t uid;
		/* "UID n:*" also matches the highest UID when it is below n (RFC 3501 6.4.8) */
		if (imap_arg_number(&r->args[i], UINT32_MAX, &uid) == 0 && uid >= s->min_uid)
			m->cands[m->ncands++] = (uint32_t)uid;
	}
}

static void on_target_header(void *ctx, const struct imap_response *r)
{
	struct settle *s = ctx;
	const struct imap_arg *hdr;
	uint32_t uid;
	char *norm = NULL;
	size_t len = 0;

	if (!fetched_header(r, &uid, &hdr))
		return;
	for (size_t i = 0; i < s->count; i++) {
		struct settle_msg *m = &s->msgs[i];
		for (size_t k = 0; k < m->ncands; k++) {
			if (m->cands[k] != uid)
				continue;
			if (norm == NULL)
				norm = without_cr(hdr->str, hdr->len, &len);
			m->confirmed[k] = len == m->header_len && memcmp(norm, m->header, len) == 0;
		}
	}
	free(norm);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Candidates for m: by Message-ID, or by size (the target may count bare LFs as CRLF). */
static int search_candidates(struct event_base *base, struct imap_client *dst, struct settle *s,
			     struct settle_msg *m, struct mh_err *err)
{
	struct imap_cmd_handlers h = handlers(s, on_search);
	int rc;

	s->searching = m;
	if (m->message_id != NULL) {
		rc = run_cmd(base, s,
			     imap_client_cmd(dst, &h, err, "UID SEARCH UID %u:* HEADER Message-ID %s", s->min_uid,
					     m->message_id),
			     err);
	} else {
		uint64_t slack = m->size / 16 + 64;
		uint64_t lo = m->size > slack ? m->size - slack : 0;
		rc = run_cmd(base, s,
			     imap_client_cmd(dst, &h, err, "UID SEARCH UID %u:* LARGER %U SMALLER %U", s->min_uid, lo,
					     m->size + slack + 1),
			     err);
	}
	s->searching = NULL;
	if (rc == 0) /* e.g. a charset the server refuses: nothing found, append */
		mh_debug("settle", "search for UID %" PRIu32 " refused: %s", m->uid, s->err.detail);
	return rc < 0 ? -1 : 0;
}

static int fetch_source_headers(struct event_base *base, struct imap_client *src, struct settle *s,
				struct mh_err *err)
{
	uint32_t *uids = calloc(s->count + 1, sizeof(*uids));
	struct imap_cmd_handlers h = handlers(s, on_source_header);
	char *set;
	int rc;

	if (uids == NULL)
		abort();
	for (size_t i = 0; i < s->count; i++)
		uids[i] = s->msgs[i].uid;
	set = imap_uid_set_format(uids, s->count);
	free(uids);
	imap_client_set_inline_max(src, SETTLE_HEADER_MAX);
	rc = run_cmd(base, s, imap_client_cmd(src, &h, err, "UID FETCH %a (UID BODY.PEEK[HEADER])", set), err);
	free(set);
	return rc < 0 ? -1 : 0;
}

static int confirm_candidates(struct event_base *base, struct imap_client *dst, struct settle *s,
			      struct mh_err *err)
{
	uint32_t *all;
	size_t n = 0, k = 0;
	struct imap_cmd_handlers h = handlers(s, on_target_header);
	char *set;
	int rc;

	for (size_t i = 0; i < s->count; i++)
		n += s->msgs[i].ncands;
	if (n == 0)
		return 0;
	all = calloc(n, sizeof(*all));
	if (all == NULL)
		abort();
	for (size_t i = 0; i < s->count; i++)
		for (size_t c = 0; c < s->msgs[i].ncands; c++)
			all[k++] = s->msgs[i].cands[c];
	qsort(all, n, sizeof(*all), cmp_u32);
	set = imap_uid_set_format(all, n); /* repeated UIDs are harmless in a set */
	free(all);
	imap_client_set_inline_max(dst, SETTLE_HEADER_MAX);
	rc = run_cmd(base, s, imap_client_cmd(dst, &h, err, "UID FETCH %a (UID BODY.PEEK[HEADER])", set), err);
	free(set);
	return rc < 0 ? -1 : 0;
}

static int look_on_target(struct event_base *base, struct imap_client *dst, struct settle *s, const struct mh_batch *b,
			  const struct settle_target *target, struct mh_err *err)
{
	struct imap_cmd_handlers h = handlers(s, on_examine);
	int rc = run_cmd(base, s, imap_client_cmd(dst, &h, err, "EXAMINE %s", b->dst_folder), err);

	if (rc <= 0)
		return rc; /* a target folder that cannot be opened holds no copies of ours */
	s->min_uid = target->uidnext > 0 ? target->uidnext : 1;
	if (target->uidvalidity != 0 && s->dst_uidvalidity != target->uidvalidity) {
		/* the folder was recreated since the plan: every message in it may be ours */
		mh_warn("settle", "%s: UIDVALIDITY changed since the plan; looking at every message", b->dst_folder);
		s->min_uid = 1;
	}
	for (size_t i = 0; i < s->count; i++)
		if (s->msgs[i].header != NULL && search_candidates(base, dst, s, &s->msgs[i], err) < 0)
			return -1;
	if (confirm_candidates(base, dst, s, err) < 0)
		return -1;
	/* back to the authenticated state (CLOSE expunges nothing in a read-only folder) */
	h = handlers(s, NULL);
	rc = run_cmd(base, s,
		     imap_client_cmd(dst, &h, err, imap_client_has_cap(dst, "UNSELECT") ? "UNSELECT" : "CLOSE"), err);
	return rc < 0 ? -1 : 1;
}

/* Claims, for each settle message whose copy was confirmed, one target UID. */
static int claim_found(struct settle *s, const size_t *index, const char *dst_folder, settle_claim_cb_t *claim,
		       void *claim_ctx, uint32_t *found_r, struct mh_err *err)
{
	for (size_t i = 0; i < s->count; i++) {
		struct settle_msg *m = &s->msgs[i];
		size_t n = 0;
		uint32_t uid = 0;

		for (size_t k = 0; k < m->ncands; k++)
			if (m->confirmed[k])
				m->cands[n++] = m->cands[k];
		if (n == 0)
			continue;
		qsort(m->cands, n, sizeof(*m->cands), cmp_u32);
		if (claim(claim_ctx, m->uid, m->cands, n, &uid, err) < 0)
			return -1;
		found_r[index[i]] = uid;
		if (uid != 0)
			mh_info("settle", "%s: UID %" PRIu32 " was already copied (target UID %" PRIu32 "), not again",
				dst_folder, m->uid, uid);
	}
	return 0;
}

static void settle_msg_init(struct settle_msg *m, uint32_t uid, uint64_t size)
{
	m->uid = uid;
	m->size = size;
	m->cands = calloc(SETTLE_CANDS_MAX, sizeof(*m->cands));
	m->confirmed = calloc(SETTLE_CANDS_MAX, sizeof(*m->confirmed));
	if (m->cands == NULL || m->confirmed == NULL)
		abort();
}

static void settle_cleanup(struct settle *s)
{
	for (size_t i = 0; i < s->count; i++) {
		free(s->msgs[i].header);
		free(s->msgs[i].message_id);
		free(s->msgs[i].cands);
		free(s->msgs[i].confirmed);
	}
	free(s->msgs);
}

int settle_inflight(struct event_base *base, struct imap_client *src, struct imap_client *dst,
		    struct copy_source_state *src_state, const struct mh_batch *b, const bool *inflight,
		    const struct settle_target *target, settle_claim_cb_t *claim, void *claim_ctx, uint32_t *found_r,
		    struct mh_err *err)
{
	struct settle s = {0};
	size_t *index; /* settle message -> batch message */
	int rc = 0;

	memset(found_r, 0, b->count * sizeof(*found_r));
	s.msgs = calloc(b->count + 1, sizeof(*s.msgs));
	index = calloc(b->count + 1, sizeof(*index));
	if (s.msgs == NULL || index == NULL)
		abort();
	for (size_t i = 0; i < b->count; i++) {
		if (!inflight[i])
			continue;
		index[s.count] = i;
		settle_msg_init(&s.msgs[s.count++], b->msgs[i].uid, b->msgs[i].size);
	}
	if (s.count == 0)
		goto out;
	if (copy_select_source(base, src, src_state, b, err) < 0 || fetch_source_headers(base, src, &s, err) < 0 ||
	    look_on_target(base, dst, &s, b, target, err) < 0 ||
	    claim_found(&s, index, b->dst_folder, claim, claim_ctx, found_r, err) < 0)
		rc = -1;
out:
	if (rc < 0)
		memset(found_r, 0, b->count * sizeof(*found_r));
	settle_cleanup(&s);
	free(index);
	return rc;
}

int settle_with_headers(struct event_base *base, struct imap_client *dst, const struct mh_batch *b,
			const bool *inflight, const char *const *headers, const size_t *header_lens,
			const struct settle_target *target, settle_claim_cb_t *claim, void *claim_ctx, uint32_t *found_r,
			struct mh_err *err)
{
	struct settle s = {0};
	size_t *index;
	int rc = 0;

	memset(found_r, 0, b->count * sizeof(*found_r));
	s.msgs = calloc(b->count + 1, sizeof(*s.msgs));
	index = calloc(b->count + 1, sizeof(*index));
	if (s.msgs == NULL || index == NULL)
		abort();
	for (size_t i = 0; i < b->count; i++) {
		struct settle_msg *m;
		if (!inflight[i] || headers[i] == NULL)
			continue;
		index[s.count] = i;
		m = &s.msgs[s.count++];
		settle_msg_init(m, b->msgs[i].uid, b->msgs[i].size);
		m->header = without_cr(headers[i], header_lens[i], &m->header_len);
		m->message_id = mh_header_message_id(headers[i], header_lens[i]);
	}
	if (s.count > 0 && (look_on_target(base, dst, &s, b, target, err) < 0 ||
			    claim_found(&s, index, b->dst_folder, claim, claim_ctx, found_r, err) < 0))
		rc = -1;
	if (rc < 0)
		memset(found_r, 0, b->count * sizeof(*found_r));
	settle_cleanup(&s);
	free(index);
	return rc;
}
