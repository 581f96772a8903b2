/* jobs.c - operating on jobs in a cluster: status, pause, resume, cancel, failures,
 * requeue. Each talks to Redis only; coordinators and workers react to what changes. */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "endpoint.h"
#include "rq.h"
#include "seal.h"
#include "summary_json.h"
#include "syncstore.h"
#include "wire.h"

struct jobs_args {
	const char *redis_url;
	bool json, csv;
	const char *folder;
	uint64_t batch;
	bool have_batch;
	const char *error;
	const char *seal_key_file;
	const char *from_password_file, *to_password_file;
	uint64_t every_ms; /* autosync --every */
	bool off;          /* autosync --off */
	bool retry_failed; /* sync --retry-failed */
	unsigned sync_set, sync_clear; /* sync/autosync --[no-]sync-flags, --[no-]propagate-deletes */
	char **jobs;
	int job_count;
};

/* "30s", "15m", "3h", "1d" (a whole number and a unit) into milliseconds. */
static int parse_interval(const char *s, uint64_t *ms_r)
{
	char *end;
	unsigned long long n = strtoull(s, &end, 10);
	uint64_t unit;

	if (end == s || n == 0 || n > 1000000 || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (end[0]) {
	case 's': unit = 1000; break;
	case 'm': unit = 60 * 1000; break;
	case 'h': unit = 3600 * 1000; break;
	case 'd': unit = 24 * 3600 * 1000; break;
	default: return -1;
	}
	*ms_r = n * unit;
	return 0;
}

static int parse_jobs_args(const char *cmd, int argc, char **argv, struct jobs_args *a)
{
	enum { O_REDIS = 256, O_JSON, O_CSV, O_FOLDER, O_BATCH, O_ERROR, O_SEAL, O_FROM_PW, O_TO_PW, O_EVERY, O_OFF, O_RETRY,
	       O_SYNC_FLAGS, O_NO_SYNC_FLAGS, O_DELETES, O_NO_DELETES };
	static const struct option opts[] = {
		{"redis", required_argument, NULL, O_REDIS},
		{"json", no_argument, NULL, O_JSON},
		{"csv", no_argument, NULL, O_CSV},
		{"folder", required_argument, NULL, O_FOLDER},
		{"batch", required_argument, NULL, O_BATCH},
		{"error", required_argument, NULL, O_ERROR},
		{"seal-key-file", required_argument, NULL, O_SEAL},
		{"from-password-file", required_argument, NULL, O_FROM_PW},
		{"to-password-file", required_argument, NULL, O_TO_PW},
		{"every", required_argument, NULL, O_EVERY},
		{"off", no_argument, NULL, O_OFF},
		{"retry-failed", no_argument, NULL, O_RETRY},
		{"sync-flags", no_argument, NULL, O_SYNC_FLAGS},
		{"no-sync-flags", no_argument, NULL, O_NO_SYNC_FLAGS},
		{"propagate-deletes", no_argument, NULL, O_DELETES},
		{"no-propagate-deletes", no_argument, NULL, O_NO_DELETES},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(a, 0, sizeof(*a));
	a->redis_url = cli_default_redis_url();
	a->seal_key_file = cli_default_seal_key_file();
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_REDIS: a->redis_url = optarg; break;
		case O_JSON: a->json = true; break;
		case O_CSV: a->csv = true; break;
		case O_FOLDER: a->folder = optarg; break;
		case O_BATCH: {
			char *end;
			a->batch = strtoull(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0') {
				fprintf(stderr, "mailhaul %s: --batch takes a batch number\n", cmd);
				return -1;
			}
			a->have_batch = true;
			break;
		}
		case O_ERROR: a->error = optarg; break;
		case O_SEAL: a->seal_key_file = optarg; break;
		case O_FROM_PW: a->from_password_file = optarg; break;
		case O_TO_PW: a->to_password_file = optarg; break;
		case O_OFF: a->off = true; break;
		case O_RETRY: a->retry_failed = true; break;
		case O_SYNC_FLAGS: a->sync_set |= MH_SYNC_FLAGS; break;
		case O_NO_SYNC_FLAGS: a->sync_clear |= MH_SYNC_FLAGS; break;
		case O_DELETES: a->sync_set |= MH_SYNC_DELETES; break;
		case O_NO_DELETES: a->sync_clear |= MH_SYNC_DELETES; break;
		case O_EVERY:
			if (parse_interval(optarg, &a->every_ms) < 0) {
				fprintf(stderr, "mailhaul %s: --every takes a duration such as 30m, 3h or 1d (at least 1s)\n",
					cmd);
				return -1;
			}
			break;
		default:
			fprintf(stderr, "mailhaul %s: unknown option (see mailhaul help)\n", cmd);
			return -1;
		}
	}
	if (a->sync_set & a->sync_clear) {
		fprintf(stderr, "mailhaul %s: an option and its --no- form together\n", cmd);
		return -1;
	}
	a->jobs = argv + optind;
	a->job_count = argc - optind;
	return 0;
}

