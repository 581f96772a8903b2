/* jobstore.c - a job's state in Redis (see jobstore.h for the key layout). */
#include "jobstore.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rq.h"

static const char *const state_names[] = {"queued", "planning", "running",  "done",
					  "partial", "failed",  "cancelled"};

const char *mh_job_state_name(enum mh_job_state s)
{
	if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
		return "unknown";
	return state_names[s];
}

int mh_job_state_parse(const char *s, enum mh_job_state *s_r)
{
	for (unsigned i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (strcmp(s, state_names[i]) == 0) {
			*s_r = (enum mh_job_state)i;
			return 0;
		}
	}
	return -1;
}

int mh_job_state_is_final(enum mh_job_state s)
{
	return s == MH_JOB_DONE || s == MH_JOB_PARTIAL || s == MH_JOB_FAILED || s == MH_JOB_CANCELLED;
}

uint64_t mh_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void mh_job_id_new(char id[MH_JOB_ID_MAX])
{
	unsigned char r[8];

	if (RAND_bytes(r, sizeof(r)) != 1)
		abort(); /* no randomness: nothing safe to do */
	snprintf(id, MH_JOB_ID_MAX, "j-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
		 r[6], r[7]);
}

void mh_key_job(char *buf, size_t len, const char *job_id, const char *suffix)
{
	snprintf(buf, len, "mh:job:%s%s", job_id, suffix != NULL ? suffix : "");
}

void mh_key_folder(char *buf, size_t len, const char *job_id, uint32_t folder_idx)
{
	snprintf(buf, len, "mh:job:%s:folder:%" PRIu32, job_id, folder_idx);
}

/* Runs a command whose reply we only check for errors. */
static int simple(struct rq *q, struct mh_err *err, struct redisReply *r)
{
	if (r == NULL)
		return -1;
	rq_reply_free(r);
	(void)q;
	(void)err;
	return 0;
}

int mh_job_submit(struct rq *q, const struct mh_job_spec *spec, struct mh_err *err)
{
	char key[MH_KEY_MAX], src[600], dst[600];
	struct mh_bytes enc = {0};
	struct mh_endpoint ep;
	int rc;

	if (mh_job_spec_encode(spec, &enc, err) < 0)
		return -1;
	mh_key_job(key, sizeof(key), spec->job_id, NULL);

	/* Descriptions for status and records: the endpoints without passwords. */
	memset(&ep, 0, sizeof(ep));
	ep.proto = spec->src.proto;
	ep.security = spec->src.security;
	snprintf(ep.host, sizeof(ep.host), "%s", spec->src.host);
	ep.port = spec->src.port;
	snprintf(ep.user, sizeof(ep.user), "%s", spec->src.user);
	mh_endpoint_format(&ep, src, sizeof(src));
	ep.proto = spec->dst.proto;
	ep.security = spec->dst.security;
	snprintf(ep.host, sizeof(ep.host), "%s", spec->dst.host);
	ep.port = spec->dst.port;
	snprintf(ep.user, sizeof(ep.user), "%s", spec->dst.user);
	mh_endpoint_format(&ep, dst, sizeof(dst));

	rc = simple(q, err,
		    rq_command(q, err, "HSET %s spec %b state queued created %" PRIu64 " src %s dst %s", key,
			       enc.data, enc.len, mh_now_ms(), src, dst));
	mh_bytes_free(&enc);
	if (rc < 0)
		return -1;
	if (simple(q, err, rq_command(q, err, "ZADD mh:index %" PRIu64 " %s", mh_now_ms(), spec->job_id)) < 0)
		return -1;
	return rq_xadd(q, MH_STREAM_JOBS, "job", spec->job_id, strlen(spec->job_id), NULL, err);
}

int mh_job_load_spec(struct rq *q, const char *job_id, struct mh_job_spec *spec, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;
	int rc;

	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err, "HGET %s spec", key);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_STRING) {
		rq_reply_free(r);
		return mh_err_set(err, MH_E_WIRE, "job %s has no spec (deleted?)", job_id);
	}
	rc = mh_job_spec_decode(r->str, r->len, spec, err);
	rq_reply_free(r);
	return rc;
}

