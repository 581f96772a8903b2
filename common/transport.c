/* transport.c - one TCP connection, plain or TLS, on a libevent bufferevent (see
 * transport.h).
 *
 * TLS, implicit or as an upgrade, hands the connected socket over to an OpenSSL
 * bufferevent (the plain one gives up its fd), so there is one layer of buffers: the write
 * watermark and transport_output_pending() see what is really queued. Every libevent entry
 * point counts its depth; a free asked for inside the owner's callback is finished on the
 * way out.
 */
#include "transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>

#include "log.h"
#include "net.h"

#define DEFAULT_WRITE_TIMEOUT_MS 120000u

static const char log_comp[] = "net";

struct transport {
	/* permanent: copied options */
	struct event_base *base;
	char *name, *host, *tls_name;
	uint16_t port;
	struct mh_tls *tls;
	bool implicit_tls;
	unsigned write_timeout_ms;
	transport_cb_t *cb;
	void *ctx;

	/* connection */
	enum transport_stage stage;
	struct bufferevent *bev;
	bool dns_held, tls_active, upgrading, paused;
	bool watch_output;  /* TRANSPORT_WRITTEN asked for */
	size_t output_low;  /* its mark */

	/* lifetime */
	unsigned depth;
	bool free_requested;
};

static char *xstrdup(const char *s)
{
	char *d = strdup(s != NULL ? s : "");

	if (d == NULL)
		abort();
	return d;
}

static void emit(struct transport *t, enum transport_event ev, const struct mh_err *err)
{
	if (!t->free_requested)
		t->cb(t->ctx, ev, err);
}

static void close_bev(struct transport *t)
{
	if (t->bev != NULL) {
		bufferevent_setcb(t->bev, NULL, NULL, NULL, NULL);
		bufferevent_free(t->bev);
		t->bev = NULL;
	}
}

static void destroy(struct transport *t)
{
	close_bev(t);
	if (t->dns_held)
		net_dns_release(t->base);
	free(t->name);
	free(t->host);
	free(t->tls_name);
	free(t);
}

static void enter(struct transport *t)
{
	t->depth++;
}

/* The last thing every entry point does: t may be gone afterwards. */
static void leave(struct transport *t)
{
	if (--t->depth == 0 && t->free_requested)
		destroy(t);
}

static void set_write_timeout(struct transport *t)
{
	struct timeval tv;

	/* A server that stops reading what we write: no write progress for this long. */
	net_ms_to_tv(t->write_timeout_ms, &tv);
	bufferevent_set_timeouts(t->bev, NULL, &tv);
}