static struct rq *connect_or_say(const char *cmd, const char *url)
{
	struct mh_err err;
	struct rq *q = rq_connect(url, 5000, &err);

	if (q == NULL)
		fprintf(stderr, "mailhaul %s: %s: %s\n  fix: %s\n", cmd, mh_err_text(err.code), err.detail,
			mh_err_fix(err.code));
	return q;
}

/* --- status ---------------------------------------------------------------------------- */

static void status_line(const struct mh_job_summary *s)
{
	const struct mh_counts *c = &s->counts;
	uint64_t end = s->ended_ms ? s->ended_ms : mh_now_ms();
	double secs = s->started_ms && end > s->started_ms ? (double)(end - s->started_ms) / 1000.0 : 0;
	uint64_t done_bytes = c->copied_bytes + c->skipped_bytes + c->failed_bytes;
	char moved[32], total[32], eta[32] = "-";
	double rate = secs > 0 ? (double)c->copied / secs : 0;

	mh_fmt_bytes(moved, sizeof(moved), done_bytes);
	mh_fmt_bytes(total, sizeof(total), c->bytes);
	if (!mh_job_state_is_final(s->state) && secs > 0 && c->copied_bytes > 0 && c->bytes > done_bytes) {
		double left = (double)(c->bytes - done_bytes) / ((double)c->copied_bytes / secs);
		snprintf(eta, sizeof(eta), "%lu:%02lu", (unsigned long)left / 60, (unsigned long)left % 60);
	}
	printf("%-20s %-9s %7" PRIu64 " %7" PRIu64 " %7" PRIu64 " %7" PRIu64 " %10s %10s %7.0f/s %6s  %s -> %s",
	       s->job_id, mh_job_summary_state(s), c->messages, c->copied, c->skipped, c->failed, moved, total,
	       rate, eta, s->src, s->dst);
	if (s->autosync_ms > 0) {
		char every[32], next[32];
		uint64_t now = mh_now_ms();
		mh_fmt_interval(every, sizeof(every), s->autosync_ms / 1000);
		mh_fmt_interval(next, sizeof(next), s->next_sync_ms > now ? (s->next_sync_ms - now + 999) / 1000 : 0);
		printf("  [auto-sync every %s, next in %s]", every, next);
	}
	if (s->sync_opts != 0)
		printf("  [syncs: %s]", mh_sync_opts_describe(s->sync_opts));
	putchar('\n');
}

static int cmd_status(int argc, char **argv)
{
	struct jobs_args a;
	struct rq *q;
	char **ids = NULL;
	size_t n = 0;
	struct mh_err err;
	int rc = MH_EXIT_OK;

	if (parse_jobs_args("status", argc, argv, &a) < 0)
		return MH_EXIT_USAGE;
	if ((q = connect_or_say("status", a.redis_url)) == NULL)
		return MH_EXIT_CONNECT;
	if (a.job_count == 0) {
		if (mh_job_list(q, 1000, &ids, &n, &err) < 0) {
			fprintf(stderr, "mailhaul status: %s\n", err.detail);
			rq_free(&q);
			return MH_EXIT_FAILED;
		}
	} else {
		ids = calloc((size_t)a.job_count, sizeof(*ids));
		if (ids == NULL)
			abort();
		for (int i = 0; i < a.job_count; i++)
			ids[n++] = strdup(a.jobs[i]);
	}
	if (a.json)
		fputs("[", stdout);
	else
		printf("%-20s %-9s %7s %7s %7s %7s %10s %10s %9s %6s  %s\n", "JOB", "STATE", "TOTAL", "COPIED",
		       "SKIPPED", "FAILED", "DONE", "OF", "RATE", "ETA", "SOURCE -> TARGET");
	for (size_t i = 0; i < n; i++) {
		struct mh_job_summary s;

		if (mh_job_load_summary(q, ids[i], a.json, &s, &err) < 0) {
			fprintf(stderr, "mailhaul status: %s\n", err.detail);
			rc = MH_EXIT_FAILED;
			continue;
		}
		if (a.json) {
			if (i > 0)
				fputs(",", stdout);
			mh_summary_json(stdout, &s);
		} else {
			status_line(&s);
		}
		mh_job_summary_cleanup(&s);
	}
	if (a.json)
		fputs("]\n", stdout);
	mh_job_list_free(ids, n);
	rq_free(&q);
	return rc;
}

