/* embedded.c - a single migration without a cluster: private redis-server on a unix
 * socket, plus the coordinator and worker code in threads of this process. The same
 * code paths as a cluster, through the same Redis streams. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coordinator.h"
#include "log.h"
#include "rq.h"
#include "worker.h"

struct embedded {
	char dir[256];
	char url[320];
	pid_t redis_pid;
	atomic_int stop;
	struct mh_seal_key key;
	struct coordinator_opts copts;
	struct worker_opts wopts;
	pthread_t coordinator, worker;
	bool coordinator_started, worker_started;
};

static void *coordinator_thread(void *arg)
{
	struct embedded *e = arg;
	struct mh_err err;

	if (coordinator_run(&e->copts, &e->stop, &err) < 0)
		mh_error("coordinator", "%s: %s", mh_err_text(err.code), err.detail);
	return NULL;
}

static void *worker_thread(void *arg)
{
	struct embedded *e = arg;
	struct mh_err err;

	if (worker_run(&e->wopts, &e->stop, &err) < 0)
		mh_error("worker", "%s: %s", mh_err_text(err.code), err.detail);
	return NULL;
}

static int start_redis(struct embedded *e, struct mh_err *err)
{
	char sock[300], logfile[300];
	struct timespec pause = {0, 20 * 1000 * 1000};
	int devnull;

	snprintf(sock, sizeof(sock), "%s/redis.sock", e->dir);
	snprintf(logfile, sizeof(logfile), "%s/redis.log", e->dir);
	snprintf(e->url, sizeof(e->url), "unix://%s", sock);
	e->redis_pid = fork();
	if (e->redis_pid < 0)
		return mh_err_set(err, MH_E_REDIS_START, "fork: %s", strerror(errno));
	if (e->redis_pid == 0) {
		devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
		}
		/* no TCP port, no persistence: nothing outlives the migration */
		execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		       "--save", "", "--appendonly", "no", "--dir", e->dir, "--logfile", logfile, "--daemonize", "no",
		       (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		struct mh_err probe_err;
		struct rq *probe;
		int status;

		if (waitpid(e->redis_pid, &status, WNOHANG) == e->redis_pid) {
			e->redis_pid = 0;
			return mh_err_set(err, MH_E_REDIS_START, "redis-server exited at once (status %d); see %s",
					  WIFEXITED(status) ? WEXITSTATUS(status) : -1, logfile);
		}
		if (access(sock, F_OK) == 0 && (probe = rq_connect(e->url, 1000, &probe_err)) != NULL) {
			rq_free(&probe);
			return 0;
		}
		nanosleep(&pause, NULL);
	}
	return mh_err_set(err, MH_E_REDIS_START, "redis-server did not answer within 10 s; see %s", logfile);
}

struct embedded *embedded_start(unsigned workers, const struct mh_seal_key *key, struct mh_err *err)
{
	struct embedded *e = calloc(1, sizeof(*e));
	const char *tmp = getenv("TMPDIR");

	if (e == NULL)
		abort();
	snprintf(e->dir, sizeof(e->dir), "%s/mailhaul-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(e->dir) == NULL) {
		mh_err_set(err, MH_E_REDIS_START, "cannot create a temp dir: %s", strerror(errno));
		free(e);
		return NULL;
	}
	atomic_init(&e->stop, 0);
	e->key = *key;
	if (start_redis(e, err) < 0) {
		embedded_stop(&e);
		return NULL;
	}
	e->copts.redis_url = e->url;
	e->copts.seal_key = &e->key;
	planner_opts_default(&e->copts.planner);
	e->wopts.redis_url = e->url;
	e->wopts.seal_key = &e->key;
	e->wopts.concurrency = workers;
	e->wopts.name = "embedded";
	e->wopts.planners = 1; /* one job: one planner, in the worker as in a cluster */
	planner_opts_default(&e->wopts.planner);
	if (pthread_create(&e->coordinator, NULL, coordinator_thread, e) != 0 ||
	    pthread_create(&e->worker, NULL, worker_thread, e) != 0)
		abort();
	e->coordinator_started = e->worker_started = true;
	return e;
}

const char *embedded_redis_url(const struct embedded *e)
{
	return e->url;
}

static void remove_dir(const char *dir)
{
	const char *files[] = {"redis.sock", "redis.log", "dump.rdb"};
	char path[320];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

void embedded_stop(struct embedded **ep)
{
	struct embedded *e = *ep;

	if (e == NULL)
		return;
	atomic_store(&e->stop, 1);
	if (e->worker_started)
		pthread_join(e->worker, NULL);
	if (e->coordinator_started)
		pthread_join(e->coordinator, NULL);
	if (e->redis_pid > 0) {
		kill(e->redis_pid, SIGTERM);
		waitpid(e->redis_pid, NULL, 0);
	}
	remove_dir(e->dir);
	explicit_bzero(&e->key, sizeof(e->key));
	free(e);
	*ep = NULL;
}
