/* pop3_client.c - asynchronous POP3 client on one transport (see pop3_client.h).
 *
 * Shape, as imap_client.c (STYLE 2.5): the connection phase is an enum changed only by
 * set_phase(); every command carries its own completion; commands wait in `queued` and
 * move to `sent` when written, and since POP3 answers in order the reply being read
 * always belongs to the first of `sent`: before each reply the parser is told what that
 * command expects. Every entry point from the event loop holds a reference, so callbacks
 * may free the client. Connection failures close the socket at once and complete what is
 * pending from a deferred event, so a completion never runs inside the call that failed.
 */
#include "pop3_client.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/evp.h>

#include "log.h"
#include "net.h"
#include "transport.h"

/* RFC 2449 section 6.6 asks pipelining clients not to overrun the server; replies to this
 * many small commands fit in any socket buffer. */
#define POP3_MAX_INFLIGHT 64
#define POP3_CAPS_MAX 256
#define POP3_CAP_LEN_MAX 512
/* RFC 5034 section 4: an AUTH command with its initial response fits in 255 octets, CRLF
 * included; a longer one waits for the server's "+ ". */
#define AUTH_LINE_MAX 255
#define TRACE_LINE_MAX 2048
#define DEFAULT_CONNECT_TIMEOUT_MS 30000u
#define DEFAULT_COMMAND_TIMEOUT_MS 120000u

static const char log_comp[] = "pop3";

enum pop3_phase {
	PH_NEW,
	PH_CONNECTING,
	PH_TLS, /* a TLS handshake: implicit (TRANSPORT_TLS_BEGIN) or after STLS */
	PH_GREETING,
	PH_CAPA,
	PH_STLS,
	PH_LOGIN,
	PH_READY,
	PH_CLOSED,
};

static const char *const phase_names[] = {
	"new", "connecting", "tls", "greeting", "capa", "stls", "login", "ready", "closed",
};

enum cmd_kind { CMD_CAPA, CMD_STLS, CMD_AUTH, CMD_USER, CMD_PASS, CMD_APOP, CMD_STAT, CMD_UIDL, CMD_LIST, CMD_RETR, CMD_TOP, CMD_QUIT };

/* The client's whole vocabulary. It is read-only: there is no DELE and no RSET here, and
 * no other way to put a command on the wire. TOP (RFC 1939 section 7) reads like RETR. */
static const struct verb {
	const char *word;
	enum pop3_expect expect;
} verbs[] = {
	[CMD_CAPA] = {"CAPA", POP3_EXPECT_LINES}, [CMD_STLS] = {"STLS", POP3_EXPECT_STATUS},
	[CMD_AUTH] = {"AUTH", POP3_EXPECT_AUTH},  [CMD_USER] = {"USER", POP3_EXPECT_STATUS},
	[CMD_PASS] = {"PASS", POP3_EXPECT_STATUS}, [CMD_APOP] = {"APOP", POP3_EXPECT_STATUS},
	[CMD_STAT] = {"STAT", POP3_EXPECT_STATUS}, [CMD_UIDL] = {"UIDL", POP3_EXPECT_LINES},
	[CMD_LIST] = {"LIST", POP3_EXPECT_LINES},  [CMD_RETR] = {"RETR", POP3_EXPECT_BODY},
	[CMD_TOP] = {"TOP", POP3_EXPECT_BODY},    [CMD_QUIT] = {"QUIT", POP3_EXPECT_STATUS},
};

struct pop3_client;
struct pop3_cmd;

/* Completion of a command of the open sequence; st is the reply (NULL when the connection
 * failed), err NULL for +OK. */
typedef void internal_done_cb_t(struct pop3_client *c, struct pop3_cmd *cmd, const struct pop3_status *st,
				const struct mh_err *err);

/* What a listing gathers until its "." line. */
struct listing {
	size_t n, cap;
	uint32_t *msgnos;
	uint64_t *sizes;  /* LIST */
	size_t *uid_offs; /* UIDL: offsets into blob */
	char **lines;     /* CAPA */
	char *blob;
	size_t blob_len, blob_cap;
	struct mh_err bad; /* the first malformed line */
};

struct pop3_cmd {
	TAILQ_ENTRY(pop3_cmd) link;
	enum cmd_kind kind;
	bool internal; /* part of the open sequence: may go before READY */
	bool sent;
	char *args;        /* after the verb; NULL: none (wiped when freed) */
	size_t trace_keep; /* bytes of args shown in the trace; the rest is "<redacted>" */
	char *auth_resp;   /* AUTH without initial response: the line for the server's "+ " */
	bool auth_resp_sent;
	union {
		pop3_done_cb_t *done;
		pop3_stat_cb_t *stat;
		pop3_uidl_cb_t *uidl;
		pop3_list_cb_t *list;
		pop3_retr_done_cb_t *retr;
	} cb;
	pop3_data_cb_t *data;
	internal_done_cb_t *internal_done;
	void *ctx;
	struct listing acc;
	uint64_t body_bytes;
};

TAILQ_HEAD(cmd_list, pop3_cmd);

struct pop3_client {
	/* permanent: copied options */
	struct event_base *base;
	char *name, *host, *tls_name, *user, *password;
	uint16_t port;
	enum mh_security security;
	bool allow_plaintext, allow_apop;
	struct mh_tls *tls;
	unsigned connect_timeout_ms, command_timeout_ms;
	imap_trace_cb_t *trace;
	void *trace_ctx;
	struct pop3_parser *parser;
	struct event *conn_timer, *cmd_timer, *defer_ev;
	char **disabled_caps;
	size_t ndisabled;

	/* connection */
	enum pop3_phase phase;
	enum pop3_phase failed_phase; /* the phase a failure closed the connection in */
	struct transport *tr;
	struct evbuffer *tail_in; /* what arrived before the server closed, still to be read */
	bool eof_pending;
	struct mh_err eof_err;
	bool plaintext_accepted, authenticated, caps_known, caps_asked, post_caps_asked, paused, quit_queued;
	char *apop_ts;
	const char *login_method;
	char **caps;
	size_t ncaps;
	pop3_done_cb_t *open_done;
	void *open_ctx;
	uint64_t last_activity_ms;

	/* commands */
	struct cmd_list queued, sent;
	unsigned nsent;

	/* deferred work (defer_ev) */
	bool complete_pending, process_pending;
	struct mh_err fail_err;

	/* lifetime */
	unsigned refs;
	bool free_requested, destroying;
};

static void pump(struct pop3_client *c);
static void open_next(struct pop3_client *c);
static void process_input(struct pop3_client *c);

/* ---------------------------------------------------------------------------------------
 * small helpers */

static char *xstrdup(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		abort();
	return d;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n == 0 ? 1 : n);
	if (p == NULL)
		abort();
	return p;
}

static void wipe_free(char **sp)
{
	if (*sp != NULL) {
		explicit_bzero(*sp, strlen(*sp));
		free(*sp);
		*sp = NULL;
	}
}

static void set_phase(struct pop3_client *c, enum pop3_phase p)
{
	if (c->phase == p)
		return;
	mh_debug(log_comp, "%s: %s -> %s", c->name, phase_names[c->phase], phase_names[p]);
	c->phase = p;
}

static bool client_gone(const struct pop3_client *c)
{
	return c->free_requested || c->destroying;
}

static void client_destroy(struct pop3_client *c);

static void client_ref(struct pop3_client *c)
{
	c->refs++;
}

static void client_unref(struct pop3_client *c)
{
	if (--c->refs == 0 && c->free_requested && !c->destroying)
		client_destroy(c);
}

static void schedule(struct pop3_client *c)
{
	event_active(c->defer_ev, EV_TIMEOUT, 0);
}

