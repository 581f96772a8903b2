/* limit.c - fleet-wide connection limits as leases in Redis sorted sets.
 *
 * Every operation is one Lua script, so a check and the change it allows happen
 * atomically on the server: two workers can never both see the last free slot. The
 * scripts take the time from redis.call('TIME'), never from the caller, so hosts with
 * skewed clocks agree on which leases have expired. A lease has expired when its
 * score <= now. */
#include "limit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>
#include <openssl/evp.h>

#include "rq.h"

#define LIMIT_PROTO_MAX 16
#define LIMIT_HOST_MAX 255
#define LIMIT_ACCOUNT_PREFIX "mh:limit:acct:"
#define LIMIT_HOST_PREFIX "mh:limit:host:"

/* Shared by the scripts: the server's clock in ms, and a key's expiry moved to its
 * latest lease so that a key vanishes when its last lease lapses. */
#define LIMIT_LUA_COMMON                                                                  \
	"local t = redis.call('TIME')\n"                                                  \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"         \
	"local function expire_at_last(key)\n"                                            \
	"  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')\n"                \
	"  if last[2] then redis.call('PEXPIREAT', key, math.ceil(tonumber(last[2]))) end\n" \
	"end\n"

/* KEYS: account, host. ARGV: holder, ttl_ms, account_max, host_max.
 * Returns {1, 0} when added to both sets, or {0, ms until the earliest lease of a full
 * set expires}. A holder already in a set does not count against itself, so a repeated
 * acquire (say, after a lost reply) extends instead of taking a second slot. */
static const char limit_acquire_lua[] =
	LIMIT_LUA_COMMON
	"local holder, ttl = ARGV[1], tonumber(ARGV[2])\n"
	"local max = {tonumber(ARGV[3]), tonumber(ARGV[4])}\n"
	"local full, wait = false, 0\n"
	"for i = 1, 2 do\n"
	"  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)\n"
	"  local n = redis.call('ZCARD', KEYS[i])\n"
	"  if redis.call('ZSCORE', KEYS[i], holder) then n = n - 1 end\n"
	"  if n >= max[i] then\n"
	"    full = true\n"
	"    local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')\n"
	"    local w = math.ceil(tonumber(first[2]) - now)\n"
	"    if w > wait then wait = w end\n"
	"  end\n"
	"end\n"
	"if full then return {0, wait} end\n"
	"for i = 1, 2 do\n"
	"  redis.call('ZADD', KEYS[i], now + ttl, holder)\n"
	"  expire_at_last(KEYS[i])\n"
	"end\n"
	"return {1, 0}\n";

/* KEYS: account, host. ARGV: holder, ttl_ms.
 * Returns 1 when extended, 0 when the lease had lapsed in either set; then what is left
 * of it is removed, so a half lease never lingers. */
static const char limit_refresh_lua[] =
	LIMIT_LUA_COMMON
	"local holder, ttl = ARGV[1], tonumber(ARGV[2])\n"
	"for i = 1, 2 do\n"
	"  local s = redis.call('ZSCORE', KEYS[i], holder)\n"
	"  if not s or tonumber(s) <= now then\n"
	"    redis.call('ZREM', KEYS[1], holder)\n"
	"    redis.call('ZREM', KEYS[2], holder)\n"
	"    return 0\n"
	"  end\n"
	"end\n"
	"for i = 1, 2 do\n"
	"  redis.call('ZADD', KEYS[i], 'XX', now + ttl, holder)\n"
	"  expire_at_last(KEYS[i])\n"
	"end\n"
	"return 1\n";

/* KEYS: account, host. ARGV: holder. */
static const char limit_release_lua[] =
	"redis.call('ZREM', KEYS[1], ARGV[1])\n"
	"redis.call('ZREM', KEYS[2], ARGV[1])\n"
	"return 1\n";

/* KEYS: account, host. Returns {unexpired in account, unexpired in host}; read-only, so
 * expired members are left for the next acquire to sweep. */
static const char limit_count_lua[] =
	LIMIT_LUA_COMMON
	"local min = string.format('(%d', now)\n"
	"return {redis.call('ZCOUNT', KEYS[1], min, '+inf'),\n"
	"        redis.call('ZCOUNT', KEYS[2], min, '+inf')}\n";

static void ascii_lower(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] - 'A' + 'a') : src[i];
	dst[n] = '\0';
}

/* Checks t and builds both key names. The account id is hashed with NUL separators,
 * which no field can contain, so two different accounts never share an id. */
