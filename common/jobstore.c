/* jobstore.c - a job's state in Redis (see jobstore.h for the key layout). */
#include "jobstore.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rq.h"
#include "syncstore.h"

static const char *const state_names[] = {"queued", "planning", "running",   "done",
					  "partial", "failed",  "cancelled", "paused"};

const char *mh_job_state_name(enum mh_job_state s)
{
	if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
		return "unknown";
	return state_names[s];
}

int mh_job_state_parse(const char *s, enum mh_job_state *s_r)
{
	for (unsigned i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (strcmp(s, state_names[i]) == 0) {
			*s_r = (enum mh_job_state)i;
			return 0;
		}
	}
	return -1;
}

int mh_job_state_is_final(enum mh_job_state s)
{
	return s == MH_JOB_DONE || s == MH_JOB_PARTIAL || s == MH_JOB_FAILED || s == MH_JOB_CANCELLED;
}

uint64_t mh_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void mh_job_id_new(char id[MH_JOB_ID_MAX])
{
	unsigned char r[8];

	if (RAND_bytes(r, sizeof(r)) != 1)
		abort(); /* no randomness: nothing safe to do */
	snprintf(id, MH_JOB_ID_MAX, "j-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
		 r[6], r[7]);
}

void mh_key_job(char *buf, size_t len, const char *job_id, const char *suffix)
{
	snprintf(buf, len, "mh:job:%s%s", job_id, suffix != NULL ? suffix : "");
}

void mh_key_folder(char *buf, size_t len, const char *job_id, uint32_t folder_idx)
{
	snprintf(buf, len, "mh:job:%s:folder:%" PRIu32, job_id, folder_idx);
}

/* Runs a command whose reply we only check for errors. */
static int simple(struct rq *q, struct mh_err *err, struct redisReply *r)
{
	if (r == NULL)
		return -1;
	rq_reply_free(r);
	(void)q;
	(void)err;
	return 0;
}

static int string_list(struct redisReply *r, char ***ids_r, size_t *count_r);

/* Lua: whether the job hash k is running (planned: "messages" is set when planning ends)
 * and every planned message has a result. Shared by the scripts that finish jobs. */
#define LUA_COMPLETE                                                                                     \
	"local function complete(k)\n"                                                                   \
	"  local v = redis.call('HMGET', k, 'state', 'messages', 'copied', 'skipped', 'failed')\n"      \
	"  if v[1] ~= 'running' or not v[2] then return false end\n"                                    \
	"  return (tonumber(v[3]) or 0) + (tonumber(v[4]) or 0) + (tonumber(v[5]) or 0) >= tonumber(v[2])\n" \
	"end\n"

/* Appends this run's line to mh:job:<id>:history ("start end state copied skipped failed",
 * the counts this run added) and makes the current counts the next run's base. */
#define LUA_HISTORY                                                                                        \
	"local function add_history(k, state, now)\n"                                                     \
	"  local v = redis.call('HMGET', k, 'copied', 'skipped', 'failed', 'flags_updated', 'deleted',\n"   \
	"                       'run_copied', 'run_skipped', 'run_failed', 'run_flags_updated',\n"        \
	"                       'run_deleted', 'run_start', 'started')\n"                                  \
	"  for i = 1, 10 do v[i] = tonumber(v[i]) or 0 end\n"                                             \
	"  local start = v[11] or v[12] or now\n"                                                          \
	"  redis.call('RPUSH', k .. ':history', start .. ' ' .. now .. ' ' .. state .. ' ' .. (v[1] - v[6]) ..\n" \
	"             ' ' .. (v[2] - v[7]) .. ' ' .. (v[3] - v[8]) .. ' ' .. (v[4] - v[9]) .. ' ' .. (v[5] - v[10]))\n" \
	"  redis.call('HSET', k, 'run_copied', v[1], 'run_skipped', v[2], 'run_failed', v[3],\n"          \
	"             'run_flags_updated', v[4], 'run_deleted', v[5])\n"                                   \
	"  redis.call('HDEL', k, 'run_start')\n"                                                           \
	"end\n"

/* An ended job (done, partial, failed) queued again as a sync run (mh_job_sync_submit,
 * mh_autosync_due): true when it was ended; anything else is left alone. */
#define LUA_SYNC_START                                                                                   \
	"local function start_sync(id, now)\n"                                                            \
	"  local k = 'mh:job:' .. id\n"                                                                    \
	"  local st = redis.call('HGET', k, 'state')\n"                                                    \
	"  if st ~= 'partial' and st ~= 'done' and st ~= 'failed' then return false end\n"                 \
	"  redis.call('HSET', k, 'state', 'queued', 'replan', '1', 'sync', '1', 'run_start', now)\n"       \
	"  redis.call('HINCRBY', k, 'syncs', 1)\n"                                                         \
	"  redis.call('HDEL', k, 'ended', 'verify', 'verify_error', 'verified', 'error', 'error_detail',\n" \
	"             'planner')\n"                                                                        \
	"  redis.call('SADD', 'mh:active', id)\n"                                                          \
	"  redis.call('XADD', 'mh:jobs', '*', 'job', id)\n"                                                \
	"  return true\n"                                                                                  \
	"end\n"

/* Big batches go in chunks, keeping each command (and a script's run) short. */
#define MSG_CHUNK 500

static uint64_t u64_field(const struct redisReply *r)
{
	uint64_t v = 0;

	if (r == NULL || r->type != REDIS_REPLY_STRING)
		return 0;
	for (size_t i = 0; i < r->len && r->str[i] >= '0' && r->str[i] <= '9'; i++)
		v = v * 10 + (uint64_t)(r->str[i] - '0');
	return v;
}

int mh_job_submit(struct rq *q, const struct mh_job_spec *spec, struct mh_err *err)
{
	char key[MH_KEY_MAX], src[600], dst[600];
	struct mh_bytes enc = {0};
	struct mh_endpoint ep;
	int rc;

	if (mh_job_spec_encode(spec, &enc, err) < 0)
		return -1;
	mh_key_job(key, sizeof(key), spec->job_id, NULL);

	/* Descriptions for status and records: the endpoints without passwords. */
	memset(&ep, 0, sizeof(ep));
	ep.proto = spec->src.proto;
	ep.security = spec->src.security;
	snprintf(ep.host, sizeof(ep.host), "%s", spec->src.host);
	ep.port = spec->src.port;
	snprintf(ep.user, sizeof(ep.user), "%s", spec->src.user);
	mh_endpoint_format(&ep, src, sizeof(src));
	ep.proto = spec->dst.proto;
	ep.security = spec->dst.security;
	snprintf(ep.host, sizeof(ep.host), "%s", spec->dst.host);
	ep.port = spec->dst.port;
	snprintf(ep.user, sizeof(ep.user), "%s", spec->dst.user);
	mh_endpoint_format(&ep, dst, sizeof(dst));

	{
		char server[MH_KEY_MAX];
		mh_key_server(server, sizeof(server), spec->dst.host, spec->dst.port);
		rc = simple(q, err,
			    rq_command(q, err,
				       "HSET %s spec %b state queued created %" PRIu64 " src %s dst %s server %s sync_opts %u",
				       key, enc.data, enc.len, mh_now_ms(), src, dst, server,
				       mh_sync_opts_from_spec(spec->flags)));
	}
	mh_bytes_free(&enc);
	if (rc < 0)
		return -1;
	if (simple(q, err, rq_command(q, err, "ZADD mh:index %" PRIu64 " %s", mh_now_ms(), spec->job_id)) < 0 ||
	    simple(q, err, rq_command(q, err, "SADD " MH_SET_ACTIVE " %s", spec->job_id)) < 0)
		return -1;
	return rq_xadd(q, MH_STREAM_JOBS, "job", spec->job_id, strlen(spec->job_id), NULL, err);
}

