/* http.c - the coordinator's HTTP API, dashboard and metrics (see http.h). */
#include "http.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"
#include "forget.h"
#include "jobstore.h"
#include "log.h"
#include "metrics.h"
#include "rq.h"
#include "summary_json.h"
#include "textfmt.h"
#include "wire.h"

#define JOBS_DEFAULT 200
#define JOBS_MAX 5000

struct http_server {
	struct event_base *base;
	struct evhttp *http;
	struct event *tick;
	pthread_t thread;
	atomic_int stop;
	struct rq *q;
	char *token; /* NULL: none asked for */
};

/* --- replies ---------------------------------------------------------------------------- */

static void reply(struct evhttp_request *req, int code, const char *type, const void *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evbuffer_new();

	if (out == NULL)
		abort();
	evhttp_add_header(h, "Content-Type", type);
	/* job data changes by the second and may name people: never cached */
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evbuffer_add(out, body, len);
	evhttp_send_reply(req, code, NULL, out);
	evbuffer_free(out);
}

static void reply_error(struct evhttp_request *req, int code, const char *text)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);

	if (f == NULL)
		abort();
	fputs("{\"error\":", f);
	mh_json_str(f, text);
	fputs("}\n", f);
	fclose(f);
	reply(req, code, "application/json", body, len);
	free(body);
}

/* A JSON body built by fn into a memory stream; Redis failing on the way is a 503. */
typedef int render_fn(struct http_server *s, FILE *out, const char *arg, struct mh_err *err);

static void reply_rendered(struct http_server *s, struct evhttp_request *req, const char *type, render_fn *fn,
			   const char *arg)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	struct mh_err err;
	int rc;

	if (f == NULL)
		abort();
	mh_err_clear(&err);
	rc = fn(s, f, arg, &err);
	fclose(f);
	if (rc == 0)
		reply(req, 200, type, body, len);
	else if (err.code == MH_E_USAGE)
		reply_error(req, 404, err.detail);
	else
		reply_error(req, 503, err.detail);
	free(body);
}

/* --- what is shown -------------------------------------------------------------------------- */

static int render_jobs(struct http_server *s, FILE *out, const char *arg, struct mh_err *err)
{
	size_t limit = JOBS_DEFAULT, n = 0;
	char **ids = NULL;

	if (arg != NULL) {
		char *end;
		unsigned long v = strtoul(arg, &end, 10);
		if (*arg != '\0' && *end == '\0' && v > 0)
			limit = v < JOBS_MAX ? v : JOBS_MAX;
	}
	if (mh_job_list(s->q, limit, &ids, &n, err) < 0)
		return -1;
	fputs("{\"jobs\":[", out);
	for (size_t i = 0, shown = 0; i < n; i++) {
		struct mh_job_summary sum;
		if (mh_job_load_summary(s->q, ids[i], 0, &sum, err) < 0) {
			if (err->code == MH_E_USAGE)
				continue; /* forgotten meanwhile */
			mh_job_list_free(ids, n);
			return -1;
		}
		if (shown++ > 0)
			fputc(',', out);
		mh_summary_json(out, &sum);
		mh_job_summary_cleanup(&sum);
	}
	fputs("]}\n", out);
	mh_job_list_free(ids, n);
	mh_err_clear(err);
	return 0;
}

static int render_job(struct http_server *s, FILE *out, const char *id, struct mh_err *err)
{
	struct mh_job_summary sum;

	if (mh_job_load_summary(s->q, id, 1, &sum, err) < 0)
		return -1;
	mh_summary_json(out, &sum);
	fputc('\n', out);
	mh_job_summary_cleanup(&sum);
	return 0;
}

static int render_history(struct http_server *s, FILE *out, const char *id, struct mh_err *err)
{
	enum mh_job_state state;
	struct mh_run *runs = NULL;
	size_t n = 0;

	if (mh_job_get_state(s->q, id, &state, err) < 0)
		return mh_err_set(err, MH_E_USAGE, "no job %s", id);
	if (mh_job_history(s->q, id, &runs, &n, err) < 0)
		return -1;
	mh_history_json(out, runs, n);
	fputc('\n', out);
	free(runs);
	return 0;
}

static int render_metrics(struct http_server *s, FILE *out, const char *arg, struct mh_err *err)
{
	(void)arg;
	return metrics_write(s->q, out, err);
}

/* --- what is done ------------------------------------------------------------------------------ */

/* "sync": only a job that still holds its sealed passwords (auto-sync keeps them); the
 * others need them given again, which only the CLI can take. */
static int sync_job(struct http_server *s, const char *id, struct mh_err *err)
{
	struct mh_job_spec spec;
	bool sealed;

	if (mh_job_load_spec(s->q, id, &spec, err) < 0)
		return -1;
	sealed = spec.src.sealed_password.len > 0 && spec.dst.sealed_password.len > 0;
	mh_job_spec_cleanup(&spec);
	if (!sealed)
		return mh_err_set(err, MH_E_NO_PASSWORD,
				  "the job holds no passwords any more: run mailhaul sync %s with them", id);
	return mh_job_sync_submit(s->q, id, err);
}

