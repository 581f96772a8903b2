/* test_imap_client.c - the IMAP client against a real Dovecot, and against a scripted
 * hostile server living in the same event loop.
 *
 * Dovecot is started once for the group (dovecot_fixture.h, with APPENDLIMIT) in a temp
 * dir; if it is not installed the Dovecot tests skip. Each test gets an event loop, a
 * transcript and a watchdog, and the scripted server runs in that loop (client_fixture.h). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client_fixture.h"
#include "dovecot_fixture.h"
#include "imap_client.h"
#include "log.h"

/* ---------------------------------------------------------------------------------------
 * group fixture: one Dovecot */

#define APPEND_LIMIT 6000000u /* Dovecot's quota_max_mail_size, advertised as APPENDLIMIT */
/* a space, a quote, a backslash and UTF-8: sent as a literal */
#define BOB_PASSWORD "sp ce\"q\\x\xc3\xbc"

static struct dovecot_fixture dovecot;

static int group_setup(void **state)
{
	char options[64];

	(void)state;
	mh_log_setup(MH_LOG_TEXT, getenv("MH_TEST_DEBUG") ? MH_LOG_DEBUG : MH_LOG_WARN);
	snprintf(options, sizeof(options), "--appendlimit %u", APPEND_LIMIT);
	if (dovecot_fixture_start(&dovecot, "imapc", options) < 0)
		return -1;
	if (dovecot.missing)
		return 0;
	if (dovecot_fixture_adduser(&dovecot, "alice", "secret") < 0 ||
	    dovecot_fixture_adduser(&dovecot, "bob", BOB_PASSWORD) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	dovecot_fixture_stop(&dovecot);
	return 0;
}

/* ---------------------------------------------------------------------------------------
 * completions */

struct waiter {
	bool done;
	int calls;
	enum mh_err_code code;
	char detail[MH_ERR_DETAIL_MAX];
	bool had_tagged;
	int nuids;
	uint32_t uidvalidity;
	uint32_t uids[64];
	int order;
};

static int order_counter;

static void on_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct waiter *w = ctx;

	w->calls++;
	w->done = true;
	w->order = order_counter++;
	w->code = err != NULL ? err->code : MH_E_OK;
	snprintf(w->detail, sizeof(w->detail), "%s", err != NULL ? err->detail : "");
	w->had_tagged = tagged != NULL;
	if (tagged != NULL && tagged->status == IMAP_STATUS_OK)
		w->nuids = imap_reply_appenduid(tagged, &w->uidvalidity, w->uids, 64);
}

/* Options for user at the Dovecot. Over TLS they use fx->tls, made to trust the test CA
 * unless the test has made its own. */
static struct imap_client_opts dovecot_opts(enum mh_security sec, const char *user, const char *pass)
{
	struct imap_client_opts o;

	memset(&o, 0, sizeof(o));
	o.name = "test";
	o.host = "127.0.0.1";
	o.security = sec;
	o.port = sec == MH_SEC_TLS ? dovecot.imaps_port : dovecot.imap_port;
	o.user = user;
	o.password = pass;
	o.connect_timeout_ms = 10000;
	o.command_timeout_ms = 20000;
	o.trace = on_trace;
	o.trace_ctx = &fx->tr;
	if (sec != MH_SEC_PLAIN) {
		if (fx->tls == NULL)
			fx->tls = make_tls(dovecot.ca_file, false);
		o.tls = fx->tls;
	}
	return o;
}

/* Opens a client (with capability disable turned off when not NULL); returns it with w
 * filled in (the client is returned even on failure). */
static struct imap_client *open_client(struct imap_client_opts *o, const char *disable, struct waiter *w)
{
	struct imap_client *c = imap_client_new(fx->base, o);

	if (disable != NULL)
		imap_client_disable_cap(c, disable);
	memset(w, 0, sizeof(*w));
	imap_client_open(c, on_done, w);
	assert_false(w->done); /* never from inside open() */
	fx_run(&w->done);
	assert_int_equal(w->calls, 1);
	return c;
}

static struct imap_client *open_alice(enum mh_security sec)
{
	struct imap_client_opts o;
	struct waiter w;
	struct imap_client *c;

	o = dovecot_opts(sec, "alice", "secret");
	c = open_client(&o, NULL, &w);
	if (w.code != MH_E_OK)
		fail_msg("open failed: %s: %s", mh_err_name(w.code), w.detail);
	assert_true(imap_client_is_open(c));
	return c;
}

/* Runs one command to completion; returns its error code. */
static enum mh_err_code cmd_sync(struct imap_client *c, const struct imap_cmd_handlers *hin, const char *fmt,
				 const char *arg)
{
	struct waiter w;
	struct imap_cmd_handlers h = {0};
	struct mh_err err;

	memset(&w, 0, sizeof(w));
	if (hin != NULL)
		h = *hin;
	h.done = on_done;
	h.ctx = &w;
	if (hin != NULL && hin->ctx != NULL)
		fail_msg("cmd_sync: handlers with their own ctx are not supported");
	assert_int_equal(imap_client_cmd(c, &h, &err, fmt, arg), 0);
	fx_run(&w.done);
	assert_int_equal(w.calls, 1);
	return w.code;
}

/* ---------------------------------------------------------------------------------------
 * opening: STARTTLS, implicit TLS, failures */

static void test_open_starttls_verified(void **state)
{
	struct imap_client *c;
	struct mh_tls_info ti;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_alice(MH_SEC_STARTTLS);
	assert_true(imap_client_has_cap(c, "IMAP4rev1"));
	assert_false(imap_client_has_cap(c, "STARTTLS")); /* capabilities after TLS and login */
	/* Dovecot's greeting carries its capabilities: STARTTLS first, then CAPABILITY again
	 * over TLS (RFC 3501 6.2.1), then LOGIN */
	assert_int_equal(transcript_find("> A1 STARTTLS", 0), transcript_find("> A", 0));
	assert_true(transcript_find("> A2 CAPABILITY", 0) < transcript_find("> A3 LOGIN", 0));
	assert_true(transcript_contains(" LOGIN <redacted> <redacted>"));
	assert_false(transcript_contains("secret"));
	assert_true(imap_client_tls_info(c, &ti));
	assert_true(ti.verified);
	imap_client_free(&c);
	assert_null(c);
}

static void test_open_implicit_tls_verified(void **state)
{
	struct imap_client *c;
	struct mh_tls_info ti;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_alice(MH_SEC_TLS);
	assert_true(imap_client_has_cap(c, "IMAP4rev1"));
	assert_false(transcript_contains("> A1 STARTTLS"));
	assert_int_equal(transcript_find("> A1 LOGIN <redacted> <redacted>", 0) != SIZE_MAX, 1);
	assert_true(imap_client_tls_info(c, &ti));
	assert_true(ti.verified);
	assert_true(ti.protocol[0] != '\0');
	imap_client_free(&c);
}

static enum mh_err_code open_expect(struct imap_client_opts *o)
{
	struct waiter w;
	struct imap_client *c = open_client(o, NULL, &w);

	assert_false(imap_client_is_open(c));
	imap_client_free(&c);
	return w.code;
}

static void test_open_wrong_password(void **state)
{
	struct imap_client_opts o;

	(void)state;
	dovecot_fixture_need(&dovecot);
	o = dovecot_opts(MH_SEC_TLS, "alice", "wrong");
	assert_int_equal(open_expect(&o), MH_E_AUTH_FAILED);
}

/* Options for a server that is not there: plain, no trace. */
static struct imap_client_opts nowhere_opts(const char *host, uint16_t port)
{
	struct imap_client_opts o;

	memset(&o, 0, sizeof(o));
	o.host = host;
	o.port = port;
	o.security = MH_SEC_PLAIN;
	o.user = "x";
	o.password = "y";
	return o;
}

static void test_connect_refused(void **state)
{
	struct imap_client_opts o = nowhere_opts("127.0.0.1", closed_port());
	struct waiter w;
	struct imap_client *c;

	(void)state;
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_CONNECT_REFUSED);
	assert_int_equal(imap_client_stage(c), IMAP_STAGE_CONNECT);
	imap_client_free(&c);
}

