/* rq.c - Redis helpers over synchronous hiredis: URLs, timeouts, streams, consumer groups.
 *
 * A struct rq remembers its parsed URL so that a connection broken by an I/O error or a
 * timeout is re-established (AUTH and SELECT included) by the next command; the failed
 * command itself is reported, never retried, because it may have run on the server.
 *
 * Timeouts: timeout_ms bounds connecting and every command (0 means RQ_DEFAULT_TIMEOUT_MS).
 * XREADGROUP with BLOCK raises the socket timeout to block_ms + timeout_ms for that one
 * call, since the server legitimately stays silent for block_ms. */
#include "rq.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>

#include <hiredis.h>

#define RQ_DEFAULT_TIMEOUT_MS 5000u
#define RQ_DEFAULT_PORT 6379
#define RQ_DESC_MAX 160

struct rq {
	/* from the URL, for (re)connecting */
	char *host;     /* host name or IP, or the socket path when is_unix */
	bool is_unix;
	int port;
	long db;        /* -1: no SELECT */
	char *user;     /* NULL: AUTH with the password alone */
	char *password; /* NULL: no AUTH; wiped on free */
	unsigned timeout_ms;
	char desc[RQ_DESC_MAX]; /* the URL without credentials, for messages */

	redisContext *c; /* NULL or errored: reconnect before the next command */
};

static void *rq_alloc(size_t size)
{
	void *p = calloc(1, size);

	if (p == NULL)
		abort(); /* house rule: out of memory aborts */
	return p;
}

static char *rq_strndup(const char *s, size_t n)
{
	char *p = rq_alloc(n + 1);

	memcpy(p, s, n);
	return p;
}

static void secret_wipe_free(char *s)
{
	if (s == NULL)
		return;
	/* volatile so the wipe is not optimized away before free() */
	for (volatile char *p = s; *p != '\0'; p++)
		*p = '\0';
	free(s);
}

/* ------------------------------------------------------------------------------------- */
/* URL parsing                                                                             */

/* Digits only, no sign, bounded; -1 on anything else. */
static long parse_num(const char *s, size_t n, long max)
{
	long v = 0;

	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape or an encoded NUL. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = rq_alloc(n + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 >= n)
			goto bad;
		{
			int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		}
	}
	return out;
bad:
	secret_wipe_free(out);
	return NULL;
}