/* {"job","action","state"} and, for forget, "keys" (keys < 0: none). */
static void reply_action(struct evhttp_request *req, const char *id, const char *action, const char *state,
			 long long keys)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);

	if (f == NULL)
		abort();
	fputs("{\"job\":", f);
	mh_json_str(f, id);
	fputs(",\"action\":", f);
	mh_json_str(f, action);
	fputs(",\"state\":", f);
	mh_json_str(f, state);
	if (keys >= 0)
		fprintf(f, ",\"keys\":%lld", keys);
	fputs("}\n", f);
	fclose(f);
	reply(req, 200, "application/json", body, len);
	free(body);
}

/* "forget": an ended job's every trace (its transfer record included) is deleted. */
static void forget(struct http_server *s, struct evhttp_request *req, const char *id)
{
	struct mh_forget_report rep;
	struct mh_err err;
	int rc;

	mh_err_clear(&err);
	rc = mh_job_forget(s->q, id, &rep, &err);
	if (rc <= 0) {
		if (rc == 0)
			reply_error(req, 404, "no such job");
		else
			reply_error(req, err.code == MH_E_USAGE ? 409 : 503, err.detail);
		return;
	}
	mh_info("http", "forget %s: done (%zu keys)", id, rep.keys);
	reply_action(req, id, "forget", "forgotten", (long long)rep.keys);
}

static void act(struct http_server *s, struct evhttp_request *req, const char *id, const char *action)
{
	struct mh_err err;
	enum mh_job_state state;
	int changed;

	mh_err_clear(&err);
	if (mh_job_get_state(s->q, id, &state, &err) < 0) {
		reply_error(req, err.code == MH_E_REDIS ? 503 : 404, err.detail);
		return;
	}
	changed = strcmp(action, "sync") == 0 ? sync_job(s, id, &err) : mh_job_control(s->q, id, action, &err);
	if (changed < 0) {
		reply_error(req, err.code == MH_E_REDIS ? 503 : 409, err.detail);
		return;
	}
	mh_info("http", "%s %s: %s", action, id, changed > 0 ? "done" : "not in a state that allows it");
	if (changed == 0) {
		char text[160];
		snprintf(text, sizeof(text), "job %s is %s: nothing to %s", id, mh_job_state_name(state), action);
		reply_error(req, 409, text);
		return;
	}
	mh_job_get_state(s->q, id, &state, &err);
	reply_action(req, id, action, mh_job_state_name(state), -1);
}

/* --- routing ----------------------------------------------------------------------------------- */

static bool job_id_ok(const char *s, size_t len)
{
	if (len == 0 || len >= MH_JOB_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

static bool authorized(const struct http_server *s, struct evhttp_request *req)
{
	const char *h;
	size_t want;

	if (s->token == NULL)
		return true;
	h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	want = strlen(s->token);
	/* constant time: the comparison must not tell how much of a guess was right */
	return h != NULL && strncmp(h, "Bearer ", 7) == 0 && strlen(h + 7) == want &&
	       CRYPTO_memcmp(h + 7, s->token, want) == 0;
}

static const char *query_value(struct evhttp_request *req, const char *key, char *buf, size_t len)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq params;
	const char *v;

	if (q == NULL || evhttp_parse_query_str(q, &params) != 0)
		return NULL;
	v = evhttp_find_header(&params, key);
	if (v != NULL)
		snprintf(buf, len, "%s", v);
	evhttp_clear_headers(&params);
	return v != NULL ? buf : NULL;
}

/* /api/jobs/ID[/what]: the id and what follows ("", "history", "pause"...). */
static bool split_job_path(const char *rest, char *id, size_t idlen, const char **what_r)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);

	if (!job_id_ok(rest, n) || n >= idlen)
		return false;
	memcpy(id, rest, n);
	id[n] = '\0';
	*what_r = slash != NULL ? slash + 1 : "";
	return true;
}

