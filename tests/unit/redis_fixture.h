/* redis_fixture.h - a private redis-server for one unit test group.
 *
 * redis_fixture_start() forks and execs redis-server on a unix socket in a fresh mkdtemp
 * directory (no TCP port, no persistence), waits until it answers PING and fills in a
 * unix:// URL for rq_connect(); redis_fixture_stop() stops it by PID and removes the
 * directory. Without redis-server in $PATH, start sets missing and returns 0, so each test
 * can skip() with a message (redis_fixture_need()).
 *
 * Header-only (static inline) so each test executable takes just what it uses. Include it
 * after <cmocka.h> and <hiredis.h>. */
#ifndef MH_TEST_REDIS_FIXTURE_H
#define MH_TEST_REDIS_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct redis_fixture {
	bool missing; /* redis-server is not installed */
	pid_t pid;
	char dir[64];
	char sock[128];
	char url[192];
};

static inline long long redis_fixture_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void redis_fixture_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static inline bool redis_fixture_in_path(const char *prog)
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

static inline bool redis_fixture_answers(const struct redis_fixture *f)
{
	struct timeval tv = {0, 200000};
	redisContext *c = redisConnectUnixWithTimeout(f->sock, tv);
	redisReply *r = NULL;

	if (c != NULL && c->err == 0)
		r = redisCommand(c, "PING");
	if (r != NULL)
		freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
	return r != NULL;
}

/* Stops the server by PID (SIGTERM, SIGKILL after 3 s) and removes its directory. */
static inline void redis_fixture_stop(struct redis_fixture *f)
{
	char cmd[128];

	if (f->pid > 0) {
		long long deadline = redis_fixture_now_ms() + 3000;
		int st;

		kill(f->pid, SIGTERM);
		while (waitpid(f->pid, &st, WNOHANG) == 0) {
			if (redis_fixture_now_ms() > deadline) {
				kill(f->pid, SIGKILL);
				waitpid(f->pid, &st, 0);
				break;
			}
			redis_fixture_sleep_ms(10);
		}
		f->pid = 0;
	}
	if (f->dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", f->dir);
		f->dir[0] = '\0';
	}
}

/* Starts redis-server for f (zeroed by the caller). tag names the temp dir. Returns 0
 * (check f->missing), or -1 when the server could not be started. */
static inline int redis_fixture_start(struct redis_fixture *f, const char *tag)
{
	char log[160];
	long long deadline;
	pid_t parent = getpid();

	if (!redis_fixture_in_path("redis-server")) {
		f->missing = true;
		return 0;
	}
	snprintf(f->dir, sizeof(f->dir), "/tmp/mh-test-%s-XXXXXX", tag);
	if (mkdtemp(f->dir) == NULL) {
		f->dir[0] = '\0';
		return -1;
	}
	snprintf(f->sock, sizeof(f->sock), "%s/redis.sock", f->dir);
	snprintf(log, sizeof(log), "%s/redis.log", f->dir);
	f->pid = fork();
	if (f->pid < 0) {
		f->pid = 0;
		redis_fixture_stop(f);
		return -1;
	}
	if (f->pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		/* a test that crashes or is killed by a timeout takes its server along */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", f->sock,
		       "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", f->dir,
		       "--daemonize", "no", (char *)NULL);
		_exit(127);
	}
	deadline = redis_fixture_now_ms() + 10000;
	while (!redis_fixture_answers(f)) {
		int st;

		if (waitpid(f->pid, &st, WNOHANG) == f->pid) {
			fprintf(stderr, "redis-server exited early (log in %s)\n", log);
			f->pid = 0;
			return -1;
		}
		if (redis_fixture_now_ms() > deadline) {
			fprintf(stderr, "redis-server did not answer PING within 10 s\n");
			redis_fixture_stop(f);
			return -1;
		}
		redis_fixture_sleep_ms(20);
	}
	snprintf(f->url, sizeof(f->url), "unix://%s", f->sock);
	return 0;
}

/* For a test body: skips (saying why) when redis-server is not installed. */
static inline struct redis_fixture *redis_fixture_need(void **state)
{
	struct redis_fixture *f = *state;

	if (f->missing) {
		print_message("redis-server is not installed (apt-get install redis-server): "
			      "skipping\n");
		skip();
	}
	return f;
}

/* A cmocka group's setup and teardown around one server: *state is the fixture. */
static inline int redis_fixture_group_start(void **state, const char *tag)
{
	struct redis_fixture *f = calloc(1, sizeof(*f));

	*state = f;
	return f == NULL ? -1 : redis_fixture_start(f, tag);
}

static inline int redis_fixture_group_stop(void **state)
{
	struct redis_fixture *f = *state;

	if (f != NULL) {
		redis_fixture_stop(f);
		free(f);
	}
	return 0;
}

#endif