/* unix:///abs/path.sock[?db=N] */
static int parse_unix(struct rq *q, const char *rest, struct mh_err *err)
{
	const char *qm = strchr(rest, '?');
	size_t plen = qm ? (size_t)(qm - rest) : strlen(rest);

	if (plen == 0 || rest[0] != '/')
		return mh_err_set(err, MH_E_REDIS, "redis URL: unix socket path must be absolute");
	if (plen >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return mh_err_set(err, MH_E_REDIS, "redis URL: unix socket path too long");
	q->is_unix = true;
	q->host = rq_strndup(rest, plen);
	if (qm != NULL) {
		if (strncmp(qm + 1, "db=", 3) != 0 ||
		    (q->db = parse_num(qm + 4, strlen(qm + 4), 0x7fffffff)) < 0)
			return mh_err_set(err, MH_E_REDIS,
					  "redis URL: only ?db=N (a number) may follow the socket path");
	}
	if (q->db >= 0)
		snprintf(q->desc, sizeof(q->desc), "unix://%s?db=%ld", q->host, q->db);
	else
		snprintf(q->desc, sizeof(q->desc), "unix://%s", q->host);
	return 0;
}

/* redis://[[user]:password@]host[:port][/db]; IPv6 literals in brackets. */
static int parse_tcp(struct rq *q, const char *rest, struct mh_err *err)
{
	const char *at, *hp, *end, *slash, *colon;
	const char *hs, *he; /* host span */

	end = rest + strlen(rest);
	slash = strchr(rest, '/');
	if (slash == NULL)
		slash = end;
	/* The last '@' before the path ends the user info (passwords may contain '@'
	 * only percent-encoded, but be lenient). */
	at = NULL;
	for (const char *p = rest; p < slash; p++)
		if (*p == '@')
			at = p;
	hp = rest;
	if (at != NULL) {
		const char *c = memchr(rest, ':', (size_t)(at - rest));

		if (c == NULL)
			return mh_err_set(err, MH_E_REDIS,
					  "redis URL: user info needs a password (user:password@)");
		if (c > rest && (q->user = pct_decode(rest, (size_t)(c - rest))) == NULL)
			return mh_err_set(err, MH_E_REDIS, "redis URL: bad %%-escape in the user name");
		if ((q->password = pct_decode(c + 1, (size_t)(at - c - 1))) == NULL)
			return mh_err_set(err, MH_E_REDIS, "redis URL: bad %%-escape in the password");
		hp = at + 1;
	}
	if (hp < slash && *hp == '[') {
		const char *rb = memchr(hp, ']', (size_t)(slash - hp));

		if (rb == NULL)
			return mh_err_set(err, MH_E_REDIS, "redis URL: unterminated [IPv6 address]");
		hs = hp + 1;
		he = rb;
		colon = rb + 1 < slash ? rb + 1 : NULL;
		if (colon != NULL && *colon != ':')
			return mh_err_set(err, MH_E_REDIS, "redis URL: junk after ]");
	} else {
		hs = hp;
		colon = memchr(hp, ':', (size_t)(slash - hp));
		he = colon ? colon : slash;
	}
	if (he == hs)
		return mh_err_set(err, MH_E_REDIS, "redis URL: no host");
	q->host = rq_strndup(hs, (size_t)(he - hs));
	q->port = RQ_DEFAULT_PORT;
	if (colon != NULL) {
		long port = parse_num(colon + 1, (size_t)(slash - colon - 1), 65535);

		if (port <= 0)
			return mh_err_set(err, MH_E_REDIS, "redis URL: bad port");
		q->port = (int)port;
	}
	if (slash < end && slash[1] != '\0') {
		if ((q->db = parse_num(slash + 1, (size_t)(end - slash - 1), 0x7fffffff)) < 0)
			return mh_err_set(err, MH_E_REDIS, "redis URL: the path must be a database number");
	}
	snprintf(q->desc, sizeof(q->desc), "redis://%s%s%s%s:%d", q->password ? "***@" : "",
		 strchr(q->host, ':') ? "[" : "", q->host, strchr(q->host, ':') ? "]" : "", q->port);
	if (q->db >= 0) {
		size_t n = strlen(q->desc);

		snprintf(q->desc + n, sizeof(q->desc) - n, "/%ld", q->db);
	}
	return 0;
}

/* ------------------------------------------------------------------------------------- */
/* Connection                                                                              */

static struct timeval ms_to_tv(unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	return tv;
}

/* Describes a context error; a timeout shows up as EAGAIN from the socket. */
static int context_fail(struct rq *q, unsigned timeout_ms, struct mh_err *err, const char *what)
{
	redisContext *c = q->c;

	if (c == NULL)
		return mh_err_set(err, MH_E_REDIS, "%s: %s: not connected", q->desc, what);
	if (c->err == REDIS_ERR_IO && (strstr(c->errstr, "temporarily unavailable") != NULL ||
				       strstr(c->errstr, "timed out") != NULL))
		return mh_err_set(err, MH_E_REDIS, "%s: %s: timed out after %u ms", q->desc, what,
				  timeout_ms);
	if (c->err == REDIS_ERR_EOF)
		return mh_err_set(err, MH_E_REDIS, "%s: %s: server closed the connection", q->desc,
				  what);
	return mh_err_set(err, MH_E_REDIS, "%s: %s: %s", q->desc, what,
			  c->errstr[0] ? c->errstr : "connection error");
}

/* Runs a setup command (AUTH, SELECT) on a fresh context. The AUTH reply text is never
 * shown when it could contain the password. */
static int setup_command(struct rq *q, struct mh_err *err, const char *what, int argc,
			 const char **argv)
{
	redisReply *r = redisCommandArgv(q->c, argc, argv, NULL);
	int rc = 0;

	if (r == NULL)
		return context_fail(q, q->timeout_ms, err, what);
	if (r->type == REDIS_REPLY_ERROR) {
		if (q->password != NULL && strstr(r->str, q->password) != NULL)
			rc = mh_err_set(err, MH_E_REDIS, "%s: %s failed", q->desc, what);
		else
			rc = mh_err_set(err, MH_E_REDIS, "%s: %s failed: %s", q->desc, what, r->str);
	}
	freeReplyObject(r);
	return rc;
}

static void rq_close(struct rq *q)
{
	if (q->c != NULL) {
		redisFree(q->c);
		q->c = NULL;
	}
}

/* (Re)connects and authenticates; on failure q->c is NULL. */
static int rq_open(struct rq *q, struct mh_err *err)
{
	struct timeval tv = ms_to_tv(q->timeout_ms);

	rq_close(q);
	if (q->is_unix)
		q->c = redisConnectUnixWithTimeout(q->host, tv);
	else
		q->c = redisConnectWithTimeout(q->host, q->port, tv);
	if (q->c == NULL)
		abort(); /* hiredis returns NULL only when out of memory */
	if (q->c->err != 0) {
		context_fail(q, q->timeout_ms, err, "connect");
		goto fail;
	}
	if (redisSetTimeout(q->c, tv) != REDIS_OK) {
		context_fail(q, q->timeout_ms, err, "setting the timeout");
		goto fail;
	}
	if (q->password != NULL) {
		const char *argv[3] = {"AUTH", q->user ? q->user : q->password, q->password};

		if (setup_command(q, err, "AUTH", q->user ? 3 : 2, argv) < 0)
			goto fail;
	}
	if (q->db >= 0) {
		char num[24];
		const char *argv[2] = {"SELECT", num};

		snprintf(num, sizeof(num), "%ld", q->db);
		if (setup_command(q, err, "SELECT", 2, argv) < 0)
			goto fail;
	}
	return 0;
fail:
	rq_close(q);
	return -1;
}

/*
 * Parses url, connects within timeout_ms (0: 5 s), sends AUTH when the URL carries a
 * password and SELECT when it names a database. Returns the handle, or NULL with
 * MH_E_REDIS (details show the URL with the password masked).
 */
struct rq *rq_connect(const char *url, unsigned timeout_ms, struct mh_err *err)
{
	struct rq *q = rq_alloc(sizeof(*q));
	int rc;

	q->db = -1;
	q->timeout_ms = timeout_ms ? timeout_ms : RQ_DEFAULT_TIMEOUT_MS;
	if (url == NULL)
		rc = mh_err_set(err, MH_E_REDIS, "redis URL missing");
	else if (strncmp(url, "unix://", 7) == 0)
		rc = parse_unix(q, url + 7, err);
	else if (strncmp(url, "redis://", 8) == 0)
		rc = parse_tcp(q, url + 8, err);
	else
		rc = mh_err_set(err, MH_E_REDIS, "redis URL must start with redis:// or unix://");
	if (rc < 0 || rq_open(q, err) < 0) {
		rq_free(&q);
		return NULL;
	}
	return q;
}

/* Closes the connection, wipes the password and frees q; NULLs *q. */
void rq_free(struct rq **qp)
{
	struct rq *q = qp != NULL ? *qp : NULL;

	if (q == NULL)
		return;
	rq_close(q);
	free(q->host);
	free(q->user);
	secret_wipe_free(q->password);
	free(q);
	*qp = NULL;
}

/* ------------------------------------------------------------------------------------- */
/* Commands                                                                                */

/* Reconnects a broken context; the caller runs its command afterwards. */
static int rq_ready(struct rq *q, struct mh_err *err)
{
	if (q->c != NULL && q->c->err == 0)
		return 0;
	return rq_open(q, err);
}

/* Maps a raw hiredis result: NULL (I/O) and error replies become -1 with MH_E_REDIS. */
static redisReply *reply_check(struct rq *q, redisReply *r, unsigned timeout_ms,
			       struct mh_err *err)
{
	if (r == NULL) {
		context_fail(q, timeout_ms, err, "command");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		mh_err_set(err, MH_E_REDIS, "%s: %.*s", q->desc, (int)r->len, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/*
 * redisvCommand with reconnect and error mapping. Returns the reply (free with
 * rq_reply_free), or NULL with MH_E_REDIS on an I/O error, a timeout or an error reply.
 */
struct redisReply *rq_command(struct rq *q, struct mh_err *err, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;

	if (rq_ready(q, err) < 0)
		return NULL;
	va_start(ap, fmt);
	r = redisvCommand(q->c, fmt, ap);
	va_end(ap);
	return reply_check(q, r, q->timeout_ms, err);
}

/* As rq_command, with binary-safe arguments (argvlen may be NULL for C strings). */
struct redisReply *rq_command_argv(struct rq *q, struct mh_err *err, int argc, const char **argv,
				   const size_t *argvlen)
{
	if (rq_ready(q, err) < 0)
		return NULL;
	return reply_check(q, redisCommandArgv(q->c, argc, argv, argvlen), q->timeout_ms, err);
}

/* Frees a reply; NULL is fine. */
void rq_reply_free(struct redisReply *r)
{
	if (r != NULL)
		freeReplyObject(r);
}

/*
 * XGROUP CREATE stream group 0 MKSTREAM: creates the stream if needed and a group that
 * starts from the beginning. An existing group (BUSYGROUP) counts as success.
 * Returns 0, or -1 (MH_E_REDIS).
 */
int rq_group_ensure(struct rq *q, const char *stream, const char *group, struct mh_err *err)
{
	redisReply *r;
	int rc = 0;

	if (rq_ready(q, err) < 0)
		return -1;
	r = redisCommand(q->c, "XGROUP CREATE %s %s 0 MKSTREAM", stream, group);
	if (r == NULL)
		return context_fail(q, q->timeout_ms, err, "XGROUP CREATE");
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
		rc = mh_err_set(err, MH_E_REDIS, "%s: XGROUP CREATE %s %s: %s", q->desc, stream, group,
				r->str);
	freeReplyObject(r);
	return rc;
}

/*
 * XADD stream * field value (value is binary: NUL bytes are fine). The new entry's id is
 * copied to id_r (RQ_ID_MAX bytes) unless it is NULL. Returns 0, or -1 (MH_E_REDIS).
 */
int rq_xadd(struct rq *q, const char *stream, const char *field, const void *value, size_t len,
	    char *id_r, struct mh_err *err)
{
	redisReply *r;
	int rc = 0;

	r = rq_command(q, err, "XADD %s * %s %b", stream, field, value, len);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_STRING || r->len >= RQ_ID_MAX)
		rc = mh_err_set(err, MH_E_REDIS, "%s: XADD: unexpected reply", q->desc);
	else if (id_r != NULL)
		memcpy(id_r, r->str, r->len + 1);
	freeReplyObject(r);
	return rc;
}

/* Reads one [id, [field, value, ...]] entry. Returns 1 with e filled, 0 for an entry
 * whose fields are gone (deleted while pending: Redis shows nil), -1 when malformed. */
static int entry_parse(const redisReply *r, struct rq_entry *e)
{
	const redisReply *id, *fields;

	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		return -1;
	id = r->element[0];
	fields = r->element[1];
	if (id->type != REDIS_REPLY_STRING || id->len >= RQ_ID_MAX)
		return -1;
	if (fields->type == REDIS_REPLY_NIL ||
	    (fields->type == REDIS_REPLY_ARRAY && fields->elements == 0))
		return 0;
	if (fields->type != REDIS_REPLY_ARRAY || fields->elements % 2 != 0 ||
	    fields->element[1]->type != REDIS_REPLY_STRING)
		return -1;
	e->id = id->str;
	e->value = fields->element[1]->str;
	e->len = fields->element[1]->len;
	return 1;
}

/* Hands each live entry of an entries array to cb until cb returns non-zero.
 * Returns the number delivered, or -1 on a malformed reply. */
static int entries_deliver(struct rq *q, const redisReply *entries, rq_entry_cb_t *cb, void *ctx,
			   bool *stop, struct mh_err *err, const char *what)
{
	int n = 0;

	if (entries->type != REDIS_REPLY_ARRAY)
		return mh_err_set(err, MH_E_REDIS, "%s: %s: unexpected reply shape", q->desc, what);
	for (size_t i = 0; i < entries->elements && !*stop; i++) {
		struct rq_entry e;
		int k = entry_parse(entries->element[i], &e);

		if (k < 0)
			return mh_err_set(err, MH_E_REDIS, "%s: %s: malformed entry", q->desc, what);
		if (k == 0)
			continue;
		n++;
		if (cb(ctx, &e) != 0)
			*stop = true;
	}
	return n;
}

/*
 * XREADGROUP GROUP group consumer COUNT count [BLOCK block_ms] STREAMS stream >.
 * block_ms 0 means "do not block" (BLOCK is left out): Redis reads BLOCK 0 as "forever",
 * which would hang the caller, so it is never sent. Entries whose fields are nil (deleted
 * from the stream while pending) are skipped, neither delivered nor acknowledged. When
 * cb returns non-zero the remaining entries are not delivered; they stay pending in the
 * group (to be claimed again by rq_xautoclaim). Returns the number of entries delivered
 * (0 on timeout), or -1 (MH_E_REDIS).
 */
int rq_xreadgroup(struct rq *q, const char *stream, const char *group, const char *consumer,
		  unsigned block_ms, unsigned count, rq_entry_cb_t *cb, void *ctx, struct mh_err *err)
{
	char count_s[16], block_s[16];
	const char *argv[11];
	int argc = 0, n = 0;
	unsigned wait_ms = q->timeout_ms;
	redisReply *r;
	bool stop = false;

	if (rq_ready(q, err) < 0)
		return -1;
	snprintf(count_s, sizeof(count_s), "%u", count ? count : 1);
	argv[argc++] = "XREADGROUP";
	argv[argc++] = "GROUP";
	argv[argc++] = group;
	argv[argc++] = consumer;
	argv[argc++] = "COUNT";
	argv[argc++] = count_s;
	if (block_ms > 0) {
		snprintf(block_s, sizeof(block_s), "%u", block_ms);
		argv[argc++] = "BLOCK";
		argv[argc++] = block_s;
		/* The server may stay silent for block_ms; only then does our timeout start. */
		wait_ms = block_ms > UINT32_MAX - wait_ms ? UINT32_MAX : block_ms + wait_ms;
		if (redisSetTimeout(q->c, ms_to_tv(wait_ms)) != REDIS_OK)
			return context_fail(q, wait_ms, err, "XREADGROUP");
	}
	argv[argc++] = "STREAMS";
	argv[argc++] = stream;
	argv[argc++] = ">";
	r = reply_check(q, redisCommandArgv(q->c, argc, argv, NULL), wait_ms, err);
	if (block_ms > 0 && q->c->err == 0 &&
	    redisSetTimeout(q->c, ms_to_tv(q->timeout_ms)) != REDIS_OK) {
		rq_reply_free(r);
		return context_fail(q, q->timeout_ms, err, "XREADGROUP");
	}
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_NIL) {
		freeReplyObject(r);
		return 0;
	}
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return mh_err_set(err, MH_E_REDIS, "%s: XREADGROUP: unexpected reply shape", q->desc);
	}
	/* [[stream, entries], ...]: one element per stream asked for */
	for (size_t i = 0; i < r->elements && !stop; i++) {
		const redisReply *s = r->element[i];
		int k;

		if (s->type != REDIS_REPLY_ARRAY || s->elements != 2) {
			n = mh_err_set(err, MH_E_REDIS, "%s: XREADGROUP: unexpected reply shape", q->desc);
			break;
		}
		k = entries_deliver(q, s->element[1], cb, ctx, &stop, err, "XREADGROUP");
		if (k < 0) {
			n = -1;
			break;
		}
		n += k;
	}
	freeReplyObject(r);
	return n;
}

/*
 * XACK stream group id. Acknowledging an id that is not pending (already acked, or never
 * delivered) is not an error. Returns 0, or -1 (MH_E_REDIS).
 */
int rq_xack(struct rq *q, const char *stream, const char *group, const char *id, struct mh_err *err)
{
	redisReply *r = rq_command(q, err, "XACK %s %s %s", stream, group, id);
	int rc = 0;

	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_INTEGER)
		rc = mh_err_set(err, MH_E_REDIS, "%s: XACK: unexpected reply", q->desc);
	freeReplyObject(r);
	return rc;
}