int mh_job_purge_credentials(struct rq *q, const char *job_id, struct mh_err *err)
{
	struct mh_job_spec spec;
	struct mh_bytes enc = {0};
	char key[MH_KEY_MAX];
	int rc;

	if (mh_job_load_spec(q, job_id, &spec, err) < 0)
		return -1;
	mh_bytes_free(&spec.src.sealed_password);
	mh_bytes_free(&spec.dst.sealed_password);
	rc = mh_job_spec_encode(&spec, &enc, err);
	mh_job_spec_cleanup(&spec);
	if (rc < 0)
		return -1;
	mh_key_job(key, sizeof(key), job_id, NULL);
	rc = simple(q, err, rq_command(q, err, "HSET %s spec %b", key, enc.data, enc.len));
	mh_bytes_free(&enc);
	return rc;
}

int mh_job_get_state(struct rq *q, const char *job_id, enum mh_job_state *state_r, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;
	int rc = 0;

	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err, "HGET %s state", key);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_STRING || mh_job_state_parse(r->str, state_r) < 0)
		rc = mh_err_set(err, MH_E_WIRE, "job %s has no valid state", job_id);
	rq_reply_free(r);
	return rc;
}

int mh_job_set_state(struct rq *q, const char *job_id, enum mh_job_state state, const struct mh_err *error,
		     struct mh_err *err)
{
	char key[MH_KEY_MAX];
	const char *name = mh_job_state_name(state);

	mh_key_job(key, sizeof(key), job_id, NULL);
	if (state == MH_JOB_PLANNING &&
	    simple(q, err, rq_command(q, err, "HSETNX %s started %" PRIu64, key, mh_now_ms())) < 0)
		return -1;
	if (error != NULL && error->code != MH_E_OK &&
	    simple(q, err,
		   rq_command(q, err, "HSET %s error %s error_detail %s", key, mh_err_name(error->code),
			      error->detail)) < 0)
		return -1;
	if (mh_job_state_is_final(state))
		return simple(q, err,
			      rq_command(q, err, "HSET %s state %s ended %" PRIu64, key, name, mh_now_ms()));
	return simple(q, err, rq_command(q, err, "HSET %s state %s", key, name));
}

int mh_job_add_folder(struct rq *q, const char *job_id, uint32_t folder_idx, const char *src, const char *dst,
		      uint64_t messages, uint64_t bytes, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_folder(key, sizeof(key), job_id, folder_idx);
	return simple(q, err,
		      rq_command(q, err, "HSET %s src %s dst %s messages %" PRIu64 " bytes %" PRIu64, key, src,
				 dst, messages, bytes));
}

int mh_job_set_plan(struct rq *q, const char *job_id, uint32_t folders, uint64_t messages, uint64_t bytes,
		    uint64_t batches, struct mh_err *err)
{
	char key[MH_KEY_MAX];

	mh_key_job(key, sizeof(key), job_id, NULL);
	return simple(q, err,
		      rq_command(q, err,
				 "HSET %s folders %" PRIu32 " messages %" PRIu64 " bytes %" PRIu64
				 " batches %" PRIu64,
				 key, folders, messages, bytes, batches));
}

/* KEYS: job hash, done hash, folder hash, fail hash.
 * ARGV: folder index, then per message: uid, status (c|s|f), bytes, code, detail, target uid.
 * The done hash maps "<folder>:<uid>" to the status letter, followed by the target UID
 * when known (APPENDUID), so a retry can check what a message became.
 * A message's first result counts; a later copied/skipped replaces a failure. */
static const char record_script[] =
	"local f = ARGV[1]\n"
	"local names = {c = 'copied', s = 'skipped', f = 'failed'}\n"
	"for i = 2, #ARGV, 6 do\n"
	"  local field = f .. ':' .. ARGV[i]\n"
	"  local st, bytes = ARGV[i + 1], tonumber(ARGV[i + 2])\n"
	"  local prev = redis.call('HGET', KEYS[2], field)\n"
	"  if prev then prev = string.sub(prev, 1, 1) end\n"
	"  if prev == false or prev == nil or (prev == 'f' and st ~= 'f') then\n"
	"    if prev == 'f' then\n"
	"      for _, k in ipairs({KEYS[1], KEYS[3]}) do\n"
	"        redis.call('HINCRBY', k, 'failed', -1)\n"
	"        redis.call('HINCRBY', k, 'failed_bytes', -bytes)\n"
	"      end\n"
	"      redis.call('HDEL', KEYS[4], field)\n"
	"    end\n"
	"    redis.call('HSET', KEYS[2], field, st .. ARGV[i + 5])\n"
	"    for _, k in ipairs({KEYS[1], KEYS[3]}) do\n"
	"      redis.call('HINCRBY', k, names[st], 1)\n"
	"      redis.call('HINCRBY', k, names[st] .. '_bytes', bytes)\n"
	"    end\n"
	"    if st == 'f' then\n"
	"      redis.call('HSET', KEYS[4], field, ARGV[i + 3] .. '\\t' .. bytes .. '\\t' .. ARGV[i + 4])\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return 0\n";

