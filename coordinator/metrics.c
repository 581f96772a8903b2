/* metrics.c - the cluster's numbers in the Prometheus text format (see metrics.h). */
#include "metrics.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "jobstore.h"
#include "rq.h"

/* A worker that read its stream within this long counts as live: its copy threads block
 * on XREADGROUP for a few seconds at a time. */
#define LIVE_IDLE_MS 60000

/* One pass over every job (one script: a consistent view, one round trip): how many are
 * in each state, and the message and byte counts summed. Returns {{state, n, ...},
 * {copied, skipped, failed, copied_bytes, skipped_bytes, failed_bytes, flags_updated,
 * deleted}}. */
static const char jobs_script[] =
	"local states, sums = {}, {0, 0, 0, 0, 0, 0, 0, 0}\n"
	"local fields = {'copied', 'skipped', 'failed', 'copied_bytes', 'skipped_bytes', 'failed_bytes',\n"
	"                'flags_updated', 'deleted'}\n"
	"for _, id in ipairs(redis.call('ZRANGE', 'mh:index', 0, -1)) do\n"
	"  local v = redis.call('HMGET', 'mh:job:' .. id, 'state', unpack(fields))\n"
	"  if v[1] then\n"
	"    states[v[1]] = (states[v[1]] or 0) + 1\n"
	"    for i = 1, #fields do sums[i] = sums[i] + (tonumber(v[i + 1]) or 0) end\n"
	"  end\n"
	"end\n"
	"local flat = {}\n"
	"for k, n in pairs(states) do flat[#flat + 1] = k; flat[#flat + 1] = n end\n"
	"return {flat, sums}\n";

static uint64_t int_reply(const struct redisReply *r)
{
	if (r == NULL)
		return 0;
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer > 0 ? (uint64_t)r->integer : 0;
	if (r->type == REDIS_REPLY_STRING)
		return strtoull(r->str, NULL, 10);
	return 0;
}

static int count_of(struct rq *q, uint64_t *n_r, struct mh_err *err, const char *cmd)
{
	struct redisReply *r = rq_command(q, err, cmd);

	if (r == NULL)
		return -1;
	*n_r = int_reply(r);
	rq_reply_free(r);
	return 0;
}

static int write_jobs(struct rq *q, FILE *out, struct mh_err *err)
{
	static const char *const states[] = {"queued", "planning", "running", "paused", "done", "partial", "failed",
					     "cancelled"};
	static const char *const results[] = {"copied", "skipped", "failed"};
	struct redisReply *r = rq_command(q, err, "EVAL %s 0", jobs_script);
	const struct redisReply *flat, *sums;

	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[1]->type != REDIS_REPLY_ARRAY ||
	    r->element[1]->elements != 8) {
		rq_reply_free(r);
		return mh_err_set(err, MH_E_REDIS, "metrics: unexpected reply");
	}
	flat = r->element[0];
	sums = r->element[1];
	fputs("# HELP mailhaul_jobs Jobs by state.\n# TYPE mailhaul_jobs gauge\n", out);
	/* every state, 0 included: a series that comes and goes breaks alerts */
	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		uint64_t n = 0;
		for (size_t i = 0; flat->type == REDIS_REPLY_ARRAY && i + 1 < flat->elements; i += 2)
			if (flat->element[i]->type == REDIS_REPLY_STRING && strcmp(flat->element[i]->str, states[s]) == 0)
				n = int_reply(flat->element[i + 1]);
		fprintf(out, "mailhaul_jobs{state=\"%s\"} %" PRIu64 "\n", states[s], n);
	}
	fputs("# HELP mailhaul_messages Messages of the jobs Redis holds, by result.\n"
	      "# TYPE mailhaul_messages gauge\n",
	      out);
	for (int i = 0; i < 3; i++)
		fprintf(out, "mailhaul_messages{result=\"%s\"} %" PRIu64 "\n", results[i], int_reply(sums->element[i]));
	fputs("# HELP mailhaul_bytes Bytes of the jobs Redis holds, by result.\n# TYPE mailhaul_bytes gauge\n", out);
	for (int i = 0; i < 3; i++)
		fprintf(out, "mailhaul_bytes{result=\"%s\"} %" PRIu64 "\n", results[i], int_reply(sums->element[3 + i]));
	fprintf(out,
		"# HELP mailhaul_flag_updates Copies given their source's changed flags by syncs.\n"
		"# TYPE mailhaul_flag_updates gauge\nmailhaul_flag_updates %" PRIu64 "\n"
		"# HELP mailhaul_copies_deleted Copies deleted by syncs (--propagate-deletes).\n"
		"# TYPE mailhaul_copies_deleted gauge\nmailhaul_copies_deleted %" PRIu64 "\n",
		int_reply(sums->element[6]), int_reply(sums->element[7]));
	rq_reply_free(r);
	return 0;
}

