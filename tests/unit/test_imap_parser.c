/* test_imap_parser.c - the IMAP response parser, fed whole, cut at every byte, and one
 * byte at a time. Every run is turned into a transcript (responses, literal events, the
 * error) and all the ways of feeding an input must give the same transcript. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "imap_parser.h"

/* A growable transcript. */
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
	char tmp[512];
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

static void dump_arg(struct dump *d, const struct imap_arg *a)
{
	switch (a->type) {
	case IMAP_ARG_ATOM:
		assert_int_equal(strlen(a->str), a->len);
		dump_add(d, a->str, a->len);
		break;
	case IMAP_ARG_STRING:
		assert_int_equal(a->str[a->len], '\0');
		dump_quoted(d, a->str, a->len);
		break;
	case IMAP_ARG_LITERAL:
		assert_int_equal(a->str[a->len], '\0');
		dump_fmt(d, "{%zu:", a->len);
		dump_quoted(d, a->str, a->len);
		dump_str(d, "}");
		break;
	case IMAP_ARG_STREAMED:
		dump_fmt(d, "{S%llu}", (unsigned long long)a->literal_size);
		break;
	case IMAP_ARG_NIL:
		dump_str(d, "NIL");
		break;
	case IMAP_ARG_LIST:
		dump_str(d, "(");
		for (size_t i = 0; i < a->count; i++) {
			if (i > 0)
				dump_str(d, " ");
			dump_arg(d, &a->items[i]);
		}
		dump_str(d, ")");
		break;
	}
}

static const char *const status_names[] = {"", "OK", "NO", "BAD", "PREAUTH", "BYE"};

static void dump_response(struct dump *d, const struct imap_response *r)
{
	switch (r->kind) {
	case IMAP_RESP_UNTAGGED:
		assert_null(r->tag);
		dump_str(d, "*");
		break;
	case IMAP_RESP_TAGGED:
		assert_non_null(r->tag);
		dump_fmt(d, "T:%s", r->tag);
		break;
	case IMAP_RESP_CONTINUATION:
		assert_null(r->tag);
		assert_null(r->name);
		assert_non_null(r->text);
		dump_str(d, "+ ");
		dump_quoted(d, r->text, strlen(r->text));
		dump_str(d, ";\n");
		return;
	}
	if (r->has_number)
		dump_fmt(d, " #%u", r->number);
	assert_non_null(r->name);
	dump_fmt(d, " %s", r->name);
	if (r->status != IMAP_STATUS_NONE) {
		assert_string_equal(r->name, status_names[r->status]);
		assert_int_equal(r->count, 0);
		if (r->code != NULL) {
			assert_non_null(r->code_args);
			dump_fmt(d, " [%s|%s]", r->code, r->code_args);
		} else {
			assert_null(r->code_args);
		}
		assert_non_null(r->text);
		dump_str(d, " ");
		dump_quoted(d, r->text, strlen(r->text));
	} else {
		assert_null(r->code);
		assert_null(r->text);
		for (size_t i = 0; i < r->count; i++) {
			dump_str(d, " ");
			dump_arg(d, &r->args[i]);
		}
	}
	dump_str(d, ";\n");
}

/* One parser run fed piece by piece. */
struct run {
	struct imap_parser *p;
	struct evbuffer *in;
	struct dump d;
	struct dump lit; /* LITERAL_DATA collected until LITERAL_END */
	uint64_t lit_size;
	bool in_literal;
	bool failed;
	size_t fed; /* bytes given to the parser so far */
	size_t fed_at_error;
	struct mh_err err;
};

static void run_init(struct run *r, const struct imap_parser_limits *lim, long inline_max)
{
	memset(r, 0, sizeof(*r));
	r->p = imap_parser_new(lim);
	assert_non_null(r->p);
	if (inline_max >= 0)
		imap_parser_set_inline_max(r->p, (size_t)inline_max);
	r->in = evbuffer_new();
	assert_non_null(r->in);
	dump_str(&r->d, "");
}

static void run_cleanup(struct run *r)
{
	imap_parser_free(&r->p);
	assert_null(r->p);
	evbuffer_free(r->in);
	free(r->d.s);
	free(r->lit.s);
}

/* Drains events until NEED_MORE or ERROR. */
static void run_drain(struct run *r)
{
	struct imap_event ev;
	enum imap_ev k;
	char buf[4096];

	while (!r->failed) {
		k = imap_parser_next(r->p, r->in, &ev, &r->err);
		switch (k) {
		case IMAP_EV_NEED_MORE:
			assert_int_equal(evbuffer_get_length(r->in), 0);
			return;
		case IMAP_EV_RESPONSE:
			assert_false(r->in_literal);
			dump_response(&r->d, ev.resp);
			break;
		case IMAP_EV_LITERAL_BEGIN:
			assert_false(r->in_literal);
			assert_non_null(ev.resp);
			r->in_literal = true;
			r->lit_size = ev.literal_size;
			r->lit.len = 0;
			dump_fmt(&r->d, "<BEGIN %s %s %llu>", ev.resp->name,
				 ev.literal_key ? ev.literal_key : "-",
				 (unsigned long long)ev.literal_size);
			break;
		case IMAP_EV_LITERAL_DATA:
			assert_true(r->in_literal);
			assert_true(ev.len > 0);
			assert_true(ev.len <= evbuffer_get_length(r->in));
			assert_true(r->lit.len + ev.len <= r->lit_size);
			assert_int_equal(ev.literal_size, r->lit_size);
			for (size_t left = ev.len; left > 0;) {
				size_t k2 = left < sizeof(buf) ? left : sizeof(buf);

				assert_int_equal(evbuffer_remove(r->in, buf, k2), (int)k2);
				dump_add(&r->lit, buf, k2);
				left -= k2;
			}
			break;
		case IMAP_EV_LITERAL_END:
			assert_true(r->in_literal);
			assert_int_equal(r->lit.len, r->lit_size);
			r->in_literal = false;
			dump_str(&r->d, "<DATA ");
			dump_quoted(&r->d, r->lit.s ? r->lit.s : "", r->lit.len);
			dump_str(&r->d, "><END>");
			break;
		case IMAP_EV_ERROR:
			assert_int_equal(r->err.code, MH_E_PROTOCOL);
			r->failed = true;
			r->fed_at_error = r->fed;
			dump_fmt(&r->d, "ERROR %s\n", r->err.detail);
			break;
		}
	}
}

