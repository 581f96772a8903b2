/* transport.h - one TCP connection, plain or TLS, on a libevent bufferevent: the part of a
 * protocol client that knows nothing of the protocol.
 *
 * It resolves and connects (net.h), sets up implicit TLS or upgrades a connected socket
 * (STARTTLS, STLS) with certificate checks (tls.h), and names every failure with a
 * catalogue code: DNS, CONNECT_REFUSED, CONNECT_TIMEOUT (from the socket), TLS_CERT_*,
 * TLS_HANDSHAKE, TIMEOUT (writes stalled), CONNECTION_LOST. Timers for connecting and for
 * answers belong to the protocol client, which knows what it waits for.
 *
 * Used by imap_client.c and pop3_client.c.
 *
 * Re-entrancy: the owner's callback may call transport_close() or transport_free(); a
 * free is then finished when the callback returns. No callback runs from inside an API
 * call.
 */
#ifndef MH_TRANSPORT_H
#define MH_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "tls.h"

struct event_base;
struct evbuffer;

struct transport_opts {
	const char *name;     /* label for logs, e.g. "source" */
	const char *host;     /* name or address */
	uint16_t port;
	const char *tls_name; /* the name the certificate must carry; NULL or "": host */
	struct mh_tls *tls;   /* for implicit TLS and transport_start_tls(); shared, not owned */
	bool implicit_tls;    /* TLS from the first byte (imaps, pop3s) */
	unsigned write_timeout_ms; /* no write progress for this long closes with TIMEOUT; 0: 120 s */
};

enum transport_event {
	TRANSPORT_TLS_BEGIN, /* implicit_tls: TCP is up and the handshake starts (for owners
			      * that name the step a timeout or failure happened in) */
	TRANSPORT_CONNECTED, /* TCP is up (and TLS with implicit_tls): bytes may flow */
	TRANSPORT_TLS_READY, /* the upgrade begun by transport_start_tls() is complete */
	TRANSPORT_READ,      /* new bytes in transport_input() */
	TRANSPORT_WRITTEN,   /* the output fell to the mark of transport_watch_output() */
	TRANSPORT_CLOSED,    /* failed or closed by the peer; err says why. The last event:
			      * during it transport_input() still holds what arrived, after it
			      * the socket is closed */
};

/* err is set only for TRANSPORT_CLOSED. */
typedef void transport_cb_t(void *ctx, enum transport_event ev, const struct mh_err *err);

enum transport_stage {
	TRANSPORT_STAGE_NEW,
	TRANSPORT_STAGE_CONNECTING, /* DNS and TCP */
	TRANSPORT_STAGE_HANDSHAKE,  /* TLS handshake (implicit or upgrade) */
	TRANSPORT_STAGE_OPEN,
	TRANSPORT_STAGE_CLOSED,
};

struct transport;

/* Copies what it keeps of opts. Never returns NULL (OOM aborts). */
struct transport *transport_new(struct event_base *base, const struct transport_opts *opts, transport_cb_t *cb,
				void *ctx);
/* Closes the socket (no event follows) and frees *t; NULLs *t. Safe inside the callback. */
void transport_free(struct transport **t);
/* Closes the socket; no event follows. Safe inside the callback. */
void transport_close(struct transport *t);

/* Starts resolving and connecting; TRANSPORT_CONNECTED or TRANSPORT_CLOSED follows.
 * Returns -1 (err set, nothing follows) when it cannot even start. */
int transport_connect(struct transport *t, struct mh_err *err);
/* Upgrades the open plain connection to TLS (after the server's go-ahead to STARTTLS/
 * STLS); TRANSPORT_TLS_READY or TRANSPORT_CLOSED follows. Bytes still in the input are
 * dropped: the caller must have checked there are none (RFC 2595 section 4, CVE-2011-0411).
 * Returns -1 (err set, nothing follows; the connection is closed) when it cannot start. */
int transport_start_tls(struct transport *t, struct mh_err *err);

enum transport_stage transport_stage(const struct transport *t);
bool transport_tls_active(const struct transport *t);
/* The input and output buffers; NULL once closed. */
struct evbuffer *transport_input(const struct transport *t);
struct evbuffer *transport_output(const struct transport *t);
/* Bytes in the output, not yet taken by the socket (with TLS: by OpenSSL); 0 once closed. */
size_t transport_output_pending(const struct transport *t);
/* From now on TRANSPORT_WRITTEN follows each write that leaves low_water bytes or fewer
 * in the output (libevent's write watermark), for owners that throttle what they queue.
 * A later call moves the mark. Kept across a TLS upgrade. */
void transport_watch_output(struct transport *t, size_t low_water);
/* Stops/starts reading (backpressure). Kept across a TLS upgrade. */
void transport_pause_reading(struct transport *t, bool pause);
/* The TLS session's protocol, cipher and certificate; false without TLS or once closed. */
bool transport_tls_info(const struct transport *t, struct mh_tls_info *info);

#endif
