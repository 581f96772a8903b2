/* pop3_ident.c - POP3 listings with identities (see pop3_ident.h). */
#include "pop3_ident.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_client.h" /* imap_run_until */
#include "msgheader.h"
#include "pop3_client.h"

struct inv {
	struct mh_pop3_msg *msgs;
	size_t n;
	bool done, ok;
	struct mh_err err;
	/* header hashing (fallback) */
	EVP_MD_CTX *md;
	size_t hashing;  /* index into msgs */
	bool in_header;  /* still inside the header block */
	char last;       /* previous byte (CRs left out) */
};

static void step_fail(struct inv *v, const struct mh_err *err)
{
	v->ok = false;
	v->err = *err;
}

static void on_list(void *ctx, const struct pop3_list_entry *e, size_t n, const struct mh_err *err)
{
	struct inv *v = ctx;

	v->done = true;
	v->ok = err == NULL;
	if (err != NULL) {
		step_fail(v, err);
		return;
	}
	v->msgs = calloc(n + 1, sizeof(*v->msgs));
	if (v->msgs == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		v->msgs[i].msgno = e[i].msgno;
		v->msgs[i].size = e[i].size;
	}
	v->n = n;
}

static int cmp_msgno(const void *a, const void *b)
{
	uint32_t x = ((const struct mh_pop3_msg *)a)->msgno, y = ((const struct mh_pop3_msg *)b)->msgno;

	return x < y ? -1 : x > y;
}

static struct mh_pop3_msg *by_msgno(struct inv *v, uint32_t msgno)
{
	struct mh_pop3_msg key = {.msgno = msgno};

	return bsearch(&key, v->msgs, v->n, sizeof(*v->msgs), cmp_msgno);
}

static void on_uidl(void *ctx, const struct pop3_uidl_entry *e, size_t n, const struct mh_err *err)
{
	struct inv *v = ctx;

	v->done = true;
	v->ok = err == NULL;
	if (err != NULL) {
		step_fail(v, err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct mh_pop3_msg *m = by_msgno(v, e[i].msgno);
		if (m != NULL)
			snprintf(m->ident, sizeof(m->ident), "U:%s", e[i].uid);
	}
}

static void on_header_data(void *ctx, struct evbuffer *in, size_t len)
{
	struct inv *v = ctx;
	char buf[8192];

	while (len > 0) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		evbuffer_remove(in, buf, n);
		len -= n;
		for (size_t i = 0; i < n && v->in_header; i++) {
			if (buf[i] == '\r')
				continue; /* a server storing LF-only text gives the same identity */
			if (buf[i] == '\n' && v->last == '\n') {
				v->in_header = false; /* the empty line ends the header block */
				break;
			}
			EVP_DigestUpdate(v->md, &buf[i], 1);
			v->last = buf[i];
		}
	}
}

static void on_header_done(void *ctx, uint64_t size, const struct mh_err *err)
{
	struct inv *v = ctx;
	unsigned char md[32];
	unsigned int mdlen = 0;
	struct mh_pop3_msg *m = &v->msgs[v->hashing];
	int o;

	(void)size;
	v->done = true;
	v->ok = err == NULL;
	if (err != NULL) {
		step_fail(v, err);
		return;
	}
	EVP_DigestFinal_ex(v->md, md, &mdlen);
	o = snprintf(m->ident, sizeof(m->ident), "H:%" PRIu64 ":", m->size);
	for (unsigned i = 0; i < mdlen && o + 3 < (int)sizeof(m->ident); i++)
		o += snprintf(m->ident + o, sizeof(m->ident) - (size_t)o, "%02x", md[i]);
}

static int wait_step(struct event_base *base, struct inv *v, int queued, struct mh_err *qerr, struct mh_err *err)
{
	if (queued < 0) {
		*err = *qerr;
		return -1;
	}
	if (imap_run_until(base, &v->done) < 0 && !v->done)
		return mh_err_set(err, MH_E_INTERNAL, "event loop ended while reading the POP3 listing");
	if (!v->ok) {
		*err = v->err;
		return -1;
	}
	return 0;
}

/* --- Message-IDs ------------------------------------------------------------------------ */

struct header_read {
	struct evbuffer *buf;
	bool done, ok;
	struct mh_err err;
};

static void on_top_data(void *ctx, struct evbuffer *in, size_t len)
{
	struct header_read *h = ctx;

	evbuffer_remove_buffer(in, h->buf, len);
}

static void on_top_done(void *ctx, uint64_t size, const struct mh_err *err)
{
	struct header_read *h = ctx;

	(void)size;
	h->done = true;
	h->ok = err == NULL;
	if (err != NULL)
		h->err = *err;
}

/* The key of one message from its header block (TOP's, or a whole message's). */
static char *target_key(const char *data, size_t len, uint64_t size)
{
	char *id = mh_header_message_id(data, len), *key;
	size_t n;

	if (id == NULL)
		return mh_header_hash_key(data, len, size);
	n = strlen(id) + 3;
	if ((key = malloc(n)) == NULL)
		abort();
	snprintf(key, n, "M:%s", id);
	free(id);
	return key;
}