int mh_job_load_spec(struct rq *q, const char *job_id, struct mh_job_spec *spec, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;
	int rc;

	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err, "HGET %s spec", key);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_STRING) {
		rq_reply_free(r);
		return mh_err_set(err, MH_E_WIRE, "job %s has no spec (deleted?)", job_id);
	}
	rc = mh_job_spec_decode(r->str, r->len, spec, err);
	rq_reply_free(r);
	return rc;
}

int mh_job_purge_credentials(struct rq *q, const char *job_id, struct mh_err *err)
{
	struct mh_job_spec spec;
	struct mh_bytes enc = {0};
	char key[MH_KEY_MAX];
	int rc;

	/* an auto-synced job keeps them until auto-sync is turned off */
	mh_key_job(key, sizeof(key), job_id, NULL);
	{
		struct redisReply *r = rq_command(q, err, "HEXISTS %s autosync_ms", key);
		bool keep;

		if (r == NULL)
			return -1;
		keep = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
		rq_reply_free(r);
		if (keep)
			return 0;
	}
	if (mh_job_load_spec(q, job_id, &spec, err) < 0)
		return -1;
	mh_bytes_free(&spec.src.sealed_password);
	mh_bytes_free(&spec.dst.sealed_password);
	rc = mh_job_spec_encode(&spec, &enc, err);
	mh_job_spec_cleanup(&spec);
	if (rc < 0)
		return -1;
	mh_key_job(key, sizeof(key), job_id, NULL);
	rc = simple(q, err, rq_command(q, err, "HSET %s spec %b", key, enc.data, enc.len));
	mh_bytes_free(&enc);
	return rc;
}

int mh_job_get_state(struct rq *q, const char *job_id, enum mh_job_state *state_r, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;
	int rc = 0;

	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err, "HGET %s state", key);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_STRING || mh_job_state_parse(r->str, state_r) < 0)
		rc = mh_err_set(err, MH_E_WIRE, "job %s has no valid state", job_id);
	rq_reply_free(r);
	return rc;
}

int mh_job_set_phase(struct rq *q, const char *job_id, const char *phase, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_job(key, sizeof(key), job_id, NULL);
	if (phase == NULL)
		return simple(q, err, rq_command(q, err, "HDEL %s phase", key));
	return simple(q, err, rq_command(q, err, "HSET %s phase %s", key, phase));
}

int mh_job_store_check(struct rq *q, const char *job_id, const char *verdict, const char *text, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_job(key, sizeof(key), job_id, NULL);
	return simple(q, err,
		      rq_command(q, err, "HSET %s check_verdict %s check_text %s", key, verdict, text));
}

int mh_job_set_warning(struct rq *q, const char *job_id, const char *text, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_job(key, sizeof(key), job_id, NULL);
	return simple(q, err, rq_command(q, err, "HSET %s warning %s", key, text));
}

int mh_job_set_state(struct rq *q, const char *job_id, enum mh_job_state state, const struct mh_err *error,
		     struct mh_err *err)
{
	char key[MH_KEY_MAX];
	const char *name = mh_job_state_name(state);

	mh_key_job(key, sizeof(key), job_id, NULL);
	if (state == MH_JOB_PLANNING &&
	    simple(q, err, rq_command(q, err, "HSETNX %s started %" PRIu64, key, mh_now_ms())) < 0)
		return -1;
	if (error != NULL && error->code != MH_E_OK &&
	    simple(q, err,
		   rq_command(q, err, "HSET %s error %s error_detail %s", key, mh_err_name(error->code),
			      error->detail)) < 0)
		return -1;
	if (mh_job_state_is_final(state)) {
		static const char history[] = LUA_HISTORY "add_history(KEYS[1], ARGV[1], ARGV[2])\n";

		if (simple(q, err, rq_command(q, err, "HSET %s state %s ended %" PRIu64, key, name, mh_now_ms())) < 0 ||
		    simple(q, err, rq_command(q, err, "EVAL %s 1 %s %s %" PRIu64, history, key, name, mh_now_ms())) < 0)
			return -1;
		return simple(q, err, rq_command(q, err, "SREM " MH_SET_ACTIVE " %s", job_id));
	}
	return simple(q, err, rq_command(q, err, "HSET %s state %s", key, name));
}

int mh_job_add_folder(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_folder_ref *f,
		      uint64_t messages, uint64_t bytes, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_folder(key, sizeof(key), job_id, folder_idx);
	return simple(q, err,
		      rq_command(q, err,
				 "HSET %s src %s dst %s src_raw %s dst_raw %s uidvalidity %" PRIu32
				 " dst_uidvalidity %" PRIu32 " dst_uidnext %" PRIu32 " messages %" PRIu64 " bytes %" PRIu64,
				 key, f->src, f->dst, f->src_raw, f->dst_raw, f->uidvalidity, f->dst_uidvalidity,
				 f->dst_uidnext, messages, bytes));
}

int mh_job_load_folder(struct rq *q, const char *job_id, uint32_t folder_idx, struct mh_folder_ref *f,
		       struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;
	int rc = 0;

	memset(f, 0, sizeof(*f));
	mh_key_folder(key, sizeof(key), job_id, folder_idx);
	r = rq_command(q, err, "HMGET %s src dst src_raw dst_raw uidvalidity dst_uidvalidity dst_uidnext", key);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 7)
		rc = mh_err_set(err, MH_E_WIRE, "folder %" PRIu32 " of job %s: bad reply", folder_idx, job_id);
	for (size_t i = 0; rc == 0 && i < 4; i++)
		if (r->element[i]->type != REDIS_REPLY_STRING)
			rc = mh_err_set(err, MH_E_WIRE, "folder %" PRIu32 " of job %s is not recorded", folder_idx,
					job_id);
	if (rc == 0) {
		f->src = strdup(r->element[0]->str);
		f->dst = strdup(r->element[1]->str);
		f->src_raw = strdup(r->element[2]->str);
		f->dst_raw = strdup(r->element[3]->str);
		f->uidvalidity = (uint32_t)u64_field(r->element[4]);
		f->dst_uidvalidity = (uint32_t)u64_field(r->element[5]);
		/* planned before this was recorded: every UID may be ours */
		f->dst_uidnext = r->element[6]->type == REDIS_REPLY_STRING ? (uint32_t)u64_field(r->element[6]) : 1;
	}
	rq_reply_free(r);
	return rc;
}

void mh_folder_ref_cleanup(struct mh_folder_ref *f)
{
	free(f->src);
	free(f->dst);
	free(f->src_raw);
	free(f->dst_raw);
	memset(f, 0, sizeof(*f));
}

int mh_job_next_batch_id(struct rq *q, const char *job_id, uint64_t *id_r, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;

	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err, "HINCRBY %s batch_seq 1", key);
	if (r == NULL)
		return -1;
	*id_r = r->type == REDIS_REPLY_INTEGER ? (uint64_t)r->integer : 0;
	rq_reply_free(r);
	return 0;
}

