/* test_limit.c - fleet-wide connection limits (common/limit.c) against a real redis-server.
 *
 * The group starts a private redis-server (tests/unit/redis_fixture.h) and every test starts
 * from an empty database. Without redis-server every test is skipped with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include <hiredis.h>

#include "limit.h"
#include "redis_fixture.h"
#include "rq.h"

static int group_setup(void **state)
{
	return redis_fixture_group_start(state, "limits");
}

static int group_teardown(void **state)
{
	return redis_fixture_group_stop(state);
}

static struct rq *connect_ok(const struct redis_fixture *f)
{
	struct mh_err err;
	struct rq *q = rq_connect(f->url, 5000, &err);

	if (q == NULL)
		fail_msg("rq_connect: %s", err.detail);
	return q;
}

/* Each test starts from an empty database. */
static int test_setup(void **state)
{
	struct redis_fixture *f = *state;
	struct mh_err err;
	struct rq *q;
	redisReply *r;

	if (f->missing)
		return 0;
	q = rq_connect(f->url, 5000, &err);
	if (q == NULL)
		return -1;
	r = rq_command(q, &err, "FLUSHALL");
	rq_reply_free(r);
	rq_free(&q);
	return r == NULL ? -1 : 0;
}

static long long int_cmd(struct rq *q, const char *cmd, const char *key)
{
	struct mh_err err;
	redisReply *r = rq_command(q, &err, "%s %s", cmd, key);
	long long v;

	if (r == NULL)
		fail_msg("%s: %s", cmd, err.detail);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	rq_reply_free(r);
	return v;
}

static void holder_name(char *buf, size_t len, const char *tag, int n)
{
	snprintf(buf, len, "test-%s-%d", tag, n);
}

static void acquire_ok(struct rq *q, const struct mh_limit_target *t, const char *holder,
		       unsigned ttl_ms, struct mh_lease *lease)
{
	struct mh_err err;
	unsigned retry = 12345;
	int rc = mh_limit_try_acquire(q, t, holder, ttl_ms, lease, &retry, &err);

	if (rc < 0)
		fail_msg("acquire %s: %s", holder, err.detail);
	if (rc != 1)
		fail_msg("acquire %s was refused", holder);
	assert_true(lease->held);
	assert_int_equal(retry, 0);
}

/* Expects a refusal; returns the retry hint. */
static unsigned acquire_refused(struct rq *q, const struct mh_limit_target *t, const char *holder,
				unsigned ttl_ms)
{
	struct mh_lease lease;
	struct mh_err err;
	unsigned retry = 0;
	int rc = mh_limit_try_acquire(q, t, holder, ttl_ms, &lease, &retry, &err);

	if (rc < 0)
		fail_msg("acquire %s: %s", holder, err.detail);
	if (rc != 0)
		fail_msg("acquire %s succeeded beyond the limit", holder);
	assert_false(lease.held);
	assert_true(retry > 0);
	return retry;
}

static void count_is(struct rq *q, const struct mh_limit_target *t, unsigned account,
		     unsigned host)
{
	struct mh_err err;
	unsigned a = 999, h = 999;

	if (mh_limit_count(q, t, &a, &h, &err) < 0)
		fail_msg("count: %s", err.detail);
	assert_int_equal(a, account);
	assert_int_equal(h, host);
}

static void release_ok(struct rq *q, struct mh_lease *lease)
{
	struct mh_err err;

	if (mh_limit_release(q, lease, &err) < 0)
		fail_msg("release: %s", err.detail);
	assert_false(lease->held);
}

/* ------------------------------------------------------------------------------------- */

static void test_account_max(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"imap", "mail.example.org", 143, "alice", 3, 0};
	struct mh_lease lease[3];
	char holder[32];
	unsigned retry;

	for (int i = 0; i < 3; i++) {
		holder_name(holder, sizeof(holder), "acct", i);
		acquire_ok(q, &t, holder, 5000, &lease[i]);
		assert_string_equal(lease[i].holder, holder);
		count_is(q, &t, (unsigned)i + 1, (unsigned)i + 1);
	}
	retry = acquire_refused(q, &t, "test-acct-3", 5000);
	assert_true(retry <= 5000);
	count_is(q, &t, 3, 3);

	/* default account max is 4 */
	t.user = "bob";
	t.account_max = 0;
	for (int i = 0; i < 4; i++) {
		struct mh_lease l;

		holder_name(holder, sizeof(holder), "bob", i);
		acquire_ok(q, &t, holder, 5000, &l);
	}
	acquire_refused(q, &t, "test-bob-4", 5000);
	count_is(q, &t, 4, 7);
	for (int i = 0; i < 3; i++)
		release_ok(q, &lease[i]);
	rq_free(&q);
}

