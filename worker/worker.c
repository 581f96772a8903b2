/* worker.c - worker threads: claim a batch, copy it, publish results, acknowledge. */
#include "worker.h"

#include <event2/event.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy.h"
#include "copy_pop3.h"
#include "imap_connect.h"
#include "pop3_connect.h"
#include "jobstore.h"
#include "planpool.h"
#include "log.h"
#include "rq.h"
#include "settle.h"
#include "wire.h"

/* Connections idle this long are closed (they hold server slots and fleet leases). */
#define WORKER_IDLE_CLOSE_MS 30000

struct worker_thread {
	const struct worker_opts *opts;
	const atomic_int *stop;
	pthread_t tid;
	char consumer[128];

	struct rq *rq;
	struct event_base *base;
	/* connections kept between batches of one job */
	char job_id[MH_JOB_ID_MAX];
	struct mh_job_spec spec;
	bool have_spec;
	struct mh_conn src, dst;
	struct copy_source_state src_state;
	uint64_t last_batch_ms;

	/* shutdown: checked during batches by a timer on base */
	struct event *watchdog;
	uint64_t leases_refreshed_ms;
	uint64_t stop_seen_ms;
	bool handing_back; /* the grace period ran out: connections cut, batch goes back */
};

static void drop_connections(struct worker_thread *t)
{
	mh_conn_close(&t->src);
	mh_conn_close(&t->dst);
	copy_source_state_reset(&t->src_state);
}

static void forget_job(struct worker_thread *t)
{
	drop_connections(t);
	if (t->have_spec)
		mh_job_spec_cleanup(&t->spec);
	t->have_spec = false;
	t->job_id[0] = '\0';
}

/* Makes sure both connections for b's job are open, each holding its fleet-wide slot.
 * Returns 1 when ready, 0 when a connection limit is full (*retry_ms_r: when to try
 * again), -1 on error. */
static int ensure_connections(struct worker_thread *t, const struct mh_batch *b, unsigned *retry_ms_r,
			      struct mh_err *err)
{
	struct mh_conn_opts co = {.command_timeout_ms = t->opts->command_timeout_ms};
	struct { struct mh_conn *conn; enum mh_side side; const char *suffix; } sides[2] = {
		{&t->src, MH_SIDE_SOURCE, "src"},
		{&t->dst, MH_SIDE_TARGET, "dst"},
	};

	if (!t->have_spec || strcmp(t->job_id, b->job_id) != 0) {
		forget_job(t);
		if (mh_job_load_spec(t->rq, b->job_id, &t->spec, err) < 0)
			return -1;
		t->have_spec = true;
		snprintf(t->job_id, sizeof(t->job_id), "%s", b->job_id);
	}
	for (int i = 0; i < 2; i++) {
		struct mh_conn *c = sides[i].conn;
		char holder[160];
		struct mh_err lapsed;
		int got;

		/* a lapsed slot may have been given to someone else: reconnect under a new one */
		if ((c->imap != NULL || c->pop3 != NULL) &&
		    (!mh_conn_is_open(c) || mh_conn_refresh_lease(c, &lapsed) < 0)) {
			mh_conn_close(c);
			if (sides[i].side == MH_SIDE_SOURCE)
				copy_source_state_reset(&t->src_state);
		}
		if (c->imap != NULL || c->pop3 != NULL)
			continue;
		if (sides[i].side == MH_SIDE_SOURCE)
			copy_source_state_reset(&t->src_state);
		snprintf(holder, sizeof(holder), "%s-%s", t->consumer, sides[i].suffix);
		got = mh_conn_open_leased(t->base, t->rq, holder, &t->spec, sides[i].side, t->opts->seal_key, &co, c,
					  retry_ms_r, err);
		if (got <= 0)
			return got;
	}
	return 1;
}

static void fail_batch(const struct mh_batch *b, struct mh_batch_result *res, const struct mh_err *e)
{
	res->count = b->count;
	res->msgs = calloc(b->count + 1, sizeof(*res->msgs));
	if (res->msgs == NULL)
		abort();
	for (size_t i = 0; i < b->count; i++) {
		res->msgs[i].uid = b->msgs[i].uid;
		res->msgs[i].status = MH_MSG_FAILED;
		res->msgs[i].bytes = b->msgs[i].size;
		res->msgs[i].error = strdup(mh_err_name(e->code));
		res->msgs[i].detail = e->detail[0] != '\0' ? strdup(e->detail) : NULL;
	}
	res->error = strdup(mh_err_name(e->code));
	res->detail = e->detail[0] != '\0' ? strdup(e->detail) : NULL;
}

