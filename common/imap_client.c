/* imap_client.c - asynchronous, pipelined IMAP client on one transport (transport.h: DNS,
 * TCP, TLS and the STARTTLS upgrade, the write timeout, socket errors).
 *
 * Shape (see STYLE 2.5): the connection phase is an enum changed only by set_phase();
 * every command carries its own completion; commands are formatted into segments (text,
 * literal) in their own evbuffer and moved into the transport's output by pump(), which
 * stops at synchronizing literals until the server's "+" arrives. Every event loop entry
 * point holds a reference, so callbacks may free the client: the free is deferred until the
 * outermost entry point returns. Connection failures close the socket at once and complete
 * what is pending from a deferred event, so a done never runs inside the API call that
 * failed.
 */
#include "imap_client.h"

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

#include "log.h"
#include "net.h"
#include "transport.h"
#include "uidset.h"

#define IMAP_MAX_INFLIGHT 128
/* LITERAL+ only for literals up to 100 KiB: a large message goes as a synchronizing
 * literal so the server can refuse it (TOOBIG, OVERQUOTA) before we send it (STYLE 2.5). */
#define IMAP_LITERAL_PLUS_MAX (100u * 1024u)
#define IMAP_LITERAL_MINUS_MAX 4096u /* RFC 7888 4 */
#define IMAP_CAPS_MAX 256
#define IMAP_CAP_LEN_MAX 256
#define TRACE_LINE_MAX 2048
#define DEFAULT_CONNECT_TIMEOUT_MS 30000u
#define DEFAULT_COMMAND_TIMEOUT_MS 120000u

static const char log_comp[] = "imap";

enum imap_phase {
	PH_NEW,
	PH_CONNECTING,
	PH_TLS,
	PH_GREETING,
	PH_CAPABILITY,
	PH_STARTTLS,
	PH_LOGIN,
	PH_READY,
	PH_CLOSED,
};

static const char *const phase_names[] = {
	"new", "connecting", "tls", "greeting", "capability", "starttls", "login", "ready", "closed",
};

enum seg_kind { SEG_TEXT, SEG_LITERAL };

/* A run of command bytes. Text segments are always complete in cmd->data; a literal's
 * bytes may still be arriving (APPEND). */
struct seg {
	size_t len;
	unsigned char kind;
	bool wait_after; /* after this segment wait for "+" (synchronizing literal) */
	bool redact;     /* credentials: traced as "<redacted>" */
};

enum cmd_state { CMD_QUEUED, CMD_SENDING, CMD_SENT };

struct imap_cmd {
	TAILQ_ENTRY(imap_cmd) link;
	char tag[16];
	char context[32]; /* "APPEND", "UID FETCH": for imap_err_from_reply() */
	struct imap_cmd_handlers h;
	enum cmd_state state;
	bool internal;  /* part of imap_client_open(): may go before READY */
	bool open;      /* APPEND: the caller may still add messages */
	bool wait_cont; /* stopped after "{n}\r\n", waiting for "+" */
	bool seg_traced;
	struct evbuffer *data; /* formatted bytes not yet written */
	struct seg *segs;
	size_t nsegs, segs_cap, seg_idx, seg_off;
	struct imap_append *append;
};

TAILQ_HEAD(cmd_list, imap_cmd);

/* Literal bytes are queued in chunks of this size: bufferevent_openssl writes one TLS
 * record per buffer chain, and the source's 4 KiB records passed through as they are cost
 * the target server 15-40% more CPU (bench/RESULTS.md). */
#define APPEND_STAGE_SIZE 16384

struct imap_append {
	LIST_ENTRY(imap_append) link;
	struct imap_client *c;
	struct imap_cmd *cmd; /* NULL once the command has completed */
	uint64_t lit_left;    /* bytes still owed for the current message */
	uint64_t max_size;    /* the largest message added (for MSG_TOO_BIG) */
	unsigned nmsgs;
	size_t staged;        /* bytes in stage, not yet queued */
	unsigned char stage[APPEND_STAGE_SIZE];
};

LIST_HEAD(append_list, imap_append);

struct imap_client {
	/* permanent: copied options */
	struct event_base *base;
	char *name, *host, *tls_name, *user, *password;
	uint16_t port;
	enum mh_security security;
	bool allow_plaintext;
	struct mh_tls *tls;
	unsigned connect_timeout_ms, command_timeout_ms;
	imap_trace_cb_t *trace;
	void *trace_ctx;
	struct imap_parser *parser;
	struct event *conn_timer, *cmd_timer, *defer_ev;
	char **disabled_caps;
	size_t ndisabled;

	/* connection */
	enum imap_phase phase;
	enum imap_phase failed_phase; /* the phase a failure closed the connection in */
	struct transport *tr;
	struct evbuffer *tail_in; /* what arrived before the server closed, still to be read */
	/* The session was encrypted; stays set while tail_in is read (the transport is gone). */
	bool tls_active;
	bool starttls_used, plaintext_accepted, authenticated, caps_known, paused;
	imap_done_cb_t *open_done;
	void *open_ctx;
	char **caps;
	size_t ncaps;
	bool bye_seen;
	struct mh_err bye_err;
	bool eof_pending;
	struct mh_err eof_err;
	uint64_t last_activity_ms;

	/* commands */
	struct cmd_list cmds;
	struct imap_cmd *writer; /* the command being written, if any */
	unsigned inflight;       /* SENDING + SENT */
	unsigned nsent;          /* SENT: written, waiting for the tagged reply */
	unsigned next_tag;
	size_t held; /* bytes in the commands' own buffers, not yet in the transport */
	struct append_list appends;

	/* flow control */
	imap_drain_cb_t *drain_cb;
	void *drain_ctx;
	size_t drain_low;

	/* deferred work (defer_ev) */
	bool complete_pending, process_pending, drain_check;
	struct mh_err fail_err;

	/* sent-line tracing */
	char trace_line[TRACE_LINE_MAX + 4];
	size_t trace_len;
	bool trace_redacting;

	/* lifetime */
	unsigned refs;
	bool free_requested, destroying;
};

static void pump(struct imap_client *c);
static void open_next(struct imap_client *c);
static void process_input(struct imap_client *c);

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
	p = realloc(p, n);
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

/* --- credentials in server text ---------------------------------------------------------
 * A hostile or careless server may echo what we sent it ("NO LOGIN alice hunter2 failed");
 * the password must not reach a report, a log or the trace that way. Looked for: the
 * password as given, as sent inside a quoted string, and the AUTHENTICATE PLAIN blob. */

static void base64_encode(const unsigned char *in, size_t n, char *out);

#define SECRET_FORMS 3

/* Fills forms with heap copies (wipe them with secret_forms_free); returns how many. */
static size_t secret_forms(const struct imap_client *c, char *forms[SECRET_FORMS])
{
	size_t n = 0, pl, ul, rl;
	unsigned char *raw;
	char *q;

	if (c->password == NULL || c->password[0] == '\0')
		return 0;
	pl = strlen(c->password);
	forms[n++] = xstrdup(c->password);
	if (strpbrk(c->password, "\"\\") != NULL) {
		q = xrealloc(NULL, 2 * pl + 1);
		for (size_t i = 0, o = 0; i <= pl; i++) {
			if (c->password[i] == '"' || c->password[i] == '\\')
				q[o++] = '\\';
			q[o++] = c->password[i];
		}
		forms[n++] = q;
	}
	ul = c->user != NULL ? strlen(c->user) : 0;
	rl = ul + pl + 2;
	raw = xrealloc(NULL, rl);
	raw[0] = '\0';
	memcpy(raw + 1, c->user != NULL ? c->user : "", ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, c->password, pl);
	forms[n] = xrealloc(NULL, 4 * ((rl + 2) / 3) + 1);
	base64_encode(raw, rl, forms[n++]);
	explicit_bzero(raw, rl);
	free(raw);
	return n;
}

static void secret_forms_free(char *forms[SECRET_FORMS], size_t n)
{
	for (size_t i = 0; i < n; i++)
		wipe_free(&forms[i]);
}

/* err's detail (sanitized server text). */
static void redact_secrets(const struct imap_client *c, struct mh_err *err)
{
	char *forms[SECRET_FORMS];
	size_t n = secret_forms(c, forms);

	for (size_t i = 0; i < n; i++)
		mh_err_redact(err, forms[i]);
	secret_forms_free(forms, n);
}

/* A NUL-terminated line of size bytes; returns how many replacements were made. */
static size_t redact_line(const struct imap_client *c, char *line, size_t size)
{
	char *forms[SECRET_FORMS];
	size_t n = secret_forms(c, forms), hits = 0;

	for (size_t i = 0; i < n; i++)
		hits += mh_redact(line, size, forms[i]);
	secret_forms_free(forms, n);
	return hits;
}

/* Moves n bytes between evbuffers (evbuffer_remove_buffer takes int-sized steps). */
static size_t move_bytes(struct evbuffer *src, struct evbuffer *dst, size_t n)
{
	size_t moved = 0;

	while (moved < n) {
		size_t step = n - moved;
		int r;
		if (step > (size_t)INT_MAX / 2)
			step = (size_t)INT_MAX / 2;
		r = evbuffer_remove_buffer(src, dst, step);
		if (r <= 0)
			break;
		moved += (size_t)r;
	}
	return moved;
}

static void set_phase(struct imap_client *c, enum imap_phase p)
{
	if (c->phase == p)
		return;
	mh_debug(log_comp, "%s: %s -> %s", c->name, phase_names[c->phase], phase_names[p]);
	c->phase = p;
}

static bool client_gone(const struct imap_client *c)
{
	return c->free_requested || c->destroying;
}

static void client_destroy(struct imap_client *c);

static void client_ref(struct imap_client *c)
{
	c->refs++;
}

static void client_unref(struct imap_client *c)
{
	if (--c->refs == 0 && c->free_requested && !c->destroying)
		client_destroy(c);
}

static void schedule(struct imap_client *c)
{
	if (c->defer_ev != NULL)
		event_active(c->defer_ev, EV_TIMEOUT, 0);
}

/* ---------------------------------------------------------------------------------------
 * tracing */

static void trace_emit(struct imap_client *c, enum imap_trace_dir dir, const char *line, size_t len)
{
	if (c->trace != NULL)
		c->trace(c->trace_ctx, dir, line, len);
}

static void trace_out_add(struct imap_client *c, const char *p, size_t n)
{
	size_t room = TRACE_LINE_MAX - c->trace_len;

	if (n > room) {
		memcpy(c->trace_line + c->trace_len, p, room);
		c->trace_len = TRACE_LINE_MAX;
		memcpy(c->trace_line + c->trace_len, "...", 3);
		c->trace_len += 3;
		return;
	}
	memcpy(c->trace_line + c->trace_len, p, n);
	c->trace_len += n;
}

