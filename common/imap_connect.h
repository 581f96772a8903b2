/* imap_connect.h - opens an authenticated connection for one side of a job.
 *
 * Unseals the side's password (binding it to the job id), builds the TLS context from the
 * job's options, connects and logs in, running base until done. The password is wiped as
 * soon as the client has its copy. Used by the planner and by workers alike. A POP3
 * source (pop3_connect.h) opens through the same calls: conn->pop3 instead of conn->imap,
 * and at most one connection per POP3 account fleet-wide (servers lock the maildrop to
 * one session, RFC 1939 section 8). */
#ifndef MH_IMAP_CONNECT_H
#define MH_IMAP_CONNECT_H

#include <stdbool.h>

#include "err.h"
#include "imap_client.h"
#include "limit.h"
#include "pop3_client.h"
#include "seal.h"
#include "wire.h"

struct event_base;

enum mh_side { MH_SIDE_SOURCE, MH_SIDE_TARGET };

struct mh_conn {
	struct imap_client *imap; /* an IMAP side */
	struct pop3_client *pop3; /* a POP3 source (exactly one of the two is set when open) */
	struct mh_tls *tls;    /* shared by the process (see shared_tls()): never freed here */
	struct mh_lease lease; /* the fleet-wide connection slot it holds (limit.h) */
	struct rq *lease_q;    /* where the lease lives; NULL when not leased */
	struct event_base *base;
	enum imap_stage stage; /* after a failed open: the stage it failed in (health check) */
	enum pop3_stage pop3_stage; /* the same for a POP3 source */
};

/* True while the connection (IMAP or POP3) is open. */
bool mh_conn_is_open(const struct mh_conn *conn);
/* The process-wide TLS context for spec's CA file and --insecure (never freed). */
struct mh_tls *mh_conn_shared_tls(const struct mh_job_spec *spec, struct mh_err *err);

struct mh_conn_opts {
	unsigned connect_timeout_ms;
	unsigned command_timeout_ms;
};

/* 0 with conn open, or -1 with err (conn left closed). */
int mh_conn_open(struct event_base *base, const struct mh_job_spec *spec, enum mh_side side,
		 const struct mh_seal_key *key, const struct mh_conn_opts *opts, struct mh_conn *conn,
		 struct mh_err *err);
/* Closes the connection and then gives its lease back. Must not be called from inside
 * one of base's callbacks (it runs base once to finish the close). */
void mh_conn_close(struct mh_conn *conn);

/* Leases last this long; holders refresh them every MH_CONN_LEASE_REFRESH_MS while they
 * hold the connection. Short, because a killed worker cannot give its slots back: they
 * lapse within this time (a holder that fails to refresh overruns softly, nothing more). */
#define MH_CONN_LEASE_TTL_MS 30000u
#define MH_CONN_LEASE_REFRESH_MS 10000u

/* Like mh_conn_open(), but first takes a fleet-wide slot for the account and its host
 * (limit.h; the account limit is the job's max_connections, else the default; always 1
 * for a POP3 source), in Redis q.
 * holder names the connection uniquely (e.g. "<consumer>-src"). Returns 1 when open, 0
 * when a limit is full (*retry_ms_r says when a slot may free up), -1 on error. */
int mh_conn_open_leased(struct event_base *base, struct rq *q, const char *holder, const struct mh_job_spec *spec,
			enum mh_side side, const struct mh_seal_key *key, const struct mh_conn_opts *opts,
			struct mh_conn *conn, unsigned *retry_ms_r, struct mh_err *err);
/* Keeps an open connection's lease alive; -1 when it lapsed (close and reopen). */
int mh_conn_refresh_lease(struct mh_conn *conn, struct mh_err *err);
const char *mh_side_name(enum mh_side side); /* "source" / "target" */

#endif
