/* test_rq.c - Redis helpers (common/rq.c) against a real redis-server.
 *
 * Each group starts its own private redis-server (fork/exec, temp dir, no persistence)
 * in its setup and stops it by PID in its teardown: one group over a unix socket with
 * ?db=2, one over TCP on a free port with a password (percent-encoded in the URL) and
 * /3. Without redis-server every test is skipped with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>

#include "rq.h"

#define TCP_PASSWORD "p@ss word"
#define TCP_PASSWORD_URL "p%40ss%20word"

struct server {
	bool missing; /* redis-server is not installed */
	bool tcp;
	pid_t pid;
	int port;
	char dir[64];
	char sock[128];
	char url[256];
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[512];

	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path != '\0') {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (access(buf, X_OK) == 0)
			return true;
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

/* Binds 127.0.0.1:0 to learn a port the kernel considers free. */
static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Any reply at all (even NOAUTH) means the server is up. */
static bool server_answers(const struct server *s)
{
	struct timeval tv = {0, 200000};
	redisContext *c = s->tcp ? redisConnectWithTimeout("127.0.0.1", s->port, tv)
				 : redisConnectUnixWithTimeout(s->sock, tv);
	redisReply *r = NULL;

	if (c != NULL && c->err == 0)
		r = redisCommand(c, "PING");
	if (r != NULL)
		freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
	return r != NULL;
}

static int server_start(void **state, bool tcp)
{
	struct server *s = calloc(1, sizeof(*s));
	char port_s[16], log[160];
	long long deadline;

	*state = s;
	s->tcp = tcp;
	if (!in_path("redis-server")) {
		s->missing = true;
		return 0;
	}
	strcpy(s->dir, "/tmp/mh-test-rq-XXXXXX");
	if (mkdtemp(s->dir) == NULL)
		return -1;
	snprintf(s->sock, sizeof(s->sock), "%s/redis.sock", s->dir);
	snprintf(log, sizeof(log), "%s/redis.log", s->dir);
	s->port = tcp ? free_port() : 0;
	if (s->port < 0)
		return -1;
	snprintf(port_s, sizeof(port_s), "%d", s->port);
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (tcp)
			execlp("redis-server", "redis-server", "--port", port_s, "--bind", "127.0.0.1",
			       "--requirepass", TCP_PASSWORD, "--save", "", "--appendonly", "no",
			       "--dir", s->dir, "--daemonize", "no", (char *)NULL);
		else
			execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", s->sock,
			       "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir",
			       s->dir, "--daemonize", "no", (char *)NULL);
		_exit(127);
	}
	deadline = now_ms() + 10000;
	while (!server_answers(s)) {
		int st;

		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			fprintf(stderr, "redis-server exited early; see %s\n", log);
			s->pid = 0;
			return -1;
		}
		if (now_ms() > deadline) {
			fprintf(stderr, "redis-server did not answer PING within 10 s\n");
			return -1;
		}
		sleep_ms(20);
	}
	if (tcp)
		snprintf(s->url, sizeof(s->url), "redis://:%s@127.0.0.1:%d/3", TCP_PASSWORD_URL,
			 s->port);
	else
		snprintf(s->url, sizeof(s->url), "unix://%s?db=2", s->sock);
	return 0;
}

static int setup_unix(void **state) { return server_start(state, false); }
static int setup_tcp(void **state) { return server_start(state, true); }

static int server_stop(void **state)
{
	struct server *s = *state;
	char cmd[128];

	if (s == NULL)
		return 0;
	if (s->pid > 0) {
		int st;
		long long deadline = now_ms() + 3000;

		kill(s->pid, SIGTERM);
		while (waitpid(s->pid, &st, WNOHANG) == 0) {
			if (now_ms() > deadline) {
				kill(s->pid, SIGKILL);
				waitpid(s->pid, &st, 0);
				break;
			}
			sleep_ms(10);
		}
	}
	if (s->dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", s->dir);
	}
	free(s);
	return 0;
}

static struct server *need_server(void **state)
{
	struct server *s = *state;

	if (s->missing) {
		print_message("redis-server is not installed (apt-get install redis-server): "
			      "skipping\n");
		skip();
	}
	return s;
}

