/* imap_parser.c - incremental parser for IMAP server responses.
 *
 * How it works: bytes move from the input evbuffer into a line buffer until an LF arrives,
 * so each byte is searched exactly once however the input is split, and the line limit is
 * checked before the line ends. A complete segment (one CRLF-terminated piece of a
 * response: it ends either at the end of the response or right after a literal's "{n}")
 * is then tokenized in one pass. Tokens never span segments, which is what makes the
 * result independent of where the input was split. Literal bytes never enter the line
 * buffer: small literals are copied straight into the arena, large ones are handed to the
 * caller as LITERAL_DATA events.
 *
 * Line endings: only CRLF ends a line (RFC 3501 section 2.2). A bare LF is a protocol
 * error as soon as it arrives; a bare CR or a NUL outside a literal is an error when its
 * segment is tokenized.
 *
 * Tolerated quirks: a run of spaces wherever one SP is expected (also before CRLF),
 * lower-case response names and codes, a status response with no text, "+" without a
 * space, any character after a backslash in a quoted string, and tokens not separated by
 * SP ("a""b" is two strings).
 */
#include "imap_parser.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK_SIZE 8192
#define ARENA_ALIGN 16
#define LINE_MIN_CAP 256

struct arena_block {
	struct arena_block *next;
	size_t cap;
	size_t used;
};

/* Data starts here in each block, so every allocation can be ARENA_ALIGN-aligned. */
#define ARENA_HDR ((sizeof(struct arena_block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

enum parser_phase {
	PHASE_LINE,       /* collecting the next segment */
	PHASE_INLINE_LIT, /* copying a small literal into the arena */
	PHASE_STREAM_LIT, /* handing a large literal to the caller */
	PHASE_ERROR,      /* sticky until imap_parser_reset() */
};

/* What a parsing step found. */
enum seg_result {
	SEG_ERROR = -1,
	SEG_DONE,    /* the response is complete */
	SEG_LITERAL, /* the segment ended with {n}: literal bytes follow */
	SEG_ARGS,    /* header parsed; the rest of the segment is arguments */
};

struct imap_parser {
	/* Configuration. */
	struct imap_parser_limits lim;

	/* Connection: survives responses. */
	enum parser_phase phase;
	struct mh_err err; /* the sticky error */
	char *line;        /* the segment being collected, CRLF not yet stripped */
	size_t line_len;
	size_t line_cap;
	struct imap_arg *stack; /* items of every open list, innermost last */
	size_t stack_len;
	size_t stack_cap;
	size_t *frames; /* where each open list starts in stack */
	size_t frames_cap;
	struct arena_block *arena;

	/* One response: reset when the next one starts. */
	struct imap_response resp;
	bool resp_done; /* RESPONSE was returned: start afresh at the next call */
	bool hdr_done;  /* tag, number and name parsed; later segments hold arguments */
	unsigned depth;
	size_t line_used; /* bytes counted against max_line: past segments, inline literals */
	size_t nargs;

	/* The literal in progress. */
	uint64_t lit_size;
	uint64_t lit_left;
	bool lit_inline;
	size_t lit_slot; /* index in stack of its argument */
	char *lit_buf;
	const char *lit_key;
};

static void *xrealloc(void *ptr, size_t size)
{
	void *q = realloc(ptr, size == 0 ? 1 : size);

	/* House rule: OOM aborts; every buffer here is capped by a limit. */
	if (q == NULL)
		abort();
	return q;
}

