/* syncstore.c - flag sync and delete propagation state in Redis (see syncstore.h). */
#include "syncstore.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobstore.h"
#include "rq.h"
#include "wire.h"

/* Hash fields per Redis call: keeps each command and script run short. */
#define SYNC_CHUNK 500

static uint64_t reply_u64(const struct redisReply *r)
{
	uint64_t v = 0;

	if (r == NULL || r->type != REDIS_REPLY_STRING)
		return 0;
	for (size_t i = 0; i < r->len && r->str[i] >= '0' && r->str[i] <= '9'; i++)
		v = v * 10 + (uint64_t)(r->str[i] - '0');
	return v;
}

static int done_reply(struct redisReply *r)
{
	if (r == NULL)
		return -1;
	rq_reply_free(r);
	return 0;
}

unsigned mh_sync_opts_from_spec(uint32_t spec_flags)
{
	return ((spec_flags & MH_JOB_SYNC_FLAGS) ? MH_SYNC_FLAGS : 0) |
	       ((spec_flags & MH_JOB_PROPAGATE_DELETES) ? MH_SYNC_DELETES : 0);
}

int mh_job_sync_opts(struct rq *q, const char *job_id, unsigned *opts_r, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;

	mh_key_job(key, sizeof(key), job_id, NULL);
	if ((r = rq_command(q, err, "HGET %s sync_opts", key)) == NULL)
		return -1;
	*opts_r = (unsigned)reply_u64(r) & (MH_SYNC_FLAGS | MH_SYNC_DELETES);
	rq_reply_free(r);
	return 0;
}

int mh_job_set_sync_opts(struct rq *q, const char *job_id, unsigned opts, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_job(key, sizeof(key), job_id, NULL);
	return done_reply(rq_command(q, err, "HSET %s sync_opts %u", key, opts & (MH_SYNC_FLAGS | MH_SYNC_DELETES)));
}

const char *mh_sync_opts_describe(unsigned opts)
{
	switch (opts & (MH_SYNC_FLAGS | MH_SYNC_DELETES)) {
	case MH_SYNC_FLAGS | MH_SYNC_DELETES:
		return "flags, deletes";
	case MH_SYNC_FLAGS:
		return "flags";
	case MH_SYNC_DELETES:
		return "deletes";
	default:
		return "off";
	}
}

int mh_job_folder_sync_load(struct rq *q, const char *job_id, uint32_t folder_idx, struct mh_folder_sync *s,
			    struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;

	memset(s, 0, sizeof(*s));
	mh_key_folder(key, sizeof(key), job_id, folder_idx);
	if ((r = rq_command(q, err, "HMGET %s src_modseq src_messages src_uids src_sync_opts", key)) == NULL)
		return -1;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
		s->modseq = reply_u64(r->element[0]);
		s->messages = reply_u64(r->element[1]);
		if (r->element[2]->type == REDIS_REPLY_STRING && (s->uids = strdup(r->element[2]->str)) == NULL)
			abort();
		s->opts = (unsigned)reply_u64(r->element[3]);
	}
	rq_reply_free(r);
	return 0;
}

int mh_job_folder_sync_store(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_folder_sync *s,
			     struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_folder(key, sizeof(key), job_id, folder_idx);
	if (s->uids != NULL)
		return done_reply(rq_command(q, err,
					     "HSET %s src_modseq %" PRIu64 " src_sync_opts %u src_messages %" PRIu64
					     " src_uids %s",
					     key, s->modseq, s->opts, s->messages, s->uids));
	return done_reply(rq_command(q, err, "HSET %s src_modseq %" PRIu64 " src_sync_opts %u src_messages %" PRIu64,
				     key, s->modseq, s->opts, s->messages));
}

void mh_folder_sync_cleanup(struct mh_folder_sync *s)
{
	free(s->uids);
	memset(s, 0, sizeof(*s));
}

int mh_job_target_uids(struct rq *q, const char *job_id, uint32_t folder_idx, const uint32_t *src, size_t n,
		       uint32_t *dst_r, struct mh_err *err)
{
	size_t unknown;

	return mh_job_copy_uids(q, job_id, folder_idx, src, n, dst_r, &unknown, err);
}