static void run_feed(struct run *r, const char *data, size_t n)
{
	if (r->failed)
		return;
	if (n > 0)
		assert_int_equal(evbuffer_add(r->in, data, n), 0);
	r->fed += n;
	run_drain(r);
}

/* The transcript of wire fed in pieces cut at cuts[0..ncuts). */
static char *parse_cut(const char *wire, size_t n, const struct imap_parser_limits *lim,
		       long inline_max, const size_t *cuts, size_t ncuts)
{
	struct run r;
	size_t at = 0;
	char *out;

	run_init(&r, lim, inline_max);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;

		run_feed(&r, wire + at, end - at);
		at = end;
	}
	out = strdup(r.d.s);
	run_cleanup(&r);
	return out;
}

static char *parse_bytewise(const char *wire, size_t n, const struct imap_parser_limits *lim,
			    long inline_max)
{
	struct run r;
	char *out;

	run_init(&r, lim, inline_max);
	for (size_t i = 0; i < n; i++)
		run_feed(&r, wire + i, 1);
	out = strdup(r.d.s);
	run_cleanup(&r);
	return out;
}

/* Parses wire whole, at every cut point and byte by byte; all must give expected. */
static void check_lim(const char *wire, size_t n, const struct imap_parser_limits *lim,
		      long inline_max, const char *expected)
{
	char *got = parse_cut(wire, n, lim, inline_max, NULL, 0);

	if (strcmp(got, expected) != 0)
		print_error("whole input:\n got: %s\nwant: %s\n", got, expected);
	assert_string_equal(got, expected);
	free(got);
	for (size_t cut = 1; cut < n; cut++) {
		got = parse_cut(wire, n, lim, inline_max, &cut, 1);
		if (strcmp(got, expected) != 0)
			print_error("cut at %zu:\n got: %s\nwant: %s\n", cut, got, expected);
		assert_string_equal(got, expected);
		free(got);
	}
	got = parse_bytewise(wire, n, lim, inline_max);
	assert_string_equal(got, expected);
	free(got);
}

/* A string literal and its length, NULs included. */
#define S(lit) (lit), (sizeof(lit) - 1)

static void check(const char *wire, const char *expected)
{
	check_lim(wire, strlen(wire), NULL, -1, expected);
}

/* For hostile input: every feeding ends in an error whose detail contains what. */
static void check_error_lim(const char *wire, size_t n, const struct imap_parser_limits *lim,
			    const char *what)
{
	char *got = parse_cut(wire, n, lim, -1, NULL, 0);
	const char *e = strstr(got, "ERROR ");

	if (e == NULL || strstr(e, what) == NULL)
		print_error("want error \"%s\", got: %s\n", what, got);
	assert_non_null(e);
	assert_non_null(strstr(e, what));
	check_lim(wire, n, lim, -1, got);
	free(got);
}

static void check_error(const char *wire, const char *what)
{
	check_error_lim(wire, strlen(wire), NULL, what);
}

/* Data responses. */

static void test_capability(void **state)
{
	(void)state;
	check("* CAPABILITY IMAP4rev1 IDLE AUTH=PLAIN LITERAL+ ID\r\n",
	      "* CAPABILITY IMAP4rev1 IDLE AUTH=PLAIN LITERAL+ ID;\n");
}

static void test_list_flags_and_quoted_name(void **state)
{
	(void)state;
	check("* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n",
	      "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\";\n");
}

static void test_list_empty_flags_nil_delimiter(void **state)
{
	(void)state;
	check("* LIST () NIL INBOX\r\n", "* LIST () NIL INBOX;\n");
	check("* LIST () nil INBOX\r\n", "* LIST () NIL INBOX;\n");
}

static void test_list_literal_mailbox_name(void **state)
{
	(void)state;
	check("* LIST () \"/\" {5}\r\nIN)BX\r\n", "* LIST () \"/\" {5:\"IN)BX\"};\n");
}

static void test_status(void **state)
{
	(void)state;
	check("* STATUS \"x\" (MESSAGES 3 UIDNEXT 9)\r\n",
	      "* STATUS \"x\" (MESSAGES 3 UIDNEXT 9);\n");
}

static void test_exists_expunge_recent(void **state)
{
	(void)state;
	check("* 3 EXISTS\r\n* 0 RECENT\r\n* 4294967295 EXPUNGE\r\n",
	      "* #3 EXISTS;\n* #0 RECENT;\n* #4294967295 EXPUNGE;\n");
}

static void test_fetch_inline_literal(void **state)
{
	(void)state;
	check("* 5 FETCH (UID 7 FLAGS (\\Seen $Forwarded) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
	      "RFC822.SIZE 12 BODY[] {12}\r\nSubject: x\r\n)\r\n",
	      "* #5 FETCH (UID 7 FLAGS (\\Seen $Forwarded) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
	      "RFC822.SIZE 12 BODY[] {12:\"Subject: x\\r\\n\"});\n");
}