static void test_host_max_across_accounts(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"imap", "mail.example.org", 993, NULL, 0, 3};
	static const char *const users[] = {"u1", "u2", "u3", "u4"};
	struct mh_lease lease;
	char holder[32];

	for (int i = 0; i < 3; i++) {
		t.user = users[i];
		holder_name(holder, sizeof(holder), "host", i);
		acquire_ok(q, &t, holder, 5000, &lease);
		count_is(q, &t, 1, (unsigned)i + 1);
	}
	/* a new account, and a second connection to an account with room: both wait */
	t.user = users[3];
	acquire_refused(q, &t, "test-host-3", 5000);
	t.user = users[0];
	acquire_refused(q, &t, "test-host-4", 5000);
	count_is(q, &t, 1, 3);

	/* another port of the same host is another counter */
	t.port = 143;
	acquire_ok(q, &t, "test-host-5", 5000, &lease);
	count_is(q, &t, 1, 1);
	rq_free(&q);
}

static void test_all_or_nothing(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"imap", "mx.example.net", 143, "carol", 2, 2};
	struct mh_lease a, b, c;

	t.user = "a";
	acquire_ok(q, &t, "test-aon-a", 5000, &a);
	t.user = "b";
	acquire_ok(q, &t, "test-aon-b", 5000, &b);

	/* carol's account has room but the host is full: nothing may be added for carol */
	t.user = "carol";
	acquire_refused(q, &t, "test-aon-c", 5000);
	count_is(q, &t, 0, 2);
	assert_int_equal(mh_limit_try_acquire(q, &t, "test-aon-c", 5000, &c, NULL, NULL), 0);
	assert_int_equal(int_cmd(q, "EXISTS", c.account_key), 0);
	assert_int_equal(int_cmd(q, "ZCARD", c.host_key), 2);

	/* the other way round: the account is full, its host has room -> host untouched */
	t.host = "other.example.net";
	t.user = "dan";
	t.account_max = 1;
	t.host_max = 10;
	acquire_ok(q, &t, "test-aon-d1", 5000, &c);
	acquire_refused(q, &t, "test-aon-d2", 5000);
	count_is(q, &t, 1, 1);
	assert_int_equal(int_cmd(q, "ZCARD", c.host_key), 1);
	rq_free(&q);
}

static void test_release_frees_slot(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"imap", "mail.example.org", 143, "dave", 1, 0};
	struct mh_lease one, two;
	struct mh_err err;

	acquire_ok(q, &t, "test-rel-1", 60000, &one);
	acquire_refused(q, &t, "test-rel-2", 60000);
	release_ok(q, &one);
	count_is(q, &t, 0, 0);
	acquire_ok(q, &t, "test-rel-2", 60000, &two);
	count_is(q, &t, 1, 1);
	/* releasing again, or a lease never held, is harmless and frees nothing */
	assert_int_equal(mh_limit_release(q, &one, &err), 0);
	assert_int_equal(mh_limit_release(q, NULL, &err), 0);
	count_is(q, &t, 1, 1);
	release_ok(q, &two);
	/* the last release removes the keys */
	assert_int_equal(int_cmd(q, "EXISTS", two.account_key), 0);
	assert_int_equal(int_cmd(q, "EXISTS", two.host_key), 0);
	rq_free(&q);
}

static void test_expiry_frees_slot(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"imap", "mail.example.org", 143, "erin", 2, 0};
	struct mh_lease a, b, c;
	long long pttl;
	unsigned retry;

	acquire_ok(q, &t, "test-exp-1", 200, &a);
	acquire_ok(q, &t, "test-exp-2", 200, &b);
	retry = acquire_refused(q, &t, "test-exp-3", 200);
	assert_true(retry <= 200);
	/* idle keys vanish with their last lease */
	pttl = int_cmd(q, "PTTL", a.account_key);
	assert_true(pttl > 0 && pttl <= 200);
	pttl = int_cmd(q, "PTTL", a.host_key);
	assert_true(pttl > 0 && pttl <= 200);

	redis_fixture_sleep_ms(retry + 50);
	count_is(q, &t, 0, 0);
	assert_int_equal(int_cmd(q, "EXISTS", a.account_key), 0);
	assert_int_equal(int_cmd(q, "EXISTS", a.host_key), 0);
	acquire_ok(q, &t, "test-exp-3", 200, &c);
	count_is(q, &t, 1, 1);

	/* an expired member still in the set (its key kept alive by a longer lease) does not
	 * count and is swept by the next acquire */
	acquire_ok(q, &t, "test-exp-4", 5000, &a);
	redis_fixture_sleep_ms(300);
	assert_int_equal(int_cmd(q, "ZCARD", a.account_key), 2);
	count_is(q, &t, 1, 1);
	acquire_ok(q, &t, "test-exp-5", 5000, &b);
	assert_int_equal(int_cmd(q, "ZCARD", a.account_key), 2);
	count_is(q, &t, 2, 2);
	/* the key lives as long as its longest lease */
	pttl = int_cmd(q, "PTTL", a.account_key);
	assert_true(pttl > 4000 && pttl <= 5000);
	rq_free(&q);
}

