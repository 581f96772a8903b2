/* coordinator.c - the coordinator: planner threads plan new jobs; the main thread counts
 * results, releases due retries and finishes jobs.
 *
 * Each planner thread has its own Redis connection and event loop and reads mh:jobs in
 * the "coordinators" group as "<name>-plan-<i>"; planning (two IMAP sessions and a chain
 * of round trips per job) never holds up the results. A job is planned by whoever moves
 * it from queued to planning (one atomic step), so an entry read twice, claimed from a
 * slow sibling or submitted again is never planned twice at once. The jobs a coordinator
 * plans name it (an owner id, fresh per process) and it keeps mh:coordinator:<owner>
 * alive; a job left "planning" by a coordinator whose key expired is queued again by the
 * next sweep, and planned again with what its first plan already did taken into account.
 *
 * A job is finished by whoever sees it complete: the result that completes it (the
 * record script says so), or its planner when every result came before planning ended.
 * The finish is atomic, so seeing it twice finishes it once. A slow sweep catches the
 * rest (a job resumed after its last result came while paused, a coordinator that died
 * between recording and finishing). */
#include "coordinator.h"

#include <event2/event.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "jobstore.h"
#include "log.h"
#include "rq.h"
#include "wire.h"

#define ALIVE_TTL_MS 15000u     /* a coordinator silent this long is taken for dead */
#define ALIVE_EVERY_MS 3000u
#define SWEEP_EVERY_MS 15000u
#define JOB_CLAIM_IDLE_MS 10000u /* a job entry read this long ago and still pending */
#define JOB_CLAIM_EVERY_MS 5000u
#define PLAN_LATER_MS 30000u     /* after Redis trouble: time for the batches already out */
#define READ_BLOCK_MS 250u       /* how often the loops look at the stop flag */
#define OWNER_MAX 96

struct coordinator;

struct planner_thread {
	struct coordinator *c;
	char consumer[OWNER_MAX + 16];
	struct rq *q;
	struct event_base *base;
	pthread_t tid;
	bool started;
};

struct coordinator {
	struct coordinator_opts opts_copy;
	const struct coordinator_opts *opts;
	const atomic_int *stop;
	struct rq *q; /* the main thread's */
	const char *consumer;
	char owner[OWNER_MAX]; /* "<consumer>/<random>": names the jobs this process plans */
	struct planner_thread *planners;
	unsigned nplanners;
	atomic_uint planning_threads; /* planner threads not yet ended */
	atomic_int quit;              /* stop the planners (as *stop does) */
};

static bool stopping(const struct coordinator *c)
{
	return atomic_load(c->stop) || atomic_load(&c->quit);
}

/* A complete job becomes done (or partial when some messages failed); its passwords go. */
static void maybe_finish(struct rq *q, const char *job_id)
{
	struct mh_counts n;
	struct mh_err err;
	enum mh_job_state final;
	int rc = mh_job_finish(q, job_id, &final, &n, &err);

	if (rc == 0)
		return;
	if (rc < 0 || mh_job_purge_credentials(q, job_id, &err) < 0) {
		mh_error("coordinator", "%s: cannot finish: %s", job_id, err.detail);
		return;
	}
	mh_info("coordinator",
		"%s %s: %" PRIu64 " copied, %" PRIu64 " skipped, %" PRIu64 " failed of %" PRIu64 " messages", job_id,
		mh_job_state_name(final), n.copied, n.skipped, n.failed, n.messages);
}

/* ------------------------------------------------------------------------------------- */
/* Planner threads                                                                         */

/* Our own trouble (Redis went away) is no reason to fail a job: it is planned again
 * later. Tried until Redis answers or we stop; a job left "planning" then is taken over
 * by the next coordinator's sweep. */
static void plan_later(struct planner_thread *t, const char *job_id)
{
	struct mh_err err;

	while (mh_job_plan_later(t->q, job_id, t->c->owner, PLAN_LATER_MS, &err) < 0) {
		if (stopping(t->c))
			return;
		sleep(1);
	}
	mh_info("coordinator", "%s: planned again in %u s (Redis went away while planning)", job_id,
		PLAN_LATER_MS / 1000);
}