static struct rq *connect_ok(const struct server *s, unsigned timeout_ms)
{
	struct mh_err err;
	struct rq *q = rq_connect(s->url, timeout_ms, &err);

	if (q == NULL)
		fail_msg("rq_connect: %s", err.detail);
	return q;
}

/* Collects delivered entries. */
struct got {
	int n;
	int stop_after; /* 0: never stop */
	char ids[16][RQ_ID_MAX];
	unsigned char *values[16];
	size_t lens[16];
};

static int collect(void *ctx, const struct rq_entry *e)
{
	struct got *g = ctx;

	assert_true(g->n < 16);
	assert_true(strlen(e->id) < RQ_ID_MAX);
	strcpy(g->ids[g->n], e->id);
	g->values[g->n] = malloc(e->len + 1);
	memcpy(g->values[g->n], e->value, e->len);
	g->lens[g->n] = e->len;
	g->n++;
	return g->stop_after != 0 && g->n >= g->stop_after;
}

static void got_free(struct got *g)
{
	for (int i = 0; i < g->n; i++)
		free(g->values[i]);
	memset(g, 0, sizeof(*g));
}

static long long int_reply(struct rq *q, const char *fmt, const char *a, const char *b)
{
	struct mh_err err;
	redisReply *r = rq_command(q, &err, fmt, a, b);
	long long v;

	if (r == NULL)
		fail_msg("%s: %s", fmt, err.detail);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	rq_reply_free(r);
	return v;
}

/* XPENDING summary: number of pending entries. */
static long long pending_count(struct rq *q, const char *stream, const char *group)
{
	struct mh_err err;
	redisReply *r = rq_command(q, &err, "XPENDING %s %s", stream, group);
	long long v;

	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	v = r->element[0]->integer;
	rq_reply_free(r);
	return v;
}

/* ------------------------------------------------------------------------------------- */

static void test_group_ensure_twice(void **state)
{
	struct server *s = need_server(state);
	struct rq *q = connect_ok(s, 2000);
	struct mh_err err;
	redisReply *r;

	assert_int_equal(rq_group_ensure(q, "s:ensure", "workers", &err), 0);
	assert_int_equal(rq_group_ensure(q, "s:ensure", "workers", &err), 0);
	assert_int_equal(rq_group_ensure(q, "s:ensure", "other", &err), 0);
	r = rq_command(q, &err, "XINFO GROUPS %s", "s:ensure");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 2);
	rq_reply_free(r);
	rq_free(&q);
	assert_null(q);
	rq_free(&q); /* NULL is fine */
}

