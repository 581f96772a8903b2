/* pop3_parser.h - incremental decoder for POP3 server responses (RFC 1939, RFC 2449,
 * RFC 3206, RFC 5034).
 *
 * Pure: bytes in, events out. It does no I/O; the caller feeds it the connection's input
 * evbuffer (used only as a byte queue) and pulls events. Every split of the input at any
 * byte gives the same events.
 *
 * POP3 has no framing of its own: whether a reply is one line or a multi-line block ending
 * with a "." line depends on the command. So before each reply the caller says what it
 * expects (pop3_parser_expect()); with pipelined commands, once per reply, in order.
 *
 * Multi-line replies are dot-unstuffed (RFC 1939 section 3): a line starting with "." has
 * that "." removed, and a line that is only "." ends the reply. Only CRLF ends a line.
 * Listing lines (CAPA, UIDL, LIST) come one per POP3_EV_LINE event; a message (RETR, TOP)
 * is streamed as POP3_EV_BODY_DATA events whose bytes stay in the caller's evbuffer, so a
 * large message is never copied into the parser. Message bytes are passed on exactly as
 * received, lone CR, lone LF and NUL included; only the stuffing dots and the final
 * ".CRLF" are removed. The CRLF before the final "." belongs to the message.
 *
 * Memory: strings handed out in events live in the parser and stay valid until the next
 * call of pop3_parser_next(). Copy what you keep.
 */
#ifndef MH_POP3_PARSER_H
#define MH_POP3_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct evbuffer;

struct pop3_parser_limits {
	size_t max_line;      /* bytes of a status or listing line, CRLF included (default 64 KiB) */
	uint64_t max_message; /* bytes of one message after unstuffing (default 2 GiB) */
	size_t max_lines;     /* lines in one listing (default 1,000,000) */
};

/* Fills in the defaults documented above. */
void pop3_parser_limits_default(struct pop3_parser_limits *lim);

/* What the next reply is. */
enum pop3_expect {
	POP3_EXPECT_STATUS, /* one line: +OK or -ERR (greeting, USER, PASS, APOP, STAT, STLS, QUIT) */
	POP3_EXPECT_AUTH,   /* one line: +OK, -ERR, or a SASL continuation "+ challenge" (AUTH) */
	POP3_EXPECT_LINES,  /* a status line; after +OK, listing lines up to "." (CAPA, UIDL, LIST) */
	POP3_EXPECT_BODY,   /* a status line; after +OK, a message up to "." (RETR, TOP) */
};

/* RFC 2449 section 8 and RFC 3206 response codes, the text between '[' and ']' at the start
 * of a status text. Unknown sub-levels count as their parent ("SYS/TEMP/DISK" is SYS_TEMP,
 * RFC 2449 section 8). */
enum pop3_code {
	POP3_CODE_NONE,
	POP3_CODE_AUTH,        /* [AUTH]: the credentials are wrong (RFC 3206) */
	POP3_CODE_IN_USE,      /* [IN-USE]: another session holds the mailbox (RFC 2449) */
	POP3_CODE_LOGIN_DELAY, /* [LOGIN-DELAY]: logged in too recently (RFC 2449) */
	POP3_CODE_SYS_TEMP,    /* [SYS/TEMP]: a passing problem of the server (RFC 3206) */
	POP3_CODE_SYS_PERM,    /* [SYS/PERM]: a lasting problem of the server (RFC 3206) */
	POP3_CODE_OTHER,       /* any other well-formed code, e.g. [UTF8] or [SYS] */
};

struct pop3_status {
	bool ok;           /* +OK; false for -ERR and for a continuation */
	bool continuation; /* "+ challenge" (only when POP3_EXPECT_AUTH) */
	enum pop3_code code;
	const char *code_str; /* the code as sent, upper-cased ("SYS/TEMP"); NULL when none */
	const char *text;     /* the text after the code (or all of it); "" when none */
	/* Everything after "+OK ", "-ERR " or "+ ", code included: a STAT reply's numbers, a
	 * greeting's APOP timestamp, a continuation's base64 challenge. "" when none. */
	const char *line;
};

enum pop3_ev {
	POP3_EV_NEED_MORE, /* feed more bytes (see pop3_parser_next() for what may stay in in) */
	POP3_EV_STATUS,    /* ev->status; ev->complete says whether the reply ends here */
	POP3_EV_LINE,      /* one listing line, unstuffed, without CRLF: ev->line, ev->len */
	POP3_EV_BODY_DATA, /* ev->len message bytes are at the front of the input */
	POP3_EV_END,       /* the "." line: the multi-line reply is complete; ev->total */
	POP3_EV_ERROR,     /* err says what. Sticky: every later call says ERROR */
};