int mh_job_copy_uids(struct rq *q, const char *job_id, uint32_t folder_idx, const uint32_t *src, size_t n,
		     uint32_t *dst_r, size_t *unknown_r, struct mh_err *err)
{
	char key[MH_KEY_MAX], field[32];
	struct rq_args a = {0};
	int rc = 0;

	*unknown_r = 0;
	mh_key_job(key, sizeof(key), job_id, ":done");
	for (size_t base = 0; base < n && rc == 0; base += SYNC_CHUNK) {
		size_t k = n - base < SYNC_CHUNK ? n - base : SYNC_CHUNK;
		struct redisReply *r;

		rq_args_add(&a, "HMGET");
		rq_args_add(&a, key);
		for (size_t i = 0; i < k; i++) {
			snprintf(field, sizeof(field), "%" PRIu32 ":%" PRIu32, folder_idx, src[base + i]);
			rq_args_add(&a, field);
		}
		if ((r = rq_args_run(q, &a, err)) == NULL) {
			rc = -1;
			break;
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements != k)
			rc = mh_err_set(err, MH_E_REDIS, "target UIDs of job %s: unexpected reply", job_id);
		for (size_t i = 0; rc == 0 && i < k; i++) {
			const struct redisReply *e = r->element[i];
			/* "c<uid>" or "s<uid>": a copy; "c-", "s-": its copy deleted by a sync;
			 * "f...", "c", "s" or nothing: none known */
			bool done = e->type == REDIS_REPLY_STRING && e->len >= 1 && (e->str[0] == 'c' || e->str[0] == 's');
			uint64_t v = 0;
			for (size_t j = 1; done && j < e->len && e->str[j] >= '0' && e->str[j] <= '9'; j++)
				v = v * 10 + (uint64_t)(e->str[j] - '0');
			dst_r[base + i] = v <= UINT32_MAX ? (uint32_t)v : 0;
			if (dst_r[base + i] == 0 && !(done && e->len == 2 && e->str[1] == '-'))
				(*unknown_r)++;
		}
		rq_reply_free(r);
	}
	rq_args_free(&a);
	return rc;
}

int mh_job_copies_deleted(struct rq *q, const char *job_id, uint32_t folder_idx, const uint32_t *src, size_t n,
			  struct mh_err *err)
{
	/* KEYS: job hash, folder hash, done hash; ARGV: folder index, then source UIDs */
	static const char script[] =
		"local gone = 0\n"
		"for i = 2, #ARGV do\n"
		"  local field = ARGV[1] .. ':' .. ARGV[i]\n"
		"  local d = redis.call('HGET', KEYS[3], field)\n"
		"  if d and #d > 1 and string.sub(d, 2, 2) ~= '-' and (string.sub(d, 1, 1) == 'c' or string.sub(d, 1, 1) == 's') then\n"
		"    redis.call('HSET', KEYS[3], field, string.sub(d, 1, 1) .. '-')\n"
		"    gone = gone + 1\n"
		"  end\n"
		"end\n"
		"if gone > 0 then\n"
		"  redis.call('HINCRBY', KEYS[1], 'deleted', gone)\n"
		"  redis.call('HINCRBY', KEYS[2], 'deleted', gone)\n"
		"end\n"
		"return gone\n";
	char keys[3][MH_KEY_MAX];
	struct rq_args a = {0};
	int rc = 0;

	mh_key_job(keys[0], sizeof(keys[0]), job_id, NULL);
	mh_key_folder(keys[1], sizeof(keys[1]), job_id, folder_idx);
	mh_key_job(keys[2], sizeof(keys[2]), job_id, ":done");
	for (size_t base = 0; base < n && rc == 0; base += SYNC_CHUNK) {
		size_t k = n - base < SYNC_CHUNK ? n - base : SYNC_CHUNK;

		rq_args_add(&a, "EVAL");
		rq_args_add(&a, script);
		rq_args_add(&a, "3");
		for (int i = 0; i < 3; i++)
			rq_args_add(&a, keys[i]);
		rq_args_add_u64(&a, folder_idx);
		for (size_t i = 0; i < k; i++)
			rq_args_add_u64(&a, src[base + i]);
		rc = done_reply(rq_args_run(q, &a, err));
	}
	rq_args_free(&a);
	return rc;
}

int mh_job_count_flag_updates(struct rq *q, const char *job_id, uint32_t folder_idx, uint64_t n,
			      struct mh_err *err)
{
	char job[MH_KEY_MAX], folder[MH_KEY_MAX];

	if (n == 0)
		return 0;
	mh_key_job(job, sizeof(job), job_id, NULL);
	mh_key_folder(folder, sizeof(folder), job_id, folder_idx);
	if (done_reply(rq_command(q, err, "HINCRBY %s flags_updated %" PRIu64, job, n)) < 0)
		return -1;
	return done_reply(rq_command(q, err, "HINCRBY %s flags_updated %" PRIu64, folder, n));
}
