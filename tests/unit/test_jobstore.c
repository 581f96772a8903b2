/* test_jobstore.c - a job's state in a real Redis: counting results once, failures
 * replaced by later successes, requeue bookkeeping, job control transitions, retries,
 * completion and finishing, the atomic start of planning, the sweep; what flag sync keeps
 * (syncstore.h): copies' target UIDs, deletions, options, each folder's source state.
 * The group starts a private redis-server (redis_fixture.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobstore.h"
#include "redis_fixture.h"
#include "rq.h"
#include "syncstore.h"
#include "wire.h"

static int group_setup(void **state)
{
	return redis_fixture_group_start(state, "jobstore");
}

static int group_teardown(void **state)
{
	return redis_fixture_group_stop(state);
}

/* A connected, emptied database with one running job of `messages` planned messages. */
static struct rq *fresh_job(void **state, const char *job, uint64_t messages)
{
	struct redis_fixture *f = redis_fixture_need(state);
	struct mh_err err;
	struct rq *q = rq_connect(f->url, 5000, &err);
	struct mh_folder_ref ref = {"INBOX", "INBOX", "INBOX", "INBOX", 7, 9, 1};
	char key[MH_KEY_MAX];

	if (q == NULL)
		fail_msg("rq_connect: %s", err.detail);
	rq_reply_free(rq_command(q, &err, "FLUSHALL"));
	mh_key_job(key, sizeof(key), job, NULL);
	rq_reply_free(rq_command(q, &err, "HSET %s state running", key));
	rq_reply_free(rq_command(q, &err, "SADD " MH_SET_ACTIVE " %s", job));
	assert_int_equal(mh_job_add_folder(q, job, 0, &ref, messages, messages * 100, &err), 0);
	assert_int_equal(mh_job_set_plan(q, job, 1, messages, messages * 100, 1, &err), 0);
	return q;
}

static struct mh_counts counts(struct rq *q, const char *job)
{
	struct mh_job_summary s;
	struct mh_err err;

	assert_int_equal(mh_job_load_summary(q, job, 1, &s, &err), 0);
	struct mh_counts c = s.counts;
	assert_int_equal(s.folder_count, 1);
	/* the folder's counters always agree with the job's (one folder) */
	assert_true(s.folders[0].counts.copied == c.copied && s.folders[0].counts.failed == c.failed);
	mh_job_summary_cleanup(&s);
	return c;
}

static void results(struct mh_msg_result *m, size_t n, uint32_t first_uid, enum mh_msg_status st, const char *error)
{
	for (size_t i = 0; i < n; i++) {
		m[i] = (struct mh_msg_result){.uid = first_uid + (uint32_t)i, .status = st, .bytes = 100,
					      .dst_uid = st == MH_MSG_COPIED ? 1000 + (uint32_t)i : 0};
		m[i].error = (char *)error;
		m[i].detail = error != NULL ? "server said no" : NULL;
	}
}

/* A late result of a job that was forgotten (mailhaul forget, retention) writes nothing. */
static void test_results_of_a_forgotten_job_leave_no_keys(void **state)
{
	struct mh_msg_result m[2];
	struct rq *q = fresh_job(state, "j-gone", 2);
	struct redisReply *r;
	struct mh_err err;

	results(m, 2, 1, MH_MSG_FAILED, "OVER_QUOTA");
	r = rq_command(q, &err, "DEL mh:job:j-gone");
	rq_reply_free(r);
	assert_int_equal(mh_job_record_results(q, "j-gone", 0, 1, m, 2, NULL, &err), 0);
	r = rq_command(q, &err, "KEYS mh:job:j-gone*");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 1); /* the folder hash fresh_job made, nothing new */
	rq_reply_free(r);
	rq_free(&q);
}

/* More results than one script call carries (chunks of 200) and each counted once. */
static void test_record_many_results_counts_each_once(void **state)
{
	enum { N = 1000 };
	struct mh_msg_result *m = calloc(N, sizeof(*m));
	struct rq *q = fresh_job(state, "j-many", N);
	struct mh_err err;
	struct mh_counts c;

	results(m, N, 1, MH_MSG_COPIED, NULL);
	assert_int_equal(mh_job_record_results(q, "j-many", 0, 3, m, N, NULL, &err), 0);
	assert_int_equal(mh_job_record_results(q, "j-many", 0, 3, m, N, NULL, &err), 0); /* redelivered */
	c = counts(q, "j-many");
	assert_true(c.copied == N && c.copied_bytes == N * 100 && c.failed == 0);
	assert_true(mh_job_counts_complete(&c));
	free(m);
	rq_free(&q);
}