static void test_fetch_streamed_literal(void **state)
{
	struct imap_parser_limits lim;

	(void)state;
	imap_parser_limits_default(&lim);
	lim.max_inline_literal = 4;
	check_lim(S("* 5 FETCH (UID 7 BODY[] {12}\r\nSubject: x\r\n FLAGS (\\Seen))\r\n"), &lim, -1,
		  "<BEGIN FETCH BODY[] 12><DATA \"Subject: x\\r\\n\"><END>"
		  "* #5 FETCH (UID 7 BODY[] {S12} FLAGS (\\Seen));\n");
}

static void test_search(void **state)
{
	(void)state;
	check("* SEARCH 1 2 3\r\n", "* SEARCH 1 2 3;\n");
	check("* SEARCH\r\n", "* SEARCH;\n");
}

static void test_trailing_space_before_crlf(void **state)
{
	(void)state;
	check("* SEARCH 1 2 \r\n", "* SEARCH 1 2;\n");
	check("* SEARCH \r\n", "* SEARCH;\n");
	check("* FLAGS (\\Seen ) \r\n", "* FLAGS (\\Seen);\n");
}

static void test_esearch(void **state)
{
	(void)state;
	check("* ESEARCH (TAG \"A1\") UID ALL 1:3,5\r\n",
	      "* ESEARCH (TAG \"A1\") UID ALL 1:3,5;\n");
}

static void test_namespace(void **state)
{
	(void)state;
	check("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n", "* NAMESPACE ((\"\" \"/\")) NIL NIL;\n");
}

static void test_flags_enabled(void **state)
{
	(void)state;
	check("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)\r\n",
	      "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk);\n");
	check("* ENABLED CONDSTORE UTF8=ACCEPT\r\n", "* ENABLED CONDSTORE UTF8=ACCEPT;\n");
	check("* enabled\r\n", "* ENABLED;\n");
}

static void test_quota(void **state)
{
	(void)state;
	check("* QUOTAROOT INBOX \"\"\r\n", "* QUOTAROOT INBOX \"\";\n");
	check("* QUOTA \"\" (STORAGE 10 512)\r\n", "* QUOTA \"\" (STORAGE 10 512);\n");
}

static void test_nested_lists(void **state)
{
	(void)state;
	check("* 1 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL "
	      "\"7BIT\" 10 1)(\"TEXT\" \"HTML\" NIL NIL NIL \"8BIT\" 20 2) \"ALTERNATIVE\"))\r\n",
	      "* #1 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL "
	      "\"7BIT\" 10 1) (\"TEXT\" \"HTML\" NIL NIL NIL \"8BIT\" 20 2) \"ALTERNATIVE\"));\n");
	check("* X ((()) ())\r\n", "* X ((()) ());\n");
}

static void test_quoted_escapes_and_utf8(void **state)
{
	(void)state;
	check("* LIST () \"/\" \"a\\\"b\\\\c\"\r\n", "* LIST () \"/\" \"a\\\"b\\\\c\";\n");
	check("* LIST () \"/\" \"Entw\xc3\xbcrfe\"\r\n", "* LIST () \"/\" \"Entw\\xc3\\xbcrfe\";\n");
	check("* X \"\" \"a\"\"b\"\r\n", "* X \"\" \"a\" \"b\";\n");
}

static void test_section_atoms(void **state)
{
	(void)state;
	check("* 2 FETCH (BODY[HEADER.FIELDS (MESSAGE-ID)] {17}\r\nMessage-ID: <x>\r\n)\r\n",
	      "* #2 FETCH (BODY[HEADER.FIELDS (MESSAGE-ID)] {17:\"Message-ID: <x>\\r\\n\"});\n");
	check("* 2 FETCH (BODY[]<0> \"ab\" BINARY[1.2]<0.1024> NIL BODY[1.HEADER.FIELDS.NOT (A \"B]\")] "
	      "NIL)\r\n",
	      "* #2 FETCH (BODY[]<0> \"ab\" BINARY[1.2]<0.1024> NIL BODY[1.HEADER.FIELDS.NOT (A \"B]\")] "
	      "NIL);\n");
}

static void test_literal_key(void **state)
{
	struct imap_parser_limits lim;

	(void)state;
	imap_parser_limits_default(&lim);
	lim.max_inline_literal = 1;
	check_lim(S("* 2 FETCH (body[header.fields (Message-ID)] {3}\r\nabc)\r\n"), &lim, -1,
		  "<BEGIN FETCH BODY[HEADER.FIELDS (MESSAGE-ID)] 3><DATA \"abc\"><END>"
		  "* #2 FETCH (body[header.fields (Message-ID)] {S3});\n");
	/* Not after an atom: no key. */
	check_lim(S("* LIST () \"/\" {3}\r\nabc\r\n"), &lim, -1,
		  "<BEGIN LIST - 3><DATA \"abc\"><END>* LIST () \"/\" {S3};\n");
	check_lim(S("* X ({3}\r\nabc)\r\n"), &lim, -1,
		  "<BEGIN X - 3><DATA \"abc\"><END>* X ({S3});\n");
	check_lim(S("* 1 FETCH (RFC822 {2}\r\nab)\r\n"), &lim, -1,
		  "<BEGIN FETCH RFC822 2><DATA \"ab\"><END>* #1 FETCH (RFC822 {S2});\n");
}

static void test_literal_with_paren_crlf_nul(void **state)
{
	static const char wire[] = "* 1 FETCH (BODY[] {9}\r\na)\r\n\0b\r\n))\r\n";
	struct imap_parser_limits lim;

	(void)state;
	check_lim(wire, sizeof(wire) - 1, NULL, -1,
		  "* #1 FETCH (BODY[] {9:\"a)\\r\\n\\x00b\\r\\n)\"});\n");
	imap_parser_limits_default(&lim);
	lim.max_inline_literal = 8;
	check_lim(wire, sizeof(wire) - 1, &lim, -1,
		  "<BEGIN FETCH BODY[] 9><DATA \"a)\\r\\n\\x00b\\r\\n)\"><END>"
		  "* #1 FETCH (BODY[] {S9});\n");
}