static void *arena_alloc(struct imap_parser *p, size_t size)
{
	struct arena_block *b = p->arena;
	size_t used;

	if (b != NULL) {
		used = (b->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
		if (used <= b->cap && b->cap - used >= size) {
			b->used = used + size;
			return (char *)b + ARENA_HDR + used;
		}
	}
	size_t cap = size > ARENA_BLOCK_SIZE ? size : ARENA_BLOCK_SIZE;
	b = xrealloc(NULL, ARENA_HDR + cap);
	b->cap = cap;
	b->used = size;
	b->next = p->arena;
	p->arena = b;
	return (char *)b + ARENA_HDR;
}

/* Keeps one standard block so a steady stream of small responses does not malloc. */
static void arena_reset(struct imap_parser *p)
{
	struct arena_block *keep = NULL, *b = p->arena, *next;

	for (; b != NULL; b = next) {
		next = b->next;
		if (keep == NULL && b->cap == ARENA_BLOCK_SIZE) {
			keep = b;
			continue;
		}
		free(b);
	}
	if (keep != NULL) {
		keep->next = NULL;
		keep->used = 0;
	}
	p->arena = keep;
}

static char ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static char *arena_strndup(struct imap_parser *p, const char *s, size_t n, bool upper)
{
	char *d = arena_alloc(p, n + 1);

	if (upper) {
		for (size_t i = 0; i < n; i++)
			d[i] = ascii_upper(s[i]);
	} else if (n > 0) {
		memcpy(d, s, n);
	}
	d[n] = '\0';
	return d;
}

/* Sets the sticky error. off is the byte offset in the response, or SIZE_MAX for none. */
static enum seg_result __attribute__((format(printf, 3, 4)))
parser_fail(struct imap_parser *p, size_t off, const char *fmt, ...)
{
	char what[MH_ERR_DETAIL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (off == SIZE_MAX)
		mh_err_set(&p->err, MH_E_PROTOCOL, "%s", what);
	else
		mh_err_set(&p->err, MH_E_PROTOCOL, "%s at byte %zu", what, off);
	p->phase = PHASE_ERROR;
	return SEG_ERROR;
}

static void response_begin(struct imap_parser *p)
{
	arena_reset(p);
	memset(&p->resp, 0, sizeof(p->resp));
	p->resp_done = false;
	p->hdr_done = false;
	p->depth = 0;
	p->line_used = 0;
	p->nargs = 0;
	p->stack_len = 0;
	p->line_len = 0;
	p->lit_key = NULL;
	p->lit_buf = NULL;
}

/* Appends to the innermost open list; count is false for a list being closed, which was
 * counted when it was opened. */
static enum seg_result arg_push(struct imap_parser *p, const struct imap_arg *a, bool count,
				size_t off)
{
	if (count) {
		if (p->nargs >= p->lim.max_args)
			return parser_fail(p, off, "more than %zu arguments", p->lim.max_args);
		p->nargs++;
	}
	if (p->stack_len == p->stack_cap) {
		p->stack_cap = p->stack_cap == 0 ? 64 : p->stack_cap * 2;
		p->stack = xrealloc(p->stack, p->stack_cap * sizeof(*p->stack));
	}
	p->stack[p->stack_len++] = *a;
	return SEG_DONE;
}

/* Moves stack[start..] into the arena as one array. */
static const struct imap_arg *args_collect(struct imap_parser *p, size_t start, size_t *count_r)
{
	size_t count = p->stack_len - start;
	struct imap_arg *items = NULL;

	if (count > 0) {
		items = arena_alloc(p, count * sizeof(*items));
		memcpy(items, p->stack + start, count * sizeof(*items));
	}
	p->stack_len = start;
	*count_r = count;
	return items;
}

static size_t skip_spaces(const char *s, size_t n, size_t pos)
{
	while (pos < n && s[pos] == ' ')
		pos++;
	return pos;
}

/* RFC 3501 section 9: ATOM-CHAR is any CHAR except atom-specials. */
static bool is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

/* tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR adds ']' to ATOM-CHAR. */
static bool is_tag_char(unsigned char c)
{
	return c != '+' && (c == ']' || is_atom_char(c));
}

static enum imap_status status_lookup(const char *name)
{
	static const struct {
		const char *name;
		enum imap_status status;
	} words[] = {
		{"OK", IMAP_STATUS_OK},   {"NO", IMAP_STATUS_NO},
		{"BAD", IMAP_STATUS_BAD}, {"PREAUTH", IMAP_STATUS_PREAUTH},
		{"BYE", IMAP_STATUS_BYE},
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(name, words[i].name) == 0)
			return words[i].status;
	return IMAP_STATUS_NONE;
}

/* Fails on a byte that may only appear inside a literal. */
static enum seg_result check_text(struct imap_parser *p, const char *s, size_t from, size_t to,
				  const char *what)
{
	for (size_t i = from; i < to; i++) {
		if (s[i] == '\r')
			return parser_fail(p, p->line_used + i, "bare CR in %s", what);
		if (s[i] == '\0')
			return parser_fail(p, p->line_used + i, "NUL byte in %s", what);
	}
	return SEG_DONE;
}

/* The rest of a status response: [CODE args] text (RFC 3501 section 7.1). */
static enum seg_result status_parse(struct imap_parser *p, const char *s, size_t n, size_t pos)
{
	size_t start;

	pos = skip_spaces(s, n, pos);
	if (pos < n && s[pos] == '[') {
		size_t code_at = pos;
		unsigned nest = 0;
		bool quoted = false;

		start = ++pos;
		while (pos < n && s[pos] != ' ' && s[pos] != ']')
			pos++;
		if (pos == n)
			return parser_fail(p, p->line_used + code_at, "unterminated response code");
		if (pos == start)
			return parser_fail(p, p->line_used + code_at, "empty response code");
		if (check_text(p, s, start, pos, "response code") < 0)
			return SEG_ERROR;
		p->resp.code = arena_strndup(p, s + start, pos - start, true);
		start = pos = skip_spaces(s, n, pos);
		/* Arguments are raw text up to the matching ']': PERMANENTFLAGS (\Seen \*),
		 * BADCHARSET ("a]b"), nested [...] are all tolerated. */
		for (; pos < n; pos++) {
			char c = s[pos];

			if (quoted) {
				if (c == '\\' && pos + 1 < n)
					pos++;
				else if (c == '"')
					quoted = false;
			} else if (c == '"') {
				quoted = true;
			} else if (c == '[') {
				nest++;
			} else if (c == ']') {
				if (nest == 0)
					break;
				nest--;
			}
		}
		if (pos == n)
			return parser_fail(p, p->line_used + code_at, "unterminated response code");
		if (check_text(p, s, start, pos, "response code") < 0)
			return SEG_ERROR;
		p->resp.code_args = arena_strndup(p, s + start, pos - start, false);
		pos = skip_spaces(s, n, pos + 1);
	}
	if (check_text(p, s, pos, n, "response text") < 0)
		return SEG_ERROR;
	p->resp.text = arena_strndup(p, s + pos, n - pos, false);
	return SEG_DONE;
}

/* Up to SP, '(' or '[' (a name or number in the response header). */
static size_t word_end(const char *s, size_t n, size_t pos)
{
	while (pos < n && s[pos] != ' ' && s[pos] != '(' && s[pos] != '[')
		pos++;
	return pos;
}

/* Kind, tag, number and name; status and continuation responses are finished here. */
static enum seg_result header_parse(struct imap_parser *p, const char *s, size_t n,
				    size_t *pos_r)
{
	size_t pos, start, end;
	uint64_t num;

	if (n == 0)
		return parser_fail(p, p->line_used, "empty response line");
	if (s[0] == '+') {
		/* "+\r\n" is valid: the text may be empty. */
		p->resp.kind = IMAP_RESP_CONTINUATION;
		pos = n > 1 && s[1] == ' ' ? 2 : 1;
		if (check_text(p, s, pos, n, "continuation text") < 0)
			return SEG_ERROR;
		p->resp.text = arena_strndup(p, s + pos, n - pos, false);
		return SEG_DONE;
	}
	if (s[0] == '*') {
		p->resp.kind = IMAP_RESP_UNTAGGED;
		if (n < 2 || s[1] != ' ')
			return parser_fail(p, p->line_used + 1, "missing space after '*'");
		pos = 2;
	} else {
		for (pos = 0; pos < n && s[pos] != ' '; pos++)
			if (!is_tag_char((unsigned char)s[pos]))
				return parser_fail(p, p->line_used + pos, "bad character in tag");
		if (pos == 0)
			return parser_fail(p, p->line_used, "empty tag");
		if (pos == n)
			return parser_fail(p, p->line_used + pos, "missing space after tag");
		p->resp.kind = IMAP_RESP_TAGGED;
		p->resp.tag = arena_strndup(p, s, pos, false);
		pos++;
	}

	start = skip_spaces(s, n, pos);
	end = word_end(s, n, start);
	if (p->resp.kind == IMAP_RESP_UNTAGGED && end > start && s[start] >= '0' &&
	    s[start] <= '9') {
		if (imap_parse_number(s + start, end - start, UINT32_MAX, &num) < 0)
			return parser_fail(p, p->line_used + start, "bad message number");
		p->resp.has_number = true;
		p->resp.number = (uint32_t)num;
		start = skip_spaces(s, n, end);
		end = word_end(s, n, start);
	}
	if (end == start)
		return parser_fail(p, p->line_used + start, "missing response name");
	for (pos = start; pos < end; pos++)
		if (!is_atom_char((unsigned char)s[pos]))
			return parser_fail(p, p->line_used + pos, "bad character in response name");
	p->resp.name = arena_strndup(p, s + start, end - start, true);
	p->resp.status = status_lookup(p->resp.name);
	if (p->resp.status != IMAP_STATUS_NONE)
		return status_parse(p, s, n, end);
	/* RFC 3501 section 7: only status responses carry a tag. */
	if (p->resp.kind == IMAP_RESP_TAGGED)
		return parser_fail(p, p->line_used + start, "tagged response is not a status");
	p->hdr_done = true;
	*pos_r = end;
	return SEG_ARGS;
}

/* A quoted string; pos is at the opening '"'. Returns the position after the closing one. */
static enum seg_result quoted_parse(struct imap_parser *p, const char *s, size_t n,
				    size_t *pos_r)
{
	size_t start = *pos_r + 1, i, len = 0;
	struct imap_arg a = {.type = IMAP_ARG_STRING};
	char *d;

	/* First pass finds the end, so a string takes only its own size from the arena. */
	for (i = start; i < n && s[i] != '"'; i++, len++) {
		if (s[i] == '\\') {
			if (++i == n)
				break;
		}
		if (s[i] == '\r')
			return parser_fail(p, p->line_used + i, "CR in quoted string");
		if (s[i] == '\0')
			return parser_fail(p, p->line_used + i, "NUL byte in quoted string");
	}
	if (i >= n)
		return parser_fail(p, p->line_used + *pos_r, "unterminated quoted string");
	d = arena_alloc(p, len + 1);
	a.str = d;
	a.len = len;
	for (size_t j = start; j < i; j++) {
		if (s[j] == '\\')
			j++;
		*d++ = s[j];
	}
	*d = '\0';
	*pos_r = i + 1;
	return arg_push(p, &a, true, p->line_used + start - 1);
}

/* Skips a "[...]" section inside an atom (BODY[HEADER.FIELDS (A B)]), nested brackets and
 * quoted strings included. Returns the position after the matching ']'. */
static enum seg_result section_skip(struct imap_parser *p, const char *s, size_t n,
				    size_t *pos_r)
{
	unsigned nest = 0;
	bool quoted = false;

	for (size_t i = *pos_r; i < n; i++) {
		char c = s[i];

		if (c == '\r' || c == '\0')
			return parser_fail(p, p->line_used + i, "bare CR or NUL in atom");
		if (quoted) {
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '"')
				quoted = false;
		} else if (c == '"') {
			quoted = true;
		} else if (c == '[') {
			nest++;
		} else if (c == ']' && --nest == 0) {
			*pos_r = i + 1;
			return SEG_DONE;
		}
	}
	return parser_fail(p, p->line_used + *pos_r, "unterminated '[' in atom");
}

static enum seg_result atom_parse(struct imap_parser *p, const char *s, size_t n, size_t *pos_r)
{
	size_t start = *pos_r, pos = start;
	struct imap_arg a = {.type = IMAP_ARG_ATOM};

	while (pos < n && s[pos] != ' ' && s[pos] != '(' && s[pos] != ')') {
		if (s[pos] == '[') {
			if (section_skip(p, s, n, &pos) < 0)
				return SEG_ERROR;
			continue;
		}
		if (s[pos] == '\r' || s[pos] == '\0')
			return parser_fail(p, p->line_used + pos, "bare CR or NUL in atom");
		pos++;
	}
	if (pos - start == 3 && ascii_upper(s[start]) == 'N' && ascii_upper(s[start + 1]) == 'I' &&
	    ascii_upper(s[start + 2]) == 'L') {
		a.type = IMAP_ARG_NIL;
	} else {
		a.str = arena_strndup(p, s + start, pos - start, false);
		a.len = pos - start;
	}
	*pos_r = pos;
	return arg_push(p, &a, true, p->line_used + start);
}

/* "{n}" or "~{n}" (RFC 3516 literal8), which must end the segment. */
static enum seg_result literal_parse(struct imap_parser *p, const char *s, size_t n, size_t pos)
{
	size_t at = pos, start, end;
	size_t frame = p->depth > 0 ? p->frames[p->depth - 1] : 0;
	struct imap_arg a = {.type = IMAP_ARG_STREAMED};
	uint64_t size;

	pos += s[pos] == '~' ? 2 : 1;
	start = pos;
	end = pos;
	while (end < n && s[end] != '}')
		end++;
	if (end == n)
		return parser_fail(p, p->line_used + at, "missing '}' after literal size");
	for (; pos < end; pos++)
		if (s[pos] < '0' || s[pos] > '9')
			return parser_fail(p, p->line_used + pos, "literal size has a non-digit");
	if (end == start)
		return parser_fail(p, p->line_used + at, "literal size is empty");
	if (imap_parse_number(s + start, end - start, UINT64_MAX, &size) < 0)
		return parser_fail(p, p->line_used + at, "literal size overflows");
	if (size > p->lim.max_literal)
		return parser_fail(p, p->line_used + at,
				   "literal of %llu bytes is larger than %llu bytes",
				   (unsigned long long)size, (unsigned long long)p->lim.max_literal);
	if (end + 1 != n)
		return parser_fail(p, p->line_used + end + 1, "missing CRLF after literal size");

	p->lit_key = NULL;
	if (p->stack_len > frame && p->stack[p->stack_len - 1].type == IMAP_ARG_ATOM) {
		const struct imap_arg *key = &p->stack[p->stack_len - 1];

		p->lit_key = arena_strndup(p, key->str, key->len, true);
	}
	/* 0 streams every literal, {0} included (imap_parser_set_inline_max). */
	p->lit_inline = p->lim.max_inline_literal > 0 && size <= p->lim.max_inline_literal;
	p->lit_size = size;
	p->lit_left = size;
	p->lit_slot = p->stack_len;
	if (p->lit_inline)
		a.type = IMAP_ARG_LITERAL;
	a.literal_size = size;
	if (arg_push(p, &a, true, p->line_used + at) < 0)
		return SEG_ERROR;
	return SEG_LITERAL;
}

/* Arguments of a data response, from pos to the end of the segment. */
static enum seg_result args_parse(struct imap_parser *p, const char *s, size_t n, size_t pos)
{
	struct imap_arg a;

	for (;;) {
		pos = skip_spaces(s, n, pos);
		if (pos == n)
			break;
		switch (s[pos]) {
		case '(':
			if (p->depth >= p->lim.max_depth)
				return parser_fail(p, p->line_used + pos, "nesting deeper than %u",
						   p->lim.max_depth);
			/* Counted now, so max_args also bounds "(((((". */
			if (p->nargs >= p->lim.max_args)
				return parser_fail(p, p->line_used + pos, "more than %zu arguments",
						   p->lim.max_args);
			p->nargs++;
			if (p->depth == p->frames_cap) {
				p->frames_cap = p->frames_cap == 0 ? 8 : p->frames_cap * 2;
				p->frames = xrealloc(p->frames, p->frames_cap * sizeof(*p->frames));
			}
			p->frames[p->depth++] = p->stack_len;
			pos++;
			break;
		case ')':
			if (p->depth == 0)
				return parser_fail(p, p->line_used + pos, "unbalanced ')'");
			memset(&a, 0, sizeof(a));
			a.type = IMAP_ARG_LIST;
			a.items = args_collect(p, p->frames[--p->depth], &a.count);
			if (arg_push(p, &a, false, 0) < 0)
				return SEG_ERROR;
			pos++;
			break;
		case '"':
			if (quoted_parse(p, s, n, &pos) < 0)
				return SEG_ERROR;
			break;
		case '{':
			return literal_parse(p, s, n, pos);
		case '~':
			if (pos + 1 < n && s[pos + 1] == '{')
				return literal_parse(p, s, n, pos);
			if (atom_parse(p, s, n, &pos) < 0)
				return SEG_ERROR;
			break;
		default:
			if (atom_parse(p, s, n, &pos) < 0)
				return SEG_ERROR;
			break;
		}
	}
	if (p->depth > 0)
		return parser_fail(p, p->line_used + n, "missing ')'");
	p->resp.args = args_collect(p, 0, &p->resp.count);
	return SEG_DONE;
}

/* Moves bytes up to the next LF into the line buffer. Returns 1 when a whole segment is
 * there (CRLF stripped), 0 when more input is needed, -1 on error. */
static int line_collect(struct imap_parser *p, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in), take, total;
	struct evbuffer_ptr lf;

	if (avail == 0)
		return 0;
	lf = evbuffer_search(in, "\n", 1, NULL);
	take = lf.pos < 0 ? avail : (size_t)lf.pos;
	/* Checked before the CRLF arrives, so an endless line fails as soon as it is too
	 * long instead of being buffered. */
	total = p->line_used + p->line_len + take + (lf.pos < 0 ? 0 : 1);
	if (total > p->lim.max_line)
		return parser_fail(p, SIZE_MAX, "line longer than %zu bytes", p->lim.max_line);
	if (p->line_len + take > p->line_cap) {
		size_t cap = p->line_cap == 0 ? LINE_MIN_CAP : p->line_cap;

		while (cap < p->line_len + take)
			cap *= 2;
		p->line = xrealloc(p->line, cap);
		p->line_cap = cap;
	}
	if (take > 0 && evbuffer_remove(in, p->line + p->line_len, take) != (int)take)
		return parser_fail(p, SIZE_MAX, "input buffer could not be read");
	p->line_len += take;
	if (lf.pos < 0)
		return 0;
	evbuffer_drain(in, 1);
	if (p->line_len == 0 || p->line[p->line_len - 1] != '\r')
		return parser_fail(p, p->line_used + p->line_len,
				   "bare LF line ending (expected CRLF)");
	p->line_len--;
	return 1;
}