/* Runs a Lua script with KEYS = {job hash, parked list} and ARGV; returns its integer. */
static int job_script(struct rq *q, const char *job_id, const char *script, const char *arg, struct mh_err *err)
{
	char key[MH_KEY_MAX], parked[MH_KEY_MAX];
	struct redisReply *r;
	int rc;

	mh_key_job(key, sizeof(key), job_id, NULL);
	mh_key_job(parked, sizeof(parked), job_id, ":parked");
	r = rq_command(q, err, "EVAL %s 2 %s %s %s %" PRIu64, script, key, parked, arg != NULL ? arg : "",
		       mh_now_ms());
	if (r == NULL)
		return -1;
	rc = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
	rq_reply_free(r);
	if (rc < 0)
		return mh_err_set(err, MH_E_REDIS, "unexpected reply to a job script");
	return rc;
}

int mh_job_pause(struct rq *q, const char *job_id, struct mh_err *err)
{
	static const char script[] =
		"local st = redis.call('HGET', KEYS[1], 'state')\n"
		"if st ~= 'queued' and st ~= 'planning' and st ~= 'running' then return 0 end\n"
		"redis.call('HSET', KEYS[1], 'state', 'paused', 'paused_from', st)\n"
		"return 1\n";
	return job_script(q, job_id, script, NULL, err);
}

int mh_job_resume(struct rq *q, const char *job_id, struct mh_err *err)
{
	static const char script[] =
		"if redis.call('HGET', KEYS[1], 'state') ~= 'paused' then return 0 end\n"
		"local back = redis.call('HGET', KEYS[1], 'paused_from') or 'running'\n"
		"redis.call('HSET', KEYS[1], 'state', back)\n"
		"-- paused before it was planned: the coordinator dropped the submission; submit again\n"
		"if back == 'queued' then redis.call('XADD', 'mh:jobs', '*', 'job', ARGV[1]) end\n"
		"for _, b in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do\n"
		"  redis.call('XADD', 'mh:batches', '*', 'b', b)\n"
		"end\n"
		"redis.call('DEL', KEYS[2])\n"
		"return 1\n";
	return job_script(q, job_id, script, job_id, err);
}

int mh_job_cancel(struct rq *q, const char *job_id, struct mh_err *err)
{
	static const char script[] =
		"local st = redis.call('HGET', KEYS[1], 'state')\n"
		"if not st or st == 'done' or st == 'partial' or st == 'failed' or st == 'cancelled' then return 0 end\n"
		"redis.call('HSET', KEYS[1], 'state', 'cancelled', 'ended', ARGV[2])\n"
		"redis.call('HDEL', KEYS[1], 'autosync_ms')\n"
		"redis.call('ZREM', 'mh:autosync', ARGV[1])\n"
		"redis.call('DEL', KEYS[2])\n"
		"redis.call('SREM', 'mh:active', ARGV[1])\n"
		"return 1\n";
	return job_script(q, job_id, script, job_id, err);
}

int mh_job_planned(struct rq *q, const char *job_id, struct mh_err *err)
{
	static const char script[] =
		"local st = redis.call('HGET', KEYS[1], 'state')\n"
		"redis.call('HDEL', KEYS[1], 'sync')\n"
		"if st == 'planning' then redis.call('HSET', KEYS[1], 'state', 'running') return 1 end\n"
		"if st == 'paused' then redis.call('HSET', KEYS[1], 'paused_from', 'running') return 1 end\n"
		"return 0\n";
	return job_script(q, job_id, script, NULL, err);
}

int mh_job_start_planning(struct rq *q, const char *job_id, const char *owner, struct mh_err *err)
{
	static const char script[] =
		"if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end\n"
		"local again = redis.call('HGET', KEYS[1], 'replan')\n"
		"redis.call('HSET', KEYS[1], 'state', 'planning', 'planner', ARGV[1])\n"
		"redis.call('HSETNX', KEYS[1], 'started', ARGV[2])\n"
		"redis.call('HDEL', KEYS[1], 'replan', 'replan_at')\n"
		"return again and 2 or 1\n";
	return job_script(q, job_id, script, owner, err);
}

int mh_job_plan_later(struct rq *q, const char *job_id, const char *owner, unsigned delay_ms, struct mh_err *err)
{
	static const char script[] =
		"local v = redis.call('HMGET', KEYS[1], 'state', 'planner', 'paused_from')\n"
		"if v[2] ~= ARGV[1] then return 0 end\n"
		"local at = tonumber(ARGV[2]) + tonumber(ARGV[3])\n"
		"if v[1] == 'planning' then\n"
		"  redis.call('HSET', KEYS[1], 'state', 'queued', 'replan', '1', 'replan_at', at)\n"
		"elseif v[1] == 'paused' and v[3] == 'planning' then\n"
		"  -- resuming submits it again\n"
		"  redis.call('HSET', KEYS[1], 'paused_from', 'queued', 'replan', '1')\n"
		"else return 0 end\n"
		"redis.call('HDEL', KEYS[1], 'planner')\n"
		"return 1\n";
	char key[MH_KEY_MAX];
	struct redisReply *r;
	int rc;

	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err, "EVAL %s 1 %s %s %" PRIu64 " %u", script, key, owner, mh_now_ms(), delay_ms);
	if (r == NULL)
		return -1;
	rc = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
	rq_reply_free(r);
	if (rc < 0)
		return mh_err_set(err, MH_E_REDIS, "unexpected reply to a job script");
	return rc;
}

void mh_key_planner(char *buf, size_t len, const char *owner)
{
	snprintf(buf, len, "mh:planner:%s", owner);
}

int mh_planner_alive(struct rq *q, const char *owner, unsigned ttl_ms, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_planner(key, sizeof(key), owner);
	return simple(q, err, rq_command(q, err, "SET %s %" PRIu64 " PX %u", key, mh_now_ms(), ttl_ms));
}

int mh_planner_gone(struct rq *q, const char *owner, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_planner(key, sizeof(key), owner);
	return simple(q, err, rq_command(q, err, "DEL %s", key));
}

/* Reads the integer element i of an array reply (0 when it is not one). */
static uint64_t u64_elem(const struct redisReply *r, size_t i)
{
	if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER || r->element[i]->integer < 0)
		return 0;
	return (uint64_t)r->element[i]->integer;
}

int mh_job_finish(struct rq *q, const char *job_id, enum mh_job_state *final_r, struct mh_counts *counts_r,
		  struct mh_err *err)
{
	static const char script[] =
		LUA_COMPLETE LUA_HISTORY
		"if not complete(KEYS[1]) then return {0} end\n"
		"local v = redis.call('HMGET', KEYS[1], 'messages', 'copied', 'skipped', 'failed')\n"
		"for i = 1, 4 do v[i] = tonumber(v[i]) or 0 end\n"
		"local final = v[4] > 0 and 'partial' or 'done'\n"
		"redis.call('HSET', KEYS[1], 'state', final, 'ended', ARGV[2])\n"
		"add_history(KEYS[1], final, ARGV[2])\n"
		"redis.call('SREM', 'mh:active', ARGV[1])\n"
		"return {v[4] > 0 and 2 or 1, v[1], v[2], v[3], v[4]}\n";
	char key[MH_KEY_MAX];
	struct redisReply *r;
	int rc = 0;

	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err, "EVAL %s 1 %s %s %" PRIu64, script, key, job_id, mh_now_ms());
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
		rc = mh_err_set(err, MH_E_REDIS, "finishing job %s: unexpected reply", job_id);
	else if (u64_elem(r, 0) != 0) {
		*final_r = u64_elem(r, 0) == 2 ? MH_JOB_PARTIAL : MH_JOB_DONE;
		if (counts_r != NULL) {
			memset(counts_r, 0, sizeof(*counts_r));
			counts_r->messages = u64_elem(r, 1);
			counts_r->copied = u64_elem(r, 2);
			counts_r->skipped = u64_elem(r, 3);
			counts_r->failed = u64_elem(r, 4);
		}
		rc = 1;
	}
	rq_reply_free(r);
	return rc;
}