static void plan_failed(struct planner_thread *t, const char *job_id, const struct mh_err *why)
{
	struct mh_err err;

	if (why->code != MH_E_REDIS) {
		/* an expected outcome the job summary explains: not a warning of ours */
		mh_info("coordinator", "%s failed: %s (%s)", job_id, mh_err_text(why->code), why->detail);
		if (mh_job_set_state(t->q, job_id, MH_JOB_FAILED, why, &err) == 0) {
			mh_job_purge_credentials(t->q, job_id, &err);
			return;
		}
	}
	plan_later(t, job_id);
}

static int on_job(void *ctx, const struct rq_entry *e)
{
	struct planner_thread *t = ctx;
	struct coordinator *c = t->c;
	char job_id[MH_JOB_ID_MAX];
	struct mh_err err;
	int mine;

	snprintf(job_id, sizeof(job_id), "%.*s", (int)e->len, e->value);
	mine = mh_job_start_planning(t->q, job_id, c->owner, &err);
	if (mine < 0) {
		/* left pending: claimed again later */
		mh_warn("coordinator", "%s: %s", job_id, err.detail);
		return -1;
	}
	if (mine > 0) {
		mh_info("coordinator", "%s: planning%s", job_id, mine == 2 ? " again (a plan was interrupted)" : "");
		if (plan_job(t->q, t->base, c->opts->seal_key, &c->opts->planner, job_id, mine == 2, &err) < 0)
			plan_failed(t, job_id, &err);
		else
			/* every result may have come while planning: nobody else sees it complete */
			maybe_finish(t->q, job_id);
	}
	/* not queued: planned before a restart, being planned, paused or cancelled */
	rq_xack_del(t->q, MH_STREAM_JOBS, MH_GROUP_COORDINATORS, e->id, &err);
	return 0;
}

static int planner_connect(struct planner_thread *t, struct mh_err *err)
{
	rq_free(&t->q);
	t->q = rq_connect(t->c->opts->redis_url, 5000, err);
	if (t->q == NULL)
		return -1;
	return rq_group_ensure(t->q, MH_STREAM_JOBS, MH_GROUP_COORDINATORS, err);
}

static void *planner_main(void *arg)
{
	struct planner_thread *t = arg;
	uint64_t last_claim = 0;

	while (!stopping(t->c)) {
		struct mh_err err;
		int n = 0;

		if (t->q == NULL && planner_connect(t, &err) < 0) {
			mh_warn("coordinator", "%s: redis: %s; retrying", t->consumer, err.detail);
			rq_free(&t->q);
			sleep(1);
			continue;
		}
		/* entries read by a planner that died (or is slow) before it could take the job */
		if (mh_now_ms() - last_claim > JOB_CLAIM_EVERY_MS) {
			last_claim = mh_now_ms();
			n = rq_xautoclaim(t->q, MH_STREAM_JOBS, MH_GROUP_COORDINATORS, t->consumer, JOB_CLAIM_IDLE_MS,
					  1, on_job, t, &err);
		}
		if (n == 0)
			n = rq_xreadgroup(t->q, MH_STREAM_JOBS, MH_GROUP_COORDINATORS, t->consumer, READ_BLOCK_MS, 1,
					  on_job, t, &err);
		if (n < 0) {
			mh_warn("coordinator", "%s: redis: %s; reconnecting", t->consumer, err.detail);
			rq_free(&t->q);
			sleep(1);
		}
	}
	rq_free(&t->q);
	atomic_fetch_sub(&t->c->planning_threads, 1);
	return NULL;
}

static int planners_start(struct coordinator *c, struct mh_err *err)
{
	c->nplanners = c->opts->planners > 0 ? c->opts->planners : 4;
	c->planners = calloc(c->nplanners, sizeof(*c->planners));
	if (c->planners == NULL)
		abort();
	for (unsigned i = 0; i < c->nplanners; i++) {
		struct planner_thread *t = &c->planners[i];

		t->c = c;
		snprintf(t->consumer, sizeof(t->consumer), "%s-plan-%u", c->consumer, i);
		t->base = event_base_new();
		if (t->base == NULL)
			return mh_err_set(err, MH_E_INTERNAL, "cannot create an event loop");
		atomic_fetch_add(&c->planning_threads, 1);
		if (pthread_create(&t->tid, NULL, planner_main, t) != 0) {
			atomic_fetch_sub(&c->planning_threads, 1);
			return mh_err_set(err, MH_E_INTERNAL, "cannot start planner thread %u", i);
		}
		t->started = true;
	}
	return 0;
}

