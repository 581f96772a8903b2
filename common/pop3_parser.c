/* pop3_parser.c - incremental decoder for POP3 server responses.
 *
 * How it works: status and listing lines move from the input evbuffer into a line buffer
 * until an LF arrives, so each byte is searched once however the input is split, and the
 * line limit is checked before the line ends (as in imap_parser.c). Message bytes never
 * enter the parser: a small state machine walks them in place and hands the caller runs
 * of message bytes that are still at the front of the input. The states are the places
 * where a dot matters (STYLE 2.6):
 *
 *   LINE_START  after CRLF (and at the start of the message): a "." here is special
 *   DOT         a line-start "." was dropped: ".CRLF" ends the message, else it was stuffing
 *   DOT_CR      ".CR" seen; the CR stays at the front of the input until the next byte
 *               says whether it is the final CRLF or message content
 *   MID         inside a line
 *   CR          after a CR inside a line: an LF now ends the line
 *
 * Only CRLF ends a line (RFC 1939 section 3), so a lone LF never starts a line: "\n.x" in
 * a message is kept as it is. A dot that starts a line and is not followed by CRLF is
 * removed, whatever follows ("..", ".x", ".\n", ".\rx").
 *
 * Tolerated quirks: "+ok"/"-err" in any case, several spaces after the status indicator,
 * a malformed response code (then taken as text).
 */
#include "pop3_parser.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parser.h" /* imap_parse_number(): the strict number parser */

#define LINE_MIN_CAP 256
#define PEEK_VECS 16
#define TIMESTAMP_MAX 512

enum parser_phase {
	PHASE_IDLE,   /* between replies: no byte may arrive */
	PHASE_STATUS, /* collecting the status line */
	PHASE_LINES,  /* collecting listing lines */
	PHASE_BODY,   /* walking message bytes */
	PHASE_ERROR,  /* sticky until pop3_parser_reset() */
};

enum body_state { BODY_LINE_START, BODY_DOT, BODY_DOT_CR, BODY_MID, BODY_CR };

struct pop3_parser {
	/* configuration */
	struct pop3_parser_limits lim;

	/* connection: survives replies */
	enum parser_phase phase;
	struct mh_err err; /* the sticky error */
	char *line;        /* the line being collected, CRLF not yet stripped */
	size_t line_len;
	size_t line_cap;

	/* one reply */
	enum pop3_expect expect;
	struct pop3_status status;
	char *status_copy; /* the status line's strings point in here */
	size_t status_cap;
	enum body_state body;
	uint64_t total; /* listing lines or message bytes so far */
};

static void *xrealloc(void *ptr, size_t size)
{
	void *q = realloc(ptr, size == 0 ? 1 : size);

	/* House rule: OOM aborts; every buffer here is capped by a limit. */
	if (q == NULL)
		abort();
	return q;
}

static char ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static enum pop3_ev __attribute__((format(printf, 4, 5)))
parser_fail(struct pop3_parser *p, enum mh_err_code code, struct mh_err *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mh_err_setv(&p->err, code, fmt, ap);
	va_end(ap);
	p->phase = PHASE_ERROR;
	if (err != NULL)
		*err = p->err;
	return POP3_EV_ERROR;
}

/* ---------------------------------------------------------------------------------------
 * lines */

/* Moves bytes up to the next LF into the line buffer. Returns 1 when a whole line is
 * there (CRLF stripped, NUL-terminated), 0 when more input is needed, -1 on error. */