static void test_success_replaces_failure_but_not_the_reverse(void **state)
{
	struct mh_msg_result m[10];
	struct rq *q = fresh_job(state, "j-replace", 10);
	struct mh_job_summary s;
	struct mh_err err;
	struct mh_counts c;

	results(m, 10, 1, MH_MSG_FAILED, "OVER_QUOTA");
	assert_int_equal(mh_job_record_results(q, "j-replace", 0, 4, m, 10, NULL, &err), 0);
	c = counts(q, "j-replace");
	assert_true(c.failed == 10 && c.copied == 0);
	assert_int_equal(mh_job_load_summary(q, "j-replace", 1, &s, &err), 0);
	assert_int_equal(s.failure_count, 10);
	assert_string_equal(s.failures[0].code, "OVER_QUOTA");
	assert_true(s.failures[0].batch_id == 4);
	assert_string_equal(s.failures[0].detail, "server said no");
	mh_job_summary_cleanup(&s);

	results(m, 4, 1, MH_MSG_COPIED, NULL);
	assert_int_equal(mh_job_record_results(q, "j-replace", 0, 5, m, 4, NULL, &err), 0);
	c = counts(q, "j-replace");
	assert_true(c.failed == 6 && c.copied == 4 && c.failed_bytes == 600);

	results(m, 4, 1, MH_MSG_FAILED, "TIMEOUT"); /* a late failure never undoes a copy */
	assert_int_equal(mh_job_record_results(q, "j-replace", 0, 6, m, 4, NULL, &err), 0);
	c = counts(q, "j-replace");
	assert_true(c.failed == 6 && c.copied == 4);
	rq_free(&q);
}

/* In flight from the mark until the result is recorded (copied or skipped); a failure
 * leaves it in flight (its APPEND may have arrived after all). Done beats in flight. */
