/* coordinator.c - the coordinator: counts results, releases due retries, finishes jobs,
 * and (with --planners) plans jobs in a planner pool of its own (planpool.h; workers have
 * pools too, so planning grows with the fleet).
 *
 * A job is finished by whoever sees it complete: the result that completes it (the record
 * script says so), or its planner when every result came before planning ended. The
 * finish is atomic, so seeing it twice finishes it once. A slow sweep catches the rest (a
 * job resumed after its last result came while paused, a coordinator that died between
 * recording and finishing) and queues again the jobs left "planning" by a pool that died. */
#include "coordinator.h"

#include <inttypes.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "finish.h"
#include "forget.h"
#include "jobstore.h"
#include "planpool.h"
#include "log.h"
#include "rq.h"
#include "wire.h"

#define SWEEP_EVERY_MS 15000u
#define AUTOSYNC_EVERY_MS 1000u /* the schedule lives in Redis (mh:autosync): restarts keep it */
#define EXPIRE_EVERY_MS 600000u /* forgetting records past their retention time */
#define READ_BLOCK_MS 250u /* how often the loop looks at the stop flag */

struct coordinator {
	struct coordinator_opts opts_copy;
	const struct coordinator_opts *opts;
	const atomic_int *stop;
	struct rq *q;
	const char *consumer;
	struct planpool *planners; /* NULL: this coordinator plans nothing */
};

/* ------------------------------------------------------------------------------------- */
/* Results                                                                                 */

static uint64_t retry_delay_ms(const struct coordinator_opts *o, uint32_t attempt)
{
	uint64_t d = o->retry_base_ms;
	uint16_t r = 0;

	for (uint32_t i = 0; i < attempt && d < o->retry_max_ms; i++)
		d *= 2;
	if (d > o->retry_max_ms)
		d = o->retry_max_ms;
	/* jitter, so batches that failed together do not come back together */
	RAND_bytes((unsigned char *)&r, sizeof(r));
	return d * (80 + r % 41) / 100;
}

/* Sends the messages of a batch that failed transiently back as two smaller batches. */
static int schedule_retry(struct coordinator *c, const struct mh_batch_result *r, const struct mh_batch_msg *msgs,
			  size_t n, struct mh_err *err)
{
	struct mh_folder_ref f;
	size_t chunk = n > 1 ? (n + 1) / 2 : 1;
	uint64_t due = mh_now_ms() + retry_delay_ms(c->opts, r->attempt);
	int rc = 0;

	if (mh_job_load_folder(c->q, r->job_id, r->folder_idx, &f, err) < 0)
		return -1;
	for (size_t at = 0; at < n && rc == 0; at += chunk) {
		struct mh_batch b = {
			.job_id = r->job_id,
			.folder_idx = r->folder_idx,
			.src_folder = f.src_raw,
			.dst_folder = f.dst_raw,
			.src_uidvalidity = f.uidvalidity,
			.attempt = r->attempt + 1,
			.count = n - at < chunk ? n - at : chunk,
			.msgs = (struct mh_batch_msg *)&msgs[at],
		};
		rc = mh_job_next_batch_id(c->q, r->job_id, &b.batch_id, err);
		if (rc == 0)
			rc = mh_retry_schedule(c->q, &b, due, err);
	}
	mh_info("coordinator", "%s: %zu messages of batch %" PRIu64 " retry in %.1f s (attempt %" PRIu32 ")", r->job_id, n,
		r->batch_id, (double)(due - mh_now_ms()) / 1000.0, r->attempt + 1);
	mh_folder_ref_cleanup(&f);
	return rc;
}

/* Fast and clean batches let the target server's batch size grow; transient trouble
 * shrinks it (jobstore.h). A batch is fast when it took under half a minute. */
