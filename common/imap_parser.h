/* imap_parser.h - incremental parser for IMAP server responses (RFC 3501 / RFC 9051).
 *
 * Pure: bytes in, events out. It does no I/O and knows nothing of sockets; the caller
 * feeds it the connection's input evbuffer (libevent's evbuffer is used only as a byte
 * queue). Every split of the input at any byte gives the same events.
 *
 * Literals: a literal of at most limits.max_inline_literal bytes is kept in the argument
 * tree like a quoted string. A larger one is streamed: the parser returns
 * IMAP_EV_LITERAL_BEGIN, then IMAP_EV_LITERAL_DATA events, then IMAP_EV_LITERAL_END, and
 * then goes on parsing the same response; in the final response the literal appears as an
 * IMAP_ARG_STREAMED argument (size only). A declared size is never used to allocate.
 *
 * Memory: everything a response points to (strings, argument arrays) lives in an arena
 * owned by the parser, valid until the next call of imap_parser_next() after the one that
 * returned IMAP_EV_RESPONSE. Copy what you keep.
 */
#ifndef MH_IMAP_PARSER_H
#define MH_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct evbuffer;

struct imap_parser_limits {
	size_t max_line;           /* bytes of one response outside streamed literals (default 1 MiB) */
	size_t max_inline_literal; /* literals up to this size go into the tree (default 32 KiB) */
	uint64_t max_literal;      /* a larger declared literal is a protocol error (default 2 GiB) */
	unsigned max_depth;        /* nesting of parenthesized lists (default 32) */
	size_t max_args;           /* items in one list or response, all levels (default 1,000,000) */
};

/* Fills in the defaults documented above. */
void imap_parser_limits_default(struct imap_parser_limits *lim);

enum imap_arg_type {
	IMAP_ARG_ATOM,     /* includes flags (\Seen), numbers, and BODY[...]<...> section atoms */
	IMAP_ARG_STRING,   /* quoted string (unescaped) */
	IMAP_ARG_LITERAL,  /* inline literal: str/len hold its bytes (may contain NUL) */
	IMAP_ARG_STREAMED, /* a literal delivered as LITERAL_* events; only literal_size is set */
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,     /* parenthesized list */
};

struct imap_arg {
	enum imap_arg_type type;
	const char *str;      /* ATOM/STRING/LITERAL: bytes, always NUL-terminated after len */
	size_t len;
	const struct imap_arg *items; /* LIST */
	size_t count;                 /* LIST */
	uint64_t literal_size;        /* STREAMED */
};

enum imap_resp_kind {
	IMAP_RESP_UNTAGGED,     /* "* ..." */
	IMAP_RESP_TAGGED,       /* "A12 OK ..." */
	IMAP_RESP_CONTINUATION, /* "+ ..." */
};

enum imap_status {
	IMAP_STATUS_NONE, /* a data response (FETCH, LIST, CAPABILITY, EXISTS, ...) */
	IMAP_STATUS_OK,
	IMAP_STATUS_NO,
	IMAP_STATUS_BAD,
	IMAP_STATUS_PREAUTH,
	IMAP_STATUS_BYE,
};

struct imap_response {
	enum imap_resp_kind kind;
	const char *tag;         /* TAGGED: the tag; else NULL */
	enum imap_status status; /* OK/NO/BAD/PREAUTH/BYE for status responses */
	bool has_number;         /* "* 23 EXISTS", "* 5 FETCH (...)" */
	uint32_t number;
	/* The response name, upper-cased: "OK", "NO", "BAD", "BYE", "PREAUTH", "CAPABILITY",
	 * "FETCH", "LIST", "LSUB", "STATUS", "SEARCH", "ESEARCH", "EXISTS", "EXPUNGE",
	 * "FLAGS", "NAMESPACE", "ENABLED", "QUOTA", "QUOTAROOT", ... NULL for CONTINUATION. */
	const char *name;
	/* Status responses: the response code, if any. "[APPENDUID 38505 3955]" gives
	 * code "APPENDUID" (upper-cased) and code_args "38505 3955" (raw bytes between the
	 * code atom and ']', leading space removed, may be ""). NULL when there is no code. */
	const char *code;
	const char *code_args;
	/* Status responses and CONTINUATION: the human-readable text after the code ("" if none). */
	const char *text;
	/* Data responses: everything after the name, e.g. for FETCH one LIST; for
	 * CAPABILITY the atoms; for LIST a LIST, a STRING or NIL, and the name. */
	const struct imap_arg *args;
	size_t count;
};