struct claim_ctx {
	struct rq *rq;
	const struct mh_batch *b;
};

static int claim_target_uid(void *ctx, uint32_t src_uid, const uint32_t *cands, size_t n, uint32_t *uid_r,
			    struct mh_err *err)
{
	struct claim_ctx *c = ctx;

	return mh_job_claim_target_uid(c->rq, c->b->job_id, c->b->folder_idx, src_uid, cands, n, uid_r, err);
}

/* Messages an earlier attempt may have appended (inflight[i]) that are found on the target
 * leave b and become copied results in *settled_r. 0, or -1 when the batch cannot go on. */
static int settle_batch(struct worker_thread *t, struct mh_batch *b, const bool *inflight,
			struct mh_msg_result **settled_r, size_t *nsettled_r, struct mh_err *err)
{
	struct mh_folder_ref f;
	struct settle_target target;
	struct claim_ctx cc = {t->rq, b};
	uint32_t *found = calloc(b->count + 1, sizeof(*found));
	size_t kept = 0;
	int rc;

	*settled_r = NULL;
	*nsettled_r = 0;
	if (found == NULL)
		abort();
	if (mh_job_load_folder(t->rq, b->job_id, b->folder_idx, &f, err) < 0) {
		free(found);
		return -1;
	}
	target = (struct settle_target){f.dst_uidvalidity, f.dst_uidnext};
	mh_folder_ref_cleanup(&f);
	rc = settle_inflight(t->base, t->src.imap, t->dst.imap, &t->src_state, b, inflight, &target, claim_target_uid,
			     &cc, found, err);
	if (rc == 0) {
		*settled_r = calloc(b->count + 1, sizeof(**settled_r));
		if (*settled_r == NULL)
			abort();
		for (size_t i = 0; i < b->count; i++) {
			if (found[i] == 0) {
				b->msgs[kept++] = b->msgs[i];
				continue;
			}
			(*settled_r)[(*nsettled_r)++] = (struct mh_msg_result){
				.uid = b->msgs[i].uid, .status = MH_MSG_COPIED, .dst_uid = found[i], .bytes = b->msgs[i].size};
		}
		b->count = kept;
	}
	free(found);
	return rc;
}

/* Adds n results to res (which owns them afterwards). */
static void add_results(struct mh_batch_result *res, struct mh_msg_result *more, size_t n)
{
	if (n == 0)
		return;
	res->msgs = realloc(res->msgs, (res->count + n + 1) * sizeof(*res->msgs));
	if (res->msgs == NULL)
		abort();
	memcpy(&res->msgs[res->count], more, n * sizeof(*more));
	res->count += n;
}

/* A POP3 source's batch (copy_pop3.h). The source session ends after every batch: the
 * account allows one connection fleet-wide, and the next batch may go to another worker. */
static void run_pop3_batch(struct worker_thread *t, struct mh_batch *b, const bool *inflight,
			   struct mh_batch_result *res)
{
	struct claim_ctx cc = {t->rq, b};
	struct copy_pop3_args a = {
		.base = t->base, .q = t->rq, .spec = &t->spec, .src = t->src.pop3, .dst = t->dst.imap,
		.inflight = inflight, .claim = claim_target_uid, .claim_ctx = &cc,
	};
	struct mh_folder_ref f;
	struct mh_err e;

	if (mh_job_load_folder(t->rq, b->job_id, b->folder_idx, &f, &e) == 0) {
		a.target = (struct settle_target){f.dst_uidvalidity, f.dst_uidnext};
		mh_folder_ref_cleanup(&f);
	}
	/* Marked before the first byte goes out, as for IMAP (see run_batch). */
	if (mh_job_mark_inflight(t->rq, b->job_id, b->folder_idx, b->msgs, b->count, &e) < 0) {
		mh_err_set(&e, MH_E_REDIS, "cannot mark the batch in flight: %s", e.detail);
		fail_batch(b, res, &e);
	} else if (copy_pop3_batch(&a, b, res, &e) < 0) {
		if (!t->handing_back)
			mh_warn("worker", "batch %s/%" PRIu64 ": %s (%s); reconnecting", b->job_id, b->batch_id,
				mh_err_text(e.code), e.detail);
		drop_connections(t);
	}
	mh_conn_quit(&t->src);
}