static void observe_batch(struct coordinator *c, const struct mh_batch_result *r)
{
	const struct planner_opts *po = &c->opts->planner;
	char key[MH_KEY_MAX], server[MH_KEY_MAX];
	struct redisReply *reply;
	struct mh_err err;
	int outcome = r->count > 0 && r->elapsed_ms < 30000 ? 1 : 0;

	for (size_t i = 0; i < r->count; i++) {
		const struct mh_msg_result *m = &r->msgs[i];
		if (m->status != MH_MSG_FAILED)
			continue;
		outcome = m->error != NULL && mh_err_is_transient(mh_err_from_name(m->error)) ? -1 : 0;
		if (outcome < 0)
			break;
	}
	if (outcome == 0)
		return;
	mh_key_job(key, sizeof(key), r->job_id, NULL);
	reply = rq_command(c->q, &err, "HGET %s server", key);
	if (reply == NULL)
		return;
	if (reply->type == REDIS_REPLY_STRING) {
		snprintf(server, sizeof(server), "%s", reply->str);
		mh_batch_size_observe(c->q, server, outcome, po->batch_start_msgs, po->batch_max_msgs, &err);
	}
	rq_reply_free(reply);
}

static int on_result(void *ctx, const struct rq_entry *e)
{
	struct coordinator *c = ctx;
	struct mh_batch_result r;
	struct mh_msg_result *final;
	struct mh_batch_msg *retry;
	size_t nfinal = 0, nretry = 0;
	struct mh_err err;
	bool complete = false;
	int rc = 0;

	if (mh_batch_result_decode(e->value, e->len, &r, &err) < 0) {
		mh_error("coordinator", "dropping malformed result %s: %s", e->id, err.detail);
		rq_xack_del(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, e->id, &err);
		return 0;
	}
	final = calloc(r.count + 1, sizeof(*final));
	retry = calloc(r.count + 1, sizeof(*retry));
	if (final == NULL || retry == NULL)
		abort();
	for (size_t i = 0; i < r.count; i++) {
		const struct mh_msg_result *m = &r.msgs[i];
		if (m->status == MH_MSG_FAILED && m->error != NULL && mh_err_is_transient(mh_err_from_name(m->error)) &&
		    r.attempt + 1 < c->opts->retry_attempts)
			retry[nretry++] = (struct mh_batch_msg){m->uid, m->bytes};
		else
			final[nfinal++] = *m; /* shallow: r owns the strings */
	}
	/* Retries are scheduled and results recorded before the result is acknowledged: a
	 * crash in between replays it, and recording twice counts once. */
	if (nretry > 0 && schedule_retry(c, &r, retry, nretry, &err) < 0)
		rc = -1;
	if (rc == 0 &&
	    mh_job_record_results(c->q, r.job_id, r.folder_idx, r.batch_id, final, nfinal, &complete, &err) < 0)
		rc = -1;
	if (rc < 0) {
		mh_error("coordinator", "%s: cannot record results: %s", r.job_id, err.detail);
	} else {
		observe_batch(c, &r);
		if (complete)
			finish_if_complete(c->q, r.job_id);
		rq_xack_del(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, e->id, &err);
	}
	free(final);
	free(retry);
	mh_batch_result_cleanup(&r);
	return rc;
}

/* The rare cases (see the top): one script over mh:active, then finishing what it found. */
static int sweep(struct coordinator *c, struct mh_err *err)
{
	char **ids;
	size_t n, requeued;

	if (mh_job_sweep(c->q, c->planners != NULL ? planpool_owner(c->planners) : "-", &ids, &n, &requeued, err) < 0)
		return -1;
	if (requeued > 0)
		mh_info("coordinator", "%zu jobs queued again: their planner is gone", requeued);
	for (size_t i = 0; i < n; i++)
		finish_if_complete(c->q, ids[i]);
	mh_job_list_free(ids, n);
	return 0;
}