/* --- summary ------------------------------------------------------------------------------ */

/* The end-of-run summary of any job (also of a cluster job nobody followed). */
static int cmd_summary(int argc, char **argv)
{
	struct jobs_args a;
	struct rq *q;
	struct mh_err err;
	int rc = MH_EXIT_OK;

	if (parse_jobs_args("summary", argc, argv, &a) < 0)
		return MH_EXIT_USAGE;
	if (a.job_count == 0) {
		fprintf(stderr, "usage: mailhaul summary JOB... [--json]\n");
		return MH_EXIT_USAGE;
	}
	if ((q = connect_or_say("summary", a.redis_url)) == NULL)
		return MH_EXIT_CONNECT;
	for (int i = 0; i < a.job_count; i++) {
		struct mh_job_summary s;

		if (mh_job_load_summary(q, a.jobs[i], 1, &s, &err) < 0) {
			fprintf(stderr, "mailhaul summary: %s\n", err.detail);
			rc = MH_EXIT_FAILED;
			continue;
		}
		if (a.json)
			report_json(stdout, &s);
		else
			report_human(stdout, &s);
		mh_job_summary_cleanup(&s);
	}
	rq_free(&q);
	return rc;
}

/* --- pause / resume / cancel ------------------------------------------------------------ */

static int cmd_control(const char *cmd, int argc, char **argv)
{
	struct jobs_args a;
	struct rq *q;
	struct mh_err err;
	int rc = MH_EXIT_OK;

	if (parse_jobs_args(cmd, argc, argv, &a) < 0)
		return MH_EXIT_USAGE;
	if (a.job_count == 0) {
		fprintf(stderr, "usage: mailhaul %s JOB...\n", cmd);
		return MH_EXIT_USAGE;
	}
	if ((q = connect_or_say(cmd, a.redis_url)) == NULL)
		return MH_EXIT_CONNECT;
	for (int i = 0; i < a.job_count; i++) {
		const char *id = a.jobs[i];
		enum mh_job_state state;
		int changed;

		if (mh_job_get_state(q, id, &state, &err) < 0) {
			fprintf(stderr, "mailhaul %s: no job %s\n", cmd, id);
			rc = MH_EXIT_FAILED;
			continue;
		}
		changed = mh_job_control(q, id, cmd, &err);
		if (changed < 0) {
			fprintf(stderr, "mailhaul %s %s: %s\n", cmd, id, err.detail);
			rc = MH_EXIT_FAILED;
		} else if (changed == 0) {
			fprintf(stderr, "mailhaul %s: job %s is %s: nothing to %s\n", cmd, id, mh_job_state_name(state),
				cmd);
			rc = MH_EXIT_FAILED;
		} else {
			mh_job_get_state(q, id, &state, &err);
			printf("%s: %s\n", id, mh_job_state_name(state));
		}
	}
	rq_free(&q);
	return rc;
}

/* --- failures ------------------------------------------------------------------------- */

static void csv_field(const char *s)
{
	fputc('"', stdout);
	for (; *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', stdout);
		fputc(*s, stdout);
	}
	fputc('"', stdout);
}

static const char *failure_folder(const struct mh_job_summary *s, uint32_t idx)
{
	return idx < s->folder_count ? s->folders[idx].src : "?";
}