/* The transport is gone while the last bytes a server sent before closing are read. */
static bool tls_active(const struct pop3_client *c)
{
	return c->tr != NULL && transport_tls_active(c->tr);
}

/* base64 of "\0user\0password" (RFC 4616), heap, wiped by the caller. */
static char *plain_blob(const struct pop3_client *c)
{
	size_t ul = strlen(c->user), pl = strlen(c->password), n = ul + pl + 2;
	unsigned char *raw = xrealloc(NULL, n);
	char *b64 = xrealloc(NULL, 4 * ((n + 2) / 3) + 1);

	raw[0] = '\0';
	memcpy(raw + 1, c->user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, c->password, pl);
	EVP_EncodeBlock((unsigned char *)b64, raw, (int)n);
	explicit_bzero(raw, n);
	free(raw);
	return b64;
}

/* --- credentials in server text --------------------------------------------------------
 * A careless server may echo what we sent ("-ERR bad password hunter2"): the password and
 * the AUTH PLAIN blob never reach a report, a log or the trace that way. */

static void redact_err(const struct pop3_client *c, struct mh_err *err)
{
	char *blob;

	if (c->password == NULL || c->password[0] == '\0' || c->user == NULL)
		return;
	mh_err_redact(err, c->password);
	blob = plain_blob(c);
	mh_err_redact(err, blob);
	wipe_free(&blob);
}

static void redact_line(const struct pop3_client *c, char *line, size_t size)
{
	char *blob;

	if (c->password == NULL || c->password[0] == '\0' || c->user == NULL)
		return;
	mh_redact(line, size, c->password);
	blob = plain_blob(c);
	mh_redact(line, size, blob);
	wipe_free(&blob);
}

/* ---------------------------------------------------------------------------------------
 * tracing */

static void trace_emit(struct pop3_client *c, enum imap_trace_dir dir, const char *line, size_t len)
{
	if (c->trace != NULL)
		c->trace(c->trace_ctx, dir, line, len);
}

static void trace_sent(struct pop3_client *c, const char *word, const char *args, size_t keep)
{
	char buf[TRACE_LINE_MAX + 16];

	if (c->trace == NULL)
		return;
	if (args == NULL)
		snprintf(buf, sizeof(buf), "%s", word);
	else if (keep >= strlen(args))
		snprintf(buf, sizeof(buf), "%s %.*s", word, TRACE_LINE_MAX, args);
	else
		snprintf(buf, sizeof(buf), "%s %.*s<redacted>", word, (int)keep, args);
	trace_emit(c, IMAP_TRACE_SENT, buf, strlen(buf));
}

static void trace_received(struct pop3_client *c, const char *a, const char *b)
{
	char buf[TRACE_LINE_MAX + 16];

	if (c->trace == NULL)
		return;
	snprintf(buf, sizeof(buf), "%s%s%.*s", a, b != NULL && b[0] != '\0' ? " " : "", TRACE_LINE_MAX,
		 b != NULL ? b : "");
	redact_line(c, buf, sizeof(buf));
	trace_emit(c, IMAP_TRACE_RECEIVED, buf, strlen(buf));
}

static void trace_status(struct pop3_client *c, const struct pop3_status *st)
{
	trace_received(c, st->continuation ? "+" : st->ok ? "+OK" : "-ERR", st->line);
}

/* ---------------------------------------------------------------------------------------
 * capabilities */

/* stored ("SASL PLAIN LOGIN") is the capability name (its first word), case-insensitive. */
static bool cap_match(const char *stored, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(stored, name, n) == 0 && (stored[n] == '\0' || stored[n] == ' ');
}

static bool cap_disabled(const struct pop3_client *c, const char *cap)
{
	for (size_t i = 0; i < c->ndisabled; i++)
		if (cap_match(cap, c->disabled_caps[i]))
			return true;
	return false;
}

static void caps_clear(struct pop3_client *c)
{
	for (size_t i = 0; i < c->ncaps; i++)
		free(c->caps[i]);
	free(c->caps);
	c->caps = NULL;
	c->ncaps = 0;
	c->caps_known = false;
}

/* Takes the lines a CAPA gathered. */
static void caps_take(struct pop3_client *c, struct listing *acc)
{
	caps_clear(c);
	c->caps = acc->lines;
	c->ncaps = acc->n;
	acc->lines = NULL;
	acc->n = 0;
	c->caps_known = true;
}

bool pop3_client_has_cap(const struct pop3_client *c, const char *name)
{
	return pop3_client_cap_args(c, name) != NULL;
}

const char *pop3_client_cap_args(const struct pop3_client *c, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < c->ncaps; i++) {
		if (cap_match(c->caps[i], name)) {
			const char *a = c->caps[i] + n;
			while (*a == ' ')
				a++;
			return a;
		}
	}
	return NULL;
}

size_t pop3_client_caps(const struct pop3_client *c, const char *const **caps_r)
{
	*caps_r = (const char *const *)c->caps;
	return c->ncaps;
}

void pop3_client_disable_cap(struct pop3_client *c, const char *name)
{
	size_t o = 0;

	c->disabled_caps = xrealloc(c->disabled_caps, (c->ndisabled + 1) * sizeof(char *));
	c->disabled_caps[c->ndisabled++] = xstrdup(name);
	for (size_t i = 0; i < c->ncaps; i++) {
		if (cap_match(c->caps[i], name))
			free(c->caps[i]);
		else
			c->caps[o++] = c->caps[i];
	}
	c->ncaps = o;
}

/* "SASL PLAIN LOGIN" offers PLAIN. */
static bool sasl_plain_offered(const struct pop3_client *c)
{
	const char *a = pop3_client_cap_args(c, "SASL");

	while (a != NULL && *a != '\0') {
		size_t n = strcspn(a, " ");
		if (n == 5 && strncasecmp(a, "PLAIN", 5) == 0)
			return true;
		a += n;
		a += strspn(a, " ");
	}
	return false;
}

/* ---------------------------------------------------------------------------------------
 * reply mapping */

struct text_rule {
	const char *text;
	enum mh_err_code err;
	const char *contexts; /* NULL: any; else the commands it applies to, space-separated */
};

#define LOGIN_CMDS "USER PASS APOP AUTH"

/* A server's own words name the problem more exactly than a code: Dovecot sends its
 * plaintext refusal under [AUTH], Gmail its "not enabled for POP" under [SYS/PERM]. */
static const struct text_rule provider_texts[] = {
	{"Plaintext authentication disallowed", MH_E_PLAINTEXT_REFUSED, NULL}, /* Dovecot */
	{"Plaintext authentication not allowed", MH_E_PLAINTEXT_REFUSED, NULL},
	{"not enabled for POP", MH_E_LOGIN_DISABLED, NULL}, /* Gmail */
	{"POP access is disabled", MH_E_LOGIN_DISABLED, NULL},
	{"POP3 access is disabled", MH_E_LOGIN_DISABLED, NULL},
	{"POP3 is disabled", MH_E_LOGIN_DISABLED, NULL},
	{"pop not allowed", MH_E_LOGIN_DISABLED, NULL}, /* Yahoo */
	{"log in via your web browser", MH_E_WEB_LOGIN_REQUIRED, NULL}, /* Gmail */
	{"Web login required", MH_E_WEB_LOGIN_REQUIRED, NULL},
	{"Maximum number of connections", MH_E_THROTTLED, NULL}, /* Dovecot mail_max_userip_connections */
	{"Too many connections", MH_E_THROTTLED, NULL},
	{"Too many simultaneous", MH_E_THROTTLED, NULL},
};