static void trace_out_text(struct imap_client *c, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			trace_emit(c, IMAP_TRACE_SENT, c->trace_line, c->trace_len);
			c->trace_len = 0;
		} else if (p[i] != '\r' && c->trace_len < TRACE_LINE_MAX) {
			c->trace_line[c->trace_len++] = p[i];
		}
	}
}

/* Called once at the start of each segment. */
static void trace_out_seg(struct imap_client *c, const struct seg *s)
{
	char buf[48];
	int k;

	if (s->redact) {
		if (!c->trace_redacting)
			trace_out_add(c, "<redacted>", 10);
		c->trace_redacting = true;
		return;
	}
	c->trace_redacting = false;
	if (s->kind == SEG_LITERAL) {
		k = snprintf(buf, sizeof(buf), "<literal %zu bytes>", s->len);
		trace_out_add(c, buf, (size_t)k);
	}
}

/* The first n bytes of data (a text segment about to be written). */
static void trace_out_data(struct imap_client *c, struct evbuffer *data, size_t n)
{
	char stackbuf[512];
	char *p = n <= sizeof(stackbuf) ? stackbuf : malloc(n);

	if (p == NULL)
		abort();
	evbuffer_copyout(data, p, n);
	trace_out_text(c, p, n);
	if (p != stackbuf)
		free(p);
}

struct tbuf {
	char buf[TRACE_LINE_MAX + 4];
	size_t len;
};

static void tb_add(struct tbuf *tb, const char *s, size_t n)
{
	size_t room = TRACE_LINE_MAX - tb->len;

	if (n > room)
		n = room;
	memcpy(tb->buf + tb->len, s, n);
	tb->len += n;
}

static void tb_str(struct tbuf *tb, const char *s)
{
	tb_add(tb, s, strlen(s));
}

static void tb_arg(struct tbuf *tb, const struct imap_arg *a)
{
	char num[48];

	switch (a->type) {
	case IMAP_ARG_ATOM:
		tb_add(tb, a->str, a->len);
		break;
	case IMAP_ARG_STRING:
		tb_add(tb, "\"", 1);
		for (size_t i = 0; i < a->len; i++) {
			if (a->str[i] == '"' || a->str[i] == '\\')
				tb_add(tb, "\\", 1);
			tb_add(tb, a->str + i, 1);
		}
		tb_add(tb, "\"", 1);
		break;
	case IMAP_ARG_LITERAL:
		snprintf(num, sizeof(num), "<literal %zu bytes>", a->len);
		tb_str(tb, num);
		break;
	case IMAP_ARG_STREAMED:
		snprintf(num, sizeof(num), "<literal %llu bytes>", (unsigned long long)a->literal_size);
		tb_str(tb, num);
		break;
	case IMAP_ARG_NIL:
		tb_str(tb, "NIL");
		break;
	case IMAP_ARG_LIST:
		tb_add(tb, "(", 1);
		for (size_t i = 0; i < a->count; i++) {
			if (i > 0)
				tb_add(tb, " ", 1);
			tb_arg(tb, &a->items[i]);
		}
		tb_add(tb, ")", 1);
		break;
	}
}

static void trace_response(struct imap_client *c, const struct imap_response *r)
{
	struct tbuf tb;
	char num[16];

	if (c->trace == NULL)
		return;
	tb.len = 0;
	if (r->kind == IMAP_RESP_CONTINUATION) {
		tb_str(&tb, "+");
		if (r->text != NULL && r->text[0] != '\0') {
			tb_add(&tb, " ", 1);
			tb_str(&tb, r->text);
		}
	} else {
		tb_str(&tb, r->kind == IMAP_RESP_TAGGED && r->tag != NULL ? r->tag : "*");
		if (r->has_number) {
			snprintf(num, sizeof(num), " %u", r->number);
			tb_str(&tb, num);
		}
		if (r->name != NULL) {
			tb_add(&tb, " ", 1);
			tb_str(&tb, r->name);
		}
		if (r->status != IMAP_STATUS_NONE) {
			if (r->code != NULL) {
				tb_str(&tb, " [");
				tb_str(&tb, r->code);
				if (r->code_args != NULL && r->code_args[0] != '\0') {
					tb_add(&tb, " ", 1);
					tb_str(&tb, r->code_args);
				}
				tb_add(&tb, "]", 1);
			}
			if (r->text != NULL && r->text[0] != '\0') {
				tb_add(&tb, " ", 1);
				tb_str(&tb, r->text);
			}
		} else {
			for (size_t i = 0; i < r->count; i++) {
				tb_add(&tb, " ", 1);
				tb_arg(&tb, &r->args[i]);
			}
		}
	}
	tb.buf[tb.len] = '\0';
	if (redact_line(c, tb.buf, sizeof(tb.buf)) > 0)
		tb.len = strlen(tb.buf);
	trace_emit(c, IMAP_TRACE_RECEIVED, tb.buf, tb.len);
}

/* ---------------------------------------------------------------------------------------
 * capabilities */

/* stored matches name when equal, or when stored is "name=value" (case-insensitive). */
static bool cap_match(const char *stored, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(stored, name, n) == 0 && (stored[n] == '\0' || stored[n] == '=');
}

static bool cap_disabled(const struct imap_client *c, const char *cap)
{
	for (size_t i = 0; i < c->ndisabled; i++)
		if (cap_match(cap, c->disabled_caps[i]))
			return true;
	return false;
}

static void caps_clear(struct imap_client *c)
{
	for (size_t i = 0; i < c->ncaps; i++)
		free(c->caps[i]);
	free(c->caps);
	c->caps = NULL;
	c->ncaps = 0;
	c->caps_known = false;
}

static void caps_add(struct imap_client *c, const char *s, size_t n)
{
	char *cap;

	if (n == 0 || n > IMAP_CAP_LEN_MAX || c->ncaps >= IMAP_CAPS_MAX)
		return;
	cap = strndup(s, n);
	if (cap == NULL)
		abort();
	if (cap_disabled(c, cap)) {
		free(cap);
		return;
	}
	c->caps = xrealloc(c->caps, (c->ncaps + 1) * sizeof(*c->caps));
	c->caps[c->ncaps++] = cap;
}

/* From "[CAPABILITY IMAP4rev1 LITERAL+ ...]" code arguments. */
static void caps_set_text(struct imap_client *c, const char *text)
{
	const char *p = text;

	caps_clear(c);
	while (*p != '\0') {
		const char *e;
		while (*p == ' ')
			p++;
		e = p;
		while (*e != '\0' && *e != ' ')
			e++;
		caps_add(c, p, (size_t)(e - p));
		p = e;
	}
	c->caps_known = true;
}

/* From an untagged "* CAPABILITY ..." data response. */
static void caps_set_args(struct imap_client *c, const struct imap_response *r)
{
	caps_clear(c);
	for (size_t i = 0; i < r->count; i++)
		if (r->args[i].type == IMAP_ARG_ATOM || r->args[i].type == IMAP_ARG_STRING)
			caps_add(c, r->args[i].str, r->args[i].len);
	c->caps_known = true;
}

bool imap_client_has_cap(const struct imap_client *c, const char *cap)
{
	for (size_t i = 0; i < c->ncaps; i++)
		if (cap_match(c->caps[i], cap))
			return true;
	return false;
}

const char *imap_client_cap_value(const struct imap_client *c, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < c->ncaps; i++)
		if (strncasecmp(c->caps[i], name, n) == 0 && c->caps[i][n] == '=')
			return c->caps[i] + n + 1;
	return NULL;
}

void imap_client_disable_cap(struct imap_client *c, const char *cap)
{
	size_t o = 0;

	c->disabled_caps = xrealloc(c->disabled_caps, (c->ndisabled + 1) * sizeof(char *));
	c->disabled_caps[c->ndisabled++] = xstrdup(cap);
	for (size_t i = 0; i < c->ncaps; i++) {
		if (cap_match(c->caps[i], cap))
			free(c->caps[i]);
		else
			c->caps[o++] = c->caps[i];
	}
	c->ncaps = o;
}

/* ---------------------------------------------------------------------------------------
 * commands: formatting into segments */

static struct imap_cmd *cmd_new(struct imap_client *c, const struct imap_cmd_handlers *h, bool internal)
{
	struct imap_cmd *cmd = calloc(1, sizeof(*cmd));

	if (cmd == NULL)
		abort();
	cmd->data = evbuffer_new();
	if (cmd->data == NULL)
		abort();
	if (h != NULL)
		cmd->h = *h;
	cmd->internal = internal;
	cmd->state = CMD_QUEUED;
	snprintf(cmd->tag, sizeof(cmd->tag), "A%u", ++c->next_tag);
	return cmd;
}

static void cmd_free(struct imap_client *c, struct imap_cmd *cmd)
{
	size_t left = evbuffer_get_length(cmd->data);

	c->held -= left < c->held ? left : c->held;
	evbuffer_free(cmd->data);
	free(cmd->segs);
	free(cmd);
}

static void seg_push(struct imap_cmd *cmd, enum seg_kind kind, size_t len, bool redact)
{
	struct seg *last = cmd->nsegs > cmd->seg_idx ? &cmd->segs[cmd->nsegs - 1] : NULL;

	if (kind == SEG_TEXT && last != NULL && last->kind == SEG_TEXT && !last->wait_after &&
	    last->redact == redact) {
		last->len += len;
		return;
	}
	if (cmd->nsegs == cmd->segs_cap) {
		cmd->segs_cap = cmd->segs_cap ? cmd->segs_cap * 2 : 8;
		cmd->segs = xrealloc(cmd->segs, cmd->segs_cap * sizeof(*cmd->segs));
	}
	cmd->segs[cmd->nsegs++] = (struct seg){.len = len, .kind = (unsigned char)kind, .redact = redact};
}

static void cmd_text(struct imap_client *c, struct imap_cmd *cmd, const char *p, size_t n, bool redact)
{
	if (n == 0)
		return;
	evbuffer_add(cmd->data, p, n);
	c->held += n;
	seg_push(cmd, SEG_TEXT, n, redact);
}

static void cmd_str(struct imap_client *c, struct imap_cmd *cmd, const char *s)
{
	cmd_text(c, cmd, s, strlen(s), false);
}

static void cmd_wait_after_last(struct imap_cmd *cmd)
{
	cmd->segs[cmd->nsegs - 1].wait_after = true;
}