static int line_collect(struct pop3_parser *p, struct evbuffer *in, struct mh_err *err)
{
	size_t avail = evbuffer_get_length(in), take;
	struct evbuffer_ptr lf;

	if (avail == 0)
		return 0;
	lf = evbuffer_search(in, "\n", 1, NULL);
	take = lf.pos < 0 ? avail : (size_t)lf.pos + 1;
	/* Checked before the LF arrives, so an endless line fails as soon as it is too long
	 * instead of being buffered. */
	if (p->line_len + take > p->lim.max_line) {
		parser_fail(p, MH_E_PROTOCOL, err, "line longer than %zu bytes", p->lim.max_line);
		return -1;
	}
	if (p->line_len + take + 1 > p->line_cap) {
		size_t cap = p->line_cap == 0 ? LINE_MIN_CAP : p->line_cap;

		while (cap < p->line_len + take + 1)
			cap *= 2;
		p->line = xrealloc(p->line, cap);
		p->line_cap = cap;
	}
	if (evbuffer_remove(in, p->line + p->line_len, take) != (int)take) {
		parser_fail(p, MH_E_PROTOCOL, err, "the input buffer could not be read");
		return -1;
	}
	p->line_len += take;
	if (lf.pos < 0)
		return 0;
	if (p->line_len < 2 || p->line[p->line_len - 2] != '\r') {
		parser_fail(p, MH_E_PROTOCOL, err, "bare LF line ending (expected CRLF)");
		return -1;
	}
	p->line_len -= 2;
	p->line[p->line_len] = '\0';
	for (size_t i = 0; i < p->line_len; i++) {
		if (p->line[i] == '\r' || p->line[i] == '\0') {
			parser_fail(p, MH_E_PROTOCOL, err, "%s in a reply line at byte %zu",
				    p->line[i] == '\r' ? "bare CR" : "NUL byte", i);
			return -1;
		}
	}
	return 1;
}

/* ---------------------------------------------------------------------------------------
 * status lines */

/* RFC 2449 section 8: rchar = printable ASCII except "/" and "]". */
static bool is_rchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '/' && c != ']';
}

/* Level i (0-based) of code equals word (upper-case). */
static bool code_level_is(const char *code, unsigned level, const char *word)
{
	size_t n = strlen(word);

	for (; level > 0; level--) {
		code = strchr(code, '/');
		if (code == NULL)
			return false;
		code++;
	}
	return strncmp(code, word, n) == 0 && (code[n] == '\0' || code[n] == '/');
}

static enum pop3_code code_lookup(const char *code)
{
	if (code_level_is(code, 0, "AUTH"))
		return POP3_CODE_AUTH;
	if (code_level_is(code, 0, "IN-USE"))
		return POP3_CODE_IN_USE;
	if (code_level_is(code, 0, "LOGIN-DELAY"))
		return POP3_CODE_LOGIN_DELAY;
	if (code_level_is(code, 0, "SYS")) {
		if (code_level_is(code, 1, "TEMP"))
			return POP3_CODE_SYS_TEMP;
		if (code_level_is(code, 1, "PERM"))
			return POP3_CODE_SYS_PERM;
	}
	return POP3_CODE_OTHER;
}

/* The code at the start of text (in the status copy, which it may change): a well-formed
 * "[level/level]" sets status.code and code_str and returns the text after it. */
static char *code_parse(struct pop3_parser *p, char *text)
{
	size_t i = 1;
	bool level_empty = true;

	if (text[0] != '[')
		return text;
	for (;; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c == ']')
			break;
		if (c == '/') {
			if (level_empty)
				return text;
			level_empty = true;
		} else if (is_rchar(c)) {
			level_empty = false;
		} else {
			return text; /* not a code: keep it all as text */
		}
	}
	if (level_empty)
		return text;
	text[i] = '\0';
	for (char *s = text + 1; *s != '\0'; s++)
		*s = ascii_upper(*s);
	p->status.code_str = text + 1;
	p->status.code = code_lookup(text + 1);
	text += i + 1;
	while (*text == ' ')
		text++;
	return text;
}

static bool word_is(const char *s, size_t n, const char *word)
{
	size_t wn = strlen(word);

	if (n < wn)
		return false;
	for (size_t i = 0; i < wn; i++)
		if (ascii_upper(s[i]) != word[i])
			return false;
	return n == wn || s[wn] == ' ';
}

