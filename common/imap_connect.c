/* imap_connect.c - authenticated IMAP connections for a job's sides (see imap_connect.h). */
#include "imap_connect.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pop3_connect.h"
#include "fault.h"
#include "trace.h"

const char *mh_side_name(enum mh_side side)
{
	return side == MH_SIDE_SOURCE ? "source" : "target";
}

/* One TLS context per (CA file, insecure) for the whole process: building one parses the
 * entire system CA bundle, which was 83% of a worker's CPU on fleets of small mailboxes
 * (bench/SCALE.md). An SSL_CTX may be shared by threads once configured; connections
 * only read it (mh_tls_ssl_new). The contexts live until the process exits. */
#define SHARED_TLS_MAX 32

static struct {
	char *ca_file;
	bool insecure;
	struct mh_tls *tls;
} shared_tls_cache[SHARED_TLS_MAX];
static size_t shared_tls_count;
static pthread_mutex_t shared_tls_lock = PTHREAD_MUTEX_INITIALIZER;

static struct mh_tls *shared_tls(const struct mh_tls_opts *o, struct mh_err *err)
{
	const char *ca = o->ca_file != NULL ? o->ca_file : "";
	struct mh_tls *tls = NULL;

	pthread_mutex_lock(&shared_tls_lock);
	for (size_t i = 0; i < shared_tls_count && tls == NULL; i++)
		if (shared_tls_cache[i].insecure == o->insecure && strcmp(shared_tls_cache[i].ca_file, ca) == 0)
			tls = shared_tls_cache[i].tls;
	if (tls == NULL && shared_tls_count < SHARED_TLS_MAX) {
		tls = mh_tls_new(o, err);
		if (tls != NULL) {
			shared_tls_cache[shared_tls_count].ca_file = strdup(ca);
			shared_tls_cache[shared_tls_count].insecure = o->insecure;
			shared_tls_cache[shared_tls_count++].tls = tls;
		}
	} else if (tls == NULL) {
		mh_err_set(err, MH_E_INTERNAL, "more than %d distinct CA files in one process", SHARED_TLS_MAX);
	}
	pthread_mutex_unlock(&shared_tls_lock);
	return tls;
}

struct mh_tls *mh_conn_shared_tls(const struct mh_job_spec *spec, struct mh_err *err)
{
	struct mh_tls_opts tls_opts = {.ca_file = spec->ca_file, .insecure = (spec->flags & MH_JOB_INSECURE) != 0};

	return shared_tls(&tls_opts, err);
}

bool mh_conn_is_open(const struct mh_conn *conn)
{
	if (conn->imap != NULL)
		return imap_client_is_open(conn->imap);
	return conn->pop3 != NULL && pop3_client_is_open(conn->pop3);
}

struct open_wait {
	bool done;
	bool ok;
	struct mh_err err;
};

static void open_done(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	struct open_wait *w = ctx;

	(void)tagged;
	w->done = true;
	w->ok = err == NULL;
	if (err != NULL)
		w->err = *err;
}

static void disable_cap(void *c, const char *name)
{
	imap_client_disable_cap(c, name);
}

int mh_conn_open(struct event_base *base, const struct mh_job_spec *spec, enum mh_side side,
		 const struct mh_seal_key *key, const struct mh_conn_opts *opts, struct mh_conn *conn,
		 struct mh_err *err)
{
	const struct mh_wire_endpoint *ep = side == MH_SIDE_SOURCE ? &spec->src : &spec->dst;
	struct mh_tls_opts tls_opts = {.ca_file = spec->ca_file, .insecure = (spec->flags & MH_JOB_INSECURE) != 0};
	struct imap_client_opts o;
	struct open_wait w = {0};
	char *password = NULL;
	size_t password_len = 0;

	memset(conn, 0, sizeof(*conn));
	if (ep->proto == MH_PROTO_POP3 && side == MH_SIDE_SOURCE)
		return mh_pop3_conn_open(base, spec, key, opts, conn, err);
	if (ep->proto != MH_PROTO_IMAP)
		return mh_err_set(err, MH_E_SERVER_CAPABILITY, "%s: only IMAP is supported here",
				  mh_side_name(side));
	if (ep->sealed_password.len == 0)
		return mh_err_set(err, MH_E_NO_PASSWORD, "%s: the job holds no password (finished job?)",
				  mh_side_name(side));
	if (mh_unseal(key, spec->job_id, ep->sealed_password.data, ep->sealed_password.len, &password,
		      &password_len, err) < 0)
		return -1;
	/* a TLS context even for imap:// --allow-plaintext: STARTTLS is used whenever offered */
	conn->tls = shared_tls(&tls_opts, err);
	if (conn->tls == NULL) {
		mh_secret_free(&password);
		return -1;
	}