/* Stops the planners and waits for them: each ends after the job in hand. Meanwhile the
 * coordinator stays alive in Redis, or another one would take those jobs over. */
static void planners_join(struct coordinator *c)
{
	uint64_t last_alive = mh_now_ms();
	const struct timespec pause = {0, 100 * 1000 * 1000};
	struct mh_err err;

	atomic_store(&c->quit, 1);
	while (atomic_load(&c->planning_threads) > 0) {
		if (c->q != NULL && mh_now_ms() - last_alive > ALIVE_EVERY_MS) {
			last_alive = mh_now_ms();
			mh_coordinator_alive(c->q, c->owner, ALIVE_TTL_MS, &err);
		}
		nanosleep(&pause, NULL);
	}
	for (unsigned i = 0; i < c->nplanners; i++) {
		struct planner_thread *t = &c->planners[i];

		if (t->started)
			pthread_join(t->tid, NULL);
		if (t->base != NULL)
			event_base_free(t->base);
	}
	free(c->planners);
	c->planners = NULL;
	c->nplanners = 0;
}

/* ------------------------------------------------------------------------------------- */
/* Results (the main thread)                                                               */

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
			maybe_finish(c->q, r.job_id);
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

	if (mh_job_sweep(c->q, c->owner, &ids, &n, &requeued, err) < 0)
		return -1;
	if (requeued > 0)
		mh_info("coordinator", "%zu jobs queued again: their planner is gone", requeued);
	for (size_t i = 0; i < n; i++)
		maybe_finish(c->q, ids[i]);
	mh_job_list_free(ids, n);
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
	    rq_group_ensure(c->q, MH_STREAM_BATCHES, MH_GROUP_WORKERS, err) < 0 ||
	    mh_coordinator_alive(c->q, c->owner, ALIVE_TTL_MS, err) < 0)
		return -1;
	/* Results a previous coordinator took but never acknowledged (job entries are
	 * claimed by the planner threads). */
	while (rq_xautoclaim(c->q, MH_STREAM_RESULTS, MH_GROUP_COORDINATORS, c->consumer, 0, 100, on_result, c,
			     err) > 0)
		;
	return 0;
}

static void owner_init(struct coordinator *c)
{
	unsigned char r[6];

	if (RAND_bytes(r, sizeof(r)) != 1)
		abort(); /* no randomness: nothing safe to do */
	snprintf(c->owner, sizeof(c->owner), "%.*s/%02x%02x%02x%02x%02x%02x", OWNER_MAX - 20, c->consumer, r[0], r[1],
		 r[2], r[3], r[4], r[5]);
}

/* The main loop: results, retries, liveness, sweeps. Never waits on planning. */
static void main_loop(struct coordinator *c)
{
	uint64_t last_sweep = 0, last_alive = mh_now_ms();

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
		if (n >= 0 && mh_now_ms() - last_alive > ALIVE_EVERY_MS) {
			last_alive = mh_now_ms();
			n = mh_coordinator_alive(c->q, c->owner, ALIVE_TTL_MS, &e);
		}
		if (n >= 0 && mh_now_ms() - last_sweep > SWEEP_EVERY_MS) {
			last_sweep = mh_now_ms();
			n = sweep(c, &e);
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
	struct mh_err e;
	int rc = 0;

	c.opts = &c.opts_copy;
	if (c.opts_copy.retry_attempts == 0)
		c.opts_copy.retry_attempts = 5;
	if (c.opts_copy.retry_base_ms == 0)
		c.opts_copy.retry_base_ms = 2000;
	if (c.opts_copy.retry_max_ms == 0)
		c.opts_copy.retry_max_ms = 300000;
	owner_init(&c);

	/* alive before any planner can take a job in our name */
	if (setup(&c, err) < 0) {
		rq_free(&c.q);
		return -1;
	}
	if (planners_start(&c, err) < 0) {
		rc = -1;
	} else {
		mh_info("coordinator", "ready (%u planners)", c.nplanners);
		main_loop(&c);
	}
	planners_join(&c);
	if (rc == 0 && c.q != NULL && mh_coordinator_gone(c.q, c.owner, &e) < 0)
		mh_warn("coordinator", "redis: %s", e.detail);
	rq_free(&c.q);
	return rc;
}