int mh_job_sweep(struct rq *q, const char *owner, char ***complete_r, size_t *count_r, size_t *requeued_r,
		 struct mh_err *err)
{
	/* ARGV: the caller's owner id (its own plans are never taken from it), now */
	static const char script[] =
		LUA_COMPLETE
		"local done, requeued = {}, 0\n"
		"for _, id in ipairs(redis.call('SMEMBERS', 'mh:active')) do\n"
		"  local k = 'mh:job:' .. id\n"
		"  local v = redis.call('HMGET', k, 'state', 'planner', 'replan_at')\n"
		"  if complete(k) then\n"
		"    local by = redis.call('HGET', k, 'verify')\n"
		"    if by and string.sub(by, 1, 3) == 'by:' and\n"
		"       redis.call('EXISTS', 'mh:planner:' .. string.sub(by, 4)) == 0 then\n"
		"      redis.call('HSET', k, 'verify', 'pending')\n"
		"      redis.call('XADD', 'mh:jobs', '*', 'job', 'verify:' .. id)\n"
		"      requeued = requeued + 1\n"
		"    end\n"
		"    done[#done + 1] = id\n"
		"  elseif v[1] == 'planning' and v[2] ~= ARGV[1] and\n"
		"         (not v[2] or redis.call('EXISTS', 'mh:planner:' .. v[2]) == 0) then\n"
		"    redis.call('HSET', k, 'state', 'queued', 'replan', '1')\n"
		"    redis.call('HDEL', k, 'planner')\n"
		"    redis.call('XADD', 'mh:jobs', '*', 'job', id)\n"
		"    requeued = requeued + 1\n"
		"  elseif v[1] == 'queued' and v[3] and tonumber(v[3]) <= tonumber(ARGV[2]) then\n"
		"    redis.call('HDEL', k, 'replan_at')\n"
		"    redis.call('XADD', 'mh:jobs', '*', 'job', id)\n"
		"    requeued = requeued + 1\n"
		"  end\n"
		"end\n"
		"return {done, requeued}\n";
	struct redisReply *r = rq_command(q, err, "EVAL %s 0 %s %" PRIu64, script, owner, mh_now_ms());

	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_ARRAY) {
		rq_reply_free(r);
		return mh_err_set(err, MH_E_REDIS, "sweep: unexpected reply");
	}
	string_list(r->element[0], complete_r, count_r);
	*requeued_r = (size_t)u64_elem(r, 1);
	rq_reply_free(r);
	return 0;
}

int mh_job_request_verify(struct rq *q, const char *job_id, struct mh_err *err)
{
	static const char script[] =
		LUA_COMPLETE
		"if not complete(KEYS[1]) then return 0 end\n"
		"local v = redis.call('HGET', KEYS[1], 'verify')\n"
		"if v == 'done' then return 2 end\n"
		"if v then return 0 end\n"
		"redis.call('HSET', KEYS[1], 'verify', 'pending')\n"
		"redis.call('XADD', 'mh:jobs', '*', 'job', 'verify:' .. ARGV[1])\n"
		"return 1\n";
	return job_script(q, job_id, script, job_id, err);
}

int mh_job_take_verify(struct rq *q, const char *job_id, const char *owner, struct mh_err *err)
{
	static const char script[] =
		LUA_COMPLETE
		"if not complete(KEYS[1]) then return 0 end\n"
		"local v = redis.call('HGET', KEYS[1], 'verify')\n"
		"if v ~= 'pending' then return 0 end\n"
		"redis.call('HSET', KEYS[1], 'verify', 'by:' .. ARGV[1])\n"
		"return 1\n";
	return job_script(q, job_id, script, owner, err);
}

int mh_job_verified(struct rq *q, const char *job_id, const char *error, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_job(key, sizeof(key), job_id, NULL);
	if (error != NULL)
		return simple(q, err, rq_command(q, err, "HSET %s verify done verify_error %s", key, error));
	return simple(q, err, rq_command(q, err, "HSET %s verify done verified %" PRIu64, key, mh_now_ms()));
}

int mh_job_folder_set_count(struct rq *q, const char *job_id, uint32_t folder_idx, const char *field,
			    uint64_t value, bool only_if_unset, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_folder(key, sizeof(key), job_id, folder_idx);
	return simple(q, err,
		      rq_command(q, err, "%s %s %s %" PRIu64, only_if_unset ? "HSETNX" : "HSET", key, field, value));
}

int mh_job_sync_submit(struct rq *q, const char *job_id, struct mh_err *err)
{
	static const char script[] = LUA_SYNC_START "return start_sync(ARGV[1], ARGV[2]) and 1 or 0\n";
	return job_script(q, job_id, script, job_id, err);
}

int mh_job_set_autosync(struct rq *q, const char *job_id, uint64_t every_ms, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_job(key, sizeof(key), job_id, NULL);
	if (every_ms == 0) {
		if (simple(q, err, rq_command(q, err, "HDEL %s autosync_ms", key)) < 0)
			return -1;
		return simple(q, err, rq_command(q, err, "ZREM " MH_ZSET_AUTOSYNC " %s", job_id));
	}
	if (simple(q, err, rq_command(q, err, "HSET %s autosync_ms %" PRIu64, key, every_ms)) < 0)
		return -1;
	return simple(q, err,
		      rq_command(q, err, "ZADD " MH_ZSET_AUTOSYNC " %" PRIu64 " %s", mh_now_ms() + every_ms, job_id));
}

int mh_autosync_due(struct rq *q, uint64_t now_ms, struct mh_err *err)
{
	static const char script[] =
		LUA_SYNC_START
		"local started = 0\n"
		"for _, id in ipairs(redis.call('ZRANGEBYSCORE', 'mh:autosync', '-inf', ARGV[1], 'LIMIT', 0, 100)) do\n"
		"  local k = 'mh:job:' .. id\n"
		"  local every = tonumber(redis.call('HGET', k, 'autosync_ms'))\n"
		"  if not every or every <= 0 then\n"
		"    redis.call('ZREM', 'mh:autosync', id)\n"
		"  else\n"
		"    if start_sync(id, ARGV[1]) then started = started + 1 end\n"
		"    redis.call('ZADD', 'mh:autosync', tonumber(ARGV[1]) + every, id)\n"
		"  end\n"
		"end\n"
		"return started\n";
	struct redisReply *r = rq_command(q, err, "EVAL %s 0 %" PRIu64, script, now_ms);
	int n;

	if (r == NULL)
		return -1;
	n = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
	rq_reply_free(r);
	if (n < 0)
		return mh_err_set(err, MH_E_REDIS, "autosync: unexpected reply");
	return n;
}