/* Returns false when the batch could not start for lack of a connection slot; it then
 * goes back to the retry schedule and no result is published. inflight[i]: an earlier
 * attempt may have appended message i. */
static bool run_batch(struct worker_thread *t, struct mh_batch *b, const bool *inflight, struct mh_batch_result *res)
{
	struct mh_msg_result *settled = NULL;
	size_t nsettled = 0;
	bool any_inflight = false;
	enum mh_job_state state;
	struct mh_err e;
	uint64_t t0 = mh_now_ms();
	size_t copied = 0, failed = 0;
	bool account_problem = false;
	unsigned retry_ms = 0;
	int ready;

	mh_err_clear(&e);
	if (mh_job_get_state(t->rq, b->job_id, &state, &e) == 0 && state == MH_JOB_CANCELLED) {
		mh_err_set(&e, MH_E_CANCELED, "job %s was cancelled", b->job_id);
		fail_batch(b, res, &e);
		return true;
	}
	ready = ensure_connections(t, b, &retry_ms, &e);
	if (ready == 0) {
		/* every slot of this account or server is taken: let the batch wait in Redis,
		 * not in our hands */
		if (retry_ms < 200)
			retry_ms = 200;
		/* the hint is when the oldest slot expires, but slots are usually given back far
		 * sooner (a job ends, an idle connection closes): look again soon */
		if (retry_ms > 2000)
			retry_ms = 2000;
		mh_debug("worker", "batch %s/%" PRIu64 ": connection limit reached, back in %u ms", b->job_id,
			 b->batch_id, retry_ms);
		drop_connections(t);
		if (mh_retry_schedule(t->rq, b, mh_now_ms() + retry_ms, &e) == 0)
			return false;
		mh_err_set(&e, MH_E_REDIS, "cannot defer the batch: %s", e.detail);
		ready = -1;
	}
	if (ready < 0) {
		mh_warn("worker", "batch %s/%" PRIu64 ": %s: %s (%s)", b->job_id, b->batch_id, mh_err_name(e.code),
			mh_err_text(e.code), e.detail);
		drop_connections(t);
		fail_batch(b, res, &e);
		return true;
	}
	if (t->spec.src.proto == MH_PROTO_POP3) {
		run_pop3_batch(t, b, inflight, res);
		goto results;
	}
	for (size_t i = 0; i < b->count; i++)
		any_inflight |= inflight[i];
	if (any_inflight && settle_batch(t, b, inflight, &settled, &nsettled, &e) < 0) {
		mh_warn("worker", "batch %s/%" PRIu64 ": cannot look for earlier copies: %s (%s)", b->job_id,
			b->batch_id, mh_err_text(e.code), e.detail);
		drop_connections(t);
		fail_batch(b, res, &e);
		return true;
	}
	/* Marked before the first byte goes out: from here until its result is recorded, a
	 * message may be on the target without Redis knowing it. */
	if (b->count > 0 && mh_job_mark_inflight(t->rq, b->job_id, b->folder_idx, b->msgs, b->count, &e) < 0) {
		mh_err_set(&e, MH_E_REDIS, "cannot mark the batch in flight: %s", e.detail);
		fail_batch(b, res, &e);
	} else if (b->count > 0 && copy_batch(t->base, t->src.imap, t->dst.imap, &t->src_state, b,
					      (t->spec.flags & MH_JOB_LEDGER_SUBJECTS) != 0, res, &e) < 0) {
		if (!t->handing_back)
			mh_warn("worker", "batch %s/%" PRIu64 ": %s (%s); reconnecting", b->job_id, b->batch_id,
				mh_err_text(e.code), e.detail);
		drop_connections(t);
	}
	add_results(res, settled, nsettled);
	free(settled);
results:
	for (size_t i = 0; i < res->count; i++) {
		copied += res->msgs[i].status == MH_MSG_COPIED;
		failed += res->msgs[i].status == MH_MSG_FAILED;
		/* an account problem (quota, permissions) is often fixed on the server while we
		 * wait; servers apply the fix to new sessions, so log in afresh next time */
		if (res->msgs[i].error != NULL &&
		    mh_err_class_of(mh_err_from_name(res->msgs[i].error)) == MH_CLASS_ACCOUNT)
			account_problem = true;
	}
	if (account_problem)
		drop_connections(t);
	mh_debug("worker", "batch %s/%" PRIu64 " %s: %zu copied, %zu failed in %" PRIu64 " ms", b->job_id,
		 b->batch_id, b->src_folder, copied, failed, mh_now_ms() - t0);
	return true;
}

