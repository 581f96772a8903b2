/* pop3_connect.h - opens an authenticated POP3 connection for a job's source.
 *
 * The POP3 half of imap_connect.h: mh_conn_open() and mh_conn_open_leased() call it for a
 * POP3 source, so the planner, the workers and the health check open a POP3 source exactly
 * like an IMAP side (same shared TLS context, CA file, certificate checks, unsealed
 * password wiped at once, fleet-wide leases). */
#ifndef MH_POP3_CONNECT_H
#define MH_POP3_CONNECT_H

#include "imap_connect.h"

/* 0 with conn->pop3 logged in, or -1 with err (conn closed; conn->pop3_stage says how
 * far it got). The environment variable MAILHAUL_POP3_DISABLE_CAPS ("UIDL,PIPELINING")
 * makes the client ignore those capabilities: for tests of servers without them. */
int mh_pop3_conn_open(struct event_base *base, const struct mh_job_spec *spec, const struct mh_seal_key *key,
		      const struct mh_conn_opts *opts, struct mh_conn *conn, struct mh_err *err);

/* Ends the POP3 session with QUIT (waiting for the server's reply, at most the command
 * timeout), then closes the connection and gives its lease back (mh_conn_close). A
 * session that ends without QUIT is also harmless (nothing was marked for deletion), but
 * QUIT releases the server's maildrop lock at once. Not from inside base's callbacks. */
void mh_conn_quit(struct mh_conn *conn);

#endif
