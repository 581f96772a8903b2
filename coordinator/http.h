/* http.h - the coordinator's HTTP server: the JSON API, the dashboard and /metrics.
 *
 * It runs in a thread of its own with its own event loop (libevent's evhttp) and its own
 * Redis connection, so a slow client never holds up the results loop, and it keeps no
 * state: everything it shows or changes is in Redis.
 *
 *   GET  /                          the dashboard (web/dashboard.html, built in)
 *   GET  /healthz                   "ok" when Redis answers, else 503
 *   GET  /metrics                   Prometheus text: jobs by state, messages and bytes by
 *                                   result, queues, live workers and planners
 *   GET  /api/jobs[?limit=N]        {"jobs": [summary...]} newest first (counters only)
 *   GET  /api/jobs/ID               the job's summary with folders and failures
 *   GET  /api/jobs/ID/history       its runs
 *   POST /api/jobs/ID/pause|resume|cancel|sync
 *   POST /api/jobs/ID/forget        an ended job's every trace, its transfer record included
 *
 * With a token (--http-token-file), /api/ and /metrics want "Authorization: Bearer
 * TOKEN". A POST also wants the header "X-Mailhaul-Action: 1", which a form on another
 * web site cannot send: the guard against cross-site requests to a server on localhost.
 * Job summaries hold host and user names: keep the server on a private address. */
#ifndef MH_HTTP_H
#define MH_HTTP_H

#include "err.h"

struct http_opts {
	const char *listen;    /* "127.0.0.1:8425", "[::1]:8425", "localhost:8425" */
	const char *redis_url;
	const char *token;     /* NULL: none asked for */
};

struct http_server;

/* Binds (errors such as a port in use are reported here, before the thread starts) and
 * starts serving. 0, or -1 with err set. */
int http_start(const struct http_opts *o, struct http_server **s_r, struct mh_err *err);
/* Stops serving and frees *s (waits for the thread). NULL is fine. */
void http_stop(struct http_server **s);

#endif