static void test_xadd_xreadgroup_xack(void **state)
{
	struct server *s = need_server(state);
	struct rq *q = connect_ok(s, 2000);
	struct mh_err err;
	char ids[3][RQ_ID_MAX];
	struct got g = {0};
	long long t0;

	assert_int_equal(rq_group_ensure(q, "s:basic", "g", &err), 0);
	assert_int_equal(rq_xadd(q, "s:basic", "job", "one", 3, ids[0], &err), 0);
	assert_int_equal(rq_xadd(q, "s:basic", "job", "two", 3, ids[1], &err), 0);
	assert_int_equal(rq_xadd(q, "s:basic", "job", "three", 5, ids[2], &err), 0);
	assert_int_equal(rq_xadd(q, "s:basic", "job", "four", 4, NULL, &err), 0);
	assert_non_null(strchr(ids[0], '-'));

	/* COUNT limits the delivery */
	assert_int_equal(rq_xreadgroup(q, "s:basic", "g", "c1", 100, 3, collect, &g, &err), 3);
	assert_int_equal(g.n, 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(g.ids[i], ids[i]);
	assert_memory_equal(g.values[2], "three", 5);
	assert_int_equal(g.lens[2], 5);
	assert_int_equal(pending_count(q, "s:basic", "g"), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rq_xack(q, "s:basic", "g", g.ids[i], &err), 0);
	assert_int_equal(pending_count(q, "s:basic", "g"), 0);
	/* acking again is harmless */
	assert_int_equal(rq_xack(q, "s:basic", "g", ids[0], &err), 0);
	got_free(&g);

	assert_int_equal(rq_xreadgroup(q, "s:basic", "g", "c1", 100, 10, collect, &g, &err), 1);
	assert_memory_equal(g.values[0], "four", 4);
	got_free(&g);

	/* nothing left: BLOCK waits, then 0 */
	t0 = now_ms();
	assert_int_equal(rq_xreadgroup(q, "s:basic", "g", "c1", 150, 10, collect, &g, &err), 0);
	assert_true(now_ms() - t0 >= 140);
	/* block_ms 0 does not block (BLOCK 0 would mean forever) */
	t0 = now_ms();
	assert_int_equal(rq_xreadgroup(q, "s:basic", "g", "c1", 0, 10, collect, &g, &err), 0);
	assert_true(now_ms() - t0 < 1000);
	rq_free(&q);
}

static void test_block_longer_than_timeout(void **state)
{
	struct server *s = need_server(state);
	struct rq *q = connect_ok(s, 100); /* command timeout below the BLOCK time */
	struct mh_err err;
	struct got g = {0};
	long long t0 = now_ms();
	redisReply *r;

	assert_int_equal(rq_group_ensure(q, "s:block", "g", &err), 0);
	assert_int_equal(rq_xreadgroup(q, "s:block", "g", "c", 400, 1, collect, &g, &err), 0);
	assert_true(now_ms() - t0 >= 390);
	/* the normal timeout is back in force and the connection is fine */
	r = rq_command(q, &err, "PING");
	assert_non_null(r);
	rq_reply_free(r);
	rq_free(&q);
}

static void test_stop_from_callback(void **state)
{
	struct server *s = need_server(state);
	struct rq *q = connect_ok(s, 2000);
	struct mh_err err;
	struct got g = {.stop_after = 1};

	assert_int_equal(rq_group_ensure(q, "s:stop", "g", &err), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rq_xadd(q, "s:stop", "f", "v", 1, NULL, &err), 0);
	assert_int_equal(rq_xreadgroup(q, "s:stop", "g", "c", 100, 10, collect, &g, &err), 1);
	/* the two undelivered entries were read, so they are pending */
	assert_int_equal(pending_count(q, "s:stop", "g"), 3);
	got_free(&g);
	rq_free(&q);
}

static void test_binary_values(void **state)
{
	struct server *s = need_server(state);
	struct rq *q = connect_ok(s, 5000);
	struct mh_err err;
	static const unsigned char nul[] = {0, 'a', 0, 0xff, '\r', '\n', 0};
	size_t big_len = 300 * 1024;
	unsigned char *big = malloc(big_len);
	struct got g = {0};

	for (size_t i = 0; i < big_len; i++)
		big[i] = (unsigned char)(i * 131 + (i >> 8));
	assert_int_equal(rq_group_ensure(q, "s:bin", "g", &err), 0);
	assert_int_equal(rq_xadd(q, "s:bin", "f", nul, sizeof(nul), NULL, &err), 0);
	assert_int_equal(rq_xadd(q, "s:bin", "f", "", 0, NULL, &err), 0);
	assert_int_equal(rq_xadd(q, "s:bin", "f", big, big_len, NULL, &err), 0);
	assert_int_equal(rq_xreadgroup(q, "s:bin", "g", "c", 100, 10, collect, &g, &err), 3);
	assert_int_equal(g.lens[0], sizeof(nul));
	assert_memory_equal(g.values[0], nul, sizeof(nul));
	assert_int_equal(g.lens[1], 0);
	assert_int_equal(g.lens[2], big_len);
	assert_memory_equal(g.values[2], big, big_len);
	got_free(&g);
	free(big);
	rq_free(&q);
}

static void test_xautoclaim_dead_consumer(void **state)
{
	struct server *s = need_server(state);
	struct rq *q = connect_ok(s, 2000);
	struct mh_err err;
	struct got g = {0};
	char ids[5][RQ_ID_MAX];
	redisReply *r;

	assert_int_equal(rq_group_ensure(q, "s:claim", "g", &err), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rq_xadd(q, "s:claim", "f", &"abc"[i], 1, ids[i], &err), 0);
	/* "dead" reads and never acks */
	assert_int_equal(rq_xreadgroup(q, "s:claim", "g", "dead", 100, 10, collect, &g, &err), 3);
	got_free(&g);
	/* not idle long enough yet */
	assert_int_equal(rq_xautoclaim(q, "s:claim", "g", "alive", 60000, 10, collect, &g, &err), 0);
	sleep_ms(80);
	assert_int_equal(rq_xautoclaim(q, "s:claim", "g", "alive", 50, 10, collect, &g, &err), 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(g.ids[i], ids[i]);
		assert_int_equal(g.values[i][0], "abc"[i]);
	}
	got_free(&g);
	/* ownership moved to "alive" */
	r = rq_command(q, &err, "XPENDING %s %s - + 10 %s", "s:claim", "g", "alive");
	assert_non_null(r);
	assert_int_equal(r->elements, 3);
	rq_reply_free(r);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rq_xack(q, "s:claim", "g", ids[i], &err), 0);

	/* an entry deleted while pending is skipped (Redis 7 lists it in a third element) */
	assert_int_equal(rq_xadd(q, "s:claim", "f", "x", 1, ids[3], &err), 0);
	assert_int_equal(rq_xadd(q, "s:claim", "f", "y", 1, ids[4], &err), 0);
	assert_int_equal(rq_xreadgroup(q, "s:claim", "g", "dead", 100, 10, collect, &g, &err), 2);
	got_free(&g);
	assert_int_equal(int_reply(q, "XDEL %s %s", "s:claim", ids[3]), 1);
	sleep_ms(80);
	assert_int_equal(rq_xautoclaim(q, "s:claim", "g", "alive", 50, 10, collect, &g, &err), 1);
	assert_string_equal(g.ids[0], ids[4]);
	got_free(&g);
	rq_free(&q);
}