static void test_literal8(void **state)
{
	static const char wire[] = "* 1 FETCH (BINARY[] ~{3}\r\n\0\xff\n)\r\n";

	(void)state;
	check_lim(wire, sizeof(wire) - 1, NULL, -1,
		  "* #1 FETCH (BINARY[] {3:\"\\x00\\xff\\n\"});\n");
	check("* X ~a ~\r\n", "* X ~a ~;\n");
}

static void test_zero_length_literal(void **state)
{
	(void)state;
	check("* 1 FETCH (BODY[] {0}\r\n)\r\n", "* #1 FETCH (BODY[] {0:\"\"});\n");
}

static void test_inline_streamed_boundary(void **state)
{
	struct imap_parser_limits lim;

	(void)state;
	imap_parser_limits_default(&lim);
	lim.max_inline_literal = 5;
	check_lim(S("* 1 FETCH (A {5}\r\nabcde B {6}\r\nabcdef)\r\n"), &lim, -1,
		  "<BEGIN FETCH B 6><DATA \"abcdef\"><END>"
		  "* #1 FETCH (A {5:\"abcde\"} B {S6});\n");
}

static void test_set_inline_max_zero(void **state)
{
	(void)state;
	/* 0 streams every literal, even an empty one, and never gives LITERAL_DATA of 0. */
	check_lim(S("* 1 FETCH (A {0}\r\n B {3}\r\nabc)\r\n"), NULL, 0,
		  "<BEGIN FETCH A 0><DATA \"\"><END><BEGIN FETCH B 3><DATA \"abc\"><END>"
		  "* #1 FETCH (A {S0} B {S3});\n");
}

static void test_streamed_literal_split_everywhere(void **state)
{
	char wire[400];
	char want[800];
	char body[200];
	size_t n;

	(void)state;
	for (size_t i = 0; i < 150; i++)
		body[i] = (char)('a' + i % 26);
	body[150] = '\0';
	n = (size_t)snprintf(wire, sizeof(wire),
			     "* 9 FETCH (UID 10 BODY[] {150}\r\n%s FLAGS (\\Seen))\r\nA1 OK done\r\n",
			     body);
	snprintf(want, sizeof(want),
		 "<BEGIN FETCH BODY[] 150><DATA \"%s\"><END>* #9 FETCH (UID 10 BODY[] {S150} FLAGS "
		 "(\\Seen));\nT:A1 OK \"done\";\n",
		 body);
	check_lim(wire, n, NULL, 100, want);
}

static void test_several_literals_and_responses(void **state)
{
	static const char wire[] = "* 1 FETCH (BODY[HEADER] {4}\r\nh: x BODY[TEXT] {10}\r\n0123456789)\r\n"
				   "* 2 FETCH (UID 3)\r\n"
				   "A7 OK [READ-ONLY] Fetch done\r\n";

	(void)state;
	check_lim(wire, sizeof(wire) - 1, NULL, 6,
		  "<BEGIN FETCH BODY[TEXT] 10><DATA \"0123456789\"><END>"
		  "* #1 FETCH (BODY[HEADER] {4:\"h: x\"} BODY[TEXT] {S10});\n"
		  "* #2 FETCH (UID 3);\n"
		  "T:A7 OK [READ-ONLY|] \"Fetch done\";\n");
}

/* Status responses and response codes. */

static void test_status_codes(void **state)
{
	(void)state;
	check("A1 OK [APPENDUID 38505 3955] APPEND completed\r\n",
	      "T:A1 OK [APPENDUID|38505 3955] \"APPEND completed\";\n");
	check("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
	      "* OK [UIDVALIDITY|3857529045] \"UIDs valid\";\n");
	check("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	      "AUTH=PLAIN] Dovecot ready.\r\n",
	      "* OK [CAPABILITY|IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	      "AUTH=PLAIN] \"Dovecot ready.\";\n");
	check("* OK [PERMANENTFLAGS (\\Seen \\*)] Limited\r\n",
	      "* OK [PERMANENTFLAGS|(\\Seen \\*)] \"Limited\";\n");
	check("A2 NO no code here\r\n", "T:A2 NO \"no code here\";\n");
	check("* NO [BADCHARSET (UTF-8 \"a]b\" [x])] bad\r\n",
	      "* NO [BADCHARSET|(UTF-8 \"a]b\" [x])] \"bad\";\n");
	check("* OK [uidnext 5] x\r\n", "* OK [UIDNEXT|5] \"x\";\n");
	check("* OK [ALERT]\r\n", "* OK [ALERT|] \"\";\n");
	check("A3 NO [TRYCREATE] Mailbox doesn't exist: {5}\r\n",
	      "T:A3 NO [TRYCREATE|] \"Mailbox doesn't exist: {5}\";\n");
}

static void test_status_words(void **state)
{
	(void)state;
	check("* ok lower case\r\n", "* OK \"lower case\";\n");
	check("A3 BAD\r\n", "T:A3 BAD \"\";\n");
	check("A3 bad \r\n", "T:A3 BAD \"\";\n");
	check("* BYE [ALERT] shutting down\r\n", "* BYE [ALERT|] \"shutting down\";\n");
	check("* PREAUTH IMAP4rev1 server logged in as Smith\r\n",
	      "* PREAUTH \"IMAP4rev1 server logged in as Smith\";\n");
	check("a.b-1] OK done\r\n", "T:a.b-1] OK \"done\";\n");
}