static void test_connect_localhost_name(void **state)
{
	/* a host name goes through the resolver (evdns, /etc/hosts) */
	struct imap_client_opts o = nowhere_opts("localhost", closed_port());

	(void)state;
	assert_int_equal(open_expect(&o), MH_E_CONNECT_REFUSED);
}

static void test_dns_failure(void **state)
{
	/* RFC 6761: .invalid never resolves. Without a reachable resolver the lookup may
	 * only time out, which the connect timeout reports. */
	struct imap_client_opts o = nowhere_opts("no-such-host.invalid", 143);
	enum mh_err_code e;

	(void)state;
	o.connect_timeout_ms = 3000;
	e = open_expect(&o);
	if (e != MH_E_DNS && e != MH_E_CONNECT_TIMEOUT)
		fail_msg("got %s", mh_err_name(e));
}

static void test_tls_hostname_mismatch(void **state)
{
	struct imap_client_opts o;
	struct waiter w;
	struct imap_client *c;

	(void)state;
	dovecot_fixture_need(&dovecot);
	o = dovecot_opts(MH_SEC_TLS, "alice", "secret");
	o.tls_name = "wrong.example";
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_TLS_CERT_HOSTNAME);
	/* implicit TLS: the handshake failed, not the connect */
	assert_int_equal(imap_client_stage(c), IMAP_STAGE_TLS);
	imap_client_free(&c);
}

static void test_tls_untrusted_without_ca(void **state)
{
	struct imap_client_opts o;
	struct waiter w;
	struct imap_client *c;

	(void)state;
	dovecot_fixture_need(&dovecot);
	fx->tls = make_tls(NULL, false);
	o = dovecot_opts(MH_SEC_STARTTLS, "alice", "secret");
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_TLS_CERT_UNTRUSTED);
	assert_int_equal(imap_client_stage(c), IMAP_STAGE_TLS);
	imap_client_free(&c);
}

static void test_tls_insecure(void **state)
{
	struct imap_client_opts o;
	struct waiter w;
	struct imap_client *c;

	(void)state;
	dovecot_fixture_need(&dovecot);
	fx->tls = make_tls(NULL, true);
	o = dovecot_opts(MH_SEC_TLS, "alice", "secret");
	o.tls_name = "wrong.example";
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_OK);
	assert_true(imap_client_is_open(c));
	imap_client_free(&c);
}

static void test_login_literal_password_sync(void **state)
{
	struct imap_client_opts o;
	struct waiter w;
	struct imap_client *c;

	(void)state;
	dovecot_fixture_need(&dovecot);
	/* bob's password is sent as a literal, and without LITERAL+ a synchronizing one */
	o = dovecot_opts(MH_SEC_STARTTLS, "bob", BOB_PASSWORD);
	c = open_client(&o, "LITERAL+", &w);
	if (w.code != MH_E_OK)
		fail_msg("open failed: %s: %s", mh_err_name(w.code), w.detail);
	assert_false(imap_client_has_cap(c, "LITERAL+"));
	assert_true(transcript_contains(" LOGIN <redacted> <redacted>"));
	assert_true(transcript_find("< +", 0) != SIZE_MAX);
	assert_false(transcript_contains("sp ce"));
	imap_client_free(&c);
}

/* ---------------------------------------------------------------------------------------
 * pipelining */

struct list_count {
	int lists;
};

static void on_list(void *ctx, const struct imap_response *r)
{
	struct list_count *lc = ctx;

	if (r->name != NULL && strcmp(r->name, "LIST") == 0)
		lc->lists++;
}

#define PIPE_NOOPS 300

struct pipeline {
	struct waiter w[2 + PIPE_NOOPS];
	struct list_count lc;
};

static void test_pipelined_in_order(void **state)
{
	struct imap_client *c;
	struct pipeline *p = calloc(1, sizeof(*p));
	struct mh_err err;
	size_t first_sent, first_tagged_after;
	int sent_before_answer = 0;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_alice(MH_SEC_TLS);
	first_sent = fx->tr.n;
	order_counter = 0;
	{
		struct imap_cmd_handlers h = {.done = on_done, .ctx = &p->w[0]};
		assert_int_equal(imap_client_cmd(c, &h, &err, "CREATE %s", "pipe line"), 0);
	}
	{
		/* LIST with an untagged handler counting LIST responses, and no done */
		struct imap_cmd_handlers h = {.untagged = on_list, .done = NULL, .ctx = &p->lc};
		assert_int_equal(imap_client_cmd(c, &h, &err, "LIST %s %s", "", "*"), 0);
	}
	{
		struct imap_cmd_handlers h = {.done = on_done, .ctx = &p->w[1]};
		assert_int_equal(imap_client_cmd(c, &h, &err, "SELECT %s", "pipe line"), 0);
	}
	for (int i = 0; i < PIPE_NOOPS; i++) {
		struct imap_cmd_handlers h = {.done = on_done, .ctx = &p->w[2 + i]};
		assert_int_equal(imap_client_cmd(c, &h, &err, "NOOP"), 0);
	}
	fx_run(&p->w[1 + PIPE_NOOPS].done);
	for (int i = 0; i < 2 + PIPE_NOOPS; i++) {
		assert_int_equal(p->w[i].calls, 1);
		if (p->w[i].code != MH_E_OK)
			fail_msg("command %d failed: %s: %s", i, mh_err_name(p->w[i].code), p->w[i].detail);
		assert_int_equal(p->w[i].order, i);
	}
	assert_true(p->lc.lists >= 2); /* INBOX and "pipe line" */
	/* 128 commands (the in-flight cap) were written before the first answer came back */
	first_tagged_after = transcript_find("< A", first_sent);
	for (size_t i = first_sent; i < first_tagged_after && i < fx->tr.n; i++)
		if (fx->tr.lines[i][0] == '>')
			sent_before_answer++;
	assert_int_equal(sent_before_answer, 128);
	assert_true(transcript_contains(" CREATE \"pipe line\""));
	assert_true(transcript_contains(" LIST \"\" \"*\"")); /* quoted wildcards still match */
	imap_client_free(&c);
	free(p);
}

/* ---------------------------------------------------------------------------------------
 * APPEND */

static char *make_message(unsigned i, size_t size)
{
	char *m = malloc(size + 1);
	size_t o;

	assert_non_null(m);
	o = (size_t)snprintf(m, size + 1, "From: test@example.com\r\nSubject: message %u\r\n\r\n", i);
	while (o < size) {
		/* CRLF lines of printable text: stored and fetched back byte for byte */
		size_t line = 0;
		while (o < size && line < 70) {
			m[o] = (char)('a' + (o * 7 + i) % 26);
			o++;
			line++;
		}
		if (o + 2 <= size) {
			m[o++] = '\r';
			m[o++] = '\n';
		} else {
			while (o < size)
				m[o++] = 'z';
		}
	}
	/* end with CRLF */
	m[size - 2] = '\r';
	m[size - 1] = '\n';
	m[size] = '\0';
	return m;
}

static void create_box(struct imap_client *c, const char *box)
{
	enum mh_err_code e = cmd_sync(c, NULL, "CREATE %s", box);
	assert_true(e == MH_E_OK || e == MH_E_FOLDER_CREATE);
}

static void test_append_single(void **state)
{
	struct imap_client *c;
	struct waiter w;
	struct imap_cmd_handlers h = {.done = on_done, .ctx = &w};
	struct mh_err err;
	struct imap_append *a;
	char *m = make_message(1, 300);

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_alice(MH_SEC_TLS);
	assert_true(imap_client_has_cap(c, "LITERAL+"));
	create_box(c, "single");
	memset(&w, 0, sizeof(w));
	a = imap_client_append_start(c, "single", &h, &err);
	assert_non_null(a);
	assert_int_equal(imap_append_add(a, "\\Seen \\Recent $Forwarded", "17-Jul-1996 02:44:25 -0700", 300, &err), 0);
	imap_append_data_mem(a, m, 100);
	imap_append_data_mem(a, m + 100, 200);
	imap_append_finish(a);
	fx_run(&w.done);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.code, MH_E_OK);
	assert_int_equal(w.nuids, 1);
	assert_true(w.uids[0] >= 1);
	assert_true(transcript_contains("APPEND single (\\Seen $Forwarded) \"17-Jul-1996 02:44:25 -0700\" {300+}"));
	assert_true(transcript_contains("> <literal 300 bytes>"));
	imap_client_free(&c);
	free(m);
}

