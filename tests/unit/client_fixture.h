/* client_fixture.h - the per-test fixture of the IMAP and POP3 client tests, and a scripted
 * server for the clients to talk to.
 *
 * fx_setup() gives each test a fresh event base in fx; fx_teardown() frees it with what the
 * test left in fx: the TLS context (fx->tls, from make_tls()) and the transcript.
 * fx_run(&done) runs the loop until done is set, and fails the test after 60 s. on_trace()
 * is the clients' trace callback (with &fx->tr as its ctx): it keeps each line as "> sent"
 * or "< received" for transcript_find() and transcript_contains(); MH_TEST_TRACE prints them.
 *
 * A fake_server listens on a free loopback port in the same loop, greets the client that
 * connects and hands each line it receives to its on_line callback, which plays the script
 * with fake_server_send() and fake_server_hang_up().
 *
 * Header-only (static inline), like redis_fixture.h. Include it after <cmocka.h>. */
#ifndef MH_TEST_CLIENT_FIXTURE_H
#define MH_TEST_CLIENT_FIXTURE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "imap_client.h" /* imap_run_until(), and the trace callback type POP3 shares */
#include "tls.h"

/* ---------------------------------------------------------------------------------------
 * per test: an event base, a transcript, a watchdog */

struct transcript {
	char **lines;
	size_t n;
};

struct client_fixture {
	struct event_base *base;
	struct mh_tls *tls; /* the test's TLS context, when it needs one */
	struct transcript tr;
	struct event *watchdog;
	bool *watched; /* what fx_run() waits for; the watchdog sets it to end the wait */
	bool timed_out;
};

/* The running test's fixture, for callbacks that get no test state. */
static struct client_fixture *fx;

/* A test that needs an event loop, with setup and teardown for it. */
#define FX_TEST(test) cmocka_unit_test_setup_teardown(test, fx_setup, fx_teardown)

static inline int fx_setup(void **state)
{
	(void)state;
	fx = calloc(1, sizeof(*fx));
	if (fx == NULL)
		return -1;
	fx->base = event_base_new();
	return fx->base != NULL ? 0 : -1;
}

static inline int fx_teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < fx->tr.n; i++)
		free(fx->tr.lines[i]);
	free(fx->tr.lines);
	if (fx->watchdog != NULL)
		event_free(fx->watchdog);
	mh_tls_free(&fx->tls);
	event_base_free(fx->base);
	free(fx);
	fx = NULL;
	return 0;
}

static inline void fx_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fx->timed_out = true;
	if (fx->watched != NULL)
		*fx->watched = true;
}

/* Runs the loop until *done, failing the test after 60 s. */
static inline void fx_run(bool *done)
{
	struct timeval tv = {60, 0};

	if (fx->watchdog == NULL)
		fx->watchdog = evtimer_new(fx->base, fx_on_watchdog, NULL);
	fx->watched = done;
	evtimer_add(fx->watchdog, &tv);
	assert_int_equal(imap_run_until(fx->base, done), 0);
	evtimer_del(fx->watchdog);
	fx->watched = NULL;
	assert_false(fx->timed_out);
}

/* An imap_trace_cb_t for the clients' opts, with ctx &fx->tr. */
static inline void on_trace(void *ctx, enum imap_trace_dir dir, const char *line, size_t len)
{
	struct transcript *tr = ctx;
	char *s = malloc(len + 3);

	assert_non_null(s);
	s[0] = dir == IMAP_TRACE_SENT ? '>' : '<';
	s[1] = ' ';
	memcpy(s + 2, line, len);
	s[len + 2] = '\0';
	tr->lines = realloc(tr->lines, (tr->n + 1) * sizeof(char *));
	assert_non_null(tr->lines);
	tr->lines[tr->n++] = s;
	if (getenv("MH_TEST_TRACE"))
		fprintf(stderr, "#   %s\n", s);
}

/* Index of the first transcript line from index from on that starts with prefix;
 * SIZE_MAX when there is none. */
static inline size_t transcript_find(const char *prefix, size_t from)
{
	for (size_t i = from; i < fx->tr.n; i++)
		if (strncmp(fx->tr.lines[i], prefix, strlen(prefix)) == 0)
			return i;
	return SIZE_MAX;
}

static inline bool transcript_contains(const char *needle)
{
	for (size_t i = 0; i < fx->tr.n; i++)
		if (strstr(fx->tr.lines[i], needle) != NULL)
			return true;
	return false;
}

