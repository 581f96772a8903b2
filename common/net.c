/* net.c - DNS bases, connect errors, socket options, clocks. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "log.h"

struct dns_slot {
	struct dns_slot *next;
	struct event_base *base;
	struct evdns_base *dns;
	unsigned refs;
};

static pthread_mutex_t dns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dns_slot *dns_slots;

struct evdns_base *net_dns_acquire(struct event_base *base)
{
	struct dns_slot *s;
	struct evdns_base *dns;

	pthread_mutex_lock(&dns_lock);
	for (s = dns_slots; s != NULL; s = s->next)
		if (s->base == base)
			break;
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			abort();
		s->base = base;
		/* Reads /etc/resolv.conf and /etc/hosts; inactive resolvers hold no events, so
		 * a loop with nothing else to do still ends. */
		s->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						      EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (s->dns == NULL)
			mh_warn("net", "no asynchronous resolver; falling back to blocking getaddrinfo");
		s->next = dns_slots;
		dns_slots = s;
	}
	s->refs++;
	dns = s->dns;
	pthread_mutex_unlock(&dns_lock);
	return dns;
}

void net_dns_release(struct event_base *base)
{
	struct dns_slot **pp, *s;

	pthread_mutex_lock(&dns_lock);
	for (pp = &dns_slots; (s = *pp) != NULL; pp = &s->next) {
		if (s->base != base)
			continue;
		if (--s->refs == 0) {
			*pp = s->next;
			/* fail what is pending, so that bufferevents still waiting for
			 * an answer drop their references instead of leaking */
			if (s->dns != NULL)
				evdns_base_free(s->dns, 1);
			free(s);
		}
		break;
	}
	pthread_mutex_unlock(&dns_lock);
}

bool net_is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

void net_connect_error(struct bufferevent *bev, short what, int sock_err, const char *host,
		       unsigned port, struct mh_err *err)
{
	int dns_err = bev != NULL ? bufferevent_socket_get_dns_error(bev) : 0;

	if (dns_err != 0) {
		mh_err_set(err, MH_E_DNS, "%s: %s", host, evutil_gai_strerror(dns_err));
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		mh_err_set(err, MH_E_CONNECT_TIMEOUT, "%s port %u: no answer", host, port);
		return;
	}
	switch (sock_err) {
	case ECONNREFUSED:
		mh_err_set(err, MH_E_CONNECT_REFUSED, "%s port %u: connection refused", host, port);
		break;
	case ENETUNREACH:
	case EHOSTUNREACH:
	case EADDRNOTAVAIL:
	case EAFNOSUPPORT:
		mh_err_set(err, MH_E_CONNECT_REFUSED, "%s port %u: %s", host, port, strerror(sock_err));
		break;
	case ETIMEDOUT:
		mh_err_set(err, MH_E_CONNECT_TIMEOUT, "%s port %u: %s", host, port, strerror(sock_err));
		break;
	case 0:
		mh_err_set(err, MH_E_CONNECTION_LOST, "%s port %u: connection failed", host, port);
		break;
	default:
		mh_err_set(err, MH_E_CONNECTION_LOST, "%s port %u: %s", host, port, strerror(sock_err));
		break;
	}
}

void net_socket_tune(int fd)
{
	int one = 1;

	if (fd < 0)
		return;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

uint64_t net_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void net_ms_to_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000u);
	tv->tv_usec = (suseconds_t)((ms % 1000u) * 1000u);
}