static void test_multiappend_50(void **state)
{
	struct imap_client *c;
	struct waiter w;
	struct imap_cmd_handlers h = {.done = on_done, .ctx = &w};
	struct mh_err err;
	struct imap_append *a;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_alice(MH_SEC_TLS);
	assert_true(imap_client_has_cap(c, "MULTIAPPEND"));
	create_box(c, "multi");
	memset(&w, 0, sizeof(w));
	a = imap_client_append_start(c, "multi", &h, &err);
	assert_non_null(a);
	for (unsigned i = 0; i < 50; i++) {
		size_t size = 200 + i * 37;
		char *m = make_message(i, size);
		struct evbuffer *src = evbuffer_new();
		evbuffer_add(src, m, size);
		assert_int_equal(imap_append_add(a, i % 2 ? "\\Seen" : "", NULL, size, &err), 0);
		imap_append_data(a, src, size);
		assert_int_equal(evbuffer_get_length(src), 0);
		evbuffer_free(src);
		free(m);
	}
	imap_append_finish(a);
	fx_run(&w.done);
	if (w.code != MH_E_OK)
		fail_msg("MULTIAPPEND: %s: %s", mh_err_name(w.code), w.detail);
	assert_int_equal(w.nuids, 50);
	for (int i = 1; i < 50; i++)
		assert_int_equal(w.uids[i], w.uids[i - 1] + 1);
	imap_client_free(&c);
}

/* synchronizing literals: LITERAL+ turned off */
static void test_append_sync_literal(void **state)
{
	struct imap_client *c;
	struct imap_client_opts o;
	struct waiter w;
	struct imap_cmd_handlers h = {.done = on_done, .ctx = &w};
	struct mh_err err;
	struct imap_append *a;
	char *m1 = make_message(1, 500), *m2 = make_message(2, 700);

	(void)state;
	dovecot_fixture_need(&dovecot);
	o = dovecot_opts(MH_SEC_TLS, "alice", "secret");
	c = open_client(&o, "LITERAL+", &w);
	assert_int_equal(w.code, MH_E_OK);
	assert_false(imap_client_has_cap(c, "LITERAL+"));
	create_box(c, "sync");
	memset(&w, 0, sizeof(w));
	a = imap_client_append_start(c, "sync", &h, &err);
	assert_int_equal(imap_append_add(a, NULL, NULL, 500, &err), 0);
	imap_append_data_mem(a, m1, 500);
	/* held back until the server's "+" */
	assert_true(imap_client_output_pending(c) >= 500);
	assert_int_equal(imap_append_add(a, "\\Flagged", NULL, 700, &err), 0);
	imap_append_data_mem(a, m2, 700);
	imap_append_finish(a);
	/* a NOOP queued behind the APPEND is not sent before it */
	{
		struct waiter wn;
		struct imap_cmd_handlers hn = {.done = on_done, .ctx = &wn};
		memset(&wn, 0, sizeof(wn));
		assert_int_equal(imap_client_cmd(c, &hn, &err, "NOOP"), 0);
		fx_run(&wn.done);
		assert_int_equal(wn.code, MH_E_OK);
		assert_true(w.done);
		assert_true(w.order < wn.order);
	}
	assert_int_equal(w.code, MH_E_OK);
	assert_int_equal(w.nuids, 2);
	assert_true(transcript_contains("APPEND sync {500}"));
	assert_true(transcript_contains("<literal 500 bytes> (\\Flagged) {700}"));
	assert_true(transcript_find("< +", 0) != SIZE_MAX);
	imap_client_free(&c);
	free(m1);
	free(m2);
}

/* 5 MB streamed in 64 KiB chunks under backpressure, then fetched back as a stream */
struct big {
	struct imap_client *c;
	struct imap_append *a;
	const char *msg;
	size_t size, fed;
	int drains;
	struct waiter w;
	/* fetch */
	struct evbuffer *got;
	int begins, ends, datas;
	uint64_t lit_size;
	char key[32];
	bool paused_once;
};

static void big_feed(void *ctx)
{
	struct big *b = ctx;

	while (b->fed < b->size) {
		size_t n = b->size - b->fed < 65536 ? b->size - b->fed : 65536;
		if (imap_client_output_pending(b->c) > 1024 * 1024) {
			b->drains++;
			imap_client_on_drain(b->c, 256 * 1024, big_feed, b);
			return;
		}
		imap_append_data_mem(b->a, b->msg + b->fed, n);
		b->fed += n;
	}
	imap_append_finish(b->a);
	b->a = NULL;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct big *b = arg;
	(void)fd;
	(void)what;
	imap_client_pause_reading(b->c, false);
}

static void big_literal(void *ctx, enum imap_ev kind, const struct imap_event *ev, struct evbuffer *in)
{
	struct big *b = ctx;

	switch (kind) {
	case IMAP_EV_LITERAL_BEGIN:
		b->begins++;
		b->lit_size = ev->literal_size;
		snprintf(b->key, sizeof(b->key), "%s", ev->literal_key != NULL ? ev->literal_key : "");
		break;
	case IMAP_EV_LITERAL_DATA:
		b->datas++;
		assert_int_equal(evbuffer_remove_buffer(in, b->got, ev->len), (int)ev->len);
		if (!b->paused_once && evbuffer_get_length(b->got) > 1024 * 1024) {
			/* backpressure from inside the literal callback; resumed by a timer */
			struct timeval tv = {0, 20000};
			b->paused_once = true;
			imap_client_pause_reading(b->c, true);
			event_base_once(fx->base, -1, EV_TIMEOUT, on_resume, b, &tv);
		}
		break;
	case IMAP_EV_LITERAL_END:
		b->ends++;
		break;
	default:
		fail_msg("unexpected literal event %d", kind);
	}
}

static void test_append_5mb_stream_and_fetch(void **state)
{
	struct big *b = calloc(1, sizeof(*b));
	struct mh_err err;
	struct imap_cmd_handlers h = {.done = on_done, .ctx = &b->w};
	char *msg;
	uint32_t uid;

	(void)state;
	dovecot_fixture_need(&dovecot);
	b->size = 5 * 1024 * 1024;
	msg = make_message(7, b->size);
	b->msg = msg;
	b->c = open_alice(MH_SEC_TLS);
	create_box(b->c, "big");
	b->a = imap_client_append_start(b->c, "big", &h, &err);
	assert_non_null(b->a);
	assert_int_equal(imap_append_add(b->a, "\\Seen", NULL, b->size, &err), 0);
	big_feed(b);
	fx_run(&b->w.done);
	if (b->w.code != MH_E_OK)
		fail_msg("APPEND 5 MB: %s: %s", mh_err_name(b->w.code), b->w.detail);
	assert_true(b->drains > 0);
	assert_int_equal(b->fed, b->size);
	assert_int_equal(b->w.nuids, 1);
	uid = b->w.uids[0];
	/* 5 MB > 100 KiB: a synchronizing literal even with LITERAL+ */
	assert_true(transcript_contains("APPEND big (\\Seen) {5242880}"));

	assert_int_equal(cmd_sync(b->c, NULL, "SELECT %s", "big"), MH_E_OK);
	imap_client_set_inline_max(b->c, 0);
	b->got = evbuffer_new();
	{
		struct waiter wf;
		struct imap_cmd_handlers hf = {.literal = big_literal, .ctx = b};
		struct imap_cmd_handlers hd = {.done = on_done, .ctx = &wf};

		memset(&wf, 0, sizeof(wf));
		assert_int_equal(imap_client_cmd(b->c, &hf, &err, "UID FETCH %u BODY.PEEK[]", uid), 0);
		/* a NOOP behind it tells us when the FETCH is complete */
		assert_int_equal(imap_client_cmd(b->c, &hd, &err, "NOOP"), 0);
		fx_run(&wf.done);
		assert_int_equal(wf.code, MH_E_OK);
	}
	assert_int_equal(b->begins, 1);
	assert_int_equal(b->ends, 1);
	assert_true(b->datas > 1);
	assert_true(b->paused_once);
	assert_int_equal(b->lit_size, b->size);
	assert_string_equal(b->key, "BODY[]");
	assert_int_equal(evbuffer_get_length(b->got), b->size);
	assert_memory_equal(evbuffer_pullup(b->got, -1), msg, b->size);
	assert_true(transcript_contains("BODY[] <literal 5242880 bytes>"));
	evbuffer_free(b->got);
	imap_client_free(&b->c);
	free(msg);
	free(b);
}