/* Keeps the open connections' fleet-wide slots alive (they lapse soon otherwise, see
 * imap_connect.h). A slot that lapsed is noticed at the next batch, which reconnects. */
static void refresh_leases(struct worker_thread *t)
{
	struct mh_err err;

	if (mh_now_ms() - t->leases_refreshed_ms < MH_CONN_LEASE_REFRESH_MS)
		return;
	t->leases_refreshed_ms = mh_now_ms();
	if (t->src.imap != NULL || t->src.pop3 != NULL)
		mh_conn_refresh_lease(&t->src, &err);
	if (t->dst.imap != NULL)
		mh_conn_refresh_lease(&t->dst, &err);
}

/* After SIGTERM a batch in hand has the grace period to finish; then its connections are
 * cut, and what was not copied goes back to the queue (hand_back). */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct worker_thread *t = arg;
	struct mh_err why;

	(void)fd;
	(void)what;
	refresh_leases(t);
	if (!atomic_load(t->stop) || t->handing_back)
		return;
	if (t->stop_seen_ms == 0)
		t->stop_seen_ms = mh_now_ms();
	if (mh_now_ms() - t->stop_seen_ms < t->opts->shutdown_grace_ms)
		return;
	t->handing_back = true;
	mh_err_set(&why, MH_E_WORKER_STOPPING, "the shutdown grace period (%u ms) is over",
		   t->opts->shutdown_grace_ms);
	if (t->src.imap != NULL)
		imap_client_abort(t->src.imap, &why);
	if (t->src.pop3 != NULL)
		pop3_client_abort(t->src.pop3, &why);
	if (t->dst.imap != NULL)
		imap_client_abort(t->dst.imap, &why);
}

/* The grace period ran out: messages that failed for a connection reason (the cut) go
 * back on the retry schedule, due now, as a new batch of the same attempt; the others'
 * results stay in res to be reported. The handed-back messages keep their in-flight
 * marks, so whoever takes them looks on the target first. 0, or -1 (report nothing and
 * leave the batch pending: it is claimed later). */
static int hand_back(struct worker_thread *t, const struct mh_batch *b, struct mh_batch_result *res,
		     struct mh_err *err)
{
	struct mh_batch back = *b;
	size_t kept = 0;
	int rc = 0;

	back.count = 0;
	back.msgs = calloc(res->count + 1, sizeof(*back.msgs));
	if (back.msgs == NULL)
		abort();
	for (size_t i = 0; i < res->count; i++) {
		struct mh_msg_result *m = &res->msgs[i];
		if (m->status == MH_MSG_FAILED && m->error != NULL && mh_err_is_transient(mh_err_from_name(m->error))) {
			back.msgs[back.count++] = (struct mh_batch_msg){m->uid, m->bytes};
			mh_msg_result_cleanup(m);
			continue;
		}
		res->msgs[kept++] = *m;
	}
	res->count = kept;
	if (back.count > 0 && (mh_job_next_batch_id(t->rq, b->job_id, &back.batch_id, err) < 0 ||
			       mh_retry_schedule(t->rq, &back, mh_now_ms(), err) < 0))
		rc = -1;
	else if (back.count > 0)
		mh_info("worker", "batch %s/%" PRIu64 ": %zu messages handed back as batch %" PRIu64 " (shutting down)",
			b->job_id, b->batch_id, back.count, back.batch_id);
	free(back.msgs);
	return rc;
}