/*
 * XACK stream group id, then XDEL stream id, atomically (one script), so an entry is never
 * deleted while it is still pending: once acknowledged it is pending for nobody as long as
 * the stream has one consumer group, which is how every stream of ours is read. A consumer
 * that was slower than a claim still holds its copy of the entry in memory; its own
 * XACK/XDEL then finds nothing, which is fine. Returns 0, or -1 (MH_E_REDIS).
 */
int rq_xack_del(struct rq *q, const char *stream, const char *group, const char *id, struct mh_err *err)
{
	static const char script[] = "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
				     "return redis.call('XDEL', KEYS[1], ARGV[2])\n";
	redisReply *r = rq_command(q, err, "EVAL %s 1 %s %s %s", script, stream, group, id);
	int rc = 0;

	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_INTEGER)
		rc = mh_err_set(err, MH_E_REDIS, "%s: XACK/XDEL: unexpected reply", q->desc);
	freeReplyObject(r);
	return rc;
}

/* Acknowledges the claimed entries that have no fields any more (Redis 6.2): they can
 * never be delivered. Best effort: the next scan tries again. */
static void ack_deleted(struct rq *q, const char *stream, const char *group, const redisReply *entries)
{
	for (size_t i = 0; i < entries->elements; i++) {
		struct rq_entry e;
		struct mh_err err;

		if (entry_parse(entries->element[i], &e) == 0)
			rq_xack(q, stream, group, entries->element[i]->element[0]->str, &err);
	}
}