static void test_refresh_keeps_alive(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"imap", "mail.example.org", 143, "frank", 1, 0};
	struct mh_lease lease;
	struct mh_err err;
	long long end;

	acquire_ok(q, &t, "test-ref-1", 200, &lease);
	end = redis_fixture_now_ms() + 700;
	while (redis_fixture_now_ms() < end) {
		redis_fixture_sleep_ms(60);
		if (mh_limit_refresh(q, &lease, 200, &err) < 0)
			fail_msg("refresh: %s", err.detail);
		assert_true(lease.held);
	}
	/* well past the first TTL, still held */
	count_is(q, &t, 1, 1);
	acquire_refused(q, &t, "test-ref-2", 200);

	/* a refresh may also lengthen the lease, and the keys' expiry follows */
	assert_int_equal(mh_limit_refresh(q, &lease, 10000, &err), 0);
	assert_true(int_cmd(q, "PTTL", lease.account_key) > 9000);
	assert_true(int_cmd(q, "PTTL", lease.host_key) > 9000);
	release_ok(q, &lease);
	rq_free(&q);
}

static void test_refresh_lapsed_fails(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"imap", "mail.example.org", 143, "grace", 1, 0};
	struct mh_lease mine, theirs, alone;
	struct mh_err err;

	/* lapsed, and the slot went to someone else */
	acquire_ok(q, &t, "test-lap-1", 150, &mine);
	redis_fixture_sleep_ms(250);
	acquire_ok(q, &t, "test-lap-2", 5000, &theirs);
	mh_err_clear(&err);
	assert_int_equal(mh_limit_refresh(q, &mine, 5000, &err), -1);
	assert_int_equal(err.code, MH_E_CONNECTION_LOST);
	assert_non_null(strstr(err.detail, "lapsed"));
	assert_false(mine.held);
	/* the failed refresh did not disturb the new holder */
	count_is(q, &t, 1, 1);
	assert_int_equal(mh_limit_refresh(q, &theirs, 5000, &err), 0);
	/* a lease no longer held cannot be refreshed, and releasing it frees nothing */
	assert_int_equal(mh_limit_refresh(q, &mine, 5000, &err), -1);
	assert_int_equal(err.code, MH_E_INTERNAL);
	assert_int_equal(mh_limit_release(q, &mine, &err), 0);
	count_is(q, &t, 1, 1);
	release_ok(q, &theirs);

	/* lapsed with nobody waiting: still refused, and nothing is left behind */
	t.user = "heidi";
	acquire_ok(q, &t, "test-lap-3", 100, &alone);
	t.user = "ivy"; /* another account on the host keeps the host key alive */
	acquire_ok(q, &t, "test-lap-4", 5000, &mine);
	redis_fixture_sleep_ms(200);
	assert_int_equal(mh_limit_refresh(q, &alone, 5000, &err), -1);
	assert_int_equal(err.code, MH_E_CONNECTION_LOST);
	assert_int_equal(int_cmd(q, "EXISTS", alone.account_key), 0);
	assert_int_equal(int_cmd(q, "ZCARD", alone.host_key), 1);

	/* lapsed but not swept yet (a longer lease keeps the keys alive): still lapsed */
	t.user = "judy";
	t.account_max = 2;
	acquire_ok(q, &t, "test-lap-5", 100, &alone);
	acquire_ok(q, &t, "test-lap-6", 5000, &theirs);
	redis_fixture_sleep_ms(200);
	assert_int_equal(int_cmd(q, "ZCARD", alone.account_key), 2);
	assert_int_equal(mh_limit_refresh(q, &alone, 5000, &err), -1);
	assert_int_equal(err.code, MH_E_CONNECTION_LOST);
	assert_int_equal(int_cmd(q, "ZCARD", alone.account_key), 1);
	count_is(q, &t, 1, 2);
	rq_free(&q);
}

