/* planpool.c - threads that plan submitted jobs; see planpool.h. */
#include "planpool.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "finish.h"
#include "jobstore.h"
#include "log.h"
#include "rq.h"
#include "verify.h"

#define ALIVE_TTL_MS 15000u      /* a pool silent this long is taken for dead */
#define ALIVE_EVERY_MS 3000u
#define JOB_CLAIM_IDLE_MS 10000u /* a job entry read this long ago and still pending */
#define JOB_CLAIM_EVERY_MS 5000u
#define PLAN_LATER_MS 30000u     /* after Redis trouble: time for the batches already out */
#define READ_BLOCK_MS 250u       /* how often the threads look at the quit flag */
#define OWNER_MAX 96

struct plan_thread {
	struct planpool *p;
	char consumer[OWNER_MAX + 16];
	struct rq *q;
	struct event_base *base;
	pthread_t tid;
	bool started;
};

struct planpool {
	struct planpool_opts opts;
	char owner[OWNER_MAX]; /* "<name>/<random>" */
	struct rq *alive_q;    /* the liveness key's own connection, used by planpool_stop's thread */
	pthread_t alive_tid;
	bool alive_started;
	struct plan_thread *threads;
	unsigned nthreads;
	atomic_uint running; /* plan threads not yet ended */
	atomic_int quit;
};

static bool quitting(const struct planpool *p)
{
	return atomic_load(&p->quit) || (p->opts.stop != NULL && atomic_load(p->opts.stop));
}

static void pause_ms(unsigned ms)
{
	const struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&t, NULL);
}

/* Our own trouble (Redis went away) is no reason to fail a job: it is planned again
 * later. Tried until Redis answers or we stop; a job left "planning" then is taken over
 * by the coordinator's sweep once our key lapses. */
static void plan_later(struct plan_thread *t, const char *job_id)
{
	struct mh_err err;

	while (mh_job_plan_later(t->q, job_id, t->p->owner, PLAN_LATER_MS, &err) < 0) {
		if (quitting(t->p))
			return;
		sleep(1);
	}
	mh_info("planner", "%s: planned again in %u s (Redis went away while planning)", job_id, PLAN_LATER_MS / 1000);
}

static void plan_failed(struct plan_thread *t, const char *job_id, const struct mh_err *why)
{
	struct mh_err err;

	if (why->code != MH_E_REDIS) {
		/* an expected outcome the job summary explains: not a warning of ours */
		mh_info("planner", "%s failed: %s (%s)", job_id, mh_err_text(why->code), why->detail);
		if (mh_job_set_state(t->q, job_id, MH_JOB_FAILED, why, &err) == 0) {
			mh_job_purge_credentials(t->q, job_id, &err);
			return;
		}
	}
	plan_later(t, job_id);
}

/* The last step before a job ends: count its target folders (verify.h), then finish it.
 * A failed count does not hold the job back: the summary says why it is missing. */
static void verify(struct plan_thread *t, const char *job_id)
{
	struct planpool *p = t->p;
	struct mh_err err, why;
	int mine = mh_job_take_verify(t->q, job_id, p->owner, &err);

	if (mine <= 0) {
		if (mine < 0)
			mh_warn("planner", "%s: %s", job_id, err.detail);
		return;
	}
	if (verify_job(t->q, t->base, p->opts.seal_key, &p->opts.planner, job_id, &why) < 0) {
		mh_warn("planner", "%s: cannot count the target folders: %s (%s)", job_id, mh_err_text(why.code),
			why.detail);
		if (mh_job_verified(t->q, job_id, why.detail, &err) < 0)
			return; /* the sweep hands it out again once we are gone */
	} else if (mh_job_verified(t->q, job_id, NULL, &err) < 0) {
		return;
	}
	finish_if_complete(t->q, job_id);
}

