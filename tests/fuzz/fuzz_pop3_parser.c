/* fuzz_pop3_parser.c - libFuzzer target for the POP3 response decoder.
 *
 * The first byte picks the chunking, the second the expectations: two bits per reply, in
 * turn (0 status, 1 AUTH, 2 listing, 3 message); the rest is server input. It is decoded twice,
 * whole and in chunks of varying size, and both runs must give the same transcript
 * (status lines, listing lines, each complete message, the error or the end-of-input
 * verdict). Message bytes are recorded only when their message ends, since how much of a
 * message arrives before an error depends on the chunking. Invariants checked on the way:
 * NEED_MORE leaves at most one CR in the input, BODY_DATA is never empty nor more than is
 * buffered, no message exceeds max_message, listing lines hold no CR or NUL and respect
 * max_line, errors are sticky, and every -ERR maps onto the catalogue with a printable
 * detail (pop3_err_from_reply). The line helpers run on every line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "pop3_client.h"
#include "pop3_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct transcript {
	uint8_t *s;
	size_t len;
	size_t cap;
};

/* Room for n more bytes; returns where they go. */
static uint8_t *tr_reserve(struct transcript *t, size_t n)
{
	if (t->len + n > t->cap) {
		while (t->len + n > t->cap)
			t->cap = t->cap == 0 ? 1024 : t->cap * 2;
		t->s = realloc(t->s, t->cap);
		if (t->s == NULL)
			abort();
	}
	t->len += n;
	return t->s + t->len - n;
}