/* RFC 7888: LITERAL+ allows any non-synchronizing literal, LITERAL- up to 4096 bytes. */
static bool literal_nonsync(const struct imap_client *c, uint64_t n)
{
	if (imap_client_has_cap(c, "LITERAL+"))
		return n <= IMAP_LITERAL_PLUS_MAX;
	if (imap_client_has_cap(c, "LITERAL-"))
		return n <= IMAP_LITERAL_MINUS_MAX;
	return false;
}

/* "{n+}\r\n" or "{n}\r\n" (then wait for "+"). */
static void cmd_literal_header(struct imap_client *c, struct imap_cmd *cmd, uint64_t n, bool redact)
{
	char hdr[40];
	bool nonsync = literal_nonsync(c, n);
	int k = snprintf(hdr, sizeof(hdr), "{%llu%s}\r\n", (unsigned long long)n, nonsync ? "+" : "");

	cmd_text(c, cmd, hdr, (size_t)k, redact);
	if (!nonsync)
		cmd_wait_after_last(cmd);
}

static bool is_atom_char(unsigned char ch)
{
	/* RFC 3501 9: ATOM-CHAR is any CHAR except atom-specials; we also quote ']'. */
	if (ch <= 0x20 || ch >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", ch) == NULL;
}

static void cmd_astring(struct imap_client *c, struct imap_cmd *cmd, const char *s, bool redact)
{
	size_t n = strlen(s);
	bool atom = n > 0 && strcasecmp(s, "NIL") != 0;
	bool quotable = true;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!is_atom_char(ch))
			atom = false;
		if (ch >= 0x80 || ch == '\r' || ch == '\n')
			quotable = false;
	}
	if (atom) {
		cmd_text(c, cmd, s, n, redact);
	} else if (quotable) {
		char *q = malloc(2 * n + 3);
		size_t o = 0;
		if (q == NULL)
			abort();
		q[o++] = '"';
		for (size_t i = 0; i < n; i++) {
			if (s[i] == '"' || s[i] == '\\')
				q[o++] = '\\';
			q[o++] = s[i];
		}
		q[o++] = '"';
		cmd_text(c, cmd, q, o, redact);
		explicit_bzero(q, o);
		free(q);
	} else {
		cmd_literal_header(c, cmd, n, redact);
		evbuffer_add(cmd->data, s, n);
		c->held += n;
		seg_push(cmd, SEG_LITERAL, n, redact);
	}
}

static void cmd_set_context(struct imap_cmd *cmd, const char *fmt)
{
	size_t n = 0, words = 0;

	while (fmt[n] != '\0' && fmt[n] != '%' && n + 1 < sizeof(cmd->context)) {
		if (fmt[n] == ' ') {
			/* "UID FETCH", "UID STORE": keep the second word */
			if (++words > 1 || strncasecmp(fmt, "UID ", 4) != 0)
				break;
		}
		n++;
	}
	while (n > 0 && fmt[n - 1] == ' ')
		n--;
	memcpy(cmd->context, fmt, n);
	cmd->context[n] = '\0';
}

static int cmd_vformat(struct imap_client *c, struct imap_cmd *cmd, bool redact, struct mh_err *err,
		       const char *fmt, va_list ap)
{
	const char *run = fmt;

	cmd_set_context(cmd, fmt);
	cmd_str(c, cmd, cmd->tag);
	cmd_str(c, cmd, " ");
	for (const char *p = fmt;; p++) {
		char num[24];
		if (*p != '%' && *p != '\0') {
			if (*p == '\r' || *p == '\n')
				return mh_err_set(err, MH_E_INTERNAL, "command format contains CR/LF");
			continue;
		}
		cmd_text(c, cmd, run, (size_t)(p - run), false);
		if (*p == '\0')
			break;
		switch (*++p) {
		case 'a': {
			const char *s = va_arg(ap, const char *);
			if (s == NULL || strpbrk(s, "\r\n") != NULL)
				return mh_err_set(err, MH_E_INTERNAL, "%%a argument is NULL or contains CR/LF");
			cmd_text(c, cmd, s, strlen(s), redact);
			break;
		}
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (s == NULL)
				return mh_err_set(err, MH_E_INTERNAL, "%%s argument is NULL");
			cmd_astring(c, cmd, s, redact);
			break;
		}
		case 'u':
			snprintf(num, sizeof(num), "%u", va_arg(ap, unsigned int));
			cmd_str(c, cmd, num);
			break;
		case 'U':
			snprintf(num, sizeof(num), "%llu", (unsigned long long)va_arg(ap, uint64_t));
			cmd_str(c, cmd, num);
			break;
		case '%':
			cmd_str(c, cmd, "%");
			break;
		default:
			return mh_err_set(err, MH_E_INTERNAL, "bad directive in command format \"%s\"", fmt);
		}
		run = p + 1;
	}
	cmd_str(c, cmd, "\r\n");
	return 0;
}

/* ---------------------------------------------------------------------------------------
 * output */

static bool cmd_timer_armed(struct imap_client *c)
{
	return evtimer_pending(c->cmd_timer, NULL) != 0;
}

/* True while the server owes us something: a tagged reply or a continuation. */
static bool awaiting_server(const struct imap_client *c)
{
	return c->nsent > 0 || (c->writer != NULL && c->writer->wait_cont);
}

static void arm_cmd_timer(struct imap_client *c, uint64_t ms)
{
	struct timeval tv;

	net_ms_to_tv(ms, &tv);
	evtimer_add(c->cmd_timer, &tv);
}

/* Writes what may be written of cmd; true when the command is completely written. */
static bool cmd_write(struct imap_client *c, struct imap_cmd *cmd, struct evbuffer *out)
{
	while (!cmd->wait_cont && cmd->seg_idx < cmd->nsegs) {
		struct seg *s = &cmd->segs[cmd->seg_idx];
		size_t want = s->len - cmd->seg_off;
		size_t have = evbuffer_get_length(cmd->data);
		size_t n = want < have ? want : have;

		if (c->trace != NULL) {
			if (!cmd->seg_traced)
				trace_out_seg(c, s);
			cmd->seg_traced = true;
			if (s->kind == SEG_TEXT && !s->redact && n > 0)
				trace_out_data(c, cmd->data, n);
		}
		if (n > 0) {
			size_t moved = move_bytes(cmd->data, out, n);
			c->held -= moved < c->held ? moved : c->held;
			cmd->seg_off += moved;
		}
		if (cmd->seg_off < s->len)
			return false; /* the caller has not supplied the bytes yet */
		cmd->seg_idx++;
		cmd->seg_off = 0;
		cmd->seg_traced = false;
		if (s->wait_after)
			cmd->wait_cont = true;
	}
	if (cmd->seg_idx == cmd->nsegs)
		cmd->seg_idx = cmd->nsegs = 0;
	return !cmd->wait_cont && !cmd->open && cmd->nsegs == 0;
}

static struct imap_cmd *next_sendable(struct imap_client *c)
{
	struct imap_cmd *cmd;

	TAILQ_FOREACH(cmd, &c->cmds, link) {
		if (cmd->state == CMD_QUEUED && (c->phase == PH_READY || cmd->internal))
			return cmd;
	}
	return NULL;
}

/* Where commands go, or NULL while none may be written. */
static struct evbuffer *writable_output(const struct imap_client *c)
{
	if (c->tr == NULL || c->phase < PH_GREETING || c->phase == PH_CLOSED)
		return NULL;
	return transport_output(c->tr);
}

/* Moves command bytes into the transport's output, as the pipelining rules allow: one
 * command is written at a time (an APPEND or a synchronizing literal holds the line), and
 * at most IMAP_MAX_INFLIGHT commands are in flight. */
static void pump(struct imap_client *c)
{
	struct evbuffer *out = writable_output(c);
	bool wrote = false, was_idle;

	if (out == NULL)
		return;
	was_idle = !awaiting_server(c);
	for (;;) {
		struct imap_cmd *cmd = c->writer;
		size_t before = evbuffer_get_length(out);
		bool done;

		if (cmd == NULL) {
			if (c->inflight >= IMAP_MAX_INFLIGHT)
				break;
			cmd = next_sendable(c);
			if (cmd == NULL)
				break;
			cmd->state = CMD_SENDING;
			c->writer = cmd;
			c->inflight++;
		}
		done = cmd_write(c, cmd, out);
		if (evbuffer_get_length(out) != before)
			wrote = true;
		if (!done)
			break;
		cmd->state = CMD_SENT;
		c->nsent++;
		c->writer = NULL;
	}
	if (wrote) {
		/* The clock runs from the moment the server first owes us an answer. */
		if (was_idle)
			c->last_activity_ms = net_now_ms();
		if (!cmd_timer_armed(c))
			arm_cmd_timer(c, c->command_timeout_ms);
	}
}

/* ---------------------------------------------------------------------------------------
 * completion and failure */

static void close_transport(struct imap_client *c)
{
	transport_free(&c->tr);
	if (c->conn_timer != NULL)
		evtimer_del(c->conn_timer);
	if (c->cmd_timer != NULL)
		evtimer_del(c->cmd_timer);
	c->drain_cb = NULL;
	c->writer = NULL;
}

/* Removes cmd from the queue, frees it and runs its done (exactly once). */
static void complete_cmd(struct imap_client *c, struct imap_cmd *cmd, const struct imap_response *r,
			 const struct mh_err *err)
{
	imap_done_cb_t *done = cmd->h.done;
	void *ctx = cmd->h.ctx;

	TAILQ_REMOVE(&c->cmds, cmd, link);
	if (cmd->state != CMD_QUEUED)
		c->inflight--;
	if (cmd->state == CMD_SENT)
		c->nsent--;
	if (c->writer == cmd)
		c->writer = NULL;
	if (cmd->append != NULL)
		cmd->append->cmd = NULL; /* the handle stays valid until finish */
	if (evbuffer_get_length(cmd->data) > 0 && c->drain_cb != NULL) {
		/* held bytes vanish without a write: the write callback will not tell */
		c->drain_check = true;
		schedule(c);
	}
	cmd_free(c, cmd);
	if (done != NULL)
		done(ctx, r, err);
}

static void complete_all(struct imap_client *c, const struct mh_err *err)
{
	struct imap_cmd *cmd;

	if (c->open_done != NULL) {
		imap_done_cb_t *done = c->open_done;
		c->open_done = NULL;
		done(c->open_ctx, NULL, err);
	}
	while ((cmd = TAILQ_FIRST(&c->cmds)) != NULL)
		complete_cmd(c, cmd, NULL, err);
}