/* A TLS context trusting ca_file (NULL: the system's CAs), or checking nothing. */
static inline struct mh_tls *make_tls(const char *ca_file, bool insecure)
{
	struct mh_tls_opts to = {.ca_file = ca_file, .insecure = insecure};
	struct mh_err err;
	struct mh_tls *tls = mh_tls_new(&to, &err);

	assert_non_null(tls);
	return tls;
}

/* A loopback port nothing listens on: bound, then closed again. */
static inline uint16_t closed_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* ---------------------------------------------------------------------------------------
 * a scripted server in the same loop */

struct fake_server;
/* Plays the script: called with each line the client sent, without its CRLF. */
typedef void fake_server_line_cb_t(struct fake_server *srv, const char *line);

struct fake_server {
	struct evconnlistener *listener;
	struct bufferevent *bev; /* the client's connection; NULL once closed */
	uint16_t port;
	const char *greeting;           /* sent when the client connects; NULL: nothing */
	fake_server_line_cb_t *on_line; /* NULL: lines are read and dropped */
	void *ctx;                      /* for on_line */
	bool close_when_flushed;        /* hanging up once the client has what was sent */
	int step;                       /* for on_line: how far the script has got */
};

static inline void fake_server_close(struct fake_server *srv)
{
	if (srv->bev != NULL) {
		bufferevent_free(srv->bev);
		srv->bev = NULL;
	}
}

static inline void fake_server_write(struct fake_server *srv, const void *bytes, size_t n)
{
	if (srv->bev != NULL)
		bufferevent_write(srv->bev, bytes, n);
}

static inline void fake_server_send(struct fake_server *srv, const char *s)
{
	fake_server_write(srv, s, strlen(s));
}

/* Sends n bytes of 'x' (a line that never ends, a body that is too long). */
static inline void fake_server_send_filler(struct fake_server *srv, size_t n)
{
	char *filler = malloc(n);

	assert_non_null(filler);
	memset(filler, 'x', n);
	fake_server_write(srv, filler, n);
	free(filler);
}

/* Closes the connection once what was sent has been written. */
static inline void fake_server_hang_up(struct fake_server *srv)
{
	srv->close_when_flushed = true;
	if (srv->bev != NULL && evbuffer_get_length(bufferevent_get_output(srv->bev)) == 0)
		fake_server_close(srv);
}

static inline void fake_server_on_write(struct bufferevent *bev, void *arg)
{
	struct fake_server *srv = arg;

	(void)bev;
	if (srv->close_when_flushed)
		fake_server_close(srv);
}

static inline void fake_server_on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	fake_server_close(arg);
}

static inline void fake_server_on_read(struct bufferevent *bev, void *arg)
{
	struct fake_server *srv = arg;
	char *line;
	size_t n;

	/* on_line may hang up: stop reading then */
	while (srv->bev != NULL &&
	       (line = evbuffer_readln(bufferevent_get_input(bev), &n, EVBUFFER_EOL_CRLF)) != NULL) {
		if (srv->on_line != NULL)
			srv->on_line(srv, line);
		free(line);
	}
}

static inline void fake_server_on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
					 int len, void *arg)
{
	struct fake_server *srv = arg;

	(void)listener;
	(void)sa;
	(void)len;
	fake_server_close(srv); /* one client at a time */
	srv->close_when_flushed = false;
	srv->bev = bufferevent_socket_new(fx->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(srv->bev, fake_server_on_read, fake_server_on_write, fake_server_on_event, srv);
	bufferevent_enable(srv->bev, EV_READ | EV_WRITE);
	if (srv->greeting != NULL)
		fake_server_send(srv, srv->greeting);
}

/* Listens on a free loopback port (srv->port) in fx's loop. */
static inline void fake_server_start(struct fake_server *srv, const char *greeting, fake_server_line_cb_t *on_line,
				     void *ctx)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(sa);

	memset(srv, 0, sizeof(*srv));
	srv->greeting = greeting;
	srv->on_line = on_line;
	srv->ctx = ctx;
	srv->listener = evconnlistener_new_bind(fx->base, fake_server_on_accept, srv,
						LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1, (struct sockaddr *)&sa,
						sizeof(sa));
	assert_non_null(srv->listener);
	assert_int_equal(getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&sa, &len), 0);
	srv->port = ntohs(sa.sin_port);
}

static inline void fake_server_stop(struct fake_server *srv)
{
	fake_server_close(srv);
	evconnlistener_free(srv->listener);
	srv->listener = NULL;
}

#endif