static int cmd_failures(int argc, char **argv)
{
	struct jobs_args a;
	struct mh_job_summary s;
	struct rq *q;
	struct mh_err err;

	if (parse_jobs_args("failures", argc, argv, &a) < 0)
		return MH_EXIT_USAGE;
	if (a.job_count != 1) {
		fprintf(stderr, "usage: mailhaul failures JOB [--csv]\n");
		return MH_EXIT_USAGE;
	}
	if ((q = connect_or_say("failures", a.redis_url)) == NULL)
		return MH_EXIT_CONNECT;
	if (mh_job_load_summary(q, a.jobs[0], 1, &s, &err) < 0) {
		fprintf(stderr, "mailhaul failures: %s\n", err.detail);
		rq_free(&q);
		return MH_EXIT_FAILED;
	}
	if (a.csv)
		puts("folder,uid,size,date,subject,batch,error,explanation,fix,server_text");
	for (size_t i = 0; i < s.failure_count; i++) {
		const struct mh_failure *f = &s.failures[i];
		enum mh_err_code code = mh_err_from_name(f->code);

		if (a.csv) {
			csv_field(failure_folder(&s, f->folder_idx));
			printf(",%" PRIu32 ",%" PRIu64 ",", f->uid, f->size);
			csv_field(f->date);
			fputc(',', stdout);
			csv_field(f->subject);
			printf(",%" PRIu64 ",%s,", f->batch_id, f->code);
			csv_field(mh_err_text(code));
			fputc(',', stdout);
			csv_field(mh_err_fix(code));
			fputc(',', stdout);
			csv_field(f->detail);
			fputc('\n', stdout);
		} else {
			printf("%-24s UID %-8" PRIu32 " %10" PRIu64 " B  %-26s %-20.20s batch %-6" PRIu64 " %-16s %s\n",
			       failure_folder(&s, f->folder_idx), f->uid, f->size, f->date, f->subject, f->batch_id,
			       f->code, f->detail);
		}
	}
	if (!a.csv)
		fprintf(stderr, "%zu failed messages in %s\n", s.failure_count, a.jobs[0]);
	mh_job_summary_cleanup(&s);
	rq_free(&q);
	return MH_EXIT_OK;
}

/* --- requeue -------------------------------------------------------------------------- */

/* A finished job keeps no credentials; a requeue needs them again. */
static int restore_credentials(struct rq *q, const char *job_id, const struct jobs_args *a, struct mh_err *err)
{
	struct mh_job_spec spec;
	struct mh_seal_key key;
	struct mh_bytes enc = {0};
	const char *env_name[2] = {"MAILHAUL_FROM_PASSWORD", "MAILHAUL_TO_PASSWORD"};
	const char *files[2] = {a->from_password_file, a->to_password_file};
	struct mh_wire_endpoint *sides[2];
	char key_name[MH_KEY_MAX];
	struct redisReply *r;
	int rc = -1;

	if (mh_job_load_spec(q, job_id, &spec, err) < 0)
		return -1;
	sides[0] = &spec.src;
	sides[1] = &spec.dst;
	if (spec.src.sealed_password.len > 0 && spec.dst.sealed_password.len > 0) {
		mh_job_spec_cleanup(&spec);
		return 0;
	}
	if (a->seal_key_file == NULL) {
		mh_err_set(err, MH_E_NO_PASSWORD,
			   "the job no longer holds its passwords: give --seal-key-file (or $MAILHAUL_SEAL_KEY_FILE) "
			   "and the passwords (--from-password-file/--to-password-file or $MAILHAUL_FROM_PASSWORD/"
			   "$MAILHAUL_TO_PASSWORD)");
		goto out;
	}
	if (mh_seal_key_load(a->seal_key_file, &key, err) < 0)
		goto out;
	for (int i = 0; i < 2; i++) {
		char *pw = NULL;
		const char *env = getenv(env_name[i]);

		if (files[i] != NULL) {
			if (mh_password_read_file(files[i], &pw, err) < 0)
				goto out;
		} else if (env != NULL && env[0] != '\0') {
			pw = strdup(env);
		} else {
			mh_err_set(err, MH_E_NO_PASSWORD, "the job no longer holds its passwords: set $%s or give %s",
				   env_name[i], i == 0 ? "--from-password-file" : "--to-password-file");
			goto out;
		}
		mh_bytes_free(&sides[i]->sealed_password);
		rc = mh_seal(&key, job_id, pw, strlen(pw), &sides[i]->sealed_password, err);
		mh_secret_free(&pw);
		if (rc < 0)
			goto out;
		rc = -1;
	}
	if (mh_job_spec_encode(&spec, &enc, err) < 0)
		goto out;
	mh_key_job(key_name, sizeof(key_name), job_id, NULL);
	r = rq_command(q, err, "HSET %s spec %b", key_name, enc.data, enc.len);
	if (r != NULL) {
		rq_reply_free(r);
		rc = 0;
	}
out:
	explicit_bzero(&key, sizeof(key));
	mh_bytes_free(&enc);
	mh_job_spec_cleanup(&spec);
	return rc;
}

