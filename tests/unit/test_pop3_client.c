/* test_pop3_client.c - the POP3 client against a real Dovecot (POP3 + STLS, POP3S), and
 * against a scripted hostile server living in the same event loop.
 *
 * Dovecot is started once for the group (dovecot_fixture.h, with APOP enabled) in a temp
 * dir and alice's INBOX is filled over IMAP with messages whose bytes the test keeps; if
 * Dovecot is not installed the Dovecot tests skip. Each test gets an event loop, a
 * transcript and a watchdog, and the scripted server runs in that loop (client_fixture.h). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "client_fixture.h"
#include "dovecot_fixture.h"
#include "imap_client.h"
#include "log.h"
#include "pop3_client.h"

/* ---------------------------------------------------------------------------------------
 * the messages delivered to alice */

#define NMSGS 6
#define BIG_SIZE (3u * 1024u * 1024u)

struct delivered {
	char *bytes;
	size_t len;
	uint32_t uid;
};

static struct {
	char bob_pass[301];
	uint32_t uidvalidity;
	struct delivered msgs[NMSGS];
} g;

static void set_msg(int i, const char *s, size_t n)
{
	g.msgs[i].bytes = malloc(n + 1);
	assert_non_null(g.msgs[i].bytes);
	memcpy(g.msgs[i].bytes, s, n);
	g.msgs[i].bytes[n] = '\0';
	g.msgs[i].len = n;
}

/* CRLF lines only: Dovecot gives POP3 clients CRLF line ends, so these come back as sent.
 * Lone CR and LF are covered by the scripted server. */
static void make_messages(void)
{
	static const char m1[] = "From: a@example.com\r\nSubject: one\r\n\r\nHello.\r\n";
	static const char m2[] = "Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n. space\r\nmiddle . dot\r\n"
				 "...\r\n.\r\nend\r\n";
	static const char m3[] = "Subject: empty body\r\n\r\n";
	static const char m4[] = "Subject: 8bit\r\n\r\ngr\xc3\xbc\xc3\x9f \xe2\x82\xac latin \xe9\r\n";
	static const char m6[] = "Subject: the last line is a dot\r\n\r\ntext\r\n.\r\n";
	char *big = malloc(BIG_SIZE);
	size_t o;

	assert_non_null(big);
	set_msg(0, m1, sizeof(m1) - 1);
	set_msg(1, m2, sizeof(m2) - 1);
	set_msg(2, m3, sizeof(m3) - 1);
	set_msg(3, m4, sizeof(m4) - 1);
	o = (size_t)snprintf(big, BIG_SIZE, "Subject: big\r\n\r\n");
	for (unsigned line = 0; o < BIG_SIZE - 200; line++) {
		/* every third line starts with a dot, every seventh is only a dot */
		if (line % 7 == 0) {
			memcpy(big + o, ".\r\n", 3);
			o += 3;
			continue;
		}
		if (line % 3 == 0)
			big[o++] = '.';
		for (unsigned k = 0; k < 60 + line % 17; k++)
			big[o++] = (char)('A' + (line + k) % 26);
		big[o++] = '\r';
		big[o++] = '\n';
	}
	set_msg(4, big, o);
	free(big);
	set_msg(5, m6, sizeof(m6) - 1);
}

/* ---------------------------------------------------------------------------------------
 * group fixture: one Dovecot */

static struct dovecot_fixture dovecot;

static bool fill_done;
static enum mh_err_code fill_code;

static void on_fill_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	uint32_t *uid = ctx;
	uint32_t uids[1];

	fill_done = true;
	fill_code = err != NULL ? err->code : MH_E_OK;
	if (tagged != NULL && err == NULL && imap_reply_appenduid(tagged, &g.uidvalidity, uids, 1) == 1)
		*uid = uids[0];
}

static void on_fill_open(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	(void)ctx;
	(void)tagged;
	fill_done = true;
	fill_code = err != NULL ? err->code : MH_E_OK;
}

/* APPENDs the messages to alice's INBOX over IMAP (plain, on loopback). */
static int fill_mailbox(void)
{
	struct event_base *base = event_base_new();
	struct imap_client_opts o = {.name = "fill", .host = "127.0.0.1", .port = dovecot.imap_port,
				     .security = MH_SEC_PLAIN, .user = "alice", .password = "secret",
				     .connect_timeout_ms = 10000, .command_timeout_ms = 30000};
	struct imap_client *c = imap_client_new(base, &o);
	struct mh_err err;
	int rc = 0;

	fill_done = false;
	imap_client_open(c, on_fill_open, NULL);
	if (imap_run_until(base, &fill_done) < 0 || fill_code != MH_E_OK)
		rc = -1;
	for (int i = 0; rc == 0 && i < NMSGS; i++) {
		struct imap_cmd_handlers h = {.done = on_fill_done, .ctx = &g.msgs[i].uid};
		struct imap_append *a = imap_client_append_start(c, "INBOX", &h, &err);

		fill_done = false;
		if (a == NULL || imap_append_add(a, "", NULL, g.msgs[i].len, &err) < 0) {
			rc = -1;
			break;
		}
		imap_append_data_mem(a, g.msgs[i].bytes, g.msgs[i].len);
		imap_append_finish(a);
		if (imap_run_until(base, &fill_done) < 0 || fill_code != MH_E_OK || g.msgs[i].uid == 0)
			rc = -1;
	}
	imap_client_free(&c);
	event_base_free(base);
	return rc;
}

