/* pop3_client.h - asynchronous POP3 client (RFC 1939) on a libevent bufferevent, with
 * OpenSSL: CAPA (RFC 2449), STLS (RFC 2595), AUTH PLAIN (RFC 5034, RFC 4616), APOP,
 * USER/PASS, STAT, UIDL, LIST, RETR, TOP, QUIT.
 *
 * Read-only by construction: the client has no way to send DELE or RSET. Its whole
 * vocabulary is the table in pop3_client.c (CAPA STLS AUTH USER PASS APOP STAT UIDL LIST
 * RETR TOP QUIT); there is no raw-command API. QUIT ends the session without deleting
 * anything, since nothing was marked deleted. (Some servers mark retrieved messages as
 * read for their IMAP side.)
 *
 * One struct pop3_client is one connection. Every command carries its own completion,
 * which runs exactly once: with the result, or with an error when the server refuses the
 * command, or the connection dies, times out or is freed. Never from inside the call that
 * queued the command. Commands are pipelined when the server advertises PIPELINING
 * (RFC 2449 section 6.6), else sent one at a time; replies always come in order.
 *
 * Memory: the caller owns what it passes in; the client copies what it keeps. Results
 * handed to callbacks (entries, uids) are valid only during the callback.
 *
 * Re-entrancy: callbacks may queue new commands and may call pop3_client_free(); the free
 * is then finished when the callback returns.
 *
 * The process must ignore SIGPIPE, as for imap_client.h.
 */
#ifndef MH_POP3_CLIENT_H
#define MH_POP3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "err.h"
#include "imap_client.h" /* imap_trace_cb_t, so trace.h's mh_trace_cb() serves both */
#include "pop3_parser.h"
#include "tls.h"

struct event_base;
struct evbuffer;

struct pop3_client_opts {
	const char *name;          /* label for logs and traces, e.g. "source" */
	const char *host;          /* name or address; also the TLS name unless tls_name is set */
	uint16_t port;
	enum mh_security security; /* PLAIN, STARTTLS (STLS) or TLS (implicit, pop3s) */
	bool allow_plaintext;      /* STLS not offered or refused: go on in plaintext instead of failing */
	bool allow_apop;           /* APOP (MD5) when the greeting has a timestamp and SASL PLAIN is not offered */
	struct mh_tls *tls;        /* required for STARTTLS/TLS; shared, not owned */
	const char *tls_name;
	const char *user;
	const char *password;      /* copied; wiped from memory when the client is freed */
	unsigned connect_timeout_ms; /* DNS, TCP, TLS and the greeting (and an STLS handshake); 0: 30 s */
	unsigned command_timeout_ms; /* no byte received while a reply is owed; 0: 120 s */
	struct pop3_parser_limits limits; /* zeroed members: defaults */
	/* Every line sent or received, without CRLF. Credentials are "<redacted>" (USER, PASS,
	 * APOP and AUTH arguments, and the password wherever the server echoes it); message
	 * contents are "<message N bytes>". Must not call into the client. */
	imap_trace_cb_t *trace;
	void *trace_ctx;
};

struct pop3_client;

struct pop3_client *pop3_client_new(struct event_base *base, const struct pop3_client_opts *opts);
/* Closes the connection (without QUIT); pending commands complete with MH_E_CANCELED.
 * NULLs *c. */
void pop3_client_free(struct pop3_client **c);

/* err NULL on success. */
typedef void pop3_done_cb_t(void *ctx, const struct mh_err *err);

/* Connects (DNS, TCP, implicit TLS or STLS with certificate checks; STLS is required for
 * MH_SEC_STARTTLS unless allow_plaintext), reads the greeting (keeping an APOP timestamp),
 * asks CAPA, logs in and asks CAPA again (capabilities change with TLS and login). Login
 * is AUTH PLAIN when CAPA lists "SASL ... PLAIN", else APOP when the greeting has a
 * timestamp and allow_apop is set, else USER/PASS. done runs once, never from inside this
 * call. On failure the connection is closed and err says why: DNS, CONNECT_REFUSED,
 * CONNECT_TIMEOUT, TLS_*, STARTTLS_UNAVAILABLE, PLAINTEXT_REFUSED, AUTH_FAILED ([AUTH] or
 * a refused password), UNAVAILABLE ([IN-USE]), THROTTLED ([LOGIN-DELAY]), SERVER_ERROR
 * ([SYS/TEMP]), ACCOUNT_LOCKED ([SYS/PERM]), ... (see pop3_err_from_reply()). Commands
 * queued before the open completes are sent once it has. */
void pop3_client_open(struct pop3_client *c, pop3_done_cb_t *done, void *ctx);

bool pop3_client_is_open(const struct pop3_client *c);
/* How far a connection got: the stage it is in, or the one a failure closed it in. */
enum pop3_stage { POP3_STAGE_CONNECT, POP3_STAGE_TLS, POP3_STAGE_GREETING, POP3_STAGE_LOGIN, POP3_STAGE_READY };
enum pop3_stage pop3_client_stage(const struct pop3_client *c);
/* The login method used: "AUTH PLAIN", "APOP" or "USER"; NULL before login. */
const char *pop3_client_login_method(const struct pop3_client *c);
/* True when the greeting carried an APOP timestamp. */
bool pop3_client_apop_offered(const struct pop3_client *c);
/* The CAPA lines, as sent ("TOP", "SASL PLAIN LOGIN", "LOGIN-DELAY 900"); the latest list. */
size_t pop3_client_caps(const struct pop3_client *c, const char *const **caps_r);
/* Case-insensitive match of a capability's name (its first word): "UIDL", "PIPELINING". */
bool pop3_client_has_cap(const struct pop3_client *c, const char *name);
/* The arguments of a capability ("SASL" -> "PLAIN LOGIN"), "" when it has none, NULL when
 * it is not offered. Valid until the capabilities change. */