static bool requeue_wanted(const struct jobs_args *a, const struct mh_job_summary *s, const struct mh_failure *f)
{
	if (a->folder != NULL && strcmp(failure_folder(s, f->folder_idx), a->folder) != 0)
		return false;
	if (a->have_batch && f->batch_id != a->batch)
		return false;
	if (a->error != NULL && strcmp(f->code, a->error) != 0)
		return false;
	return true;
}

/* Publishes the selected failures of one folder as fresh batches. */
static int requeue_folder(struct rq *q, const struct mh_job_summary *s, uint32_t folder_idx,
			  const struct mh_batch_msg *msgs, size_t n, size_t *batches_r, struct mh_err *err)
{
	enum { REQUEUE_BATCH = 200 };
	struct mh_folder_ref f;
	int rc = 0;

	if (mh_job_load_folder(q, s->job_id, folder_idx, &f, err) < 0)
		return -1;
	for (size_t at = 0; at < n && rc == 0; at += REQUEUE_BATCH) {
		struct mh_batch b = {
			.job_id = (char *)s->job_id,
			.folder_idx = folder_idx,
			.src_folder = f.src_raw,
			.dst_folder = f.dst_raw,
			.src_uidvalidity = f.uidvalidity,
			.count = n - at < REQUEUE_BATCH ? n - at : REQUEUE_BATCH,
			.msgs = (struct mh_batch_msg *)&msgs[at],
		};
		struct mh_bytes enc = {0};

		rc = mh_job_next_batch_id(q, s->job_id, &b.batch_id, err);
		if (rc == 0)
			rc = mh_batch_encode(&b, &enc, err);
		if (rc == 0)
			rc = rq_xadd(q, MH_STREAM_BATCHES, "b", enc.data, enc.len, NULL, err);
		mh_bytes_free(&enc);
		(*batches_r)++;
	}
	mh_folder_ref_cleanup(&f);
	return rc;
}

static int cmd_requeue(int argc, char **argv)
{
	struct jobs_args a;
	struct mh_job_summary s;
	struct mh_batch_msg *msgs;
	struct rq *q;
	struct mh_err err;
	size_t selected = 0, batches = 0;
	int rc = MH_EXIT_OK;

	if (parse_jobs_args("requeue", argc, argv, &a) < 0)
		return MH_EXIT_USAGE;
	if (a.job_count != 1) {
		fprintf(stderr, "usage: mailhaul requeue JOB [--folder NAME] [--batch ID] [--error CODE]\n");
		return MH_EXIT_USAGE;
	}
	if ((q = connect_or_say("requeue", a.redis_url)) == NULL)
		return MH_EXIT_CONNECT;
	if (mh_job_load_summary(q, a.jobs[0], 1, &s, &err) < 0) {
		fprintf(stderr, "mailhaul requeue: %s\n", err.detail);
		rq_free(&q);
		return MH_EXIT_FAILED;
	}
	if (s.state == MH_JOB_CANCELLED || s.state == MH_JOB_PAUSED || s.state == MH_JOB_QUEUED ||
	    s.state == MH_JOB_PLANNING) {
		fprintf(stderr, "mailhaul requeue: job %s is %s\n", s.job_id, mh_job_state_name(s.state));
		rc = MH_EXIT_FAILED;
		goto out;
	}
	msgs = calloc(s.failure_count + 1, sizeof(*msgs));
	if (msgs == NULL)
		abort();
	/* failures come in no order: take them folder by folder */
	for (uint32_t fi = 0; fi < s.folder_count && rc == MH_EXIT_OK; fi++) {
		size_t n = 0;
		for (size_t i = 0; i < s.failure_count; i++)
			if (s.failures[i].folder_idx == fi && requeue_wanted(&a, &s, &s.failures[i]))
				msgs[n++] = (struct mh_batch_msg){s.failures[i].uid, s.failures[i].size};
		if (n == 0)
			continue;
		if (selected == 0 && (restore_credentials(q, s.job_id, &a, &err) < 0 ||
				      mh_job_reopen(q, s.job_id, &err) < 0)) {
			fprintf(stderr, "mailhaul requeue: %s\n", err.detail);
			rc = err.code == MH_E_NO_PASSWORD ? MH_EXIT_USAGE : MH_EXIT_FAILED;
			break;
		}
		selected += n;
		/* out of the counts first, so the reopened job is not complete until they return */
		if (mh_job_unfail(q, s.job_id, fi, msgs, n, &err) < 0 ||
		    requeue_folder(q, &s, fi, msgs, n, &batches, &err) < 0) {
			fprintf(stderr, "mailhaul requeue: %s\n", err.detail);
			rc = MH_EXIT_FAILED;
		}
	}
	free(msgs);
	if (rc == MH_EXIT_OK)
		printf("%s: %zu failed messages requeued in %zu batches\n", s.job_id, selected, batches);
out:
	mh_job_summary_cleanup(&s);
	rq_free(&q);
	return rc;
}