struct pop3_event {
	const struct pop3_status *status; /* STATUS */
	/* STATUS: true when nothing more follows for this reply (a single-line reply, -ERR,
	 * a continuation); false for the +OK that opens a multi-line reply. */
	bool complete;
	const char *line; /* LINE: NUL-terminated after len (the line may hold no NUL) */
	/* LINE: the line's length. BODY_DATA: len bytes of message are at the front of the
	 * evbuffer that was passed in; the caller MUST remove exactly len bytes from it
	 * (evbuffer_remove_buffer to move them without copying, evbuffer_remove, or
	 * evbuffer_drain) before calling pop3_parser_next() again. */
	size_t len;
	uint64_t total; /* END: the lines of a listing, or the message's bytes */
};

struct pop3_parser;

/* lim NULL: the defaults. Never returns NULL (OOM aborts). */
struct pop3_parser *pop3_parser_new(const struct pop3_parser_limits *lim);
/* Frees *p and sets *p to NULL; NULL or *p NULL is a no-op. */
void pop3_parser_free(struct pop3_parser **p);
/* Forgets any partial reply, the expectation and a sticky error (after a reconnect). */
void pop3_parser_reset(struct pop3_parser *p);

/* Sets what the next reply is. Call it only between replies (pop3_parser_busy() false);
 * called in the middle of one it is a bug, and the parser fails with MH_E_INTERNAL. */
void pop3_parser_expect(struct pop3_parser *p, enum pop3_expect kind);
/* True from pop3_parser_expect() until the reply has been returned in full (STATUS with
 * complete, or END), and after an error. */
bool pop3_parser_busy(const struct pop3_parser *p);

/* Consumes bytes from the front of in and returns the next event (see enum pop3_ev).
 * NEED_MORE leaves in empty, except inside a message, where one CR may stay at the front:
 * after a line-start ".", whether it ends the message depends on the next byte. The caller
 * appends new bytes behind it (a bufferevent's input does so by itself).
 * Bytes arriving while no reply is expected are an error. On POP3_EV_ERROR err (if not
 * NULL) gets MH_E_PROTOCOL and a detail naming the problem, e.g. "line longer than 65536
 * bytes", "message larger than 1048576 bytes", "status line does not start with +OK or
 * -ERR"; MH_E_INTERNAL for a misuse of the API. */
enum pop3_ev pop3_parser_next(struct pop3_parser *p, struct evbuffer *in, struct pop3_event *ev,
			      struct mh_err *err);

/* The server closed the connection: returns 0 when no reply was under way and nothing is
 * buffered, else -1 with MH_E_CONNECTION_LOST and a detail saying what was cut off ("the
 * connection closed in the middle of a message (1200 bytes received, no final \".\" line)"). */
int pop3_parser_eof(const struct pop3_parser *p, struct evbuffer *in, struct mh_err *err);

/* --- pure helpers for the lines of replies (strict numbers: digits only, no sign) --- */
/* STAT's "+OK count octets [...]" (status->line). 0 or -1. */
int pop3_parse_stat(const char *line, uint32_t *count_r, uint64_t *octets_r);
/* A LIST scan listing line "msgno size [...]" (RFC 1939 section 5: anything may follow
 * the size). msgno is at least 1. 0 or -1. */
int pop3_parse_list_line(const char *line, size_t len, uint32_t *msgno_r, uint64_t *size_r);
/* A UIDL line "msgno unique-id". The id is 1 to POP3_UID_MAX bytes of 0x21..0x7E (RFC 1939
 * allows 70; longer ones are seen in the wild); *uid_r points into line. 0 or -1. */
#define POP3_UID_MAX 255
int pop3_parse_uidl_line(const char *line, size_t len, uint32_t *msgno_r, const char **uid_r,
			 size_t *uid_len_r);
/* The APOP timestamp of a greeting (RFC 1939 section 7): the first "<...>" holding an '@',
 * made of printable ASCII without spaces, at most 512 bytes with its brackets. Returns 0
 * with *ts_r pointing at '<' and *len_r covering '>', or -1 when there is none. */
int pop3_greeting_timestamp(const char *line, const char **ts_r, size_t *len_r);
/* "AUTH", "IN-USE", "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM", "OTHER", "NONE". */
const char *pop3_code_name(enum pop3_code code);

#endif