/* Tells the owner, then closes (unless the owner already did). */
static void fail(struct transport *t, const struct mh_err *err)
{
	t->stage = TRANSPORT_STAGE_CLOSED;
	emit(t, TRANSPORT_CLOSED, err);
	close_bev(t);
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* Every bufferevent of the connection: the plain one, then the OpenSSL one. */
static void attach(struct transport *t, struct bufferevent *bev)
{
	t->bev = bev;
	bufferevent_setcb(bev, on_read, on_write, on_event, t);
	bufferevent_setwatermark(bev, EV_WRITE, t->output_low, 0);
}

/* Replaces the plain bufferevent of the connected socket with an OpenSSL one. */
static int tls_wrap(struct transport *t, struct mh_err *err)
{
	evutil_socket_t fd = bufferevent_getfd(t->bev);
	struct bufferevent *nb;
	SSL *ssl;

	if (t->tls == NULL)
		return mh_err_set(err, MH_E_INTERNAL, "TLS requested without a TLS context");
	ssl = mh_tls_ssl_new(t->tls, t->tls_name, err);
	if (ssl == NULL)
		return -1;
	/* The plain bufferevent gives up the fd (setfd -1) so freeing it keeps the socket. */
	bufferevent_setcb(t->bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(t->bev, EV_READ | EV_WRITE);
	bufferevent_setfd(t->bev, -1);
	bufferevent_free(t->bev);
	t->bev = NULL;
	nb = bufferevent_openssl_socket_new(t->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
					    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (nb == NULL) {
		mh_tls_ssl_free(ssl);
		evutil_closesocket(fd);
		return mh_err_set(err, MH_E_INTERNAL, "cannot create the TLS bufferevent");
	}
	/* Protocols frame their own data: a missing close_notify is just a closed connection. */
	bufferevent_openssl_set_allow_dirty_shutdown(nb, 1);
	attach(t, nb);
	t->stage = TRANSPORT_STAGE_HANDSHAKE;
	set_write_timeout(t);
	bufferevent_enable(nb, EV_READ | EV_WRITE);
	return 0;
}

static void on_tcp_connected(struct transport *t)
{
	struct mh_err err;

	net_socket_tune(bufferevent_getfd(t->bev));
	if (t->implicit_tls) {
		t->stage = TRANSPORT_STAGE_HANDSHAKE;
		emit(t, TRANSPORT_TLS_BEGIN, NULL);
		if (t->stage == TRANSPORT_STAGE_CLOSED)
			return; /* the owner closed it */
		if (tls_wrap(t, &err) < 0)
			fail(t, &err);
		return;
	}
	t->stage = TRANSPORT_STAGE_OPEN;
	set_write_timeout(t);
	bufferevent_enable(t->bev, t->paused ? EV_WRITE : EV_READ | EV_WRITE);
	emit(t, TRANSPORT_CONNECTED, NULL);
}

static void on_tls_connected(struct transport *t)
{
	bool upgrade = t->upgrading;
	char desc[96];

	t->tls_active = true;
	t->upgrading = false;
	t->stage = TRANSPORT_STAGE_OPEN;
	mh_debug(log_comp, "%s: TLS established (%s)", t->name,
		 mh_tls_describe(bufferevent_openssl_get_ssl(t->bev), desc, sizeof(desc)));
	if (t->paused)
		bufferevent_disable(t->bev, EV_READ);
	emit(t, upgrade ? TRANSPORT_TLS_READY : TRANSPORT_CONNECTED, NULL);
}

/* The error of a connection that was open. */
static void closed_error(struct transport *t, short what, int sock_err, struct mh_err *err)
{
	unsigned long ssl_err = t->tls_active ? bufferevent_get_openssl_error(t->bev) : 0;

	if (what & BEV_EVENT_TIMEOUT) {
		mh_err_set(err, MH_E_TIMEOUT, "the server accepted no data for %u ms", t->write_timeout_ms);
	} else if (what & BEV_EVENT_EOF) {
		mh_err_set(err, MH_E_CONNECTION_LOST, "the server closed the connection");
	} else if (ssl_err != 0) {
		mh_tls_explain_error(NULL, ssl_err, err);
		err->code = MH_E_CONNECTION_LOST;
	} else if (sock_err != 0) {
		mh_err_set(err, MH_E_CONNECTION_LOST, "%s", evutil_socket_error_to_string(sock_err));
	} else {
		mh_err_set(err, MH_E_CONNECTION_LOST, "connection error");
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct transport *t = arg;
	int sock_err = EVUTIL_SOCKET_ERROR();
	struct mh_err err;

	enter(t);
	if (bev == t->bev && !t->free_requested) {
		if (what & BEV_EVENT_CONNECTED) {
			if (t->stage == TRANSPORT_STAGE_CONNECTING)
				on_tcp_connected(t);
			else if (t->stage == TRANSPORT_STAGE_HANDSHAKE)
				on_tls_connected(t);
		} else {
			if (t->stage == TRANSPORT_STAGE_CONNECTING)
				net_connect_error(bev, what, sock_err, t->host, t->port, &err);
			else if (t->stage == TRANSPORT_STAGE_HANDSHAKE)
				mh_tls_explain_error(bufferevent_openssl_get_ssl(bev), bufferevent_get_openssl_error(bev),
						     &err);
			else
				closed_error(t, what, sock_err, &err);
			fail(t, &err);
		}
	}
	leave(t);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct transport *t = arg;

	enter(t);
	if (bev == t->bev)
		emit(t, TRANSPORT_READ, NULL);
	leave(t);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct transport *t = arg;

	enter(t);
	if (bev == t->bev && t->watch_output)
		emit(t, TRANSPORT_WRITTEN, NULL);
	leave(t);
}

/* ---------------------------------------------------------------------------------------
 * public API */

struct transport *transport_new(struct event_base *base, const struct transport_opts *opts, transport_cb_t *cb,
				void *ctx)
{
	struct transport *t = calloc(1, sizeof(*t));

	if (t == NULL)
		abort();
	t->base = base;
	t->name = xstrdup(opts->name != NULL ? opts->name : "transport");
	t->host = xstrdup(opts->host);
	t->tls_name = xstrdup(opts->tls_name != NULL && opts->tls_name[0] != '\0' ? opts->tls_name : opts->host);
	t->port = opts->port;
	t->tls = opts->tls;
	t->implicit_tls = opts->implicit_tls;
	t->write_timeout_ms = opts->write_timeout_ms ? opts->write_timeout_ms : DEFAULT_WRITE_TIMEOUT_MS;
	t->cb = cb;
	t->ctx = ctx;
	t->stage = TRANSPORT_STAGE_NEW;
	return t;
}

void transport_free(struct transport **tp)
{
	struct transport *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	if (t->depth > 0) {
		t->free_requested = true;
		transport_close(t);
		return;
	}
	destroy(t);
}

void transport_close(struct transport *t)
{
	close_bev(t);
	t->stage = TRANSPORT_STAGE_CLOSED;
}

int transport_connect(struct transport *t, struct mh_err *err)
{
	struct bufferevent *bev;
	struct evdns_base *dns;

	if (t->stage != TRANSPORT_STAGE_NEW)
		return mh_err_set(err, MH_E_INTERNAL, "transport_connect called twice");
	if (t->host[0] == '\0')
		return mh_err_set(err, MH_E_BAD_URL, "no host name");
	if (t->implicit_tls && t->tls == NULL)
		return mh_err_set(err, MH_E_INTERNAL, "TLS requested without a TLS context");
	bev = bufferevent_socket_new(t->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL)
		return mh_err_set(err, MH_E_INTERNAL, "cannot create a bufferevent");
	attach(t, bev);
	dns = net_dns_acquire(t->base);
	t->dns_held = true;
	t->stage = TRANSPORT_STAGE_CONNECTING;
	mh_debug(log_comp, "%s: connecting to %s port %u (%s)", t->name, t->host, t->port,
		 t->implicit_tls ? "tls" : "plain");
	if (bufferevent_socket_connect_hostname(t->bev, dns, AF_UNSPEC, t->host, t->port) < 0) {
		net_connect_error(t->bev, BEV_EVENT_ERROR, EVUTIL_SOCKET_ERROR(), t->host, t->port, err);
		transport_close(t);
		return -1;
	}
	return 0;
}

int transport_start_tls(struct transport *t, struct mh_err *err)
{
	if (t->stage != TRANSPORT_STAGE_OPEN || t->tls_active || t->bev == NULL)
		return mh_err_set(err, MH_E_INTERNAL, "TLS upgrade on a connection that is not open and plain");
	t->upgrading = true;
	if (tls_wrap(t, err) < 0) {
		transport_close(t);
		return -1;
	}
	return 0;
}

enum transport_stage transport_stage(const struct transport *t)
{
	return t->stage;
}

bool transport_tls_active(const struct transport *t)
{
	return t->tls_active;
}

struct evbuffer *transport_input(const struct transport *t)
{
	return t->bev != NULL ? bufferevent_get_input(t->bev) : NULL;
}

struct evbuffer *transport_output(const struct transport *t)
{
	return t->bev != NULL ? bufferevent_get_output(t->bev) : NULL;
}

size_t transport_output_pending(const struct transport *t)
{
	return t->bev != NULL ? evbuffer_get_length(bufferevent_get_output(t->bev)) : 0;
}

void transport_watch_output(struct transport *t, size_t low_water)
{
	t->watch_output = true;
	t->output_low = low_water;
	if (t->bev != NULL)
		bufferevent_setwatermark(t->bev, EV_WRITE, low_water, 0);
}

void transport_pause_reading(struct transport *t, bool pause)
{
	if (t->paused == pause)
		return;
	t->paused = pause;
	/* while connecting, on_tcp_connected() and on_tls_connected() apply it */
	if (t->bev == NULL || t->stage != TRANSPORT_STAGE_OPEN)
		return;
	if (pause)
		bufferevent_disable(t->bev, EV_READ);
	else
		bufferevent_enable(t->bev, EV_READ);
}

bool transport_tls_info(const struct transport *t, struct mh_tls_info *info)
{
	memset(info, 0, sizeof(*info));
	if (!t->tls_active || t->bev == NULL)
		return false;
	return mh_tls_get_info(bufferevent_openssl_get_ssl(t->bev), info) == 0;
}