/* Tokenizes a complete segment and accounts for its bytes. */
static enum seg_result segment_parse(struct imap_parser *p)
{
	const char *s = p->line;
	size_t n = p->line_len, pos = 0;
	enum seg_result r = SEG_ARGS;

	if (!p->hdr_done)
		r = header_parse(p, s, n, &pos);
	if (r == SEG_ARGS)
		r = args_parse(p, s, n, pos);
	p->line_used += n + 2;
	p->line_len = 0;
	return r;
}

static enum imap_ev parser_error(struct imap_parser *p, struct imap_event *ev,
				 struct mh_err *err)
{
	memset(ev, 0, sizeof(*ev));
	if (err != NULL)
		*err = p->err;
	return IMAP_EV_ERROR;
}

/* Fills lim with the defaults documented in imap_parser.h. */
void imap_parser_limits_default(struct imap_parser_limits *lim)
{
	lim->max_line = 1024 * 1024;
	lim->max_inline_literal = 32 * 1024;
	lim->max_literal = 2ULL * 1024 * 1024 * 1024;
	lim->max_depth = 32;
	lim->max_args = 1000000;
}

/* Creates a parser with lim (NULL: the defaults). Never returns NULL (OOM aborts). */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *lim)
{
	struct imap_parser *p = xrealloc(NULL, sizeof(*p));

	memset(p, 0, sizeof(*p));
	if (lim != NULL)
		p->lim = *lim;
	else
		imap_parser_limits_default(&p->lim);
	imap_parser_reset(p);
	return p;
}