static int limit_keys_build(const struct mh_limit_target *t, char *account_key, size_t account_len,
			    char *host_key, size_t host_len, struct mh_err *err)
{
	char proto[LIMIT_PROTO_MAX + 1], host[LIMIT_HOST_MAX + 1], port[8];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	size_t proto_len, host_len_in, off;
	EVP_MD_CTX *ctx;
	int ok, n;

	if (t == NULL || t->proto == NULL || t->host == NULL || t->user == NULL)
		return mh_err_set(err, MH_E_INTERNAL, "connection limit: incomplete target");
	proto_len = strlen(t->proto);
	host_len_in = strlen(t->host);
	if (proto_len == 0 || proto_len > LIMIT_PROTO_MAX)
		return mh_err_set(err, MH_E_BAD_URL, "connection limit: bad protocol name");
	for (size_t i = 0; i < proto_len; i++) {
		char c = t->proto[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			return mh_err_set(err, MH_E_BAD_URL, "connection limit: bad protocol name");
	}
	if (host_len_in == 0 || host_len_in > LIMIT_HOST_MAX)
		return mh_err_set(err, MH_E_BAD_URL, "connection limit: bad host name length");
	for (size_t i = 0; i < host_len_in; i++) {
		unsigned char c = (unsigned char)t->host[i];

		/* the host is part of a key name that status pages print */
		if (c <= ' ' || c == 0x7f)
			return mh_err_set(err, MH_E_BAD_URL,
					  "connection limit: host name contains a space or control character");
	}
	if (t->port == 0)
		return mh_err_set(err, MH_E_BAD_URL, "connection limit: port 0");
	if (t->user[0] == '\0')
		return mh_err_set(err, MH_E_BAD_URL, "connection limit: empty user name");

	/* host names are case-insensitive: IMAP.Example and imap.example share a limit */
	ascii_lower(proto, t->proto, proto_len);
	ascii_lower(host, t->host, host_len_in);
	snprintf(port, sizeof(port), "%u", (unsigned)t->port);

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		abort(); /* house rule: out of memory aborts */
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, proto, proto_len + 1) == 1 &&
	     EVP_DigestUpdate(ctx, host, host_len_in + 1) == 1 &&
	     EVP_DigestUpdate(ctx, port, strlen(port) + 1) == 1 &&
	     EVP_DigestUpdate(ctx, t->user, strlen(t->user)) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &md_len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok || md_len != 32)
		return mh_err_set(err, MH_E_INTERNAL, "connection limit: SHA-256 failed");

	if (account_len < sizeof(LIMIT_ACCOUNT_PREFIX) + 2 * md_len)
		return mh_err_set(err, MH_E_INTERNAL, "connection limit: account key buffer too small");
	off = (size_t)snprintf(account_key, account_len, "%s", LIMIT_ACCOUNT_PREFIX);
	for (unsigned i = 0; i < md_len; i++, off += 2)
		snprintf(account_key + off, account_len - off, "%02x", md[i]);

	n = snprintf(host_key, host_len, LIMIT_HOST_PREFIX "%s:%s:%s", proto, host, port);
	if (n < 0 || (size_t)n >= host_len)
		return mh_err_set(err, MH_E_INTERNAL, "connection limit: host key buffer too small");
	return 0;
}

/* Runs one of the scripts over the lease's two keys. Returns the reply or NULL (err). */
static struct redisReply *limit_script_run(struct rq *q, const char *script,
					   const char *account_key, const char *host_key, int argc,
					   const char *const *args, struct mh_err *err)
{
	const char *argv[10];
	size_t lens[10];
	int n = 0;

	argv[n++] = "EVAL";
	argv[n++] = script;
	argv[n++] = "2";
	argv[n++] = account_key;
	argv[n++] = host_key;
	for (int i = 0; i < argc && n < 10; i++)
		argv[n++] = args[i];
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]);
	return rq_command_argv(q, err, n, argv, lens);
}

static bool reply_is_int_pair(const struct redisReply *r)
{
	return r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	       r->element[0]->type == REDIS_REPLY_INTEGER &&
	       r->element[1]->type == REDIS_REPLY_INTEGER;
}

static unsigned clamp_unsigned(long long v)
{
	if (v < 0)
		return 0;
	if ((unsigned long long)v > 0xffffffffull)
		return 0xffffffffu;
	return (unsigned)v;
}

int mh_limit_try_acquire(struct rq *q, const struct mh_limit_target *t, const char *holder,
			 unsigned ttl_ms, struct mh_lease *lease, unsigned *retry_ms_r,
			 struct mh_err *err)
{
	char ttl_s[16], acct_max_s[16], host_max_s[16];
	const char *args[4];
	struct redisReply *r;
	int ret;