static int group_setup(void **state)
{
	(void)state;
	mh_log_setup(MH_LOG_TEXT, getenv("MH_TEST_DEBUG") ? MH_LOG_DEBUG : MH_LOG_ERROR);
	make_messages();
	memset(g.bob_pass, 'p', sizeof(g.bob_pass) - 1); /* AUTH PLAIN no longer fits in 255 octets */
	if (dovecot_fixture_start(&dovecot, "pop3c", "--extra 'auth_mechanisms = plain login apop'") < 0)
		return -1;
	if (dovecot.missing)
		return 0;
	if (dovecot_fixture_adduser(&dovecot, "alice", "secret") < 0 ||
	    dovecot_fixture_adduser(&dovecot, "bob", g.bob_pass) < 0)
		return -1;
	if (fill_mailbox() < 0) {
		fprintf(stderr, "# could not fill alice's INBOX over IMAP\n");
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	dovecot_fixture_stop(&dovecot);
	for (int i = 0; i < NMSGS; i++)
		free(g.msgs[i].bytes);
	return 0;
}

/* ---------------------------------------------------------------------------------------
 * transcripts (client_fixture.h) */

/* Every line we sent begins with one of the client's verbs (or is an AUTH response), and
 * none is DELE or RSET. */
static void assert_read_only_transcript(void)
{
	static const char *const allowed[] = {"CAPA", "STLS", "AUTH", "USER", "PASS", "APOP",
					      "STAT", "UIDL", "LIST", "RETR", "QUIT", "<redacted>"};
	size_t sent = 0;

	for (size_t i = 0; i < fx->tr.n; i++) {
		const char *l = fx->tr.lines[i];
		bool ok = false;

		if (l[0] != '>')
			continue;
		sent++;
		if (strncasecmp(l + 2, "DELE", 4) == 0 || strncasecmp(l + 2, "RSET", 4) == 0)
			fail_msg("the client sent \"%s\"", l);
		for (size_t k = 0; k < sizeof(allowed) / sizeof(allowed[0]); k++) {
			size_t n = strlen(allowed[k]);
			if (strncmp(l + 2, allowed[k], n) == 0 && (l[2 + n] == '\0' || l[2 + n] == ' '))
				ok = true;
		}
		if (!ok)
			fail_msg("unexpected command \"%s\"", l);
	}
	assert_true(sent > 0);
}

/* ---------------------------------------------------------------------------------------
 * completions */

struct waiter {
	bool done;
	int calls;
	enum mh_err_code code;
	char detail[MH_ERR_DETAIL_MAX];
	int order;
	/* STAT */
	uint32_t count;
	uint64_t octets;
	/* UIDL / LIST */
	size_t n;
	uint32_t msgnos[64];
	char uids[64][80];
	uint64_t sizes[64];
	/* RETR */
	struct evbuffer *body;
	uint64_t size;
};

static int order_counter;

static void waiter_done(struct waiter *w, const struct mh_err *err)
{
	w->calls++;
	w->done = true;
	w->order = order_counter++;
	w->code = err != NULL ? err->code : MH_E_OK;
	snprintf(w->detail, sizeof(w->detail), "%s", err != NULL ? err->detail : "");
}

static void on_done(void *ctx, const struct mh_err *err)
{
	waiter_done(ctx, err);
}

static void on_stat(void *ctx, uint32_t count, uint64_t octets, const struct mh_err *err)
{
	struct waiter *w = ctx;

	w->count = count;
	w->octets = octets;
	waiter_done(w, err);
}

static void on_uidl(void *ctx, const struct pop3_uidl_entry *e, size_t n, const struct mh_err *err)
{
	struct waiter *w = ctx;

	w->n = n;
	for (size_t i = 0; i < n && i < 64; i++) {
		w->msgnos[i] = e[i].msgno;
		snprintf(w->uids[i], sizeof(w->uids[i]), "%s", e[i].uid);
	}
	waiter_done(w, err);
}

static void on_list(void *ctx, const struct pop3_list_entry *e, size_t n, const struct mh_err *err)
{
	struct waiter *w = ctx;

	w->n = n;
	for (size_t i = 0; i < n && i < 64; i++) {
		w->msgnos[i] = e[i].msgno;
		w->sizes[i] = e[i].size;
	}
	waiter_done(w, err);
}

static void on_body(void *ctx, struct evbuffer *in, size_t len)
{
	struct waiter *w = ctx;

	if (w->body == NULL)
		w->body = evbuffer_new();
	/* moved, not copied */
	assert_int_equal(evbuffer_remove_buffer(in, w->body, len), (int)len);
}

static void on_retr(void *ctx, uint64_t size, const struct mh_err *err)
{
	struct waiter *w = ctx;

	w->size = size;
	waiter_done(w, err);
}

static void waiter_free(struct waiter *w)
{
	if (w->body != NULL)
		evbuffer_free(w->body);
	w->body = NULL;
}

static void assert_body(struct waiter *w, const struct delivered *m)
{
	size_t n = w->body != NULL ? evbuffer_get_length(w->body) : 0;

	if (w->code != MH_E_OK)
		fail_msg("RETR failed: %s: %s", mh_err_name(w->code), w->detail);
	assert_int_equal(w->size, m->len);
	assert_int_equal(n, m->len);
	if (n > 0)
		assert_memory_equal(evbuffer_pullup(w->body, -1), m->bytes, m->len);
}

/* Options for user at the Dovecot. Over TLS they use fx->tls, made to trust the test CA
 * unless the test has made its own. */
static struct pop3_client_opts dovecot_opts(enum mh_security sec, const char *user, const char *pass)
{
	struct pop3_client_opts o;

	memset(&o, 0, sizeof(o));
	o.name = "test";
	o.host = "127.0.0.1";
	o.security = sec;
	o.port = sec == MH_SEC_TLS ? dovecot.pop3s_port : dovecot.pop3_port;
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

/* Opens a client (with cap disabled when not NULL); the client is returned even when the
 * open failed, with w filled in. */
static struct pop3_client *open_client(struct pop3_client_opts *o, const char *disable, struct waiter *w)
{
	struct pop3_client *c = pop3_client_new(fx->base, o);

	if (disable != NULL)
		pop3_client_disable_cap(c, disable);
	memset(w, 0, sizeof(*w));
	pop3_client_open(c, on_done, w);
	assert_false(w->done); /* never from inside open() */
	fx_run(&w->done);
	assert_int_equal(w->calls, 1);
	return c;
}

static struct pop3_client *open_ok(enum mh_security sec, const char *user, const char *pass, const char *disable)
{
	struct pop3_client_opts o;
	struct waiter w;
	struct pop3_client *c;

	o = dovecot_opts(sec, user, pass);
	c = open_client(&o, disable, &w);
	if (w.code != MH_E_OK)
		fail_msg("open failed: %s: %s", mh_err_name(w.code), w.detail);
	assert_true(pop3_client_is_open(c));
	return c;
}

static enum mh_err_code open_expect(struct pop3_client_opts *o, const char *disable, char *detail, size_t len)
{
	struct waiter w;
	struct pop3_client *c = open_client(o, disable, &w);

	assert_false(pop3_client_is_open(c));
	if (detail != NULL)
		snprintf(detail, len, "%s", w.detail);
	pop3_client_free(&c);
	return w.code;
}

/* A failed open, and the step the failure is put down to (the health check's). */
static enum mh_err_code open_expect_stage(struct pop3_client_opts *o, enum pop3_stage stage)
{
	struct waiter w;
	struct pop3_client *c = open_client(o, NULL, &w);

	assert_int_equal(pop3_client_stage(c), stage);
	pop3_client_free(&c);
	return w.code;
}

/* ---------------------------------------------------------------------------------------
 * opening and logging in (Dovecot) */

static void test_login_user_pass_stls(void **state)
{
	struct pop3_client *c;
	struct mh_tls_info info;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_ok(MH_SEC_STARTTLS, "alice", "secret", "SASL");
	assert_string_equal(pop3_client_login_method(c), "USER");
	assert_true(pop3_client_tls_info(c, &info));
	assert_true(info.verified);
	/* CAPA, STLS, CAPA again over TLS (RFC 2595), then USER and PASS, then CAPA */
	assert_int_equal(transcript_find("> CAPA", 0), transcript_find("> ", 0));
	assert_true(transcript_find("> STLS", 0) < transcript_find("> USER", 0));
	assert_true(transcript_find("> CAPA", transcript_find("> STLS", 0)) < transcript_find("> USER", 0));
	assert_true(transcript_find("> USER <redacted>", 0) != SIZE_MAX);
	assert_true(transcript_find("> PASS <redacted>", 0) != SIZE_MAX);
	assert_true(transcript_find("> CAPA", transcript_find("> PASS", 0)) != SIZE_MAX);
	assert_false(transcript_contains("secret"));
	assert_false(transcript_contains("alice"));
	/* after login Dovecot offers UIDL and PIPELINING, no longer STLS */
	assert_true(pop3_client_has_cap(c, "UIDL"));
	assert_true(pop3_client_has_cap(c, "pipelining"));
	assert_false(pop3_client_has_cap(c, "STLS"));
	assert_int_equal(pop3_client_stage(c), POP3_STAGE_READY);
	pop3_client_free(&c);
	assert_null(c);
}

static void test_login_auth_plain_stls(void **state)
{
	struct pop3_client *c;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_ok(MH_SEC_STARTTLS, "alice", "secret", NULL);
	assert_string_equal(pop3_client_login_method(c), "AUTH PLAIN");
	assert_true(transcript_find("> AUTH PLAIN <redacted>", 0) != SIZE_MAX);
	assert_true(transcript_find("> STLS", 0) < transcript_find("> AUTH", 0));
	assert_false(transcript_contains("> USER"));
	assert_false(transcript_contains("secret"));
	pop3_client_free(&c);
}

static void test_login_auth_plain_two_steps(void **state)
{
	struct pop3_client *c;
	size_t at;

	(void)state;
	dovecot_fixture_need(&dovecot);
	/* bob's 300-byte password does not fit an AUTH line: "AUTH PLAIN", "+ ", response */
	c = open_ok(MH_SEC_TLS, "bob", g.bob_pass, NULL);
	assert_string_equal(pop3_client_login_method(c), "AUTH PLAIN");
	at = transcript_find("> AUTH PLAIN", 0);
	assert_true(at != SIZE_MAX);
	assert_string_equal(fx->tr.lines[at], "> AUTH PLAIN");
	assert_true(strncmp(fx->tr.lines[at + 1], "< +", 3) == 0);
	assert_string_equal(fx->tr.lines[at + 2], "> <redacted>");
	assert_false(transcript_contains("ppppp"));
	pop3_client_free(&c);
}

static void test_login_pop3s(void **state)
{
	struct pop3_client *c;
	struct mh_tls_info info;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_ok(MH_SEC_TLS, "alice", "secret", "SASL");
	assert_false(transcript_contains("> STLS"));
	assert_string_equal(pop3_client_login_method(c), "USER");
	assert_true(pop3_client_tls_info(c, &info));
	assert_true(info.protocol[0] != '\0');
	pop3_client_free(&c);
}

static void test_login_apop(void **state)
{
	struct pop3_client_opts o;
	struct waiter w;
	struct pop3_client *c;

	(void)state;
	dovecot_fixture_need(&dovecot);
	/* plain on loopback: APOP is for servers without TLS; SASL hidden so APOP is chosen */
	o = dovecot_opts(MH_SEC_PLAIN, "alice", "secret");
	o.allow_apop = true;
	c = open_client(&o, "SASL", &w);
	if (w.code != MH_E_OK)
		fail_msg("open failed: %s: %s", mh_err_name(w.code), w.detail);
	assert_true(pop3_client_apop_offered(c));
	assert_string_equal(pop3_client_login_method(c), "APOP");
	assert_true(transcript_find("> APOP <redacted>", 0) != SIZE_MAX);
	assert_false(transcript_contains("> USER"));
	pop3_client_free(&c);
}

/* Runs last among the Dovecot tests: after a failed login Dovecot delays every login from
 * the same address (2 s, doubling up to 15 s) until one succeeds, so each failure here
 * costs seconds (APOP's failure mapping is in test_err_from_reply). */
static void test_wrong_password(void **state)
{
	struct pop3_client_opts o;
	char detail[MH_ERR_DETAIL_MAX];

	(void)state;
	dovecot_fixture_need(&dovecot);
	o = dovecot_opts(MH_SEC_TLS, "alice", "wrong-pw");
	/* AUTH PLAIN */
	assert_int_equal(open_expect(&o, NULL, detail, sizeof(detail)), MH_E_AUTH_FAILED);
	assert_non_null(strstr(detail, "AUTH: [AUTH]"));
	/* USER/PASS */
	assert_int_equal(open_expect(&o, "SASL", detail, sizeof(detail)), MH_E_AUTH_FAILED);
	assert_non_null(strstr(detail, "PASS: [AUTH]"));
	assert_false(transcript_contains("wrong-pw"));
}

static void test_stls_required_unless_allowed(void **state)
{
	struct pop3_client_opts o;
	struct waiter w;
	struct pop3_client *c;
	struct mh_tls_info info;

	(void)state;
	dovecot_fixture_need(&dovecot);
	o = dovecot_opts(MH_SEC_STARTTLS, "alice", "secret");
	/* a server that does not offer STLS: refused */
	assert_int_equal(open_expect(&o, "STLS", NULL, 0), MH_E_STARTTLS_UNAVAILABLE);
	assert_false(transcript_contains("> USER"));
	assert_false(transcript_contains("> AUTH"));
	/* unless plaintext is allowed */
	o.allow_plaintext = true;
	c = open_client(&o, "STLS", &w);
	assert_int_equal(w.code, MH_E_OK);
	assert_false(pop3_client_tls_info(c, &info));
	pop3_client_free(&c);
}

static void test_tls_certificate_problems(void **state)
{
	struct pop3_client_opts o;

	(void)state;
	dovecot_fixture_need(&dovecot);
	/* without the test CA the certificate is untrusted, for POP3S and STLS */
	fx->tls = make_tls(NULL, false);
	o = dovecot_opts(MH_SEC_TLS, "alice", "secret");
	assert_int_equal(open_expect_stage(&o, POP3_STAGE_TLS), MH_E_TLS_CERT_UNTRUSTED);
	o = dovecot_opts(MH_SEC_STARTTLS, "alice", "secret");
	assert_int_equal(open_expect_stage(&o, POP3_STAGE_TLS), MH_E_TLS_CERT_UNTRUSTED);
	mh_tls_free(&fx->tls);
	/* with it, but for another name */
	fx->tls = make_tls(dovecot.ca_file, false);
	o = dovecot_opts(MH_SEC_TLS, "alice", "secret");
	o.tls_name = "wrong.example";
	assert_int_equal(open_expect(&o, NULL, NULL, 0), MH_E_TLS_CERT_HOSTNAME);
}

static void test_connect_refused(void **state)
{
	struct pop3_client_opts o;
	struct waiter w;
	struct pop3_client *c;
	struct mh_err err;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = closed_port();
	o.security = MH_SEC_PLAIN;
	o.user = "x";
	o.password = "y";
	c = open_client(&o, NULL, &w);
	assert_int_equal(w.code, MH_E_CONNECT_REFUSED);
	assert_int_equal(pop3_client_stage(c), POP3_STAGE_CONNECT);
	/* commands on a dead connection fail at once, without a callback */
	assert_int_equal(pop3_client_stat(c, on_stat, &w, &err), -1);
	assert_int_equal(err.code, MH_E_CONNECT_REFUSED);
	pop3_client_free(&c);
}

/* ---------------------------------------------------------------------------------------
 * STAT, UIDL, LIST, RETR (Dovecot) */

static void test_stat_uidl_list_retr(void **state)
{
	struct pop3_client *c;
	struct waiter ws, wu, wl, wr[NMSGS];
	struct pop3_retr_handlers h;
	struct mh_err err;
	uint64_t total = 0;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_ok(MH_SEC_STARTTLS, "alice", "secret", NULL);
	memset(&ws, 0, sizeof(ws));
	assert_int_equal(pop3_client_stat(c, on_stat, &ws, &err), 0);
	fx_run(&ws.done);
	assert_int_equal(ws.code, MH_E_OK);
	assert_int_equal(ws.count, NMSGS);
	for (int i = 0; i < NMSGS; i++)
		total += g.msgs[i].len;
	assert_int_equal(ws.octets, total);

	memset(&wu, 0, sizeof(wu));
	assert_int_equal(pop3_client_uidl(c, on_uidl, &wu, &err), 0);
	fx_run(&wu.done);
	assert_int_equal(wu.code, MH_E_OK);
	assert_int_equal(wu.n, NMSGS);
	for (int i = 0; i < NMSGS; i++) {
		char want[32];

		/* pop3_uidl_format = %08Xu%08Xv: the IMAP UID and UIDVALIDITY of the APPEND
		 * (Dovecot's %X is lower-case hex) */
		snprintf(want, sizeof(want), "%08x%08x", g.msgs[i].uid, g.uidvalidity);
		assert_int_equal(wu.msgnos[i], i + 1);
		assert_string_equal(wu.uids[i], want);
	}

	memset(&wl, 0, sizeof(wl));
	assert_int_equal(pop3_client_list(c, on_list, &wl, &err), 0);
	fx_run(&wl.done);
	assert_int_equal(wl.code, MH_E_OK);
	assert_int_equal(wl.n, NMSGS);
	for (int i = 0; i < NMSGS; i++) {
		assert_int_equal(wl.msgnos[i], i + 1);
		assert_int_equal(wl.sizes[i], g.msgs[i].len);
	}

	for (int i = 0; i < NMSGS; i++) {
		memset(&wr[i], 0, sizeof(wr[i]));
		h = (struct pop3_retr_handlers){.data = on_body, .done = on_retr, .ctx = &wr[i]};
		assert_int_equal(pop3_client_retr(c, (uint32_t)i + 1, &h, &err), 0);
		fx_run(&wr[i].done);
		assert_int_equal(wr[i].calls, 1);
		assert_body(&wr[i], &g.msgs[i]);
		waiter_free(&wr[i]);
	}
	assert_true(transcript_contains("< <message 3145"));
	pop3_client_free(&c);
}

static void test_retr_missing_message(void **state)
{
	struct pop3_client *c;
	struct waiter wr, ws;
	struct pop3_retr_handlers h = {.data = on_body, .done = on_retr, .ctx = &wr};
	struct mh_err err;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_ok(MH_SEC_TLS, "alice", "secret", NULL);
	memset(&wr, 0, sizeof(wr));
	assert_int_equal(pop3_client_retr(c, 999, &h, &err), 0);
	fx_run(&wr.done);
	assert_int_equal(wr.code, MH_E_MSG_VANISHED);
	assert_non_null(strstr(wr.detail, "RETR: "));
	assert_null(wr.body);
	assert_int_equal(pop3_client_retr(c, 0, &h, &err), -1);
	/* the connection stays usable */
	assert_true(pop3_client_is_open(c));
	memset(&ws, 0, sizeof(ws));
	assert_int_equal(pop3_client_stat(c, on_stat, &ws, &err), 0);
	fx_run(&ws.done);
	assert_int_equal(ws.code, MH_E_OK);
	assert_int_equal(ws.count, NMSGS);
	pop3_client_free(&c);
}

/* Index of the first received line after from that starts with "< +OK" or "< -ERR". */
static size_t next_reply(size_t from)
{
	for (size_t i = from; i < fx->tr.n; i++)
		if (strncmp(fx->tr.lines[i], "< +OK", 5) == 0 || strncmp(fx->tr.lines[i], "< -ERR", 6) == 0)
			return i;
	return SIZE_MAX;
}

static void retr_all(struct pop3_client *c, struct waiter *wr, int rounds)
{
	struct mh_err err;

	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < NMSGS; i++) {
			struct waiter *w = &wr[r * NMSGS + i];
			struct pop3_retr_handlers h = {.data = on_body, .done = on_retr, .ctx = w};

			memset(w, 0, sizeof(*w));
			assert_int_equal(pop3_client_retr(c, (uint32_t)i + 1, &h, &err), 0);
		}
	}
	fx_run(&wr[rounds * NMSGS - 1].done);
	for (int k = 0; k < rounds * NMSGS; k++) {
		assert_int_equal(wr[k].calls, 1);
		if (k > 0)
			assert_true(wr[k].order > wr[k - 1].order); /* in order */
		assert_body(&wr[k], &g.msgs[k % NMSGS]);
		waiter_free(&wr[k]);
	}
}