static void test_continuation(void **state)
{
	(void)state;
	check("+\r\n", "+ \"\";\n");
	check("+ \r\n", "+ \"\";\n");
	check("+ Ready for literal data\r\n", "+ \"Ready for literal data\";\n");
	check("+ YGgGCSqGSIb3EgECAgIAb1kwV6ADAgEFoQMCAQ+iSzBJoAMCAQGiQgRA\r\n",
	      "+ \"YGgGCSqGSIb3EgECAgIAb1kwV6ADAgEFoQMCAQ+iSzBJoAMCAQGiQgRA\";\n");
}

/* Hostile input, named after the malformation. */

static void test_literal_size_overflow(void **state)
{
	(void)state;
	check_error("* 1 FETCH (BODY[] {99999999999999999999}\r\n", "literal size overflows");
}

static void test_literal_over_max_literal(void **state)
{
	struct imap_parser_limits lim;
	static const char wire[] = "* 1 FETCH (BODY[] {1001}\r\n";

	(void)state;
	imap_parser_limits_default(&lim);
	lim.max_literal = 1000;
	check_error_lim(wire, sizeof(wire) - 1, &lim, "literal of 1001 bytes is larger than 1000");
	check_error("* 1 FETCH (BODY[] {2147483649}\r\n", "is larger than");
}

static void test_literal_size_non_digit(void **state)
{
	(void)state;
	check_error("* 1 FETCH (BODY[] {12a}\r\n", "literal size has a non-digit");
	check_error("* 1 FETCH (BODY[] {0x10}\r\n", "literal size has a non-digit");
	check_error("* 1 FETCH (BODY[] {1 2}\r\n", "literal size has a non-digit");
	check_error("* 1 FETCH (BODY[] {5+}\r\n", "literal size has a non-digit");
}

static void test_literal_size_negative(void **state)
{
	(void)state;
	check_error("* 1 FETCH (BODY[] {-5}\r\n", "literal size has a non-digit");
}

static void test_literal_size_empty_or_unclosed(void **state)
{
	(void)state;
	check_error("* 1 FETCH (BODY[] {}\r\n", "literal size is empty");
	check_error("* 1 FETCH (BODY[] {12\r\n", "missing '}' after literal size");
}

static void test_missing_crlf_after_literal_size(void **state)
{
	(void)state;
	check_error("* 1 FETCH (BODY[] {5}abcde)\r\n", "missing CRLF after literal size");
	check_error("* 1 FETCH (BODY[] {5} \r\nabcde)\r\n", "missing CRLF after literal size");
	check_error("* 1 FETCH (BODY[] {5}\nabcde)\r\n", "bare LF");
}

static void test_line_over_max_line_without_crlf(void **state)
{
	struct imap_parser_limits lim;
	struct run r;
	char chunk[4096];
	const size_t total = 10 * 1024 * 1024;

	(void)state;
	imap_parser_limits_default(&lim);
	lim.max_line = 1024;
	memset(chunk, 'a', sizeof(chunk));
	memcpy(chunk, "* X ", 4);
	run_init(&r, &lim, -1);
	while (r.fed < total && !r.failed) {
		run_feed(&r, chunk, sizeof(chunk));
		chunk[0] = 'a';
		memset(chunk, 'a', 4);
	}
	/* Failed on the first chunk that crossed the limit, long before 10 MB arrived. */
	assert_true(r.failed);
	assert_true(r.fed_at_error <= lim.max_line + sizeof(chunk));
	assert_non_null(strstr(r.err.detail, "line longer than 1024 bytes"));
	run_cleanup(&r);

	/* The same a byte at a time: it fails on byte 1025. */
	run_init(&r, &lim, -1);
	while (r.fed < total && !r.failed)
		run_feed(&r, "a", 1);
	assert_int_equal(r.fed_at_error, 1025);
	run_cleanup(&r);
}

static void test_line_over_max_line(void **state)
{
	struct imap_parser_limits lim;
	char wire[300];

	(void)state;
	imap_parser_limits_default(&lim);
	lim.max_line = 100;
	/* 100 bytes with the CRLF is fine; 101 is not. */
	memset(wire, 'x', sizeof(wire));
	memcpy(wire, "* X ", 4);
	memcpy(wire + 98, "\r\n", 2);
	{
		char want[128] = "* X ";

		memset(want + 4, 'x', 94);
		strcpy(want + 98, ";\n");
		check_lim(wire, 100, &lim, -1, want);
	}
	memset(wire, 'x', sizeof(wire));
	memcpy(wire, "* X ", 4);
	memcpy(wire + 99, "\r\n", 2);
	check_error_lim(wire, 101, &lim, "line longer than 100 bytes");
	/* The limit spans the whole response, literal headers and inline literals included. */
	snprintf(wire, sizeof(wire), "* X {80}\r\n%080d {5}\r\nabcde\r\n", 0);
	check_error_lim(wire, strlen(wire), &lim, "line longer than 100 bytes");
	/* Streamed literal bytes do not count. */
	lim.max_inline_literal = 10;
	snprintf(wire, sizeof(wire), "* X {200}\r\n%0200d\r\n", 0);
	char *got = parse_cut(wire, strlen(wire), &lim, -1, NULL, 0);
	assert_non_null(strstr(got, "* X {S200};\n"));
	free(got);
}

static void test_depth_over_max(void **state)
{
	struct imap_parser_limits lim;

	(void)state;
	imap_parser_limits_default(&lim);
	lim.max_depth = 4;
	check_lim(S("* X ((((a))))\r\n"), &lim, -1, "* X ((((a))));\n");
	check_error_lim(S("* X (((((a)))))\r\n"), &lim, "nesting deeper than 4");
	{
		char deep[128];
		size_t n = 0;

		n += (size_t)sprintf(deep, "* X ");
		for (int i = 0; i < 33; i++)
			deep[n++] = '(';
		memcpy(deep + n, "a", 1);
		n++;
		for (int i = 0; i < 33; i++)
			deep[n++] = ')';
		memcpy(deep + n, "\r\n", 2);
		check_error_lim(deep, n + 2, NULL, "nesting deeper than 32");
	}
}