/* Acknowledge-and-delete leaves neither the entry nor a pending record; a consumer that
 * lost the entry to a claim and acks it late changes nothing. */
static void test_xack_del_leaves_nothing(void **state)
{
	struct server *s = need_server(state);
	struct rq *q = connect_ok(s, 2000);
	struct mh_err err;
	struct got g = {0};
	char ids[2][RQ_ID_MAX];
	redisReply *r;

	assert_int_equal(rq_group_ensure(q, "s:ackdel", "g", &err), 0);
	assert_int_equal(rq_xadd(q, "s:ackdel", "f", "a", 1, ids[0], &err), 0);
	assert_int_equal(rq_xadd(q, "s:ackdel", "f", "b", 1, ids[1], &err), 0);
	assert_int_equal(rq_xreadgroup(q, "s:ackdel", "g", "slow", 100, 10, collect, &g, &err), 2);
	got_free(&g);
	sleep_ms(30);
	assert_int_equal(rq_xautoclaim(q, "s:ackdel", "g", "fast", 10, 1, collect, &g, &err), 1);
	got_free(&g);
	assert_int_equal(rq_xack_del(q, "s:ackdel", "g", ids[0], &err), 0); /* fast is done */
	assert_int_equal(rq_xack_del(q, "s:ackdel", "g", ids[0], &err), 0); /* slow, late */
	assert_int_equal(int_reply(q, "XLEN %s", "s:ackdel", NULL), 1);
	assert_int_equal(rq_xack_del(q, "s:ackdel", "g", ids[1], &err), 0);
	assert_int_equal(int_reply(q, "XLEN %s", "s:ackdel", NULL), 0);
	r = rq_command(q, &err, "XPENDING %s %s", "s:ackdel", "g");
	assert_non_null(r);
	assert_int_equal(r->element[0]->integer, 0);
	rq_reply_free(r);
	/* nothing comes back to anybody */
	assert_int_equal(rq_xautoclaim(q, "s:ackdel", "g", "fast", 0, 10, collect, &g, &err), 0);
	assert_int_equal(rq_xreadgroup(q, "s:ackdel", "g", "fast", 0, 10, collect, &g, &err), 0);
	rq_free(&q);
}

