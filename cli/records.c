/* records.c - `mailhaul records` (the transfer records) and `mailhaul forget` (delete them). */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forget.h"
#include "rq.h"

#define RECORDS_MAX 100000

static void record_json(FILE *out, const struct mh_job_summary *s)
{
	char started[32], ended[32];

	mh_fmt_utc(started, sizeof(started), s->started_ms ? s->started_ms : s->created_ms);
	mh_fmt_utc(ended, sizeof(ended), s->ended_ms);
	fputs("{\"job\":", out);
	mh_json_str(out, s->job_id);
	fprintf(out, ",\"state\":\"%s\",\"source\":", mh_job_state_name(s->state));
	mh_json_str(out, s->src);
	fputs(",\"target\":", out);
	mh_json_str(out, s->dst);
	fprintf(out,
		",\"started\":\"%s\",\"ended\":%s%s%s,\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"skipped\":%" PRIu64
		",\"failed\":%" PRIu64 ",\"error\":",
		started, s->ended_ms ? "\"" : "", s->ended_ms ? ended : "null", s->ended_ms ? "\"" : "", s->counts.copied,
		s->counts.copied_bytes, s->counts.skipped, s->counts.failed);
	mh_json_str(out, s->error[0] != '\0' ? s->error : NULL);
	fputs(",\"error_detail\":", out);
	mh_json_str(out, s->error[0] != '\0' ? s->error_detail : NULL);
	fputc('}', out);
}

static void record_text(FILE *out, const struct mh_job_summary *s)
{
	char started[32], ended[32], bytes[32];

	mh_fmt_utc(started, sizeof(started), s->started_ms ? s->started_ms : s->created_ms);
	mh_fmt_utc(ended, sizeof(ended), s->ended_ms);
	mh_fmt_bytes(bytes, sizeof(bytes), s->counts.copied_bytes);
	fprintf(out, "%s  %-9s %s -> %s\n", s->job_id, mh_job_state_name(s->state), s->src, s->dst);
	fprintf(out, "    %s .. %s  %" PRIu64 " messages (%s) copied, %" PRIu64 " skipped, %" PRIu64 " failed\n",
		started, ended, s->counts.copied, bytes, s->counts.skipped, s->counts.failed);
	if (s->error[0] != '\0')
		fprintf(out, "    error %s: %s\n", s->error, s->error_detail);
}

static int list_records(struct rq *q, bool json)
{
	char **ids;
	size_t n;
	struct mh_err err;

	if (mh_job_list(q, RECORDS_MAX, &ids, &n, &err) < 0) {
		fprintf(stderr, "mailhaul records: %s\n", err.detail);
		return MH_EXIT_FAILED;
	}
	if (json)
		fputc('[', stdout);
	for (size_t i = 0, shown = 0; i < n; i++) {
		struct mh_job_summary s;
		if (mh_job_load_summary(q, ids[i], 0, &s, &err) < 0)
			continue;
		if (json) {
			if (shown++)
				fputc(',', stdout);
			record_json(stdout, &s);
		} else {
			record_text(stdout, &s);
		}
		mh_job_summary_cleanup(&s);
	}
	if (json)
		fputs("]\n", stdout);
	else if (n == 0)
		puts("no transfer records");
	mh_job_list_free(ids, n);
	return MH_EXIT_OK;
}

static int forget_jobs(struct rq *q, char **ids, size_t n)
{
	int rc = MH_EXIT_OK;

	for (size_t i = 0; i < n; i++) {
		struct mh_forget_report rep;
		struct mh_err err;
		int got = mh_job_forget(q, ids[i], &rep, &err);

		if (got < 0) {
			fprintf(stderr, "mailhaul forget: %s\n", err.detail);
			rc = err.code == MH_E_USAGE ? MH_EXIT_USAGE : MH_EXIT_FAILED;
		} else if (got == 0) {
			fprintf(stderr, "mailhaul forget: no job %s\n", ids[i]);
			rc = MH_EXIT_USAGE;
		} else {
			printf("forgot %s: %zu keys deleted (the transfer record, state and counters, %zu folder "
			       "records, the failure ledger, in-flight and claim maps, sealed credentials if any), "
			       "%zu retry batches, %zu index entries\n",
			       ids[i], rep.keys, rep.folder_keys, rep.retry_batches, rep.index_entries);
		}
	}
	return rc;
}

static void usage(FILE *out, const char *cmd)
{
	if (strcmp(cmd, "records") == 0)
		fputs("usage: mailhaul records [--json] [--redis URL]\n"
		      "  every transfer record: source and target (protocol, user, server), start and end,\n"
		      "  messages and bytes copied, skipped and failed counts, the job's error\n",
		      out);
	else
		fputs("usage: mailhaul forget JOB... | --user ADDRESS  [--redis URL]\n"
		      "  deletes each ended job's record and every other trace of it in Redis\n",
		      out);
}

int cmd_records(const char *cmd, int argc, char **argv)
{
	enum { O_REDIS = 256, O_JSON, O_USER, O_HELP };
	static const struct option opts[] = {
		{"redis", required_argument, NULL, O_REDIS},
		{"json", no_argument, NULL, O_JSON},
		{"user", required_argument, NULL, O_USER},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	const char *redis_url = cli_default_redis_url(), *user = NULL;
	bool json = false, forget = strcmp(cmd, "forget") == 0;
	struct rq *q;
	struct mh_err err;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_REDIS: redis_url = optarg; break;
		case O_JSON: json = true; break;
		case O_USER: user = optarg; break;
		case O_HELP: usage(stdout, cmd); return MH_EXIT_OK;
		default: usage(stderr, cmd); return MH_EXIT_USAGE;
		}
	}
	if ((forget && (user == NULL) == (optind == argc)) || (!forget && (optind < argc || user != NULL))) {
		usage(stderr, cmd);
		return MH_EXIT_USAGE;
	}
	q = rq_connect(redis_url, 5000, &err);
	if (q == NULL) {
		fprintf(stderr, "mailhaul %s: %s: %s\n", cmd, mh_err_text(err.code), err.detail);
		return MH_EXIT_FAILED;
	}
	if (!forget) {
		rc = list_records(q, json);
	} else if (user != NULL) {
		char **ids;
		size_t n;
		if (mh_jobs_of_user(q, user, &ids, &n, &err) < 0) {
			fprintf(stderr, "mailhaul forget: %s\n", err.detail);
			rc = MH_EXIT_FAILED;
		} else {
			if (n == 0)
				printf("no jobs of %s\n", user);
			rc = forget_jobs(q, ids, n);
			mh_job_list_free(ids, n);
		}
	} else {
		rc = forget_jobs(q, argv + optind, (size_t)(argc - optind));
	}
	rq_free(&q);
	return rc;
}