static int on_batch(void *ctx, const struct rq_entry *e)
{
	struct worker_thread *t = ctx;
	struct mh_batch b;
	struct mh_batch_result res;
	struct mh_bytes enc = {0};
	struct mh_err err;
	enum mh_msg_mark *marks;
	bool *inflight;
	size_t kept = 0;
	uint64_t started;

	memset(&res, 0, sizeof(res));
	if (mh_batch_decode(e->value, e->len, &b, &err) < 0) {
		/* A poison entry would be redelivered forever: log it and let it go. */
		mh_error("worker", "dropping malformed batch %s: %s", e->id, err.detail);
		rq_xack_del(t->rq, MH_STREAM_BATCHES, MH_GROUP_WORKERS, e->id, &err);
		return 0;
	}
	if (atomic_load(t->stop)) {
		/* it came while we were stopping: straight back to the queue */
		if (mh_retry_schedule(t->rq, &b, mh_now_ms(), &err) == 0)
			rq_xack_del(t->rq, MH_STREAM_BATCHES, MH_GROUP_WORKERS, e->id, &err);
		mh_batch_cleanup(&b);
		return -1;
	}
	if (mh_job_park_batch(t->rq, b.job_id, e->value, e->len, &err) == 1) {
		/* paused: held in Redis until resumed */
		rq_xack_del(t->rq, MH_STREAM_BATCHES, MH_GROUP_WORKERS, e->id, &err);
		mh_batch_cleanup(&b);
		return 0;
	}
	/* A redelivered batch (its worker died after reporting but before acknowledging) must
	 * not copy what is already recorded as copied; what an attempt may have appended
	 * without a recorded result is looked for on the target first (settle.c). */
	marks = calloc(b.count + 1, sizeof(*marks));
	inflight = calloc(b.count + 1, sizeof(*inflight));
	if (marks == NULL || inflight == NULL)
		abort();
	if (mh_job_msg_marks(t->rq, b.job_id, b.folder_idx, b.msgs, b.count, marks, &err) < 0) {
		/* Redis is gone: leave the batch pending; it comes back */
		mh_warn("worker", "batch %s/%" PRIu64 ": %s", b.job_id, b.batch_id, err.detail);
		free(marks);
		free(inflight);
		mh_batch_cleanup(&b);
		return -1;
	}
	for (size_t i = 0; i < b.count; i++) {
		if (marks[i] == MH_MARK_DONE)
			continue;
		inflight[kept] = marks[i] == MH_MARK_INFLIGHT;
		b.msgs[kept++] = b.msgs[i];
	}
	if (kept < b.count)
		mh_info("worker", "batch %s/%" PRIu64 ": %zu messages already copied, not again", b.job_id, b.batch_id,
			b.count - kept);
	b.count = kept;
	free(marks);
	started = t->last_batch_ms = mh_now_ms();
	if (b.count > 0 && !run_batch(t, &b, inflight, &res)) {
		rq_xack_del(t->rq, MH_STREAM_BATCHES, MH_GROUP_WORKERS, e->id, &err);
		free(inflight);
		mh_batch_result_cleanup(&res);
		mh_batch_cleanup(&b);
		return 0;
	}
	free(inflight);
	if (t->handing_back && hand_back(t, &b, &res, &err) < 0) {
		mh_warn("worker", "batch %s/%" PRIu64 ": cannot hand it back (%s); it stays pending", b.job_id,
			b.batch_id, err.detail);
		mh_batch_result_cleanup(&res);
		mh_batch_cleanup(&b);
		return -1;
	}
	res.attempt = b.attempt;
	res.elapsed_ms = mh_now_ms() - started;
	res.job_id = b.job_id;
	res.batch_id = b.batch_id;
	res.folder_idx = b.folder_idx;
	res.worker = t->consumer;
	/* Results first, acknowledgement second: a crash in between redelivers the batch,
	 * and the coordinator counts each message once. */
	if (mh_batch_result_encode(&res, &enc, &err) < 0 ||
	    rq_xadd(t->rq, MH_STREAM_RESULTS, "r", enc.data, enc.len, NULL, &err) < 0 ||
	    rq_xack_del(t->rq, MH_STREAM_BATCHES, MH_GROUP_WORKERS, e->id, &err) < 0)
		mh_error("worker", "cannot report batch %s: %s", e->id, err.detail);
	mh_bytes_free(&enc);
	res.job_id = NULL;
	res.worker = NULL;
	mh_batch_result_cleanup(&res);
	mh_batch_cleanup(&b);
	return 0;
}

/* The connections' leases live in Redis through t->rq: they go first. */
static void drop_redis(struct worker_thread *t)
{
	forget_job(t);
	rq_free(&t->rq);
}

static int connect_redis(struct worker_thread *t, struct mh_err *err)
{
	drop_redis(t);
	t->rq = rq_connect(t->opts->redis_url, 5000, err);
	if (t->rq == NULL)
		return -1;
	return rq_group_ensure(t->rq, MH_STREAM_BATCHES, MH_GROUP_WORKERS, err);
}