static void test_pipelined_retr(void **state)
{
	struct pop3_client *c;
	struct waiter wr[3 * NMSGS];
	size_t first, sent_before_reply = 0;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_ok(MH_SEC_TLS, "alice", "secret", NULL);
	assert_true(pop3_client_has_cap(c, "PIPELINING"));
	first = fx->tr.n;
	retr_all(c, wr, 3);
	/* all 18 RETRs went out before the first reply came back */
	for (size_t i = first; i < next_reply(first); i++)
		if (strncmp(fx->tr.lines[i], "> RETR", 6) == 0)
			sent_before_reply++;
	assert_int_equal(sent_before_reply, 3 * NMSGS);
	pop3_client_free(&c);
}

static void test_one_at_a_time_without_pipelining(void **state)
{
	struct pop3_client *c;
	struct waiter wr[NMSGS];
	size_t first, at;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_ok(MH_SEC_TLS, "alice", "secret", "PIPELINING");
	assert_false(pop3_client_has_cap(c, "PIPELINING"));
	first = fx->tr.n;
	retr_all(c, wr, 1);
	/* each RETR waits for the reply to the one before */
	at = first;
	for (int i = 0; i < NMSGS; i++) {
		size_t sent = transcript_find("> RETR", at), reply = next_reply(sent);

		assert_true(sent != SIZE_MAX && reply != SIZE_MAX);
		if (i + 1 < NMSGS)
			assert_true(transcript_find("> RETR", sent + 1) > reply);
		at = reply;
	}
	pop3_client_free(&c);
}