int mh_job_record_results(struct rq *q, const char *job_id, uint32_t folder_idx, const struct mh_msg_result *msgs,
			  size_t count, struct mh_err *err)
{
	/* Chunks keep each script call (and its argv) small. */
	enum { CHUNK = 200, FIXED = 7, PER_MSG = 6 };
	const char *argv[FIXED + CHUNK * PER_MSG];
	size_t argvlen[FIXED + CHUNK * PER_MSG];
	char keys[4][MH_KEY_MAX], fidx[16], nums[CHUNK][3][24];

	mh_key_job(keys[0], sizeof(keys[0]), job_id, NULL);
	mh_key_job(keys[1], sizeof(keys[1]), job_id, ":done");
	mh_key_folder(keys[2], sizeof(keys[2]), job_id, folder_idx);
	mh_key_job(keys[3], sizeof(keys[3]), job_id, ":fail");
	snprintf(fidx, sizeof(fidx), "%" PRIu32, folder_idx);

	for (size_t base = 0; base < count; base += CHUNK) {
		size_t n = count - base < CHUNK ? count - base : CHUNK;
		int argc = 0;
		struct redisReply *r;

		argv[argc++] = "EVAL";
		argv[argc++] = record_script;
		argv[argc++] = "4";
		for (int k = 0; k < 4; k++)
			argv[argc++] = keys[k];
		argv[argc++] = fidx;
		for (size_t i = 0; i < n; i++) {
			const struct mh_msg_result *m = &msgs[base + i];
			snprintf(nums[i][0], sizeof(nums[i][0]), "%" PRIu32, m->uid);
			snprintf(nums[i][1], sizeof(nums[i][1]), "%" PRIu64, m->bytes);
			argv[argc++] = nums[i][0];
			argv[argc++] = m->status == MH_MSG_COPIED ? "c" : m->status == MH_MSG_SKIPPED ? "s" : "f";
			argv[argc++] = nums[i][1];
			argv[argc++] = m->error != NULL ? m->error : "";
			argv[argc++] = m->detail != NULL ? m->detail : "";
			if (m->dst_uid != 0)
				snprintf(nums[i][2], sizeof(nums[i][2]), "%" PRIu32, m->dst_uid);
			else
				nums[i][2][0] = '\0';
			argv[argc++] = nums[i][2];
		}
		for (int k = 0; k < argc; k++)
			argvlen[k] = strlen(argv[k]);
		r = rq_command_argv(q, err, argc, argv, argvlen);
		if (r == NULL)
			return -1;
		rq_reply_free(r);
	}
	return 0;
}

static uint64_t u64_field(const struct redisReply *r)
{
	uint64_t v = 0;

	if (r == NULL || r->type != REDIS_REPLY_STRING)
		return 0;
	for (size_t i = 0; i < r->len && r->str[i] >= '0' && r->str[i] <= '9'; i++)
		v = v * 10 + (uint64_t)(r->str[i] - '0');
	return v;
}

static void str_field(const struct redisReply *r, char *dst, size_t len)
{
	if (r == NULL || r->type != REDIS_REPLY_STRING)
		dst[0] = '\0';
	else
		snprintf(dst, len, "%.*s", (int)r->len, r->str);
}

#define COUNT_FIELDS "messages bytes copied copied_bytes skipped skipped_bytes failed failed_bytes"

static void counts_from(struct redisReply **e, struct mh_counts *c)
{
	c->messages = u64_field(e[0]);
	c->bytes = u64_field(e[1]);
	c->copied = u64_field(e[2]);
	c->copied_bytes = u64_field(e[3]);
	c->skipped = u64_field(e[4]);
	c->skipped_bytes = u64_field(e[5]);
	c->failed = u64_field(e[6]);
	c->failed_bytes = u64_field(e[7]);
}