	if (retry_ms_r != NULL)
		*retry_ms_r = 0;
	if (lease == NULL)
		return mh_err_set(err, MH_E_INTERNAL, "connection limit: no lease");
	memset(lease, 0, sizeof(*lease));
	if (holder == NULL || holder[0] == '\0' || strlen(holder) >= sizeof(lease->holder))
		return mh_err_set(err, MH_E_INTERNAL, "connection limit: holder id empty or too long");
	if (limit_keys_build(t, lease->account_key, sizeof(lease->account_key), lease->host_key,
			     sizeof(lease->host_key), err) < 0)
		return -1;
	strcpy(lease->holder, holder);

	snprintf(ttl_s, sizeof(ttl_s), "%u", ttl_ms != 0 ? ttl_ms : MH_LIMIT_TTL_DEFAULT_MS);
	snprintf(acct_max_s, sizeof(acct_max_s), "%u",
		 t->account_max != 0 ? t->account_max : MH_LIMIT_ACCOUNT_MAX_DEFAULT);
	snprintf(host_max_s, sizeof(host_max_s), "%u",
		 t->host_max != 0 ? t->host_max : MH_LIMIT_HOST_MAX_DEFAULT);
	args[0] = holder;
	args[1] = ttl_s;
	args[2] = acct_max_s;
	args[3] = host_max_s;
	r = limit_script_run(q, limit_acquire_lua, lease->account_key, lease->host_key, 4, args, err);
	if (r == NULL)
		return -1;
	if (!reply_is_int_pair(r)) {
		rq_reply_free(r);
		return mh_err_set(err, MH_E_REDIS, "connection limit: unexpected reply to acquire");
	}
	ret = r->element[0]->integer == 1 ? 1 : 0;
	if (ret == 1)
		lease->held = true;
	else if (retry_ms_r != NULL)
		/* at least 1 ms, so "0" always means "acquired" */
		*retry_ms_r = clamp_unsigned(r->element[1]->integer > 0 ? r->element[1]->integer : 1);
	rq_reply_free(r);
	return ret;
}

int mh_limit_refresh(struct rq *q, struct mh_lease *lease, unsigned ttl_ms, struct mh_err *err)
{
	char ttl_s[16];
	const char *args[2];
	struct redisReply *r;
	long long v;

	if (lease == NULL || !lease->held)
		return mh_err_set(err, MH_E_INTERNAL, "connection limit: refresh of a lease not held");
	snprintf(ttl_s, sizeof(ttl_s), "%u", ttl_ms != 0 ? ttl_ms : MH_LIMIT_TTL_DEFAULT_MS);
	args[0] = lease->holder;
	args[1] = ttl_s;
	r = limit_script_run(q, limit_refresh_lua, lease->account_key, lease->host_key, 2, args, err);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_INTEGER) {
		rq_reply_free(r);
		return mh_err_set(err, MH_E_REDIS, "connection limit: unexpected reply to refresh");
	}
	v = r->integer;
	rq_reply_free(r);
	if (v != 1) {
		lease->held = false;
		return mh_err_set(err, MH_E_CONNECTION_LOST,
				  "connection lease %s lapsed before it was refreshed; "
				  "close the connection and acquire again",
				  lease->host_key);
	}
	return 0;
}

int mh_limit_release(struct rq *q, struct mh_lease *lease, struct mh_err *err)
{
	const char *args[1];
	struct redisReply *r;

	if (lease == NULL || !lease->held)
		return 0;
	lease->held = false;
	args[0] = lease->holder;
	r = limit_script_run(q, limit_release_lua, lease->account_key, lease->host_key, 1, args, err);
	if (r == NULL)
		return -1;
	rq_reply_free(r);
	return 0;
}

int mh_limit_count(struct rq *q, const struct mh_limit_target *t, unsigned *account_r,
		   unsigned *host_r, struct mh_err *err)
{
	struct mh_lease keys;
	struct redisReply *r;

	if (limit_keys_build(t, keys.account_key, sizeof(keys.account_key), keys.host_key,
			     sizeof(keys.host_key), err) < 0)
		return -1;
	r = limit_script_run(q, limit_count_lua, keys.account_key, keys.host_key, 0, NULL, err);
	if (r == NULL)
		return -1;
	if (!reply_is_int_pair(r)) {
		rq_reply_free(r);
		return mh_err_set(err, MH_E_REDIS, "connection limit: unexpected reply to count");
	}
	if (account_r != NULL)
		*account_r = clamp_unsigned(r->element[0]->integer);
	if (host_r != NULL)
		*host_r = clamp_unsigned(r->element[1]->integer);
	rq_reply_free(r);
	return 0;
}