/* Over APPENDLIMIT: a synchronizing literal lets Dovecot refuse before the bytes travel. */
static void too_big_feed(void *ctx)
{
	struct big *b = ctx;

	while (b->fed < b->size) {
		size_t n = b->size - b->fed < 65536 ? b->size - b->fed : 65536;
		if (!b->w.done && imap_client_output_pending(b->c) > 1024 * 1024) {
			b->drains++;
			imap_client_on_drain(b->c, 256 * 1024, too_big_feed, b);
			return;
		}
		imap_append_data_mem(b->a, b->msg + b->fed, n); /* dropped once done has run */
		b->fed += n;
	}
	imap_append_finish(b->a);
	b->a = NULL;
}

static void test_append_over_appendlimit(void **state)
{
	struct big *b = calloc(1, sizeof(*b));
	struct mh_err err;
	struct imap_cmd_handlers h = {.done = on_done, .ctx = &b->w};
	char *msg;
	const char *limit;

	(void)state;
	dovecot_fixture_need(&dovecot);
	b->size = APPEND_LIMIT + 1000000;
	msg = make_message(9, b->size);
	b->msg = msg;
	b->c = open_alice(MH_SEC_TLS);
	limit = imap_client_cap_value(b->c, "APPENDLIMIT");
	assert_non_null(limit);
	assert_int_equal(strtoul(limit, NULL, 10), APPEND_LIMIT);
	b->a = imap_client_append_start(b->c, "INBOX", &h, &err);
	assert_int_equal(imap_append_add(b->a, NULL, NULL, b->size, &err), 0);
	too_big_feed(b);
	fx_run(&b->w.done);
	if (b->w.code != MH_E_MSG_TOO_BIG && b->w.code != MH_E_OVER_QUOTA)
		fail_msg("APPEND over the limit: %s: %s", mh_err_name(b->w.code), b->w.detail);
	/* the detail names both sizes, before the server's text */
	if (b->w.code == MH_E_MSG_TOO_BIG) {
		static const char want[] = "APPEND: the message is 7000000 bytes, the server's limit is 6000000 bytes: [LIMIT] ";
		if (strncmp(b->w.detail, want, sizeof(want) - 1) != 0)
			fail_msg("detail \"%s\"", b->w.detail);
	}
	/* the caller goes on feeding (bytes dropped) and finishes as usual */
	if (b->a != NULL)
		too_big_feed(b);
	assert_null(b->a);
	assert_true(transcript_contains("< A2 NO [LIMIT]"));
	assert_int_equal(b->w.calls, 1);
	/* still in step */
	assert_int_equal(cmd_sync(b->c, NULL, "NOOP", NULL), MH_E_OK);
	imap_client_free(&b->c);
	free(msg);
	free(b);
}

/* ---------------------------------------------------------------------------------------
 * lifetime */

struct freer {
	struct imap_client *c;
	struct waiter w[5];
};

static void free_in_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct freer *f = ctx;

	on_done(&f->w[0], tagged, err);
	imap_client_free(&f->c);
	assert_null(f->c);
}

static void test_free_inside_done(void **state)
{
	struct freer f;
	struct mh_err err;

	(void)state;
	dovecot_fixture_need(&dovecot);
	memset(&f, 0, sizeof(f));
	f.c = open_alice(MH_SEC_TLS);
	{
		struct imap_cmd_handlers h = {.done = free_in_done, .ctx = &f};
		assert_int_equal(imap_client_cmd(f.c, &h, &err, "NOOP"), 0);
	}
	for (int i = 1; i < 5; i++) {
		struct imap_cmd_handlers h = {.done = on_done, .ctx = &f.w[i]};
		assert_int_equal(imap_client_cmd(f.c, &h, &err, "NOOP"), 0);
	}
	fx_run(&f.w[4].done);
	assert_int_equal(f.w[0].code, MH_E_OK);
	for (int i = 0; i < 5; i++)
		assert_int_equal(f.w[i].calls, 1);
	for (int i = 1; i < 5; i++)
		assert_true(f.w[i].code == MH_E_OK || f.w[i].code == MH_E_CANCELED);
	assert_null(f.c);
}

static void test_free_with_pending(void **state)
{
	struct imap_client *c;
	struct waiter w[3];
	struct mh_err err;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_alice(MH_SEC_TLS);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < 3; i++) {
		struct imap_cmd_handlers h = {.done = on_done, .ctx = &w[i]};
		assert_int_equal(imap_client_cmd(c, &h, &err, "NOOP"), 0);
	}
	imap_client_free(&c);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w[i].calls, 1);
		assert_int_equal(w[i].code, MH_E_CANCELED);
	}
}

/* ---------------------------------------------------------------------------------------
 * a scripted server in the same loop (client_fixture.h) */

/* Starts the scripted server; returns options for a plain client of it. */
static struct imap_client_opts fake_start(struct fake_server *f, const char *greeting, fake_server_line_cb_t *script)
{
	struct imap_client_opts o;

	fake_server_start(f, greeting, script, NULL);
	memset(&o, 0, sizeof(o));
	o.name = "fake";
	o.host = "127.0.0.1";
	o.port = f->port;
	o.security = MH_SEC_PLAIN;
	o.user = "u";
	o.password = "p";
	o.connect_timeout_ms = 5000;
	o.command_timeout_ms = 5000;
	o.trace = on_trace;
	o.trace_ctx = &fx->tr;
	return o;
}

/* fake_start() for a client that asks for STARTTLS, with a TLS context that checks
 * nothing: no fake server gets as far as a handshake that could succeed. */
static struct imap_client_opts fake_start_starttls(struct fake_server *f, const char *greeting,
						   fake_server_line_cb_t *script)
{
	struct imap_client_opts o = fake_start(f, greeting, script);

	if (fx->tls == NULL)
		fx->tls = make_tls(NULL, true);
	o.security = MH_SEC_STARTTLS;
	o.tls = fx->tls;
	return o;
}

static const char preauth[] = "* PREAUTH [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n";

static void test_hostile_malformed_greeting(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;

	(void)state;
	o = fake_start(&f, "*OK hello\r\n", NULL);
	assert_int_equal(open_expect(&o), MH_E_PROTOCOL);
	fake_server_stop(&f);
	o = fake_start(&f, "A1 OK not a greeting\r\n", NULL);
	assert_int_equal(open_expect(&o), MH_E_PROTOCOL);
	fake_server_stop(&f);
}

static void test_hostile_greeting_bye(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter w;
	struct imap_client *c;

	(void)state;
	o = fake_start(&f, "* BYE Too many simultaneous connections\r\n", NULL);
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_THROTTLED);
	imap_client_free(&c);
	fake_server_stop(&f);
	o = fake_start(&f, "* BYE going down\r\n", NULL);
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_SERVER_BYE);
	assert_non_null(strstr(w.detail, "going down"));
	imap_client_free(&c);
	fake_server_stop(&f);
}