/* --- sync now ------------------------------------------------------------------------------ */

/* What a sync of the job copies, in words. */
static const char *sync_what(unsigned opts)
{
	switch (opts & (MH_SYNC_FLAGS | MH_SYNC_DELETES)) {
	case MH_SYNC_FLAGS | MH_SYNC_DELETES:
		return "new messages, flag changes and deletions";
	case MH_SYNC_FLAGS:
		return "new messages and flag changes";
	case MH_SYNC_DELETES:
		return "new messages and deletions";
	default:
		return "new messages";
	}
}

/* --[no-]sync-flags and --[no-]propagate-deletes change what the job's syncs do, this
 * one and later ones (auto-syncs too); *opts_r: what they do now. */
static int apply_sync_opts(struct rq *q, const char *job_id, const struct jobs_args *a, unsigned *opts_r,
			   struct mh_err *err)
{
	unsigned was;

	if (mh_job_sync_opts(q, job_id, &was, err) < 0)
		return -1;
	*opts_r = (was | a->sync_set) & ~a->sync_clear;
	if (a->sync_set != 0) {
		struct mh_job_spec spec;
		bool pop3;
		if (mh_job_load_spec(q, job_id, &spec, err) < 0)
			return -1;
		pop3 = spec.src.proto == MH_PROTO_POP3;
		mh_job_spec_cleanup(&spec);
		if (pop3)
			return mh_err_set(err, MH_E_USAGE,
					  "--sync-flags and --propagate-deletes need an IMAP source (job %s reads POP3)",
					  job_id);
	}
	return *opts_r == was ? 0 : mh_job_set_sync_opts(q, job_id, *opts_r, err);
}

/* Copies what is new on the source since the job's last run, and prints that run's
 * summary: the job's totals, and what this run added to them. */
