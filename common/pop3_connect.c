/* pop3_connect.c - authenticated POP3 connections for a job's source (see pop3_connect.h). */
#include "pop3_connect.h"

#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "trace.h"

struct pop3_open_wait {
	bool done;
	bool ok;
	struct mh_err err;
};

static void pop3_open_done(void *ctx, const struct mh_err *err)
{
	struct pop3_open_wait *w = ctx;

	w->done = true;
	w->ok = err == NULL;
	if (err != NULL)
		w->err = *err;
}

static void disable_cap(void *c, const char *name)
{
	pop3_client_disable_cap(c, name);
}

int mh_pop3_conn_open(struct event_base *base, const struct mh_job_spec *spec, const struct mh_seal_key *key,
		      const struct mh_conn_opts *opts, struct mh_conn *conn, struct mh_err *err)
{
	const struct mh_wire_endpoint *ep = &spec->src;
	struct pop3_client_opts o;
	struct pop3_open_wait w = {0};
	char *password = NULL;
	size_t password_len = 0;

	memset(conn, 0, sizeof(*conn));
	if (ep->sealed_password.len == 0)
		return mh_err_set(err, MH_E_NO_PASSWORD, "source: the job holds no password (finished job?)");
	if (mh_unseal(key, spec->job_id, ep->sealed_password.data, ep->sealed_password.len, &password,
		      &password_len, err) < 0)
		return -1;
	/* a TLS context even for pop3:// --allow-plaintext: STLS is used whenever offered */
	conn->tls = mh_conn_shared_tls(spec, err);
	if (conn->tls == NULL) {
		mh_secret_free(&password);
		return -1;
	}
	memset(&o, 0, sizeof(o));
	o.name = "source";
	o.host = ep->host;
	o.port = ep->port;
	o.security = ep->security;
	o.allow_plaintext = (spec->flags & MH_JOB_ALLOW_PLAINTEXT) != 0;
	/* APOP is MD5 over a server timestamp: better than USER/PASS in the clear only */
	o.allow_apop = ep->security == MH_SEC_PLAIN;
	o.tls = conn->tls;
	o.user = ep->user;
	o.password = password;
	o.connect_timeout_ms = opts != NULL ? opts->connect_timeout_ms : 0;
	o.command_timeout_ms = opts != NULL ? opts->command_timeout_ms : 0;
	o.trace = mh_trace_cb();
	o.trace_ctx = (void *)"source";
	conn->base = base;
	conn->pop3 = pop3_client_new(base, &o);
	mh_secret_free(&password);
	if (conn->pop3 == NULL) {
		mh_conn_close(conn);
		return mh_err_set(err, MH_E_INTERNAL, "cannot create a POP3 client");
	}
	mh_env_words("MAILHAUL_POP3_DISABLE_CAPS", disable_cap, conn->pop3);
	pop3_client_open(conn->pop3, pop3_open_done, &w);
	if (imap_run_until(base, &w.done) < 0 && !w.done) {
		conn->pop3_stage = pop3_client_stage(conn->pop3);
		mh_conn_close(conn);
		return mh_err_set(err, MH_E_INTERNAL, "event loop ended before the login finished");
	}
	conn->pop3_stage = pop3_client_stage(conn->pop3);
	if (!w.ok) {
		mh_conn_close(conn);
		*err = w.err;
		return -1;
	}
	return 0;
}

static void quit_done(void *ctx, const struct mh_err *err)
{
	(void)err;
	*(bool *)ctx = true;
}

void mh_conn_quit(struct mh_conn *conn)
{
	struct mh_err err;
	bool done = false;

	if (conn->pop3 != NULL && pop3_client_is_open(conn->pop3) &&
	    pop3_client_quit(conn->pop3, quit_done, &done, &err) == 0)
		imap_run_until(conn->base, &done);
	mh_conn_close(conn);
}