/* A whole session, as a migration would run it: the transcript holds no DELE and no RSET,
 * and afterwards the mailbox still holds every message. */
static void test_session_never_deletes(void **state)
{
	struct pop3_client *c;
	struct waiter ws, wu, wl, wq, wr[NMSGS];
	struct mh_err err;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_ok(MH_SEC_STARTTLS, "alice", "secret", "SASL");
	memset(&ws, 0, sizeof(ws));
	memset(&wu, 0, sizeof(wu));
	memset(&wl, 0, sizeof(wl));
	memset(&wq, 0, sizeof(wq));
	assert_int_equal(pop3_client_stat(c, on_stat, &ws, &err), 0);
	assert_int_equal(pop3_client_uidl(c, on_uidl, &wu, &err), 0);
	assert_int_equal(pop3_client_list(c, on_list, &wl, &err), 0);
	retr_all(c, wr, 1);
	assert_int_equal(pop3_client_quit(c, on_done, &wq, &err), 0);
	/* nothing after QUIT */
	assert_false(pop3_client_is_open(c));
	assert_int_equal(pop3_client_stat(c, on_stat, &ws, &err), -1);
	assert_int_equal(err.code, MH_E_CANCELED);
	fx_run(&wq.done);
	assert_int_equal(wq.calls, 1);
	assert_int_equal(wq.code, MH_E_OK);
	assert_true(transcript_find("> QUIT", 0) != SIZE_MAX);
	assert_read_only_transcript();
	pop3_client_free(&c);

	/* a new session sees the same messages */
	c = open_ok(MH_SEC_TLS, "alice", "secret", NULL);
	memset(&ws, 0, sizeof(ws));
	assert_int_equal(pop3_client_stat(c, on_stat, &ws, &err), 0);
	fx_run(&ws.done);
	assert_int_equal(ws.count, NMSGS);
	assert_read_only_transcript();
	pop3_client_free(&c);
}

static void test_free_with_pending(void **state)
{
	struct pop3_client *c;
	struct waiter w[3];
	struct mh_err err;

	(void)state;
	dovecot_fixture_need(&dovecot);
	c = open_ok(MH_SEC_TLS, "alice", "secret", NULL);
	memset(w, 0, sizeof(w));
	assert_int_equal(pop3_client_stat(c, on_stat, &w[0], &err), 0);
	assert_int_equal(pop3_client_uidl(c, on_uidl, &w[1], &err), 0);
	assert_int_equal(pop3_client_list(c, on_list, &w[2], &err), 0);
	pop3_client_free(&c);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w[i].calls, 1);
		assert_int_equal(w[i].code, MH_E_CANCELED);
	}
}

struct free_in_done {
	struct pop3_client *c;
	struct waiter w;
};

static void free_in_stat(void *ctx, uint32_t count, uint64_t octets, const struct mh_err *err)
{
	struct free_in_done *f = ctx;

	on_stat(&f->w, count, octets, err);
	pop3_client_free(&f->c);
}

static void test_free_inside_callback(void **state)
{
	struct free_in_done f;
	struct waiter w2;
	struct mh_err err;

	(void)state;
	dovecot_fixture_need(&dovecot);
	memset(&f, 0, sizeof(f));
	memset(&w2, 0, sizeof(w2));
	f.c = open_ok(MH_SEC_TLS, "alice", "secret", NULL);
	assert_int_equal(pop3_client_stat(f.c, free_in_stat, &f, &err), 0);
	assert_int_equal(pop3_client_uidl(f.c, on_uidl, &w2, &err), 0);
	fx_run(&f.w.done);
	assert_null(f.c);
	assert_int_equal(f.w.code, MH_E_OK);
	/* the UIDL queued behind it completes once, canceled */
	assert_int_equal(w2.calls, 1);
	assert_int_equal(w2.code, MH_E_CANCELED);
}

/* ---------------------------------------------------------------------------------------
 * a scripted server in the same loop (client_fixture.h) */

struct reply {
	const char *verb; /* the command it answers (first word, upper case) */
	const char *bytes;
	size_t len;      /* 0: strlen(bytes) */
	bool close;      /* hang up after sending it */
	size_t garbage;  /* then send this many bytes of 'x' without a line end */
};