static int setup(struct coordinator *c, struct mh_err *err)
{
	rq_free(&c->q);
	c->q = rq_connect(c->opts->redis_url, 5000, err);
	if (c->q == NULL)
		return -1;
	if (rq_group_ensure(c->q, MH_STREAM_JOBS, MH_GROUP_PLANNERS, err) < 0 ||
	    rq_group_ensure(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, err) < 0 ||
	    rq_group_ensure(c->q, MH_STREAM_BATCHES, MH_GROUP_WORKERS, err) < 0)
		return -1;
	/* Results a previous coordinator took but never acknowledged. */
	while (rq_xautoclaim(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, c->consumer, 0, 100, on_result, c,
			     err) > 0)
		;
	return 0;
}

/* Transfer records are kept for the retention time (--record-ttl), then forgotten whole. */
static int expire_records(struct coordinator *c, struct mh_err *err)
{
	int n = mh_jobs_expire(c->q, c->opts->record_ttl_ms, mh_now_ms(), err);

	if (n > 0)
		mh_info("coordinator", "forgot %d jobs that ended more than %" PRIu64 " days ago", n,
			c->opts->record_ttl_ms / (24 * 3600 * 1000));
	return n < 0 ? -1 : 0;
}

/* The main loop: results, retries, liveness, sweeps. Never waits on planning. */
static void main_loop(struct coordinator *c)
{
	uint64_t last_sweep = 0, last_expire = 0, last_autosync = 0;

	while (!atomic_load(c->stop)) {
		struct mh_err e;
		int n = -1;

		if (c->q == NULL)
			mh_err_set(&e, MH_E_REDIS, "not connected");
		else
			n = rq_xreadgroup(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, c->consumer, READ_BLOCK_MS,
					  100, on_result, c, &e);
		if (n >= 0)
			n = mh_retry_release_due(c->q, 100, &e);
		if (n >= 0 && mh_now_ms() - last_sweep > SWEEP_EVERY_MS) {
			last_sweep = mh_now_ms();
			n = sweep(c, &e);
		}
		if (n >= 0 && mh_now_ms() - last_autosync > AUTOSYNC_EVERY_MS) {
			last_autosync = mh_now_ms();
			n = mh_autosync_due(c->q, last_autosync, &e);
			if (n > 0)
				mh_info("coordinator", "%d auto-syncs started", n);
		}
		if (n >= 0 && c->opts->record_ttl_ms > 0 && mh_now_ms() - last_expire > EXPIRE_EVERY_MS) {
			last_expire = mh_now_ms();
			n = expire_records(c, &e);
		}
		if (n < 0) {
			mh_warn("coordinator", "redis: %s; reconnecting", e.detail);
			sleep(1);
			if (setup(c, &e) < 0)
				mh_warn("coordinator", "redis: %s", e.detail);
		}
	}
}

int coordinator_run(const struct coordinator_opts *o, const atomic_int *stop, struct mh_err *err)
{
	struct coordinator c = {.opts_copy = *o, .stop = stop, .consumer = o->name != NULL ? o->name : "coordinator"};

	c.opts = &c.opts_copy;
	if (c.opts_copy.retry_attempts == 0)
		c.opts_copy.retry_attempts = 5;
	if (c.opts_copy.retry_base_ms == 0)
		c.opts_copy.retry_base_ms = 2000;
	if (c.opts_copy.retry_max_ms == 0)
		c.opts_copy.retry_max_ms = 300000;

	if (setup(&c, err) < 0) {
		rq_free(&c.q);
		return -1;
	}
	if (o->planners > 0) {
		struct planpool_opts po = {
			.redis_url = o->redis_url,
			.seal_key = o->seal_key,
			.name = c.consumer,
			.planner = o->planner,
			.threads = o->planners,
		};
		c.planners = planpool_start(&po, err);
		if (c.planners == NULL) {
			rq_free(&c.q);
			return -1;
		}
	}
	mh_info("coordinator", "ready (%u planners)", o->planners);
	main_loop(&c);
	/* the jobs in hand are planned to the end: the batches of half a plan would wait for
	 * the sweep after our key lapses */
	planpool_stop(c.planners, 0);
	rq_free(&c.q);
	return 0;
}