/* Frees *p and its arena and sets *p to NULL; NULL or *p NULL is a no-op. */
void imap_parser_free(struct imap_parser **p)
{
	struct imap_parser *q;

	if (p == NULL || *p == NULL)
		return;
	q = *p;
	arena_reset(q);
	free(q->arena);
	free(q->line);
	free(q->stack);
	free(q->frames);
	free(q);
	*p = NULL;
}

/* Drops any partial response and the sticky error. */
void imap_parser_reset(struct imap_parser *p)
{
	p->phase = PHASE_LINE;
	mh_err_clear(&p->err);
	response_begin(p);
}

/* Takes effect at the next literal: the one being read keeps its mode. */
void imap_parser_set_inline_max(struct imap_parser *p, size_t max_inline_literal)
{
	p->lim.max_inline_literal = max_inline_literal;
}

/* Returns the next event; see imap_parser.h. NEED_MORE is returned only when in is
 * empty: every byte was consumed into the parser's state. */
enum imap_ev imap_parser_next(struct imap_parser *p, struct evbuffer *in, struct imap_event *ev,
			      struct mh_err *err)
{
	if (p->phase == PHASE_ERROR)
		return parser_error(p, ev, err);
	memset(ev, 0, sizeof(*ev));
	if (p->resp_done)
		response_begin(p);

