/* rq.h - Redis helpers: connection with timeouts, streams with consumer groups.
 *
 * Synchronous hiredis (each thread owns its own struct rq). The only module that talks
 * to Redis at the socket level; callers that need a reply's fields include <hiredis.h>.
 *
 * URLs: redis://host[:port][/db] and unix:///path/to/redis.sock[?db=N]. */
#ifndef MH_RQ_H
#define MH_RQ_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct redisReply;
struct rq;

#define RQ_ID_MAX 48 /* "1700000000000-123" fits */

struct rq *rq_connect(const char *url, unsigned timeout_ms, struct mh_err *err);
void rq_free(struct rq **q);

/* redisCommand with error mapping: returns the reply (free it with rq_reply_free), or NULL
 * with MH_E_REDIS on an I/O error or an error reply (whose text goes into err->detail). */
struct redisReply *rq_command(struct rq *q, struct mh_err *err, const char *fmt, ...);
struct redisReply *rq_command_argv(struct rq *q, struct mh_err *err, int argc, const char **argv,
				   const size_t *argvlen);
void rq_reply_free(struct redisReply *r);

/* A command's arguments, built one by one (each string copied), for commands too long or
 * too variable for a format (scripts with many ARGV). */
struct rq_args {
	int argc, cap;
	char **argv;
	size_t *len;
};
void rq_args_add(struct rq_args *a, const char *s);
void rq_args_add_u64(struct rq_args *a, uint64_t v);
/* Runs the command and empties a (for the next chunk); the reply as for rq_command. */
struct redisReply *rq_args_run(struct rq *q, struct rq_args *a, struct mh_err *err);
void rq_args_free(struct rq_args *a);


/* XGROUP CREATE stream group 0 MKSTREAM; an existing group is fine. */
int rq_group_ensure(struct rq *q, const char *stream, const char *group, struct mh_err *err);
/* XADD stream * field value; id_r (RQ_ID_MAX bytes) may be NULL. */
int rq_xadd(struct rq *q, const char *stream, const char *field, const void *value, size_t len,
	    char *id_r, struct mh_err *err);

struct rq_entry {
	const char *id;
	const char *value; /* the value of the entry's first field */
	size_t len;
};
/* Called per entry; the entry is valid only during the call. Return 0 to go on. */
typedef int rq_entry_cb_t(void *ctx, const struct rq_entry *e);

/* XREADGROUP GROUP group consumer COUNT count BLOCK block_ms STREAMS stream >.
 * Returns the number of entries delivered (0 on timeout), or -1. */
int rq_xreadgroup(struct rq *q, const char *stream, const char *group, const char *consumer,
		  unsigned block_ms, unsigned count, rq_entry_cb_t *cb, void *ctx, struct mh_err *err);
int rq_xack(struct rq *q, const char *stream, const char *group, const char *id, struct mh_err *err);
/* XACK and XDEL in one step: for streams read by a single consumer group, where an
 * acknowledged entry is pending for nobody and only takes memory. */
int rq_xack_del(struct rq *q, const char *stream, const char *group, const char *id, struct mh_err *err);
/* XAUTOCLAIM stream group consumer min_idle_ms 0-0 COUNT count: takes over entries other
 * consumers held too long. Returns the number delivered, or -1. */
int rq_xautoclaim(struct rq *q, const char *stream, const char *group, const char *consumer,
		  unsigned min_idle_ms, unsigned count, rq_entry_cb_t *cb, void *ctx, struct mh_err *err);

#endif