static void test_error_replies(void **state)
{
	struct server *s = need_server(state);
	struct rq *q = connect_ok(s, 2000);
	struct mh_err err;
	struct got g = {0};
	redisReply *r;

	assert_null(rq_command(q, &err, "NOSUCHCOMMAND %s", "x"));
	assert_int_equal(err.code, MH_E_REDIS);
	assert_non_null(strstr(err.detail, "unknown command"));

	r = rq_command(q, &err, "SET %s %s", "s:string", "v");
	assert_non_null(r);
	rq_reply_free(r);
	assert_int_equal(rq_xadd(q, "s:string", "f", "v", 1, NULL, &err), -1);
	assert_non_null(strstr(err.detail, "WRONGTYPE"));
	assert_int_equal(rq_group_ensure(q, "s:string", "g", &err), -1);
	assert_int_equal(err.code, MH_E_REDIS);
	assert_int_equal(rq_xreadgroup(q, "s:nogroup", "g", "c", 0, 1, collect, &g, &err), -1);
	assert_non_null(strstr(err.detail, "NOGROUP"));
	assert_int_equal(rq_xautoclaim(q, "s:nogroup", "g", "c", 0, 1, collect, &g, &err), -1);
	assert_int_equal(rq_xack(q, "s:string", "g", "1-1", &err), -1);
	{
		const char *argv[] = {"GET", "s:string"};
		size_t lens[] = {3, 8};

		r = rq_command_argv(q, &err, 2, argv, lens);
		assert_non_null(r);
		assert_int_equal(r->type, REDIS_REPLY_STRING);
		assert_string_equal(r->str, "v");
		rq_reply_free(r);
	}
	/* the connection survives error replies */
	r = rq_command(q, &err, "PING");
	assert_non_null(r);
	assert_string_equal(r->str, "PONG");
	rq_reply_free(r);
	rq_free(&q);
}

static void test_db_selected_and_reconnect(void **state)
{
	struct server *s = need_server(state);
	struct rq *q = connect_ok(s, 2000), *killer = connect_ok(s, 2000);
	const char *want = s->tcp ? "db=3" : "db=2";
	struct mh_err err;
	redisReply *r;
	char id[32];

	r = rq_command(q, &err, "CLIENT INFO");
	assert_non_null(r);
	assert_non_null(strstr(r->str, want));
	rq_reply_free(r);
	r = rq_command(q, &err, "CLIENT ID");
	assert_non_null(r);
	snprintf(id, sizeof(id), "%lld", r->integer);
	rq_reply_free(r);

	/* the server drops q: the next command fails, the one after reconnects */
	assert_int_equal(int_reply(killer, "CLIENT KILL ID %s", id, NULL), 1);
	assert_null(rq_command(q, &err, "PING"));
	assert_int_equal(err.code, MH_E_REDIS);
	r = rq_command(q, &err, "CLIENT INFO");
	if (r == NULL)
		fail_msg("no reconnect: %s", err.detail);
	assert_non_null(strstr(r->str, want)); /* SELECT again after reconnecting */
	rq_reply_free(r);
	rq_free(&q);
	rq_free(&killer);
}

static void test_wrong_password_not_echoed(void **state)
{
	struct server *s = need_server(state);
	struct mh_err err;
	char url[256];

	if (!s->tcp)
		skip();
	snprintf(url, sizeof(url), "redis://:WrongHorse42@127.0.0.1:%d", s->port);
	assert_null(rq_connect(url, 2000, &err));
	assert_int_equal(err.code, MH_E_REDIS);
	assert_non_null(strstr(err.detail, "AUTH"));
	assert_null(strstr(err.detail, "WrongHorse42"));
	/* no password at all: commands are refused with NOAUTH */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", s->port);
	{
		struct rq *q = rq_connect(url, 2000, &err);

		assert_non_null(q);
		assert_null(rq_command(q, &err, "PING"));
		assert_non_null(strstr(err.detail, "NOAUTH"));
		rq_free(&q);
	}
	/* user:password form (the default user) */
	snprintf(url, sizeof(url), "redis://default:%s@127.0.0.1:%d", TCP_PASSWORD_URL, s->port);
	{
		struct rq *q = rq_connect(url, 2000, &err);

		if (q == NULL)
			fail_msg("%s", err.detail);
		rq_free(&q);
	}
}

/* ------------------------------------------------------------------------------------- */
/* No server needed                                                                        */