static void route_api(struct http_server *s, struct evhttp_request *req, const char *path, bool post)
{
	static const char *const actions[] = {"pause", "resume", "cancel", "sync", "forget"};
	char id[MH_JOB_ID_MAX], limit[16];
	const char *what;

	if (strcmp(path, "/api/jobs") == 0 || strcmp(path, "/api/jobs/") == 0) {
		if (post) {
			reply_error(req, 405, "jobs are submitted with mailhaul migrate or mailhaul submit");
			return;
		}
		reply_rendered(s, req, "application/json", render_jobs, query_value(req, "limit", limit, sizeof(limit)));
		return;
	}
	if (strncmp(path, "/api/jobs/", 10) != 0 || !split_job_path(path + 10, id, sizeof(id), &what)) {
		reply_error(req, 404, "no such resource");
		return;
	}
	if (!post && what[0] == '\0') {
		reply_rendered(s, req, "application/json", render_job, id);
		return;
	}
	if (!post && strcmp(what, "history") == 0) {
		reply_rendered(s, req, "application/json", render_history, id);
		return;
	}
	for (size_t i = 0; post && i < sizeof(actions) / sizeof(actions[0]); i++) {
		if (strcmp(what, actions[i]) == 0) {
			if (strcmp(what, "forget") == 0)
				forget(s, req, id);
			else
				act(s, req, id, actions[i]);
			return;
		}
	}
	reply_error(req, post ? 404 : 405, post ? "no such action (pause, resume, cancel, sync, forget)" : "use POST");
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_server *s = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	bool post = cmd == EVHTTP_REQ_POST;

	if (path == NULL || (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD && !post)) {
		reply_error(req, 405, "GET or POST only");
		return;
	}
	if (!post && (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)) {
		reply(req, 200, "text/html; charset=utf-8", mh_dashboard_html, mh_dashboard_html_len);
		return;
	}
	if (!post && strcmp(path, "/healthz") == 0) {
		struct mh_err err;
		struct redisReply *r = rq_command(s->q, &err, "PING");
		bool up = r != NULL;

		rq_reply_free(r);
		if (up)
			reply(req, 200, "text/plain", "ok\n", 3);
		else
			reply_error(req, 503, err.detail);
		return;
	}
	if (strcmp(path, "/metrics") != 0 && strncmp(path, "/api/", 5) != 0) {
		reply_error(req, 404, "no such resource");
		return;
	}
	if (!authorized(s, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
		reply_error(req, 401, "a bearer token is needed (Authorization: Bearer TOKEN)");
		return;
	}
	if (post && evhttp_find_header(evhttp_request_get_input_headers(req), "X-Mailhaul-Action") == NULL) {
		reply_error(req, 403, "a POST needs the header X-Mailhaul-Action: 1");
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		if (post)
			reply_error(req, 405, "use GET");
		else
			reply_rendered(s, req, "text/plain; version=0.0.4", render_metrics, NULL);
		return;
	}
	route_api(s, req, path, post);
}

/* --- the thread ------------------------------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;

	(void)fd;
	(void)what;
	if (atomic_load(&s->stop))
		event_base_loopbreak(s->base);
}

static void *serve(void *arg)
{
	struct http_server *s = arg;

	event_base_dispatch(s->base);
	return NULL;
}

/* "127.0.0.1:8425" -> "127.0.0.1" and 8425; "[::1]:8425" -> "::1". */
static int split_listen(const char *listen, char *host, size_t hostlen, uint16_t *port_r, struct mh_err *err)
{
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t n;
	unsigned long port;
	char *end;

	if (colon == NULL)
		return mh_err_set(err, MH_E_USAGE, "--http %s: HOST:PORT wanted", listen);
	n = (size_t)(colon - listen);
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	port = strtoul(colon + 1, &end, 10);
	if (n == 0 || n >= hostlen || *end != '\0' || port == 0 || port > 65535)
		return mh_err_set(err, MH_E_USAGE, "--http %s: HOST:PORT wanted", listen);
	memcpy(host, h, n);
	host[n] = '\0';
	*port_r = (uint16_t)port;
	return 0;
}

void http_stop(struct http_server **sp)
{
	struct http_server *s = sp != NULL ? *sp : NULL;

	if (s == NULL)
		return;
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	event_free(s->tick);
	evhttp_free(s->http);
	event_base_free(s->base);
	rq_free(&s->q);
	free(s->token);
	free(s);
	*sp = NULL;
}

int http_start(const struct http_opts *o, struct http_server **s_r, struct mh_err *err)
{
	struct http_server *s = calloc(1, sizeof(*s));
	const struct timeval every = {0, 250 * 1000};
	char host[256];
	uint16_t port = 0; /* set by split_listen(); GCC -O2 cannot tell */

	if (s == NULL)
		abort();
	if (split_listen(o->listen, host, sizeof(host), &port, err) < 0) {
		free(s);
		return -1;
	}
	if ((s->q = rq_connect(o->redis_url, 5000, err)) == NULL) {
		free(s);
		return -1;
	}
	if (o->token != NULL && (s->token = strdup(o->token)) == NULL)
		abort();
	s->base = event_base_new();
	s->http = s->base != NULL ? evhttp_new(s->base) : NULL;
	if (s->http == NULL)
		abort();
	/* a bounded request: nothing we serve takes a body */
	evhttp_set_max_body_size(s->http, 4096);
	evhttp_set_max_headers_size(s->http, 16384);
	evhttp_set_timeout(s->http, 30);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_gencb(s->http, on_request, s);
	if (evhttp_bind_socket(s->http, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port) != 0) {
		mh_err_set(err, MH_E_USAGE, "--http %s: cannot listen there (in use, or not an address of this host)",
			   o->listen);
		evhttp_free(s->http);
		event_base_free(s->base);
		rq_free(&s->q);
		free(s->token);
		free(s);
		return -1;
	}
	s->tick = event_new(s->base, -1, EV_PERSIST, on_tick, s);
	event_add(s->tick, &every);
	if (pthread_create(&s->thread, NULL, serve, s) != 0)
		abort();
	mh_info("http", "serving the API, the dashboard and /metrics on http://%s/%s", o->listen,
		s->token != NULL ? " (bearer token required)" : "");
	*s_r = s;
	return 0;
}