static const struct text_rule generic_texts[] = {
	{"unable to lock", MH_E_UNAVAILABLE, NULL}, /* qpopper, UW: "Unable to lock maildrop" */
	{"already locked", MH_E_UNAVAILABLE, NULL},
	{"mailbox is locked", MH_E_UNAVAILABLE, NULL},
	{"maildrop is locked", MH_E_UNAVAILABLE, NULL},
	{"account is locked", MH_E_ACCOUNT_LOCKED, NULL},
	{"account locked", MH_E_ACCOUNT_LOCKED, NULL},
	{"account is disabled", MH_E_ACCOUNT_LOCKED, NULL},
	{"account has been disabled", MH_E_ACCOUNT_LOCKED, NULL},
	{"password has expired", MH_E_ACCOUNT_LOCKED, NULL},
	{"password expired", MH_E_ACCOUNT_LOCKED, NULL},
	{"no such message", MH_E_MSG_VANISHED, "RETR"},
	{"no message", MH_E_MSG_VANISHED, "RETR"}, /* Dovecot "There's no message 5." */
	{"already deleted", MH_E_MSG_VANISHED, "RETR"},
	{"internal error", MH_E_SERVER_ERROR, NULL},
};

static bool context_in(const char *context, const char *list)
{
	size_t n = strlen(context);

	if (list == NULL)
		return true;
	while (*list != '\0') {
		size_t k = strcspn(list, " ");
		if (k == n && strncasecmp(list, context, n) == 0)
			return true;
		list += k;
		list += strspn(list, " ");
	}
	return false;
}

static enum mh_err_code match_text(const struct text_rule *rules, size_t n, const char *text, const char *ctx)
{
	for (size_t i = 0; i < n; i++)
		if (strcasestr(text, rules[i].text) != NULL && context_in(ctx, rules[i].contexts))
			return rules[i].err;
	return MH_E_COUNT_;
}

static enum mh_err_code match_code(const struct pop3_status *st, const char *ctx)
{
	switch (st->code) {
	case POP3_CODE_AUTH:
		return MH_E_AUTH_FAILED; /* RFC 3206 section 4: the credentials are wrong */
	case POP3_CODE_IN_USE:
		return MH_E_UNAVAILABLE; /* another session holds the mailbox: retry later */
	case POP3_CODE_LOGIN_DELAY:
		return MH_E_THROTTLED; /* RFC 2449 section 8.1.2: wait before logging in again */
	case POP3_CODE_SYS_TEMP:
		return MH_E_SERVER_ERROR; /* RFC 3206 section 5: a passing server problem */
	case POP3_CODE_SYS_PERM:
		/* RFC 3206 section 5: lasting; at login it is the account that cannot be used */
		return context_in(ctx, LOGIN_CMDS) ? MH_E_ACCOUNT_LOCKED : MH_E_SERVER_ERROR;
	default:
		return MH_E_COUNT_;
	}
}

static enum mh_err_code context_default(const char *ctx)
{
	if (context_in(ctx, LOGIN_CMDS))
		return MH_E_AUTH_FAILED;
	if (strcmp(ctx, "STLS") == 0)
		return MH_E_STARTTLS_UNAVAILABLE;
	if (strcmp(ctx, "RETR") == 0)
		return MH_E_MSG_VANISHED;
	if (strcmp(ctx, "greeting") == 0)
		return MH_E_SERVER_BYE;
	return MH_E_UNAVAILABLE;
}

void pop3_err_from_reply(const struct pop3_status *st, const char *context, struct mh_err *err)
{
	const char *ctx = context != NULL ? context : "command";
	char text[200];
	enum mh_err_code code;

	if (st == NULL) {
		mh_err_set(err, MH_E_INTERNAL, "%s: no reply", ctx);
		return;
	}
	if (st->ok) {
		mh_err_clear(err);
		return;
	}
	mh_err_sanitize(text, sizeof(text), st->text != NULL ? st->text : "", st->text != NULL ? strlen(st->text) : 0);
	code = match_text(provider_texts, sizeof(provider_texts) / sizeof(provider_texts[0]), text, ctx);
	if (code == MH_E_COUNT_)
		code = match_code(st, ctx);
	if (code == MH_E_COUNT_)
		code = match_text(generic_texts, sizeof(generic_texts) / sizeof(generic_texts[0]), text, ctx);
	if (code == MH_E_COUNT_)
		code = st->continuation ? MH_E_PROTOCOL : context_default(ctx);
	if (st->code_str != NULL)
		mh_err_set(err, code, "%s: [%s] %s", ctx, st->code_str, text);
	else
		mh_err_set(err, code, "%s: %s", ctx, text);
}

/* ---------------------------------------------------------------------------------------
 * commands */

static struct pop3_cmd *cmd_new(enum cmd_kind kind, bool internal)
{
	struct pop3_cmd *cmd = calloc(1, sizeof(*cmd));

	if (cmd == NULL)
		abort();
	cmd->kind = kind;
	cmd->internal = internal;
	return cmd;
}

static void listing_free(struct listing *acc)
{
	for (size_t i = 0; acc->lines != NULL && i < acc->n; i++)
		free(acc->lines[i]);
	free(acc->lines);
	free(acc->msgnos);
	free(acc->sizes);
	free(acc->uid_offs);
	free(acc->blob);
	memset(acc, 0, sizeof(*acc));
}

static void cmd_free(struct pop3_cmd *cmd)
{
	wipe_free(&cmd->args);
	wipe_free(&cmd->auth_resp);
	listing_free(&cmd->acc);
	free(cmd);
}

static bool can_write(const struct pop3_client *c)
{
	return c->tr != NULL && c->phase >= PH_GREETING && c->phase != PH_CLOSED;
}

static bool cmd_timer_armed(struct pop3_client *c)
{
	return evtimer_pending(c->cmd_timer, NULL) != 0;
}

static void arm_cmd_timer(struct pop3_client *c, uint64_t ms)
{
	struct timeval tv;

	net_ms_to_tv(ms, &tv);
	evtimer_add(c->cmd_timer, &tv);
}

/* Writes "VERB [args]\r\n"; the verb comes from the table, never from a caller. */
static void cmd_write(struct pop3_client *c, struct pop3_cmd *cmd)
{
	struct evbuffer *out = transport_output(c->tr);
	const char *word = verbs[cmd->kind].word;

	evbuffer_add(out, word, strlen(word));
	if (cmd->args != NULL) {
		evbuffer_add(out, " ", 1);
		evbuffer_add(out, cmd->args, strlen(cmd->args));
	}
	evbuffer_add(out, "\r\n", 2);
	trace_sent(c, word, cmd->args, cmd->trace_keep);
}

static struct pop3_cmd *next_sendable(struct pop3_client *c)
{
	struct pop3_cmd *cmd;

	TAILQ_FOREACH(cmd, &c->queued, link) {
		if (c->phase == PH_READY || cmd->internal)
			return cmd;
	}
	return NULL;
}

/* Writes what the rules allow: one command at a time, or with PIPELINING (once logged in)
 * up to POP3_MAX_INFLIGHT unanswered ones. */
static void pump(struct pop3_client *c)
{
	bool wrote = false, was_idle = c->nsent == 0;
	bool pipelining = c->phase == PH_READY && pop3_client_has_cap(c, "PIPELINING");

	if (!can_write(c) || client_gone(c))
		return;
	for (;;) {
		struct pop3_cmd *cmd;

		if (c->nsent > 0 && (!pipelining || c->nsent >= POP3_MAX_INFLIGHT))
			break;
		cmd = next_sendable(c);
		if (cmd == NULL)
			break;
		TAILQ_REMOVE(&c->queued, cmd, link);
		TAILQ_INSERT_TAIL(&c->sent, cmd, link);
		cmd->sent = true;
		c->nsent++;
		cmd_write(c, cmd);
		wrote = true;
	}
	if (wrote) {
		/* The clock runs from the moment the server first owes us an answer. */
		if (was_idle)
			c->last_activity_ms = net_now_ms();
		if (!cmd_timer_armed(c))
			arm_cmd_timer(c, c->command_timeout_ms);
	}
}