int mh_job_history(struct rq *q, const char *job_id, struct mh_run **runs_r, size_t *n_r, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;
	struct mh_run *runs;
	size_t n = 0;

	mh_key_job(key, sizeof(key), job_id, ":history");
	r = rq_command(q, err, "LRANGE %s 0 -1", key);
	if (r == NULL)
		return -1;
	runs = calloc(r->type == REDIS_REPLY_ARRAY ? r->elements + 1 : 1, sizeof(*runs));
	if (runs == NULL)
		abort();
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		struct mh_run *u = &runs[n];
		long long c, sk, f, fl = 0, d = 0;

		/* runs recorded before flag sync existed have no flag and delete counts */
		if (r->element[i]->type != REDIS_REPLY_STRING ||
		    sscanf(r->element[i]->str, "%" SCNu64 " %" SCNu64 " %15s %lld %lld %lld %lld %lld", &u->started_ms,
			   &u->ended_ms, u->state, &c, &sk, &f, &fl, &d) < 6)
			continue;
		u->copied = c > 0 ? (uint64_t)c : 0;
		u->skipped = sk > 0 ? (uint64_t)sk : 0;
		u->failed = f > 0 ? (uint64_t)f : 0;
		u->flags_updated = fl > 0 ? (uint64_t)fl : 0;
		u->deleted = d > 0 ? (uint64_t)d : 0;
		n++;
	}
	rq_reply_free(r);
	*runs_r = runs;
	*n_r = n;
	return 0;
}

int mh_job_folder_get_counts(struct rq *q, const char *job_id, uint32_t folder_idx, const char *const *fields,
			     size_t n, uint64_t *values_r, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct rq_args a = {0};
	struct redisReply *r;

	mh_key_folder(key, sizeof(key), job_id, folder_idx);
	rq_args_add(&a, "HMGET");
	rq_args_add(&a, key);
	for (size_t i = 0; i < n; i++)
		rq_args_add(&a, fields[i]);
	r = rq_args_run(q, &a, err);
	rq_args_free(&a);
	if (r == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		values_r[i] = r->type == REDIS_REPLY_ARRAY && i < r->elements ? u64_field(r->element[i]) : 0;
	rq_reply_free(r);
	return 0;
}

int mh_job_folder_get_count(struct rq *q, const char *job_id, uint32_t folder_idx, const char *field,
			    uint64_t *value_r, struct mh_err *err)
{
	return mh_job_folder_get_counts(q, job_id, folder_idx, &field, 1, value_r, err);
}

int mh_job_reopen(struct rq *q, const char *job_id, struct mh_err *err)
{
	static const char script[] =
		"local st = redis.call('HGET', KEYS[1], 'state')\n"
		"if st ~= 'partial' and st ~= 'done' and st ~= 'failed' then return 0 end\n"
		"redis.call('HSET', KEYS[1], 'state', 'running')\n"
		/* counted again when the requeued messages are done */
		"redis.call('HDEL', KEYS[1], 'ended', 'verify', 'verify_error', 'verified')\n"
		"redis.call('SADD', 'mh:active', ARGV[1])\n"
		"return 1\n";
	return job_script(q, job_id, script, job_id, err);
}

int mh_job_unfail(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_batch_msg *msgs,
		  size_t count, struct mh_err *err)
{
	/* KEYS: job hash, done hash, folder hash, fail hash; ARGV: folder, then uid/size pairs */
	static const char script[] =
		"for i = 2, #ARGV, 2 do\n"
		"  local field = ARGV[1] .. ':' .. ARGV[i]\n"
		"  local prev = redis.call('HGET', KEYS[2], field)\n"
		"  if prev and string.sub(prev, 1, 1) == 'f' then\n"
		"    redis.call('HDEL', KEYS[2], field)\n"
		"    redis.call('HDEL', KEYS[4], field)\n"
		"    for _, k in ipairs({KEYS[1], KEYS[3]}) do\n"
		"      redis.call('HINCRBY', k, 'failed', -1)\n"
		"      redis.call('HINCRBY', k, 'failed_bytes', -tonumber(ARGV[i + 1]))\n"
		"    end\n"
		"  end\n"
		"end\n"
		"return 0\n";
	char keys[4][MH_KEY_MAX];
	struct rq_args a = {0};
	int rc = 0;

	mh_key_job(keys[0], sizeof(keys[0]), job_id, NULL);
	mh_key_job(keys[1], sizeof(keys[1]), job_id, ":done");
	mh_key_folder(keys[2], sizeof(keys[2]), job_id, folder_idx);
	mh_key_job(keys[3], sizeof(keys[3]), job_id, ":fail");
	for (size_t base = 0; base < count && rc == 0; base += MSG_CHUNK) {
		size_t n = count - base < MSG_CHUNK ? count - base : MSG_CHUNK;

		rq_args_add(&a, "EVAL");
		rq_args_add(&a, script);
		rq_args_add(&a, "4");
		for (int k = 0; k < 4; k++)
			rq_args_add(&a, keys[k]);
		rq_args_add_u64(&a, folder_idx);
		for (size_t i = 0; i < n; i++) {
			rq_args_add_u64(&a, msgs[base + i].uid);
			rq_args_add_u64(&a, msgs[base + i].size);
		}
		rc = simple(q, err, rq_args_run(q, &a, err));
	}
	rq_args_free(&a);
	return rc;
}

int mh_job_msg_marks(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_batch_msg *msgs,
		     size_t count, enum mh_msg_mark *marks_r, struct mh_err *err)
{
	/* KEYS: done hash, inflight hash; ARGV: folder, then the UIDs */
	static const char script[] =
		"local out = {}\n"
		"for i = 2, #ARGV do\n"
		"  local field = ARGV[1] .. ':' .. ARGV[i]\n"
		"  local d = redis.call('HGET', KEYS[1], field)\n"
		"  local st = d and string.sub(d, 1, 1)\n"
		"  if st == 'c' or st == 's' then out[#out + 1] = 1\n"
		"  elseif redis.call('HEXISTS', KEYS[2], field) == 1 then out[#out + 1] = 2\n"
		"  else out[#out + 1] = 0 end\n"
		"end\n"
		"return out\n";
	char done[MH_KEY_MAX], inflight[MH_KEY_MAX];
	struct rq_args a = {0};
	int rc = 0;

	mh_key_job(done, sizeof(done), job_id, ":done");
	mh_key_job(inflight, sizeof(inflight), job_id, ":inflight");
	for (size_t base = 0; base < count && rc == 0; base += MSG_CHUNK) {
		size_t n = count - base < MSG_CHUNK ? count - base : MSG_CHUNK;
		struct redisReply *r;

		rq_args_add(&a, "EVAL");
		rq_args_add(&a, script);
		rq_args_add(&a, "2");
		rq_args_add(&a, done);
		rq_args_add(&a, inflight);
		rq_args_add_u64(&a, folder_idx);
		for (size_t i = 0; i < n; i++)
			rq_args_add_u64(&a, msgs[base + i].uid);
		r = rq_args_run(q, &a, err);
		if (r == NULL) {
			rc = -1;
			break;
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
			rc = mh_err_set(err, MH_E_REDIS, "message marks of job %s: unexpected reply", job_id);
		for (size_t i = 0; rc == 0 && i < n; i++) {
			long long v = r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : 0;
			marks_r[base + i] = v == 1 ? MH_MARK_DONE : v == 2 ? MH_MARK_INFLIGHT : MH_MARK_NEW;
		}
		rq_reply_free(r);
	}
	rq_args_free(&a);
	return rc;
}

int mh_job_mark_inflight(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_batch_msg *msgs,
			 size_t count, struct mh_err *err)
{
	char key[MH_KEY_MAX], field[32];
	struct rq_args a = {0};
	int rc = 0;

	mh_key_job(key, sizeof(key), job_id, ":inflight");
	for (size_t base = 0; base < count && rc == 0; base += MSG_CHUNK) {
		size_t n = count - base < MSG_CHUNK ? count - base : MSG_CHUNK;
		struct redisReply *r;

		rq_args_add(&a, "HSET");
		rq_args_add(&a, key);
		for (size_t i = 0; i < n; i++) {
			snprintf(field, sizeof(field), "%" PRIu32 ":%" PRIu32, folder_idx, msgs[base + i].uid);
			rq_args_add(&a, field);
			rq_args_add(&a, "1");
		}
		r = rq_args_run(q, &a, err);
		rc = simple(q, err, r);
	}
	rq_args_free(&a);
	return rc;
}

int mh_job_claim_target_uid(struct rq *q, const char *job_id, uint32_t folder_idx, uint32_t src_uid,
			    const uint32_t *cands, size_t n, uint32_t *uid_r, struct mh_err *err)
{
	/* KEYS: claimed hash; ARGV: folder, source uid, candidates. A copy this message
	 * already owns (an earlier attempt claimed it, then died) comes first. */
	static const char script[] =
		"for i = 3, #ARGV do\n"
		"  if redis.call('HGET', KEYS[1], ARGV[1] .. ':' .. ARGV[i]) == ARGV[2] then return tonumber(ARGV[i]) end\n"
		"end\n"
		"for i = 3, #ARGV do\n"
		"  if redis.call('HSETNX', KEYS[1], ARGV[1] .. ':' .. ARGV[i], ARGV[2]) == 1 then return tonumber(ARGV[i]) end\n"
		"end\n"
		"return 0\n";
	char key[MH_KEY_MAX];
	struct rq_args a = {0};
	struct redisReply *r;
	int rc = 0;

	*uid_r = 0;
	if (n == 0)
		return 0;
	mh_key_job(key, sizeof(key), job_id, ":claimed");
	rq_args_add(&a, "EVAL");
	rq_args_add(&a, script);
	rq_args_add(&a, "1");
	rq_args_add(&a, key);
	rq_args_add_u64(&a, folder_idx);
	rq_args_add_u64(&a, src_uid);
	for (size_t i = 0; i < n; i++)
		rq_args_add_u64(&a, cands[i]);
	r = rq_args_run(q, &a, err);
	rq_args_free(&a);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer <= UINT32_MAX)
		*uid_r = (uint32_t)r->integer;
	else
		rc = mh_err_set(err, MH_E_REDIS, "claim in job %s: unexpected reply", job_id);
	rq_reply_free(r);
	return rc;
}

int mh_job_park_batch(struct rq *q, const char *job_id, const void *batch, size_t len, struct mh_err *err)
{
	static const char script[] = "if redis.call('HGET', KEYS[1], 'state') ~= 'paused' then return 0 end\n"
				     "redis.call('RPUSH', KEYS[2], ARGV[1])\n"
				     "return 1\n";
	char key[MH_KEY_MAX], parked[MH_KEY_MAX];
	struct redisReply *r;
	int rc;

	mh_key_job(key, sizeof(key), job_id, NULL);
	mh_key_job(parked, sizeof(parked), job_id, ":parked");
	r = rq_command(q, err, "EVAL %s 2 %s %s %b", script, key, parked, batch, len);
	if (r == NULL)
		return -1;
	rc = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
	rq_reply_free(r);
	return rc;
}

static int string_list(struct redisReply *r, char ***ids_r, size_t *count_r)
{
	char **ids = calloc(r->elements + 1, sizeof(*ids));
	size_t n = 0;

	if (ids == NULL)
		abort();
	for (size_t i = 0; i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING)
			ids[n++] = strdup(r->element[i]->str);
	*ids_r = ids;
	*count_r = n;
	return 0;
}

int mh_job_list(struct rq *q, size_t max, char ***ids_r, size_t *count_r, struct mh_err *err)
{
	struct redisReply *r = rq_command(q, err, "ZREVRANGE mh:index 0 %llu", (unsigned long long)(max > 0 ? max - 1 : 0));

	if (r == NULL)
		return -1;
	string_list(r, ids_r, count_r);
	rq_reply_free(r);
	return 0;
}

int mh_job_list_active(struct rq *q, char ***ids_r, size_t *count_r, struct mh_err *err)
{
	struct redisReply *r = rq_command(q, err, "SMEMBERS " MH_SET_ACTIVE);

	if (r == NULL)
		return -1;
	string_list(r, ids_r, count_r);
	rq_reply_free(r);
	return 0;
}

void mh_job_list_free(char **ids, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(ids[i]);
	free(ids);
}

void mh_key_server(char *buf, size_t len, const char *host, uint16_t port)
{
	snprintf(buf, len, "mh:server:%s:%u", host, (unsigned)port);
}

int mh_batch_size_get(struct rq *q, const char *server_key, unsigned start, unsigned max, unsigned *size_r,
		      struct mh_err *err)
{
	struct redisReply *r = rq_command(q, err, "HGET %s batch", server_key);
	unsigned long v = start;

	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_STRING)
		v = strtoul(r->str, NULL, 10);
	rq_reply_free(r);
	if (v < MH_BATCH_MIN)
		v = MH_BATCH_MIN;
	if (v > max)
		v = max;
	*size_r = (unsigned)v;
	return 0;
}