enum imap_ev {
	IMAP_EV_NEED_MORE,     /* everything buffered was consumed; feed more bytes */
	IMAP_EV_RESPONSE,      /* ev->resp is complete */
	IMAP_EV_LITERAL_BEGIN, /* a streamed literal starts: ev->literal_size, ev->literal_key */
	IMAP_EV_LITERAL_DATA,  /* ev->len bytes of the literal are at the front of the input */
	IMAP_EV_LITERAL_END,   /* the streamed literal is complete */
	IMAP_EV_ERROR,         /* protocol error; err says what. Sticky: every later call says ERROR */
};

struct imap_event {
	/* RESPONSE: the complete response. LITERAL_*: the response being parsed, with only
	 * kind, tag, has_number, number and name filled in (args are not yet available). */
	const struct imap_response *resp;
	/* LITERAL_BEGIN: the atom just before the literal, upper-cased, e.g. "BODY[]" or
	 * "BODY[HEADER]" or "RFC822"; NULL when the literal does not follow an atom. */
	const char *literal_key;
	uint64_t literal_size; /* LITERAL_BEGIN/DATA/END: the declared size */
	/* LITERAL_DATA: len bytes of literal content are at the front of the evbuffer that was
	 * passed in. The caller MUST remove exactly len bytes from it (evbuffer_remove_buffer
	 * to move them elsewhere without copying, evbuffer_remove, or evbuffer_drain) before
	 * calling imap_parser_next() again. */
	size_t len;
};

struct imap_parser;

struct imap_parser *imap_parser_new(const struct imap_parser_limits *lim);
void imap_parser_free(struct imap_parser **p);
/* Forgets any partial response and a sticky error (after a reconnect). */
void imap_parser_reset(struct imap_parser *p);
/* Changes limits.max_inline_literal from the next literal on. 0 streams every literal. */
void imap_parser_set_inline_max(struct imap_parser *p, size_t max_inline_literal);

/* Consumes bytes from the front of in and returns the next event (see enum imap_ev).
 * On IMAP_EV_ERROR err (if not NULL) gets code MH_E_PROTOCOL and a detail naming the bad
 * construct and the position, e.g. "literal size has a non-digit", "line longer than
 * 1048576 bytes", "nesting deeper than 32". */
enum imap_ev imap_parser_next(struct imap_parser *p, struct evbuffer *in, struct imap_event *ev,
			      struct mh_err *err);

/* Helpers for consumers of the tree. */
/* Case-insensitive comparison of an ATOM/STRING/LITERAL arg with s. */
bool imap_arg_is(const struct imap_arg *a, const char *s);
/* Strict unsigned number (digits only, no sign/space, overflow-checked, <= max). 0 or -1. */
int imap_arg_number(const struct imap_arg *a, uint64_t max, uint64_t *val_r);
/* The same strict number parsing on raw bytes. */
int imap_parse_number(const char *s, size_t n, uint64_t max, uint64_t *val_r);
/* FETCH responses ("* 5 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE 2301)"): the value of
 * attribute name (case-insensitive), or NULL when r is no FETCH or has none. */
const struct imap_arg *imap_fetch_attr(const struct imap_response *r, const char *name);
/* The same for the first attribute whose name starts with prefix ("BODY[HEADER.FIELDS"
 * matches "BODY[HEADER.FIELDS (MESSAGE-ID)]"). */
const struct imap_arg *imap_fetch_attr_prefix(const struct imap_response *r, const char *prefix);
/* The UID of a FETCH response; 0 when it has none (or a bad one). */
uint32_t imap_fetch_uid(const struct imap_response *r);

#endif
