/* plan_pop3.c - folders, identities and batches of a job with a POP3 source (see plan_pop3.h). */
#include "plan_pop3.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_utf7.h"
#include "jobstore.h"
#include "log.h"
#include "msgheader.h"
#include "pop3_connect.h"
#include "pop3_ident.h"
#include "pop3store.h"
#include "rq.h"

struct target_box {
	bool exists;
	uint32_t uidvalidity, uidnext, messages;
};

static void on_list(void *ctx, const struct imap_response *r)
{
	struct target_box *t = ctx;

	if (r->name != NULL && strcmp(r->name, "LIST") == 0 && r->count >= 3) {
		bool noselect = false;
		for (size_t i = 0; r->args[0].type == IMAP_ARG_LIST && i < r->args[0].count; i++)
			noselect |= imap_arg_is(&r->args[0].items[i], "\\Noselect") ||
				    imap_arg_is(&r->args[0].items[i], "\\NonExistent");
		t->exists |= !noselect;
	}
}

static void on_examine(void *ctx, const struct imap_response *r)
{
	struct target_box *t = ctx;
	uint64_t v;

	if (r->status == IMAP_STATUS_OK && r->code != NULL && strcmp(r->code, "UIDVALIDITY") == 0 &&
	    imap_parse_number(r->code_args, strlen(r->code_args), UINT32_MAX, &v) == 0)
		t->uidvalidity = (uint32_t)v;
	else if (r->status == IMAP_STATUS_OK && r->code != NULL && strcmp(r->code, "UIDNEXT") == 0 &&
		 imap_parse_number(r->code_args, strlen(r->code_args), UINT32_MAX, &v) == 0)
		t->uidnext = (uint32_t)v;
	else if (r->name != NULL && strcmp(r->name, "EXISTS") == 0 && r->has_number)
		t->messages = r->number;
}

/* What the target folder holds, as keys (see mh_pop3_target_keys): a multiset, sorted,
 * duplicates kept. */
struct id_bag {
	char **v;
	bool *used; /* set up by bag_sort */
	size_t n, cap;
	/* messages without a Message-ID, whose header is hashed in a second pass */
	uint32_t *noid_uid;
	uint64_t *noid_size;
	size_t noid_n, noid_cap;
};

static void bag_add(struct id_bag *bag, char *key)
{
	if (bag->n == bag->cap) {
		bag->cap = bag->cap ? bag->cap * 2 : 64;
		bag->v = realloc(bag->v, bag->cap * sizeof(*bag->v));
		if (bag->v == NULL)
			abort();
	}
	bag->v[bag->n++] = key;
}

static void on_target_id(void *ctx, const struct imap_response *r)
{
	struct id_bag *bag = ctx;
	const struct imap_arg *hdr = imap_fetch_attr_prefix(r, "BODY[HEADER.FIELDS");
	const struct imap_arg *uid = imap_fetch_attr(r, "UID"), *size = imap_fetch_attr(r, "RFC822.SIZE");
	uint64_t u = 0, sz = 0;
	char *id = NULL, *key;

	if (uid == NULL || size == NULL || imap_arg_number(uid, UINT32_MAX, &u) < 0 ||
	    imap_arg_number(size, UINT64_MAX, &sz) < 0)
		return;
	if (hdr != NULL && (hdr->type == IMAP_ARG_LITERAL || hdr->type == IMAP_ARG_STRING))
		id = mh_header_message_id(hdr->str, hdr->len);
	if (id == NULL) {
		if (bag->noid_n == bag->noid_cap) {
			bag->noid_cap = bag->noid_cap ? bag->noid_cap * 2 : 16;
			bag->noid_uid = realloc(bag->noid_uid, bag->noid_cap * sizeof(*bag->noid_uid));
			bag->noid_size = realloc(bag->noid_size, bag->noid_cap * sizeof(*bag->noid_size));
			if (bag->noid_uid == NULL || bag->noid_size == NULL)
				abort();
		}
		bag->noid_uid[bag->noid_n] = (uint32_t)u;
		bag->noid_size[bag->noid_n++] = sz;
		return;
	}
	if ((key = malloc(strlen(id) + 3)) == NULL)
		abort();
	sprintf(key, "M:%s", id);
	free(id);
	bag_add(bag, key);
}