static void cmd_detach(struct pop3_client *c, struct pop3_cmd *cmd)
{
	if (cmd->sent) {
		TAILQ_REMOVE(&c->sent, cmd, link);
		c->nsent--;
		cmd->sent = false;
	} else {
		TAILQ_REMOVE(&c->queued, cmd, link);
	}
}

/* Runs the completion of a detached command without a result (exactly once) and frees
 * it: err NULL only for internal commands and QUIT. */
static void cmd_finish(struct pop3_client *c, struct pop3_cmd *cmd, const struct pop3_status *st,
		       const struct mh_err *err)
{
	if (cmd->internal) {
		if (cmd->internal_done != NULL)
			cmd->internal_done(c, cmd, st, err);
		cmd_free(cmd);
		return;
	}
	switch (cmd->kind) {
	case CMD_STAT:
		if (cmd->cb.stat != NULL)
			cmd->cb.stat(cmd->ctx, 0, 0, err);
		break;
	case CMD_UIDL:
		if (cmd->cb.uidl != NULL)
			cmd->cb.uidl(cmd->ctx, NULL, 0, err);
		break;
	case CMD_LIST:
		if (cmd->cb.list != NULL)
			cmd->cb.list(cmd->ctx, NULL, 0, err);
		break;
	case CMD_RETR:
	case CMD_TOP:
		if (cmd->cb.retr != NULL)
			cmd->cb.retr(cmd->ctx, cmd->body_bytes, err);
		break;
	default:
		if (cmd->cb.done != NULL)
			cmd->cb.done(cmd->ctx, err);
		break;
	}
	cmd_free(cmd);
}

static void complete_cmd(struct pop3_client *c, struct pop3_cmd *cmd, const struct pop3_status *st,
			 const struct mh_err *err)
{
	cmd_detach(c, cmd);
	cmd_finish(c, cmd, st, err);
}

static void complete_all(struct pop3_client *c, const struct mh_err *err)
{
	struct pop3_cmd *cmd;

	if (c->open_done != NULL) {
		pop3_done_cb_t *done = c->open_done;
		c->open_done = NULL;
		done(c->open_ctx, err);
	}
	while ((cmd = TAILQ_FIRST(&c->sent)) != NULL)
		complete_cmd(c, cmd, NULL, err);
	while ((cmd = TAILQ_FIRST(&c->queued)) != NULL)
		complete_cmd(c, cmd, NULL, err);
}

static void close_transport(struct pop3_client *c)
{
	transport_free(&c->tr);
	evtimer_del(c->conn_timer);
	evtimer_del(c->cmd_timer);
}

/* Closes the connection at once; pending commands complete from the deferred event. */
static void fail_connection(struct pop3_client *c, const struct mh_err *err)
{
	if (c->phase == PH_CLOSED)
		return;
	if (c->phase == PH_READY && err->code != MH_E_CANCELED)
		mh_info(log_comp, "%s: connection closed: %s: %s", c->name, mh_err_name(err->code), err->detail);
	else
		mh_debug(log_comp, "%s: failed in phase %s: %s: %s", c->name, phase_names[c->phase],
			 mh_err_name(err->code), err->detail);
	c->fail_err = *err;
	c->failed_phase = c->phase;
	set_phase(c, PH_CLOSED);
	close_transport(c);
	c->complete_pending = true;
	schedule(c);
}