/*
 * XAUTOCLAIM stream group consumer min_idle_ms 0-0 COUNT count: takes over up to count
 * entries that have been pending longer than min_idle_ms, and delivers them to cb as
 * rq_xreadgroup does (deleted entries skipped, non-zero from cb stops delivery; claimed
 * but undelivered entries now belong to consumer). One scan from 0-0; the cursor Redis
 * returns is not followed. The reply is [cursor, entries] on Redis 6.2 and [cursor,
 * entries, deleted-ids] on 7.x; both are accepted. An entry deleted while pending (never
 * by rq_xack_del, which acknowledges first) has nothing left to deliver: Redis 7 drops it
 * from the pending list and names it in deleted-ids, which are ignored; Redis 6.2 shows
 * it with nil fields, and it is acknowledged here so that it does not come back at every
 * scan. Returns the number delivered, or -1.
 */
int rq_xautoclaim(struct rq *q, const char *stream, const char *group, const char *consumer,
		  unsigned min_idle_ms, unsigned count, rq_entry_cb_t *cb, void *ctx, struct mh_err *err)
{
	char idle_s[16], count_s[16];
	const char *argv[] = {"XAUTOCLAIM", stream, group, consumer, idle_s, "0-0", "COUNT", count_s};
	redisReply *r;
	bool stop = false;
	int n;

	snprintf(idle_s, sizeof(idle_s), "%u", min_idle_ms);
	snprintf(count_s, sizeof(count_s), "%u", count ? count : 1);
	r = rq_command_argv(q, err, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements > 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		return mh_err_set(err, MH_E_REDIS, "%s: XAUTOCLAIM: unexpected reply shape", q->desc);
	}
	n = entries_deliver(q, r->element[1], cb, ctx, &stop, err, "XAUTOCLAIM");
	if (n >= 0)
		ack_deleted(q, stream, group, r->element[1]);
	freeReplyObject(r);
	return n;
}

void rq_args_add(struct rq_args *a, const char *s)
{
	if (a->argc == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		a->argv = realloc(a->argv, (size_t)a->cap * sizeof(*a->argv));
		a->len = realloc(a->len, (size_t)a->cap * sizeof(*a->len));
		if (a->argv == NULL || a->len == NULL)
			abort();
	}
	a->argv[a->argc] = strdup(s);
	if (a->argv[a->argc] == NULL)
		abort();
	a->len[a->argc++] = strlen(s);
}

void rq_args_add_u64(struct rq_args *a, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	rq_args_add(a, num);
}

/* Runs the command and empties a (for the next chunk). */
struct redisReply *rq_args_run(struct rq *q, struct rq_args *a, struct mh_err *err)
{
	struct redisReply *r = rq_command_argv(q, err, a->argc, (const char **)a->argv, a->len);

	for (int i = 0; i < a->argc; i++)
		free(a->argv[i]);
	a->argc = 0;
	return r;
}

void rq_args_free(struct rq_args *a)
{
	for (int i = 0; i < a->argc; i++)
		free(a->argv[i]);
	free(a->argv);
	free(a->len);
	memset(a, 0, sizeof(*a));
}