static void huge_line(struct fake_server *f, const char *line)
{
	(void)line;
	if (f->step++ == 0) {
		fake_server_send(f, "* OK ");
		fake_server_send_filler(f, 10 * 1024 * 1024);
	}
}

/* Opens a client on the fake server and queues n NOOPs; returns the client. */
static struct imap_client *fake_open_with_noops(struct imap_client_opts *o, struct waiter *ws, int n)
{
	struct waiter w;
	struct imap_client *c = open_client(o, NULL, &w);
	struct mh_err err;

	if (w.code != MH_E_OK)
		fail_msg("fake open: %s: %s", mh_err_name(w.code), w.detail);
	memset(ws, 0, (size_t)n * sizeof(*ws));
	for (int i = 0; i < n; i++) {
		struct imap_cmd_handlers h = {.done = on_done, .ctx = &ws[i]};
		assert_int_equal(imap_client_cmd(c, &h, &err, "NOOP"), 0);
	}
	return c;
}

static void test_hostile_10mb_line(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter ws[5];
	struct imap_client *c;
	struct mh_err err;

	(void)state;
	o = fake_start(&f, preauth, huge_line);
	c = fake_open_with_noops(&o, ws, 5);
	fx_run(&ws[4].done);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(ws[i].calls, 1);
		assert_int_equal(ws[i].code, MH_E_PROTOCOL);
		assert_false(ws[i].had_tagged);
	}
	assert_false(imap_client_is_open(c));
	assert_int_equal(imap_client_cmd(c, NULL, &err, "NOOP"), -1);
	assert_int_equal(err.code, MH_E_PROTOCOL);
	imap_client_free(&c);
	fake_server_stop(&f);
}

struct midlit {
	int begins, datas, ends;
	size_t bytes;
	struct waiter w;
};

static void midlit_literal(void *ctx, enum imap_ev kind, const struct imap_event *ev, struct evbuffer *in)
{
	struct midlit *m = ctx;

	if (kind == IMAP_EV_LITERAL_BEGIN)
		m->begins++;
	else if (kind == IMAP_EV_LITERAL_END)
		m->ends++;
	else {
		m->datas++;
		m->bytes += ev->len;
		evbuffer_drain(in, ev->len);
	}
}

static void midlit_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct midlit *m = ctx;
	on_done(&m->w, tagged, err);
}

static void cut_literal(struct fake_server *f, const char *line)
{
	if (strstr(line, "FETCH") != NULL) {
		char part[1000];
		memset(part, 'y', sizeof(part));
		fake_server_send(f, "* 1 FETCH (UID 7 BODY[] {100000}\r\n");
		fake_server_write(f, part, sizeof(part));
		fake_server_hang_up(f);
	}
}

static void test_hostile_disconnect_mid_literal(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter w, ws[3];
	struct imap_client *c;
	struct midlit m;
	struct mh_err err;

	(void)state;
	memset(&m, 0, sizeof(m));
	o = fake_start(&f, preauth, cut_literal);
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_OK);
	imap_client_set_inline_max(c, 0);
	{
		struct imap_cmd_handlers h = {.literal = midlit_literal, .done = midlit_done, .ctx = &m};
		assert_int_equal(imap_client_cmd(c, &h, &err, "UID FETCH 7 BODY.PEEK[]"), 0);
	}
	memset(ws, 0, sizeof(ws));
	for (int i = 0; i < 3; i++) {
		struct imap_cmd_handlers h = {.done = on_done, .ctx = &ws[i]};
		assert_int_equal(imap_client_cmd(c, &h, &err, "NOOP"), 0);
	}
	fx_run(&ws[2].done);
	assert_int_equal(m.w.calls, 1);
	assert_int_equal(m.w.code, MH_E_CONNECTION_LOST);
	assert_int_equal(m.begins, 1);
	assert_int_equal(m.ends, 0);
	assert_int_equal(m.bytes, 1000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ws[i].calls, 1);
		assert_int_equal(ws[i].code, MH_E_CONNECTION_LOST);
	}
	imap_client_free(&c);
	fake_server_stop(&f);
}

static void bye_then_close(struct fake_server *f, const char *line)
{
	(void)line;
	if (f->step++ == 0) {
		fake_server_send(f, "* BYE [UNAVAILABLE] maintenance\r\n");
		fake_server_hang_up(f);
	}
}

static void test_hostile_bye_mid_session(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter ws[2];
	struct imap_client *c;

	(void)state;
	o = fake_start(&f, preauth, bye_then_close);
	c = fake_open_with_noops(&o, ws, 2);
	fx_run(&ws[1].done);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ws[i].calls, 1);
		assert_int_equal(ws[i].code, MH_E_UNAVAILABLE);
	}
	imap_client_free(&c);
	fake_server_stop(&f);
}

static void unknown_tag(struct fake_server *f, const char *line)
{
	(void)line;
	if (f->step++ == 0)
		fake_server_send(f, "A999 OK who?\r\n");
}

static void unexpected_plus(struct fake_server *f, const char *line)
{
	(void)line;
	if (f->step++ == 0)
		fake_server_send(f, "+ go ahead\r\n");
}

static void test_hostile_unknown_tag_and_continuation(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter ws[2];
	struct imap_client *c;

	(void)state;
	o = fake_start(&f, preauth, unknown_tag);
	c = fake_open_with_noops(&o, ws, 2);
	fx_run(&ws[1].done);
	assert_int_equal(ws[0].code, MH_E_PROTOCOL);
	assert_non_null(strstr(ws[0].detail, "A999"));
	imap_client_free(&c);
	fake_server_stop(&f);

	o = fake_start(&f, preauth, unexpected_plus);
	c = fake_open_with_noops(&o, ws, 2);
	fx_run(&ws[1].done);
	assert_int_equal(ws[0].code, MH_E_PROTOCOL);
	assert_int_equal(ws[1].calls, 1);
	imap_client_free(&c);
	fake_server_stop(&f);
}

static void silent(struct fake_server *f, const char *line)
{
	(void)f;
	(void)line;
}

static void test_hostile_silent_server_times_out(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter ws[2];
	struct imap_client *c;

	(void)state;
	o = fake_start(&f, preauth, silent);
	o.command_timeout_ms = 300;
	c = fake_open_with_noops(&o, ws, 2);
	fx_run(&ws[1].done);
	assert_int_equal(ws[0].code, MH_E_TIMEOUT);
	assert_int_equal(ws[1].code, MH_E_TIMEOUT);
	imap_client_free(&c);
	fake_server_stop(&f);

	/* no greeting at all: the connect timeout */
	o = fake_start(&f, NULL, silent);
	o.connect_timeout_ms = 300;
	assert_int_equal(open_expect(&o), MH_E_CONNECT_TIMEOUT);
	fake_server_stop(&f);
}

/* A server that accepts the connection and never answers the TLS handshake. */
static void test_hostile_silent_tls_server_times_out(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter w;
	struct imap_client *c;

	(void)state;
	fx->tls = make_tls(NULL, true);
	o = fake_start(&f, NULL, silent);
	o.security = MH_SEC_TLS;
	o.tls = fx->tls;
	o.connect_timeout_ms = 300;
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_CONNECT_TIMEOUT);
	assert_non_null(strstr(w.detail, "no TLS handshake within 300 ms"));
	assert_int_equal(imap_client_stage(c), IMAP_STAGE_TLS);
	imap_client_free(&c);
	fake_server_stop(&f);
}

static void on_flag_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Runs the loop for ms milliseconds. */
static void run_for(unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	bool waited = false;

	assert_int_equal(event_base_once(fx->base, -1, EV_TIMEOUT, on_flag_timer, &waited, &tv), 0);
	fx_run(&waited);
}

/* Answers the first two NOOPs at once, with the start of a third response, then hangs up.
 * Lines after that are ignored. */
