/* imap_client.h - asynchronous IMAP client on a libevent bufferevent, with OpenSSL.
 *
 * One struct imap_client is one connection. Commands are pipelined: each carries its own
 * completion, which runs exactly once (with the tagged reply, or with an error when the
 * connection dies, times out or is freed). Untagged responses go to the untagged handler
 * of the OLDEST in-flight command that has one.
 *
 * Memory: the caller owns what it passes in; the client copies what it keeps. Responses
 * and events handed to callbacks are valid only during the callback.
 *
 * Re-entrancy: callbacks may issue new commands and may call imap_client_free(); the free
 * is then deferred until the callback returns.
 *
 * The process must ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)): libevent and OpenSSL write
 * with write()/writev(), and a server that hangs up would otherwise kill it.
 */
#ifndef MH_IMAP_CLIENT_H
#define MH_IMAP_CLIENT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "imap_parser.h"
#include "tls.h"

struct event_base;
struct evbuffer;

enum imap_trace_dir { IMAP_TRACE_SENT, IMAP_TRACE_RECEIVED };

/* Called for every line sent or received (without CRLF; literal contents are replaced by
 * "<literal N bytes>"; LOGIN/AUTHENTICATE arguments by "<redacted>"). For transcripts.
 * Sent lines are the exact bytes; received lines are rebuilt from the parsed response
 * (one line per response, quoted strings re-quoted). Must not call into the client. */
typedef void imap_trace_cb_t(void *ctx, enum imap_trace_dir dir, const char *line, size_t len);

struct imap_client_opts {
	const char *name;        /* label for logs and traces, e.g. "source" */
	const char *host;        /* name or address; also the TLS name unless tls_name is set */
	uint16_t port;
	enum mh_security security; /* PLAIN, STARTTLS or TLS (implicit) */
	bool allow_plaintext;    /* STARTTLS not offered: go on in plaintext instead of failing */
	struct mh_tls *tls;      /* required for STARTTLS/TLS; shared, not owned */
	const char *tls_name;
	const char *user;
	const char *password;    /* copied; wiped from memory when the client is freed */
	unsigned connect_timeout_ms; /* 0: 30 s */
	unsigned command_timeout_ms; /* no byte received while a command is pending: 0 = 120 s */
	struct imap_parser_limits limits; /* zeroed: defaults */
	imap_trace_cb_t *trace;
	void *trace_ctx;
};

/* tagged is the tagged reply (status OK/NO/BAD) or NULL when the command never completed;
 * err is NULL on OK, else it says what failed (a NO/BAD mapped by imap_err_from_reply(),
 * or a connection error). */
typedef void imap_done_cb_t(void *ctx, const struct imap_response *tagged, const struct mh_err *err);
typedef void imap_untagged_cb_t(void *ctx, const struct imap_response *resp);
/* kind is IMAP_EV_LITERAL_BEGIN, _DATA or _END: events of streamed literals that arrive while the command is the
 * oldest in flight with a literal handler. On DATA the callback must remove exactly ev->len
 * bytes from in (see imap_parser.h). Without a handler streamed literals are discarded. */
typedef void imap_literal_cb_t(void *ctx, enum imap_ev kind, const struct imap_event *ev,
			       struct evbuffer *in);

struct imap_cmd_handlers {
	imap_untagged_cb_t *untagged;
	imap_literal_cb_t *literal;
	imap_done_cb_t *done;
	void *ctx;
};

struct imap_client;

struct imap_client *imap_client_new(struct event_base *base, const struct imap_client_opts *opts);
/* Closes the connection; pending commands complete with MH_E_CANCELED. NULLs *c. */
void imap_client_free(struct imap_client **c);

/* Connects (DNS, TCP, TLS or STARTTLS with certificate checks), reads the greeting, asks
 * CAPABILITY (unless the greeting carried it), logs in, and refreshes CAPABILITY (from the
 * login OK's [CAPABILITY] code, or by asking). Login is LOGIN, or AUTHENTICATE PLAIN
 * (with SASL-IR when offered) when the server advertises LOGINDISABLED and AUTH=PLAIN.
 * A PREAUTH greeting skips the login. done runs once, never from inside this call; tagged
 * is always NULL. On failure the connection is closed and err says why (DNS,
 * CONNECT_REFUSED, CONNECT_TIMEOUT, TLS_*, STARTTLS_UNAVAILABLE, AUTH_FAILED, ...).
 * Commands queued before the open completes are sent once it has. */
void imap_client_open(struct imap_client *c, imap_done_cb_t *done, void *ctx);

bool imap_client_is_open(const struct imap_client *c);
/* How far a connection got: the stage it is in, or the one a failure closed it in (for
 * the health check: which step failed). */
enum imap_stage { IMAP_STAGE_CONNECT, IMAP_STAGE_TLS, IMAP_STAGE_GREETING, IMAP_STAGE_LOGIN, IMAP_STAGE_READY };
enum imap_stage imap_client_stage(const struct imap_client *c);
/* The capabilities the server announced (as sent; disabled ones included). */
size_t imap_client_caps(const struct imap_client *c, const char *const **caps_r);
/* The TLS session's protocol, cipher and server certificate; false without TLS (or once
 * closed). */
