/* imap_connect.h - opens an authenticated IMAP connection for one side of a job.
 *
 * Unseals the side's password (binding it to the job id), builds the TLS context from the
 * job's options, connects and logs in, running base until done. The password is wiped as
 * soon as the client has its copy. Used by the planner and by workers alike. */
#ifndef MH_IMAP_CONNECT_H
#define MH_IMAP_CONNECT_H

#include <stdbool.h>

#include "err.h"
#include "imap_client.h"
#include "seal.h"
#include "wire.h"

struct event_base;

enum mh_side { MH_SIDE_SOURCE, MH_SIDE_TARGET };

struct mh_conn {
	struct imap_client *imap;
	struct mh_tls *tls;
};

struct mh_conn_opts {
	unsigned connect_timeout_ms;
	unsigned command_timeout_ms;
};

/* 0 with conn open, or -1 with err (conn left closed). */
int mh_conn_open(struct event_base *base, const struct mh_job_spec *spec, enum mh_side side,
		 const struct mh_seal_key *key, const struct mh_conn_opts *opts, struct mh_conn *conn,
		 struct mh_err *err);
void mh_conn_close(struct mh_conn *conn);
const char *mh_side_name(enum mh_side side); /* "source" / "target" */

#endif