static void test_unreachable(void **state)
{
	struct mh_err err;
	char dir[] = "/tmp/mh-test-rq-nx-XXXXXX", url[128];
	long long t0;
	int port;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(url, sizeof(url), "unix://%s/missing.sock", dir);
	t0 = now_ms();
	assert_null(rq_connect(url, 500, &err));
	assert_true(now_ms() - t0 < 500);
	assert_int_equal(err.code, MH_E_REDIS);
	assert_non_null(strstr(err.detail, "missing.sock"));
	rmdir(dir);

	/* a TCP port nobody listens on */
	port = free_port();
	assert_true(port > 0);
	snprintf(url, sizeof(url), "redis://:Secret99@127.0.0.1:%d/1", port);
	assert_null(rq_connect(url, 500, &err));
	assert_int_equal(err.code, MH_E_REDIS);
	assert_null(strstr(err.detail, "Secret99"));
	assert_non_null(strstr(err.detail, "***"));
}

/* A listener that never accepts: connecting works (the kernel queues us), but no reply
 * ever comes, so the command must time out. */
static void test_command_timeout(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/mh-test-rq-to-XXXXXX", url[160];
	struct mh_err err;
	struct rq *q;
	long long t0, dt;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/mute.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	snprintf(url, sizeof(url), "unix://%s", sa.sun_path);
	q = rq_connect(url, 200, &err);
	if (q == NULL)
		fail_msg("%s", err.detail);
	t0 = now_ms();
	assert_null(rq_command(q, &err, "PING"));
	dt = now_ms() - t0;
	assert_true(dt >= 150 && dt < 2000);
	assert_int_equal(err.code, MH_E_REDIS);
	assert_non_null(strstr(err.detail, "timed out"));
	rq_free(&q);
	/* with db=: the SELECT at connect time times out */
	snprintf(url, sizeof(url), "unix://%s?db=1", sa.sun_path);
	assert_null(rq_connect(url, 200, &err));
	assert_non_null(strstr(err.detail, "SELECT"));
	close(fd);
	unlink(sa.sun_path);
	rmdir(dir);
}

static void test_bad_urls(void **state)
{
	static const char *const bad[] = {
		"",
		"http://localhost",
		"redis://",
		"redis://:6379",
		"redis://host:0",
		"redis://host:65536",
		"redis://host:-1",
		"redis://host:12x",
		"redis://host/notadb",
		"redis://host/-1",
		"redis://[::1",
		"redis://[::1]x",
		"redis://user@host",
		"redis://:bad%zzpass@host",
		"unix://relative.sock",
		"unix://",
		"unix:///tmp/x.sock?db=",
		"unix:///tmp/x.sock?dbx=1",
		"unix:///tmp/x.sock?db=1x",
	};
	struct mh_err err;
	char longpath[300];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mh_err_clear(&err);
		if (rq_connect(bad[i], 200, &err) != NULL)
			fail_msg("accepted %s", bad[i]);
		assert_int_equal(err.code, MH_E_REDIS);
		assert_null(strstr(err.detail, "zzpass"));
	}
	assert_null(rq_connect(NULL, 200, &err));
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "unix:///", 8);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_null(rq_connect(longpath, 200, &err));
	assert_non_null(strstr(err.detail, "too long"));
}

#define SERVER_TESTS                                                                       \
	cmocka_unit_test(test_group_ensure_twice), cmocka_unit_test(test_xadd_xreadgroup_xack), \
		cmocka_unit_test(test_block_longer_than_timeout),                               \
		cmocka_unit_test(test_stop_from_callback), cmocka_unit_test(test_binary_values), \
		cmocka_unit_test(test_xautoclaim_dead_consumer),                                \
		cmocka_unit_test(test_xack_del_leaves_nothing),                                 \
		cmocka_unit_test(test_error_replies),                                           \
		cmocka_unit_test(test_db_selected_and_reconnect)

int main(void)
{
	const struct CMUnitTest unix_tests[] = {SERVER_TESTS};
	const struct CMUnitTest tcp_tests[] = {SERVER_TESTS,
					       cmocka_unit_test(test_wrong_password_not_echoed)};
	const struct CMUnitTest offline_tests[] = {
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_command_timeout),
		cmocka_unit_test(test_bad_urls),
	};
	int failed = 0;

	signal(SIGPIPE, SIG_IGN);
	failed += cmocka_run_group_tests_name("rq_offline", offline_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("rq_unix", unix_tests, setup_unix, server_stop);
	failed += cmocka_run_group_tests_name("rq_tcp", tcp_tests, setup_tcp, server_stop);
	return failed;
}