static void tr_add(struct transcript *t, const void *p, size_t n)
{
	uint8_t *d = tr_reserve(t, n);

	if (n > 0)
		memcpy(d, p, n);
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

static void check_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

/* A -ERR from a hostile server still maps onto the catalogue. */
static void check_err_mapping(const struct pop3_status *st)
{
	static const char *const contexts[] = {"greeting", "USER", "PASS", "AUTH", "STLS", "RETR", "UIDL"};
	struct mh_err e;

	if (st->ok)
		return;
	for (size_t i = 0; i < sizeof(contexts) / sizeof(contexts[0]); i++) {
		pop3_err_from_reply(st, contexts[i], &e);
		if ((unsigned)e.code >= MH_E_COUNT_ || e.code == MH_E_OK || strlen(e.detail) >= sizeof(e.detail))
			abort();
		check_printable(e.detail);
	}
}

static void tr_status(struct transcript *t, const struct pop3_status *st, bool complete)
{
	uint32_t count;
	uint64_t octets;
	const char *ts;
	size_t ts_len;

	if (st->text == NULL || st->line == NULL)
		abort();
	if ((st->code == POP3_CODE_NONE) != (st->code_str == NULL))
		abort();
	if (st->continuation && st->ok)
		abort();
	check_err_mapping(st);
	tr_u64(t, st->ok);
	tr_u64(t, st->continuation);
	tr_u64(t, st->code);
	tr_u64(t, complete);
	tr_str(t, st->code_str);
	tr_str(t, st->text);
	tr_str(t, st->line);
	if (pop3_parse_stat(st->line, &count, &octets) == 0) {
		tr_u64(t, count);
		tr_u64(t, octets);
	}
	if (pop3_greeting_timestamp(st->line, &ts, &ts_len) == 0) {
		if (ts[0] != '<' || ts[ts_len - 1] != '>' || ts_len > 512)
			abort();
		tr_u64(t, ts_len);
	}
}

static void tr_line(struct transcript *t, const char *line, size_t len, size_t max_line)
{
	uint32_t msgno;
	uint64_t size;
	const char *uid;
	size_t uid_len;

	if (line == NULL || line[len] != '\0' || len + 2 > max_line || memchr(line, '\r', len) != NULL ||
	    strlen(line) != len)
		abort();
	tr_add(t, line, len + 1);
	if (pop3_parse_list_line(line, len, &msgno, &size) == 0) {
		if (msgno == 0)
			abort();
		tr_u64(t, size);
	}
	if (pop3_parse_uidl_line(line, len, &msgno, &uid, &uid_len) == 0) {
		if (msgno == 0 || uid_len == 0 || uid_len > POP3_UID_MAX || uid < line || uid + uid_len > line + len)
			abort();
		tr_u64(t, uid_len);
	}
}

/* The expectation for reply number n: two bits of the seed byte per reply, in turn. */
static enum pop3_expect expect_for(unsigned seed, unsigned n)
{
	return (enum pop3_expect)((seed >> (2 * (n % 4))) & 3);
}

/* Decodes data, fed in chunks chosen by seed (0: all at once), into t. */
static void decode(const uint8_t *data, size_t size, unsigned seed, unsigned expect_seed, struct transcript *t)
{
	struct pop3_parser_limits lim = {.max_line = 256, .max_message = 4096, .max_lines = 50};
	struct pop3_parser *p = pop3_parser_new(&lim);
	struct evbuffer *in = evbuffer_new();
	struct transcript body = {0};
	struct pop3_event ev;
	struct mh_err err;
	uint32_t rng = seed * 2654435761u + 1;
	unsigned replies = 0;
	size_t at = 0;
	bool failed = false;

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
			enum pop3_ev k;

			if (!pop3_parser_busy(p))
				pop3_parser_expect(p, expect_for(expect_seed, replies++));
			k = pop3_parser_next(p, in, &ev, &err);
			if (k == POP3_EV_NEED_MORE) {
				size_t left = evbuffer_get_length(in);
				unsigned char c;

				if (left > 1)
					abort();
				if (left == 1 && (evbuffer_copyout(in, &c, 1) != 1 || c != '\r'))
					abort();
				break;
			}
			/* BODY_DATA depends on the chunking: its bytes are recorded at END. */
			if (k != POP3_EV_BODY_DATA)
				tr_u64(t, k);
			switch (k) {
			case POP3_EV_ERROR:
				if ((err.code != MH_E_PROTOCOL && err.code != MH_E_INTERNAL) || err.detail[0] == '\0')
					abort();
				tr_str(t, err.detail);
				if (pop3_parser_next(p, in, &ev, NULL) != POP3_EV_ERROR || !pop3_parser_busy(p))
					abort();
				failed = true;
				break;
			case POP3_EV_STATUS:
				tr_status(t, ev.status, ev.complete);
				body.len = 0;
				break;
			case POP3_EV_LINE:
				tr_line(t, ev.line, ev.len, lim.max_line);
				break;
			case POP3_EV_BODY_DATA: {
				if (ev.len == 0 || ev.len > evbuffer_get_length(in) || body.len + ev.len > lim.max_message)
					abort();
				if (evbuffer_remove(in, tr_reserve(&body, ev.len), ev.len) != (int)ev.len)
					abort();
				break;
			}
			case POP3_EV_END:
				tr_u64(t, ev.total);
				tr_u64(t, body.len);
				tr_add(t, body.s, body.len);
				body.len = 0;
				break;
			default:
				abort();
			}
			if (failed)
				break;
		}
	}
	if (!failed) {
		int r = pop3_parser_eof(p, in, &err);

		tr_u64(t, (uint64_t)(r + 1));
		if (r < 0) {
			if (err.code != MH_E_CONNECTION_LOST)
				abort();
			tr_str(t, err.detail);
		}
	}
	free(body.s);
	pop3_parser_free(&p);
	evbuffer_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transcript whole = {0}, chunked = {0};
	unsigned seed, expect_seed;

	if (size < 2)
		return 0;
	seed = data[0] | 1u;
	expect_seed = data[1];
	data += 2;
	size -= 2;

	decode(data, size, 0, expect_seed, &whole);
	decode(data, size, seed, expect_seed, &chunked);
	if (whole.len != chunked.len || (whole.len > 0 && memcmp(whole.s, chunked.s, whole.len) != 0)) {
		fprintf(stderr, "transcripts differ between whole and chunked input\n");
		abort();
	}
	free(whole.s);
	free(chunked.s);
	return 0;
}