/* Splits the collected line into p->status. Returns 0 or -1 (error set). */
static int status_parse(struct pop3_parser *p, struct mh_err *err)
{
	const char *s = p->line;
	size_t n = p->line_len, skip, rest;

	memset(&p->status, 0, sizeof(p->status));
	if (word_is(s, n, "+OK")) {
		p->status.ok = true;
		skip = 3;
	} else if (word_is(s, n, "-ERR")) {
		skip = 4;
	} else if (p->expect == POP3_EXPECT_AUTH && n > 0 && s[0] == '+' && (n == 1 || s[1] == ' ')) {
		/* RFC 5034 section 4: continue-req = "+" SP [base64] CRLF */
		p->status.continuation = true;
		skip = 1;
	} else {
		parser_fail(p, MH_E_PROTOCOL, err, "status line does not start with +OK or -ERR: \"%.40s\"", s);
		return -1;
	}
	while (skip < n && s[skip] == ' ')
		skip++;
	rest = n - skip + 1;
	/* Two copies of the rest: line stays whole; in the second the code is cut out. */
	if (2 * rest > p->status_cap) {
		p->status_cap = 2 * rest;
		p->status_copy = xrealloc(p->status_copy, p->status_cap);
	}
	memcpy(p->status_copy, s + skip, rest);
	memcpy(p->status_copy + rest, s + skip, rest);
	p->status.line = p->status_copy;
	p->status.text = code_parse(p, p->status_copy + rest);
	return 0;
}

/* ---------------------------------------------------------------------------------------
 * message bytes */

static size_t peek_byte(struct evbuffer *in, size_t at, unsigned char *c)
{
	struct evbuffer_ptr ptr;
	struct evbuffer_iovec v;

	if (evbuffer_ptr_set(in, &ptr, at, EVBUFFER_PTR_SET) < 0 || evbuffer_peek(in, 1, &ptr, &v, 1) < 1 ||
	    v.iov_len == 0)
		return 0;
	*c = *(const unsigned char *)v.iov_base;
	return 1;
}

static enum body_state body_step(enum body_state st, unsigned char c)
{
	if (c == '\r')
		return BODY_CR;
	if (c == '\n' && st == BODY_CR)
		return BODY_LINE_START;
	return BODY_MID;
}

/* Walks one run of bytes b[0..len) from state *st; stops before a line-start "." or
 * once *off passes max. Returns how many bytes were taken; *stop says why it stopped
 * early. */
static size_t body_walk(const unsigned char *b, size_t len, size_t *off, size_t max, enum body_state *st,
			bool *stop)
{
	enum body_state s = *st;
	size_t j = 0;

	while (j < len && *off <= max) {
		if (s == BODY_LINE_START && b[j] == '.') {
			*stop = true;
			break;
		}
		if (s == BODY_MID) {
			/* the common case: skip to the next CR */
			const unsigned char *cr = memchr(b + j, '\r', len - j);
			size_t k = cr != NULL ? (size_t)(cr - b) : len;

			*off += k - j;
			j = k;
			if (j == len || *off > max)
				break;
		}
		s = body_step(s, b[j]);
		j++;
		(*off)++;
	}
	if (*off > max)
		*stop = true;
	*st = s;
	return j;
}

/* Walks message bytes from offset from (the bytes before it are message bytes already
 * decided) with state *st, up to a line-start "." (not included), the end of the input,
 * or past max: returns how many bytes from the front are message bytes (more than max
 * means the message is too large). */
static size_t body_scan(struct evbuffer *in, size_t from, size_t max, enum body_state *st)
{
	struct evbuffer_iovec v[PEEK_VECS];
	struct evbuffer_ptr ptr;
	size_t off = from;
	bool stop = off > max;

	if (evbuffer_ptr_set(in, &ptr, from, EVBUFFER_PTR_SET) < 0)
		return off;
	while (!stop && off < evbuffer_get_length(in)) {
		int nv = evbuffer_peek(in, -1, &ptr, v, PEEK_VECS);
		size_t batch = 0;

		if (nv <= 0)
			break;
		if (nv > PEEK_VECS)
			nv = PEEK_VECS;
		for (int i = 0; i < nv && !stop; i++)
			batch += body_walk(v[i].iov_base, v[i].iov_len, &off, max, st, &stop);
		if (!stop && evbuffer_ptr_set(in, &ptr, batch, EVBUFFER_PTR_ADD) < 0)
			break;
	}
	return off;
}