static void answer_then_cut(struct fake_server *f, const char *line)
{
	static char first[64];
	char second[64];
	int tag_len = (int)strcspn(line, " ");

	if (f->step == 0) {
		snprintf(first, sizeof(first), "%.*s OK done\r\n", tag_len, line);
	} else if (f->step == 1) {
		snprintf(second, sizeof(second), "%.*s OK done\r\n* 1 EXIS", tag_len, line);
		fake_server_send(f, first);
		fake_server_send(f, second);
		fake_server_hang_up(f);
	}
	f->step++;
}

struct pauser {
	struct waiter w;
	struct imap_client *c;
};

static void pause_in_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct pauser *p = ctx;

	on_done(&p->w, tagged, err);
	imap_client_pause_reading(p->c, true);
}

/* What the server answered before it hung up is delivered, even when reading was paused
 * as it arrived; a response cut off fails with the hang-up. */
static void test_hostile_answers_then_hangup_while_paused(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter w, ws[2];
	struct pauser p;
	struct imap_client *c;
	struct mh_tls_info ti;
	struct mh_err err;

	(void)state;
	o = fake_start(&f, preauth, answer_then_cut);
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_OK);
	assert_false(imap_client_tls_info(c, &ti));
	memset(&p, 0, sizeof(p));
	memset(ws, 0, sizeof(ws));
	p.c = c;
	{
		struct imap_cmd_handlers h = {.done = pause_in_done, .ctx = &p};
		assert_int_equal(imap_client_cmd(c, &h, &err, "NOOP"), 0);
	}
	for (int i = 0; i < 2; i++) {
		struct imap_cmd_handlers h = {.done = on_done, .ctx = &ws[i]};
		assert_int_equal(imap_client_cmd(c, &h, &err, "NOOP"), 0);
	}
	fx_run(&p.w.done);
	assert_int_equal(p.w.code, MH_E_OK);
	run_for(200);
	assert_int_equal(ws[0].calls, 0); /* paused: no callback, whatever has arrived */
	imap_client_pause_reading(c, false);
	fx_run(&ws[1].done);
	assert_int_equal(ws[0].calls, 1);
	assert_int_equal(ws[0].code, MH_E_OK);
	assert_int_equal(ws[1].calls, 1);
	assert_int_equal(ws[1].code, MH_E_CONNECTION_LOST);
	assert_non_null(strstr(ws[1].detail, "closed"));
	imap_client_free(&c);
	fake_server_stop(&f);
}

/* STARTTLS injection: data after the OK, in the same packet */
static void starttls_inject(struct fake_server *f, const char *line)
{
	if (strstr(line, "STARTTLS") != NULL)
		fake_server_send(f, "A1 OK Begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
}

static void test_hostile_starttls_injection(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;

	(void)state;
	o = fake_start_starttls(&f, "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", starttls_inject);
	assert_int_equal(open_expect(&o), MH_E_PROTOCOL);
	assert_true(transcript_contains("> A1 STARTTLS"));
	fake_server_stop(&f);
}

static void test_hostile_no_starttls(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;

	(void)state;
	o = fake_start_starttls(&f, "* OK [CAPABILITY IMAP4rev1] hi\r\n", silent);
	assert_int_equal(open_expect(&o), MH_E_STARTTLS_UNAVAILABLE);
	assert_false(transcript_contains("LOGIN"));
	fake_server_stop(&f);
}

/* AUTHENTICATE PLAIN when LOGINDISABLED: with SASL-IR inline, else after "+ " */
static void auth_plain_server(struct fake_server *f, const char *line)
{
	/* base64("\0u\0p") */
	if (strcmp(line, "A1 AUTHENTICATE PLAIN AHUAcA==") == 0) {
		fake_server_send(f, "A1 OK [CAPABILITY IMAP4rev1 MULTIAPPEND] done\r\n");
	} else if (strcmp(line, "A1 AUTHENTICATE PLAIN") == 0) {
		fake_server_send(f, "+ \r\n");
	} else if (strcmp(line, "AHUAcA==") == 0) {
		fake_server_send(f, "A1 OK done\r\n");
	} else if (strcmp(line, "A2 CAPABILITY") == 0) {
		fake_server_send(f, "* CAPABILITY IMAP4rev1 UIDPLUS\r\nA2 OK\r\n");
	} else {
		fake_server_send(f, "* BAD unexpected\r\n");
	}
}

static void test_authenticate_plain(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter w;
	struct imap_client *c;

	(void)state;
	o = fake_start(&f, "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGINDISABLED AUTH=PLAIN] hi\r\n", auth_plain_server);
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_OK);
	assert_true(imap_client_has_cap(c, "MULTIAPPEND"));
	assert_true(transcript_contains("> A1 AUTHENTICATE PLAIN <redacted>"));
	assert_false(transcript_contains("AHUAcA=="));
	imap_client_free(&c);
	fake_server_stop(&f);

	o = fake_start(&f, "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] hi\r\n", auth_plain_server);
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_OK);
	assert_true(imap_client_has_cap(c, "UIDPLUS"));
	assert_true(transcript_contains("> A1 AUTHENTICATE PLAIN"));
	assert_int_not_equal(transcript_find("> <redacted>", 0), SIZE_MAX);
	imap_client_free(&c);
	fake_server_stop(&f);

	o = fake_start(&f, "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi\r\n", auth_plain_server);
	assert_int_equal(open_expect(&o), MH_E_PLAINTEXT_REFUSED); /* no TLS: that is why */
	fake_server_stop(&f);
}

/* A hostile server that echoes the command it got in its NO: the password must come back
 * neither in the error's detail nor in the trace, as sent quoted or in the PLAIN blob. */
static void echo_command(struct fake_server *f, const char *line)
{
	char buf[700];
	size_t t = strcspn(line, " ");

	snprintf(buf, sizeof(buf), "%.*s NO [AUTHENTICATIONFAILED] you sent: %s\r\n", (int)(t < 32 ? t : 32), line, line);
	fake_server_send(f, buf);
}

static void test_hostile_echoes_password(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter w;
	struct imap_client *c;

	(void)state;
	o = fake_start(&f, "* OK [CAPABILITY IMAP4rev1] hi\r\n", echo_command);
	o.password = "s3cr\"et";
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_AUTH_FAILED);
	assert_string_equal(w.detail, "LOGIN: [AUTHENTICATIONFAILED] you sent: A1 LOGIN u \"<redacted>\"");
	assert_true(transcript_contains("< A1 NO [AUTHENTICATIONFAILED] you sent: A1 LOGIN u \"<redacted>\""));
	assert_false(transcript_contains("s3cr"));
	imap_client_free(&c);
	fake_server_stop(&f);

	o = fake_start(&f, "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGINDISABLED AUTH=PLAIN] hi\r\n", echo_command);
	o.password = "s3cret-pw";
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_AUTH_FAILED);
	/* base64("\0u\0s3cret-pw") is AHUAczNjcmV0LXB3 */
	assert_string_equal(w.detail, "AUTHENTICATE: [AUTHENTICATIONFAILED] you sent: A1 AUTHENTICATE PLAIN <redacted>");
	assert_false(transcript_contains("AHUAczNjcmV0LXB3"));
	imap_client_free(&c);
	fake_server_stop(&f);
}

/* A server that answers an APPEND before its literal is complete is out of step. */
static void early_answer(struct fake_server *f, const char *line)
{
	if (strstr(line, "APPEND") != NULL)
		fake_server_send(f, "A1 NO [OVERQUOTA] full\r\n");
}

static void test_hostile_answer_during_append(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter w, wa, wn;
	struct imap_client *c;
	struct imap_append *a;
	struct mh_err err;
	struct imap_cmd_handlers h = {.done = on_done, .ctx = &wa};
	struct imap_cmd_handlers hn = {.done = on_done, .ctx = &wn};

	(void)state;
	o = fake_start(&f, preauth, early_answer);
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_OK);
	memset(&wa, 0, sizeof(wa));
	memset(&wn, 0, sizeof(wn));
	a = imap_client_append_start(c, "INBOX", &h, &err);
	assert_int_equal(imap_append_add(a, NULL, NULL, 10, &err), 0);
	imap_append_data_mem(a, "12345", 5);
	assert_int_equal(imap_client_cmd(c, &hn, &err, "NOOP"), 0);
	fx_run(&wa.done);
	assert_int_equal(wa.code, MH_E_OVER_QUOTA);
	fx_run(&wn.done);
	assert_int_equal(wn.code, MH_E_PROTOCOL);
	/* the handle stays usable until finish; data is dropped */
	imap_append_data_mem(a, "67890", 5);
	imap_append_finish(a);
	assert_int_equal(wa.calls, 1);
	assert_int_equal(wn.calls, 1);
	imap_client_free(&c);
	fake_server_stop(&f);
}