/* The scripted POP3 server: a fake_server (client_fixture.h) that answers each command
 * with the reply for its verb, or -ERR when it has none. */
struct fake {
	struct fake_server srv;
	struct reply replies[16];
	size_t nreplies;
};

static void fake_answer(struct fake_server *srv, const char *line)
{
	struct fake *f = srv->ctx;
	char verb[16];
	size_t n = strcspn(line, " ");

	if (srv->close_when_flushed)
		return; /* hanging up: pipelined commands behind go unanswered */
	snprintf(verb, sizeof(verb), "%.*s", (int)(n < sizeof(verb) ? n : sizeof(verb) - 1), line);
	for (size_t i = 0; i < f->nreplies; i++) {
		const struct reply *r = &f->replies[i];

		if (strcasecmp(r->verb, verb) != 0)
			continue;
		fake_server_write(srv, r->bytes, r->len != 0 ? r->len : strlen(r->bytes));
		if (r->garbage > 0)
			fake_server_send_filler(srv, r->garbage);
		if (r->close)
			fake_server_hang_up(srv);
		return;
	}
	fake_server_send(srv, "-ERR unknown command\r\n");
}

/* Starts a server that greets with greeting and answers nothing yet (fake_reply()). */
static void fake_start(struct fake *f, const char *greeting)
{
	memset(f, 0, sizeof(*f));
	fake_server_start(&f->srv, greeting, fake_answer, f);
}

static void fake_stop(struct fake *f)
{
	fake_server_stop(&f->srv);
}

static void fake_reply(struct fake *f, const char *verb, const char *bytes)
{
	assert_true(f->nreplies < sizeof(f->replies) / sizeof(f->replies[0]));
	f->replies[f->nreplies++] = (struct reply){.verb = verb, .bytes = bytes};
}

static struct reply *fake_last(struct fake *f)
{
	return &f->replies[f->nreplies - 1];
}

/* A server that logs in anyone with USER/PASS and offers PIPELINING. */
static void fake_start_logged_in(struct fake *f)
{
	fake_start(f, "+OK ready\r\n");
	fake_reply(f, "CAPA", "+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n");
	fake_reply(f, "USER", "+OK\r\n");
	fake_reply(f, "PASS", "+OK logged in\r\n");
}

/* A server that offers USER/PASS and refuses the password with reply. */
static void fake_start_refusing_pass(struct fake *f, const char *reply)
{
	fake_start(f, "+OK ready\r\n");
	fake_reply(f, "CAPA", "+OK\r\nUSER\r\n.\r\n");
	fake_reply(f, "USER", "+OK\r\n");
	fake_reply(f, "PASS", reply);
}

static struct pop3_client_opts fake_opts(struct fake *f)
{
	struct pop3_client_opts o;

	memset(&o, 0, sizeof(o));
	o.name = "fake";
	o.host = "127.0.0.1";
	o.port = f->srv.port;
	o.security = MH_SEC_PLAIN;
	o.user = "u";
	o.password = "p4ssw0rd!";
	o.connect_timeout_ms = 5000;
	o.command_timeout_ms = 5000;
	o.trace = on_trace;
	o.trace_ctx = &fx->tr;
	return o;
}

/* fake_opts() for STLS, with a TLS context that checks nothing: no fake server gets as
 * far as a handshake that could succeed. */
static struct pop3_client_opts fake_stls_opts(struct fake *f)
{
	struct pop3_client_opts o = fake_opts(f);

	if (fx->tls == NULL)
		fx->tls = make_tls(NULL, true);
	o.security = MH_SEC_STARTTLS;
	o.tls = fx->tls;
	return o;
}

/* Opens a client that must log in, as a fake server's script allows. */
static struct pop3_client *fake_open(struct pop3_client_opts *o)
{
	struct waiter w;
	struct pop3_client *c = open_client(o, NULL, &w);

	if (w.code != MH_E_OK)
		fail_msg("fake open: %s: %s", mh_err_name(w.code), w.detail);
	return c;
}

static void test_hostile_greetings(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	char detail[MH_ERR_DETAIL_MAX];

	(void)state;
	fake_start(&f, "hello there\r\n");
	o = fake_opts(&f);
	assert_int_equal(open_expect(&o, NULL, detail, sizeof(detail)), MH_E_PROTOCOL);
	assert_non_null(strstr(detail, "does not start with +OK or -ERR"));
	fake_stop(&f);

	fake_start(&f, "-ERR [SYS/TEMP] overloaded, try later\r\n");
	o = fake_opts(&f);
	assert_int_equal(open_expect(&o, NULL, detail, sizeof(detail)), MH_E_SERVER_ERROR);
	assert_string_equal(detail, "greeting: [SYS/TEMP] overloaded, try later");
	fake_stop(&f);

	fake_start(&f, "-ERR Maximum number of connections from user+IP exceeded\r\n");
	o = fake_opts(&f);
	assert_int_equal(open_expect(&o, NULL, NULL, 0), MH_E_THROTTLED);
	fake_stop(&f);

	fake_start(&f, "+OK ready\n");
	o = fake_opts(&f);
	assert_int_equal(open_expect(&o, NULL, NULL, 0), MH_E_PROTOCOL);
	fake_stop(&f);

	/* silent after accepting: no greeting */
	fake_start(&f, "");
	o = fake_opts(&f);
	o.connect_timeout_ms = 300;
	assert_int_equal(open_expect(&o, NULL, detail, sizeof(detail)), MH_E_CONNECT_TIMEOUT);
	assert_non_null(strstr(detail, "no greeting within"));
	fake_stop(&f);
}

/* Each RFC 2449/3206 code on a refused PASS maps to its own kind of failure. */
static void test_hostile_login_codes(void **state)
{
	static const struct {
		const char *reply;
		enum mh_err_code code;
	} cases[] = {
		{"-ERR [AUTH] Authentication failed.\r\n", MH_E_AUTH_FAILED},
		{"-ERR invalid password\r\n", MH_E_AUTH_FAILED},
		{"-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n", MH_E_UNAVAILABLE},
		{"-ERR [LOGIN-DELAY] Minimum time between logins not reached\r\n", MH_E_THROTTLED},
		{"-ERR [SYS/TEMP] Temporary back-end failure\r\n", MH_E_SERVER_ERROR},
		{"-ERR [SYS/PERM] Your account has been suspended\r\n", MH_E_ACCOUNT_LOCKED},
		{"-ERR [SYS/PERM] Your account is not enabled for POP access\r\n", MH_E_LOGIN_DISABLED},
		{"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n",
		 MH_E_PLAINTEXT_REFUSED},
		{"-ERR Unable to lock maildrop\r\n", MH_E_UNAVAILABLE},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f;
		struct pop3_client_opts o;
		char detail[MH_ERR_DETAIL_MAX];
		enum mh_err_code got;

		fake_start_refusing_pass(&f, cases[i].reply);
		o = fake_opts(&f);
		got = open_expect(&o, NULL, detail, sizeof(detail));
		if (got != cases[i].code)
			fail_msg("%s gives %s (%s)", cases[i].reply, mh_err_name(got), detail);
		assert_int_equal(strncmp(detail, "PASS: ", 6), 0);
		fake_stop(&f);
	}
}

static void test_hostile_echoes_password(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	char detail[MH_ERR_DETAIL_MAX];

	(void)state;
	fake_start_refusing_pass(&f, "-ERR password p4ssw0rd! is wrong\r\n");
	o = fake_opts(&f);
	assert_int_equal(open_expect(&o, NULL, detail, sizeof(detail)), MH_E_AUTH_FAILED);
	assert_null(strstr(detail, "p4ssw0rd!"));
	assert_non_null(strstr(detail, "<redacted>"));
	assert_false(transcript_contains("p4ssw0rd!"));
	assert_true(transcript_contains("< -ERR password <redacted> is wrong"));
	fake_stop(&f);
}

