/* test_pop3_parser.c - the POP3 response decoder, fed whole, cut at every byte, and one
 * byte at a time. Every run is turned into a transcript (status lines, listing lines,
 * message bytes, the end of input) and all the ways of feeding an input must give the
 * same transcript. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "pop3_parser.h"

/* ---------------------------------------------------------------------------------------
 * transcripts */

struct dump {
	char *s;
	size_t len;
	size_t cap;
};

static void dump_add(struct dump *d, const char *s, size_t n)
{
	if (d->len + n + 1 > d->cap) {
		while (d->len + n + 1 > d->cap)
			d->cap = d->cap == 0 ? 256 : d->cap * 2;
		d->s = realloc(d->s, d->cap);
		assert_non_null(d->s);
	}
	memcpy(d->s + d->len, s, n);
	d->len += n;
	d->s[d->len] = '\0';
}

static void dump_str(struct dump *d, const char *s)
{
	dump_add(d, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3))) dump_fmt(struct dump *d, const char *fmt, ...)
{
	char tmp[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(tmp));
	dump_add(d, tmp, (size_t)n);
}

/* "..." with \r, \n, \", \\ and \xHH for other unprintable bytes. */
static void dump_quoted(struct dump *d, const char *s, size_t n)
{
	dump_str(d, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r')
			dump_str(d, "\\r");
		else if (c == '\n')
			dump_str(d, "\\n");
		else if (c == '"' || c == '\\')
			dump_fmt(d, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			dump_fmt(d, "\\x%02x", c);
		else
			dump_add(d, (const char *)&c, 1);
	}
	dump_str(d, "\"");
}

static void dump_status(struct dump *d, const struct pop3_status *st, bool complete)
{
	assert_non_null(st->text);
	assert_non_null(st->line);
	assert_true((st->code == POP3_CODE_NONE) == (st->code_str == NULL));
	dump_str(d, "STATUS ");
	dump_str(d, st->continuation ? "+" : st->ok ? "+OK" : "-ERR");
	if (st->code != POP3_CODE_NONE)
		dump_fmt(d, " [%s:%s]", pop3_code_name(st->code), st->code_str);
	dump_str(d, " ");
	dump_quoted(d, st->text, strlen(st->text));
	if (strcmp(st->line, st->text) != 0) {
		dump_str(d, " line=");
		dump_quoted(d, st->line, strlen(st->line));
	}
	dump_str(d, complete ? "\n" : " ...\n");
}

/* ---------------------------------------------------------------------------------------
 * the feeder */

struct feed {
	const char *wire;
	size_t len;
	const enum pop3_expect *expects;
	size_t nexpects;
	const struct pop3_parser_limits *lim; /* NULL: defaults */
};

/* Feeds f->wire in pieces: the first of first bytes, then pieces of step bytes. Records
 * every event, message bytes merged per message (their split depends on the feeding). */
static void feed_run(const struct feed *f, size_t first, size_t step, struct dump *d)
{
	struct pop3_parser *p = pop3_parser_new(f->lim);
	struct evbuffer *in = evbuffer_new();
	struct dump body = {0};
	size_t at = 0, next_expect = 0;
	bool failed = false, in_body = false, started = false;

	assert_non_null(in);
	while (!failed) {
		size_t n = started ? step : first;

		started = true;

		if (n > f->len - at)
			n = f->len - at;
		evbuffer_add(in, f->wire + at, n);
		at += n;
		for (;;) {
			struct pop3_event ev;
			struct mh_err err;
			enum pop3_ev k;

			if (!pop3_parser_busy(p) && next_expect < f->nexpects)
				pop3_parser_expect(p, f->expects[next_expect++]);
			k = pop3_parser_next(p, in, &ev, &err);
			if (k == POP3_EV_NEED_MORE) {
				/* only a CR whose meaning the next byte decides may stay */
				assert_true(evbuffer_get_length(in) <= 1);
				break;
			}
			if (k == POP3_EV_ERROR) {
				assert_true(err.code == MH_E_PROTOCOL || err.code == MH_E_INTERNAL);
				assert_true(err.detail[0] != '\0');
				/* how much of a message came before the error depends on the pieces */
				dump_fmt(d, "ERROR %s\n", err.detail);
				/* sticky */
				assert_int_equal(pop3_parser_next(p, in, &ev, NULL), POP3_EV_ERROR);
				assert_true(pop3_parser_busy(p));
				failed = true;
				break;
			}
			switch (k) {
			case POP3_EV_STATUS:
				assert_false(in_body);
				dump_status(d, ev.status, ev.complete);
				in_body = !ev.complete && f->expects[next_expect - 1] == POP3_EXPECT_BODY;
				body.len = 0;
				break;
			case POP3_EV_LINE:
				assert_int_equal(ev.line[ev.len], '\0');
				assert_int_equal(strlen(ev.line), ev.len);
				dump_str(d, "LINE ");
				dump_quoted(d, ev.line, ev.len);
				dump_str(d, "\n");
				break;
			case POP3_EV_BODY_DATA: {
				char *tmp = malloc(ev.len);

				assert_true(in_body);
				assert_true(ev.len > 0);
				assert_true(ev.len <= evbuffer_get_length(in));
				assert_non_null(tmp);
				assert_int_equal(evbuffer_remove(in, tmp, ev.len), (int)ev.len);
				dump_add(&body, tmp, ev.len);
				free(tmp);
				break;
			}
			case POP3_EV_END:
				if (in_body) {
					assert_int_equal(ev.total, body.len);
					dump_str(d, "BODY ");
					dump_quoted(d, body.s != NULL ? body.s : "", body.len);
					dump_str(d, "\n");
				}
				dump_fmt(d, "END %llu\n", (unsigned long long)ev.total);
				in_body = false;
				break;
			default:
				fail_msg("unexpected event %d", (int)k);
			}
		}
		if (at >= f->len)
			break;
	}
	if (!failed) {
		struct mh_err err;

		if (pop3_parser_eof(p, in, &err) < 0) {
			assert_int_equal(err.code, MH_E_CONNECTION_LOST);
			if (in_body) {
				dump_str(d, "BODY ");
				dump_quoted(d, body.s != NULL ? body.s : "", body.len);
				dump_str(d, "\n");
			}
			dump_fmt(d, "EOF %s\n", err.detail);
		} else {
			assert_false(pop3_parser_busy(p));
		}
	}
	free(body.s);
	pop3_parser_free(&p);
	assert_null(p);
	evbuffer_free(in);
}

/* The transcript of the whole input; asserts every other way of feeding gives the same. */
static char *feed_all_ways(const struct feed *f)
{
	struct dump whole = {0};

	feed_run(f, f->len, f->len, &whole);
	assert_non_null(whole.s);
	for (size_t cut = 0; cut <= f->len; cut++) {
		struct dump d = {0};

		feed_run(f, cut, f->len, &d);
		if (strcmp(d.s, whole.s) != 0)
			fail_msg("cut at %zu gives\n%s\ninstead of\n%s", cut, d.s, whole.s);
		free(d.s);
	}
	{
		struct dump d = {0};

		feed_run(f, 1, 1, &d);
		if (strcmp(d.s, whole.s) != 0)
			fail_msg("byte by byte gives\n%s\ninstead of\n%s", d.s, whole.s);
		free(d.s);
	}
	return whole.s;
}

static void check_one(const char *wire, size_t len, enum pop3_expect expect, const char *want)
{
	struct feed f = {.wire = wire, .len = len, .expects = &expect, .nexpects = 1};
	char *got = feed_all_ways(&f);

	if (strcmp(got, want) != 0)
		fail_msg("input %s:\ngot\n%s\nwant\n%s", wire, got, want);
	free(got);
}

#define CHECK(wire, expect, want) check_one(wire, sizeof(wire) - 1, expect, want)

/* ---------------------------------------------------------------------------------------
 * status lines */

static void test_status_ok_err(void **state)
{
	(void)state;
	CHECK("+OK\r\n", POP3_EXPECT_STATUS, "STATUS +OK \"\"\n");
	CHECK("+OK Logged in.\r\n", POP3_EXPECT_STATUS, "STATUS +OK \"Logged in.\"\n");
	CHECK("-ERR\r\n", POP3_EXPECT_STATUS, "STATUS -ERR \"\"\n");
	CHECK("-ERR no such message\r\n", POP3_EXPECT_STATUS, "STATUS -ERR \"no such message\"\n");
	/* case and extra spaces are tolerated; trailing text is kept as sent */
	CHECK("+ok   ready \r\n", POP3_EXPECT_STATUS, "STATUS +OK \"ready \"\n");
	CHECK("-err bad\r\n", POP3_EXPECT_STATUS, "STATUS -ERR \"bad\"\n");
	/* 8-bit text (RFC 6856 UTF8) passes */
	CHECK("+OK gr\xc3\xbc\xc3\x9f\r\n", POP3_EXPECT_STATUS, "STATUS +OK \"gr\\xc3\\xbc\\xc3\\x9f\"\n");
	/* the greeting keeps the APOP timestamp in its text */
	CHECK("+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n", POP3_EXPECT_STATUS,
	      "STATUS +OK \"POP3 ready <1896.697170952@dbc.mtview.ca.us>\"\n");
}

static void test_status_codes_rfc3206(void **state)
{
	(void)state;
	CHECK("-ERR [AUTH] Authentication failed.\r\n", POP3_EXPECT_STATUS,
	      "STATUS -ERR [AUTH:AUTH] \"Authentication failed.\" line=\"[AUTH] Authentication failed.\"\n");
	CHECK("-ERR [IN-USE] Mailbox locked by another session\r\n", POP3_EXPECT_STATUS,
	      "STATUS -ERR [IN-USE:IN-USE] \"Mailbox locked by another session\" "
	      "line=\"[IN-USE] Mailbox locked by another session\"\n");
	CHECK("-ERR [LOGIN-DELAY] wait 15 minutes\r\n", POP3_EXPECT_STATUS,
	      "STATUS -ERR [LOGIN-DELAY:LOGIN-DELAY] \"wait 15 minutes\" line=\"[LOGIN-DELAY] wait 15 minutes\"\n");
	CHECK("-ERR [SYS/TEMP] disk full\r\n", POP3_EXPECT_STATUS,
	      "STATUS -ERR [SYS/TEMP:SYS/TEMP] \"disk full\" line=\"[SYS/TEMP] disk full\"\n");
	CHECK("-ERR [SYS/PERM] account disabled\r\n", POP3_EXPECT_STATUS,
	      "STATUS -ERR [SYS/PERM:SYS/PERM] \"account disabled\" line=\"[SYS/PERM] account disabled\"\n");
	/* RFC 2449 section 8: an unknown sub-level counts as its parent */
	CHECK("-ERR [SYS/TEMP/DISK] x\r\n", POP3_EXPECT_STATUS,
	      "STATUS -ERR [SYS/TEMP:SYS/TEMP/DISK] \"x\" line=\"[SYS/TEMP/DISK] x\"\n");
	CHECK("-ERR [AUTH/EXPIRED] x\r\n", POP3_EXPECT_STATUS,
	      "STATUS -ERR [AUTH:AUTH/EXPIRED] \"x\" line=\"[AUTH/EXPIRED] x\"\n");
	CHECK("-ERR [sys/perm] lower case\r\n", POP3_EXPECT_STATUS,
	      "STATUS -ERR [SYS/PERM:SYS/PERM] \"lower case\" line=\"[sys/perm] lower case\"\n");
	CHECK("-ERR [SYS] vague\r\n", POP3_EXPECT_STATUS, "STATUS -ERR [OTHER:SYS] \"vague\" line=\"[SYS] vague\"\n");
	CHECK("+OK [UTF8] ok\r\n", POP3_EXPECT_STATUS, "STATUS +OK [OTHER:UTF8] \"ok\" line=\"[UTF8] ok\"\n");
	CHECK("-ERR [AUTH]\r\n", POP3_EXPECT_STATUS, "STATUS -ERR [AUTH:AUTH] \"\" line=\"[AUTH]\"\n");
	/* "AUTHX" is not "AUTH" */
	CHECK("-ERR [AUTHX] x\r\n", POP3_EXPECT_STATUS, "STATUS -ERR [OTHER:AUTHX] \"x\" line=\"[AUTHX] x\"\n");
	/* malformed codes are text */
	CHECK("-ERR [AUTH failed\r\n", POP3_EXPECT_STATUS, "STATUS -ERR \"[AUTH failed\"\n");
	CHECK("-ERR [] x\r\n", POP3_EXPECT_STATUS, "STATUS -ERR \"[] x\"\n");
	CHECK("-ERR [SYS//TEMP] x\r\n", POP3_EXPECT_STATUS, "STATUS -ERR \"[SYS//TEMP] x\"\n");
	CHECK("-ERR [SYS/] x\r\n", POP3_EXPECT_STATUS, "STATUS -ERR \"[SYS/] x\"\n");
	CHECK("-ERR [IN USE] x\r\n", POP3_EXPECT_STATUS, "STATUS -ERR \"[IN USE] x\"\n");
	/* a code is only at the start */
	CHECK("-ERR failed [AUTH]\r\n", POP3_EXPECT_STATUS, "STATUS -ERR \"failed [AUTH]\"\n");
}

static void test_status_malformed(void **state)
{
	(void)state;
	CHECK("OK ready\r\n", POP3_EXPECT_STATUS,
	      "ERROR status line does not start with +OK or -ERR: \"OK ready\"\n");
	CHECK("+OKAY\r\n", POP3_EXPECT_STATUS, "ERROR status line does not start with +OK or -ERR: \"+OKAY\"\n");
	CHECK("\r\n", POP3_EXPECT_STATUS, "ERROR status line does not start with +OK or -ERR: \"\"\n");
	CHECK("+OK\n", POP3_EXPECT_STATUS, "ERROR bare LF line ending (expected CRLF)\n");
	CHECK("\n", POP3_EXPECT_STATUS, "ERROR bare LF line ending (expected CRLF)\n");
	CHECK("+OK a\rb\r\n", POP3_EXPECT_STATUS, "ERROR bare CR in a reply line at byte 5\n");
	CHECK("+OK a\0b\r\n", POP3_EXPECT_STATUS, "ERROR NUL byte in a reply line at byte 5\n");
	/* a continuation only where AUTH expects one */
	CHECK("+ \r\n", POP3_EXPECT_STATUS, "ERROR status line does not start with +OK or -ERR: \"+ \"\n");
	CHECK("+ \r\n", POP3_EXPECT_AUTH, "STATUS + \"\"\n");
	CHECK("+\r\n", POP3_EXPECT_AUTH, "STATUS + \"\"\n");
	CHECK("+ VGVzdA==\r\n", POP3_EXPECT_AUTH, "STATUS + \"VGVzdA==\"\n");
	CHECK("+OK Logged in.\r\n", POP3_EXPECT_AUTH, "STATUS +OK \"Logged in.\"\n");
	CHECK("+x\r\n", POP3_EXPECT_AUTH, "ERROR status line does not start with +OK or -ERR: \"+x\"\n");
	/* cut off */
	CHECK("+OK rea", POP3_EXPECT_STATUS, "EOF the connection closed in the middle of a reply line\n");
	CHECK("", POP3_EXPECT_STATUS, "EOF the connection closed before the server's reply\n");
}

/* ---------------------------------------------------------------------------------------
 * listings */

static void test_listing_capa(void **state)
{
	(void)state;
	CHECK("+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nSASL PLAIN LOGIN\r\n.\r\n", POP3_EXPECT_LINES,
	      "STATUS +OK \"\" ...\nLINE \"CAPA\"\nLINE \"TOP\"\nLINE \"UIDL\"\nLINE \"SASL PLAIN LOGIN\"\nEND 4\n");
	CHECK("+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n", POP3_EXPECT_LINES,
	      "STATUS +OK \"2 messages\" ...\nLINE \"1 120\"\nLINE \"2 200\"\nEND 2\n");
	CHECK("+OK\r\n.\r\n", POP3_EXPECT_LINES, "STATUS +OK \"\" ...\nEND 0\n");
	/* -ERR ends a multi-line reply at once */
	CHECK("-ERR not supported\r\n", POP3_EXPECT_LINES, "STATUS -ERR \"not supported\"\n");
}

static void test_listing_dot_stuffing(void **state)
{
	(void)state;
	/* ".." is ".", "..." is "..", ".a" is "a", an empty line stays empty */
	CHECK("+OK\r\n..\r\n...x\r\n.a\r\n\r\n.\r\n", POP3_EXPECT_LINES,
	      "STATUS +OK \"\" ...\nLINE \".\"\nLINE \"..x\"\nLINE \"a\"\nLINE \"\"\nEND 4\n");
	/* " ." is not the end */
	CHECK("+OK\r\n .\r\n.\r\n", POP3_EXPECT_LINES, "STATUS +OK \"\" ...\nLINE \" .\"\nEND 1\n");
}

static void test_listing_malformed(void **state)
{
	(void)state;
	CHECK("+OK\r\nTOP\n.\r\n", POP3_EXPECT_LINES,
	      "STATUS +OK \"\" ...\nERROR bare LF line ending (expected CRLF)\n");
	CHECK("+OK\r\nA\rB\r\n.\r\n", POP3_EXPECT_LINES,
	      "STATUS +OK \"\" ...\nERROR bare CR in a reply line at byte 1\n");
	CHECK("+OK\r\nTOP\r\nUIDL\r\n", POP3_EXPECT_LINES,
	      "STATUS +OK \"\" ...\nLINE \"TOP\"\nLINE \"UIDL\"\nEOF the connection closed in the middle of a "
	      "multi-line reply (2 lines received, no final \".\" line)\n");
	CHECK("+OK\r\nTOP\r\n.", POP3_EXPECT_LINES,
	      "STATUS +OK \"\" ...\nLINE \"TOP\"\nEOF the connection closed in the middle of a "
	      "multi-line reply (1 lines received, no final \".\" line)\n");
}

/* ---------------------------------------------------------------------------------------
 * messages */

static void test_body_simple(void **state)
{
	(void)state;
	/* the CRLF before the final "." belongs to the message */
	CHECK("+OK 7 octets\r\nhello\r\n.\r\n", POP3_EXPECT_BODY,
	      "STATUS +OK \"7 octets\" ...\nBODY \"hello\\r\\n\"\nEND 7\n");
	CHECK("+OK\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"\"\nEND 0\n");
	CHECK("+OK\r\n\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"\\r\\n\"\nEND 2\n");
	CHECK("-ERR There's no message 5.\r\n", POP3_EXPECT_BODY, "STATUS -ERR \"There's no message 5.\"\n");
	CHECK("+OK\r\nSubject: a\r\n\r\nline 1\r\n\r\nline 3\r\n.\r\n", POP3_EXPECT_BODY,
	      "STATUS +OK \"\" ...\nBODY \"Subject: a\\r\\n\\r\\nline 1\\r\\n\\r\\nline 3\\r\\n\"\nEND 32\n");
}

static void test_body_dot_stuffing(void **state)
{
	(void)state;
	/* a line that is "." in the message is sent as ".." */
	CHECK("+OK\r\na\r\n..\r\nb\r\n.\r\n", POP3_EXPECT_BODY,
	      "STATUS +OK \"\" ...\nBODY \"a\\r\\n.\\r\\nb\\r\\n\"\nEND 9\n");
	CHECK("+OK\r\n...\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"..\\r\\n\"\nEND 4\n");
	CHECK("+OK\r\n..x\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \".x\\r\\n\"\nEND 4\n");
	/* the first line too */
	CHECK("+OK\r\n..\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \".\\r\\n\"\nEND 3\n");
	/* an unstuffed line-start dot is dropped (RFC 1939: the first octet is stuffing) */
	CHECK("+OK\r\n.x\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"x\\r\\n\"\nEND 3\n");
	/* a dot inside a line is content */
	CHECK("+OK\r\na.b.\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"a.b.\\r\\n\"\nEND 6\n");
	/* "\r\n.\r\n" inside the last line's text: only a whole "." line ends it */
	CHECK("+OK\r\nx\r\n.. \r\n.\r\n", POP3_EXPECT_BODY,
	      "STATUS +OK \"\" ...\nBODY \"x\\r\\n. \\r\\n\"\nEND 7\n");
}

static void test_body_lone_cr_lf(void **state)
{
	(void)state;
	/* lone LF does not end a line: a dot after it is content, kept as it is */
	CHECK("+OK\r\na\n.b\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"a\\n.b\\r\\n\"\nEND 6\n");
	CHECK("+OK\r\na\n.\n\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"a\\n.\\n\\r\\n\"\nEND 6\n");
	/* lone CR: kept, and a dot after it is content */
	CHECK("+OK\r\na\r.b\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"a\\r.b\\r\\n\"\nEND 6\n");
	/* CR CR LF: the last CR and the LF end the line */
	CHECK("+OK\r\na\r\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"a\\r\\r\\n\"\nEND 4\n");
	/* LF CR LF */
	CHECK("+OK\r\na\n\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"a\\n\\r\\n\"\nEND 4\n");
	/* a stuffing dot followed by a lone LF or CR: the dot goes, the rest stays */
	CHECK("+OK\r\n.\nx\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"\\nx\\r\\n\"\nEND 4\n");
	CHECK("+OK\r\n.\rx\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"\\rx\\r\\n\"\nEND 4\n");
	CHECK("+OK\r\n.\r\r\n.\r\n", POP3_EXPECT_BODY, "STATUS +OK \"\" ...\nBODY \"\\r\\r\\n\"\nEND 3\n");
	/* a message without a final CRLF cannot be sent; bare LF before the dot is no end */
	CHECK("+OK\r\nabc\n.\n", POP3_EXPECT_BODY,
	      "STATUS +OK \"\" ...\nBODY \"abc\\n.\\n\"\nEOF the connection closed in the middle of a message "
	      "(6 bytes received, no final \".\" line)\n");
	/* NUL and 8-bit bytes are content */
	CHECK("+OK\r\n\0\xff\x80\r\n.\r\n", POP3_EXPECT_BODY,
	      "STATUS +OK \"\" ...\nBODY \"\\x00\\xff\\x80\\r\\n\"\nEND 5\n");
}

static void test_body_missing_terminator(void **state)
{
	(void)state;
	CHECK("+OK\r\nabc\r\n", POP3_EXPECT_BODY,
	      "STATUS +OK \"\" ...\nBODY \"abc\\r\\n\"\nEOF the connection closed in the middle of a message "
	      "(5 bytes received, no final \".\" line)\n");
	CHECK("+OK\r\nabc\r\n.", POP3_EXPECT_BODY,
	      "STATUS +OK \"\" ...\nBODY \"abc\\r\\n\"\nEOF the connection closed in the middle of a message "
	      "(5 bytes received, no final \".\" line)\n");
	/* ".CR" at the end: the CR waits in the input for the LF that never comes */
	CHECK("+OK\r\nabc\r\n.\r", POP3_EXPECT_BODY,
	      "STATUS +OK \"\" ...\nBODY \"abc\\r\\n\"\nEOF the connection closed in the middle of a message "
	      "(5 bytes received, no final \".\" line)\n");
	CHECK("+OK\r\n", POP3_EXPECT_BODY,
	      "STATUS +OK \"\" ...\nBODY \"\"\nEOF the connection closed in the middle of a message "
	      "(0 bytes received, no final \".\" line)\n");
	CHECK("+OK\r\nab", POP3_EXPECT_BODY,
	      "STATUS +OK \"\" ...\nBODY \"ab\"\nEOF the connection closed in the middle of a message "
	      "(2 bytes received, no final \".\" line)\n");
}

/* Several pipelined replies in one stream, cut everywhere. */
static void test_pipelined_replies_every_split(void **state)
{
	static const char wire[] = "+OK 2 320\r\n"
				   "+OK\r\n1 000000010abc\r\n2 000000020abc\r\n.\r\n"
				   "+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"
				   "+OK 120 octets\r\n..first\r\nmid\rdle\nx\r\n..\r\n.\r\n"
				   "-ERR [SYS/TEMP] try later\r\n"
				   "+OK\r\n.\r\n"
				   "+OK bye\r\n";
	static const enum pop3_expect ex[] = {POP3_EXPECT_STATUS, POP3_EXPECT_LINES, POP3_EXPECT_LINES,
					      POP3_EXPECT_BODY,   POP3_EXPECT_BODY,  POP3_EXPECT_BODY,
					      POP3_EXPECT_STATUS};
	struct feed f = {.wire = wire, .len = sizeof(wire) - 1, .expects = ex, .nexpects = 7};
	char *got;

	(void)state;
	got = feed_all_ways(&f);
	assert_string_equal(got, "STATUS +OK \"2 320\"\n"
				 "STATUS +OK \"\" ...\nLINE \"1 000000010abc\"\nLINE \"2 000000020abc\"\nEND 2\n"
				 "STATUS +OK \"2 messages\" ...\nLINE \"1 120\"\nLINE \"2 200\"\nEND 2\n"
				 "STATUS +OK \"120 octets\" ...\nBODY \".first\\r\\nmid\\rdle\\nx\\r\\n.\\r\\n\"\nEND 22\n"
				 "STATUS -ERR [SYS/TEMP:SYS/TEMP] \"try later\" line=\"[SYS/TEMP] try later\"\n"
				 "STATUS +OK \"\" ...\nBODY \"\"\nEND 0\n"
				 "STATUS +OK \"bye\"\n");
	free(got);
}

/* Server-side stuffing of an arbitrary message (RFC 1939 section 3), as a reply. */
static char *stuff_reply(const unsigned char *msg, size_t n, size_t *len_r)
{
	char *out = malloc(2 * n + 16);
	size_t o = 0;
	bool line_start = true;

	assert_non_null(out);
	memcpy(out, "+OK\r\n", 5);
	o = 5;
	for (size_t i = 0; i < n; i++) {
		if (line_start && msg[i] == '.')
			out[o++] = '.';
		out[o++] = (char)msg[i];
		line_start = msg[i] == '\n' && i > 0 && msg[i - 1] == '\r';
	}
	memcpy(out + o, ".\r\n", 3);
	o += 3;
	*len_r = o;
	return out;
}

/* Random messages made of the interesting bytes, stuffed, decoded in random pieces: the
 * result is the message, byte for byte. */
static void test_body_roundtrip_random(void **state)
{
	static const unsigned char alphabet[] = {'.', '.', '\r', '\n', 'a', '\0', 0xff, ' '};
	uint32_t rng = 12345;

	(void)state;
	for (int round = 0; round < 400; round++) {
		size_t n, len;
		unsigned char msg[200];
		char *wire;
		enum pop3_expect ex = POP3_EXPECT_BODY;
		struct feed f;
		struct dump whole = {0}, want = {0};

		rng = rng * 1103515245u + 12345u;
		n = 2 + (rng >> 16) % (sizeof(msg) - 2);
		for (size_t i = 0; i + 2 < n; i++) {
			rng = rng * 1103515245u + 12345u;
			msg[i] = alphabet[(rng >> 16) % sizeof(alphabet)];
		}
		msg[n - 2] = '\r'; /* a message always ends with CRLF on the wire */
		msg[n - 1] = '\n';
		wire = stuff_reply(msg, n, &len);
		f = (struct feed){.wire = wire, .len = len, .expects = &ex, .nexpects = 1};
		rng = rng * 1103515245u + 12345u;
		feed_run(&f, 1 + (rng >> 16) % len, 1 + (rng >> 8) % 7, &whole);
		dump_str(&want, "STATUS +OK \"\" ...\nBODY ");
		dump_quoted(&want, (const char *)msg, n);
		dump_fmt(&want, "\nEND %zu\n", n);
		if (strcmp(whole.s, want.s) != 0)
			fail_msg("round %d:\ngot\n%s\nwant\n%s", round, whole.s, want.s);
		free(whole.s);
		free(want.s);
		free(wire);
	}
}

/* A 5 MB message arrives in 4 KiB reads: it streams (no event holds more than is
 * buffered) and comes out byte-identical. */
static void test_body_large_streamed(void **state)
{
	const size_t n = 5 * 1024 * 1024;
	unsigned char *msg = malloc(n), *got = malloc(n);
	struct pop3_parser *p = pop3_parser_new(NULL);
	struct evbuffer *in = evbuffer_new();
	size_t len, at = 0, have = 0, events = 0;
	char *wire;
	bool ended = false;

	(void)state;
	assert_non_null(msg);
	assert_non_null(got);
	for (size_t i = 0; i < n; i++)
		msg[i] = (i % 77 == 76) ? '\n' : (i % 77 == 75) ? '\r' : (i % 77 == 0) ? '.' : (unsigned char)('a' + i % 26);
	msg[n - 2] = '\r';
	msg[n - 1] = '\n';
	wire = stuff_reply(msg, n, &len);
	pop3_parser_expect(p, POP3_EXPECT_BODY);
	while (!ended) {
		size_t k = len - at < 4096 ? len - at : 4096;
		struct pop3_event ev;
		enum pop3_ev e;

		assert_true(k > 0);
		evbuffer_add(in, wire + at, k);
		at += k;
		while ((e = pop3_parser_next(p, in, &ev, NULL)) != POP3_EV_NEED_MORE) {
			assert_int_not_equal(e, POP3_EV_ERROR);
			if (e == POP3_EV_BODY_DATA) {
				assert_true(ev.len <= evbuffer_get_length(in));
				assert_true(have + ev.len <= n);
				evbuffer_remove(in, got + have, ev.len);
				have += ev.len;
				events++;
			} else if (e == POP3_EV_END) {
				assert_int_equal(ev.total, n);
				ended = true;
			}
		}
	}
	assert_int_equal(at, len);
	assert_int_equal(have, n);
	assert_memory_equal(got, msg, n);
	assert_true(events > 1000); /* streamed, not gathered */
	assert_false(pop3_parser_busy(p));
	pop3_parser_free(&p);
	evbuffer_free(in);
	free(wire);
	free(msg);
	free(got);
}

/* ---------------------------------------------------------------------------------------
 * limits */

static void check_limited(const char *wire, size_t len, enum pop3_expect expect, const struct pop3_parser_limits *lim,
			  const char *want)
{
	struct feed f = {.wire = wire, .len = len, .expects = &expect, .nexpects = 1, .lim = lim};
	char *got = feed_all_ways(&f);

	if (strcmp(got, want) != 0)
		fail_msg("got\n%s\nwant\n%s", got, want);
	free(got);
}

static void test_line_too_long(void **state)
{
	struct pop3_parser_limits lim;
	struct pop3_parser *p;
	struct evbuffer *in;
	struct pop3_event ev;
	struct mh_err err;
	char big[100];

	(void)state;
	pop3_parser_limits_default(&lim);
	lim.max_line = 10; /* CRLF included */
	check_limited("+OK 45678\r\n", 11, POP3_EXPECT_STATUS, &lim, "ERROR line longer than 10 bytes\n");
	check_limited("+OK 4567\r\n", 10, POP3_EXPECT_STATUS, &lim, "STATUS +OK \"4567\"\n");
	check_limited("+OK\r\n12345678\r\n123456789\r\n.\r\n", 29, POP3_EXPECT_LINES, &lim,
		      "STATUS +OK \"\" ...\nLINE \"12345678\"\nERROR line longer than 10 bytes\n");
	/* message lines have no limit but the message's */
	check_limited("+OK\r\n123456789012345\r\n.\r\n", 25, POP3_EXPECT_BODY, &lim,
		      "STATUS +OK \"\" ...\nBODY \"123456789012345\\r\\n\"\nEND 17\n");

	/* fails before any LF arrives: an endless line is never buffered */
	p = pop3_parser_new(&lim);
	in = evbuffer_new();
	memset(big, 'x', sizeof(big));
	pop3_parser_expect(p, POP3_EXPECT_STATUS);
	evbuffer_add(in, "+OK ", 4);
	assert_int_equal(pop3_parser_next(p, in, &ev, &err), POP3_EV_NEED_MORE);
	evbuffer_add(in, big, sizeof(big));
	assert_int_equal(pop3_parser_next(p, in, &ev, &err), POP3_EV_ERROR);
	assert_int_equal(err.code, MH_E_PROTOCOL);
	assert_string_equal(err.detail, "line longer than 10 bytes");
	pop3_parser_free(&p);
	evbuffer_free(in);
}

static void test_message_too_large(void **state)
{
	struct pop3_parser_limits lim;

	(void)state;
	pop3_parser_limits_default(&lim);
	lim.max_message = 10;
	/* exactly 10 bytes pass */
	check_limited("+OK\r\n12345678\r\n.\r\n", 18, POP3_EXPECT_BODY, &lim,
		      "STATUS +OK \"\" ...\nBODY \"12345678\\r\\n\"\nEND 10\n");
	check_limited("+OK\r\n..345678\r\n.\r\n", 18, POP3_EXPECT_BODY, &lim,
		      "STATUS +OK \"\" ...\nBODY \".345678\\r\\n\"\nEND 9\n");
	/* 11 do not, whatever the split */
	check_limited("+OK\r\n123456789\r\n.\r\n", 19, POP3_EXPECT_BODY, &lim,
		      "STATUS +OK \"\" ...\nERROR message larger than 10 bytes\n");
	/* the CR of a stuffed ".\r" counts too */
	lim.max_message = 2;
	check_limited("+OK\r\nab\r\n.\rx", 12, POP3_EXPECT_BODY, &lim,
		      "STATUS +OK \"\" ...\nERROR message larger than 2 bytes\n");
}

static void test_listing_too_many_lines(void **state)
{
	struct pop3_parser_limits lim;

	(void)state;
	pop3_parser_limits_default(&lim);
	lim.max_lines = 2;
	check_limited("+OK\r\n1 a\r\n2 b\r\n.\r\n", 18, POP3_EXPECT_LINES, &lim,
		      "STATUS +OK \"\" ...\nLINE \"1 a\"\nLINE \"2 b\"\nEND 2\n");
	check_limited("+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n", 23, POP3_EXPECT_LINES, &lim,
		      "STATUS +OK \"\" ...\nLINE \"1 a\"\nLINE \"2 b\"\nERROR listing longer than 2 lines\n");
}

/* ---------------------------------------------------------------------------------------
 * API rules */

static void test_data_without_expectation(void **state)
{
	struct pop3_parser *p = pop3_parser_new(NULL);
	struct evbuffer *in = evbuffer_new();
	struct pop3_event ev;
	struct mh_err err;

	(void)state;
	assert_false(pop3_parser_busy(p));
	assert_int_equal(pop3_parser_next(p, in, &ev, &err), POP3_EV_NEED_MORE);
	assert_int_equal(pop3_parser_eof(p, in, &err), 0);
	evbuffer_add(in, "+OK\r\n", 5);
	assert_int_equal(pop3_parser_next(p, in, &ev, &err), POP3_EV_ERROR);
	assert_int_equal(err.code, MH_E_PROTOCOL);
	assert_string_equal(err.detail, "the server sent data when no reply was expected");
	/* sticky, even for good input and a new expectation */
	pop3_parser_expect(p, POP3_EXPECT_STATUS);
	assert_int_equal(pop3_parser_next(p, in, &ev, &err), POP3_EV_ERROR);
	assert_true(pop3_parser_busy(p));
	/* reset forgets it */
	pop3_parser_reset(p);
	assert_false(pop3_parser_busy(p));
	pop3_parser_expect(p, POP3_EXPECT_STATUS);
	assert_int_equal(pop3_parser_next(p, in, &ev, &err), POP3_EV_STATUS);
	assert_true(ev.status->ok);
	assert_true(ev.complete);
	assert_false(pop3_parser_busy(p));
	pop3_parser_free(&p);
	pop3_parser_free(&p); /* NULL: no-op */
	evbuffer_free(in);
}

static void test_expect_in_the_middle_is_a_bug(void **state)
{
	struct pop3_parser *p = pop3_parser_new(NULL);
	struct evbuffer *in = evbuffer_new();
	struct pop3_event ev;
	struct mh_err err;

	(void)state;
	pop3_parser_expect(p, POP3_EXPECT_LINES);
	evbuffer_add(in, "+OK\r\nTOP\r\n", 10);
	assert_int_equal(pop3_parser_next(p, in, &ev, &err), POP3_EV_STATUS);
	assert_false(ev.complete);
	pop3_parser_expect(p, POP3_EXPECT_STATUS);
	assert_int_equal(pop3_parser_next(p, in, &ev, &err), POP3_EV_ERROR);
	assert_int_equal(err.code, MH_E_INTERNAL);
	pop3_parser_free(&p);
	evbuffer_free(in);
}

/* ---------------------------------------------------------------------------------------
 * helpers */

static void test_parse_helpers(void **state)
{
	uint32_t count, msgno;
	uint64_t octets, size;
	const char *uid, *ts;
	size_t uid_len, ts_len;

	(void)state;
	assert_int_equal(pop3_parse_stat("2 320", &count, &octets), 0);
	assert_int_equal(count, 2);
	assert_int_equal(octets, 320);
	assert_int_equal(pop3_parse_stat("0 0 extra words", &count, &octets), 0);
	assert_int_equal(count, 0);
	assert_int_equal(pop3_parse_stat("4294967295 18446744073709551615", &count, &octets), 0);
	assert_int_equal(count, 4294967295u);
	assert_true(octets == UINT64_MAX);
	assert_int_equal(pop3_parse_stat("4294967296 1", &count, &octets), -1);
	assert_int_equal(pop3_parse_stat("2", &count, &octets), -1);
	assert_int_equal(pop3_parse_stat("-2 3", &count, &octets), -1);
	assert_int_equal(pop3_parse_stat("2 3x", &count, &octets), -1);
	assert_int_equal(pop3_parse_stat("", &count, &octets), -1);

	assert_int_equal(pop3_parse_list_line("1 120", 5, &msgno, &size), 0);
	assert_int_equal(msgno, 1);
	assert_int_equal(size, 120);
	assert_int_equal(pop3_parse_list_line("7 99 extra", 10, &msgno, &size), 0);
	assert_int_equal(msgno, 7);
	assert_int_equal(pop3_parse_list_line("0 120", 5, &msgno, &size), -1); /* numbers start at 1 */
	assert_int_equal(pop3_parse_list_line("1 +5", 4, &msgno, &size), -1);
	assert_int_equal(pop3_parse_list_line("1", 1, &msgno, &size), -1);
	assert_int_equal(pop3_parse_list_line("x 1", 3, &msgno, &size), -1);

	assert_int_equal(pop3_parse_uidl_line("1 whqtswO00WBw418f9t5JxYwZ", 26, &msgno, &uid, &uid_len), 0);
	assert_int_equal(msgno, 1);
	assert_int_equal(uid_len, 24);
	assert_memory_equal(uid, "whqtswO00WBw418f9t5JxYwZ", 24);
	assert_int_equal(pop3_parse_uidl_line("2 abc  ", 7, &msgno, &uid, &uid_len), 0);
	assert_int_equal(uid_len, 3);
	assert_int_equal(pop3_parse_uidl_line("2 abc def", 9, &msgno, &uid, &uid_len), -1);
	assert_int_equal(pop3_parse_uidl_line("2", 1, &msgno, &uid, &uid_len), -1);
	assert_int_equal(pop3_parse_uidl_line("2 a\x7f", 4, &msgno, &uid, &uid_len), -1);
	{
		char line[POP3_UID_MAX + 10];

		memset(line, 'u', sizeof(line));
		memcpy(line, "3 ", 2);
		assert_int_equal(pop3_parse_uidl_line(line, 2 + POP3_UID_MAX, &msgno, &uid, &uid_len), 0);
		assert_int_equal(pop3_parse_uidl_line(line, 3 + POP3_UID_MAX, &msgno, &uid, &uid_len), -1);
	}

	assert_int_equal(pop3_greeting_timestamp("POP3 server ready <1896.697170952@dbc.mtview.ca.us>", &ts, &ts_len), 0);
	assert_int_equal(ts_len, strlen("<1896.697170952@dbc.mtview.ca.us>"));
	assert_memory_equal(ts, "<1896.697170952@dbc.mtview.ca.us>", ts_len);
	assert_int_equal(pop3_greeting_timestamp("Dovecot ready.", &ts, &ts_len), -1);
	assert_int_equal(pop3_greeting_timestamp("<no-at-sign> <a@b>", &ts, &ts_len), 0);
	assert_memory_equal(ts, "<a@b>", 5);
	assert_int_equal(pop3_greeting_timestamp("<a @b>", &ts, &ts_len), -1);
	assert_int_equal(pop3_greeting_timestamp("<a@b", &ts, &ts_len), -1);

	assert_string_equal(pop3_code_name(POP3_CODE_LOGIN_DELAY), "LOGIN-DELAY");
	assert_string_equal(pop3_code_name((enum pop3_code)99), "OTHER");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_ok_err),
		cmocka_unit_test(test_status_codes_rfc3206),
		cmocka_unit_test(test_status_malformed),
		cmocka_unit_test(test_listing_capa),
		cmocka_unit_test(test_listing_dot_stuffing),
		cmocka_unit_test(test_listing_malformed),
		cmocka_unit_test(test_body_simple),
		cmocka_unit_test(test_body_dot_stuffing),
		cmocka_unit_test(test_body_lone_cr_lf),
		cmocka_unit_test(test_body_missing_terminator),
		cmocka_unit_test(test_pipelined_replies_every_split),
		cmocka_unit_test(test_body_roundtrip_random),
		cmocka_unit_test(test_body_large_streamed),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_message_too_large),
		cmocka_unit_test(test_listing_too_many_lines),
		cmocka_unit_test(test_data_without_expectation),
		cmocka_unit_test(test_expect_in_the_middle_is_a_bug),
		cmocka_unit_test(test_parse_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