/* Second pass: the whole header of a message without a Message-ID, hashed as the planner
 * does ("H:<size>:<sha256>", CRs left out). */
static void on_target_header(void *ctx, const struct imap_response *r)
{
	struct id_bag *bag = ctx;
	const struct imap_arg *hdr = imap_fetch_attr(r, "BODY[HEADER]"), *uid = imap_fetch_attr(r, "UID");
	uint64_t u = 0;

	if (hdr == NULL || uid == NULL || imap_arg_number(uid, UINT32_MAX, &u) < 0 ||
	    (hdr->type != IMAP_ARG_LITERAL && hdr->type != IMAP_ARG_STRING))
		return;
	for (size_t i = 0; i < bag->noid_n; i++) {
		if (bag->noid_uid[i] != u)
			continue;
		bag_add(bag, mh_header_hash_key(hdr->str, hdr->len, bag->noid_size[i]));
		return;
	}
}

/* The keys of what the target folder holds (it is selected). */
static int read_target_keys(struct event_base *base, struct imap_client *c, struct id_bag *held, struct mh_err *err)
{
	int rc = imap_client_run(base, c, on_target_id, NULL, held, err,
				 "UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");

	for (size_t at = 0; rc > 0 && at < held->noid_n; at += 200) {
		char set[200 * 11 + 1];
		size_t o = 0;
		for (size_t i = at; i < held->noid_n && i < at + 200; i++)
			o += (size_t)snprintf(set + o, sizeof(set) - o, "%s%" PRIu32, i > at ? "," : "", held->noid_uid[i]);
		rc = imap_client_run(base, c, on_target_header, NULL, held, err, "UID FETCH %s (UID BODY.PEEK[HEADER])", set);
	}
	return rc > 0 ? 0 : -1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void bag_sort(struct id_bag *bag)
{
	qsort(bag->v, bag->n, sizeof(*bag->v), cmp_str);
	bag->used = calloc(bag->n + 1, sizeof(*bag->used));
	if (bag->used == NULL)
		abort();
}

/* Takes one id out of the bag; true when it was there. */
static bool bag_take(struct id_bag *bag, const char *id)
{
	size_t lo = 0, hi = bag->n;

	while (lo < hi) { /* the first slot >= id */
		size_t mid = (lo + hi) / 2;
		if (strcmp(bag->v[mid], id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; bag->used != NULL && lo < bag->n && strcmp(bag->v[lo], id) == 0; lo++)
		if (!bag->used[lo]) {
			bag->used[lo] = true;
			return true;
		}
	return false;
}

static void bag_free(struct id_bag *bag)
{
	for (size_t i = 0; i < bag->n; i++)
		free(bag->v[i]);
	free(bag->v);
	free(bag->used);
	free(bag->noid_uid);
	free(bag->noid_size);
	memset(bag, 0, sizeof(*bag));
}

/* The target folder: created when missing, then examined, its Message-IDs read when it
 * holds mail (and closed again). */
static int prepare_target(struct event_base *base, struct imap_client *c, const char *folder, struct target_box *t,
			  struct id_bag *held, struct mh_err *err)
{
	int rc;

	memset(t, 0, sizeof(*t));
	if (strcasecmp(folder, "INBOX") == 0)
		t->exists = true;
	else if (imap_client_run(base, c, on_list, NULL, t, err, "LIST \"\" %s", folder) < 0)
		return -1;
	if (!t->exists) {
		rc = imap_client_run(base, c, NULL, NULL, NULL, err, "CREATE %s", folder);
		/* somebody (another run, the server's autocreate) was first: fine */
		if (rc < 0 || (rc == 0 && strstr(err->detail, "ALREADYEXISTS") == NULL))
			return -1;
	}
	rc = imap_client_run(base, c, on_examine, NULL, t, err, "EXAMINE %s", folder);
	if (rc <= 0)
		return -1;
	if (t->messages > 0) {
		if (read_target_keys(base, c, held, err) < 0)
			return -1;
		bag_sort(held);
	}
	rc = imap_client_run(base, c, NULL, NULL, NULL, err, imap_client_has_cap(c, "UNSELECT") ? "UNSELECT" : "CLOSE");
	return rc < 0 ? -1 : 0;
}

static int cmp_id(const void *a, const void *b)
{
	uint32_t x = ((const struct mh_pop3_id *)a)->id, y = ((const struct mh_pop3_id *)b)->id;

	return x < y ? -1 : x > y;
}

/* Gives every listed message its job-local id: the one an earlier plan of the job gave
 * its identity, else the next free one. ids_r[i] belongs to msgs[i]. */
static int assign_ids(struct rq *q, const char *job_id, const struct mh_pop3_msg *msgs, size_t n, uint32_t *ids_r,
		      struct mh_err *err)
{
	struct mh_pop3_id *old = NULL, *fresh;
	size_t nold = 0, nfresh = 0;
	uint32_t next = 1;
	int rc = 0;

	if (mh_pop3_ids_load(q, job_id, &old, &nold, err) < 0)
		return -1;
	qsort(old, nold, sizeof(*old), cmp_id);
	if (nold > 0)
		next = old[nold - 1].id + 1;
	fresh = calloc(n + 1, sizeof(*fresh));
	if (fresh == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		ids_r[i] = 0;
		/* a linear scan: a re-plan is rare, and maildrops are small */
		for (size_t k = 0; k < nold && ids_r[i] == 0; k++)
			if (strcmp(old[k].ident, msgs[i].ident) == 0)
				ids_r[i] = old[k].id;
		if (ids_r[i] == 0) {
			ids_r[i] = next++;
			fresh[nfresh].id = ids_r[i];
			fresh[nfresh++].ident = (char *)msgs[i].ident;
		}
	}
	if (nfresh > 0)
		rc = mh_pop3_ids_store(q, job_id, fresh, nfresh, err);
	free(fresh);
	mh_pop3_ids_free(old, nold);
	return rc;
}

struct batcher {
	struct rq *q;
	struct mh_batch b;
	uint64_t batches;
};

static int publish(struct batcher *bt, struct mh_batch *b, struct mh_err *err)
{
	struct mh_bytes enc = {0};
	int rc;

	if (mh_job_next_batch_id(bt->q, b->job_id, &b->batch_id, err) < 0 || mh_batch_encode(b, &enc, err) < 0)
		return -1;
	rc = rq_xadd(bt->q, MH_STREAM_BATCHES, "b", enc.data, enc.len, NULL, err);
	mh_bytes_free(&enc);
	bt->batches++;
	b->count = 0;
	return rc;
}

/* Skipped messages are recorded, the others batched (as planner.c does for a folder). */
static int plan_batches(struct rq *q, const struct planner_opts *o, const struct mh_job_spec *spec, bool replan,
			unsigned batch_msgs, const char *dst_raw, const struct mh_pop3_msg *msgs, const uint32_t *ids,
			const bool *copied, size_t n, uint64_t *batches_r, struct mh_err *err)
{
	struct batcher bt = {.q = q};
	struct mh_batch_msg *all = calloc(n + 1, sizeof(*all));
	struct mh_msg_result *skipped = calloc(n + 1, sizeof(*skipped));
	enum mh_msg_mark *marks = calloc(n + 1, sizeof(*marks)); /* all MH_MARK_NEW */
	size_t nskipped = 0;
	uint64_t bytes = 0;
	int rc = 0;

	bt.b.job_id = spec->job_id;
	bt.b.folder_idx = 0;
	bt.b.src_folder = MH_POP3_FOLDER_DISPLAY;
	bt.b.dst_folder = (char *)dst_raw;
	bt.b.msgs = calloc(batch_msgs + 1, sizeof(*bt.b.msgs));
	if (all == NULL || skipped == NULL || marks == NULL || bt.b.msgs == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		all[i] = (struct mh_batch_msg){ids[i], msgs[i].size};
	/* after an interrupted plan: a message with a result is left alone; one in flight
	 * goes to a worker, which checks the dedup hash and the target first */
	if (replan && mh_job_msg_marks(q, spec->job_id, 0, all, n, marks, err) < 0)
		rc = -1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (marks[i] == MH_MARK_DONE)
			continue;
		if (copied[i] && marks[i] == MH_MARK_NEW) {
			skipped[nskipped++] = (struct mh_msg_result){.uid = ids[i], .status = MH_MSG_SKIPPED, .bytes = msgs[i].size};
			continue;
		}
		if (msgs[i].size >= o->large_msg_bytes) {
			struct mh_batch alone = bt.b;
			alone.msgs = &all[i];
			alone.count = 1;
			rc = publish(&bt, &alone, err);
			continue;
		}
		if (bt.b.count > 0 && (bt.b.count >= batch_msgs || bytes + msgs[i].size > o->batch_max_bytes)) {
			rc = publish(&bt, &bt.b, err);
			bytes = 0;
		}
		bt.b.msgs[bt.b.count++] = all[i];
		bytes += msgs[i].size;
	}
	if (rc == 0 && bt.b.count > 0)
		rc = publish(&bt, &bt.b, err);
	if (rc == 0 && nskipped > 0)
		rc = mh_job_record_results(q, spec->job_id, 0, 0, skipped, nskipped, NULL, err);
	*batches_r = bt.batches;
	free(bt.b.msgs);
	free(all);
	free(skipped);
	free(marks);
	return rc;
}

/* The source's listing, read under the account's single lease and released at once. */
static int read_source(struct rq *q, struct event_base *base, const struct mh_seal_key *key,
		       const struct mh_job_spec *spec, const struct mh_conn_opts *co, bool want_message_ids,
		       struct mh_pop3_msg **msgs_r, size_t *n_r, bool *uidl_r, char ***message_ids_r, struct mh_err *err)
{
	struct mh_conn src;
	int rc;

	if (planner_open_side(q, base, key, spec, MH_SIDE_SOURCE, co, &src, err) < 0) {
		mh_err_set(err, err->code, "source: %s", err->detail);
		return -1;
	}
	rc = mh_pop3_inventory(base, src.pop3, true, msgs_r, n_r, uidl_r, err);
	if (rc == 0 && want_message_ids)
		rc = mh_pop3_target_keys(base, src.pop3, *msgs_r, *n_r, message_ids_r, err);
	if (rc < 0)
		mh_err_set(err, err->code, "source: %s", err->detail);
	/* many servers lock the maildrop to one session: the workers need it now */
	mh_conn_quit(&src);
	return rc;
}

/* Messages the target already holds though no run of ours recorded them (the record is
 * lost with the private Redis of a `mailhaul migrate` without --redis, or was forgotten):
 * a multiset by Message-ID (or size and header hash), so that the recorded copies take their own share first and
 * two identical source messages need two target copies. Marks them in copied[]. */
static size_t skip_on_target(struct id_bag *held, char **message_ids, bool *copied, size_t n)
{
	size_t found = 0;

	for (size_t i = 0; i < n; i++)
		if (copied[i] && message_ids[i] != NULL)
			bag_take(held, message_ids[i]);
	for (size_t i = 0; i < n; i++)
		if (!copied[i] && message_ids[i] != NULL && bag_take(held, message_ids[i])) {
			copied[i] = true;
			found++;
		}
	return found;
}

int plan_pop3(struct rq *q, struct event_base *base, const struct mh_seal_key *key, const struct planner_opts *o,
	      const struct mh_job_spec *spec, bool replan, unsigned batch_msgs, struct mh_err *err)
{
	struct mh_conn_opts co = {.command_timeout_ms = o->command_timeout_ms};
	const char *folder = spec->pop3_folder != NULL ? spec->pop3_folder : "INBOX";
	struct mh_pop3_msg *msgs = NULL;
	size_t n = 0;
	bool uidl = false, *copied = NULL;
	uint32_t *ids = NULL;
	char **records = NULL, **message_ids = NULL, acct[MH_KEY_MAX];
	struct id_bag held = {0};
	size_t on_target = 0;
	const char **idents = NULL;
	char *dst_raw = NULL;
	struct mh_conn dst;
	struct target_box tb;
	uint64_t bytes = 0, batches = 0;
	int rc = -1;

	memset(&dst, 0, sizeof(dst));
	if (imap_utf8_to_utf7(folder, strlen(folder), &dst_raw, err) < 0)
		return -1;
	/* the target first: what it holds decides whether the source's headers are needed */
	if (planner_open_side(q, base, key, spec, MH_SIDE_TARGET, &co, &dst, err) < 0) {
		mh_err_set(err, err->code, "target: %s", err->detail);
		goto out;
	}
	if (prepare_target(base, dst.imap, dst_raw, &tb, &held, err) < 0) {
		mh_err_set(err, err->code, "target: %s: %s", folder, err->detail);
		goto out;
	}
	mh_conn_close(&dst);
	if (read_source(q, base, key, spec, &co, held.n > 0, &msgs, &n, &uidl, &message_ids, err) < 0)
		goto out;
	if (!uidl && n > 0) {
		mh_warn("planner", "%s: the POP3 server offers no UIDL: messages are recognised by size and headers",
			spec->job_id);
		if (mh_job_set_warning(q, spec->job_id,
				       "the POP3 server offers no UIDL: messages are recognised by their size and headers, "
				       "so a message edited on the server, or two identical ones, may be copied again or "
				       "skipped",
				       err) < 0)
			goto out;
	}
	ids = calloc(n + 1, sizeof(*ids));
	copied = calloc(n + 1, sizeof(*copied));
	idents = calloc(n + 1, sizeof(*idents));
	if (ids == NULL || copied == NULL || idents == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		idents[i] = msgs[i].ident;
		bytes += msgs[i].size;
	}
	mh_key_pop3_account(acct, sizeof(acct), spec->src.host, spec->src.user);
	if (assign_ids(q, spec->job_id, msgs, n, ids, err) < 0 ||
	    mh_pop3_copied_get(q, acct, idents, n, &records, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		copied[i] = records[i] != NULL;
	if (message_ids != NULL)
		on_target = skip_on_target(&held, message_ids, copied, n);
	{
		struct mh_folder_ref ref = {MH_POP3_FOLDER_DISPLAY, (char *)folder, MH_POP3_FOLDER_DISPLAY, dst_raw, 0,
					    tb.uidvalidity, tb.uidnext > 0 ? tb.uidnext : 1};
		if (mh_job_add_folder(q, spec->job_id, 0, &ref, n, bytes, err) < 0 ||
		    mh_job_folder_set_count(q, spec->job_id, 0, "dst_before", tb.messages, true, err) < 0)
			goto out;
	}
	if (plan_batches(q, o, spec, replan, batch_msgs, dst_raw, msgs, ids, copied, n, &batches, err) < 0 ||
	    mh_job_set_plan(q, spec->job_id, 1, n, bytes, batches, err) < 0)
		goto out;
	mh_info("planner",
		"%s: POP3 source: %zu messages (%" PRIu64 " bytes), identities from %s, %zu found on the target by "
		"Message-ID, in %" PRIu64 " batches",
		spec->job_id, n, bytes, uidl ? "UIDL" : "size and headers", on_target, batches);
	rc = 0;
out:
	mh_conn_close(&dst);
	mh_pop3_strv_free(records, n);
	if (message_ids != NULL)
		mh_pop3_strv_free(message_ids, n);
	bag_free(&held);
	free(msgs);
	free(ids);
	free(copied);
	free(idents);
	free(dst_raw);
	return rc;
}
