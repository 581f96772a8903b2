/* fuzz_imap_parser.c - libFuzzer target for the IMAP response parser.
 *
 * The first two bytes pick the chunking and the inline-literal limit; the rest is server
 * input. It is parsed twice, whole and in chunks of varying size, draining events until
 * NEED_MORE or ERROR and removing LITERAL_DATA bytes as the contract says. Both runs must
 * give the same transcript, and the event invariants are checked on the way: LITERAL_DATA
 * is never empty and never more than is buffered or declared, NEED_MORE leaves the buffer
 * empty, errors are sticky, every string in a response is NUL-terminated, and every NO,
 * BAD or BYE maps onto the error catalogue (imap_err_from_reply). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "imap_client.h"
#include "imap_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct transcript {
	uint8_t *s;
	size_t len;
	size_t cap;
};

static void tr_add(struct transcript *t, const void *p, size_t n)
{
	if (t->len + n > t->cap) {
		while (t->len + n > t->cap)
			t->cap = t->cap == 0 ? 1024 : t->cap * 2;
		t->s = realloc(t->s, t->cap);
		if (t->s == NULL)
			abort();
	}
	if (n > 0)
		memcpy(t->s + t->len, p, n);
	t->len += n;
}

static void tr_str(struct transcript *t, const char *s)
{
	if (s == NULL) {
		tr_add(t, "\xff", 1);
		return;
	}
	tr_add(t, s, strlen(s) + 1);
}

static void tr_u64(struct transcript *t, uint64_t v)
{
	tr_add(t, &v, sizeof(v));
}

static void tr_arg(struct transcript *t, const struct imap_arg *a, unsigned depth)
{
	if (depth > 1000)
		abort();
	tr_u64(t, a->type);
	switch (a->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_STRING:
	case IMAP_ARG_LITERAL:
		if (a->str == NULL || a->str[a->len] != '\0')
			abort();
		if (a->type != IMAP_ARG_LITERAL && strlen(a->str) != a->len)
			abort();
		tr_u64(t, a->len);
		tr_add(t, a->str, a->len);
		break;
	case IMAP_ARG_STREAMED:
		tr_u64(t, a->literal_size);
		break;
	case IMAP_ARG_NIL:
		break;
	case IMAP_ARG_LIST:
		tr_u64(t, a->count);
		if (a->count > 0 && a->items == NULL)
			abort();
		for (size_t i = 0; i < a->count; i++)
			tr_arg(t, &a->items[i], depth + 1);
		break;
	default:
		abort();
	}
}

/* A NO, BAD or BYE from a hostile server still maps onto the catalogue: a valid code and a
 * detail that is printable and bounded. */
static void check_err_mapping(const struct imap_response *r)
{
	static const char *const contexts[] = {"LOGIN", "APPEND", "SELECT", "CREATE", "UID FETCH", "BYE"};
	struct mh_err e;

	if (r->status != IMAP_STATUS_NO && r->status != IMAP_STATUS_BAD && r->status != IMAP_STATUS_BYE)
		return;
	for (size_t i = 0; i < sizeof(contexts) / sizeof(contexts[0]); i++) {
		imap_err_from_reply(r, contexts[i], &e);
		if ((unsigned)e.code >= MH_E_COUNT_ || e.code == MH_E_OK || strlen(e.detail) >= sizeof(e.detail))
			abort();
		for (const char *s = e.detail; *s != '\0'; s++)
			if ((unsigned char)*s < 0x20 || *s == 0x7f)
				abort();
	}
}

static void tr_response(struct transcript *t, const struct imap_response *r)
{
	check_err_mapping(r);
	tr_u64(t, r->kind);
	tr_str(t, r->tag);
	tr_u64(t, r->status);
	tr_u64(t, r->has_number);
	tr_u64(t, r->number);
	tr_str(t, r->name);
	tr_str(t, r->code);
	tr_str(t, r->code_args);
	tr_str(t, r->text);
	if ((r->kind == IMAP_RESP_TAGGED) != (r->tag != NULL))
		abort();
	if ((r->code == NULL) != (r->code_args == NULL))
		abort();
	tr_u64(t, r->count);
	for (size_t i = 0; i < r->count; i++)
		tr_arg(t, &r->args[i], 0);
}