bool imap_client_tls_info(const struct imap_client *c, struct mh_tls_info *info);
/* Closes the connection as if it had died with why: every pending command completes
 * with why (from the event loop, not inside this call). For a worker whose shutdown
 * grace period is over. */
void imap_client_abort(struct imap_client *c, const struct mh_err *why);
/* Case-insensitive; "LITERAL+", "MULTIAPPEND", "UIDPLUS", "SPECIAL-USE", "APPENDLIMIT"...
 * cap matches a capability "cap" and any "cap=value" ("AUTH" matches "AUTH=PLAIN"). */
bool imap_client_has_cap(const struct imap_client *c, const char *cap);
/* The value of a "NAME=value" capability (e.g. "APPENDLIMIT" -> "35651584"), or NULL.
 * The first one when there are several (AUTH=...). Valid until capabilities change. */
const char *imap_client_cap_value(const struct imap_client *c, const char *name);
/* Pretends the server never offered cap (matched as in has_cap), now and after any later
 * CAPABILITY. For tests (e.g. "LITERAL+" to exercise synchronizing literals) and for
 * working around broken servers. */
void imap_client_disable_cap(struct imap_client *c, const char *cap);

/* Queues a command. fmt is the command without tag and CRLF, with directives:
 *   %a  raw atom or text (const char *), sent as is; must not contain CR/LF
 *   %s  astring (const char *): atom if safe, else quoted, else a literal ({n+} with
 *       LITERAL+ up to 100 KiB or LITERAL- up to 4 KiB, else a synchronizing literal)
 *   %u  unsigned int;  %U uint64_t;  %% a percent sign
 * The words before the first directive ("SELECT", "UID FETCH") are the context given to
 * imap_err_from_reply() for a NO/BAD. h may be NULL, and so may its members.
 * Returns 0, or -1 (err set) if the connection is dead or the format is bad; in that
 * case done is NOT called. */
int imap_client_cmd(struct imap_client *c, const struct imap_cmd_handlers *h, struct mh_err *err,
		    const char *fmt, ...);

int imap_client_vcmd(struct imap_client *c, const struct imap_cmd_handlers *h, struct mh_err *err, const char *fmt,
		     va_list ap);

/* For sequential callers (planner, health check): queues a command like imap_client_cmd
 * and runs base until it completes; untagged/literal (either may be NULL) get ctx.
 * Returns 1 on OK, 0 when the server refused it (NO/BAD: err says why), -1 when the
 * connection is gone (err set). */
int imap_client_run(struct event_base *base, struct imap_client *c, imap_untagged_cb_t *untagged,
		    imap_literal_cb_t *literal, void *ctx, struct mh_err *err, const char *fmt, ...);
/* The same, and tagged_ok (may be NULL) sees the tagged OK before it returns 1: for the
 * response codes it carries ("[MODIFIED 7,9]" after a conditional STORE). */
int imap_client_run_tagged(struct event_base *base, struct imap_client *c, imap_untagged_cb_t *untagged,
			   imap_untagged_cb_t *tagged_ok, void *ctx, struct mh_err *err, const char *fmt, ...);

/* --- streamed APPEND / MULTIAPPEND (RFC 3502) ---------------------------------------
 * imap_client_append_start() queues "APPEND mailbox"; each imap_append_add() adds one
 * message header " (flags) "date" {size+}" and the caller then supplies exactly size bytes
 * with imap_append_data() (any number of calls, as bytes arrive); imap_append_finish()
 * ends the command. More than one add() is allowed only when MULTIAPPEND is offered.
 * With LITERAL+ (messages up to 100 KiB; LITERAL-: up to 4 KiB) bytes are written at
 * once; otherwise the client sends "{size}", waits for the server's continuation before
 * sending the literal and holds the bytes meanwhile (see imap_client_output_pending());
 * if the server refuses instead, done runs with its NO and later bytes are dropped.
 * done runs once with the tagged reply; for OK, imap_reply_appenduid() parses
 * [APPENDUID ...] when UIDPLUS is offered.
 * While an APPEND is being written no other command is sent on the connection.
 * done may run BEFORE imap_append_finish(): when the server refuses a synchronizing
 * literal (NO instead of "+"), when the connection dies, or when the server answers an
 * APPEND still being written (it is then out of step: the connection is closed and the
 * other commands fail with MH_E_PROTOCOL). The handle still lives until
 * imap_append_finish() (call it always): after done, imap_append_add() fails with
 * MH_E_CANCELED and imap_append_data() drops the bytes. imap_client_free() frees all
 * handles of the client. */
struct imap_append;

struct imap_append *imap_client_append_start(struct imap_client *c, const char *mailbox,
					     const struct imap_cmd_handlers *h, struct mh_err *err);