static void test_inflight_marks_follow_the_results(void **state)
{
	struct mh_batch_msg msgs[4] = {{1, 100}, {2, 100}, {3, 100}, {4, 100}};
	enum mh_msg_mark marks[4];
	struct mh_msg_result m[3];
	struct rq *q = fresh_job(state, "j-inflight", 4);
	struct mh_err err;

	assert_int_equal(mh_job_msg_marks(q, "j-inflight", 0, msgs, 4, marks, &err), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(marks[i], MH_MARK_NEW);
	assert_int_equal(mh_job_mark_inflight(q, "j-inflight", 0, msgs, 3, &err), 0);
	results(m, 2, 1, MH_MSG_COPIED, NULL);
	results(&m[2], 1, 3, MH_MSG_FAILED, "CONNECTION_LOST");
	assert_int_equal(mh_job_record_results(q, "j-inflight", 0, 1, m, 3, NULL, &err), 0);
	assert_int_equal(mh_job_msg_marks(q, "j-inflight", 0, msgs, 4, marks, &err), 0);
	assert_int_equal(marks[0], MH_MARK_DONE);
	assert_int_equal(marks[1], MH_MARK_DONE);
	assert_int_equal(marks[2], MH_MARK_INFLIGHT);
	assert_int_equal(marks[3], MH_MARK_NEW);
	/* another folder's UID 3 is another message */
	assert_int_equal(mh_job_msg_marks(q, "j-inflight", 1, &msgs[2], 1, marks, &err), 0);
	assert_int_equal(marks[0], MH_MARK_NEW);
	rq_free(&q);
}

/* A target copy belongs to one source message: recorded APPENDUIDs claim theirs, a claim
 * takes the first free candidate, and asking again gives a message the copy it owns. */
static void test_claims_give_each_copy_one_owner(void **state)
{
	struct mh_msg_result m[1];
	struct rq *q = fresh_job(state, "j-claim", 4);
	struct mh_err err;
	uint32_t got;
	const uint32_t cands[] = {1000, 1001, 1002};

	results(m, 1, 1, MH_MSG_COPIED, NULL); /* source 1 -> target 1000 */
	assert_int_equal(mh_job_record_results(q, "j-claim", 0, 1, m, 1, NULL, &err), 0);
	assert_int_equal(mh_job_claim_target_uid(q, "j-claim", 0, 2, cands, 3, &got, &err), 0);
	assert_int_equal(got, 1001);
	assert_int_equal(mh_job_claim_target_uid(q, "j-claim", 0, 3, cands, 3, &got, &err), 0);
	assert_int_equal(got, 1002);
	assert_int_equal(mh_job_claim_target_uid(q, "j-claim", 0, 4, cands, 3, &got, &err), 0);
	assert_int_equal(got, 0); /* all taken: append it */
	assert_int_equal(mh_job_claim_target_uid(q, "j-claim", 0, 3, cands, 3, &got, &err), 0);
	assert_int_equal(got, 1002); /* its own, again (a settle that died before reporting) */
	assert_int_equal(mh_job_claim_target_uid(q, "j-claim", 1, 4, cands, 1, &got, &err), 0);
	assert_int_equal(got, 1000); /* claims are per folder */
	rq_free(&q);
}

static void test_unfail_takes_failures_out_of_the_counts(void **state)
{
	struct mh_msg_result m[6];
	struct mh_batch_msg again[3] = {{1, 100}, {2, 100}, {5, 100}};
	struct rq *q = fresh_job(state, "j-unfail", 6);
	struct mh_err err;
	struct mh_counts c;

	results(m, 3, 1, MH_MSG_FAILED, "OVER_QUOTA");
	results(m + 3, 3, 4, MH_MSG_COPIED, NULL);
	assert_int_equal(mh_job_record_results(q, "j-unfail", 0, 1, m, 6, NULL, &err), 0);
	/* uid 5 was copied: unfail leaves it alone */
	assert_int_equal(mh_job_unfail(q, "j-unfail", 0, again, 3, &err), 0);
	c = counts(q, "j-unfail");
	assert_true(c.failed == 1 && c.copied == 3);
	assert_false(mh_job_counts_complete(&c));
	rq_free(&q);
}

/* A sync tries again the failures whose error was transient; --retry-failed all. */
static void test_sync_retries_transient_failures_only(void **state)
{
	struct mh_msg_result m[3];
	struct rq *q = fresh_job(state, "j-sync-retry", 3);
	struct mh_err err;
	struct mh_counts c;
	size_t n = 0;

	results(m, 1, 1, MH_MSG_FAILED, "CONNECTION_LOST");
	results(m + 1, 1, 2, MH_MSG_FAILED, "OVER_QUOTA");
	results(m + 2, 1, 3, MH_MSG_COPIED, NULL);
	assert_int_equal(mh_job_record_results(q, "j-sync-retry", 0, 1, m, 3, NULL, &err), 0);
	assert_int_equal(mh_job_unfail_for_sync(q, "j-sync-retry", false, &n, &err), 0);
	assert_int_equal(n, 1);
	c = counts(q, "j-sync-retry");
	assert_true(c.failed == 1 && c.copied == 1);
	assert_int_equal(mh_job_unfail_for_sync(q, "j-sync-retry", true, &n, &err), 0);
	assert_int_equal(n, 1);
	c = counts(q, "j-sync-retry");
	assert_true(c.failed == 0 && c.copied == 1);
	rq_free(&q);
}

/* Copies are found by the target UID recorded with copied and skipped messages; a
 * deleted copy is forgotten (its message stays done) and counted once. */
static void test_target_uids_and_deleted_copies(void **state)
{
	struct mh_msg_result m[5];
	struct mh_batch_msg all[5] = {{1, 100}, {2, 100}, {3, 100}, {4, 100}, {5, 100}};
	enum mh_msg_mark marks[5];
	const uint32_t src[] = {1, 2, 3, 4, 5, 6};
	uint32_t dst[6];
	struct rq *q = fresh_job(state, "j-map", 5);
	struct mh_job_summary s;
	struct mh_err err;

	results(m, 2, 1, MH_MSG_COPIED, NULL);                  /* 1 -> 1000, 2 -> 1001 */
	m[2] = (struct mh_msg_result){.uid = 3, .status = MH_MSG_SKIPPED, .dst_uid = 77, .bytes = 100};
	m[3] = (struct mh_msg_result){.uid = 4, .status = MH_MSG_COPIED, .bytes = 100}; /* no UIDPLUS */
	results(m + 4, 1, 5, MH_MSG_FAILED, "OVER_QUOTA");
	assert_int_equal(mh_job_record_results(q, "j-map", 0, 1, m, 5, NULL, &err), 0);
	assert_int_equal(mh_job_target_uids(q, "j-map", 0, src, 6, dst, &err), 0);
	assert_true(dst[0] == 1000 && dst[1] == 1001 && dst[2] == 77 && dst[3] == 0 && dst[4] == 0 && dst[5] == 0);

	assert_int_equal(mh_job_copies_deleted(q, "j-map", 0, src, 3, &err), 0);
	assert_int_equal(mh_job_copies_deleted(q, "j-map", 0, src, 3, &err), 0); /* again: counted once */
	assert_int_equal(mh_job_target_uids(q, "j-map", 0, src, 3, dst, &err), 0);
	assert_true(dst[0] == 0 && dst[1] == 0 && dst[2] == 0);
	/* deleted copies are known to be gone; 4 (no UID), 5 (failed), 6 (no result) are unknown */
	{
		size_t unknown = 0;
		assert_int_equal(mh_job_copy_uids(q, "j-map", 0, src, 6, dst, &unknown, &err), 0);
		assert_int_equal(unknown, 3);
	}
	assert_int_equal(mh_job_count_flag_updates(q, "j-map", 0, 4, &err), 0);
	assert_int_equal(mh_job_load_summary(q, "j-map", 0, &s, &err), 0);
	assert_true(s.deleted == 3 && s.flags_updated == 4);
	mh_job_summary_cleanup(&s);
	/* deleted or not, they stay done: a sync never copies them again */
	assert_int_equal(mh_job_msg_marks(q, "j-map", 0, all, 5, marks, &err), 0);
	assert_true(marks[0] == MH_MARK_DONE && marks[1] == MH_MARK_DONE && marks[2] == MH_MARK_DONE);
	rq_free(&q);
}

static void test_sync_options_and_folder_state(void **state)
{
	struct rq *q = fresh_job(state, "j-opts", 1);
	struct mh_folder_sync in = {.modseq = 42, .opts = MH_SYNC_FLAGS, .messages = 7, .uids = "1:5,9"}, out;
	struct mh_err err;
	unsigned opts = 99;

	assert_int_equal(mh_job_sync_opts(q, "j-opts", &opts, &err), 0);
	assert_int_equal(opts, 0); /* off unless asked for */
	assert_int_equal(mh_job_set_sync_opts(q, "j-opts", MH_SYNC_FLAGS | MH_SYNC_DELETES, &err), 0);
	assert_int_equal(mh_job_sync_opts(q, "j-opts", &opts, &err), 0);
	assert_int_equal(opts, MH_SYNC_FLAGS | MH_SYNC_DELETES);
	assert_string_equal(mh_sync_opts_describe(opts), "flags, deletes");
	assert_int_equal(mh_sync_opts_from_spec(MH_JOB_PROPAGATE_DELETES | MH_JOB_SKIP_CHECK), MH_SYNC_DELETES);

	assert_int_equal(mh_job_folder_sync_load(q, "j-opts", 0, &out, &err), 0);
	assert_true(out.modseq == 0 && out.uids == NULL); /* nothing recorded */
	assert_int_equal(mh_job_folder_sync_store(q, "j-opts", 0, &in, &err), 0);
	in.uids = NULL; /* keeps the recorded set */
	in.modseq = 43;
	assert_int_equal(mh_job_folder_sync_store(q, "j-opts", 0, &in, &err), 0);
	assert_int_equal(mh_job_folder_sync_load(q, "j-opts", 0, &out, &err), 0);
	assert_true(out.modseq == 43 && out.opts == MH_SYNC_FLAGS && out.messages == 7);
	assert_string_equal(out.uids, "1:5,9");
	mh_folder_sync_cleanup(&out);
	rq_free(&q);
}

static enum mh_job_state state_of(struct rq *q, const char *job)
{
	enum mh_job_state st;
	struct mh_err err;

	assert_int_equal(mh_job_get_state(q, job, &st, &err), 0);
	return st;
}

static void test_pause_parks_and_resume_releases(void **state)
{
	struct rq *q = fresh_job(state, "j-pause", 1);
	struct mh_err err;
	struct redisReply *r;

	assert_int_equal(mh_job_park_batch(q, "j-pause", "b1", 2, &err), 0); /* running: not parked */
	assert_int_equal(mh_job_pause(q, "j-pause", &err), 1);
	assert_int_equal(state_of(q, "j-pause"), MH_JOB_PAUSED);
	assert_int_equal(mh_job_pause(q, "j-pause", &err), 0);
	assert_int_equal(mh_job_park_batch(q, "j-pause", "b1", 2, &err), 1);
	assert_int_equal(mh_job_park_batch(q, "j-pause", "b2", 2, &err), 1);
	assert_int_equal(mh_job_resume(q, "j-pause", &err), 1);
	assert_int_equal(state_of(q, "j-pause"), MH_JOB_RUNNING);
	r = rq_command(q, &err, "XLEN " MH_STREAM_BATCHES);
	assert_non_null(r);
	assert_int_equal(r->integer, 2);
	rq_reply_free(r);
	assert_int_equal(mh_job_resume(q, "j-pause", &err), 0);
	assert_int_equal(mh_job_cancel(q, "j-pause", &err), 1);
	assert_int_equal(state_of(q, "j-pause"), MH_JOB_CANCELLED);
	assert_int_equal(mh_job_pause(q, "j-pause", &err), 0);
	assert_int_equal(mh_job_reopen(q, "j-pause", &err), 0); /* cancelled stays cancelled */
	rq_free(&q);
}

static void test_retry_waits_until_due(void **state)
{
	struct rq *q = fresh_job(state, "j-retry", 2);
	struct mh_batch_msg msgs[2] = {{3, 10}, {4, 20}};
	struct mh_batch b = {.job_id = "j-retry", .batch_id = 9, .src_folder = "INBOX", .dst_folder = "INBOX",
			     .src_uidvalidity = 7, .attempt = 1, .count = 2, .msgs = msgs};
	struct mh_err err;

	assert_int_equal(mh_retry_schedule(q, &b, mh_now_ms() + 60000, &err), 0);
	assert_int_equal(mh_retry_release_due(q, 10, &err), 0);
	b.batch_id = 10;
	assert_int_equal(mh_retry_schedule(q, &b, mh_now_ms() - 1, &err), 0);
	assert_int_equal(mh_retry_release_due(q, 10, &err), 1);
	assert_int_equal(mh_retry_release_due(q, 10, &err), 0);
	rq_free(&q);
}

/* The record script says when the job is complete, and only a running (planned) job can
 * be: results that all come while planning is not over leave it to the planner. */
static void test_record_reports_completion(void **state)
{
	struct mh_msg_result m[4];
	struct rq *q = fresh_job(state, "j-complete", 4);
	char key[MH_KEY_MAX];
	struct mh_err err;
	bool complete = true;

	results(m, 4, 1, MH_MSG_COPIED, NULL);
	m[3].status = MH_MSG_FAILED;
	m[3].error = "OVER_QUOTA";
	assert_int_equal(mh_job_record_results(q, "j-complete", 0, 1, m, 2, &complete, &err), 0);
	assert_false(complete);
	assert_int_equal(mh_job_record_results(q, "j-complete", 0, 2, m + 2, 2, &complete, &err), 0);
	assert_true(complete);
	assert_int_equal(mh_job_record_results(q, "j-complete", 0, 2, m + 2, 2, &complete, &err), 0);
	assert_true(complete); /* a redelivered result says it again; finishing is idempotent */

	/* still planning: "messages" is not set yet, nothing is complete */
	q = (rq_free(&q), fresh_job(state, "j-planning", 2));
	mh_key_job(key, sizeof(key), "j-planning", NULL);
	rq_reply_free(rq_command(q, &err, "HSET %s state planning", key));
	rq_reply_free(rq_command(q, &err, "HDEL %s messages", key));
	assert_int_equal(mh_job_record_results(q, "j-planning", 0, 1, m, 2, &complete, &err), 0);
	assert_false(complete);
	/* planning ends: the planner finds it complete and finishes it */
	assert_int_equal(mh_job_set_plan(q, "j-planning", 1, 2, 200, 1, &err), 0);
	assert_int_equal(mh_job_planned(q, "j-planning", &err), 1);
	{
		enum mh_job_state final;
		struct mh_counts n;

		assert_int_equal(mh_job_finish(q, "j-planning", &final, &n, &err), 1);
		assert_int_equal(final, MH_JOB_DONE);
		assert_true(n.messages == 2 && n.copied == 2 && n.failed == 0);
	}
	rq_free(&q);
}

/* Finishing is one atomic step: the first caller finishes, the others find nothing to do. */
static void test_finish_once_and_only_when_complete(void **state)
{
	struct mh_msg_result m[3];
	struct rq *q = fresh_job(state, "j-finish", 3);
	struct redisReply *r;
	enum mh_job_state final = MH_JOB_RUNNING;
	struct mh_counts n;
	struct mh_err err;

	assert_int_equal(mh_job_finish(q, "j-finish", &final, &n, &err), 0); /* nothing yet */
	results(m, 3, 1, MH_MSG_COPIED, NULL);
	m[2].status = MH_MSG_FAILED;
	m[2].error = "MSG_TOO_BIG";
	assert_int_equal(mh_job_record_results(q, "j-finish", 0, 1, m, 3, NULL, &err), 0);
	assert_int_equal(mh_job_pause(q, "j-finish", &err), 1);
	assert_int_equal(mh_job_finish(q, "j-finish", &final, &n, &err), 0); /* paused */
	assert_int_equal(mh_job_resume(q, "j-finish", &err), 1);
	assert_int_equal(mh_job_finish(q, "j-finish", &final, &n, &err), 1);
	assert_int_equal(final, MH_JOB_PARTIAL);
	assert_true(n.copied == 2 && n.failed == 1 && n.messages == 3);
	assert_int_equal(mh_job_finish(q, "j-finish", &final, &n, &err), 0);
	assert_int_equal(state_of(q, "j-finish"), MH_JOB_PARTIAL);
	r = rq_command(q, &err, "SISMEMBER " MH_SET_ACTIVE " j-finish");
	assert_non_null(r);
	assert_int_equal(r->integer, 0);
	rq_reply_free(r);
	rq_free(&q);
}

/* A complete job asks once for its target to be counted; one pool takes that; a pool that
 * died with it in hand is replaced by the sweep; a requeue asks again. */
static void test_verification_before_finishing(void **state)
{
	struct mh_msg_result m[2];
	struct rq *q = fresh_job(state, "j-verify", 2);
	struct redisReply *r;
	struct mh_job_summary s;
	struct mh_err err;
	char **done;
	size_t ndone, requeued;

	assert_int_equal(mh_job_request_verify(q, "j-verify", &err), 0); /* not complete */
	results(m, 2, 1, MH_MSG_COPIED, NULL);
	assert_int_equal(mh_job_record_results(q, "j-verify", 0, 1, m, 2, NULL, &err), 0);
	assert_int_equal(mh_job_request_verify(q, "j-verify", &err), 1);
	assert_int_equal(mh_job_request_verify(q, "j-verify", &err), 0); /* asked already */
	r = rq_command(q, &err, "XRANGE " MH_STREAM_JOBS " - +");
	assert_non_null(r);
	assert_int_equal(r->elements, 1);
	assert_string_equal(r->element[0]->element[1]->element[1]->str, "verify:j-verify");
	rq_reply_free(r);

	assert_int_equal(mh_job_take_verify(q, "j-verify", "dead-pool/01", &err), 1);
	assert_int_equal(mh_job_take_verify(q, "j-verify", "other/02", &err), 0);
	/* its pool died: the sweep asks again */
	assert_int_equal(mh_job_sweep(q, "me", &done, &ndone, &requeued, &err), 0);
	mh_job_list_free(done, ndone);
	assert_int_equal(requeued, 1);
	assert_int_equal(mh_job_take_verify(q, "j-verify", "other/02", &err), 1);

	assert_int_equal(mh_job_folder_set_count(q, "j-verify", 0, "dst_before", 5, true, &err), 0);
	assert_int_equal(mh_job_folder_set_count(q, "j-verify", 0, "dst_before", 9, true, &err), 0); /* kept */
	assert_int_equal(mh_job_folder_set_count(q, "j-verify", 0, "dst_after", 7, false, &err), 0);
	assert_int_equal(mh_job_verified(q, "j-verify", NULL, &err), 0);
	assert_int_equal(mh_job_request_verify(q, "j-verify", &err), 2); /* finish now */
	assert_int_equal(mh_job_load_summary(q, "j-verify", 1, &s, &err), 0);
	assert_string_equal(s.verify, "done");
	assert_int_equal(s.folders[0].dst_before, 5);
	assert_int_equal(s.folders[0].dst_after, 7);
	mh_job_summary_cleanup(&s);

	/* a requeue counts again */
	assert_int_equal(mh_job_reopen(q, "j-verify", &err), 0); /* still running: nothing to reopen */
	r = rq_command(q, &err, "HSET mh:job:j-verify state partial");
	rq_reply_free(r);
	assert_int_equal(mh_job_reopen(q, "j-verify", &err), 1);
	assert_int_equal(mh_job_request_verify(q, "j-verify", &err), 1);
	rq_free(&q);
}

/* queued -> planning happens once however many planners try; a queued job planned again
 * after its planner died says so. */
static void test_start_planning_is_atomic(void **state)
{
	struct rq *q = fresh_job(state, "j-plan", 1);
	char key[MH_KEY_MAX];
	struct redisReply *r;
	struct mh_err err;

	mh_key_job(key, sizeof(key), "j-plan", NULL);
	rq_reply_free(rq_command(q, &err, "HSET %s state queued", key));
	assert_int_equal(mh_job_start_planning(q, "j-plan", "c1/aa", &err), 1);
	assert_int_equal(mh_job_start_planning(q, "j-plan", "c1/aa", &err), 0);
	assert_int_equal(mh_job_start_planning(q, "j-plan", "c2/bb", &err), 0);
	assert_int_equal(state_of(q, "j-plan"), MH_JOB_PLANNING);
	r = rq_command(q, &err, "HMGET %s planner started", key);
	assert_non_null(r);
	assert_string_equal(r->element[0]->str, "c1/aa");
	assert_int_equal(r->element[1]->type, REDIS_REPLY_STRING);
	rq_reply_free(r);
	/* paused while queued: not planned until resumed */
	rq_reply_free(rq_command(q, &err, "HSET %s state queued", key));
	assert_int_equal(mh_job_pause(q, "j-plan", &err), 1);
	assert_int_equal(mh_job_start_planning(q, "j-plan", "c1/aa", &err), 0);
	assert_int_equal(mh_job_resume(q, "j-plan", &err), 1);
	assert_int_equal(mh_job_start_planning(q, "j-plan", "c1/aa", &err), 1);
	rq_free(&q);
}

/* The sweep lists complete running jobs and queues again what a dead coordinator left
 * planning, but never what a live one (or the caller) is planning. */
static void test_sweep_finds_complete_and_orphaned_jobs(void **state)
{
	struct mh_msg_result m[2];
	struct rq *q = fresh_job(state, "j-sw-done", 2);
	const char *planning[] = {"j-sw-dead", "j-sw-live", "j-sw-mine"};
	const char *owners[] = {"c-dead/01", "c-live/02", "c-me/03"};
	char key[MH_KEY_MAX], **ids;
	size_t n, requeued;
	struct redisReply *r;
	struct mh_err err;

	results(m, 2, 1, MH_MSG_COPIED, NULL);
	assert_int_equal(mh_job_record_results(q, "j-sw-done", 0, 1, m, 2, NULL, &err), 0);
	for (int i = 0; i < 3; i++) {
		mh_key_job(key, sizeof(key), planning[i], NULL);
		rq_reply_free(rq_command(q, &err, "HSET %s state queued", key));
		rq_reply_free(rq_command(q, &err, "SADD " MH_SET_ACTIVE " %s", planning[i]));
		assert_int_equal(mh_job_start_planning(q, planning[i], owners[i], &err), 1);
	}
	assert_int_equal(mh_planner_alive(q, "c-live/02", 10000, &err), 0);
	assert_int_equal(mh_job_sweep(q, "c-me/03", &ids, &n, &requeued, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "j-sw-done");
	assert_int_equal(requeued, 1);
	mh_job_list_free(ids, n);
	assert_int_equal(state_of(q, "j-sw-dead"), MH_JOB_QUEUED);
	assert_int_equal(state_of(q, "j-sw-live"), MH_JOB_PLANNING);
	assert_int_equal(state_of(q, "j-sw-mine"), MH_JOB_PLANNING);
	r = rq_command(q, &err, "XRANGE " MH_STREAM_JOBS " - +");
	assert_non_null(r);
	assert_int_equal(r->elements, 1);
	assert_string_equal(r->element[0]->element[1]->element[1]->str, "j-sw-dead");
	rq_reply_free(r);
	/* planned again, knowing it */
	assert_int_equal(mh_job_start_planning(q, "j-sw-dead", "c-me/03", &err), 2);
	/* a coordinator that says it is gone is gone */
	assert_int_equal(mh_planner_gone(q, "c-live/02", &err), 0);
	assert_int_equal(mh_job_sweep(q, "c-me/03", &ids, &n, &requeued, &err), 0);
	assert_int_equal(requeued, 1);
	mh_job_list_free(ids, n);
	assert_int_equal(state_of(q, "j-sw-live"), MH_JOB_QUEUED);
	rq_free(&q);
}

/* A plan cut short by Redis trouble goes back to queued, and is submitted again by the
 * sweep once its delay is over; only its own planner can do that. */
static void test_plan_later_waits_for_the_sweep(void **state)
{
	struct rq *q = fresh_job(state, "j-later", 1);
	char key[MH_KEY_MAX], **ids;
	size_t n, requeued;
	struct mh_err err;

	mh_key_job(key, sizeof(key), "j-later", NULL);
	rq_reply_free(rq_command(q, &err, "HSET %s state queued", key));
	assert_int_equal(mh_job_start_planning(q, "j-later", "c-a/01", &err), 1);
	assert_int_equal(mh_job_plan_later(q, "j-later", "c-b/02", 0, &err), 0); /* not its plan */
	assert_int_equal(mh_job_plan_later(q, "j-later", "c-a/01", 60000, &err), 1);
	assert_int_equal(state_of(q, "j-later"), MH_JOB_QUEUED);
	assert_int_equal(mh_job_sweep(q, "c-a/01", &ids, &n, &requeued, &err), 0);
	mh_job_list_free(ids, n);
	assert_int_equal(requeued, 0); /* not yet */
	rq_reply_free(rq_command(q, &err, "HSET %s replan_at 1", key));
	assert_int_equal(mh_job_sweep(q, "c-a/01", &ids, &n, &requeued, &err), 0);
	mh_job_list_free(ids, n);
	assert_int_equal(requeued, 1);
	assert_int_equal(mh_job_sweep(q, "c-a/01", &ids, &n, &requeued, &err), 0);
	mh_job_list_free(ids, n);
	assert_int_equal(requeued, 0); /* submitted once */
	assert_int_equal(mh_job_start_planning(q, "j-later", "c-a/01", &err), 2);
	rq_free(&q);
}

static void test_batch_size_adapts_within_bounds(void **state)
{
	struct rq *q = fresh_job(state, "j-adapt", 1);
	char server[MH_KEY_MAX];
	struct mh_err err;
	unsigned size;

	mh_key_server(server, sizeof(server), "mail.example", 993);
	assert_int_equal(mh_batch_size_get(q, server, 100, 500, &size, &err), 0);
	assert_int_equal(size, 100); /* nothing learnt yet: the start size */
	assert_int_equal(mh_batch_size_observe(q, server, 1, 100, 500, &err), 0);
	assert_int_equal(mh_batch_size_get(q, server, 100, 500, &size, &err), 0);
	assert_int_equal(size, 125);
	for (int i = 0; i < 20; i++)
		mh_batch_size_observe(q, server, 1, 100, 500, &err);
	assert_int_equal(mh_batch_size_get(q, server, 100, 500, &size, &err), 0);
	assert_int_equal(size, 500); /* never above the maximum */
	assert_int_equal(mh_batch_size_observe(q, server, -1, 100, 500, &err), 0);
	assert_int_equal(mh_batch_size_get(q, server, 100, 500, &size, &err), 0);
	assert_int_equal(size, 250);
	for (int i = 0; i < 20; i++)
		mh_batch_size_observe(q, server, -1, 100, 500, &err);
	assert_int_equal(mh_batch_size_get(q, server, 100, 500, &size, &err), 0);
	assert_int_equal(size, MH_BATCH_MIN); /* never below the minimum */
	assert_int_equal(mh_batch_size_get(q, server, 100, 5, &size, &err), 0);
	assert_int_equal(size, 5); /* a configured maximum below the minimum still wins */
	rq_free(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_many_results_counts_each_once),
		cmocka_unit_test(test_results_of_a_forgotten_job_leave_no_keys),
		cmocka_unit_test(test_verification_before_finishing),
		cmocka_unit_test(test_success_replaces_failure_but_not_the_reverse),
		cmocka_unit_test(test_inflight_marks_follow_the_results),
		cmocka_unit_test(test_claims_give_each_copy_one_owner),
		cmocka_unit_test(test_unfail_takes_failures_out_of_the_counts),
		cmocka_unit_test(test_sync_retries_transient_failures_only),
		cmocka_unit_test(test_target_uids_and_deleted_copies),
		cmocka_unit_test(test_sync_options_and_folder_state),
		cmocka_unit_test(test_pause_parks_and_resume_releases),
		cmocka_unit_test(test_retry_waits_until_due),
		cmocka_unit_test(test_batch_size_adapts_within_bounds),
		cmocka_unit_test(test_record_reports_completion),
		cmocka_unit_test(test_finish_once_and_only_when_complete),
		cmocka_unit_test(test_start_planning_is_atomic),
		cmocka_unit_test(test_sweep_finds_complete_and_orphaned_jobs),
		cmocka_unit_test(test_plan_later_waits_for_the_sweep),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