static void test_too_many_args(void **state)
{
	struct imap_parser_limits lim;

	(void)state;
	imap_parser_limits_default(&lim);
	lim.max_args = 4;
	check_lim(S("* X a (b c)\r\n"), &lim, -1, "* X a (b c);\n");
	check_error_lim(S("* X a (b c) d\r\n"), &lim, "more than 4 arguments");
	check_error_lim(S("* X ((((()))))\r\n"), &lim, "more than 4 arguments");
	check_error_lim(S("* X a b c d {1}\r\nx\r\n"), &lim, "more than 4 arguments");
}

static void test_unbalanced_paren(void **state)
{
	(void)state;
	check_error("* X (a))\r\n", "unbalanced ')'");
	check_error("* X )\r\n", "unbalanced ')'");
	check_error("* 1 FETCH (UID 1\r\n", "missing ')'");
}

static void test_unterminated_quote(void **state)
{
	(void)state;
	check_error("* LIST () \"/\" \"INBOX\r\n", "unterminated quoted string");
	check_error("* LIST () \"/\" \"INBOX\\\"\r\n", "unterminated quoted string");
	check_error("* LIST () \"/\" \"INBOX\\\r\n", "unterminated quoted string");
}

static void test_cr_inside_quote(void **state)
{
	(void)state;
	check_error("* LIST () \"/\" \"IN\rBOX\"\r\n", "CR in quoted string");
	check_error("* LIST () \"/\" \"IN\\\rBOX\"\r\n", "CR in quoted string");
}

static void test_lf_inside_quote(void **state)
{
	(void)state;
	check_error("* LIST () \"/\" \"IN\nBOX\"\r\n", "bare LF");
}

static void test_nul_outside_literal(void **state)
{
	static const char q[] = "* LIST () \"/\" \"IN\0BOX\"\r\n";
	static const char a[] = "* X ab\0c\r\n";
	static const char t[] = "A1 OK d\0ne\r\n";

	(void)state;
	check_error_lim(q, sizeof(q) - 1, NULL, "NUL byte in quoted string");
	check_error_lim(a, sizeof(a) - 1, NULL, "bare CR or NUL in atom");
	check_error_lim(t, sizeof(t) - 1, NULL, "NUL byte in response text");
}

static void test_garbage_tag_chars(void **state)
{
	(void)state;
	check_error("A(1 OK done\r\n", "bad character in tag");
	check_error("A\"1 OK done\r\n", "bad character in tag");
	check_error("\x01" "A1 OK done\r\n", "bad character in tag");
	check_error("A\xc3\xa9 OK done\r\n", "bad character in tag");
	check_error("A{1} OK done\r\n", "bad character in tag");
	check_error("A1+ OK done\r\n", "bad character in tag");
	check_error("A1\r\n", "missing space after tag");
	check_error(" OK\r\n", "empty tag");
}

static void test_malformed_headers(void **state)
{
	(void)state;
	check_error("\r\n", "empty response line");
	check_error("*OK\r\n", "missing space after '*'");
	check_error("*\r\n", "missing space after '*'");
	check_error("* \r\n", "missing response name");
	check_error("* 5\r\n", "missing response name");
	check_error("* 99999999999 EXISTS\r\n", "bad message number");
	check_error("* 12a EXISTS\r\n", "bad message number");
	check_error("* F\"O EXISTS\r\n", "bad character in response name");
	check_error("A1 FETCH (UID 1)\r\n", "tagged response is not a status");
	check_error("* OK [ALERT hello\r\n", "unterminated response code");
	check_error("* OK [ALERT\r\n", "unterminated response code");
	check_error("* OK [] x\r\n", "empty response code");
	check_error("* OK te\rxt\r\n", "bare CR in response text");
	check_error("* X BODY[1\r\n", "unterminated '[' in atom");
}

static void test_bare_lf_line_ending(void **state)
{
	(void)state;
	/* Documented choice: only CRLF ends a line (RFC 3501 section 2.2). */
	check_error("* OK hi\n", "bare LF line ending");
	check_error("* OK hi\r\n* OK there\n", "bare LF line ending");
}

static void test_sticky_error(void **state)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct evbuffer *in = evbuffer_new();
	struct imap_event ev;
	struct mh_err err, err2;

	(void)state;
	evbuffer_add_printf(in, "* X )\r\n");
	assert_int_equal(imap_parser_next(p, in, &ev, &err), IMAP_EV_ERROR);
	assert_int_equal(err.code, MH_E_PROTOCOL);
	evbuffer_drain(in, evbuffer_get_length(in));
	evbuffer_add_printf(in, "* OK fine\r\n");
	for (int i = 0; i < 3; i++) {
		assert_int_equal(imap_parser_next(p, in, &ev, &err2), IMAP_EV_ERROR);
		assert_string_equal(err2.detail, err.detail);
		assert_int_equal(imap_parser_next(p, in, &ev, NULL), IMAP_EV_ERROR);
	}
	/* reset forgets the error. */
	imap_parser_reset(p);
	assert_int_equal(imap_parser_next(p, in, &ev, &err), IMAP_EV_RESPONSE);
	assert_int_equal(ev.resp->status, IMAP_STATUS_OK);
	assert_string_equal(ev.resp->text, "fine");
	assert_int_equal(imap_parser_next(p, in, &ev, &err), IMAP_EV_NEED_MORE);
	evbuffer_free(in);
	imap_parser_free(&p);
	imap_parser_free(&p);
}