/* Closes the connection at once; pending commands complete from the deferred event. */
static void fail_connection(struct imap_client *c, const struct mh_err *err)
{
	if (c->phase == PH_CLOSED)
		return;
	if (c->phase == PH_READY)
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

static void fail_with(struct imap_client *c, enum mh_err_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_with(struct imap_client *c, enum mh_err_code code, const char *fmt, ...)
{
	struct mh_err err;
	va_list ap;

	va_start(ap, fmt);
	mh_err_setv(&err, code, fmt, ap);
	va_end(ap);
	fail_connection(c, &err);
}

enum imap_stage imap_client_stage(const struct imap_client *c)
{
	switch (c->phase == PH_CLOSED ? c->failed_phase : c->phase) {
	case PH_NEW:
	case PH_CONNECTING:
		return IMAP_STAGE_CONNECT;
	case PH_TLS:
	case PH_STARTTLS:
		return IMAP_STAGE_TLS;
	case PH_GREETING:
	case PH_CAPABILITY:
		return IMAP_STAGE_GREETING;
	case PH_LOGIN:
		return IMAP_STAGE_LOGIN;
	default:
		return IMAP_STAGE_READY;
	}
}

size_t imap_client_caps(const struct imap_client *c, const char *const **caps_r)
{
	*caps_r = (const char *const *)c->caps;
	return c->ncaps;
}

bool imap_client_tls_info(const struct imap_client *c, struct mh_tls_info *info)
{
	if (c->tr == NULL) {
		memset(info, 0, sizeof(*info));
		return false;
	}
	return transport_tls_info(c->tr, info);
}

void imap_client_abort(struct imap_client *c, const struct mh_err *why)
{
	fail_connection(c, why);
}

/* ---------------------------------------------------------------------------------------
 * reply mapping */

/* The rules are tried in this order: a provider's own words (they name the problem more
 * exactly than any code: Gmail says "IMAP access is disabled" under [ALERT], Dovecot's
 * connection limit comes as [UNAVAILABLE]), the response code (RFC 5530, RFC 4469/7889),
 * common texts of servers that send no code (Cyrus "Over quota"), then the command's
 * default. Texts match case-insensitively anywhere in the server's text. */

struct code_rule {
	const char *code;
	enum mh_err_code err;
	const char *contexts; /* NULL: any; else the commands it applies to, space-separated */
};

static const struct code_rule code_rules[] = {
	{"AUTHENTICATIONFAILED", MH_E_AUTH_FAILED, NULL}, /* RFC 5530 */
	{"AUTHORIZATIONFAILED", MH_E_MAILBOX_ACCESS_DENIED, NULL},
	{"EXPIRED", MH_E_ACCOUNT_LOCKED, NULL},
	{"CONTACTADMIN", MH_E_ACCOUNT_LOCKED, NULL},
	{"PRIVACYREQUIRED", MH_E_PLAINTEXT_REFUSED, NULL},
	{"WEBALERT", MH_E_WEB_LOGIN_REQUIRED, NULL}, /* Gmail */
	{"UNAVAILABLE", MH_E_UNAVAILABLE, NULL},
	{"INUSE", MH_E_UNAVAILABLE, NULL},
	{"THROTTLED", MH_E_THROTTLED, NULL},
	{"SERVERBUG", MH_E_SERVER_ERROR, NULL},
	{"CLIENTBUG", MH_E_COMMAND_REJECTED, NULL},
	{"OVERQUOTA", MH_E_OVER_QUOTA, NULL},
	{"TOOBIG", MH_E_MSG_TOO_BIG, NULL}, /* RFC 4469 / 7889 */
	{"LIMIT", MH_E_MSG_TOO_BIG, "APPEND"},
	{"TRYCREATE", MH_E_FOLDER_MISSING, NULL},
	{"NONEXISTENT", MH_E_FOLDER_MISSING, NULL},
	{"ALREADYEXISTS", MH_E_FOLDER_CREATE, NULL}, /* the planner takes it as success */
	{"CANNOT", MH_E_FOLDER_NAME, "CREATE"},
	{"NOPERM", MH_E_FOLDER_CREATE, "CREATE"},
	{"NOPERM", MH_E_FOLDER_SELECT, NULL},
	{"CORRUPTION", MH_E_FOLDER_CORRUPT, NULL},
	{"EXPUNGEISSUED", MH_E_MSG_VANISHED, NULL},
};

struct text_rule {
	const char *text;
	enum mh_err_code err;
	const char *contexts; /* as in code_rule */
};

/* Commands that name a folder: where "does not exist" is about the folder, not the user. */
#define FOLDER_CMDS "SELECT EXAMINE STATUS APPEND DELETE RENAME SUBSCRIBE"

static const struct text_rule provider_texts[] = {
	/* throttling, often without a response code */
	{"Server Unavailable. 15", MH_E_THROTTLED, NULL},                       /* Exchange / Office 365 */
	{"Request is throttled", MH_E_THROTTLED, NULL},                         /* Exchange Online */
	{"[THROTTLED]", MH_E_THROTTLED, NULL},                                  /* Gmail, in the text */
	{"Too many simultaneous connections", MH_E_THROTTLED, NULL},            /* Gmail */
	{"Account exceeded command or bandwidth limits", MH_E_THROTTLED, NULL}, /* Gmail */
	{"Maximum number of connections", MH_E_THROTTLED, NULL}, /* Dovecot mail_max_userip_connections */
	{"Too many connections", MH_E_THROTTLED, NULL},          /* Cyrus */
	/* IMAP switched off for the account or the domain */
	{"not enabled for IMAP", MH_E_LOGIN_DISABLED, NULL},    /* Gmail */
	{"IMAP access is disabled", MH_E_LOGIN_DISABLED, NULL}, /* Google Workspace */
	{"IMAP access disabled", MH_E_LOGIN_DISABLED, NULL},
	{"IMAP is disabled", MH_E_LOGIN_DISABLED, NULL},
	/* the provider wants a sign-in on its website first */
	{"log in via your web browser", MH_E_WEB_LOGIN_REQUIRED, NULL}, /* Gmail */
	{"Web login required", MH_E_WEB_LOGIN_REQUIRED, NULL},          /* Gmail, with [WEBALERT] */
	/* Exchange: LOGIN said OK, then every command gets this BAD (no mailbox or licence,
	 * IMAP off for it, or a delegate without full access) */
	{"User is authenticated but not connected", MH_E_MAILBOX_ACCESS_DENIED, NULL},
	{"Plaintext authentication disallowed", MH_E_PLAINTEXT_REFUSED, NULL}, /* Dovecot */
	{"Plaintext authentication not allowed", MH_E_PLAINTEXT_REFUSED, NULL},
};

static const struct text_rule generic_texts[] = {
	{"over quota", MH_E_OVER_QUOTA, NULL}, /* Cyrus "Over quota", "Mailbox is over quota" */
	{"quota exceeded", MH_E_OVER_QUOTA, NULL},
	{"exceeds quota", MH_E_OVER_QUOTA, NULL},
	{"mailbox is full", MH_E_OVER_QUOTA, NULL},
	{"too large", MH_E_MSG_TOO_BIG, "APPEND"}, /* "Message too large" */
	{"too big", MH_E_MSG_TOO_BIG, "APPEND"},
	{"size exceeds", MH_E_MSG_TOO_BIG, "APPEND"}, /* Cyrus "Message size exceeds fixed limit" */
	{"larger than the maximum", MH_E_MSG_TOO_BIG, "APPEND"},
	{"account is locked", MH_E_ACCOUNT_LOCKED, NULL},
	{"account locked", MH_E_ACCOUNT_LOCKED, NULL},
	{"account is disabled", MH_E_ACCOUNT_LOCKED, NULL},
	{"account has been disabled", MH_E_ACCOUNT_LOCKED, NULL},
	{"password has expired", MH_E_ACCOUNT_LOCKED, NULL},
	{"password expired", MH_E_ACCOUNT_LOCKED, NULL},
	{"mailbox is locked", MH_E_UNAVAILABLE, NULL}, /* Cyrus: another process holds it */
	{"currently reserved", MH_E_UNAVAILABLE, NULL},
	{"invalid mailbox name", MH_E_FOLDER_NAME, "CREATE APPEND"}, /* Cyrus */
	{"invalid folder name", MH_E_FOLDER_NAME, "CREATE APPEND"},
	{"name too long", MH_E_FOLDER_NAME, "CREATE APPEND"},
	{"does not exist", MH_E_FOLDER_MISSING, FOLDER_CMDS}, /* Cyrus "Mailbox does not exist" */
	{"doesn't exist", MH_E_FOLDER_MISSING, FOLDER_CMDS},  /* Dovecot, SELECT without a code */
	{"no such mailbox", MH_E_FOLDER_MISSING, FOLDER_CMDS},
	{"no such folder", MH_E_FOLDER_MISSING, FOLDER_CMDS},
	{"not found", MH_E_FOLDER_MISSING, FOLDER_CMDS},
	{"internal error", MH_E_SERVER_ERROR, NULL},
	{"System I/O error", MH_E_SERVER_ERROR, NULL}, /* Cyrus */
};

/* A NO without a known code or text: what the command was for. */
struct context_rule {
	const char *context;
	enum mh_err_code no;
};

static const struct context_rule context_rules[] = {
	{"APPEND", MH_E_MSG_REJECTED},
	{"SELECT", MH_E_FOLDER_SELECT},
	{"EXAMINE", MH_E_FOLDER_SELECT},
	{"STATUS", MH_E_FOLDER_SELECT},
	{"CREATE", MH_E_FOLDER_CREATE},
	{"LOGIN", MH_E_AUTH_FAILED},
	{"AUTHENTICATE", MH_E_AUTH_FAILED},
	{"STARTTLS", MH_E_STARTTLS_UNAVAILABLE},
};

/* "UID FETCH x" -> "FETCH"; "APPEND" -> "APPEND". */
static bool context_is(const char *context, const char *word, size_t n)
{
	if (strncasecmp(context, "UID ", 4) == 0)
		context += 4;
	return strncasecmp(context, word, n) == 0 && (context[n] == '\0' || context[n] == ' ');
}

/* True when list is NULL or names the context's command (list: space-separated). */
static bool context_in(const char *context, const char *list)
{
	if (list == NULL)
		return true;
	while (*list != '\0') {
		size_t n = strcspn(list, " ");
		if (n > 0 && context_is(context, list, n))
			return true;
		list += n;
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

void imap_err_from_reply(const struct imap_response *r, const char *context, struct mh_err *err)
{
	enum mh_err_code code;
	char text[200];
	const char *ctx = context != NULL ? context : "command";

	if (r == NULL) {
		mh_err_set(err, MH_E_INTERNAL, "%s: no reply", ctx);
		return;
	}
	if (r->status == IMAP_STATUS_OK || r->status == IMAP_STATUS_PREAUTH) {
		mh_err_clear(err);
		return;
	}
	mh_err_sanitize(text, sizeof(text), r->text != NULL ? r->text : "", r->text != NULL ? strlen(r->text) : 0);
	code = match_text(provider_texts, sizeof(provider_texts) / sizeof(provider_texts[0]), text, ctx);
	if (code == MH_E_COUNT_ && r->code != NULL) {
		for (size_t i = 0; i < sizeof(code_rules) / sizeof(code_rules[0]); i++) {
			if (strcasecmp(r->code, code_rules[i].code) == 0 && context_in(ctx, code_rules[i].contexts)) {
				code = code_rules[i].err;
				break;
			}
		}
	}
	if (code == MH_E_COUNT_)
		code = match_text(generic_texts, sizeof(generic_texts) / sizeof(generic_texts[0]), text, ctx);
	if (code == MH_E_COUNT_) {
		if (r->status == IMAP_STATUS_BAD) {
			code = MH_E_COMMAND_REJECTED;
		} else if (r->status == IMAP_STATUS_BYE) {
			code = MH_E_SERVER_BYE;
		} else {
			code = MH_E_UNAVAILABLE;
			for (size_t i = 0; i < sizeof(context_rules) / sizeof(context_rules[0]); i++) {
				if (context_is(ctx, context_rules[i].context, strlen(context_rules[i].context))) {
					code = context_rules[i].no;
					break;
				}
			}
		}
	}
	if (r->code != NULL)
		mh_err_set(err, code, "%s: [%s] %s", ctx, r->code, text);
	else
		mh_err_set(err, code, "%s: %s", ctx, text);
}

/* MSG_TOO_BIG for an APPEND: the message's size and the server's APPENDLIMIT (RFC 7889)
 * go in front of the server's text, where the detail's length limit cannot cut them off:
 * "APPEND: the message is 7000000 bytes, the server's limit is 6000000 bytes: [LIMIT] ...". */
static void too_big_sizes(const struct imap_client *c, const struct imap_append *a, struct mh_err *err)
{
	char server[MH_ERR_DETAIL_MAX], what[96], limit[64] = "";
	const char *lim = imap_client_cap_value(c, "APPENDLIMIT");
	const char *p = err->detail;
	uint64_t v;

	if (a->max_size == 0)
		return;
	if (strncmp(p, "APPEND: ", 8) == 0)
		p += 8;
	snprintf(server, sizeof(server), "%s", p);
	if (a->nmsgs > 1)
		snprintf(what, sizeof(what), "the largest of %u messages is %llu bytes", a->nmsgs,
			 (unsigned long long)a->max_size);
	else
		snprintf(what, sizeof(what), "the message is %llu bytes", (unsigned long long)a->max_size);
	if (lim != NULL && imap_parse_number(lim, strlen(lim), UINT64_MAX, &v) == 0)
		snprintf(limit, sizeof(limit), ", the server's limit is %llu bytes", (unsigned long long)v);
	mh_err_set(err, MH_E_MSG_TOO_BIG, "APPEND: %s%s: %s", what, limit, server);
}

struct appenduid_fill {
	uint32_t *uids;
	size_t count, max;
};

static int appenduid_range(void *ctx, uint32_t lo, uint32_t hi)
{
	struct appenduid_fill *f = ctx;

	for (uint64_t u = lo; u <= hi && f->count < f->max; u++)
		f->uids[f->count++] = (uint32_t)u;
	return f->count == f->max;
}

static int take_uid(void *ctx, uint32_t lo, uint32_t hi)
{
	*(uint32_t *)ctx = lo == hi ? lo : 0;
	return 0;
}

int imap_reply_appenduid(const struct imap_response *r, uint32_t *uidvalidity_r, uint32_t *uids_r, size_t max)
{
	struct appenduid_fill fill = {uids_r, 0, max};
	uint32_t uidvalidity = 0;
	size_t n;

	if (r == NULL || r->code == NULL || strcasecmp(r->code, "APPENDUID") != 0 || r->code_args == NULL)
		return -1;
	/* "uidvalidity uid-set" (RFC 4315 4): the first word one number, no set */
	n = strcspn(r->code_args, " ,:");
	if (r->code_args[n] != ' ' || imap_uid_set_walk(r->code_args, n, take_uid, &uidvalidity) < 0 ||
	    uidvalidity == 0)
		return -1;
	if (max > 0 && imap_uid_set_walk(r->code_args + n + 1, strlen(r->code_args + n + 1), appenduid_range, &fill) < 0)
		return -1;
	*uidvalidity_r = uidvalidity;
	return (int)(fill.count > INT_MAX ? INT_MAX : fill.count);
}

/* ---------------------------------------------------------------------------------------
 * input */

static struct imap_cmd *find_by_tag(struct imap_client *c, const char *tag)
{
	struct imap_cmd *cmd;

	if (tag == NULL)
		return NULL;
	TAILQ_FOREACH(cmd, &c->cmds, link) {
		if (cmd->state != CMD_QUEUED && strcmp(cmd->tag, tag) == 0)
			return cmd;
	}
	return NULL;
}

static void bye_remember(struct imap_client *c, const struct imap_response *r)
{
	char text[200];

	mh_err_sanitize(text, sizeof(text), r->text != NULL ? r->text : "", r->text != NULL ? strlen(r->text) : 0);
	imap_err_from_reply(r, "BYE", &c->bye_err);
	/* A BYE ends the session: passing troubles (throttling, a busy or failing server) and
	 * account problems ("account is disabled") keep their code, anything else is a BYE. */
	enum mh_err_class cls = mh_err_class_of(c->bye_err.code);
	if (cls != MH_CLASS_CONNECTION && cls != MH_CLASS_ACCOUNT)
		mh_err_set(&c->bye_err, MH_E_SERVER_BYE, "BYE %s", text);
	redact_secrets(c, &c->bye_err);
	c->bye_seen = true;
}

static void on_greeting(struct imap_client *c, const struct imap_response *r)
{
	if (c->conn_timer != NULL)
		evtimer_del(c->conn_timer);
	if (r->kind != IMAP_RESP_UNTAGGED) {
		fail_with(c, MH_E_PROTOCOL, "the server's greeting is not an untagged status response");
		return;
	}
	switch (r->status) {
	case IMAP_STATUS_OK:
		break;
	case IMAP_STATUS_PREAUTH:
		c->authenticated = true;
		break;
	case IMAP_STATUS_BYE:
		bye_remember(c, r);
		fail_connection(c, &c->bye_err);
		return;
	default:
		fail_with(c, MH_E_PROTOCOL, "unexpected greeting \"%s\"", r->name != NULL ? r->name : "");
		return;
	}
	if (r->code != NULL && strcasecmp(r->code, "CAPABILITY") == 0 && r->code_args != NULL)
		caps_set_text(c, r->code_args);
	open_next(c);
}

static void dispatch_tagged(struct imap_client *c, const struct imap_response *r)
{
	struct imap_cmd *cmd = find_by_tag(c, r->tag);
	struct mh_err err;
	bool desync = false;
	char tag[16];

	if (cmd == NULL) {
		fail_with(c, MH_E_PROTOCOL, "tagged response for unknown tag \"%.20s\"", r->tag != NULL ? r->tag : "");
		return;
	}
	if (r->status != IMAP_STATUS_OK && r->status != IMAP_STATUS_NO && r->status != IMAP_STATUS_BAD) {
		fail_with(c, MH_E_PROTOCOL, "tagged response %s is not OK, NO or BAD", cmd->tag);
		return;
	}
	if (r->status == IMAP_STATUS_OK && r->code != NULL && strcasecmp(r->code, "CAPABILITY") == 0 &&
	    r->code_args != NULL)
		caps_set_text(c, r->code_args);
	if (cmd == c->writer && !cmd->wait_cont)
		desync = true; /* the server answered a command we are still writing */
	/* Refused before a synchronizing literal: the rest of the command is never sent. */
	snprintf(tag, sizeof(tag), "%s", cmd->tag);
	if (r->status == IMAP_STATUS_OK) {
		complete_cmd(c, cmd, r, NULL);
	} else {
		imap_err_from_reply(r, cmd->context, &err);
		if (err.code == MH_E_MSG_TOO_BIG && cmd->append != NULL)
			too_big_sizes(c, cmd->append, &err);
		redact_secrets(c, &err);
		complete_cmd(c, cmd, r, &err);
	}
	if (client_gone(c) || c->phase == PH_CLOSED)
		return;
	if (desync)
		fail_with(c, MH_E_PROTOCOL, "the server answered %s before the command was complete", tag);
	else
		pump(c);
}

static void dispatch_untagged(struct imap_client *c, const struct imap_response *r)
{
	struct imap_cmd *cmd;

	if (r->status == IMAP_STATUS_BYE)
		bye_remember(c, r);
	if (r->status == IMAP_STATUS_NONE && r->name != NULL && strcmp(r->name, "CAPABILITY") == 0)
		caps_set_args(c, r);
	if (r->status == IMAP_STATUS_OK && r->code != NULL) {
		if (strcasecmp(r->code, "CAPABILITY") == 0 && r->code_args != NULL)
			caps_set_text(c, r->code_args);
		else if (strcasecmp(r->code, "ALERT") == 0)
			mh_warn(log_comp, "%s: server alert: %.200s", c->name, r->text != NULL ? r->text : "");
	}
	TAILQ_FOREACH(cmd, &c->cmds, link) {
		if (cmd->state != CMD_QUEUED && cmd->h.untagged != NULL) {
			cmd->h.untagged(cmd->h.ctx, r);
			return;
		}
	}
}

static void dispatch_response(struct imap_client *c, const struct imap_response *r)
{
	trace_response(c, r);
	if (c->phase == PH_GREETING) {
		on_greeting(c, r);
		return;
	}
	switch (r->kind) {
	case IMAP_RESP_CONTINUATION:
		if (c->writer == NULL || !c->writer->wait_cont) {
			fail_with(c, MH_E_PROTOCOL, "unexpected continuation request");
			return;
		}
		c->writer->wait_cont = false;
		pump(c);
		break;
	case IMAP_RESP_TAGGED:
		dispatch_tagged(c, r);
		break;
	case IMAP_RESP_UNTAGGED:
		dispatch_untagged(c, r);
		break;
	}
}

/* The input to read from: the connection's, or what was left when the server closed. */
static struct evbuffer *input_of(const struct imap_client *c)
{
	return c->tr != NULL ? transport_input(c->tr) : c->tail_in;
}

static void dispatch_literal(struct imap_client *c, enum imap_ev k, const struct imap_event *ev,
			     struct evbuffer *in)
{
	struct imap_cmd *cmd;
	size_t before = evbuffer_get_length(in), after;

	TAILQ_FOREACH(cmd, &c->cmds, link) {
		if (cmd->state != CMD_QUEUED && cmd->h.literal != NULL)
			break;
	}
	if (cmd == NULL) {
		if (k == IMAP_EV_LITERAL_DATA)
			evbuffer_drain(in, ev->len);
		return;
	}
	cmd->h.literal(cmd->h.ctx, k, ev, in);
	if (k != IMAP_EV_LITERAL_DATA || client_gone(c) || c->phase == PH_CLOSED || input_of(c) != in)
		return;
	after = evbuffer_get_length(in);
	if (after > before - ev->len) {
		evbuffer_drain(in, after - (before - ev->len)); /* the handler left some: drop them */
	} else if (after < before - ev->len) {
		fail_with(c, MH_E_INTERNAL, "a literal handler took more bytes than the literal holds");
	}
}

static void process_input(struct imap_client *c)
{
	struct evbuffer *in = input_of(c);

	if (in == NULL || c->paused || client_gone(c) || c->phase < PH_GREETING || c->phase == PH_CLOSED)
		return;
	for (;;) {
		struct imap_event ev;
		struct mh_err err;
		enum imap_ev k;

		memset(&ev, 0, sizeof(ev));
		mh_err_clear(&err);
		k = imap_parser_next(c->parser, in, &ev, &err);
		if (k == IMAP_EV_NEED_MORE)
			break;
		if (k == IMAP_EV_ERROR) {
			if (err.code == MH_E_OK)
				mh_err_set(&err, MH_E_PROTOCOL, "malformed response");
			fail_connection(c, &err);
			return;
		}
		if (k == IMAP_EV_RESPONSE)
			dispatch_response(c, ev.resp);
		else
			dispatch_literal(c, k, &ev, in);
		/* STARTTLS swaps the transport's buffers: the old input is gone */
		if (client_gone(c) || input_of(c) != in || c->phase == PH_CLOSED || c->paused)
			return;
	}
	if (c->eof_pending) {
		c->eof_pending = false;
		fail_connection(c, &c->eof_err);
	}
}

/* ---------------------------------------------------------------------------------------
 * event loop entry points */

static void check_drain(struct imap_client *c)
{
	if (c->drain_cb != NULL && imap_client_output_pending(c) <= c->drain_low) {
		imap_drain_cb_t *cb = c->drain_cb;
		c->drain_cb = NULL;
		cb(c->drain_ctx);
	}
}

static void arm_conn_timer(struct imap_client *c)
{
	struct timeval tv;

	net_ms_to_tv(c->connect_timeout_ms, &tv);
	evtimer_add(c->conn_timer, &tv);
}

/* TCP is up, and TLS with implicit TLS: the greeting comes next. */
static void on_connected(struct imap_client *c)
{
	c->tls_active = transport_tls_active(c->tr);
	set_phase(c, PH_GREETING);
}

/* The STARTTLS handshake is complete. */
static void on_tls_ready(struct imap_client *c)
{
	c->tls_active = true;
	/* RFC 3501 6.2.1: capabilities learned before TLS are discarded. */
	evtimer_del(c->conn_timer);
	caps_clear(c);
	open_next(c);
}

/* The transport has failed or the server has closed; err says why. */
static void on_closed(struct imap_client *c, const struct mh_err *err)
{
	struct evbuffer *in = transport_input(c->tr);
	struct mh_err why = *err;

	/* Connecting, a TLS handshake, or a server that stopped reading what we wrote: the
	 * transport's words say it all, and answers still buffered change nothing. */
	if (c->phase < PH_GREETING || err->code == MH_E_TIMEOUT) {
		fail_connection(c, err);
		return;
	}
	if (c->bye_seen)
		why = c->bye_err; /* the server said why it hung up */
	if (in == NULL || evbuffer_get_length(in) == 0) {
		fail_connection(c, &why);
		return;
	}
	/* Answers may still be in the buffer: keep them and read them first, even if reading
	 * is paused now. */
	c->tail_in = evbuffer_new();
	if (c->tail_in == NULL)
		abort();
	evbuffer_add_buffer(c->tail_in, in);
	transport_free(&c->tr);
	c->eof_pending = true;
	c->eof_err = why;
	process_input(c);
}

static void on_transport(void *ctx, enum transport_event ev, const struct mh_err *err)
{
	struct imap_client *c = ctx;

	client_ref(c);
	if (!client_gone(c)) {
		switch (ev) {
		case TRANSPORT_TLS_BEGIN:
			set_phase(c, PH_TLS);
			break;
		case TRANSPORT_CONNECTED:
			on_connected(c);
			break;
		case TRANSPORT_TLS_READY:
			on_tls_ready(c);
			break;
		case TRANSPORT_READ:
			c->last_activity_ms = net_now_ms();
			process_input(c);
			break;
		case TRANSPORT_WRITTEN:
			check_drain(c);
			break;
		case TRANSPORT_CLOSED:
			on_closed(c, err);
			break;
		}
	}
	client_unref(c);
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct imap_client *c = arg;

	(void)fd;
	(void)what;
	client_ref(c);
	switch (c->phase) {
	case PH_CONNECTING:
		fail_with(c, MH_E_CONNECT_TIMEOUT, "%s port %u: no connection within %u ms", c->host, c->port,
			  c->connect_timeout_ms);
		break;
	case PH_TLS:
		fail_with(c, MH_E_CONNECT_TIMEOUT, "%s port %u: no TLS handshake within %u ms", c->host,
			  c->port, c->connect_timeout_ms);
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
	struct imap_client *c = arg;
	uint64_t now = net_now_ms(), elapsed;

	(void)fd;
	(void)what;
	client_ref(c);
	if (c->phase == PH_CLOSED || client_gone(c) || c->tr == NULL || !awaiting_server(c))
		goto out;
	if (c->paused || transport_output_pending(c->tr) > 0) {
		/* We are the slow side (backpressure, or still writing): not the server's fault.
		 * Stalled writes are caught by the transport's write timeout. */
		c->last_activity_ms = now;
		arm_cmd_timer(c, c->command_timeout_ms);
		goto out;
	}
	elapsed = now - c->last_activity_ms;
	if (elapsed >= c->command_timeout_ms)
		fail_with(c, MH_E_TIMEOUT, "no answer from the server for %u ms", c->command_timeout_ms);
	else
		arm_cmd_timer(c, c->command_timeout_ms - elapsed);
out:
	client_unref(c);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct imap_client *c = arg;

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
	if (c->drain_check && !client_gone(c)) {
		c->drain_check = false;
		check_drain(c);
	}
	client_unref(c);
}

/* ---------------------------------------------------------------------------------------
 * the open sequence: greeting, [CAPABILITY], [STARTTLS, CAPABILITY], LOGIN, [CAPABILITY] */

static void send_internal(struct imap_client *c, imap_done_cb_t *done, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void send_internal(struct imap_client *c, imap_done_cb_t *done, const char *fmt, ...)
{
	struct imap_cmd_handlers h = {.done = done, .ctx = c};
	struct imap_cmd *cmd = cmd_new(c, &h, true);
	struct mh_err err;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cmd_vformat(c, cmd, false, &err, fmt, ap);
	va_end(ap);
	if (r < 0) {
		cmd_free(c, cmd);
		fail_connection(c, &err);
		return;
	}
	TAILQ_INSERT_TAIL(&c->cmds, cmd, link);
	pump(c);
}

static void capability_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct imap_client *c = ctx;

	(void)tagged;
	if (c->phase == PH_CLOSED || client_gone(c))
		return;
	if (err != NULL) {
		fail_connection(c, err);
		return;
	}
	c->caps_known = true; /* even if no untagged CAPABILITY came */
	open_next(c);
}

static void starttls_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct imap_client *c = ctx;
	struct evbuffer *in;
	struct mh_err e;

	(void)tagged;
	if (c->phase == PH_CLOSED || client_gone(c))
		return;
	if (err != NULL) {
		if (tagged != NULL && c->allow_plaintext) {
			mh_warn(log_comp, "%s: STARTTLS refused (%s); going on in plaintext", c->name, err->detail);
			c->plaintext_accepted = true;
			open_next(c);
			return;
		}
		fail_with(c, MH_E_STARTTLS_UNAVAILABLE, "%s", err->detail);
		return;
	}
	/* Anything the server sent after its OK was sent in plaintext and would be taken as
	 * coming from the TLS peer: a STARTTLS injection (CVE-2011-0411 style). */
	in = c->tr != NULL ? transport_input(c->tr) : NULL;
	if (in == NULL || evbuffer_get_length(in) > 0) {
		fail_with(c, MH_E_PROTOCOL, "the server sent data after its STARTTLS OK (injection attempt?)");
		return;
	}
	c->starttls_used = true;
	set_phase(c, PH_TLS);
	if (transport_start_tls(c->tr, &e) < 0) {
		fail_connection(c, &e);
		return;
	}
	arm_conn_timer(c); /* the handshake runs under the connect timeout */
}

static void login_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct imap_client *c = ctx;

	(void)tagged;
	if (c->phase == PH_CLOSED || client_gone(c))
		return;
	if (err != NULL) {
		fail_connection(c, err);
		return;
	}
	c->authenticated = true;
	open_next(c);
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* out must hold 4 * ((n + 2) / 3) + 1 bytes. */
static void base64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64chars[v >> 18 & 63];
		out[o++] = b64chars[v >> 12 & 63];
		out[o++] = b64chars[v >> 6 & 63];
		out[o++] = b64chars[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);
		out[o++] = b64chars[v >> 18 & 63];
		out[o++] = b64chars[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

/* AUTHENTICATE PLAIN (RFC 4616), with the initial response inline under SASL-IR. */
static void auth_plain(struct imap_client *c)
{
	size_t ul = strlen(c->user), pl = strlen(c->password), n = ul + pl + 2;
	unsigned char *raw = malloc(n);
	char *b64 = malloc(4 * ((n + 2) / 3) + 1);
	struct imap_cmd_handlers h = {.done = login_done, .ctx = c};
	struct imap_cmd *cmd;

	if (raw == NULL || b64 == NULL)
		abort();
	raw[0] = '\0';
	memcpy(raw + 1, c->user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, c->password, pl);
	base64_encode(raw, n, b64);
	cmd = cmd_new(c, &h, true);
	snprintf(cmd->context, sizeof(cmd->context), "AUTHENTICATE");
	cmd_str(c, cmd, cmd->tag);
	if (imap_client_has_cap(c, "SASL-IR")) {
		cmd_str(c, cmd, " AUTHENTICATE PLAIN ");
	} else {
		cmd_str(c, cmd, " AUTHENTICATE PLAIN\r\n");
		cmd_wait_after_last(cmd);
	}
	cmd_text(c, cmd, b64, strlen(b64), true);
	cmd_str(c, cmd, "\r\n");
	explicit_bzero(raw, n);
	explicit_bzero(b64, strlen(b64));
	free(raw);
	free(b64);
	TAILQ_INSERT_TAIL(&c->cmds, cmd, link);
	pump(c);
}

static void login_send(struct imap_client *c)
{
	struct imap_cmd_handlers h = {.done = login_done, .ctx = c};
	struct imap_cmd *cmd;
	if (c->user == NULL || c->password == NULL) {
		fail_with(c, MH_E_NO_PASSWORD, "no user name or password for %s", c->host);
		return;
	}
	set_phase(c, PH_LOGIN);
	c->caps_known = false; /* refreshed by the OK's [CAPABILITY] or a new CAPABILITY */
	if (imap_client_has_cap(c, "LOGINDISABLED")) {
		if (!imap_client_has_cap(c, "AUTH=PLAIN")) {
			/* RFC 3501 6.2.3: LOGINDISABLED before TLS usually means "not in plaintext" */
			if (!c->tls_active)
				fail_with(c, MH_E_PLAINTEXT_REFUSED,
					  "the server advertises LOGINDISABLED on an unencrypted connection");
			else
				fail_with(c, MH_E_AUTH_NO_MECHANISM, "the server advertises LOGINDISABLED and no AUTH=PLAIN");
			return;
		}
		auth_plain(c);
		return;
	}
	cmd = cmd_new(c, &h, true);
	snprintf(cmd->context, sizeof(cmd->context), "LOGIN");
	cmd_str(c, cmd, cmd->tag);
	cmd_str(c, cmd, " LOGIN ");
	cmd_astring(c, cmd, c->user, true);
	cmd_str(c, cmd, " ");
	cmd_astring(c, cmd, c->password, true);
	cmd_str(c, cmd, "\r\n");
	TAILQ_INSERT_TAIL(&c->cmds, cmd, link);
	pump(c);
}

static void open_next(struct imap_client *c)
{
	if (c->security == MH_SEC_STARTTLS && !c->tls_active && !c->plaintext_accepted) {
		if (!c->authenticated) {
			if (!c->caps_known) {
				set_phase(c, PH_CAPABILITY);
				send_internal(c, capability_done, "CAPABILITY");
				return;
			}
			if (imap_client_has_cap(c, "STARTTLS")) {
				set_phase(c, PH_STARTTLS);
				send_internal(c, starttls_done, "STARTTLS");
				return;
			}
		}
		if (!c->allow_plaintext) {
			if (c->authenticated)
				fail_with(c, MH_E_STARTTLS_UNAVAILABLE, "%s sent PREAUTH before STARTTLS", c->host);
			else
				fail_with(c, MH_E_STARTTLS_UNAVAILABLE, "%s does not offer STARTTLS", c->host);
			return;
		}
		mh_warn(log_comp, "%s: %s does not offer STARTTLS; going on in plaintext", c->name, c->host);
		c->plaintext_accepted = true;
	}
	if (!c->caps_known) {
		set_phase(c, PH_CAPABILITY);
		send_internal(c, capability_done, "CAPABILITY");
		return;
	}
	if (!c->authenticated) {
		login_send(c);
		return;
	}
	set_phase(c, PH_READY);
	if (c->open_done != NULL) {
		imap_done_cb_t *done = c->open_done;
		c->open_done = NULL;
		done(c->open_ctx, NULL, NULL);
	}
	if (!client_gone(c) && c->phase == PH_READY)
		pump(c);
}

/* ---------------------------------------------------------------------------------------
 * public API */

struct imap_client *imap_client_new(struct event_base *base, const struct imap_client_opts *opts)
{
	struct imap_client *c = calloc(1, sizeof(*c));
	struct imap_parser_limits lim;

	if (c == NULL)
		abort();
	c->base = base;
	c->name = xstrdup(opts->name != NULL ? opts->name : "imap");
	c->host = xstrdup(opts->host != NULL ? opts->host : "");
	c->tls_name = xstrdup(opts->tls_name != NULL && opts->tls_name[0] != '\0' ? opts->tls_name : c->host);
	c->user = xstrdup(opts->user);
	c->password = xstrdup(opts->password);
	c->port = opts->port;
	c->security = opts->security;
	c->allow_plaintext = opts->allow_plaintext;
	c->tls = opts->tls;
	c->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	c->command_timeout_ms = opts->command_timeout_ms ? opts->command_timeout_ms : DEFAULT_COMMAND_TIMEOUT_MS;
	c->trace = opts->trace;
	c->trace_ctx = opts->trace_ctx;
	imap_parser_limits_default(&lim);
	if (opts->limits.max_line)
		lim.max_line = opts->limits.max_line;
	if (opts->limits.max_inline_literal)
		lim.max_inline_literal = opts->limits.max_inline_literal;
	if (opts->limits.max_literal)
		lim.max_literal = opts->limits.max_literal;
	if (opts->limits.max_depth)
		lim.max_depth = opts->limits.max_depth;
	if (opts->limits.max_args)
		lim.max_args = opts->limits.max_args;
	c->parser = imap_parser_new(&lim);
	c->conn_timer = evtimer_new(base, on_conn_timer, c);
	c->cmd_timer = evtimer_new(base, on_cmd_timer, c);
	c->defer_ev = event_new(base, -1, 0, on_deferred, c);
	if (c->parser == NULL || c->conn_timer == NULL || c->cmd_timer == NULL || c->defer_ev == NULL)
		abort();
	TAILQ_INIT(&c->cmds);
	LIST_INIT(&c->appends);
	c->phase = PH_NEW;
	return c;
}

static void client_destroy(struct imap_client *c)
{
	struct mh_err err;
	struct imap_append *a;

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
	while ((a = LIST_FIRST(&c->appends)) != NULL) {
		LIST_REMOVE(a, link);
		free(a);
	}
	event_free(c->conn_timer);
	event_free(c->cmd_timer);
	event_free(c->defer_ev);
	imap_parser_free(&c->parser);
	caps_clear(c);
	for (size_t i = 0; i < c->ndisabled; i++)
		free(c->disabled_caps[i]);
	free(c->disabled_caps);
	if (c->tail_in != NULL)
		evbuffer_free(c->tail_in);
	wipe_free(&c->password);
	wipe_free(&c->user);
	free(c->name);
	free(c->host);
	free(c->tls_name);
	free(c);
}

void imap_client_free(struct imap_client **cp)
{
	struct imap_client *c = *cp;

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

void imap_client_open(struct imap_client *c, imap_done_cb_t *done, void *ctx)
{
	struct transport_opts to = {
		.name = c->name,
		.host = c->host,
		.port = c->port,
		.tls_name = c->tls_name,
		.tls = c->tls,
		.implicit_tls = c->security == MH_SEC_TLS,
		/* a server that stops reading is as stuck as one that stops answering */
		.write_timeout_ms = c->command_timeout_ms,
	};
	struct mh_err err;

	if (c->phase != PH_NEW) {
		mh_err_set(&err, MH_E_INTERNAL, "imap_client_open called twice");
		if (c->phase == PH_CLOSED) {
			/* report through the deferred path, never from inside this call */
			if (c->open_done == NULL) {
				c->open_done = done;
				c->open_ctx = ctx;
			}
			c->complete_pending = true;
			schedule(c);
		} else {
			mh_error(log_comp, "%s: imap_client_open called twice", c->name);
		}
		return;
	}
	c->open_done = done;
	c->open_ctx = ctx;
	set_phase(c, PH_CONNECTING);
	if (c->host[0] == '\0') {
		fail_with(c, MH_E_BAD_URL, "no host name");
		return;
	}
	if (c->security != MH_SEC_PLAIN && c->tls == NULL) {
		fail_with(c, MH_E_INTERNAL, "TLS requested without a TLS context");
		return;
	}
	c->tr = transport_new(c->base, &to, on_transport, c);
	transport_pause_reading(c->tr, c->paused);
	/* TRANSPORT_WRITTEN whenever the output empties; imap_client_on_drain() moves the mark */
	transport_watch_output(c->tr, 0);
	arm_conn_timer(c);
	if (transport_connect(c->tr, &err) < 0)
		fail_connection(c, &err);
}

bool imap_client_is_open(const struct imap_client *c)
{
	return c != NULL && c->phase == PH_READY && !c->free_requested && !c->destroying;
}

static int closed_err(const struct imap_client *c, struct mh_err *err)
{
	if (c->fail_err.code != MH_E_OK) {
		if (err != NULL)
			*err = c->fail_err;
		return -1;
	}
	return mh_err_set(err, MH_E_CONNECTION_LOST, "the connection is closed");
}

int imap_client_vcmd(struct imap_client *c, const struct imap_cmd_handlers *h, struct mh_err *err, const char *fmt,
		     va_list ap)
{
	struct imap_cmd *cmd;

	if (c->phase == PH_CLOSED || client_gone(c))
		return closed_err(c, err);
	cmd = cmd_new(c, h, false);
	if (cmd_vformat(c, cmd, false, err, fmt, ap) < 0) {
		cmd_free(c, cmd);
		return -1;
	}
	TAILQ_INSERT_TAIL(&c->cmds, cmd, link);
	pump(c);
	return 0;
}

int imap_client_cmd(struct imap_client *c, const struct imap_cmd_handlers *h, struct mh_err *err,
		    const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = imap_client_vcmd(c, h, err, fmt, ap);
	va_end(ap);
	return r;
}

/* imap_client_run(): the caller's callbacks, and the completion it waits for. */
struct run_wait {
	imap_untagged_cb_t *untagged;
	imap_literal_cb_t *literal;
	imap_untagged_cb_t *tagged;
	void *ctx;
	bool done, ok;
	struct mh_err err;
};

static void run_untagged(void *ctx, const struct imap_response *resp)
{
	struct run_wait *w = ctx;

	w->untagged(w->ctx, resp);
}

static void run_literal(void *ctx, enum imap_ev kind, const struct imap_event *ev, struct evbuffer *in)
{
	struct run_wait *w = ctx;

	w->literal(w->ctx, kind, ev, in);
}

static void run_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct run_wait *w = ctx;

	w->done = true;
	w->ok = err == NULL;
	if (err != NULL)
		w->err = *err;
	else if (tagged != NULL && w->tagged != NULL)
		w->tagged(w->ctx, tagged);
}

static int run_v(struct event_base *base, struct imap_client *c, struct run_wait *w, struct mh_err *err,
		 const char *fmt, va_list ap)
{
	struct imap_cmd_handlers h = {.untagged = w->untagged != NULL ? run_untagged : NULL,
				      .literal = w->literal != NULL ? run_literal : NULL,
				      .done = run_done,
				      .ctx = w};

	if (imap_client_vcmd(c, &h, err, fmt, ap) < 0)
		return -1;
	if (imap_run_until(base, &w->done) < 0 && !w->done)
		return mh_err_set(err, MH_E_INTERNAL, "the event loop ended while waiting for a reply");
	if (w->ok)
		return 1;
	*err = w->err;
	return mh_err_class_of(w->err.code) == MH_CLASS_CONNECTION || w->err.code == MH_E_CANCELED ? -1 : 0;
}

int imap_client_run(struct event_base *base, struct imap_client *c, imap_untagged_cb_t *untagged,
		    imap_literal_cb_t *literal, void *ctx, struct mh_err *err, const char *fmt, ...)
{
	struct run_wait w = {.untagged = untagged, .literal = literal, .ctx = ctx};
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = run_v(base, c, &w, err, fmt, ap);
	va_end(ap);
	return r;
}

int imap_client_run_tagged(struct event_base *base, struct imap_client *c, imap_untagged_cb_t *untagged,
			   imap_untagged_cb_t *tagged_ok, void *ctx, struct mh_err *err, const char *fmt, ...)
{
	struct run_wait w = {.untagged = untagged, .tagged = tagged_ok, .ctx = ctx};
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = run_v(base, c, &w, err, fmt, ap);
	va_end(ap);
	return r;
}

/* --- APPEND ---------------------------------------------------------------------------- */

struct imap_append *imap_client_append_start(struct imap_client *c, const char *mailbox,
					     const struct imap_cmd_handlers *h, struct mh_err *err)
{
	struct imap_append *a;
	struct imap_cmd *cmd;

	if (c->phase == PH_CLOSED || client_gone(c)) {
		closed_err(c, err);
		return NULL;
	}
	if (mailbox == NULL) {
		mh_err_set(err, MH_E_INTERNAL, "APPEND without a mailbox");
		return NULL;
	}
	cmd = cmd_new(c, h, false);
	snprintf(cmd->context, sizeof(cmd->context), "APPEND");
	cmd->open = true;
	cmd_str(c, cmd, cmd->tag);
	cmd_str(c, cmd, " APPEND ");
	cmd_astring(c, cmd, mailbox, false);
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		abort();
	a->c = c;
	a->cmd = cmd;
	cmd->append = a;
	LIST_INSERT_HEAD(&c->appends, a, link);
	TAILQ_INSERT_TAIL(&c->cmds, cmd, link);
	pump(c);
	return a;
}

/* Flags are atoms (RFC 3501 9: flag-keyword / "\" atom), separated by single spaces. */
static bool flag_char_ok(unsigned char ch)
{
	return ch == '\\' || is_atom_char(ch);
}

static int append_flags(struct imap_client *c, struct imap_cmd *cmd, const char *flags, struct mh_err *err)
{
	const char *p = flags;
	bool first = true;
	char *buf, *o;

	if (flags == NULL || flags[0] == '\0')
		return 0;
	buf = malloc(strlen(flags) + 4);
	if (buf == NULL)
		abort();
	o = buf;
	*o++ = ' ';
	*o++ = '(';
	while (*p != '\0') {
		const char *e;
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		e = p;
		while (*e != '\0' && *e != ' ') {
			if (!flag_char_ok((unsigned char)*e) || (*e == '\\' && e != p)) {
				free(buf);
				return mh_err_set(err, MH_E_INTERNAL, "APPEND flags \"%.60s\" are not valid", flags);
			}
			e++;
		}
		/* \Recent is the server's to set (RFC 3501 2.3.2): never send it. */
		if (!((size_t)(e - p) == 7 && strncasecmp(p, "\\Recent", 7) == 0)) {
			if (!first)
				*o++ = ' ';
			memcpy(o, p, (size_t)(e - p));
			o += e - p;
			first = false;
		}
		p = e;
	}
	*o++ = ')';
	if (!first)
		cmd_text(c, cmd, buf, (size_t)(o - buf), false);
	free(buf);
	return 0;
}

int imap_append_add(struct imap_append *a, const char *flags, const char *internaldate, uint64_t size,
		    struct mh_err *err)
{
	struct imap_client *c = a->c;
	struct imap_cmd *cmd = a->cmd;

	if (c == NULL || cmd == NULL)
		return mh_err_set(err, MH_E_CANCELED, "the APPEND has already completed");
	if (a->lit_left > 0) {
		fail_with(c, MH_E_CONNECTION_LOST, "APPEND message %u is %llu bytes short", a->nmsgs,
			  (unsigned long long)a->lit_left);
		return mh_err_set(err, MH_E_CONNECTION_LOST, "APPEND message %u is %llu bytes short", a->nmsgs,
				  (unsigned long long)a->lit_left);
	}
	if (a->nmsgs > 0 && !imap_client_has_cap(c, "MULTIAPPEND"))
		return mh_err_set(err, MH_E_SERVER_CAPABILITY, "the server does not offer MULTIAPPEND");
	if (internaldate != NULL) {
		size_t n = strlen(internaldate);
		if (n == 0 || n > 64 || strpbrk(internaldate, "\"\\\r\n") != NULL)
			return mh_err_set(err, MH_E_INTERNAL, "APPEND date \"%.64s\" is not valid", internaldate);
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)internaldate[i] < 0x20 || (unsigned char)internaldate[i] >= 0x7f)
				return mh_err_set(err, MH_E_INTERNAL, "APPEND date is not printable");
	}
	if (append_flags(c, cmd, flags, err) < 0)
		return -1;
	if (internaldate != NULL) {
		cmd_str(c, cmd, " \"");
		cmd_str(c, cmd, internaldate);
		cmd_str(c, cmd, "\"");
	}
	cmd_str(c, cmd, " ");
	cmd_literal_header(c, cmd, size, false);
	seg_push(cmd, SEG_LITERAL, size, false);
	a->lit_left = size;
	if (size > a->max_size)
		a->max_size = size;
	a->nmsgs++;
	pump(c);
	return 0;
}

static bool append_live(struct imap_append *a)
{
	return a->c != NULL && a->cmd != NULL && a->c->phase != PH_CLOSED && !client_gone(a->c);
}

/* Queues the staged bytes as one buffer chain (so one TLS record). */
static void append_flush_stage(struct imap_append *a)
{
	if (a->staged == 0)
		return;
	evbuffer_add(a->cmd->data, a->stage, a->staged);
	a->staged = 0;
}

/* Takes n literal bytes from src or data (one of them), staging them into full chunks;
 * the last chunk of a message is queued at once. */
static void append_take(struct imap_append *a, struct evbuffer *src, const unsigned char *data, size_t n)
{
	if (!append_live(a)) {
		if (src != NULL)
			evbuffer_drain(src, n);
		return;
	}
	if (n > a->lit_left) {
		if (src != NULL)
			evbuffer_drain(src, n);
		fail_with(a->c, MH_E_INTERNAL, "APPEND got more bytes than announced");
		return;
	}
	a->lit_left -= n;
	a->c->held += n;
	while (n > 0) {
		size_t k = APPEND_STAGE_SIZE - a->staged;
		if (k > n)
			k = n;
		if (src != NULL)
			evbuffer_remove(src, a->stage + a->staged, k);
		else
			memcpy(a->stage + a->staged, data, k);
		data = data != NULL ? data + k : NULL;
		a->staged += k;
		n -= k;
		if (a->staged == APPEND_STAGE_SIZE)
			append_flush_stage(a);
	}
	if (a->lit_left == 0)
		append_flush_stage(a);
	pump(a->c);
}

void imap_append_data(struct imap_append *a, struct evbuffer *src, size_t n)
{
	append_take(a, src, NULL, n);
}

void imap_append_data_mem(struct imap_append *a, const void *data, size_t n)
{
	append_take(a, NULL, data, n);
}

void imap_append_finish(struct imap_append *a)
{
	struct imap_client *c = a->c;
	struct imap_cmd *cmd = a->cmd;

	if (c != NULL)
		LIST_REMOVE(a, link);
	if (cmd != NULL)
		cmd->append = NULL;
	if (append_live(a)) {
		if (a->lit_left > 0) {
			/* We owe the server bytes we do not have: the only way out is to hang up. */
			fail_with(c, MH_E_CONNECTION_LOST, "APPEND message %u is %llu bytes short", a->nmsgs,
				  (unsigned long long)a->lit_left);
		} else if (a->nmsgs == 0) {
			fail_with(c, MH_E_INTERNAL, "APPEND finished without a message");
		} else {
			cmd_str(c, cmd, "\r\n");
			cmd->open = false;
			pump(c);
		}
	}
	free(a);
}

/* --- flow control ---------------------------------------------------------------------- */

size_t imap_client_output_pending(const struct imap_client *c)
{
	return c->held + (c->tr != NULL ? transport_output_pending(c->tr) : 0);
}

void imap_client_on_drain(struct imap_client *c, size_t low_water, imap_drain_cb_t *cb, void *ctx)
{
	if (c->phase == PH_CLOSED || client_gone(c))
		return;
	c->drain_cb = cb;
	c->drain_ctx = ctx;
	c->drain_low = low_water;
	if (c->tr != NULL)
		transport_watch_output(c->tr, low_water);
	c->drain_check = true;
	schedule(c);
}

void imap_client_pause_reading(struct imap_client *c, bool pause)
{
	if (c->paused == pause)
		return;
	c->paused = pause;
	/* while connecting the transport keeps it for later */
	if (c->tr != NULL)
		transport_pause_reading(c->tr, pause);
	if (pause || c->phase < PH_GREETING || c->phase == PH_CLOSED)
		return;
	c->last_activity_ms = net_now_ms();
	/* Input already buffered will not raise another read event. */
	c->process_pending = true;
	schedule(c);
}

void imap_client_set_inline_max(struct imap_client *c, size_t max_inline_literal)
{
	imap_parser_set_inline_max(c->parser, max_inline_literal);
}

int imap_run_until(struct event_base *base, const bool *done)
{
	while (!*done) {
		int r = event_base_loop(base, EVLOOP_ONCE);
		if (r < 0)
			return -1;
		if (r == 1 && !*done)
			return -1; /* no events left: nothing can set *done any more */
	}
	return 0;
}