static void test_hostile_no_capa_rfc1939(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	struct pop3_client *c;
	struct waiter ws;
	struct mh_err err;

	(void)state;
	/* an RFC 1939 server: no CAPA; USER/PASS all the same, one command at a time */
	fake_start(&f, "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n");
	fake_reply(&f, "USER", "+OK\r\n");
	fake_reply(&f, "PASS", "+OK\r\n");
	fake_reply(&f, "STAT", "+OK 2 320\r\n");
	o = fake_opts(&f);
	c = fake_open(&o);
	assert_true(pop3_client_apop_offered(c));
	assert_string_equal(pop3_client_login_method(c), "USER"); /* APOP not allowed */
	assert_false(pop3_client_has_cap(c, "PIPELINING"));
	memset(&ws, 0, sizeof(ws));
	assert_int_equal(pop3_client_stat(c, on_stat, &ws, &err), 0);
	fx_run(&ws.done);
	assert_int_equal(ws.code, MH_E_OK);
	assert_int_equal(ws.count, 2);
	assert_int_equal(ws.octets, 320);
	pop3_client_free(&c);
	fake_stop(&f);
}

static void test_hostile_stls(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	char detail[MH_ERR_DETAIL_MAX];

	(void)state;
	/* plaintext bytes pipelined behind the STLS +OK would be taken as coming from TLS */
	fake_start(&f, "+OK ready\r\n");
	fake_reply(&f, "CAPA", "+OK\r\nSTLS\r\nUSER\r\n.\r\n");
	fake_reply(&f, "STLS", "+OK Begin TLS\r\n+OK injected\r\n");
	o = fake_stls_opts(&f);
	assert_int_equal(open_expect(&o, NULL, detail, sizeof(detail)), MH_E_PROTOCOL);
	assert_non_null(strstr(detail, "injection"));
	fake_stop(&f);

	/* no STLS offered: never a password in plaintext */
	fake_start_logged_in(&f);
	o = fake_stls_opts(&f);
	assert_int_equal(open_expect(&o, NULL, NULL, 0), MH_E_STARTTLS_UNAVAILABLE);
	assert_false(transcript_contains("> PASS"));
	fake_stop(&f);

	/* STLS refused: the same */
	fake_start(&f, "+OK ready\r\n");
	fake_reply(&f, "CAPA", "+OK\r\nSTLS\r\nUSER\r\n.\r\n");
	fake_reply(&f, "STLS", "-ERR TLS not available now\r\n");
	o = fake_stls_opts(&f);
	assert_int_equal(open_expect(&o, NULL, NULL, 0), MH_E_STARTTLS_UNAVAILABLE);
	fake_stop(&f);
}

/* Sends UIDL, LIST and STAT (pipelined) and waits for all three. */
static void uidl_list_stat(struct pop3_client *c, struct waiter w[3])
{
	struct mh_err err;

	memset(w, 0, 3 * sizeof(*w));
	assert_int_equal(pop3_client_uidl(c, on_uidl, &w[0], &err), 0);
	assert_int_equal(pop3_client_list(c, on_list, &w[1], &err), 0);
	assert_int_equal(pop3_client_stat(c, on_stat, &w[2], &err), 0);
	fx_run(&w[2].done);
}

static void test_hostile_garbage_reply(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	struct pop3_client *c;
	struct waiter w[2];
	struct mh_err err;

	(void)state;
	fake_start_logged_in(&f);
	fake_reply(&f, "STAT", "\x01\x02 garbage \xff\r\n");
	o = fake_opts(&f);
	c = fake_open(&o);
	memset(w, 0, sizeof(w));
	assert_int_equal(pop3_client_stat(c, on_stat, &w[0], &err), 0);
	assert_int_equal(pop3_client_uidl(c, on_uidl, &w[1], &err), 0);
	fx_run(&w[1].done);
	assert_int_equal(w[0].calls, 1);
	assert_int_equal(w[0].code, MH_E_PROTOCOL);
	assert_int_equal(w[1].calls, 1);
	assert_int_equal(w[1].code, MH_E_PROTOCOL);
	assert_false(pop3_client_is_open(c));
	pop3_client_free(&c);
	fake_stop(&f);
}

static void test_hostile_malformed_listing_lines(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	struct pop3_client *c;
	struct waiter w[3];

	(void)state;
	fake_start_logged_in(&f);
	fake_reply(&f, "UIDL", "+OK\r\n1 abc\r\n2 has space\r\n.\r\n");
	fake_reply(&f, "LIST", "+OK\r\n1 12\r\nx y\r\n.\r\n");
	fake_reply(&f, "STAT", "+OK two messages\r\n");
	o = fake_opts(&f);
	c = fake_open(&o);
	uidl_list_stat(c, w);
	/* the commands fail, the connection lives on */
	assert_int_equal(w[0].code, MH_E_PROTOCOL);
	assert_non_null(strstr(w[0].detail, "UIDL line 2 is malformed"));
	assert_int_equal(w[0].n, 0);
	assert_int_equal(w[1].code, MH_E_PROTOCOL);
	assert_non_null(strstr(w[1].detail, "LIST line 2 is malformed"));
	assert_int_equal(w[2].code, MH_E_PROTOCOL);
	assert_non_null(strstr(w[2].detail, "STAT reply is malformed"));
	assert_true(pop3_client_is_open(c));
	pop3_client_free(&c);
	fake_stop(&f);
}

static void test_hostile_overlong_line(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	struct pop3_client *c;
	struct waiter w[3];
	struct mh_err err;

	(void)state;
	fake_start_logged_in(&f);
	fake_reply(&f, "UIDL", "+OK\r\n1 ");
	fake_last(&f)->garbage = 10 * 1024 * 1024; /* no line end, ever */
	o = fake_opts(&f);
	c = fake_open(&o);
	uidl_list_stat(c, w);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w[i].calls, 1);
		assert_int_equal(w[i].code, MH_E_PROTOCOL);
		assert_string_equal(w[i].detail, "line longer than 65536 bytes");
	}
	assert_int_equal(pop3_client_stat(c, on_stat, &w[0], &err), -1);
	assert_int_equal(err.code, MH_E_PROTOCOL);
	pop3_client_free(&c);
	fake_stop(&f);
}

static void test_hostile_close_mid_message(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	struct pop3_client *c;
	struct waiter w[2];
	struct pop3_retr_handlers h = {.data = on_body, .done = on_retr, .ctx = &w[0]};
	struct mh_err err;

	(void)state;
	fake_start_logged_in(&f);
	fake_reply(&f, "RETR", "+OK 100 octets\r\nSubject: cut\r\n\r\nthe first half\r\n.");
	fake_last(&f)->close = true;
	o = fake_opts(&f);
	c = fake_open(&o);
	memset(w, 0, sizeof(w));
	assert_int_equal(pop3_client_retr(c, 1, &h, &err), 0);
	assert_int_equal(pop3_client_stat(c, on_stat, &w[1], &err), 0);
	fx_run(&w[1].done);
	assert_int_equal(w[0].calls, 1);
	assert_int_equal(w[0].code, MH_E_CONNECTION_LOST);
	assert_string_equal(w[0].detail, "the connection closed in the middle of a message (32 bytes received, "
					 "no final \".\" line)");
	/* what arrived was passed on; size says how much */
	assert_int_equal(w[0].size, 32);
	assert_int_equal(w[1].calls, 1);
	assert_int_equal(w[1].code, MH_E_CONNECTION_LOST);
	waiter_free(&w[0]);
	pop3_client_free(&c);
	fake_stop(&f);

	/* cut after ".CR": the CR the decoder holds back is still unread when the close is seen */
	fake_start_logged_in(&f);
	fake_reply(&f, "RETR", "+OK\r\nabc\r\n.\r");
	fake_last(&f)->close = true;
	o = fake_opts(&f);
	c = fake_open(&o);
	memset(w, 0, sizeof(w));
	h.ctx = &w[0];
	assert_int_equal(pop3_client_retr(c, 1, &h, &err), 0);
	fx_run(&w[0].done);
	assert_int_equal(w[0].code, MH_E_CONNECTION_LOST);
	assert_string_equal(w[0].detail, "the connection closed in the middle of a message (5 bytes received, "
					 "no final \".\" line)");
	waiter_free(&w[0]);
	pop3_client_free(&c);
	fake_stop(&f);

	/* cut in a listing */
	fake_start_logged_in(&f);
	fake_reply(&f, "UIDL", "+OK\r\n1 aaa\r\n2 bb");
	fake_last(&f)->close = true;
	o = fake_opts(&f);
	c = fake_open(&o);
	memset(w, 0, sizeof(w));
	assert_int_equal(pop3_client_uidl(c, on_uidl, &w[0], &err), 0);
	fx_run(&w[0].done);
	assert_int_equal(w[0].code, MH_E_CONNECTION_LOST);
	assert_non_null(strstr(w[0].detail, "in the middle of a multi-line reply (1 lines received"));
	pop3_client_free(&c);
	fake_stop(&f);
}