static void fail_with(struct pop3_client *c, enum mh_err_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_with(struct pop3_client *c, enum mh_err_code code, const char *fmt, ...)
{
	struct mh_err err;
	va_list ap;

	va_start(ap, fmt);
	mh_err_setv(&err, code, fmt, ap);
	va_end(ap);
	fail_connection(c, &err);
}

/* Queues a command of the open sequence and sends it. */
static void send_internal(struct pop3_client *c, enum cmd_kind kind, const char *args, size_t trace_keep,
			  internal_done_cb_t *done)
{
	struct pop3_cmd *cmd = cmd_new(kind, true);

	cmd->args = xstrdup(args);
	cmd->trace_keep = trace_keep;
	cmd->internal_done = done;
	TAILQ_INSERT_TAIL(&c->queued, cmd, link);
	pump(c);
}

/* ---------------------------------------------------------------------------------------
 * replies */

static void listing_grow(struct listing *acc)
{
	if (acc->n < acc->cap)
		return;
	acc->cap = acc->cap == 0 ? 64 : acc->cap * 2;
	acc->msgnos = xrealloc(acc->msgnos, acc->cap * sizeof(*acc->msgnos));
	acc->sizes = xrealloc(acc->sizes, acc->cap * sizeof(*acc->sizes));
	acc->uid_offs = xrealloc(acc->uid_offs, acc->cap * sizeof(*acc->uid_offs));
}

static void blob_add(struct listing *acc, const char *s, size_t n)
{
	if (acc->blob_len + n + 1 > acc->blob_cap) {
		while (acc->blob_len + n + 1 > acc->blob_cap)
			acc->blob_cap = acc->blob_cap == 0 ? 4096 : acc->blob_cap * 2;
		acc->blob = xrealloc(acc->blob, acc->blob_cap);
	}
	memcpy(acc->blob + acc->blob_len, s, n);
	acc->blob_len += n;
	acc->blob[acc->blob_len++] = '\0';
}

/* One line of a CAPA, UIDL or LIST listing. A malformed line fails the command (at its
 * end), not the connection. */
static void on_listing_line(struct pop3_client *c, struct pop3_cmd *cmd, const char *line, size_t len)
{
	struct listing *acc = &cmd->acc;
	uint32_t msgno;
	uint64_t size;
	const char *uid;
	size_t uid_len;

	trace_received(c, line, NULL);
	if (acc->bad.code != MH_E_OK)
		return;
	switch (cmd->kind) {
	case CMD_CAPA:
		if (len == 0 || len > POP3_CAP_LEN_MAX || acc->n >= POP3_CAPS_MAX || cap_disabled(c, line))
			return;
		acc->lines = xrealloc(acc->lines, (acc->n + 1) * sizeof(char *));
		acc->lines[acc->n++] = xstrdup(line);
		return;
	case CMD_UIDL:
		if (pop3_parse_uidl_line(line, len, &msgno, &uid, &uid_len) < 0)
			break;
		listing_grow(acc);
		acc->msgnos[acc->n] = msgno;
		acc->uid_offs[acc->n] = acc->blob_len;
		blob_add(acc, uid, uid_len);
		acc->n++;
		return;
	case CMD_LIST:
		if (pop3_parse_list_line(line, len, &msgno, &size) < 0)
			break;
		listing_grow(acc);
		acc->msgnos[acc->n] = msgno;
		acc->sizes[acc->n] = size;
		acc->n++;
		return;
	default:
		break;
	}
	mh_err_set(&acc->bad, MH_E_PROTOCOL, "%s line %zu is malformed: \"%.60s\"", verbs[cmd->kind].word,
		   acc->n + 1, line);
}

/* The "." line of a listing, or the end of a message. */
static void on_end(struct pop3_client *c, struct pop3_cmd *cmd, uint64_t total)
{
	struct listing *acc = &cmd->acc;
	char what[48];

	if (cmd->kind == CMD_RETR || cmd->kind == CMD_TOP) {
		snprintf(what, sizeof(what), "<message %llu bytes>", (unsigned long long)total);
		trace_received(c, what, NULL);
	}
	trace_received(c, ".", NULL);
	cmd_detach(c, cmd);
	if (acc->bad.code != MH_E_OK || cmd->internal) {
		cmd_finish(c, cmd, NULL, acc->bad.code != MH_E_OK ? &acc->bad : NULL);
		return;
	}
	if (cmd->kind == CMD_UIDL && cmd->cb.uidl != NULL) {
		struct pop3_uidl_entry *e = xrealloc(NULL, acc->n * sizeof(*e));

		for (size_t i = 0; i < acc->n; i++)
			e[i] = (struct pop3_uidl_entry){.msgno = acc->msgnos[i], .uid = acc->blob + acc->uid_offs[i]};
		cmd->cb.uidl(cmd->ctx, e, acc->n, NULL);
		free(e);
	} else if (cmd->kind == CMD_LIST && cmd->cb.list != NULL) {
		struct pop3_list_entry *e = xrealloc(NULL, acc->n * sizeof(*e));

		for (size_t i = 0; i < acc->n; i++)
			e[i] = (struct pop3_list_entry){.msgno = acc->msgnos[i], .size = acc->sizes[i]};
		cmd->cb.list(cmd->ctx, e, acc->n, NULL);
		free(e);
	} else if ((cmd->kind == CMD_RETR || cmd->kind == CMD_TOP) && cmd->cb.retr != NULL) {
		cmd->cb.retr(cmd->ctx, cmd->body_bytes, NULL);
	}
	cmd_free(cmd);
}

/* A single-line reply, a -ERR, or the +OK that opens a listing or a message. */
static void on_status(struct pop3_client *c, struct pop3_cmd *cmd, const struct pop3_status *st, bool complete)
{
	struct mh_err err;
	uint32_t count;
	uint64_t octets;

	if (st->continuation) {
		/* RFC 5034 section 4: the server's "+ " asks for the PLAIN response */
		if (cmd->kind != CMD_AUTH || cmd->auth_resp == NULL || cmd->auth_resp_sent) {
			fail_with(c, MH_E_PROTOCOL, "unexpected continuation request from the server");
			return;
		}
		cmd->auth_resp_sent = true;
		if (c->tr == NULL)
			return; /* the server has closed: nothing can be sent */
		evbuffer_add(transport_output(c->tr), cmd->auth_resp, strlen(cmd->auth_resp));
		evbuffer_add(transport_output(c->tr), "\r\n", 2);
		trace_emit(c, IMAP_TRACE_SENT, "<redacted>", 10);
		return;
	}
	if (!complete)
		return; /* lines or message bytes follow */
	if (!st->ok) {
		pop3_err_from_reply(st, verbs[cmd->kind].word, &err);
		redact_err(c, &err);
		complete_cmd(c, cmd, st, &err);
		return;
	}
	if (cmd->kind == CMD_STAT && !cmd->internal) {
		cmd_detach(c, cmd);
		if (pop3_parse_stat(st->line, &count, &octets) < 0) {
			mh_err_set(&err, MH_E_PROTOCOL, "STAT reply is malformed: \"%.60s\"", st->line);
			if (cmd->cb.stat != NULL)
				cmd->cb.stat(cmd->ctx, 0, 0, &err);
		} else if (cmd->cb.stat != NULL) {
			cmd->cb.stat(cmd->ctx, count, octets, NULL);
		}
		cmd_free(cmd);
		return;
	}
	complete_cmd(c, cmd, st, NULL);
}

static void on_body_data(struct pop3_client *c, struct pop3_cmd *cmd, size_t len, struct evbuffer *in)
{
	size_t before = evbuffer_get_length(in), after;

	cmd->body_bytes += len;
	if (cmd->data == NULL) {
		evbuffer_drain(in, len);
		return;
	}
	cmd->data(cmd->ctx, in, len);
	if (client_gone(c) || c->phase == PH_CLOSED)
		return;
	after = evbuffer_get_length(in);
	if (after > before - len)
		evbuffer_drain(in, after - (before - len)); /* the handler left some: drop them */
	else if (after < before - len)
		fail_with(c, MH_E_INTERNAL, "a RETR data handler took more bytes than it was given");
}

static void on_greeting(struct pop3_client *c, const struct pop3_status *st)
{
	const char *ts;
	size_t ts_len;
	struct mh_err err;

	evtimer_del(c->conn_timer);
	if (!st->ok) {
		pop3_err_from_reply(st, "greeting", &err);
		fail_connection(c, &err);
		return;
	}
	if (pop3_greeting_timestamp(st->line, &ts, &ts_len) == 0) {
		c->apop_ts = strndup(ts, ts_len);
		if (c->apop_ts == NULL)
			abort();
	}
	open_next(c);
}

/* The input to read from: the connection's, or what was left when the server closed. */
static struct evbuffer *input_of(const struct pop3_client *c)
{
	return c->tr != NULL ? transport_input(c->tr) : c->tail_in;
}

/* The server closed and everything it sent has been read. */
static void eof_finish(struct pop3_client *c)
{
	struct mh_err err = c->eof_err, cut;
	struct evbuffer *in = input_of(c);

	c->eof_pending = false;
	/* a reply cut off says more than "the server closed the connection" */
	if (err.code == MH_E_CONNECTION_LOST && in != NULL && !TAILQ_EMPTY(&c->sent) &&
	    pop3_parser_eof(c->parser, in, &cut) < 0)
		err = cut;
	fail_connection(c, &err);
}

static void process_input(struct pop3_client *c)
{
	struct evbuffer *in = input_of(c);

	if (in == NULL || c->paused || client_gone(c) || c->phase < PH_GREETING || c->phase == PH_CLOSED)
		return;
	for (;;) {
		struct pop3_cmd *head = TAILQ_FIRST(&c->sent);
		struct pop3_event ev;
		struct mh_err err;
		enum pop3_ev k;

		if (!pop3_parser_busy(c->parser)) {
			if (c->phase == PH_GREETING)
				pop3_parser_expect(c->parser, POP3_EXPECT_STATUS);
			else if (head != NULL)
				pop3_parser_expect(c->parser, verbs[head->kind].expect);
		}
		mh_err_clear(&err);
		k = pop3_parser_next(c->parser, in, &ev, &err);
		if (k == POP3_EV_NEED_MORE)
			break;
		if (k == POP3_EV_ERROR) {
			fail_connection(c, &err);
			return;
		}
		if (c->phase == PH_GREETING) {
			trace_status(c, ev.status);
			on_greeting(c, ev.status);
		} else if (head == NULL) {
			fail_with(c, MH_E_INTERNAL, "a reply without a command");
		} else if (k == POP3_EV_STATUS) {
			trace_status(c, ev.status);
			on_status(c, head, ev.status, ev.complete);
		} else if (k == POP3_EV_LINE) {
			on_listing_line(c, head, ev.line, ev.len);
		} else if (k == POP3_EV_BODY_DATA) {
			on_body_data(c, head, ev.len, in);
		} else if (k == POP3_EV_END) {
			on_end(c, head, ev.total);
		}
		/* STLS swaps the transport: the old input is gone */
		if (client_gone(c) || c->phase == PH_CLOSED || c->paused || input_of(c) != in)
			return;
		if (k == POP3_EV_STATUS || k == POP3_EV_END)
			pump(c); /* one at a time: the next may go now */
	}
	if (c->eof_pending)
		eof_finish(c);
}

/* ---------------------------------------------------------------------------------------
 * the open sequence: greeting, CAPA, [STLS, CAPA], AUTH PLAIN | APOP | USER+PASS, CAPA */

static void ready(struct pop3_client *c)
{
	set_phase(c, PH_READY);
	if (c->open_done != NULL) {
		pop3_done_cb_t *done = c->open_done;
		c->open_done = NULL;
		done(c->open_ctx, NULL);
	}
	if (!client_gone(c) && c->phase == PH_READY)
		pump(c);
}

static void capa_done(struct pop3_client *c, struct pop3_cmd *cmd, const struct pop3_status *st,
		      const struct mh_err *err)
{
	(void)st;
	if (c->phase == PH_CLOSED || client_gone(c))
		return;
	if (err == NULL)
		caps_take(c, &cmd->acc);
	else if (!c->authenticated)
		caps_clear(c); /* RFC 1939 servers: no CAPA; capabilities unknown */
	/* after login a failed CAPA keeps what was known before */
	open_next(c);
}

static void login_done(struct pop3_client *c, struct pop3_cmd *cmd, const struct pop3_status *st,
		       const struct mh_err *err)
{
	(void)cmd;
	(void)st;
	if (c->phase == PH_CLOSED || client_gone(c))
		return;
	if (err != NULL) {
		fail_connection(c, err);
		return;
	}
	c->authenticated = true;
	open_next(c);
}

static void user_done(struct pop3_client *c, struct pop3_cmd *cmd, const struct pop3_status *st,
		      const struct mh_err *err)
{
	(void)cmd;
	(void)st;
	if (c->phase == PH_CLOSED || client_gone(c))
		return;
	if (err != NULL) {
		fail_connection(c, err);
		return;
	}
	/* PASS takes the rest of the line, spaces included (RFC 1939 section 7) */
	send_internal(c, CMD_PASS, c->password, 0, login_done);
}

static void stls_done(struct pop3_client *c, struct pop3_cmd *cmd, const struct pop3_status *st,
		      const struct mh_err *err)
{
	struct evbuffer *in;
	struct mh_err e;

	(void)cmd;
	if (c->phase == PH_CLOSED || client_gone(c))
		return;
	if (err != NULL) {
		if (st != NULL && c->allow_plaintext) {
			mh_warn(log_comp, "%s: STLS refused (%s); going on in plaintext", c->name, err->detail);
			c->plaintext_accepted = true;
			open_next(c);
			return;
		}
		fail_with(c, MH_E_STARTTLS_UNAVAILABLE, "%s", err->detail);
		return;
	}
	/* Anything the server sent after its +OK was sent in plaintext and would be taken as
	 * coming from the TLS peer (RFC 2595 section 4, CVE-2011-0411). */
	if (c->tr == NULL) {
		fail_with(c, MH_E_CONNECTION_LOST, "the server closed the connection after its STLS +OK");
		return;
	}
	in = transport_input(c->tr);
	if (in == NULL || evbuffer_get_length(in) > 0) {
		fail_with(c, MH_E_PROTOCOL, "the server sent data after its STLS +OK (injection attempt?)");
		return;
	}
	set_phase(c, PH_TLS);
	{
		struct timeval tv;

		net_ms_to_tv(c->connect_timeout_ms, &tv);
		evtimer_add(c->conn_timer, &tv); /* the handshake runs under the connect timeout */
	}
	if (transport_start_tls(c->tr, &e) < 0)
		fail_connection(c, &e);
}

/* MD5(a b) in lower-case hex; -1 when the library refuses MD5 (FIPS mode). */
static int md5_hex(const char *a, const char *b, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	size_t al = strlen(a), bl = strlen(b);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *data = xrealloc(NULL, al + bl);

	memcpy(data, a, al);
	memcpy(data + al, b, bl);
	if (EVP_Digest(data, al + bl, md, &mdlen, EVP_md5(), NULL) != 1 || mdlen != 16)
		mdlen = 0;
	explicit_bzero(data, al + bl);
	free(data);
	for (unsigned i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * mdlen] = '\0';
	explicit_bzero(md, sizeof(md));
	return mdlen == 16 ? 0 : -1;
}

static void login_auth_plain(struct pop3_client *c)
{
	char *blob = plain_blob(c);
	size_t n = strlen(blob);

	c->login_method = "AUTH PLAIN";
	if (strlen("AUTH PLAIN ") + n + 2 <= AUTH_LINE_MAX) {
		char *args = xrealloc(NULL, n + 7);

		memcpy(args, "PLAIN ", 6);
		memcpy(args + 6, blob, n + 1);
		send_internal(c, CMD_AUTH, args, 6, login_done);
		wipe_free(&args);
	} else {
		struct pop3_cmd *cmd = cmd_new(CMD_AUTH, true);

		cmd->args = xstrdup("PLAIN");
		cmd->trace_keep = 5;
		cmd->auth_resp = xstrdup(blob);
		cmd->internal_done = login_done;
		TAILQ_INSERT_TAIL(&c->queued, cmd, link);
		pump(c);
	}
	wipe_free(&blob);
}

static void login_apop(struct pop3_client *c)
{
	char digest[33];
	size_t ul = strlen(c->user);
	char *args = xrealloc(NULL, ul + 34);

	c->login_method = "APOP";
	/* RFC 1939 section 7: APOP name MD5(timestamp password) */
	if (md5_hex(c->apop_ts, c->password, digest) < 0) {
		free(args);
		fail_with(c, MH_E_AUTH_NO_MECHANISM, "APOP needs MD5, which this system's OpenSSL refuses");
		return;
	}
	memcpy(args, c->user, ul);
	args[ul] = ' ';
	memcpy(args + ul + 1, digest, 33);
	send_internal(c, CMD_APOP, args, 0, login_done);
	explicit_bzero(digest, sizeof(digest));
	wipe_free(&args);
}

static void login_start(struct pop3_client *c)
{
	if (c->user == NULL || c->password == NULL) {
		fail_with(c, MH_E_NO_PASSWORD, "no user name or password for %s", c->host);
		return;
	}
	if (strpbrk(c->user, "\r\n") != NULL || strpbrk(c->password, "\r\n") != NULL) {
		fail_with(c, MH_E_INTERNAL, "the user name or password contains a line break");
		return;
	}
	set_phase(c, PH_LOGIN);
	if (sasl_plain_offered(c)) {
		login_auth_plain(c);
	} else if (c->allow_apop && c->apop_ts != NULL) {
		login_apop(c);
	} else if (c->caps_known && !pop3_client_has_cap(c, "USER")) {
		/* RFC 2449 section 6.7: without USER the server takes no plain password here */
		if (!tls_active(c))
			fail_with(c, MH_E_PLAINTEXT_REFUSED,
				  "the server offers neither USER nor SASL PLAIN on an unencrypted connection");
		else
			fail_with(c, MH_E_AUTH_NO_MECHANISM, "the server offers neither USER nor SASL PLAIN");
	} else {
		c->login_method = "USER";
		send_internal(c, CMD_USER, c->user, 0, user_done);
	}
}

static void open_next(struct pop3_client *c)
{
	if (c->phase == PH_CLOSED || client_gone(c))
		return;
	if (!c->authenticated) {
		if (!c->caps_asked) {
			c->caps_asked = true;
			set_phase(c, PH_CAPA);
			send_internal(c, CMD_CAPA, NULL, 0, capa_done);
			return;
		}
		if (c->security == MH_SEC_STARTTLS && !tls_active(c) && !c->plaintext_accepted) {
			/* without CAPA (RFC 1939 servers) STLS is tried all the same */
			if (!c->caps_known || pop3_client_has_cap(c, "STLS")) {
				set_phase(c, PH_STLS);
				send_internal(c, CMD_STLS, NULL, 0, stls_done);
				return;
			}
			if (!c->allow_plaintext) {
				fail_with(c, MH_E_STARTTLS_UNAVAILABLE, "%s does not offer STLS", c->host);
				return;
			}
			mh_warn(log_comp, "%s: %s does not offer STLS; going on in plaintext", c->name, c->host);
			c->plaintext_accepted = true;
		}
		login_start(c);
		return;
	}
	if (!c->post_caps_asked) {
		c->post_caps_asked = true;
		send_internal(c, CMD_CAPA, NULL, 0, capa_done);
		return;
	}
	ready(c);
}

/* ---------------------------------------------------------------------------------------
 * event loop entry points */

static void on_closed(struct pop3_client *c, const struct mh_err *err)
{
	struct evbuffer *in = transport_input(c->tr);

	if (c->phase == PH_CLOSED)
		return;
	if (c->phase < PH_GREETING || in == NULL || evbuffer_get_length(in) == 0) {
		c->eof_err = *err;
		if (c->phase >= PH_GREETING && c->phase != PH_CLOSED) {
			c->tail_in = evbuffer_new();
			close_transport(c);
			eof_finish(c);
		} else {
			fail_connection(c, err);
		}
		return;
	}
	/* Replies may still be in the buffer (QUIT's +OK, the end of a message): keep them
	 * and read them first, even if reading is paused now. */
	c->tail_in = evbuffer_new();
	if (c->tail_in == NULL)
		abort();
	evbuffer_add_buffer(c->tail_in, in);
	close_transport(c);
	c->eof_pending = true;
	c->eof_err = *err;
	process_input(c);
}

static void on_transport(void *ctx, enum transport_event ev, const struct mh_err *err)
{
	struct pop3_client *c = ctx;

	client_ref(c);
	if (!client_gone(c)) {
		switch (ev) {
		case TRANSPORT_CONNECTED:
			set_phase(c, PH_GREETING);
			c->last_activity_ms = net_now_ms();
			process_input(c); /* a greeting read along with the TLS handshake */
			break;
		case TRANSPORT_TLS_READY:
			evtimer_del(c->conn_timer);
			/* RFC 2595 section 4: what was learned before TLS is forgotten */
			caps_clear(c);
			c->caps_asked = false;
			set_phase(c, PH_CAPA);
			open_next(c);
			break;
		case TRANSPORT_READ:
			c->last_activity_ms = net_now_ms();
			process_input(c);
			break;
		case TRANSPORT_CLOSED:
			on_closed(c, err);
			break;
		case TRANSPORT_TLS_BEGIN:
			set_phase(c, PH_TLS); /* pop3s: what fails from here on fails in the handshake */
			break;
		case TRANSPORT_WRITTEN: /* not watched */
			break;
		}
	}
	client_unref(c);
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_client *c = arg;

	(void)fd;
	(void)what;
	client_ref(c);
	switch (c->phase) {
	case PH_CONNECTING:
		fail_with(c, MH_E_CONNECT_TIMEOUT, "%s port %u: no connection within %u ms", c->host, c->port,
			  c->connect_timeout_ms);
		break;
	case PH_TLS:
		fail_with(c, MH_E_CONNECT_TIMEOUT, "%s port %u: no TLS handshake within %u ms", c->host, c->port,
			  c->connect_timeout_ms);
		break;
	case PH_GREETING:
		fail_with(c, MH_E_CONNECT_TIMEOUT, "%s port %u: no greeting within %u ms", c->host, c->port,
			  c->connect_timeout_ms);
		break;
	default:
		break;
	}
	client_unref(c);
}

static void on_cmd_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_client *c = arg;
	uint64_t now = net_now_ms(), elapsed;

	(void)fd;
	(void)what;
	client_ref(c);
	if (c->phase != PH_CLOSED && !client_gone(c) && c->tr != NULL && c->nsent > 0) {
		if (c->paused || transport_output_pending(c->tr) > 0) {
			/* We are the slow side (backpressure, or still writing): not the server's
			 * fault. Stalled writes are caught by the transport's write timeout. */
			c->last_activity_ms = now;
			arm_cmd_timer(c, c->command_timeout_ms);
		} else {
			elapsed = now - c->last_activity_ms;
			if (elapsed >= c->command_timeout_ms)
				fail_with(c, MH_E_TIMEOUT, "no answer from the server for %u ms", c->command_timeout_ms);
			else
				arm_cmd_timer(c, c->command_timeout_ms - elapsed);
		}
	}
	client_unref(c);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_client *c = arg;

	(void)fd;
	(void)what;
	client_ref(c);
	if (c->complete_pending) {
		c->complete_pending = false;
		complete_all(c, &c->fail_err);
	}
	if (c->process_pending && !client_gone(c)) {
		c->process_pending = false;
		process_input(c);
	}
	client_unref(c);
}