/* Emits the bytes from the front found by body_scan. */
static enum pop3_ev body_emit(struct pop3_parser *p, size_t run, enum body_state st, struct pop3_event *ev,
			      struct mh_err *err)
{
	if (p->total + run > p->lim.max_message)
		return parser_fail(p, MH_E_PROTOCOL, err, "message larger than %llu bytes",
				   (unsigned long long)p->lim.max_message);
	p->body = st;
	p->total += run;
	ev->len = run;
	return POP3_EV_BODY_DATA;
}

static enum pop3_ev reply_end(struct pop3_parser *p, struct pop3_event *ev)
{
	p->phase = PHASE_IDLE;
	ev->total = p->total;
	return POP3_EV_END;
}

static enum pop3_ev body_next(struct pop3_parser *p, struct evbuffer *in, struct pop3_event *ev,
			      struct mh_err *err)
{
	size_t room = p->lim.max_message - p->total;
	enum body_state st;
	unsigned char c;
	size_t run;

	for (;;) {
		size_t avail = evbuffer_get_length(in);

		switch (p->body) {
		case BODY_LINE_START:
			if (avail == 0)
				return POP3_EV_NEED_MORE;
			peek_byte(in, 0, &c);
			if (c == '.') {
				evbuffer_drain(in, 1); /* stuffing or the final line: never content */
				p->body = BODY_DOT;
				continue;
			}
			st = BODY_LINE_START;
			run = body_scan(in, 0, room, &st);
			return body_emit(p, run, st, ev, err);
		case BODY_DOT:
			if (avail == 0)
				return POP3_EV_NEED_MORE;
			peek_byte(in, 0, &c);
			if (c == '\r') {
				p->body = BODY_DOT_CR;
				continue;
			}
			st = BODY_MID; /* the dot was stuffing; c is content */
			run = body_scan(in, 0, room, &st);
			return body_emit(p, run, st, ev, err);
		case BODY_DOT_CR:
			if (avail < 2)
				return POP3_EV_NEED_MORE; /* the CR stays in in */
			peek_byte(in, 1, &c);
			if (c == '\n') {
				evbuffer_drain(in, 2);
				return reply_end(p, ev);
			}
			/* ".\rx": the dot was stuffing, the CR is content */
			st = BODY_CR;
			run = body_scan(in, 1, room, &st);
			return body_emit(p, run, st, ev, err);
		case BODY_MID:
		case BODY_CR:
			if (avail == 0)
				return POP3_EV_NEED_MORE;
			st = p->body;
			run = body_scan(in, 0, room, &st);
			return body_emit(p, run, st, ev, err);
		}
	}
}

/* ---------------------------------------------------------------------------------------
 * replies */

static enum pop3_ev status_next(struct pop3_parser *p, struct evbuffer *in, struct pop3_event *ev,
				struct mh_err *err)
{
	int r = line_collect(p, in, err);

	if (r <= 0)
		return r < 0 ? POP3_EV_ERROR : POP3_EV_NEED_MORE;
	if (status_parse(p, err) < 0)
		return POP3_EV_ERROR;
	p->line_len = 0;
	ev->status = &p->status;
	ev->complete = !p->status.ok || p->expect == POP3_EXPECT_STATUS || p->expect == POP3_EXPECT_AUTH;
	if (ev->complete) {
		p->phase = PHASE_IDLE;
	} else if (p->expect == POP3_EXPECT_LINES) {
		p->phase = PHASE_LINES;
	} else {
		p->phase = PHASE_BODY;
		p->body = BODY_LINE_START;
	}
	return POP3_EV_STATUS;
}

static enum pop3_ev lines_next(struct pop3_parser *p, struct evbuffer *in, struct pop3_event *ev,
			       struct mh_err *err)
{
	int r = line_collect(p, in, err);
	size_t n;