static void test_hostile_unsolicited_data(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	struct pop3_client *c;
	struct waiter w;
	struct mh_err err;

	(void)state;
	fake_start_logged_in(&f);
	fake_reply(&f, "STAT", "+OK 1 10\r\n+OK surprise\r\n");
	o = fake_opts(&f);
	c = fake_open(&o);
	memset(&w, 0, sizeof(w));
	assert_int_equal(pop3_client_stat(c, on_stat, &w, &err), 0);
	fx_run(&w.done);
	assert_int_equal(w.code, MH_E_OK);
	assert_int_equal(w.count, 1);
	/* the extra line closes the connection */
	while (pop3_client_is_open(c))
		assert_true(event_base_loop(fx->base, EVLOOP_ONCE) == 0);
	assert_int_equal(pop3_client_stat(c, on_stat, &w, &err), -1);
	assert_int_equal(err.code, MH_E_PROTOCOL);
	assert_string_equal(err.detail, "the server sent data when no reply was expected");
	pop3_client_free(&c);
	fake_stop(&f);
}

static void test_hostile_silent_server_times_out(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	struct pop3_client *c;
	struct waiter w;
	struct mh_err err;

	(void)state;
	fake_start_logged_in(&f);
	fake_reply(&f, "STAT", ""); /* never answers */
	o = fake_opts(&f);
	o.command_timeout_ms = 300;
	c = fake_open(&o);
	memset(&w, 0, sizeof(w));
	assert_int_equal(pop3_client_stat(c, on_stat, &w, &err), 0);
	fx_run(&w.done);
	assert_int_equal(w.code, MH_E_TIMEOUT);
	pop3_client_free(&c);
	fake_stop(&f);
}

/* Bytes a server sends inside a message come out as they are: lone CR, lone LF, NUL and
 * 8-bit bytes; only the stuffing dots go. */
static void test_fake_retr_byte_identical(void **state)
{
	static const char wire[] = "+OK message follows\r\n"
				   "Subject: odd\r\n\r\nlone\rCR and lone\nLF\r\n..stuffed\r\n.\r.\n"
				   "nul\0byte \xff\xfe\r\n..\r\n"
				   ".\r\n";
	static const char want[] = "Subject: odd\r\n\r\nlone\rCR and lone\nLF\r\n.stuffed\r\n\r.\n"
				   "nul\0byte \xff\xfe\r\n.\r\n";
	struct fake f;
	struct pop3_client_opts o;
	struct pop3_client *c;
	struct waiter w[3];
	struct mh_err err;

	(void)state;
	fake_start_logged_in(&f);
	fake_reply(&f, "RETR", wire);
	fake_last(&f)->len = sizeof(wire) - 1;
	o = fake_opts(&f);
	c = fake_open(&o);
	for (int i = 0; i < 3; i++) {
		struct pop3_retr_handlers h = {.data = on_body, .done = on_retr, .ctx = &w[i]};

		memset(&w[i], 0, sizeof(w[i]));
		assert_int_equal(pop3_client_retr(c, 1, &h, &err), 0);
	}
	fx_run(&w[2].done);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w[i].code, MH_E_OK);
		assert_int_equal(w[i].size, sizeof(want) - 1);
		assert_int_equal(evbuffer_get_length(w[i].body), sizeof(want) - 1);
		assert_memory_equal(evbuffer_pullup(w[i].body, -1), want, sizeof(want) - 1);
		waiter_free(&w[i]);
	}
	pop3_client_free(&c);
	fake_stop(&f);
}

static void test_hostile_message_too_large(void **state)
{
	struct fake f;
	struct pop3_client_opts o;
	struct pop3_client *c;
	struct waiter w;
	struct pop3_retr_handlers h = {.data = NULL, .done = on_retr, .ctx = &w};
	struct mh_err err;

	(void)state;
	fake_start_logged_in(&f);
	fake_reply(&f, "RETR", "+OK\r\n");
	fake_last(&f)->garbage = 1024 * 1024;
	o = fake_opts(&f);
	o.limits.max_message = 1000;
	c = fake_open(&o);
	memset(&w, 0, sizeof(w));
	assert_int_equal(pop3_client_retr(c, 1, &h, &err), 0);
	fx_run(&w.done);
	assert_int_equal(w.code, MH_E_PROTOCOL);
	assert_string_equal(w.detail, "message larger than 1000 bytes");
	assert_true(w.size <= 1000);
	pop3_client_free(&c);
	fake_stop(&f);
}

/* The server goes away right after its go-ahead: what it sent is read, nothing is written
 * to the closed connection, the open fails cleanly (after STLS the handshake may already
 * have begun when the close is seen). */
static void test_hostile_close_after_go_ahead(void **state)
{
	static char long_pass[300];
	struct fake f;
	struct pop3_client_opts o;
	char detail[MH_ERR_DETAIL_MAX];

	(void)state;
	fake_start(&f, "+OK ready\r\n");
	fake_reply(&f, "CAPA", "+OK\r\nSTLS\r\n.\r\n");
	fake_reply(&f, "STLS", "+OK Begin TLS\r\n");
	fake_last(&f)->close = true;
	o = fake_stls_opts(&f);
	switch (open_expect(&o, NULL, detail, sizeof(detail))) {
	case MH_E_CONNECTION_LOST:
	case MH_E_TLS_HANDSHAKE:
		break;
	default:
		fail_msg("STLS +OK and close: %s", detail);
	}
	fake_stop(&f);

	/* AUTH PLAIN in two steps: "+ " and gone */
	memset(long_pass, 'q', sizeof(long_pass) - 1);
	fake_start(&f, "+OK ready\r\n");
	fake_reply(&f, "CAPA", "+OK\r\nSASL PLAIN\r\n.\r\n");
	fake_reply(&f, "AUTH", "+ \r\n");
	fake_last(&f)->close = true;
	o = fake_opts(&f);
	o.password = long_pass;
	assert_int_equal(open_expect(&o, NULL, detail, sizeof(detail)), MH_E_CONNECTION_LOST);
	assert_true(transcript_contains("> AUTH PLAIN"));
	assert_false(transcript_contains("qqqq"));
	fake_stop(&f);
}

/* Reading paused in the middle of a message, resumed from a timer. */
struct pauser {
	struct pop3_client *c;
	struct waiter w;
	struct event *resume;
	int pauses;
};

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct pauser *pz = arg;

	(void)fd;
	(void)what;
	pop3_client_pause_reading(pz->c, false);
}

static void pausing_body(void *ctx, struct evbuffer *in, size_t len)
{
	struct pauser *pz = ctx;
	struct timeval tv = {0, 2000};

	on_body(&pz->w, in, len);
	if (pz->pauses++ < 20) {
		pop3_client_pause_reading(pz->c, true);
		evtimer_add(pz->resume, &tv);
	}
}

static void pausing_done(void *ctx, uint64_t size, const struct mh_err *err)
{
	struct pauser *pz = ctx;

	on_retr(&pz->w, size, err);
}