/* ---------------------------------------------------------------------------------------
 * public API */

struct pop3_client *pop3_client_new(struct event_base *base, const struct pop3_client_opts *opts)
{
	struct pop3_client *c = calloc(1, sizeof(*c));
	struct pop3_parser_limits lim;

	if (c == NULL)
		abort();
	c->base = base;
	c->name = xstrdup(opts->name != NULL ? opts->name : "pop3");
	c->host = xstrdup(opts->host != NULL ? opts->host : "");
	c->tls_name = xstrdup(opts->tls_name != NULL && opts->tls_name[0] != '\0' ? opts->tls_name : c->host);
	c->user = xstrdup(opts->user);
	c->password = xstrdup(opts->password);
	c->port = opts->port;
	c->security = opts->security;
	c->allow_plaintext = opts->allow_plaintext;
	c->allow_apop = opts->allow_apop;
	c->tls = opts->tls;
	c->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	c->command_timeout_ms = opts->command_timeout_ms ? opts->command_timeout_ms : DEFAULT_COMMAND_TIMEOUT_MS;
	c->trace = opts->trace;
	c->trace_ctx = opts->trace_ctx;
	pop3_parser_limits_default(&lim);
	if (opts->limits.max_line)
		lim.max_line = opts->limits.max_line;
	if (opts->limits.max_message)
		lim.max_message = opts->limits.max_message;
	if (opts->limits.max_lines)
		lim.max_lines = opts->limits.max_lines;
	c->parser = pop3_parser_new(&lim);
	c->conn_timer = evtimer_new(base, on_conn_timer, c);
	c->cmd_timer = evtimer_new(base, on_cmd_timer, c);
	c->defer_ev = event_new(base, -1, 0, on_deferred, c);
	if (c->conn_timer == NULL || c->cmd_timer == NULL || c->defer_ev == NULL)
		abort();
	TAILQ_INIT(&c->queued);
	TAILQ_INIT(&c->sent);
	c->phase = PH_NEW;
	return c;
}