static void test_reset_mid_response(void **state)
{
	struct imap_parser_limits lim;
	struct imap_parser *p;
	struct evbuffer *in = evbuffer_new();
	struct imap_event ev;
	struct mh_err err;

	(void)state;
	imap_parser_limits_default(&lim);
	lim.max_inline_literal = 2;
	p = imap_parser_new(&lim);
	evbuffer_add_printf(in, "* 1 FETCH (UID 4 BODY[] {100}\r\nabc");
	assert_int_equal(imap_parser_next(p, in, &ev, &err), IMAP_EV_LITERAL_BEGIN);
	assert_int_equal(ev.literal_size, 100);
	assert_string_equal(ev.literal_key, "BODY[]");
	assert_int_equal(ev.resp->kind, IMAP_RESP_UNTAGGED);
	assert_true(ev.resp->has_number);
	assert_int_equal(ev.resp->number, 1);
	assert_string_equal(ev.resp->name, "FETCH");
	assert_int_equal(imap_parser_next(p, in, &ev, &err), IMAP_EV_LITERAL_DATA);
	assert_int_equal(ev.len, 3);
	evbuffer_drain(in, ev.len);
	assert_int_equal(imap_parser_next(p, in, &ev, &err), IMAP_EV_NEED_MORE);
	imap_parser_reset(p);
	evbuffer_add_printf(in, "* OK [UNAVAILABLE] again\r\n");
	assert_int_equal(imap_parser_next(p, in, &ev, &err), IMAP_EV_RESPONSE);
	assert_string_equal(ev.resp->code, "UNAVAILABLE");
	assert_string_equal(ev.resp->code_args, "");
	assert_string_equal(ev.resp->text, "again");
	evbuffer_free(in);
	imap_parser_free(&p);
}