	for (;;) {
		size_t avail = evbuffer_get_length(in), k;
		int r;

		switch (p->phase) {
		case PHASE_LINE:
			r = line_collect(p, in);
			if (r < 0)
				return parser_error(p, ev, err);
			if (r == 0)
				return IMAP_EV_NEED_MORE;
			switch (segment_parse(p)) {
			case SEG_DONE:
				p->resp_done = true;
				ev->resp = &p->resp;
				return IMAP_EV_RESPONSE;
			case SEG_LITERAL:
				break;
			default:
				return parser_error(p, ev, err);
			}
			if (p->lit_inline) {
				/* Inline literal bytes count against max_line. */
				if (p->line_used > p->lim.max_line ||
				    p->lit_size > p->lim.max_line - p->line_used) {
					parser_fail(p, SIZE_MAX, "line longer than %zu bytes",
						    p->lim.max_line);
					return parser_error(p, ev, err);
				}
				/* Safe to allocate: lit_size <= max_inline_literal. */
				p->lit_buf = arena_alloc(p, (size_t)p->lit_size + 1);
				p->phase = PHASE_INLINE_LIT;
				break;
			}
			p->phase = PHASE_STREAM_LIT;
			ev->resp = &p->resp;
			ev->literal_key = p->lit_key;
			ev->literal_size = p->lit_size;
			return IMAP_EV_LITERAL_BEGIN;

		case PHASE_INLINE_LIT:
			if (p->lit_left > 0) {
				if (avail == 0)
					return IMAP_EV_NEED_MORE;
				k = avail < p->lit_left ? avail : (size_t)p->lit_left;
				evbuffer_remove(in, p->lit_buf + (p->lit_size - p->lit_left), k);
				p->lit_left -= k;
				continue;
			}
			p->lit_buf[p->lit_size] = '\0';
			p->stack[p->lit_slot].str = p->lit_buf;
			p->stack[p->lit_slot].len = (size_t)p->lit_size;
			p->line_used += (size_t)p->lit_size;
			p->lit_buf = NULL;
			p->phase = PHASE_LINE;
			break;

		case PHASE_STREAM_LIT:
			ev->resp = &p->resp;
			ev->literal_key = p->lit_key;
			ev->literal_size = p->lit_size;
			if (p->lit_left == 0) {
				p->phase = PHASE_LINE;
				return IMAP_EV_LITERAL_END;
			}
			if (avail == 0) {
				memset(ev, 0, sizeof(*ev));
				return IMAP_EV_NEED_MORE;
			}
			/* The caller removes these bytes before calling again. */
			ev->len = avail < p->lit_left ? avail : (size_t)p->lit_left;
			p->lit_left -= ev->len;
			return IMAP_EV_LITERAL_DATA;

		case PHASE_ERROR:
			return parser_error(p, ev, err);
		}
	}
}