static void client_destroy(struct pop3_client *c)
{
	struct mh_err err;

	c->destroying = true;
	c->refs++;
	if (c->phase != PH_CLOSED) {
		set_phase(c, PH_CLOSED);
		close_transport(c);
	}
	if (c->fail_err.code != MH_E_OK)
		err = c->fail_err;
	else
		mh_err_set(&err, MH_E_CANCELED, "the connection was closed by its owner");
	complete_all(c, &err);
	event_free(c->conn_timer);
	event_free(c->cmd_timer);
	event_free(c->defer_ev);
	pop3_parser_free(&c->parser);
	if (c->tail_in != NULL)
		evbuffer_free(c->tail_in);
	caps_clear(c);
	for (size_t i = 0; i < c->ndisabled; i++)
		free(c->disabled_caps[i]);
	free(c->disabled_caps);
	free(c->apop_ts);
	wipe_free(&c->password);
	wipe_free(&c->user);
	free(c->name);
	free(c->host);
	free(c->tls_name);
	free(c);
}

void pop3_client_free(struct pop3_client **cp)
{
	struct pop3_client *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	if (c->destroying || c->free_requested)
		return;
	if (c->refs > 0) {
		/* Inside one of our callbacks: stop all I/O now, free on the way out. */
		c->free_requested = true;
		if (c->phase != PH_CLOSED) {
			mh_err_set(&c->fail_err, MH_E_CANCELED, "the connection was closed by its owner");
			set_phase(c, PH_CLOSED);
			close_transport(c);
		}
		return;
	}
	client_destroy(c);
}