static void test_reacquire_same_holder(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"imap", "mail.example.org", 143, "ivan", 2, 0};
	struct mh_lease a, b;

	/* e.g. a retry after a lost reply: the holder keeps one slot */
	acquire_ok(q, &t, "test-again", 5000, &a);
	acquire_ok(q, &t, "test-again", 5000, &b);
	count_is(q, &t, 1, 1);
	acquire_ok(q, &t, "test-other", 5000, &b);
	acquire_refused(q, &t, "test-third", 5000);
	/* full, yet the current holders may still re-acquire */
	acquire_ok(q, &t, "test-again", 5000, &a);
	count_is(q, &t, 2, 2);
	rq_free(&q);
}

/* ------------------------------------------------------------------------------------- */

#define HAMMER_THREADS 8
#define HAMMER_MAX 3
#define HAMMER_MS 1500

struct hammer_shared {
	const char *url;
	const struct mh_limit_target *t;
	atomic_int inside;     /* connections "open" right now */
	atomic_int peak;
	atomic_int violations; /* times inside went above HAMMER_MAX */
};

struct hammer {
	struct hammer_shared *sh;
	int id;
	int acquired, refused, errors;
	char last_err[MH_ERR_DETAIL_MAX];
};

/* No cmocka assertions here (not thread-safe): results go into the struct. */
static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	struct hammer_shared *sh = h->sh;
	struct mh_err err;
	struct rq *q = rq_connect(sh->url, 5000, &err);
	long long end = redis_fixture_now_ms() + HAMMER_MS;

	if (q == NULL) {
		h->errors++;
		snprintf(h->last_err, sizeof(h->last_err), "%s", err.detail);
		return NULL;
	}
	for (int n = 0; redis_fixture_now_ms() < end; n++) {
		struct mh_lease lease;
		char holder[48];
		unsigned retry;
		int rc, now, peak;

		snprintf(holder, sizeof(holder), "hammer-%d-%d", h->id, n);
		rc = mh_limit_try_acquire(q, sh->t, holder, 10000, &lease, &retry, &err);
		if (rc < 0) {
			h->errors++;
			snprintf(h->last_err, sizeof(h->last_err), "%s", err.detail);
			continue;
		}
		if (rc == 0) {
			h->refused++;
			continue;
		}
		h->acquired++;
		now = atomic_fetch_add(&sh->inside, 1) + 1;
		if (now > HAMMER_MAX)
			atomic_fetch_add(&sh->violations, 1);
		peak = atomic_load(&sh->peak);
		while (now > peak && !atomic_compare_exchange_weak(&sh->peak, &peak, now))
			;
		redis_fixture_sleep_ms(1);
		atomic_fetch_sub(&sh->inside, 1);
		if (mh_limit_release(q, &lease, &err) < 0) {
			h->errors++;
			snprintf(h->last_err, sizeof(h->last_err), "%s", err.detail);
		}
	}
	rq_free(&q);
	return NULL;
}

static void test_concurrent_acquire_release(void **state)
{
	struct redis_fixture *f = redis_fixture_need(state);
	struct mh_limit_target t = {"imap", "busy.example.org", 143, "judy", HAMMER_MAX, 0};
	struct hammer_shared sh = {.url = f->url, .t = &t};
	struct hammer h[HAMMER_THREADS];
	pthread_t tid[HAMMER_THREADS];
	int acquired = 0, refused = 0;
	struct rq *q;

	atomic_init(&sh.inside, 0);
	atomic_init(&sh.peak, 0);
	atomic_init(&sh.violations, 0);
	for (int i = 0; i < HAMMER_THREADS; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		h[i].sh = &sh;
		h[i].id = i;
		assert_int_equal(pthread_create(&tid[i], NULL, hammer_run, &h[i]), 0);
	}
	for (int i = 0; i < HAMMER_THREADS; i++) {
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		if (h[i].errors != 0)
			fail_msg("thread %d: %d errors, last: %s", i, h[i].errors, h[i].last_err);
		assert_true(h[i].acquired > 0);
		acquired += h[i].acquired;
		refused += h[i].refused;
	}
	print_message("%d acquired, %d refused, peak %d holders\n", acquired, refused,
		      atomic_load(&sh.peak));
	assert_int_equal(atomic_load(&sh.violations), 0);
	assert_true(atomic_load(&sh.peak) <= HAMMER_MAX);
	assert_true(atomic_load(&sh.peak) >= 2); /* there was contention at all */
	assert_true(refused > 0);
	q = connect_ok(f);
	count_is(q, &t, 0, 0);
	rq_free(&q);
}

