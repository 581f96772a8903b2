/* coordinator.c - the coordinator's loop: plan new jobs, count results, finish jobs. */
#include "coordinator.h"

#include <event2/event.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "jobstore.h"
#include "log.h"
#include "rq.h"
#include "wire.h"

struct coordinator {
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

static int on_result(void *ctx, const struct rq_entry *e)
{
	struct coordinator *c = ctx;
	struct mh_batch_result r;
	struct mh_err err;

	if (mh_batch_result_decode(e->value, e->len, &r, &err) < 0) {
		mh_error("coordinator", "dropping malformed result %s: %s", e->id, err.detail);
		rq_xack(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, e->id, &err);
		return 0;
	}
	/* Recorded before acknowledged; recording twice is harmless (counted once). */
	if (mh_job_record_results(c->q, r.job_id, r.folder_idx, r.msgs, r.count, &err) < 0) {
		mh_error("coordinator", "%s: cannot record results: %s", r.job_id, err.detail);
		mh_batch_result_cleanup(&r);
		return -1;
	}
	maybe_finish(c, r.job_id);
	rq_xack(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, e->id, &err);
	mh_batch_result_cleanup(&r);
	return 0;
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
	struct coordinator c = {.opts = o, .consumer = o->name != NULL ? o->name : "coordinator"};

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