void pop3_client_open(struct pop3_client *c, pop3_done_cb_t *done, void *ctx)
{
	struct transport_opts to = {0};
	struct mh_err err;
	struct timeval tv;

	if (c->phase != PH_NEW) {
		if (c->phase == PH_CLOSED && c->open_done == NULL) {
			/* report through the deferred path, never from inside this call */
			c->open_done = done;
			c->open_ctx = ctx;
			c->complete_pending = true;
			schedule(c);
		} else {
			mh_error(log_comp, "%s: pop3_client_open called twice", c->name);
		}
		return;
	}
	c->open_done = done;
	c->open_ctx = ctx;
	set_phase(c, PH_CONNECTING);
	if (c->security != MH_SEC_PLAIN && c->tls == NULL) {
		fail_with(c, MH_E_INTERNAL, "TLS requested without a TLS context");
		return;
	}
	to.name = c->name;
	to.host = c->host;
	to.port = c->port;
	to.tls_name = c->tls_name;
	to.tls = c->tls;
	to.implicit_tls = c->security == MH_SEC_TLS;
	to.write_timeout_ms = c->command_timeout_ms;
	c->tr = transport_new(c->base, &to, on_transport, c);
	net_ms_to_tv(c->connect_timeout_ms, &tv);
	evtimer_add(c->conn_timer, &tv);
	if (transport_connect(c->tr, &err) < 0)
		fail_connection(c, &err);
}

bool pop3_client_is_open(const struct pop3_client *c)
{
	return c != NULL && c->phase == PH_READY && !c->quit_queued && !client_gone(c);
}

enum pop3_stage pop3_client_stage(const struct pop3_client *c)
{
	switch (c->phase == PH_CLOSED ? c->failed_phase : c->phase) {
	case PH_NEW:
	case PH_CONNECTING:
		return POP3_STAGE_CONNECT;
	case PH_TLS:
	case PH_STLS:
		return POP3_STAGE_TLS;
	case PH_GREETING:
	case PH_CAPA:
		return POP3_STAGE_GREETING;
	case PH_LOGIN:
		return POP3_STAGE_LOGIN;
	default:
		return POP3_STAGE_READY;
	}
}

const char *pop3_client_login_method(const struct pop3_client *c)
{
	return c->login_method;
}

bool pop3_client_apop_offered(const struct pop3_client *c)
{
	return c->apop_ts != NULL;
}

bool pop3_client_tls_info(const struct pop3_client *c, struct mh_tls_info *info)
{
	if (c->tr == NULL) {
		memset(info, 0, sizeof(*info));
		return false;
	}
	return transport_tls_info(c->tr, info);
}

void pop3_client_abort(struct pop3_client *c, const struct mh_err *why)
{
	fail_connection(c, why);
}

void pop3_client_pause_reading(struct pop3_client *c, bool pause)
{
	if (c->paused == pause)
		return;
	c->paused = pause;
	if (c->tr != NULL)
		transport_pause_reading(c->tr, pause);
	if (pause || c->phase == PH_CLOSED)
		return;
	c->last_activity_ms = net_now_ms();
	/* Input already buffered will not raise another read event. */
	c->process_pending = true;
	schedule(c);
}

/* Queues a caller's command; -1 when none can be queued any more. */
static struct pop3_cmd *user_cmd(struct pop3_client *c, enum cmd_kind kind, void *ctx, struct mh_err *err)
{
	struct pop3_cmd *cmd;

	if (c->phase == PH_CLOSED || client_gone(c)) {
		if (c->fail_err.code != MH_E_OK && err != NULL)
			*err = c->fail_err;
		else
			mh_err_set(err, MH_E_CONNECTION_LOST, "the connection is closed");
		return NULL;
	}
	if (c->quit_queued) {
		mh_err_set(err, MH_E_CANCELED, "the session is ending: QUIT was sent");
		return NULL;
	}
	cmd = cmd_new(kind, false);
	cmd->ctx = ctx;
	return cmd;
}

static int user_cmd_queue(struct pop3_client *c, struct pop3_cmd *cmd)
{
	TAILQ_INSERT_TAIL(&c->queued, cmd, link);
	pump(c);
	return 0;
}

int pop3_client_stat(struct pop3_client *c, pop3_stat_cb_t *done, void *ctx, struct mh_err *err)
{
	struct pop3_cmd *cmd = user_cmd(c, CMD_STAT, ctx, err);

	if (cmd == NULL)
		return -1;
	cmd->cb.stat = done;
	return user_cmd_queue(c, cmd);
}

int pop3_client_uidl(struct pop3_client *c, pop3_uidl_cb_t *done, void *ctx, struct mh_err *err)
{
	struct pop3_cmd *cmd = user_cmd(c, CMD_UIDL, ctx, err);

	if (cmd == NULL)
		return -1;
	cmd->cb.uidl = done;
	return user_cmd_queue(c, cmd);
}

int pop3_client_list(struct pop3_client *c, pop3_list_cb_t *done, void *ctx, struct mh_err *err)
{
	struct pop3_cmd *cmd = user_cmd(c, CMD_LIST, ctx, err);

	if (cmd == NULL)
		return -1;
	cmd->cb.list = done;
	return user_cmd_queue(c, cmd);
}

int pop3_client_retr(struct pop3_client *c, uint32_t msgno, const struct pop3_retr_handlers *h,
		     struct mh_err *err)
{
	struct pop3_cmd *cmd;
	char num[16];

	if (msgno == 0)
		return mh_err_set(err, MH_E_INTERNAL, "RETR 0: message numbers start at 1");
	cmd = user_cmd(c, CMD_RETR, h != NULL ? h->ctx : NULL, err);
	if (cmd == NULL)
		return -1;
	snprintf(num, sizeof(num), "%u", msgno);
	cmd->args = xstrdup(num);
	cmd->trace_keep = strlen(num);
	if (h != NULL) {
		cmd->cb.retr = h->done;
		cmd->data = h->data;
	}
	return user_cmd_queue(c, cmd);
}

int pop3_client_top(struct pop3_client *c, uint32_t msgno, uint32_t lines, const struct pop3_retr_handlers *h,
		    struct mh_err *err)
{
	struct pop3_cmd *cmd;
	char args[32];

	if (msgno == 0)
		return mh_err_set(err, MH_E_INTERNAL, "TOP 0: message numbers start at 1");
	cmd = user_cmd(c, CMD_TOP, h != NULL ? h->ctx : NULL, err);
	if (cmd == NULL)
		return -1;
	snprintf(args, sizeof(args), "%u %u", msgno, lines);
	cmd->args = xstrdup(args);
	cmd->trace_keep = strlen(args);
	if (h != NULL) {
		cmd->cb.retr = h->done;
		cmd->data = h->data;
	}
	return user_cmd_queue(c, cmd);
}

static void quit_finished(void *ctx, const struct mh_err *err);

struct quit_wait {
	struct pop3_client *c;
	pop3_done_cb_t *done;
	void *ctx;
};

int pop3_client_quit(struct pop3_client *c, pop3_done_cb_t *done, void *ctx, struct mh_err *err)
{
	struct pop3_cmd *cmd = user_cmd(c, CMD_QUIT, NULL, err);
	struct quit_wait *w;

	if (cmd == NULL)
		return -1;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		abort();
	*w = (struct quit_wait){.c = c, .done = done, .ctx = ctx};
	cmd->cb.done = quit_finished;
	cmd->ctx = w;
	c->quit_queued = true;
	return user_cmd_queue(c, cmd);
}

/* QUIT answered (or failed): the session is over, so the connection closes. */
static void quit_finished(void *ctx, const struct mh_err *err)
{
	struct quit_wait *w = ctx;
	struct pop3_client *c = w->c;
	struct mh_err closed;

	if (c->phase != PH_CLOSED && !client_gone(c)) {
		mh_err_set(&closed, MH_E_CANCELED, "the session ended with QUIT");
		fail_connection(c, &closed);
	}
	if (w->done != NULL)
		w->done(w->ctx, err);
	free(w);
}