int mh_pop3_target_keys(struct event_base *base, struct pop3_client *c, const struct mh_pop3_msg *msgs, size_t n,
			char ***ids_r, struct mh_err *err)
{
	bool top = pop3_client_has_cap(c, "TOP");
	char **ids = calloc(n + 1, sizeof(*ids));
	struct header_read h = {.buf = evbuffer_new()};
	struct pop3_retr_handlers hd = {.data = on_top_data, .done = on_top_done, .ctx = &h};
	int rc = 0;

	if (ids == NULL || h.buf == NULL)
		abort();
	/* one at a time: a RETR fallback must not pile whole messages up in memory */
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct mh_err qerr;
		int queued;

		h.done = h.ok = false;
		evbuffer_drain(h.buf, evbuffer_get_length(h.buf));
		queued = top ? pop3_client_top(c, msgs[i].msgno, 0, &hd, &qerr)
			     : pop3_client_retr(c, msgs[i].msgno, &hd, &qerr);
		if (queued < 0) {
			*err = qerr;
			rc = -1;
		} else if (imap_run_until(base, &h.done) < 0 && !h.done) {
			rc = mh_err_set(err, MH_E_INTERNAL, "event loop ended while reading POP3 headers");
		} else if (!h.ok) {
			*err = h.err;
			rc = -1;
		} else {
			size_t len = evbuffer_get_length(h.buf);
			ids[i] = target_key((const char *)evbuffer_pullup(h.buf, (ev_ssize_t)len), len, msgs[i].size);
		}
	}
	evbuffer_free(h.buf);
	if (rc < 0) {
		mh_pop3_strv_free(ids, n);
		return -1;
	}
	*ids_r = ids;
	return 0;
}

/* Fallback identities: one header at a time (a rare path; TOP keeps it cheap). */
static int hash_headers(struct event_base *base, struct pop3_client *c, struct inv *v, struct mh_err *err)
{
	bool top = pop3_client_has_cap(c, "TOP");
	struct pop3_retr_handlers h = {.data = on_header_data, .done = on_header_done, .ctx = v};
	struct mh_err qerr;
	int rc = 0;

	v->md = EVP_MD_CTX_new();
	if (v->md == NULL)
		abort();
	for (size_t i = 0; i < v->n && rc == 0; i++) {
		int queued;
		v->hashing = i;
		v->in_header = true;
		v->last = '\n';
		v->done = v->ok = false;
		EVP_DigestInit_ex(v->md, EVP_sha256(), NULL);
		queued = top ? pop3_client_top(c, v->msgs[i].msgno, 0, &h, &qerr)
			     : pop3_client_retr(c, v->msgs[i].msgno, &h, &qerr);
		rc = wait_step(base, v, queued, &qerr, err);
	}
	EVP_MD_CTX_free(v->md);
	v->md = NULL;
	/* identical copies of one message: each its own identity, in maildrop order */
	for (size_t i = 0; i < v->n && rc == 0; i++) {
		unsigned dup = 1;
		size_t base_len = strlen(v->msgs[i].ident);
		for (size_t k = 0; k < i; k++)
			if (strcspn(v->msgs[k].ident, "#") == base_len &&
			    strncmp(v->msgs[k].ident, v->msgs[i].ident, base_len) == 0)
				dup++;
		if (dup > 1) {
			size_t len = strlen(v->msgs[i].ident);
			snprintf(v->msgs[i].ident + len, sizeof(v->msgs[i].ident) - len, "#%u", dup);
		}
	}
	return rc;
}

int mh_pop3_inventory(struct event_base *base, struct pop3_client *c, bool want_idents, struct mh_pop3_msg **msgs_r,
		      size_t *n_r, bool *uidl_r, struct mh_err *err)
{
	struct inv v = {0};
	struct mh_err qerr;
	const char *const *caps;
	bool try_uidl;

	*msgs_r = NULL;
	*n_r = 0;
	*uidl_r = false;
	if (wait_step(base, &v, pop3_client_list(c, on_list, &v, &qerr), &qerr, err) < 0)
		return -1;
	qsort(v.msgs, v.n, sizeof(*v.msgs), cmp_msgno);
	/* a server without CAPA may still know UIDL: ask it; one with CAPA says so there */
	try_uidl = pop3_client_has_cap(c, "UIDL") || pop3_client_caps(c, &caps) == 0;
	if (want_idents && v.n > 0 && try_uidl) {
		v.done = v.ok = false;
		if (wait_step(base, &v, pop3_client_uidl(c, on_uidl, &v, &qerr), &qerr, err) == 0) {
			*uidl_r = true;
		} else if (mh_err_class_of(err->code) == MH_CLASS_CONNECTION || err->code == MH_E_CANCELED ||
			   err->code == MH_E_PROTOCOL) {
			free(v.msgs);
			return -1;
		}
		/* UIDL refused: the fallback below */
	} else if (v.n == 0) {
		*uidl_r = try_uidl;
	}
	for (size_t i = 0; want_idents && *uidl_r && i < v.n; i++) {
		if (v.msgs[i].ident[0] == '\0') {
			free(v.msgs);
			return mh_err_set(err, MH_E_PROTOCOL, "UIDL did not list message %" PRIu32, v.msgs[i].msgno);
		}
	}
	if (want_idents && !*uidl_r && v.n > 0 && hash_headers(base, c, &v, err) < 0) {
		free(v.msgs);
		return -1;
	}
	*msgs_r = v.msgs;
	*n_r = v.n;
	return 0;
}

long mh_pop3_find(const struct mh_pop3_msg *msgs, size_t n, const char *ident)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(msgs[i].ident, ident) == 0)
			return (long)i;
	return -1;
}