/* flags: space-separated, e.g. "\\Seen $Forwarded" (without parens; may be ""); \Recent
 * is dropped. internaldate: "17-Jul-1996 02:44:25 -0700" or NULL. Returns 0 or -1:
 * MH_E_INTERNAL for bad flags or date, MH_E_SERVER_CAPABILITY for a second message
 * without MULTIAPPEND, MH_E_CANCELED after done, MH_E_CONNECTION_LOST when the previous
 * message is short (the connection is then closed). */
int imap_append_add(struct imap_append *a, const char *flags, const char *internaldate, uint64_t size,
		    struct mh_err *err);
/* Moves n bytes from src (evbuffer_remove_buffer: no copy when possible). */
void imap_append_data(struct imap_append *a, struct evbuffer *src, size_t n);
void imap_append_data_mem(struct imap_append *a, const void *data, size_t n);
/* Ends the command. If a message got fewer bytes than announced, the connection is
 * closed instead (we owe the server bytes) and done runs with MH_E_CONNECTION_LOST. */
void imap_append_finish(struct imap_append *a);

/* --- flow control -------------------------------------------------------------------- */
/* Bytes queued for the server and not yet written to the socket (incl. bytes held back
 * for a continuation and commands not yet sent). With TLS, bytes OpenSSL has already
 * taken (at most a few records) are not counted. */
size_t imap_client_output_pending(const struct imap_client *c);
/* cb runs when the pending output falls to or below low_water (once per call; at once,
 * from the event loop, if it already is). A later call replaces an earlier one. Dropped
 * when the connection closes (pending commands then complete with the error). */
typedef void imap_drain_cb_t(void *ctx);
void imap_client_on_drain(struct imap_client *c, size_t low_water, imap_drain_cb_t *cb, void *ctx);
/* Stops/starts reading from the server (backpressure while streaming a literal on).
 * Paused, no callback of this client runs for server data, even for input already
 * buffered; the command timeout does not run either. Safe inside a literal callback. */
void imap_client_pause_reading(struct imap_client *c, bool pause);
/* Sets the parser's inline-literal limit (0: stream every literal). */
void imap_client_set_inline_max(struct imap_client *c, size_t max_inline_literal);

/* --- reply helpers --------------------------------------------------------------------- */
/* Maps a tagged NO/BAD (or a BYE) onto the catalogue, with "context: [CODE] sanitized
 * server text" as detail; context says what was tried ("APPEND", "LOGIN", "UID FETCH").
 * In this order: a provider's own words (throttling: Exchange "Server Unavailable. 15" and
 * "Request is throttled", Gmail "Too many simultaneous connections", Dovecot "Maximum number
 * of connections"; Gmail "not enabled for IMAP" / "IMAP access is disabled": LOGIN_DISABLED;
 * "log in via your web browser" / "Web login required": WEB_LOGIN_REQUIRED; Exchange "User
 * is authenticated but not connected": MAILBOX_ACCESS_DENIED), then the response code
 * (RFC 5530 AUTHENTICATIONFAILED, AUTHORIZATIONFAILED, EXPIRED, CONTACTADMIN,
 * PRIVACYREQUIRED, UNAVAILABLE, INUSE, SERVERBUG, CLIENTBUG, OVERQUOTA, LIMIT (APPEND),
 * TRYCREATE, NONEXISTENT, ALREADYEXISTS, CANNOT (CREATE), NOPERM, CORRUPTION,
 * EXPUNGEISSUED; RFC 4469/7889 TOOBIG), then texts of servers without codes (Cyrus "Over
 * quota", "Message size exceeds fixed limit", "Mailbox does not exist", "Invalid mailbox
 * name"), and last the command's default for a NO (APPEND: MSG_REJECTED, SELECT/EXAMINE/
 * STATUS: FOLDER_SELECT, CREATE: FOLDER_CREATE, LOGIN/AUTHENTICATE: AUTH_FAILED, others:
 * UNAVAILABLE); a BAD is COMMAND_REJECTED. The tables are in imap_client.c and tested with
 * real servers' lines in tests/unit/test_err.c. An OK clears err. The client itself adds
 * the sizes to MSG_TOO_BIG after an APPEND and removes the password if the server echoes it. */
void imap_err_from_reply(const struct imap_response *r, const char *context, struct mh_err *err);
/* [APPENDUID uidvalidity uid-set]: fills up to max UIDs in order (ranges expanded);
 * returns how many were filled, or -1 when the code is absent or malformed (numbers are
 * strict: digits only, 1..4294967295; "4,7:9" gives 4 7 8 9). */
int imap_reply_appenduid(const struct imap_response *r, uint32_t *uidvalidity_r, uint32_t *uids_r,
			 size_t max);

/* Runs the event loop of base until *done becomes true (for simple sequential callers
 * such as the planner and tests). Returns 0, or -1 if the loop ran out of events. */
int imap_run_until(struct event_base *base, const bool *done);

#endif