/* A short literal: we owe the server bytes, so the connection goes. */
static void test_append_short_literal_closes(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter w, wa;
	struct imap_client *c;
	struct imap_append *a;
	struct mh_err err;
	struct imap_cmd_handlers h = {.done = on_done, .ctx = &wa};

	(void)state;
	o = fake_start(&f, preauth, silent);
	c = open_client(&o, NULL, &w);
	memset(&wa, 0, sizeof(wa));
	a = imap_client_append_start(c, "INBOX", &h, &err);
	assert_int_equal(imap_append_add(a, NULL, NULL, 10, &err), 0);
	imap_append_data_mem(a, "12345", 5);
	imap_append_finish(a);
	assert_false(wa.done); /* never from inside the API call */
	fx_run(&wa.done);
	assert_int_equal(wa.calls, 1);
	assert_int_equal(wa.code, MH_E_CONNECTION_LOST);
	imap_client_free(&c);
	fake_server_stop(&f);
}

/* A server that answers every command OK, "+ go" to synchronizing literals, and NO
 * [TOOBIG] to any APPEND literal of 100000 bytes or more. */
static void ok_all(struct fake_server *f, const char *line)
{
	static char tag[32];
	size_t n = strlen(line);
	bool new_cmd = f->step == 0;

	if (new_cmd) {
		size_t t = strcspn(line, " ");
		snprintf(tag, sizeof(tag), "%.*s", (int)(t < 31 ? t : 31), line);
	}
	if (n > 0 && line[n - 1] == '}') {
		const char *brace = strrchr(line, '{');
		unsigned long size = brace != NULL ? strtoul(brace + 1, NULL, 10) : 0;
		f->step = 1;
		if (strstr(line, "+}") != NULL)
			return;
		if (size >= 100000) {
			char buf[96];
			snprintf(buf, sizeof(buf), "%s NO [TOOBIG] too big\r\n", tag);
			fake_server_send(f, buf);
			f->step = 0;
			return;
		}
		fake_server_send(f, "+ go\r\n");
		return;
	}
	{
		char buf[96];
		snprintf(buf, sizeof(buf), "%s OK done\r\n", tag);
		fake_server_send(f, buf);
	}
	f->step = 0;
}

static void test_astring_formatting(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter w;
	struct imap_client *c;
	struct mh_err err;
	static const struct {
		const char *arg, *line;
	} cases[] = {
		{"plain", "> A1 SELECT plain"},
		{"a b", "> A2 SELECT \"a b\""},
		{"q\"\\", "> A3 SELECT \"q\\\"\\\\\""},
		{"", "> A4 SELECT \"\""},
		{"NIL", "> A5 SELECT \"NIL\""},
		{"a]", "> A6 SELECT \"a]\""},
		{"%*", "> A7 SELECT \"%*\""},
		{"\xc3\xbc", "> A8 SELECT {2+}"},
		{"x\xffy", "> A9 SELECT {3+}"},
	};

	(void)state;
	o = fake_start(&f, preauth, ok_all);
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_OK);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(cmd_sync(c, NULL, "SELECT %s", cases[i].arg), MH_E_OK);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (transcript_find(cases[i].line, 0) == SIZE_MAX)
			fail_msg("no line \"%s\"", cases[i].line);
	assert_int_equal(transcript_find("> <literal 2 bytes>", 0), transcript_find("> A8 SELECT {2+}", 0) + 1);
	{
		struct waiter wn;
		struct imap_cmd_handlers h = {.done = on_done, .ctx = &wn};
		memset(&wn, 0, sizeof(wn));
		assert_int_equal(imap_client_cmd(c, &h, &err, "FETCH %u:%U (FLAGS) 100%% %a", 1u, (uint64_t)4294967295u, "X"), 0);
		fx_run(&wn.done);
		assert_true(transcript_contains("> A10 FETCH 1:4294967295 (FLAGS) 100% X"));
		/* bad formats fail at once and never call done */
		assert_int_equal(imap_client_cmd(c, &h, &err, "NOOP %q"), -1);
		assert_int_equal(err.code, MH_E_INTERNAL);
		assert_int_equal(imap_client_cmd(c, &h, &err, "NOOP %a", "x\r\nA1 LOGOUT"), -1);
		assert_int_equal(imap_client_cmd(c, &h, &err, "NOOP\r\nA1 LOGOUT"), -1);
		assert_int_equal(wn.calls, 1);
	}
	/* without LITERAL+: "{2}", wait for "+", then the rest */
	imap_client_disable_cap(c, "LITERAL+");
	assert_int_equal(cmd_sync(c, NULL, "SELECT %s", "\xc3\xbc"), MH_E_OK);
	assert_int_equal(transcript_find("< + go", 0), transcript_find("> A14 SELECT {2}", 0) + 1);
	imap_client_free(&c);
	fake_server_stop(&f);
}

/* A synchronizing literal refused with NO: done runs before finish, the rest is dropped,
 * and the connection stays in step. */
static void on_drained(void *ctx)
{
	*(bool *)ctx = true;
}

static void test_append_sync_literal_refused(void **state)
{
	struct fake_server f;
	struct imap_client_opts o;
	struct waiter w, wa;
	struct imap_client *c;
	struct imap_append *a;
	struct mh_err err;
	struct imap_cmd_handlers h = {.done = on_done, .ctx = &wa};
	char *chunk = malloc(65536);
	bool drained = false;

	(void)state;
	memset(chunk, 'x', 65536);
	o = fake_start(&f, "* PREAUTH [CAPABILITY IMAP4rev1 LITERAL+ MULTIAPPEND] ready\r\n", ok_all);
	c = open_client(&o, NULL, &w);
	memset(&wa, 0, sizeof(wa));
	a = imap_client_append_start(c, "INBOX", &h, &err);
	assert_int_equal(imap_append_add(a, NULL, NULL, 1000, &err), 0); /* {1000+} */
	imap_append_data_mem(a, chunk, 1000);
	assert_int_equal(imap_append_add(a, NULL, NULL, 200000, &err), 0); /* {200000}: too big */
	for (int i = 0; i < 3; i++)
		imap_append_data_mem(a, chunk, 65536);
	assert_true(imap_client_output_pending(c) >= 3 * 65536);
	imap_client_on_drain(c, 0, on_drained, &drained);
	fx_run(&wa.done);
	assert_int_equal(wa.code, MH_E_MSG_TOO_BIG);
	assert_string_equal(wa.detail, "APPEND: the largest of 2 messages is 200000 bytes: [TOOBIG] too big");
	assert_true(wa.had_tagged);
	/* later calls are harmless */
	imap_append_data_mem(a, chunk, 65536);
	assert_int_equal(imap_append_add(a, NULL, NULL, 10, &err), -1);
	assert_int_equal(err.code, MH_E_CANCELED);
	imap_append_finish(a);
	fx_run(&drained);
	assert_int_equal(imap_client_output_pending(c), 0);
	assert_int_equal(cmd_sync(c, NULL, "NOOP", NULL), MH_E_OK);
	assert_true(imap_client_is_open(c));
	assert_int_equal(wa.calls, 1);
	imap_client_free(&c);
	fake_server_stop(&f);
	free(chunk);
}

/* ---------------------------------------------------------------------------------------
 * pure helpers */