static int on_job(void *ctx, const struct rq_entry *e)
{
	struct plan_thread *t = ctx;
	struct planpool *p = t->p;
	char job_id[MH_JOB_ID_MAX];
	struct mh_err err;
	int mine;

	if (e->len > 7 && memcmp(e->value, "verify:", 7) == 0) {
		snprintf(job_id, sizeof(job_id), "%.*s", (int)e->len - 7, e->value + 7);
		verify(t, job_id);
		rq_xack_del(t->q, MH_STREAM_JOBS, MH_GROUP_PLANNERS, e->id, &err);
		return 0;
	}
	snprintf(job_id, sizeof(job_id), "%.*s", (int)e->len, e->value);
	mine = mh_job_start_planning(t->q, job_id, p->owner, &err);
	if (mine < 0) {
		/* left pending: claimed again later */
		mh_warn("planner", "%s: %s", job_id, err.detail);
		return -1;
	}
	if (mine > 0) {
		mh_info("planner", "%s: planning%s (%s)", job_id, mine == 2 ? " again (a sync, or a plan that was interrupted)" : "",
			t->consumer);
		if (plan_job(t->q, t->base, p->opts.seal_key, &p->opts.planner, job_id, mine == 2, &err) < 0)
			plan_failed(t, job_id, &err);
		else
			/* every result may have come while planning: nobody else sees it complete */
			finish_if_complete(t->q, job_id);
	}
	/* not queued: planned before a restart, being planned, paused or cancelled */
	rq_xack_del(t->q, MH_STREAM_JOBS, MH_GROUP_PLANNERS, e->id, &err);
	return 0;
}

static int thread_connect(struct plan_thread *t, struct mh_err *err)
{
	rq_free(&t->q);
	t->q = rq_connect(t->p->opts.redis_url, 5000, err);
	if (t->q == NULL)
		return -1;
	return rq_group_ensure(t->q, MH_STREAM_JOBS, MH_GROUP_PLANNERS, err);
}

static void *plan_thread_main(void *arg)
{
	struct plan_thread *t = arg;
	uint64_t last_claim = 0;

	while (!quitting(t->p)) {
		struct mh_err err;
		int n = 0;

		if (t->q == NULL && thread_connect(t, &err) < 0) {
			mh_warn("planner", "%s: redis: %s; retrying", t->consumer, err.detail);
			rq_free(&t->q);
			sleep(1);
			continue;
		}
		/* entries read by a planner that died (or is slow) before it could take the job */
		if (mh_now_ms() - last_claim > JOB_CLAIM_EVERY_MS) {
			last_claim = mh_now_ms();
			n = rq_xautoclaim(t->q, MH_STREAM_JOBS, MH_GROUP_PLANNERS, t->consumer, JOB_CLAIM_IDLE_MS, 1, on_job,
					  t, &err);
		}
		if (n == 0)
			n = rq_xreadgroup(t->q, MH_STREAM_JOBS, MH_GROUP_PLANNERS, t->consumer, READ_BLOCK_MS, 1, on_job,
					  t, &err);
		if (n < 0) {
			mh_warn("planner", "%s: redis: %s; reconnecting", t->consumer, err.detail);
			rq_free(&t->q);
			sleep(1);
		}
	}
	rq_free(&t->q);
	atomic_fetch_sub(&t->p->running, 1);
	return NULL;
}

/* Keeps mh:planner:<owner> alive while any plan thread runs, over a connection of its own
 * (the plan threads may be deep in a plan for minutes). */
static void *alive_main(void *arg)
{
	struct planpool *p = arg;
	uint64_t last = mh_now_ms();

	while (atomic_load(&p->running) > 0) {
		struct mh_err err;

		pause_ms(100);
		if (mh_now_ms() - last < ALIVE_EVERY_MS)
			continue;
		last = mh_now_ms();
		if (p->alive_q == NULL)
			p->alive_q = rq_connect(p->opts.redis_url, 5000, &err);
		if (p->alive_q != NULL && mh_planner_alive(p->alive_q, p->owner, ALIVE_TTL_MS, &err) < 0) {
			mh_warn("planner", "redis: %s; reconnecting", err.detail);
			rq_free(&p->alive_q);
		}
	}
	return NULL;
}