int mh_batch_size_observe(struct rq *q, const char *server_key, int outcome, unsigned start, unsigned max,
			  struct mh_err *err)
{
	static const char script[] =
		"local v = tonumber(redis.call('HGET', KEYS[1], 'batch') or ARGV[2])\n"
		"if ARGV[1] == '1' then v = v + math.max(1, math.floor(v / 4)) else v = math.floor(v / 2) end\n"
		"v = math.min(tonumber(ARGV[4]), math.max(tonumber(ARGV[3]), v))\n"
		"redis.call('HSET', KEYS[1], 'batch', v)\n"
		"return v\n";
	struct redisReply *r;

	if (outcome == 0)
		return 0;
	r = rq_command(q, err, "EVAL %s 1 %s %d %u %u %u", script, server_key, outcome > 0 ? 1 : -1, start,
		       MH_BATCH_MIN, max);
	if (r == NULL)
		return -1;
	rq_reply_free(r);
	return 0;
}

int mh_retry_schedule(struct rq *q, const struct mh_batch *b, uint64_t due_ms, struct mh_err *err)
{
	struct mh_bytes enc = {0};
	int rc;

	if (mh_batch_encode(b, &enc, err) < 0)
		return -1;
	rc = simple(q, err, rq_command(q, err, "ZADD " MH_ZSET_RETRY " %" PRIu64 " %b", due_ms, enc.data, enc.len));
	mh_bytes_free(&enc);
	return rc;
}

int mh_retry_release_due(struct rq *q, unsigned max, struct mh_err *err)
{
	/* one script: a batch is either still waiting or on the stream, never both or neither */
	static const char script[] =
		"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))\n"
		"for _, b in ipairs(due) do\n"
		"  redis.call('XADD', KEYS[2], '*', 'b', b)\n"
		"  redis.call('ZREM', KEYS[1], b)\n"
		"end\n"
		"return #due\n";
	struct redisReply *r = rq_command(q, err, "EVAL %s 2 " MH_ZSET_RETRY " " MH_STREAM_BATCHES " %" PRIu64 " %u",
					  script, mh_now_ms(), max);
	int n;

	if (r == NULL)
		return -1;
	n = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
	rq_reply_free(r);
	return n;
}