static void test_tree_fields(void **state)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct evbuffer *in = evbuffer_new();
	struct imap_event ev;
	struct mh_err err;
	const struct imap_arg *l;
	uint64_t v;

	(void)state;
	evbuffer_add_printf(in, "* 5 FETCH (UID 7 RFC822.SIZE \"4286\" FLAGS () X NIL)\r\n"
				"A1 OK [APPENDUID 38505 3955] done\r\n");
	assert_int_equal(imap_parser_next(p, in, &ev, &err), IMAP_EV_RESPONSE);
	assert_int_equal(ev.resp->kind, IMAP_RESP_UNTAGGED);
	assert_int_equal(ev.resp->status, IMAP_STATUS_NONE);
	assert_int_equal(ev.resp->count, 1);
	l = &ev.resp->args[0];
	assert_int_equal(l->type, IMAP_ARG_LIST);
	assert_int_equal(l->count, 8);
	assert_true(imap_arg_is(&l->items[0], "uid"));
	assert_false(imap_arg_is(&l->items[0], "ui"));
	assert_int_equal(imap_arg_number(&l->items[1], UINT32_MAX, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(imap_arg_number(&l->items[1], 6, &v), -1);
	assert_int_equal(imap_arg_number(&l->items[3], UINT32_MAX, &v), 0);
	assert_int_equal(v, 4286);
	assert_int_equal(l->items[5].type, IMAP_ARG_LIST);
	assert_int_equal(l->items[5].count, 0);
	assert_int_equal(imap_arg_number(&l->items[5], UINT32_MAX, &v), -1);
	assert_int_equal(l->items[7].type, IMAP_ARG_NIL);
	assert_false(imap_arg_is(&l->items[7], "NIL"));
	assert_int_equal(imap_arg_number(&l->items[7], UINT32_MAX, &v), -1);
	assert_int_equal(imap_arg_number(&l->items[6], UINT32_MAX, &v), -1);
	assert_false(imap_arg_is(NULL, "x"));
	assert_int_equal(imap_arg_number(NULL, 1, &v), -1);
	/* the FETCH attribute helpers */
	assert_int_equal(imap_fetch_uid(ev.resp), 7);
	assert_ptr_equal(imap_fetch_attr(ev.resp, "rfc822.size"), &l->items[3]);
	assert_ptr_equal(imap_fetch_attr(ev.resp, "FLAGS"), &l->items[5]);
	assert_null(imap_fetch_attr(ev.resp, "RFC822"));     /* whole names only */
	assert_ptr_equal(imap_fetch_attr_prefix(ev.resp, "RFC822"), &l->items[3]);
	assert_null(imap_fetch_attr(ev.resp, "BODY[]"));
	assert_null(imap_fetch_attr(NULL, "UID"));

	assert_int_equal(imap_parser_next(p, in, &ev, &err), IMAP_EV_RESPONSE);
	assert_int_equal(ev.resp->kind, IMAP_RESP_TAGGED);
	assert_string_equal(ev.resp->tag, "A1");
	assert_string_equal(ev.resp->name, "OK");
	assert_int_equal(ev.resp->status, IMAP_STATUS_OK);
	assert_string_equal(ev.resp->code, "APPENDUID");
	assert_string_equal(ev.resp->code_args, "38505 3955");
	assert_string_equal(ev.resp->text, "done");
	assert_null(imap_fetch_attr(ev.resp, "UID")); /* no FETCH */
	assert_int_equal(imap_fetch_uid(ev.resp), 0);
	assert_int_equal(imap_parser_next(p, in, &ev, &err), IMAP_EV_NEED_MORE);
	assert_null(ev.resp);
	evbuffer_free(in);
	imap_parser_free(&p);
}

static void test_parse_number(void **state)
{
	uint64_t v = 42;

	(void)state;
	assert_int_equal(imap_parse_number("0", 1, 0, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(imap_parse_number("4294967295", 10, UINT32_MAX, &v), 0);
	assert_int_equal(v, UINT32_MAX);
	assert_int_equal(imap_parse_number("4294967296", 10, UINT32_MAX, &v), -1);
	assert_int_equal(imap_parse_number("18446744073709551615", 20, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(imap_parse_number("18446744073709551616", 20, UINT64_MAX, &v), -1);
	assert_int_equal(imap_parse_number("99999999999999999999", 20, UINT64_MAX, &v), -1);
	assert_int_equal(imap_parse_number("000000000000000000000007", 24, 7, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(imap_parse_number("8", 1, 7, &v), -1);
	assert_int_equal(imap_parse_number("5", 1, 0, &v), -1);
	v = 42;
	assert_int_equal(imap_parse_number("", 0, 10, &v), -1);
	assert_int_equal(imap_parse_number("+1", 2, 10, &v), -1);
	assert_int_equal(imap_parse_number("-1", 2, 10, &v), -1);
	assert_int_equal(imap_parse_number(" 1", 2, 10, &v), -1);
	assert_int_equal(imap_parse_number("1 ", 2, 10, &v), -1);
	assert_int_equal(imap_parse_number("0x1", 3, 10, &v), -1);
	assert_int_equal(imap_parse_number("1\0", 2, 10, &v), -1);
	assert_int_equal(imap_parse_number(NULL, 0, 10, &v), -1);
	assert_int_equal(v, 42);
	/* n bounds the read: "12" of "123". */
	assert_int_equal(imap_parse_number("123", 2, 100, &v), 0);
	assert_int_equal(v, 12);
}

/* Big inputs: a long line byte by byte and a large streamed literal, both linear. */
static void test_long_line_and_big_literal(void **state)
{
	const size_t natoms = 40000;
	struct run r;
	char *wire, *body;
	size_t n = 0;

	(void)state;
	wire = malloc(natoms * 6 + 64);
	assert_non_null(wire);
	n += (size_t)sprintf(wire, "* SEARCH");
	for (size_t i = 0; i < natoms; i++)
		n += (size_t)sprintf(wire + n, " %zu", i % 10000);
	n += (size_t)sprintf(wire + n, "\r\n");
	run_init(&r, NULL, -1);
	for (size_t i = 0; i < n; i++)
		run_feed(&r, wire + i, 1);
	assert_false(r.failed);
	assert_int_equal(r.d.len, n);
	run_cleanup(&r);
	free(wire);

	const size_t size = 8 * 1024 * 1024;
	body = malloc(size);
	assert_non_null(body);
	memset(body, 'm', size);
	run_init(&r, NULL, -1);
	run_feed(&r, "* 1 FETCH (BODY[] {8388608}\r\n", 29);
	for (size_t off = 0; off < size; off += 65536)
		run_feed(&r, body + off, 65536);
	run_feed(&r, ")\r\n", 3);
	assert_false(r.failed);
	assert_int_equal(r.lit.len, size);
	assert_non_null(strstr(r.d.s, "* #1 FETCH (BODY[] {S8388608});\n"));
	run_cleanup(&r);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capability),
		cmocka_unit_test(test_list_flags_and_quoted_name),
		cmocka_unit_test(test_list_empty_flags_nil_delimiter),
		cmocka_unit_test(test_list_literal_mailbox_name),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_exists_expunge_recent),
		cmocka_unit_test(test_fetch_inline_literal),
		cmocka_unit_test(test_fetch_streamed_literal),
		cmocka_unit_test(test_search),
		cmocka_unit_test(test_trailing_space_before_crlf),
		cmocka_unit_test(test_esearch),
		cmocka_unit_test(test_namespace),
		cmocka_unit_test(test_flags_enabled),
		cmocka_unit_test(test_quota),
		cmocka_unit_test(test_nested_lists),
		cmocka_unit_test(test_quoted_escapes_and_utf8),
		cmocka_unit_test(test_section_atoms),
		cmocka_unit_test(test_literal_key),
		cmocka_unit_test(test_literal_with_paren_crlf_nul),
		cmocka_unit_test(test_literal8),
		cmocka_unit_test(test_zero_length_literal),
		cmocka_unit_test(test_inline_streamed_boundary),
		cmocka_unit_test(test_set_inline_max_zero),
		cmocka_unit_test(test_streamed_literal_split_everywhere),
		cmocka_unit_test(test_several_literals_and_responses),
		cmocka_unit_test(test_status_codes),
		cmocka_unit_test(test_status_words),
		cmocka_unit_test(test_continuation),
		cmocka_unit_test(test_literal_size_overflow),
		cmocka_unit_test(test_literal_over_max_literal),
		cmocka_unit_test(test_literal_size_non_digit),
		cmocka_unit_test(test_literal_size_negative),
		cmocka_unit_test(test_literal_size_empty_or_unclosed),
		cmocka_unit_test(test_missing_crlf_after_literal_size),
		cmocka_unit_test(test_line_over_max_line_without_crlf),
		cmocka_unit_test(test_line_over_max_line),
		cmocka_unit_test(test_depth_over_max),
		cmocka_unit_test(test_too_many_args),
		cmocka_unit_test(test_unbalanced_paren),
		cmocka_unit_test(test_unterminated_quote),
		cmocka_unit_test(test_cr_inside_quote),
		cmocka_unit_test(test_lf_inside_quote),
		cmocka_unit_test(test_nul_outside_literal),
		cmocka_unit_test(test_garbage_tag_chars),
		cmocka_unit_test(test_malformed_headers),
		cmocka_unit_test(test_bare_lf_line_ending),
		cmocka_unit_test(test_sticky_error),
		cmocka_unit_test(test_reset_mid_response),
		cmocka_unit_test(test_tree_fields),
		cmocka_unit_test(test_parse_number),
		cmocka_unit_test(test_long_line_and_big_literal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