/* ------------------------------------------------------------------------------------- */

static bool any_key_contains(struct rq *q, const char *needle, int *nkeys_r)
{
	char cursor[32] = "0";
	bool found = false;

	*nkeys_r = 0;
	do {
		struct mh_err err;
		redisReply *r = rq_command(q, &err, "SCAN %s COUNT 100", cursor);

		if (r == NULL)
			fail_msg("SCAN: %s", err.detail);
		assert_int_equal(r->type, REDIS_REPLY_ARRAY);
		assert_int_equal(r->elements, 2);
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			const redisReply *k = r->element[1]->element[i];

			(*nkeys_r)++;
			if (memmem(k->str, k->len, needle, strlen(needle)) != NULL)
				found = true;
		}
		rq_reply_free(r);
	} while (strcmp(cursor, "0") != 0);
	return found;
}

static void test_user_not_in_keys(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"IMAP", "Mail.Example.ORG", 143, "alice.secret@example.com", 0, 0};
	struct mh_lease a, b;
	const char *hex;
	int nkeys;

	acquire_ok(q, &t, "test-keys-1", 5000, &a);
	assert_int_equal(strncmp(a.account_key, "mh:limit:acct:", 14), 0);
	hex = a.account_key + 14;
	assert_int_equal(strlen(hex), 64);
	assert_int_equal(strspn(hex, "0123456789abcdef"), 64);
	/* proto and host are lowercased; the port is part of the host counter */
	assert_string_equal(a.host_key, "mh:limit:host:imap:mail.example.org:143");

	/* same account written differently: same counters */
	t.proto = "imap";
	t.host = "mail.example.org";
	acquire_ok(q, &t, "test-keys-2", 5000, &b);
	assert_string_equal(b.account_key, a.account_key);
	assert_string_equal(b.host_key, a.host_key);
	count_is(q, &t, 2, 2);

	/* user names are case-sensitive on many servers: another account */
	t.user = "Alice.Secret@example.com";
	acquire_ok(q, &t, "test-keys-3", 5000, &b);
	assert_string_not_equal(b.account_key, a.account_key);
	/* another port: another account and another host counter */
	t.user = "alice.secret@example.com";
	t.port = 993;
	acquire_ok(q, &t, "test-keys-4", 5000, &b);
	assert_string_not_equal(b.account_key, a.account_key);
	assert_string_equal(b.host_key, "mh:limit:host:imap:mail.example.org:993");

	assert_false(any_key_contains(q, "alice", &nkeys));
	assert_false(any_key_contains(q, "Alice", &nkeys));
	assert_false(any_key_contains(q, "secret", &nkeys));
	assert_false(any_key_contains(q, "Secret", &nkeys));
	assert_int_equal(nkeys, 5); /* 3 accounts, 2 hosts */
	assert_true(any_key_contains(q, "mail.example.org", &nkeys));
	rq_free(&q);
}