	if (r <= 0)
		return r < 0 ? POP3_EV_ERROR : POP3_EV_NEED_MORE;
	n = p->line_len;
	p->line_len = 0;
	if (n > 0 && p->line[0] == '.') {
		if (n == 1)
			return reply_end(p, ev);
		ev->line = p->line + 1; /* dot-stuffed */
		ev->len = n - 1;
	} else {
		ev->line = p->line;
		ev->len = n;
	}
	if (p->total >= p->lim.max_lines)
		return parser_fail(p, MH_E_PROTOCOL, err, "listing longer than %zu lines", p->lim.max_lines);
	p->total++;
	return POP3_EV_LINE;
}

/* ---------------------------------------------------------------------------------------
 * public API */

void pop3_parser_limits_default(struct pop3_parser_limits *lim)
{
	lim->max_line = 64 * 1024;
	lim->max_message = 2ULL * 1024 * 1024 * 1024;
	lim->max_lines = 1000000;
}

struct pop3_parser *pop3_parser_new(const struct pop3_parser_limits *lim)
{
	struct pop3_parser *p = xrealloc(NULL, sizeof(*p));

	memset(p, 0, sizeof(*p));
	if (lim != NULL)
		p->lim = *lim;
	else
		pop3_parser_limits_default(&p->lim);
	/* A line needs room for its CRLF. */
	if (p->lim.max_line < 3)
		p->lim.max_line = 3;
	pop3_parser_reset(p);
	return p;
}

void pop3_parser_free(struct pop3_parser **pp)
{
	struct pop3_parser *p;

	if (pp == NULL || *pp == NULL)
		return;
	p = *pp;
	free(p->line);
	free(p->status_copy);
	free(p);
	*pp = NULL;
}

void pop3_parser_reset(struct pop3_parser *p)
{
	p->phase = PHASE_IDLE;
	mh_err_clear(&p->err);
	p->line_len = 0;
	p->total = 0;
	p->body = BODY_LINE_START;
	memset(&p->status, 0, sizeof(p->status));
}

void pop3_parser_expect(struct pop3_parser *p, enum pop3_expect kind)
{
	if (p->phase == PHASE_ERROR)
		return;
	if (p->phase != PHASE_IDLE) {
		parser_fail(p, MH_E_INTERNAL, NULL, "pop3_parser_expect() called in the middle of a reply");
		return;
	}
	p->expect = kind;
	p->phase = PHASE_STATUS;
	p->line_len = 0;
	p->total = 0;
}

bool pop3_parser_busy(const struct pop3_parser *p)
{
	return p->phase != PHASE_IDLE;
}

enum pop3_ev pop3_parser_next(struct pop3_parser *p, struct evbuffer *in, struct pop3_event *ev,
			      struct mh_err *err)
{
	memset(ev, 0, sizeof(*ev));
	switch (p->phase) {
	case PHASE_IDLE:
		if (evbuffer_get_length(in) == 0)
			return POP3_EV_NEED_MORE;
		return parser_fail(p, MH_E_PROTOCOL, err, "the server sent data when no reply was expected");
	case PHASE_STATUS:
		return status_next(p, in, ev, err);
	case PHASE_LINES:
		return lines_next(p, in, ev, err);
	case PHASE_BODY:
		return body_next(p, in, ev, err);
	case PHASE_ERROR:
		break;
	}
	if (err != NULL)
		*err = p->err;
	return POP3_EV_ERROR;
}

int pop3_parser_eof(const struct pop3_parser *p, struct evbuffer *in, struct mh_err *err)
{
	size_t buffered = evbuffer_get_length(in);

	switch (p->phase) {
	case PHASE_IDLE:
		if (buffered == 0)
			return 0;
		return mh_err_set(err, MH_E_CONNECTION_LOST, "the server sent data when no reply was expected, then closed");
	case PHASE_STATUS:
		if (p->line_len == 0 && buffered == 0)
			return mh_err_set(err, MH_E_CONNECTION_LOST, "the connection closed before the server's reply");
		return mh_err_set(err, MH_E_CONNECTION_LOST, "the connection closed in the middle of a reply line");
	case PHASE_LINES:
		return mh_err_set(err, MH_E_CONNECTION_LOST,
				  "the connection closed in the middle of a multi-line reply (%llu lines received, "
				  "no final \".\" line)",
				  (unsigned long long)p->total);
	case PHASE_BODY:
		return mh_err_set(err, MH_E_CONNECTION_LOST,
				  "the connection closed in the middle of a message (%llu bytes received, no final "
				  "\".\" line)",
				  (unsigned long long)p->total);
	case PHASE_ERROR:
		break;
	}
	if (err != NULL)
		*err = p->err;
	return -1;
}