static void retr_with_pauses(struct pauser *pz, uint32_t msgno)
{
	struct pop3_retr_handlers h = {.data = pausing_body, .done = pausing_done, .ctx = pz};
	struct mh_err err;

	pz->resume = evtimer_new(fx->base, on_resume, pz);
	assert_int_equal(pop3_client_retr(pz->c, msgno, &h, &err), 0);
	fx_run(&pz->w.done);
	event_free(pz->resume);
	assert_int_equal(pz->w.calls, 1);
	assert_true(pz->pauses >= 1);
}

static void test_retr_paused_and_resumed(void **state)
{
	struct pauser pz;

	(void)state;
	dovecot_fixture_need(&dovecot);
	memset(&pz, 0, sizeof(pz));
	pz.c = open_ok(MH_SEC_TLS, "alice", "secret", NULL);
	retr_with_pauses(&pz, 5); /* the 3 MB one */
	assert_true(pz.pauses > 1);
	assert_body(&pz.w, &g.msgs[4]);
	waiter_free(&pz.w);
	pop3_client_free(&pz.c);
}

/* The server sends the whole message and hangs up while we are paused: the message is
 * still complete once reading resumes, and the close does not fail it. */
static void test_fake_close_while_paused(void **state)
{
	static const char wire[] = "+OK\r\nSubject: x\r\n\r\nbody\r\n.\r\n";
	struct fake f;
	struct pop3_client_opts o;
	struct pauser pz;

	(void)state;
	fake_start_logged_in(&f);
	fake_reply(&f, "RETR", wire);
	fake_last(&f)->close = true;
	o = fake_opts(&f);
	memset(&pz, 0, sizeof(pz));
	pz.c = fake_open(&o);
	retr_with_pauses(&pz, 1);
	assert_int_equal(pz.w.code, MH_E_OK);
	assert_int_equal(pz.w.size, 20);
	assert_memory_equal(evbuffer_pullup(pz.w.body, -1), "Subject: x\r\n\r\nbody\r\n", 20);
	waiter_free(&pz.w);
	pop3_client_free(&pz.c);
	fake_stop(&f);
}

/* ---------------------------------------------------------------------------------------
 * reply mapping */

static enum mh_err_code map(bool ok, enum pop3_code code, const char *code_str, const char *text, const char *ctx)
{
	struct pop3_status st = {.ok = ok, .code = code, .code_str = code_str, .text = text, .line = text};
	struct mh_err err;

	pop3_err_from_reply(&st, ctx, &err);
	return err.code;
}

static void test_err_from_reply(void **state)
{
	struct pop3_status st = {0};
	struct mh_err err;

	(void)state;
	assert_int_equal(map(true, POP3_CODE_NONE, NULL, "", "PASS"), MH_E_OK);
	assert_int_equal(map(false, POP3_CODE_NONE, NULL, "bad", "PASS"), MH_E_AUTH_FAILED);
	assert_int_equal(map(false, POP3_CODE_NONE, NULL, "bad", "USER"), MH_E_AUTH_FAILED);
	assert_int_equal(map(false, POP3_CODE_NONE, NULL, "bad", "APOP"), MH_E_AUTH_FAILED);
	assert_int_equal(map(false, POP3_CODE_AUTH, "AUTH", "Authentication failed.", "AUTH"), MH_E_AUTH_FAILED);
	assert_int_equal(map(false, POP3_CODE_IN_USE, "IN-USE", "locked", "PASS"), MH_E_UNAVAILABLE);
	assert_int_equal(map(false, POP3_CODE_LOGIN_DELAY, "LOGIN-DELAY", "wait", "PASS"), MH_E_THROTTLED);
	assert_int_equal(map(false, POP3_CODE_SYS_TEMP, "SYS/TEMP", "later", "PASS"), MH_E_SERVER_ERROR);
	assert_int_equal(map(false, POP3_CODE_SYS_TEMP, "SYS/TEMP", "later", "RETR"), MH_E_SERVER_ERROR);
	assert_int_equal(map(false, POP3_CODE_SYS_PERM, "SYS/PERM", "gone", "PASS"), MH_E_ACCOUNT_LOCKED);
	assert_int_equal(map(false, POP3_CODE_SYS_PERM, "SYS/PERM", "broken", "RETR"), MH_E_SERVER_ERROR);
	assert_int_equal(map(false, POP3_CODE_NONE, NULL, "There's no message 9.", "RETR"), MH_E_MSG_VANISHED);
	assert_int_equal(map(false, POP3_CODE_NONE, NULL, "what?", "RETR"), MH_E_MSG_VANISHED);
	assert_int_equal(map(false, POP3_CODE_NONE, NULL, "no", "STLS"), MH_E_STARTTLS_UNAVAILABLE);
	assert_int_equal(map(false, POP3_CODE_NONE, NULL, "no", "UIDL"), MH_E_UNAVAILABLE);
	assert_int_equal(map(false, POP3_CODE_NONE, NULL, "bye", "greeting"), MH_E_SERVER_BYE);
	assert_int_equal(map(false, POP3_CODE_OTHER, "UTF8", "x", "PASS"), MH_E_AUTH_FAILED);
	/* a server's words before its code */
	assert_int_equal(map(false, POP3_CODE_AUTH, "AUTH", "Plaintext authentication disallowed on non-secure", "AUTH"),
			 MH_E_PLAINTEXT_REFUSED);
	assert_int_equal(map(false, POP3_CODE_SYS_PERM, "SYS/PERM", "Web login required: https://x", "PASS"),
			 MH_E_WEB_LOGIN_REQUIRED);
	assert_int_equal(map(false, POP3_CODE_NONE, NULL, "Your account is disabled", "PASS"), MH_E_ACCOUNT_LOCKED);

	st.ok = false;
	st.code = POP3_CODE_SYS_TEMP;
	st.code_str = "SYS/TEMP";
	st.text = "Disk\x01 full\r\n  now";
	pop3_err_from_reply(&st, "RETR", &err);
	assert_string_equal(err.detail, "RETR: [SYS/TEMP] Disk full now");
	pop3_err_from_reply(&st, NULL, &err);
	assert_string_equal(err.detail, "command: [SYS/TEMP] Disk full now");
	pop3_err_from_reply(NULL, "RETR", &err);
	assert_int_equal(err.code, MH_E_INTERNAL);
}

int main(void)
{
	/* a server that hangs up must not kill the test with SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_from_reply),
		FX_TEST(test_connect_refused),
		FX_TEST(test_hostile_greetings),
		FX_TEST(test_hostile_login_codes),
		FX_TEST(test_hostile_echoes_password),
		FX_TEST(test_hostile_no_capa_rfc1939),
		FX_TEST(test_hostile_stls),
		FX_TEST(test_hostile_garbage_reply),
		FX_TEST(test_hostile_malformed_listing_lines),
		FX_TEST(test_hostile_overlong_line),
		FX_TEST(test_hostile_close_mid_message),
		FX_TEST(test_hostile_unsolicited_data),
		FX_TEST(test_hostile_silent_server_times_out),
		FX_TEST(test_fake_retr_byte_identical),
		FX_TEST(test_hostile_message_too_large),
		FX_TEST(test_hostile_close_after_go_ahead),
		FX_TEST(test_fake_close_while_paused),
		FX_TEST(test_login_user_pass_stls),
		FX_TEST(test_login_auth_plain_stls),
		FX_TEST(test_login_auth_plain_two_steps),
		FX_TEST(test_login_pop3s),
		FX_TEST(test_login_apop),
		FX_TEST(test_stls_required_unless_allowed),
		FX_TEST(test_tls_certificate_problems),
		FX_TEST(test_stat_uidl_list_retr),
		FX_TEST(test_retr_missing_message),
		FX_TEST(test_pipelined_retr),
		FX_TEST(test_retr_paused_and_resumed),
		FX_TEST(test_one_at_a_time_without_pipelining),
		FX_TEST(test_session_never_deletes),
		FX_TEST(test_free_with_pending),
		FX_TEST(test_free_inside_callback),
		FX_TEST(test_wrong_password), /* last */
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