/* Case-insensitive (ASCII) comparison of an ATOM, STRING or LITERAL argument with s. */
bool imap_arg_is(const struct imap_arg *a, const char *s)
{
	size_t n;

	if (a == NULL || s == NULL ||
	    (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING && a->type != IMAP_ARG_LITERAL))
		return false;
	n = strlen(s);
	if (a->len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a->str[i]) != ascii_lower(s[i]))
			return false;
	return true;
}

/* A strict number from an ATOM or STRING argument (some servers quote numbers). */
int imap_arg_number(const struct imap_arg *a, uint64_t max, uint64_t *val_r)
{
	if (a == NULL || (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING))
		return -1;
	return imap_parse_number(a->str, a->len, max, val_r);
}

/* Digits only: no sign, space or hex; fails instead of wrapping or exceeding max. */
int imap_parse_number(const char *s, size_t n, uint64_t max, uint64_t *val_r)
{
	uint64_t v = 0;

	if (s == NULL || n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - (unsigned)'0';

		if (d > 9 || v > max / 10 || (v == max / 10 && d > max % 10))
			return -1;
		v = v * 10 + d;
	}
	*val_r = v;
	return 0;
}

static const struct imap_arg *fetch_attr(const struct imap_response *r, const char *name, bool prefix)
{
	const struct imap_arg *list;
	size_t n = strlen(name);

	if (r == NULL || r->name == NULL || strcmp(r->name, "FETCH") != 0 || r->count < 1 ||
	    r->args[0].type != IMAP_ARG_LIST)
		return NULL;
	list = &r->args[0];
	for (size_t i = 0; i + 1 < list->count; i += 2) {
		const struct imap_arg *k = &list->items[i];
		if (k->type != IMAP_ARG_ATOM || k->len < n || (!prefix && k->len != n))
			continue;
		size_t j = 0;
		while (j < n && ascii_lower(k->str[j]) == ascii_lower(name[j]))
			j++;
		if (j == n)
			return &list->items[i + 1];
	}
	return NULL;
}

const struct imap_arg *imap_fetch_attr(const struct imap_response *r, const char *name)
{
	return fetch_attr(r, name, false);
}

const struct imap_arg *imap_fetch_attr_prefix(const struct imap_response *r, const char *prefix)
{
	return fetch_attr(r, prefix, true);
}

uint32_t imap_fetch_uid(const struct imap_response *r)
{
	uint64_t uid = 0;

	if (imap_arg_number(imap_fetch_attr(r, "UID"), UINT32_MAX, &uid) < 0)
		return 0;
	return (uint32_t)uid;
}