const char *pop3_client_cap_args(const struct pop3_client *c, const char *name);
/* Pretends the server never offered name, now and after any later CAPA. For tests (e.g.
 * "SASL" to log in with USER/PASS, "PIPELINING") and broken servers. */
void pop3_client_disable_cap(struct pop3_client *c, const char *name);
/* The TLS session; false without TLS (or once closed). */
bool pop3_client_tls_info(const struct pop3_client *c, struct mh_tls_info *info);
/* Closes the connection as if it had died with why; pending commands complete with it
 * (from the event loop). */
void pop3_client_abort(struct pop3_client *c, const struct mh_err *why);
/* Stops/starts reading from the server (backpressure while streaming a message on).
 * Paused, no callback runs for server data and the command timeout does not run. */
void pop3_client_pause_reading(struct pop3_client *c, bool pause);

/* --- commands -------------------------------------------------------------------------
 * Each returns 0, or -1 (err set) when the connection is closed or closing (after QUIT),
 * or for RETR 0; done is then NOT called. A -ERR reply completes the command with err mapped by
 * pop3_err_from_reply(); the connection stays open. */

typedef void pop3_stat_cb_t(void *ctx, uint32_t count, uint64_t octets, const struct mh_err *err);
int pop3_client_stat(struct pop3_client *c, pop3_stat_cb_t *done, void *ctx, struct mh_err *err);

struct pop3_uidl_entry {
	uint32_t msgno;
	const char *uid; /* NUL-terminated, 1..POP3_UID_MAX bytes of 0x21..0x7E */
};
/* The listing in the server's order (normally by msgno); n 0 on error. */
typedef void pop3_uidl_cb_t(void *ctx, const struct pop3_uidl_entry *entries, size_t n, const struct mh_err *err);
/* UIDL for every message (RFC 1939 section 7). A malformed line completes it with
 * MH_E_PROTOCOL. Servers without UIDL answer -ERR (see pop3_client_has_cap("UIDL")). */
int pop3_client_uidl(struct pop3_client *c, pop3_uidl_cb_t *done, void *ctx, struct mh_err *err);

struct pop3_list_entry {
	uint32_t msgno;
	uint64_t size; /* octets as the server counts them (with CRLF line ends) */
};
typedef void pop3_list_cb_t(void *ctx, const struct pop3_list_entry *entries, size_t n, const struct mh_err *err);
/* LIST for every message. A malformed line completes it with MH_E_PROTOCOL. */
int pop3_client_list(struct pop3_client *c, pop3_list_cb_t *done, void *ctx, struct mh_err *err);

/* RETR: the message streams through data, as it arrives, unstuffed and otherwise
 * byte-identical. data must remove exactly len bytes from in (evbuffer_remove_buffer to
 * move them without copying, evbuffer_remove or evbuffer_drain); without data the bytes
 * are dropped. done runs once: size is the message's bytes, err NULL when the whole
 * message arrived. A message larger than limits.max_message closes the connection
 * (MH_E_PROTOCOL). */
typedef void pop3_data_cb_t(void *ctx, struct evbuffer *in, size_t len);
typedef void pop3_retr_done_cb_t(void *ctx, uint64_t size, const struct mh_err *err);
struct pop3_retr_handlers {
	pop3_data_cb_t *data;
	pop3_retr_done_cb_t *done;
	void *ctx;
};
int pop3_client_retr(struct pop3_client *c, uint32_t msgno, const struct pop3_retr_handlers *h,
		     struct mh_err *err);

/* TOP msgno lines (RFC 1939 section 7, optional, "TOP" in CAPA): the header block, the
 * empty line and the first lines of the body, streamed as for RETR (size counts what
 * arrived). Servers without TOP answer -ERR. */
int pop3_client_top(struct pop3_client *c, uint32_t msgno, uint32_t lines, const struct pop3_retr_handlers *h,
		    struct mh_err *err);

/* QUIT: ends the session (RFC 1939 section 6; nothing is deleted: the client never marks
 * anything) and closes the connection after the server's +OK. Commands queued before it
 * complete first; none can be queued after it. */
int pop3_client_quit(struct pop3_client *c, pop3_done_cb_t *done, void *ctx, struct mh_err *err);

/* Maps a -ERR (or a greeting that is not +OK) onto the catalogue, with "context: [CODE]
 * sanitized server text" as detail; context is the command ("PASS", "AUTH", "RETR") or
 * "greeting". In this order: servers' own words (Dovecot "Plaintext authentication
 * disallowed": PLAINTEXT_REFUSED; "not enabled for POP", "POP access is disabled":
 * LOGIN_DISABLED; "Web login required": WEB_LOGIN_REQUIRED; connection limits:
 * THROTTLED), then the response code ([AUTH]: AUTH_FAILED, [IN-USE]: UNAVAILABLE,
 * [LOGIN-DELAY]: THROTTLED, [SYS/TEMP]: SERVER_ERROR, [SYS/PERM]: ACCOUNT_LOCKED at login
 * and SERVER_ERROR after), then texts of servers without codes ("unable to lock
 * maildrop": UNAVAILABLE; "no such message": MSG_VANISHED for RETR; "account is
 * disabled": ACCOUNT_LOCKED), and last the command's default (USER, PASS, APOP, AUTH:
 * AUTH_FAILED; STLS: STARTTLS_UNAVAILABLE; RETR: MSG_VANISHED; greeting: SERVER_BYE;
 * others: UNAVAILABLE). A +OK clears err. */
void pop3_err_from_reply(const struct pop3_status *st, const char *context, struct mh_err *err);

#endif
