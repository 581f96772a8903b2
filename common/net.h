/* net.h - the TCP side of a connection: DNS bases, connect errors, socket options, clocks.
 *
 * Used by the IMAP (and POP3) clients; knows nothing of TLS or protocols. */
#ifndef MH_NET_H
#define MH_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct bufferevent;
struct event_base;
struct evdns_base;
struct timeval;

/* One asynchronous resolver per event_base, shared by every connection on it and
 * reference-counted: each net_dns_acquire() needs one net_dns_release() on the same base.
 * Returns NULL when no resolver can be set up; bufferevent_socket_connect_hostname() then
 * falls back to a blocking getaddrinfo(). The resolver never keeps the loop alive by
 * itself (EVDNS_BASE_DISABLE_WHEN_INACTIVE). Thread-safe. */
struct evdns_base *net_dns_acquire(struct event_base *base);
void net_dns_release(struct event_base *base);

/* True when host is an IPv4 or IPv6 address literal (no brackets). */
bool net_is_ip_literal(const char *host);

/* After BEV_EVENT_ERROR/TIMEOUT on a socket bufferevent that was connecting: fills err
 * with MH_E_DNS, MH_E_CONNECT_REFUSED, MH_E_CONNECT_TIMEOUT or MH_E_CONNECTION_LOST.
 * sock_err is EVUTIL_SOCKET_ERROR() as seen in the event callback. */
void net_connect_error(struct bufferevent *bev, short what, int sock_err, const char *host,
		       unsigned port, struct mh_err *err);

/* TCP_NODELAY (commands are written whole, pipelined) and SO_KEEPALIVE. Best effort. */
void net_socket_tune(int fd);

/* Monotonic milliseconds. */
uint64_t net_now_ms(void);
void net_ms_to_tv(uint64_t ms, struct timeval *tv);

#endif