/* Parses data, fed in chunks chosen by seed (0: all at once), into t. */
static void parse(const uint8_t *data, size_t size, unsigned seed, size_t inline_max,
		  struct transcript *t)
{
	struct imap_parser_limits lim;
	struct imap_parser *p;
	struct evbuffer *in = evbuffer_new();
	struct imap_event ev;
	struct mh_err err;
	uint32_t rng = seed * 2654435761u + 1;
	uint64_t lit_size = 0, lit_got = 0;
	size_t at = 0;
	bool failed = false;
	char buf[512];

	imap_parser_limits_default(&lim);
	lim.max_line = 4096;
	lim.max_inline_literal = 64;
	lim.max_literal = 100000;
	lim.max_depth = 8;
	lim.max_args = 300;
	p = imap_parser_new(&lim);
	imap_parser_set_inline_max(p, inline_max);
	if (in == NULL)
		abort();

	while (at < size && !failed) {
		size_t n = size - at;

		if (seed != 0) {
			rng = rng * 1103515245u + 12345u;
			n = 1 + (rng >> 16) % (seed % 4 == 0 ? 3 : 64);
			if (n > size - at)
				n = size - at;
		}
		evbuffer_add(in, data + at, n);
		at += n;
		for (;;) {
			enum imap_ev k = imap_parser_next(p, in, &ev, &err);

			if (k == IMAP_EV_NEED_MORE) {
				if (evbuffer_get_length(in) != 0)
					abort();
				break;
			}
			/* NEED_MORE and LITERAL_DATA depend on the chunking: not recorded. */
			if (k != IMAP_EV_LITERAL_DATA)
				tr_u64(t, k);
			if (k == IMAP_EV_ERROR) {
				if (err.code != MH_E_PROTOCOL || err.detail[0] == '\0')
					abort();
				tr_str(t, err.detail);
				/* Sticky. */
				if (imap_parser_next(p, in, &ev, NULL) != IMAP_EV_ERROR)
					abort();
				failed = true;
				break;
			}
			if (k == IMAP_EV_RESPONSE) {
				tr_response(t, ev.resp);
				continue;
			}
			if (ev.resp == NULL || ev.resp->name == NULL)
				abort();
			if (k == IMAP_EV_LITERAL_BEGIN) {
				lit_size = ev.literal_size;
				lit_got = 0;
				if (lit_size > lim.max_literal)
					abort();
				tr_str(t, ev.literal_key);
				tr_u64(t, lit_size);
			} else if (k == IMAP_EV_LITERAL_DATA) {
				if (ev.len == 0 || ev.len > evbuffer_get_length(in) ||
				    lit_got + ev.len > lit_size)
					abort();
				lit_got += ev.len;
				for (size_t left = ev.len; left > 0;) {
					size_t c = left < sizeof(buf) ? left : sizeof(buf);

					if (evbuffer_remove(in, buf, c) != (int)c)
						abort();
					tr_add(t, buf, c);
					left -= c;
				}
			} else if (k == IMAP_EV_LITERAL_END) {
				if (lit_got != lit_size)
					abort();
			}
		}
	}
	imap_parser_free(&p);
	evbuffer_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transcript whole = {0}, chunked = {0};
	unsigned seed;
	size_t inline_max;

	if (size < 2)
		return 0;
	seed = data[0] | 1u;
	inline_max = data[1] % 80; /* around the 64-byte default of this target */
	data += 2;
	size -= 2;

	parse(data, size, 0, inline_max, &whole);
	parse(data, size, seed, inline_max, &chunked);
	if (whole.len != chunked.len || (whole.len > 0 && memcmp(whole.s, chunked.s, whole.len) != 0)) {
		fprintf(stderr, "transcripts differ between whole and chunked input\n");
		abort();
	}
	free(whole.s);
	free(chunked.s);
	return 0;
}
