/* coordinator.c - the coordinator's loop: plan new jobs, count results, finish jobs. */
#include "coordinator.h"

#include <event2/event.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "jobstore.h"
#include "log.h"
#include "rq.h"
#include "wire.h"

struct coordinator {
	struct coordinator_opts opts_copy;
	const struct coordinator_opts *opts;
	struct rq *q;
	struct event_base *base;
	const char *consumer;
};

/* A job whose every message has a result is done (or partial when some failed). */
static void maybe_finish(struct coordinator *c, const char *job_id)
{
	struct mh_job_summary s;
	struct mh_err err;
	enum mh_job_state final;

	if (mh_job_load_summary(c->q, job_id, 0, &s, &err) < 0)
		return;
	if (s.state != MH_JOB_RUNNING || !mh_job_counts_complete(&s.counts))
		return;
	final = s.counts.failed > 0 ? MH_JOB_PARTIAL : MH_JOB_DONE;
	if (mh_job_set_state(c->q, job_id, final, NULL, &err) < 0 ||
	    mh_job_purge_credentials(c->q, job_id, &err) < 0) {
		mh_error("coordinator", "%s: cannot finish: %s", job_id, err.detail);
		return;
	}
	mh_info("coordinator",
		"%s %s: %" PRIu64 " copied, %" PRIu64 " skipped, %" PRIu64 " failed of %" PRIu64 " messages", job_id,
		mh_job_state_name(final), s.counts.copied, s.counts.skipped, s.counts.failed, s.counts.messages);
}

static int on_job(void *ctx, const struct rq_entry *e)
{
	struct coordinator *c = ctx;
	char job_id[MH_JOB_ID_MAX];
	enum mh_job_state state;
	struct mh_err err;

	snprintf(job_id, sizeof(job_id), "%.*s", (int)e->len, e->value);
	/* A job planned before a restart is not planned twice. */
	if (mh_job_get_state(c->q, job_id, &state, &err) < 0 || state != MH_JOB_QUEUED) {
		rq_xack(c->q, MH_STREAM_JOBS, MH_GROUP_COORDINATORS, e->id, &err);
		return 0;
	}
	mh_info("coordinator", "%s: planning", job_id);
	if (plan_job(c->q, c->base, c->opts->seal_key, &c->opts->planner, job_id, &err) < 0) {
		struct mh_err e2;
		/* an expected outcome the job summary explains: not a warning of ours */
		mh_info("coordinator", "%s failed: %s (%s)", job_id, mh_err_text(err.code), err.detail);
		mh_job_set_state(c->q, job_id, MH_JOB_FAILED, &err, &e2);
		mh_job_purge_credentials(c->q, job_id, &e2);
	} else {
		maybe_finish(c, job_id);
	}
	rq_xack(c->q, MH_STREAM_JOBS, MH_GROUP_COORDINATORS, e->id, &err);
	return 0;
}

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
	int rc = 0;

	if (mh_batch_result_decode(e->value, e->len, &r, &err) < 0) {
		mh_error("coordinator", "dropping malformed result %s: %s", e->id, err.detail);
		rq_xack(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, e->id, &err);
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
	if (rc == 0 && mh_job_record_results(c->q, r.job_id, r.folder_idx, r.batch_id, final, nfinal, &err) < 0)
		rc = -1;
	if (rc < 0) {
		mh_error("coordinator", "%s: cannot record results: %s", r.job_id, err.detail);
	} else {
		observe_batch(c, &r);
		maybe_finish(c, r.job_id);
		rq_xack(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, e->id, &err);
	}
	free(final);
	free(retry);
	mh_batch_result_cleanup(&r);
	return rc;
}

/* Jobs whose last result came while they were paused finish once resumed. */
static void sweep_active(struct coordinator *c)
{
	char **ids;
	size_t n;
	struct mh_err err;

	if (mh_job_list_active(c->q, &ids, &n, &err) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		maybe_finish(c, ids[i]);
	mh_job_list_free(ids, n);
}

static int setup(struct coordinator *c, struct mh_err *err)
{
	rq_free(&c->q);
	c->q = rq_connect(c->opts->redis_url, 5000, err);
	if (c->q == NULL)
		return -1;
	if (rq_group_ensure(c->q, MH_STREAM_JOBS, MH_GROUP_COORDINATORS, err) < 0 ||
	    rq_group_ensure(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, err) < 0 ||
	    rq_group_ensure(c->q, MH_STREAM_BATCHES, MH_GROUP_WORKERS, err) < 0)
		return -1;
	/* Entries a previous coordinator took but never acknowledged. */
	while (rq_xautoclaim(c->q, MH_STREAM_JOBS, MH_GROUP_COORDINATORS, c->consumer, 0, 10, on_job, c, err) > 0)
		;
	while (rq_xautoclaim(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, c->consumer, 0, 100, on_result, c,
			     err) > 0)
		;
	return 0;
}

int coordinator_run(const struct coordinator_opts *o, const atomic_int *stop, struct mh_err *err)
{
	struct coordinator c = {.opts_copy = *o, .consumer = o->name != NULL ? o->name : "coordinator"};
	uint64_t last_sweep = 0;

	c.opts = &c.opts_copy;
	if (c.opts_copy.retry_attempts == 0)
		c.opts_copy.retry_attempts = 5;
	if (c.opts_copy.retry_base_ms == 0)
		c.opts_copy.retry_base_ms = 2000;
	if (c.opts_copy.retry_max_ms == 0)
		c.opts_copy.retry_max_ms = 300000;

	c.base = event_base_new();
	if (c.base == NULL)
		return mh_err_set(err, MH_E_INTERNAL, "cannot create an event loop");
	if (setup(&c, err) < 0) {
		rq_free(&c.q);
		event_base_free(c.base);
		return -1;
	}
	mh_info("coordinator", "ready");
	while (!atomic_load(stop)) {
		struct mh_err e;
		int n = rq_xreadgroup(c.q, MH_STREAM_JOBS, MH_GROUP_COORDINATORS, c.consumer, 1, 1, on_job, &c, &e);

		if (n >= 0)
			n = rq_xreadgroup(c.q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, c.consumer, 200, 100, on_result,
					  &c, &e);
		if (n >= 0)
			n = mh_retry_release_due(c.q, 100, &e);
		if (n >= 0 && mh_now_ms() - last_sweep > 2000) {
			last_sweep = mh_now_ms();
			sweep_active(&c);
		}
		if (n < 0) {
			mh_warn("coordinator", "redis: %s; reconnecting", e.detail);
			sleep(1);
			if (setup(&c, &e) < 0)
				mh_warn("coordinator", "redis: %s", e.detail);
		}
	}
	rq_free(&c.q);
	event_base_free(c.base);
	return 0;
}