/* ---------------------------------------------------------------------------------------
 * helpers */

/* The next space-separated word of s[0..n) from *pos; returns its length (0: none). */
static size_t next_word(const char *s, size_t n, size_t *pos, const char **word_r)
{
	size_t i = *pos, start;

	while (i < n && s[i] == ' ')
		i++;
	start = i;
	while (i < n && s[i] != ' ')
		i++;
	*word_r = s + start;
	*pos = i;
	return i - start;
}

static int parse_msgno(const char *w, size_t n, uint32_t *msgno_r)
{
	uint64_t v;

	if (imap_parse_number(w, n, UINT32_MAX, &v) < 0 || v == 0)
		return -1;
	*msgno_r = (uint32_t)v;
	return 0;
}

int pop3_parse_stat(const char *line, uint32_t *count_r, uint64_t *octets_r)
{
	size_t n = strlen(line), pos = 0, wn;
	const char *w;
	uint64_t count;

	wn = next_word(line, n, &pos, &w);
	if (imap_parse_number(w, wn, UINT32_MAX, &count) < 0)
		return -1;
	wn = next_word(line, n, &pos, &w);
	if (imap_parse_number(w, wn, UINT64_MAX, octets_r) < 0)
		return -1;
	*count_r = (uint32_t)count;
	return 0;
}

int pop3_parse_list_line(const char *line, size_t len, uint32_t *msgno_r, uint64_t *size_r)
{
	size_t pos = 0, wn;
	const char *w;

	wn = next_word(line, len, &pos, &w);
	if (parse_msgno(w, wn, msgno_r) < 0)
		return -1;
	wn = next_word(line, len, &pos, &w);
	return imap_parse_number(w, wn, UINT64_MAX, size_r);
}

int pop3_parse_uidl_line(const char *line, size_t len, uint32_t *msgno_r, const char **uid_r,
			 size_t *uid_len_r)
{
	size_t pos = 0, wn;
	const char *w;

	wn = next_word(line, len, &pos, &w);
	if (parse_msgno(w, wn, msgno_r) < 0)
		return -1;
	wn = next_word(line, len, &pos, &w);
	if (wn == 0 || wn > POP3_UID_MAX)
		return -1;
	for (size_t i = 0; i < wn; i++)
		if ((unsigned char)w[i] < 0x21 || (unsigned char)w[i] > 0x7e)
			return -1;
	/* only trailing spaces may follow */
	for (size_t i = pos; i < len; i++)
		if (line[i] != ' ')
			return -1;
	*uid_r = w;
	*uid_len_r = wn;
	return 0;
}

int pop3_greeting_timestamp(const char *line, const char **ts_r, size_t *len_r)
{
	for (const char *lt = strchr(line, '<'); lt != NULL; lt = strchr(lt + 1, '<')) {
		bool at = false;
		size_t i;

		for (i = 1; i < TIMESTAMP_MAX; i++) {
			unsigned char c = (unsigned char)lt[i];

			if (c == '>' || c < 0x21 || c > 0x7e || c == '<')
				break;
			if (c == '@')
				at = true;
		}
		if (lt[i] == '>' && at && i >= 3) {
			*ts_r = lt;
			*len_r = i + 1;
			return 0;
		}
	}
	return -1;
}

const char *pop3_code_name(enum pop3_code code)
{
	static const char *const names[] = {"NONE", "AUTH", "IN-USE", "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM", "OTHER"};

	if ((unsigned)code >= sizeof(names) / sizeof(names[0]))
		return "OTHER";
	return names[code];
}