	memset(&o, 0, sizeof(o));
	o.name = mh_side_name(side);
	o.host = ep->host;
	o.port = ep->port;
	o.security = ep->security;
	o.allow_plaintext = (spec->flags & MH_JOB_ALLOW_PLAINTEXT) != 0;
	o.tls = conn->tls;
	o.user = ep->user;
	o.password = password;
	o.connect_timeout_ms = opts != NULL ? opts->connect_timeout_ms : 0;
	o.command_timeout_ms = opts != NULL ? opts->command_timeout_ms : 0;
	o.trace = mh_trace_cb();
	o.trace_ctx = (void *)mh_side_name(side);
	conn->base = base;
	conn->imap = imap_client_new(base, &o);
	mh_secret_free(&password);
	if (conn->imap == NULL) {
		mh_conn_close(conn);
		return mh_err_set(err, MH_E_INTERNAL, "cannot create an IMAP client");
	}
	mh_env_words("MAILHAUL_IMAP_DISABLE_CAPS", disable_cap, conn->imap);
	imap_client_open(conn->imap, open_done, &w);
	if (imap_run_until(base, &w.done) < 0 && !w.done) {
		conn->stage = imap_client_stage(conn->imap);
		mh_conn_close(conn);
		return mh_err_set(err, MH_E_INTERNAL, "event loop ended before the login finished");
	}
	conn->stage = imap_client_stage(conn->imap);
	if (!w.ok) {
		mh_conn_close(conn);
		*err = w.err;
		return -1;
	}
	return 0;
}

void mh_conn_close(struct mh_conn *conn)
{
	struct mh_err err;

	if (conn->imap != NULL || conn->pop3 != NULL) {
		imap_client_free(&conn->imap);
		pop3_client_free(&conn->pop3);
		/* bufferevents close their socket in a deferred callback: let it run now, so
		 * that the slot given back below is really free at the server */
		if (conn->base != NULL)
			event_base_loop(conn->base, EVLOOP_NONBLOCK);
	}
	conn->tls = NULL; /* shared: see shared_tls() */
	if (conn->lease_q != NULL && conn->lease.held)
		mh_limit_release(conn->lease_q, &conn->lease, &err); /* a failed release lapses by itself */
	conn->lease_q = NULL;
}

int mh_conn_open_leased(struct event_base *base, struct rq *q, const char *holder, const struct mh_job_spec *spec,
			enum mh_side side, const struct mh_seal_key *key, const struct mh_conn_opts *opts,
			struct mh_conn *conn, unsigned *retry_ms_r, struct mh_err *err)
{
	const struct mh_wire_endpoint *ep = side == MH_SIDE_SOURCE ? &spec->src : &spec->dst;
	struct mh_limit_target t = {
		.proto = mh_proto_name(ep->proto),
		.host = ep->host,
		.port = ep->port,
		.user = ep->user,
		.account_max = spec->max_connections,
	};
	/* a POP3 maildrop is locked to one session: a second one would only be refused */
	if (ep->proto == MH_PROTO_POP3)
		t.account_max = 1;
	struct mh_lease lease;
	int got;

	memset(conn, 0, sizeof(*conn));
	got = mh_limit_try_acquire(q, &t, holder, MH_CONN_LEASE_TTL_MS, &lease, retry_ms_r, err);
	if (got <= 0)
		return got;
	if (mh_conn_open(base, spec, side, key, opts, conn, err) < 0) {
		struct mh_err e2;
		mh_limit_release(q, &lease, &e2);
		return -1;
	}
	conn->lease = lease;
	conn->lease_q = q;
	return 1;
}

int mh_conn_refresh_lease(struct mh_conn *conn, struct mh_err *err)
{
	if (conn->lease_q == NULL || !conn->lease.held)
		return 0;
	return mh_limit_refresh(conn->lease_q, &conn->lease, MH_CONN_LEASE_TTL_MS, err);
}