static void owner_init(struct planpool *p)
{
	unsigned char r[6];

	if (RAND_bytes(r, sizeof(r)) != 1)
		abort(); /* no randomness: nothing safe to do */
	snprintf(p->owner, sizeof(p->owner), "%.*s/%02x%02x%02x%02x%02x%02x", OWNER_MAX - 20,
		 p->opts.name != NULL ? p->opts.name : "planner", r[0], r[1], r[2], r[3], r[4], r[5]);
}

static void pool_free(struct planpool *p)
{
	for (unsigned i = 0; i < p->nthreads; i++)
		if (p->threads[i].base != NULL)
			event_base_free(p->threads[i].base);
	free(p->threads);
	rq_free(&p->alive_q);
	free(p);
}

static int threads_start(struct planpool *p, struct mh_err *err)
{
	for (unsigned i = 0; i < p->nthreads; i++) {
		struct plan_thread *t = &p->threads[i];

		t->p = p;
		snprintf(t->consumer, sizeof(t->consumer), "%s-plan-%u", p->opts.name != NULL ? p->opts.name : "planner",
			 i);
		t->base = event_base_new();
		if (t->base == NULL)
			return mh_err_set(err, MH_E_INTERNAL, "cannot create an event loop");
		atomic_fetch_add(&p->running, 1);
		if (pthread_create(&t->tid, NULL, plan_thread_main, t) != 0) {
			atomic_fetch_sub(&p->running, 1);
			return mh_err_set(err, MH_E_INTERNAL, "cannot start planner thread %u", i);
		}
		t->started = true;
	}
	return 0;
}

struct planpool *planpool_start(const struct planpool_opts *o, struct mh_err *err)
{
	struct planpool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		abort();
	p->opts = *o;
	p->nthreads = o->threads > 0 ? o->threads : 1;
	p->threads = calloc(p->nthreads, sizeof(*p->threads));
	if (p->threads == NULL)
		abort();
	owner_init(p);
	/* alive before any thread can take a job in our name */
	p->alive_q = rq_connect(o->redis_url, 5000, err);
	if (p->alive_q == NULL || mh_planner_alive(p->alive_q, p->owner, ALIVE_TTL_MS, err) < 0) {
		pool_free(p);
		return NULL;
	}
	if (threads_start(p, err) < 0) {
		planpool_stop(p, 0);
		return NULL;
	}
	if (pthread_create(&p->alive_tid, NULL, alive_main, p) != 0) {
		mh_err_set(err, MH_E_INTERNAL, "cannot start the planner liveness thread");
		planpool_stop(p, 0);
		return NULL;
	}
	p->alive_started = true;
	return p;
}

const char *planpool_owner(const struct planpool *p)
{
	return p->owner;
}

void planpool_stop(struct planpool *p, unsigned wait_ms)
{
	uint64_t until = mh_now_ms() + wait_ms;
	struct mh_err err;

	if (p == NULL)
		return;
	atomic_store(&p->quit, 1);
	while (atomic_load(&p->running) > 0) {
		if (wait_ms > 0 && mh_now_ms() >= until) {
			/* the process is going away: our key lapses and the jobs are planned again */
			mh_warn("planner", "%u plans still running at shutdown: left to be planned again",
				atomic_load(&p->running));
			return; /* p stays allocated: its threads still use it */
		}
		pause_ms(50);
	}
	for (unsigned i = 0; i < p->nthreads; i++)
		if (p->threads[i].started)
			pthread_join(p->threads[i].tid, NULL);
	if (p->alive_started)
		pthread_join(p->alive_tid, NULL);
	if (p->alive_q == NULL)
		p->alive_q = rq_connect(p->opts.redis_url, 5000, &err);
	if (p->alive_q != NULL && mh_planner_gone(p->alive_q, p->owner, &err) < 0)
		mh_warn("planner", "redis: %s", err.detail);
	pool_free(p);
}