static void test_appenduid_parse(void **state)
{
	struct imap_response r;
	uint32_t uv, uids[8];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.kind = IMAP_RESP_TAGGED;
	r.status = IMAP_STATUS_OK;
	r.code = "APPENDUID";
	r.code_args = "38505 4,7:9";
	assert_int_equal(imap_reply_appenduid(&r, &uv, uids, 8), 4);
	assert_int_equal(uv, 38505);
	assert_int_equal(uids[0], 4);
	assert_int_equal(uids[1], 7);
	assert_int_equal(uids[3], 9);
	r.code_args = "38505 9:7";
	assert_int_equal(imap_reply_appenduid(&r, &uv, uids, 8), 3);
	assert_int_equal(uids[0], 7);
	r.code_args = "38505 1:4294967295";
	assert_int_equal(imap_reply_appenduid(&r, &uv, uids, 8), 8);
	static const char *const bad[] = {
		"38505", "38505 ", "0 5", "38505 0", "38505 4,", "38505 ,4", "38505 4::5", "38505 +4",
		"38505 4 ", "x 4", "38505 4294967296", "38505 4;5", " 38505 4", "38505  4",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r.code_args = bad[i];
		if (imap_reply_appenduid(&r, &uv, uids, 8) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	r.code = "COPYUID";
	r.code_args = "1 2";
	assert_int_equal(imap_reply_appenduid(&r, &uv, uids, 8), -1);
}

static enum mh_err_code map(enum imap_status st, const char *code, const char *text, const char *ctx)
{
	struct imap_response r;
	struct mh_err err;

	memset(&r, 0, sizeof(r));
	r.kind = IMAP_RESP_TAGGED;
	r.status = st;
	r.code = code;
	r.text = text;
	imap_err_from_reply(&r, ctx, &err);
	return err.code;
}

static void test_err_from_reply(void **state)
{
	struct imap_response r;
	struct mh_err err;

	(void)state;
	assert_int_equal(map(IMAP_STATUS_NO, "OVERQUOTA", "full", "APPEND"), MH_E_OVER_QUOTA);
	assert_int_equal(map(IMAP_STATUS_NO, "TOOBIG", "big", "APPEND"), MH_E_MSG_TOO_BIG);
	assert_int_equal(map(IMAP_STATUS_NO, "LIMIT", "big", "APPEND"), MH_E_MSG_TOO_BIG);
	assert_int_equal(map(IMAP_STATUS_NO, "LIMIT", "many", "SEARCH"), MH_E_UNAVAILABLE);
	assert_int_equal(map(IMAP_STATUS_NO, NULL, "nope", "APPEND"), MH_E_MSG_REJECTED);
	assert_int_equal(map(IMAP_STATUS_NO, "TRYCREATE", "no box", "APPEND"), MH_E_FOLDER_MISSING);
	assert_int_equal(map(IMAP_STATUS_NO, "NONEXISTENT", "no box", "SELECT"), MH_E_FOLDER_MISSING);
	assert_int_equal(map(IMAP_STATUS_NO, NULL, "no", "SELECT"), MH_E_FOLDER_SELECT);
	assert_int_equal(map(IMAP_STATUS_NO, NULL, "no", "EXAMINE"), MH_E_FOLDER_SELECT);
	assert_int_equal(map(IMAP_STATUS_NO, NULL, "no", "CREATE"), MH_E_FOLDER_CREATE);
	assert_int_equal(map(IMAP_STATUS_NO, "ALREADYEXISTS", "exists", "CREATE"), MH_E_FOLDER_CREATE);
	assert_int_equal(map(IMAP_STATUS_NO, "CANNOT", "bad name", "CREATE"), MH_E_FOLDER_NAME);
	assert_int_equal(map(IMAP_STATUS_NO, NULL, "bad", "LOGIN"), MH_E_AUTH_FAILED);
	assert_int_equal(map(IMAP_STATUS_NO, "AUTHENTICATIONFAILED", "bad", "LOGIN"), MH_E_AUTH_FAILED);
	assert_int_equal(map(IMAP_STATUS_NO, "AUTHORIZATIONFAILED", "bad", "LOGIN"), MH_E_MAILBOX_ACCESS_DENIED);
	assert_int_equal(map(IMAP_STATUS_NO, "CONTACTADMIN", "bad", "LOGIN"), MH_E_ACCOUNT_LOCKED);
	assert_int_equal(map(IMAP_STATUS_NO, "EXPIRED", "bad", "LOGIN"), MH_E_ACCOUNT_LOCKED);
	assert_int_equal(map(IMAP_STATUS_NO, "UNAVAILABLE", "later", "LOGIN"), MH_E_UNAVAILABLE);
	assert_int_equal(map(IMAP_STATUS_NO, "INUSE", "busy", "SELECT"), MH_E_UNAVAILABLE);
	assert_int_equal(map(IMAP_STATUS_BAD, NULL, "syntax", "NOOP"), MH_E_COMMAND_REJECTED);
	assert_int_equal(map(IMAP_STATUS_NO, NULL, "Server Unavailable. 15", "LOGIN"), MH_E_THROTTLED);
	assert_int_equal(map(IMAP_STATUS_NO, NULL, "[THROTTLED] slow down", "UID FETCH"), MH_E_THROTTLED);
	assert_int_equal(map(IMAP_STATUS_NO, NULL, "Too many simultaneous connections. (Failure)", "LOGIN"),
			 MH_E_THROTTLED);
	assert_int_equal(map(IMAP_STATUS_NO, NULL, "Account exceeded command or bandwidth limits. (Failure)",
			     "APPEND"),
			 MH_E_THROTTLED);
	assert_int_equal(map(IMAP_STATUS_NO, "EXPUNGEISSUED", "gone", "UID FETCH"), MH_E_MSG_VANISHED);

	memset(&r, 0, sizeof(r));
	r.kind = IMAP_RESP_TAGGED;
	r.status = IMAP_STATUS_NO;
	r.code = "OVERQUOTA";
	r.text = "Quota\x01 exceeded\r\n  now";
	imap_err_from_reply(&r, "APPEND", &err);
	assert_string_equal(err.detail, "APPEND: [OVERQUOTA] Quota exceeded now");
}

int main(void)
{
	/* a server that hangs up must not kill the test with SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_appenduid_parse),
		cmocka_unit_test(test_err_from_reply),
		FX_TEST(test_connect_refused),
		FX_TEST(test_connect_localhost_name),
		FX_TEST(test_dns_failure),
		FX_TEST(test_hostile_malformed_greeting),
		FX_TEST(test_hostile_greeting_bye),
		FX_TEST(test_hostile_10mb_line),
		FX_TEST(test_hostile_disconnect_mid_literal),
		FX_TEST(test_hostile_bye_mid_session),
		FX_TEST(test_hostile_unknown_tag_and_continuation),
		FX_TEST(test_hostile_silent_server_times_out),
		FX_TEST(test_hostile_silent_tls_server_times_out),
		FX_TEST(test_hostile_answers_then_hangup_while_paused),
		FX_TEST(test_hostile_starttls_injection),
		FX_TEST(test_hostile_no_starttls),
		FX_TEST(test_authenticate_plain),
		FX_TEST(test_hostile_echoes_password),
		FX_TEST(test_hostile_answer_during_append),
		FX_TEST(test_append_short_literal_closes),
		FX_TEST(test_astring_formatting),
		FX_TEST(test_append_sync_literal_refused),
		FX_TEST(test_open_starttls_verified),
		FX_TEST(test_open_implicit_tls_verified),
		FX_TEST(test_open_wrong_password),
		FX_TEST(test_tls_hostname_mismatch),
		FX_TEST(test_tls_untrusted_without_ca),
		FX_TEST(test_tls_insecure),
		FX_TEST(test_login_literal_password_sync),
		FX_TEST(test_pipelined_in_order),
		FX_TEST(test_append_single),
		FX_TEST(test_multiappend_50),
		FX_TEST(test_append_sync_literal),
		FX_TEST(test_append_5mb_stream_and_fetch),
		FX_TEST(test_append_over_appendlimit),
		FX_TEST(test_free_inside_done),
		FX_TEST(test_free_with_pending),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