static int load_failures(struct rq *q, const char *job_id, struct mh_job_summary *s, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;

	mh_key_job(key, sizeof(key), job_id, ":fail");
	r = rq_command(q, err, "HGETALL %s", key);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
		s->failures = calloc(r->elements / 2, sizeof(*s->failures));
		if (s->failures == NULL)
			abort();
		for (size_t i = 0; i + 1 < r->elements; i += 2) {
			struct mh_failure *f = &s->failures[s->failure_count];
			const char *name = r->element[i]->str, *val = r->element[i + 1]->str;
			const char *tab1, *tab2;
			unsigned long long fi, uid;

			if (sscanf(name, "%llu:%llu", &fi, &uid) != 2)
				continue;
			f->folder_idx = (uint32_t)fi;
			f->uid = (uint32_t)uid;
			tab1 = strchr(val, '\t');
			tab2 = tab1 != NULL ? strchr(tab1 + 1, '\t') : NULL;
			if (tab1 == NULL || tab2 == NULL)
				continue;
			snprintf(f->code, sizeof(f->code), "%.*s", (int)(tab1 - val), val);
			f->size = strtoull(tab1 + 1, NULL, 10);
			snprintf(f->detail, sizeof(f->detail), "%s", tab2 + 1);
			s->failure_count++;
		}
	}
	rq_reply_free(r);
	return 0;
}

int mh_job_load_summary(struct rq *q, const char *job_id, int with_details, struct mh_job_summary *s,
			struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;

	memset(s, 0, sizeof(*s));
	snprintf(s->job_id, sizeof(s->job_id), "%s", job_id);
	mh_key_job(key, sizeof(key), job_id, NULL);
	r = rq_command(q, err,
		       "HMGET %s " COUNT_FIELDS " state created started ended folders error error_detail src dst",
		       key);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 17 || r->element[8]->type != REDIS_REPLY_STRING) {
		rq_reply_free(r);
		return mh_err_set(err, MH_E_USAGE, "no job %s", job_id);
	}
	counts_from(r->element, &s->counts);
	if (mh_job_state_parse(r->element[8]->str, &s->state) < 0)
		s->state = MH_JOB_FAILED;
	s->created_ms = u64_field(r->element[9]);
	s->started_ms = u64_field(r->element[10]);
	s->ended_ms = u64_field(r->element[11]);
	s->planned_folders = (uint32_t)u64_field(r->element[12]);
	str_field(r->element[13], s->error, sizeof(s->error));
	str_field(r->element[14], s->error_detail, sizeof(s->error_detail));
	str_field(r->element[15], s->src, sizeof(s->src));
	str_field(r->element[16], s->dst, sizeof(s->dst));
	rq_reply_free(r);
	if (!with_details)
		return 0;

	s->folders = calloc(s->planned_folders + 1u, sizeof(*s->folders));
	if (s->folders == NULL)
		abort();
	for (uint32_t i = 0; i < s->planned_folders; i++) {
		struct mh_folder_summary *f = &s->folders[s->folder_count];

		mh_key_folder(key, sizeof(key), job_id, i);
		r = rq_command(q, err, "HMGET %s " COUNT_FIELDS " src dst", key);
		if (r == NULL) {
			mh_job_summary_cleanup(s);
			return -1;
		}
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 10 && r->element[8]->type == REDIS_REPLY_STRING) {
			counts_from(r->element, &f->counts);
			f->src = strdup(r->element[8]->str);
			f->dst = strdup(r->element[9]->type == REDIS_REPLY_STRING ? r->element[9]->str : "");
			s->folder_count++;
		}
		rq_reply_free(r);
	}
	if (load_failures(q, job_id, s, err) < 0) {
		mh_job_summary_cleanup(s);
		return -1;
	}
	return 0;
}

void mh_job_summary_cleanup(struct mh_job_summary *s)
{
	for (size_t i = 0; i < s->folder_count; i++) {
		free(s->folders[i].src);
		free(s->folders[i].dst);
	}
	free(s->folders);
	free(s->failures);
	s->folders = NULL;
	s->failures = NULL;
	s->folder_count = s->failure_count = 0;
}

int mh_job_counts_complete(const struct mh_counts *c)
{
	return c->copied + c->skipped + c->failed >= c->messages;
}