int mh_job_set_plan(struct rq *q, const char *job_id, uint32_t folders, uint64_t messages, uint64_t bytes,
		    uint64_t batches, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_job(key, sizeof(key), job_id, NULL);
	return simple(q, err,
		      rq_command(q, err,
				 "HSET %s folders %" PRIu32 " messages %" PRIu64 " bytes %" PRIu64
				 " batches %" PRIu64,
				 key, folders, messages, bytes, batches));
}

/* KEYS: job hash, done hash, folder hash, fail hash, inflight hash, claimed hash.
 * ARGV: folder index, batch id, then per message: uid, status (c|s|f), bytes, code, detail,
 * target uid, date, subject. Failures are kept as
 * "code TAB bytes TAB batch TAB date TAB subject TAB detail".
 * The done hash maps "<folder>:<uid>" to the status letter, followed by the target UID
 * when known (APPENDUID); the claimed hash maps that target UID back to the message, so
 * a later look at the target (settle.c) does not take this copy for another message.
 * A message's first result counts; a later copied/skipped replaces a failure. A copied or
 * skipped message is no longer in flight; a failed one stays so: its APPEND may have
 * reached the target after all (a lost connection), and the next attempt looks first.
 * Returns 1 when the job is now complete (see LUA_COMPLETE), else 0. */
static const char record_script[] =
	LUA_COMPLETE
	/* a late result of a forgotten job must not bring its keys back */
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
	"local f = ARGV[1]\n"
	"local names = {c = 'copied', s = 'skipped', f = 'failed'}\n"
	"for i = 3, #ARGV, 8 do\n"
	"  local field = f .. ':' .. ARGV[i]\n"
	"  local st, bytes = ARGV[i + 1], tonumber(ARGV[i + 2])\n"
	"  local prev = redis.call('HGET', KEYS[2], field)\n"
	"  if prev then prev = string.sub(prev, 1, 1) end\n"
	"  if prev == false or prev == nil or (prev == 'f' and st ~= 'f') then\n"
	"    if prev == 'f' then\n"
	"      for _, k in ipairs({KEYS[1], KEYS[3]}) do\n"
	"        redis.call('HINCRBY', k, 'failed', -1)\n"
	"        redis.call('HINCRBY', k, 'failed_bytes', -bytes)\n"
	"      end\n"
	"      redis.call('HDEL', KEYS[4], field)\n"
	"    end\n"
	"    redis.call('HSET', KEYS[2], field, st .. ARGV[i + 5])\n"
	"    for _, k in ipairs({KEYS[1], KEYS[3]}) do\n"
	"      redis.call('HINCRBY', k, names[st], 1)\n"
	"      redis.call('HINCRBY', k, names[st] .. '_bytes', bytes)\n"
	"    end\n"
	"    if st == 'f' then\n"
	"      redis.call('HSET', KEYS[4], field, ARGV[i + 3] .. '\\t' .. bytes .. '\\t' .. ARGV[2] .. '\\t' .. ARGV[i + 6] .. '\\t' .. ARGV[i + 7] .. '\\t' .. ARGV[i + 4])\n"
	"    end\n"
	"  end\n"
	"  if st ~= 'f' then redis.call('HDEL', KEYS[5], field) end\n"
	"  if st == 'c' and ARGV[i + 5] ~= '' then redis.call('HSETNX', KEYS[6], f .. ':' .. ARGV[i + 5], ARGV[i]) end\n"
	"end\n"
	"return complete(KEYS[1]) and 1 or 0\n";

int mh_job_record_results(struct rq *q, const char *job_id, uint32_t folder_idx, uint64_t batch_id,
			  const struct mh_msg_result *msgs, size_t count, bool *complete_r, struct mh_err *err)
{
	static const char *const suffixes[] = {NULL, ":done", NULL, ":fail", ":inflight", ":claimed"};
	enum { CHUNK = 200 };
	char keys[6][MH_KEY_MAX];
	struct rq_args a = {0};
	int rc = 0;

	if (complete_r != NULL)
		*complete_r = false;
	for (int k = 0; k < 6; k++)
		mh_key_job(keys[k], sizeof(keys[k]), job_id, suffixes[k]);
	mh_key_folder(keys[2], sizeof(keys[2]), job_id, folder_idx);
	for (size_t base = 0; base < count && rc == 0; base += CHUNK) {
		size_t n = count - base < CHUNK ? count - base : CHUNK;
		struct redisReply *r;

		rq_args_add(&a, "EVAL");
		rq_args_add(&a, record_script);
		rq_args_add(&a, "6");
		for (int k = 0; k < 6; k++)
			rq_args_add(&a, keys[k]);
		rq_args_add_u64(&a, folder_idx);
		rq_args_add_u64(&a, batch_id);
		for (size_t i = 0; i < n; i++) {
			const struct mh_msg_result *m = &msgs[base + i];
			rq_args_add_u64(&a, m->uid);
			rq_args_add(&a, m->status == MH_MSG_COPIED ? "c" : m->status == MH_MSG_SKIPPED ? "s" : "f");
			rq_args_add_u64(&a, m->bytes);
			rq_args_add(&a, m->error != NULL ? m->error : "");
			rq_args_add(&a, m->detail != NULL ? m->detail : "");
			if (m->dst_uid != 0)
				rq_args_add_u64(&a, m->dst_uid);
			else
				rq_args_add(&a, "");
			rq_args_add(&a, m->date != NULL ? m->date : "");
			rq_args_add(&a, m->subject != NULL ? m->subject : "");
		}
		r = rq_args_run(q, &a, err);
		if (r == NULL) {
			rc = -1;
			break;
		}
		/* the last chunk's answer is the one that counts */
		if (complete_r != NULL)
			*complete_r = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
		rq_reply_free(r);
	}
	rq_args_free(&a);
	return rc;
}

static void str_field(const struct redisReply *r, char *dst, size_t len)
{
	if (r == NULL || r->type != REDIS_REPLY_STRING)
		dst[0] = '\0';
	else
		snprintf(dst, len, "%.*s", (int)r->len, r->str);
}

#define COUNT_FIELDS "messages bytes copied copied_bytes skipped skipped_bytes failed failed_bytes"

static void counts_from(struct redisReply **e, struct mh_counts *c)
{
	c->messages = u64_field(e[0]);
	c->bytes = u64_field(e[1]);
	c->copied = u64_field(e[2]);
	c->copied_bytes = u64_field(e[3]);
	c->skipped = u64_field(e[4]);
	c->skipped_bytes = u64_field(e[5]);
	c->failed = u64_field(e[6]);
	c->failed_bytes = u64_field(e[7]);
}