/* Consumers of the batches' group that read lately: the copy threads of live workers. */
static int live_consumers(struct rq *q, uint64_t *n_r, struct mh_err *err)
{
	struct redisReply *r = rq_command(q, err, "XINFO CONSUMERS " MH_STREAM_BATCHES " " MH_GROUP_WORKERS);

	*n_r = 0;
	if (r == NULL) {
		/* no stream or group yet: nobody has started */
		mh_err_clear(err);
		return 0;
	}
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const struct redisReply *c = r->element[i];
		for (size_t j = 0; c->type == REDIS_REPLY_ARRAY && j + 1 < c->elements; j += 2)
			if (c->element[j]->type == REDIS_REPLY_STRING && strcmp(c->element[j]->str, "idle") == 0 &&
			    int_reply(c->element[j + 1]) < LIVE_IDLE_MS)
				(*n_r)++;
	}
	rq_reply_free(r);
	return 0;
}

static int planner_pools(struct rq *q, uint64_t *n_r, struct mh_err *err)
{
	char cursor[32] = "0";

	*n_r = 0;
	do {
		struct redisReply *r = rq_command(q, err, "SCAN %s MATCH mh:planner:* COUNT 1000", cursor);
		if (r == NULL)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
			rq_reply_free(r);
			return mh_err_set(err, MH_E_REDIS, "metrics: unexpected SCAN reply");
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		if (r->element[1]->type == REDIS_REPLY_ARRAY)
			*n_r += r->element[1]->elements;
		rq_reply_free(r);
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

int metrics_write(struct rq *q, FILE *out, struct mh_err *err)
{
	static const struct {
		const char *name, *help, *cmd;
	} gauges[] = {
		{"mailhaul_batches_queued", "Batches on mh:batches not yet done (waiting or in a worker's hands).",
		 "XLEN " MH_STREAM_BATCHES},
		{"mailhaul_batches_retry_waiting", "Batches waiting for their retry time.", "ZCARD " MH_ZSET_RETRY},
		{"mailhaul_results_queued", "Batch results not yet recorded by the coordinator.",
		 "XLEN " MH_STREAM_RESULTS},
		{"mailhaul_jobs_unplanned", "Job submissions not yet taken by a planner.", "XLEN " MH_STREAM_JOBS},
		{"mailhaul_jobs_active", "Jobs not yet ended.", "SCARD " MH_SET_ACTIVE},
		{"mailhaul_jobs_autosync", "Jobs with auto-sync on.", "ZCARD " MH_ZSET_AUTOSYNC},
	};
	uint64_t n;

	if (write_jobs(q, out, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
		if (count_of(q, &n, err, gauges[i].cmd) < 0)
			return -1;
		fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n", gauges[i].name, gauges[i].help,
			gauges[i].name, gauges[i].name, n);
	}
	if (live_consumers(q, &n, err) < 0)
		return -1;
	fprintf(out,
		"# HELP mailhaul_copy_threads_live Worker copy threads that read mh:batches in the last minute.\n"
		"# TYPE mailhaul_copy_threads_live gauge\nmailhaul_copy_threads_live %" PRIu64 "\n",
		n);
	if (planner_pools(q, &n, err) < 0)
		return -1;
	fprintf(out,
		"# HELP mailhaul_planner_pools Live planner pools (one per worker, and the coordinator's when it "
		"plans).\n# TYPE mailhaul_planner_pools gauge\nmailhaul_planner_pools %" PRIu64 "\n",
		n);
	return 0;
}