static void *thread_main(void *arg)
{
	struct worker_thread *t = arg;
	uint64_t last_claim = 0;
	struct mh_err err;
	const struct timeval every = {0, 250 * 1000};

	t->watchdog = event_new(t->base, -1, EV_PERSIST, on_watchdog, t);
	if (t->watchdog == NULL)
		abort();
	while (!atomic_load(t->stop)) {
		int n = 0;

		if (t->rq == NULL && connect_redis(t, &err) < 0) {
			mh_warn("worker", "%s: %s; retrying", mh_err_text(err.code), err.detail);
			sleep(1);
			continue;
		}
		/* the watchdog runs only while a batch holds the event loop */
		event_add(t->watchdog, &every);
		/* Batches of a dead worker go to the living (XAUTOCLAIM). */
		if (mh_now_ms() - last_claim > t->opts->claim_idle_ms / 2) {
			last_claim = mh_now_ms();
			n = rq_xautoclaim(t->rq, MH_STREAM_BATCHES, MH_GROUP_WORKERS, t->consumer, t->opts->claim_idle_ms,
					  1, on_batch, t, &err);
		}
		if (n == 0)
			n = rq_xreadgroup(t->rq, MH_STREAM_BATCHES, MH_GROUP_WORKERS, t->consumer, 500, 1, on_batch, t,
					  &err);
		event_del(t->watchdog);
		if (n == 0 && t->have_spec && mh_now_ms() - t->last_batch_ms > WORKER_IDLE_CLOSE_MS)
			forget_job(t);
		else if (n >= 0 && t->rq != NULL)
			refresh_leases(t);
		if (n < 0) {
			mh_warn("worker", "redis: %s; reconnecting", err.detail);
			drop_redis(t);
			sleep(1);
		}
	}
	forget_job(t);
	event_free(t->watchdog);
	rq_free(&t->rq);
	return NULL;
}

int worker_run(const struct worker_opts *o, const atomic_int *stop, struct mh_err *err)
{
	struct worker_opts opts = *o;
	struct worker_thread *threads;
	struct planpool *planners = NULL;
	char host[64] = "worker", pool_name[96];

	if (opts.concurrency == 0)
		opts.concurrency = 2;
	if (opts.claim_idle_ms == 0)
		opts.claim_idle_ms = 60000;
	if (opts.shutdown_grace_ms == 0)
		opts.shutdown_grace_ms = 30000;
	gethostname(host, sizeof(host) - 1);
	threads = calloc(opts.concurrency, sizeof(*threads));
	if (threads == NULL)
		abort();
	for (unsigned i = 0; i < opts.concurrency; i++) {
		struct worker_thread *t = &threads[i];
		t->opts = &opts;
		t->stop = stop;
		if (opts.name != NULL)
			snprintf(t->consumer, sizeof(t->consumer), "%s-%u", opts.name, i);
		else
			snprintf(t->consumer, sizeof(t->consumer), "%s-%ld-%u", host, (long)getpid(), i);
		t->base = event_base_new();
		if (t->base == NULL)
			abort();
	}
	/* Check Redis once up front so a wrong URL is an error, not a retry loop. */
	{
		struct rq *probe = rq_connect(opts.redis_url, 5000, err);
		if (probe == NULL) {
			for (unsigned i = 0; i < opts.concurrency; i++)
				event_base_free(threads[i].base);
			free(threads);
			return -1;
		}
		rq_free(&probe);
	}
	if (opts.planners > 0) {
		struct planpool_opts po = {
			.redis_url = opts.redis_url,
			.seal_key = opts.seal_key,
			.name = opts.name != NULL ? opts.name : pool_name,
			.planner = opts.planner,
			.threads = opts.planners,
			.stop = stop,
		};
		snprintf(pool_name, sizeof(pool_name), "%s-%ld", host, (long)getpid());
		planners = planpool_start(&po, err);
		if (planners == NULL) {
			for (unsigned i = 0; i < opts.concurrency; i++)
				event_base_free(threads[i].base);
			free(threads);
			return -1;
		}
	}
	mh_info("worker", "%u threads consuming %s, %u planning %s", opts.concurrency, MH_STREAM_BATCHES, opts.planners,
		MH_STREAM_JOBS);
	for (unsigned i = 0; i < opts.concurrency; i++)
		if (pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]) != 0)
			abort();
	for (unsigned i = 0; i < opts.concurrency; i++) {
		pthread_join(threads[i].tid, NULL);
		event_base_free(threads[i].base);
	}
	free(threads);
	/* the planners stopped taking jobs with *stop; a plan still running after the grace
	 * period is left to be planned again (planpool.h) */
	planpool_stop(planners, opts.shutdown_grace_ms);
	return 0;
}
