/* forget.c - deleting a job's every trace in Redis (see forget.h). */
#include "forget.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "endpoint.h"
#include "jobstore.h"
#include "rq.h"
#include "wire.h"

/* Deletes the keys SCAN finds for pattern; counts them (and those with ":folder:"). */
static int delete_matching(struct rq *q, const char *pattern, struct mh_forget_report *rep, struct mh_err *err)
{
	char cursor[32] = "0";

	do {
		struct redisReply *r = rq_command(q, err, "SCAN %s MATCH %s COUNT 500", cursor, pattern);
		const struct redisReply *keys;

		if (r == NULL)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
			rq_reply_free(r);
			return mh_err_set(err, MH_E_REDIS, "SCAN: unexpected reply");
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		keys = r->element[1];
		for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++) {
			struct redisReply *d = rq_command(q, err, "DEL %s", keys->element[i]->str);
			if (d == NULL) {
				rq_reply_free(r);
				return -1;
			}
			rep->keys += d->type == REDIS_REPLY_INTEGER ? (size_t)d->integer : 0;
			rep->folder_keys += strstr(keys->element[i]->str, ":folder:") != NULL;
			rq_reply_free(d);
		}
		rq_reply_free(r);
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

/* Batches of the job waiting in mh:retry (members are encoded batches). */
static int remove_retries(struct rq *q, const char *job_id, struct mh_forget_report *rep, struct mh_err *err)
{
	struct redisReply *r = rq_command(q, err, "ZRANGE " MH_ZSET_RETRY " 0 -1");

	if (r == NULL)
		return -1;
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const struct redisReply *m = r->element[i];
		struct mh_batch b;
		struct mh_err e;
		bool ours;

		if (m->type != REDIS_REPLY_STRING || mh_batch_decode(m->str, m->len, &b, &e) < 0)
			continue;
		ours = strcmp(b.job_id, job_id) == 0;
		mh_batch_cleanup(&b);
		if (ours) {
			struct redisReply *z = rq_command(q, err, "ZREM " MH_ZSET_RETRY " %b", m->str, m->len);
			if (z == NULL) {
				rq_reply_free(r);
				return -1;
			}
			rep->retry_batches++;
			rq_reply_free(z);
		}
	}
	rq_reply_free(r);
	return 0;
}

int mh_job_forget(struct rq *q, const char *job_id, struct mh_forget_report *rep, struct mh_err *err)
{
	char pattern[MH_KEY_MAX + 4], key[MH_KEY_MAX];
	enum mh_job_state state;
	struct redisReply *r;

	memset(rep, 0, sizeof(*rep));
	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err, "EXISTS %s", key);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
		rq_reply_free(r);
		/* the record is gone: clear stray index entries all the same */
		r = rq_command(q, err, "ZREM mh:index %s", job_id);
		rq_reply_free(r);
		return 0;
	}
	rq_reply_free(r);
	if (mh_job_get_state(q, job_id, &state, err) < 0)
		return -1;
	if (!mh_job_state_is_final(state))
		return mh_err_set(err, MH_E_USAGE, "job %s is %s: cancel it first (mailhaul cancel %s)", job_id,
				  mh_job_state_name(state), job_id);
	/* the index first: a half-forgotten job no longer shows up anywhere */
	for (int i = 0; i < 3; i++) {
		r = rq_command(q, err,
			       i == 0   ? "ZREM mh:index %s"
			       : i == 1 ? "SREM " MH_SET_ACTIVE " %s"
					: "ZREM " MH_ZSET_AUTOSYNC " %s",
			       job_id);
		if (r == NULL)
			return -1;
		rep->index_entries += r->type == REDIS_REPLY_INTEGER ? (size_t)r->integer : 0;
		rq_reply_free(r);
	}
	if (remove_retries(q, job_id, rep, err) < 0)
		return -1;
	snprintf(pattern, sizeof(pattern), "%s:*", key);
	if (delete_matching(q, pattern, rep, err) < 0 || delete_matching(q, key, rep, err) < 0)
		return -1;
	return 1;
}

/* The user of an endpoint description ("imaps://alice%40x.org@host:993"), decoded. */
static bool user_is(const char *desc, const char *user)
{
	struct mh_endpoint ep;
	struct mh_err e;
	bool same;

	memset(&ep, 0, sizeof(ep));
	if (mh_endpoint_parse(desc, &ep, &e) < 0)
		return false;
	same = strcasecmp(ep.user, user) == 0;
	mh_endpoint_cleanup(&ep);
	return same;
}

int mh_jobs_of_user(struct rq *q, const char *user, char ***ids_r, size_t *count_r, struct mh_err *err)
{
	struct redisReply *ids = rq_command(q, err, "ZREVRANGE mh:index 0 -1");
	char **all;
	size_t n = 0, kept = 0;

	if (ids == NULL)
		return -1;
	all = calloc(ids->elements + 1, sizeof(*all));
	if (all == NULL)
		abort();
	for (size_t i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++)
		if (ids->element[i]->type == REDIS_REPLY_STRING && (all[n] = strdup(ids->element[i]->str)) != NULL)
			n++;
	rq_reply_free(ids);
	for (size_t i = 0; i < n; i++) {
		char key[MH_KEY_MAX];
		struct redisReply *r;
		bool match = false;

		mh_key_job(key, sizeof(key), all[i], NULL);
		r = rq_command(q, err, "HMGET %s src dst", key);
		if (r == NULL) {
			for (size_t k = i; k < n; k++)
				free(all[k]);
			mh_job_list_free(all, kept);
			return -1;
		}
		for (size_t k = 0; r->type == REDIS_REPLY_ARRAY && k < r->elements && !match; k++)
			match = r->element[k]->type == REDIS_REPLY_STRING && user_is(r->element[k]->str, user);
		rq_reply_free(r);
		if (match)
			all[kept++] = all[i];
		else
			free(all[i]);
	}
	*ids_r = all;
	*count_r = kept;
	return 0;
}

int mh_jobs_expire(struct rq *q, uint64_t ttl_ms, uint64_t now_ms, struct mh_err *err)
{
	struct redisReply *r;
	int forgotten = 0;

	if (now_ms < ttl_ms)
		return 0;
	/* mh:index scores are creation times: a job that ended before the cut was created
	 * before it too */
	r = rq_command(q, err, "ZRANGEBYSCORE mh:index -inf %" PRIu64 " LIMIT 0 1000", now_ms - ttl_ms);
	if (r == NULL)
		return -1;
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		struct mh_job_summary s;
		struct mh_forget_report rep;
		const char *id = r->element[i]->str;

		if (mh_job_load_summary(q, id, 0, &s, err) < 0)
			continue;
		if (mh_job_state_is_final(s.state) && s.ended_ms > 0 && s.ended_ms + ttl_ms < now_ms &&
		    mh_job_forget(q, id, &rep, err) == 1)
			forgotten++;
		mh_job_summary_cleanup(&s);
	}
	rq_reply_free(r);
	return forgotten;
}