static int cmd_sync(int argc, char **argv)
{
	struct jobs_args a;
	struct mh_job_summary before, after;
	const struct timespec tick = {0, 200 * 1000 * 1000};
	struct rq *q;
	struct mh_err err;
	int rc = MH_EXIT_OK, queued;
	size_t retried = 0;
	unsigned opts = 0;

	if (parse_jobs_args("sync", argc, argv, &a) < 0)
		return MH_EXIT_USAGE;
	if (a.job_count != 1) {
		fprintf(stderr, "usage: mailhaul sync JOB [--retry-failed] [--[no-]sync-flags] [--[no-]propagate-deletes] "
				"[--json]\n       (with the passwords, as for requeue)\n");
		return MH_EXIT_USAGE;
	}
	if ((q = connect_or_say("sync", a.redis_url)) == NULL)
		return MH_EXIT_CONNECT;
	if (mh_job_load_summary(q, a.jobs[0], 0, &before, &err) < 0) {
		fprintf(stderr, "mailhaul sync: %s\n", err.detail);
		rq_free(&q);
		return MH_EXIT_FAILED;
	}
	if (!mh_job_state_is_final(before.state) || before.state == MH_JOB_CANCELLED) {
		fprintf(stderr, "mailhaul sync: job %s is %s: only an ended job can be synced\n", before.job_id,
			mh_job_summary_state(&before));
		rq_free(&q);
		return MH_EXIT_FAILED;
	}
	if (restore_credentials(q, before.job_id, &a, &err) < 0 ||
	    apply_sync_opts(q, before.job_id, &a, &opts, &err) < 0 ||
	    mh_job_unfail_for_sync(q, before.job_id, a.retry_failed, &retried, &err) < 0 ||
	    (queued = mh_job_sync_submit(q, before.job_id, &err)) < 0) {
		fprintf(stderr, "mailhaul sync: %s\n", err.detail);
		rq_free(&q);
		return err.code == MH_E_NO_PASSWORD ? MH_EXIT_USAGE : MH_EXIT_FAILED;
	}
	if (queued == 0) {
		fprintf(stderr, "mailhaul sync: job %s is not ended any more\n", before.job_id);
		rq_free(&q);
		return MH_EXIT_FAILED;
	}
	if (!a.json)
		fprintf(stderr, "%s: sync queued, syncing %s (%zu failed messages tried again)\n", before.job_id,
			sync_what(opts), retried);
	for (;;) {
		/* counters only while waiting; the details (folders, failures) once, at the end */
		bool ended;

		if (mh_job_load_summary(q, before.job_id, 0, &after, &err) < 0) {
			fprintf(stderr, "mailhaul sync: lost track of the job: %s\n", err.detail);
			rq_free(&q);
			return MH_EXIT_FAILED;
		}
		/* "queued" until a planner takes it: a final state then means this run ended */
		ended = mh_job_state_is_final(after.state);
		mh_job_summary_cleanup(&after);
		if (ended && mh_job_load_summary(q, before.job_id, 1, &after, &err) == 0)
			break;
		if (ended) {
			fprintf(stderr, "mailhaul sync: lost track of the job: %s\n", err.detail);
			rq_free(&q);
			return MH_EXIT_FAILED;
		}
		nanosleep(&tick, NULL);
	}
	if (a.json) {
		report_json(stdout, &after);
	} else {
		report_human(stdout, &after);
		printf("\n  This sync: %" PRIu64 " copied, %" PRIu64 " skipped (already on the target)",
		       after.counts.copied - before.counts.copied, after.counts.skipped - before.counts.skipped);
		if (opts & MH_SYNC_FLAGS)
			printf(", %" PRIu64 " copies given their source's flags", after.flags_updated - before.flags_updated);
		if (opts & MH_SYNC_DELETES)
			printf(", %" PRIu64 " copies deleted", after.deleted - before.deleted);
		putchar('\n');
	}
	if (after.state == MH_JOB_FAILED)
		rc = MH_EXIT_CONNECT;
	else if (after.state != MH_JOB_DONE)
		rc = MH_EXIT_FAILED;
	mh_job_summary_cleanup(&after);
	rq_free(&q);
	return rc;
}

/* --- history ---------------------------------------------------------------------------- */

/* Every run of a job (the migration, then each sync) with what it added. */
static int cmd_history(int argc, char **argv)
{
	struct jobs_args a;
	struct mh_run *runs = NULL;
	size_t n = 0;
	struct rq *q;
	struct mh_err err;

	if (parse_jobs_args("history", argc, argv, &a) < 0)
		return MH_EXIT_USAGE;
	if (a.job_count != 1) {
		fprintf(stderr, "usage: mailhaul history JOB [--json]\n");
		return MH_EXIT_USAGE;
	}
	if ((q = connect_or_say("history", a.redis_url)) == NULL)
		return MH_EXIT_CONNECT;
	if (mh_job_history(q, a.jobs[0], &runs, &n, &err) < 0) {
		fprintf(stderr, "mailhaul history: %s\n", err.detail);
		rq_free(&q);
		return MH_EXIT_FAILED;
	}
	if (a.json) {
		mh_history_json(stdout, runs, n);
		putchar('\n');
	} else {
		printf("%-4s %-20s %-20s %9s %-9s %8s %8s %8s %8s %8s\n", "RUN", "STARTED", "ENDED", "DURATION", "STATE",
		       "COPIED", "SKIPPED", "FAILED", "FLAGS", "DELETED");
	}
	for (size_t i = 0; !a.json && i < n; i++) {
		const struct mh_run *u = &runs[i];
		char start[32], end[32], dur[32];

		mh_fmt_utc(start, sizeof(start), u->started_ms);
		mh_fmt_utc(end, sizeof(end), u->ended_ms);
		mh_fmt_duration(dur, sizeof(dur),
				u->ended_ms > u->started_ms ? (double)(u->ended_ms - u->started_ms) / 1000.0 : 0);
		printf("%-4zu %-20s %-20s %9s %-9s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "\n", i + 1,
		       start, end, dur, u->state, u->copied, u->skipped, u->failed, u->flags_updated, u->deleted);
	}
	free(runs);
	rq_free(&q);
	return MH_EXIT_OK;
}