static void test_bad_arguments(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target good = {"imap", "mail.example.org", 143, "kim", 0, 0};
	struct mh_limit_target t;
	struct mh_lease lease;
	struct mh_err err;
	char long_host[300], long_holder[100];
	unsigned retry = 7;

	memset(long_host, 'h', sizeof(long_host) - 1);
	long_host[sizeof(long_host) - 1] = '\0';
	memset(long_holder, 'w', sizeof(long_holder) - 1);
	long_holder[sizeof(long_holder) - 1] = '\0';

#define EXPECT_BAD(target, holder, want)                                                  \
	do {                                                                                   \
		mh_err_clear(&err);                                                            \
		lease.held = true;                                                             \
		assert_int_equal(mh_limit_try_acquire(q, target, holder, 1000, &lease, &retry, \
						      &err),                                   \
				 -1);                                                          \
		assert_int_equal(err.code, want);                                              \
		assert_false(lease.held);                                                      \
		assert_int_equal(retry, 0);                                                    \
	} while (0)

	EXPECT_BAD(NULL, "h", MH_E_INTERNAL);
	EXPECT_BAD(&good, NULL, MH_E_INTERNAL);
	EXPECT_BAD(&good, "", MH_E_INTERNAL);
	EXPECT_BAD(&good, long_holder, MH_E_INTERNAL);
	t = good, t.host = NULL;
	EXPECT_BAD(&t, "h", MH_E_INTERNAL);
	t = good, t.user = "";
	EXPECT_BAD(&t, "h", MH_E_BAD_URL);
	t = good, t.host = "";
	EXPECT_BAD(&t, "h", MH_E_BAD_URL);
	t = good, t.host = long_host;
	EXPECT_BAD(&t, "h", MH_E_BAD_URL);
	t = good, t.host = "mail example";
	EXPECT_BAD(&t, "h", MH_E_BAD_URL);
	t = good, t.host = "mail\r\nexample";
	EXPECT_BAD(&t, "h", MH_E_BAD_URL);
	t = good, t.proto = "im:ap";
	EXPECT_BAD(&t, "h", MH_E_BAD_URL);
	t = good, t.proto = "";
	EXPECT_BAD(&t, "h", MH_E_BAD_URL);
	t = good, t.port = 0;
	EXPECT_BAD(&t, "h", MH_E_BAD_URL);
#undef EXPECT_BAD
	assert_int_equal(mh_limit_try_acquire(q, &good, "h", 1000, NULL, NULL, &err), -1);
	assert_int_equal(mh_limit_count(q, NULL, NULL, NULL, &err), -1);
	t = good, t.port = 0;
	assert_int_equal(mh_limit_count(q, &t, NULL, NULL, &err), -1);

	/* a maximal IPv6 literal fits, and nothing was written by the refusals */
	t = good, t.host = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
	acquire_ok(q, &t, "test-bad-ok", 1000, &lease);
	release_ok(q, &lease);
	count_is(q, &good, 0, 0);
	rq_free(&q);
}

static void test_redis_errors(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"imap", "broken.example.org", 143, "leo", 0, 0};
	struct mh_lease lease, held;
	struct mh_err err;
	redisReply *r;
	unsigned a, h;

	/* a host key that is not a sorted set makes the script fail */
	acquire_ok(q, &t, "test-err-1", 5000, &held);
	r = rq_command(q, &err, "SET %s %s", held.host_key, "not a zset");
	assert_non_null(r);
	rq_reply_free(r);

	mh_err_clear(&err);
	assert_int_equal(mh_limit_try_acquire(q, &t, "test-err-2", 5000, &lease, NULL, &err), -1);
	assert_int_equal(err.code, MH_E_REDIS);
	assert_non_null(strstr(err.detail, "WRONGTYPE"));
	assert_false(lease.held);

	mh_err_clear(&err);
	assert_int_equal(mh_limit_refresh(q, &held, 5000, &err), -1);
	assert_int_equal(err.code, MH_E_REDIS);
	assert_true(held.held); /* a Redis error is not a lapse: try again */

	assert_int_equal(mh_limit_count(q, &t, &a, &h, &err), -1);
	assert_int_equal(err.code, MH_E_REDIS);
	assert_int_equal(mh_limit_release(q, &held, &err), -1);
	assert_int_equal(err.code, MH_E_REDIS);
	assert_false(held.held);
	rq_free(&q);
}

static void test_count_unknown_target(void **state)
{
	struct rq *q = connect_ok(redis_fixture_need(state));
	struct mh_limit_target t = {"imap", "nobody.example.org", 143, "mallory", 0, 0};
	struct mh_err err;
	unsigned a = 9;

	count_is(q, &t, 0, 0);
	assert_int_equal(mh_limit_count(q, &t, &a, NULL, &err), 0);
	assert_int_equal(a, 0);
	rq_free(&q);
}

#define LIMIT_TEST(f) cmocka_unit_test_setup(f, test_setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
		LIMIT_TEST(test_account_max),
		LIMIT_TEST(test_host_max_across_accounts),
		LIMIT_TEST(test_all_or_nothing),
		LIMIT_TEST(test_release_frees_slot),
		LIMIT_TEST(test_expiry_frees_slot),
		LIMIT_TEST(test_refresh_keeps_alive),
		LIMIT_TEST(test_refresh_lapsed_fails),
		LIMIT_TEST(test_reacquire_same_holder),
		LIMIT_TEST(test_concurrent_acquire_release),
		LIMIT_TEST(test_user_not_in_keys),
		LIMIT_TEST(test_bad_arguments),
		LIMIT_TEST(test_redis_errors),
		LIMIT_TEST(test_count_unknown_target),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("limits", tests, group_setup, group_teardown);
}