static int load_failures(struct rq *q, const char *job_id, struct mh_job_summary *s, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;

	mh_key_job(key, sizeof(key), job_id, ":fail");
	r = rq_command(q, err, "HGETALL %s", key);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
		s->failures = calloc(r->elements / 2, sizeof(*s->failures));
		if (s->failures == NULL)
			abort();
		for (size_t i = 0; i + 1 < r->elements; i += 2) {
			struct mh_failure *f = &s->failures[s->failure_count];
			const char *name = r->element[i]->str, *val = r->element[i + 1]->str;
			unsigned long long fi, uid;

			if (sscanf(name, "%llu:%llu", &fi, &uid) != 2)
				continue;
			f->folder_idx = (uint32_t)fi;
			f->uid = (uint32_t)uid;
			/* code, size, batch, date, subject, detail */
			const char *f_start[6];
			size_t f_len[6];
			const char *pos = val;
			int nf = 0;
			while (nf < 5) {
				const char *tab = strchr(pos, '\t');
				if (tab == NULL)
					break;
				f_start[nf] = pos;
				f_len[nf++] = (size_t)(tab - pos);
				pos = tab + 1;
			}
			if (nf < 5)
				continue;
			f_start[5] = pos;
			f_len[5] = strlen(pos);
			snprintf(f->code, sizeof(f->code), "%.*s", (int)f_len[0], f_start[0]);
			f->size = strtoull(f_start[1], NULL, 10);
			f->batch_id = strtoull(f_start[2], NULL, 10);
			snprintf(f->date, sizeof(f->date), "%.*s", (int)f_len[3], f_start[3]);
			snprintf(f->subject, sizeof(f->subject), "%.*s", (int)f_len[4], f_start[4]);
			snprintf(f->detail, sizeof(f->detail), "%.*s", (int)f_len[5], f_start[5]);
			s->failure_count++;
		}
	}
	rq_reply_free(r);
	return 0;
}

int mh_job_load_summary(struct rq *q, const char *job_id, int with_details, struct mh_job_summary *s,
			struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;

	memset(s, 0, sizeof(*s));
	snprintf(s->job_id, sizeof(s->job_id), "%s", job_id);
	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err,
		       "HMGET %s " COUNT_FIELDS
		       " state created started ended folders error error_detail src dst phase check_verdict verify"
		       " verify_error warning autosync_ms sync_opts flags_updated deleted",
		       key);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 26 || r->element[8]->type != REDIS_REPLY_STRING) {
		rq_reply_free(r);
		return mh_err_set(err, MH_E_USAGE, "no job %s", job_id);
	}
	counts_from(r->element, &s->counts);
	if (mh_job_state_parse(r->element[8]->str, &s->state) < 0)
		s->state = MH_JOB_FAILED;
	s->created_ms = u64_field(r->element[9]);
	s->started_ms = u64_field(r->element[10]);
	s->ended_ms = u64_field(r->element[11]);
	s->planned_folders = (uint32_t)u64_field(r->element[12]);
	str_field(r->element[13], s->error, sizeof(s->error));
	str_field(r->element[14], s->error_detail, sizeof(s->error_detail));
	str_field(r->element[15], s->src, sizeof(s->src));
	str_field(r->element[16], s->dst, sizeof(s->dst));
	str_field(r->element[17], s->phase, sizeof(s->phase));
	str_field(r->element[18], s->check_verdict, sizeof(s->check_verdict));
	str_field(r->element[19], s->verify, sizeof(s->verify));
	str_field(r->element[20], s->verify_error, sizeof(s->verify_error));
	str_field(r->element[21], s->warning, sizeof(s->warning));
	s->autosync_ms = u64_field(r->element[22]);
	s->sync_opts = (unsigned)u64_field(r->element[23]);
	s->flags_updated = u64_field(r->element[24]);
	s->deleted = u64_field(r->element[25]);
	rq_reply_free(r);
	if (s->autosync_ms > 0) {
		r = rq_command(q, err, "ZSCORE " MH_ZSET_AUTOSYNC " %s", job_id);
		if (r == NULL)
			return -1;
		s->next_sync_ms = u64_field(r);
		rq_reply_free(r);
	}
	if (!with_details)
		return 0;

	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err, "HGET %s check_text", key);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_STRING && (s->check_text = strdup(r->str)) == NULL)
		abort();
	rq_reply_free(r);

	s->folders = calloc(s->planned_folders + 1u, sizeof(*s->folders));
	if (s->folders == NULL)
		abort();
	for (uint32_t i = 0; i < s->planned_folders; i++) {
		struct mh_folder_summary *f = &s->folders[s->folder_count];

		mh_key_folder(key, sizeof(key), job_id, i);
		r = rq_command(q, err, "HMGET %s " COUNT_FIELDS " src dst dst_before dst_after", key);
		if (r == NULL) {
			mh_job_summary_cleanup(s);
			return -1;
		}
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 12 && r->element[8]->type == REDIS_REPLY_STRING) {
			counts_from(r->element, &f->counts);
			f->src = strdup(r->element[8]->str);
			f->dst = strdup(r->element[9]->type == REDIS_REPLY_STRING ? r->element[9]->str : "");
			f->dst_before = r->element[10]->type == REDIS_REPLY_STRING ? (int64_t)u64_field(r->element[10]) : -1;
			f->dst_after = r->element[11]->type == REDIS_REPLY_STRING ? (int64_t)u64_field(r->element[11]) : -1;
			s->folder_count++;
		}
		rq_reply_free(r);
	}
	if (load_failures(q, job_id, s, err) < 0) {
		mh_job_summary_cleanup(s);
		return -1;
	}
	return 0;
}

const char *mh_job_summary_state(const struct mh_job_summary *s)
{
	if (s->state == MH_JOB_PLANNING && strcmp(s->phase, "checking") == 0)
		return "checking";
	return mh_job_state_name(s->state);
}

void mh_job_summary_cleanup(struct mh_job_summary *s)
{
	for (size_t i = 0; i < s->folder_count; i++) {
		free(s->folders[i].src);
		free(s->folders[i].dst);
	}
	free(s->folders);
	free(s->failures);
	free(s->check_text);
	s->check_text = NULL;
	s->folders = NULL;
	s->failures = NULL;
	s->folder_count = s->failure_count = 0;
}

int mh_job_counts_complete(const struct mh_counts *c)
{
	return c->copied + c->skipped + c->failed >= c->messages;
}

int mh_job_unfail_for_sync(struct rq *q, const char *job_id, bool all, size_t *n_r, struct mh_err *err)
{
	struct mh_job_summary s;
	struct mh_batch_msg *msgs;
	int rc = 0;

	*n_r = 0;
	if (mh_job_load_summary(q, job_id, 1, &s, err) < 0)
		return -1;
	msgs = calloc(s.failure_count + 1, sizeof(*msgs));
	if (msgs == NULL)
		abort();
	for (uint32_t fi = 0; fi < s.planned_folders && rc == 0; fi++) {
		size_t n = 0;
		for (size_t i = 0; i < s.failure_count; i++)
			if (s.failures[i].folder_idx == fi &&
			    (all || mh_err_is_transient(mh_err_from_name(s.failures[i].code))))
				msgs[n++] = (struct mh_batch_msg){s.failures[i].uid, s.failures[i].size};
		if (n > 0)
			rc = mh_job_unfail(q, job_id, fi, msgs, n, err);
		*n_r += n;
	}
	free(msgs);
	mh_job_summary_cleanup(&s);
	return rc;
}

int mh_job_control(struct rq *q, const char *job_id, const char *action, struct mh_err *err)
{
	int changed;

	if (strcmp(action, "pause") == 0)
		return mh_job_pause(q, job_id, err);
	if (strcmp(action, "resume") == 0)
		return mh_job_resume(q, job_id, err);
	if (strcmp(action, "cancel") != 0)
		return mh_err_set(err, MH_E_USAGE, "unknown action %s (pause, resume or cancel)", action);
	changed = mh_job_cancel(q, job_id, err);
	/* a cancelled job will never need them */
	if (changed > 0 && mh_job_purge_credentials(q, job_id, err) < 0)
		return -1;
	return changed;
}