/* --- auto-sync ------------------------------------------------------------------------------ */

static int cmd_autosync(int argc, char **argv)
{
	struct jobs_args a;
	struct mh_job_summary s;
	struct rq *q;
	struct mh_err err;
	unsigned opts = 0;
	int rc = MH_EXIT_OK;

	if (parse_jobs_args("autosync", argc, argv, &a) < 0)
		return MH_EXIT_USAGE;
	if (a.job_count != 1 || a.off == (a.every_ms > 0)) {
		fprintf(stderr, "usage: mailhaul autosync JOB --every DURATION (e.g. 3h) [--[no-]sync-flags] "
				"[--[no-]propagate-deletes] | --off\n");
		return MH_EXIT_USAGE;
	}
	if ((q = connect_or_say("autosync", a.redis_url)) == NULL)
		return MH_EXIT_CONNECT;
	if (mh_job_load_summary(q, a.jobs[0], 0, &s, &err) < 0) {
		fprintf(stderr, "mailhaul autosync: %s\n", err.detail);
		rq_free(&q);
		return MH_EXIT_FAILED;
	}
	if (s.state == MH_JOB_CANCELLED) {
		fprintf(stderr, "mailhaul autosync: job %s is cancelled\n", s.job_id);
		rc = MH_EXIT_FAILED;
	} else if (a.off) {
		/* stopping it purges the passwords it kept (a running job's go when it ends) */
		if (mh_job_set_autosync(q, s.job_id, 0, &err) < 0 ||
		    (mh_job_state_is_final(s.state) && mh_job_purge_credentials(q, s.job_id, &err) < 0)) {
			fprintf(stderr, "mailhaul autosync: %s\n", err.detail);
			rc = MH_EXIT_FAILED;
		} else {
			printf("%s: auto-sync off%s\n", s.job_id,
			       mh_job_state_is_final(s.state) ? "; its passwords are deleted" : "");
		}
	} else if (restore_credentials(q, s.job_id, &a, &err) < 0 || apply_sync_opts(q, s.job_id, &a, &opts, &err) < 0 ||
		   mh_job_set_autosync(q, s.job_id, a.every_ms, &err) < 0) {
		fprintf(stderr, "mailhaul autosync: %s\n", err.detail);
		rc = err.code == MH_E_NO_PASSWORD ? MH_EXIT_USAGE : MH_EXIT_FAILED;
	} else {
		char every[32];
		mh_fmt_interval(every, sizeof(every), a.every_ms / 1000);
		printf("%s: auto-sync every %s, syncing %s (its passwords are kept, sealed, until 'mailhaul autosync %s "
		       "--off')\n",
		       s.job_id, every, sync_what(opts), s.job_id);
	}
	mh_job_summary_cleanup(&s);
	rq_free(&q);
	return rc;
}

int cmd_jobs(const char *cmd, int argc, char **argv)
{
	if (strcmp(cmd, "status") == 0)
		return cmd_status(argc, argv);
	if (strcmp(cmd, "summary") == 0)
		return cmd_summary(argc, argv);
	if (strcmp(cmd, "sync") == 0)
		return cmd_sync(argc, argv);
	if (strcmp(cmd, "autosync") == 0)
		return cmd_autosync(argc, argv);
	if (strcmp(cmd, "history") == 0)
		return cmd_history(argc, argv);
	if (strcmp(cmd, "failures") == 0)
		return cmd_failures(argc, argv);
	if (strcmp(cmd, "requeue") == 0)
		return cmd_requeue(argc, argv);
	return cmd_control(cmd, argc, argv);
}
