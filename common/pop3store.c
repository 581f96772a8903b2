/* pop3store.c - POP3 identities and per-account dedup records in Redis (see pop3store.h). */
#include "pop3store.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobstore.h"
#include "rq.h"

/* Arguments per HMGET/HSET: keeps each command (and its reply) small. */
#define POP3STORE_CHUNK 500

void mh_key_pop3_account(char *buf, size_t len, const char *host, const char *user)
{
	unsigned char md[32];
	unsigned int md_len = 0;
	char lower[256];
	size_t n = strlen(host), off;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL)
		abort();
	if (n >= sizeof(lower))
		n = sizeof(lower) - 1;
	/* host names are case-insensitive: POP.Example and pop.example are one account */
	for (size_t i = 0; i < n; i++)
		lower[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] + 32 : host[i]);
	lower[n] = '\0';
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, lower, n + 1);
	EVP_DigestUpdate(ctx, user, strlen(user));
	EVP_DigestFinal_ex(ctx, md, &md_len);
	EVP_MD_CTX_free(ctx);
	off = (size_t)snprintf(buf, len, "mh:pop3:");
	for (unsigned i = 0; i < md_len && off + 2 < len; i++, off += 2)
		snprintf(buf + off, len - off, "%02x", md[i]);
}

void mh_key_pop3_job(char *buf, size_t len, const char *job_id)
{
	mh_key_job(buf, len, job_id, ":pop3");
}

void mh_pop3_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

void mh_pop3_ids_free(struct mh_pop3_id *ids, size_t n)
{
	for (size_t i = 0; ids != NULL && i < n; i++)
		free(ids[i].ident);
	free(ids);
}

static int parse_id(const char *s, size_t len, uint32_t *id_r)
{
	uint64_t v = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v == 0 || v > UINT32_MAX)
		return -1;
	*id_r = (uint32_t)v;
	return 0;
}

int mh_pop3_ids_load(struct rq *q, const char *job_id, struct mh_pop3_id **ids_r, size_t *n_r, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	struct redisReply *r;
	size_t n = 0;

	*ids_r = NULL;
	*n_r = 0;
	mh_key_pop3_job(key, sizeof(key), job_id);
	r = rq_command(q, err, "HGETALL %s", key);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY) {
		rq_reply_free(r);
		return mh_err_set(err, MH_E_REDIS, "HGETALL %s: unexpected reply", key);
	}
	*ids_r = calloc(r->elements / 2 + 1, sizeof(**ids_r));
	if (*ids_r == NULL)
		abort();
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const struct redisReply *k = r->element[i], *v = r->element[i + 1];
		uint32_t id;
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || parse_id(k->str, k->len, &id) < 0)
			continue;
		(*ids_r)[n].id = id;
		(*ids_r)[n].ident = strndup(v->str, v->len);
		if ((*ids_r)[n++].ident == NULL)
			abort();
	}
	*n_r = n;
	rq_reply_free(r);
	return 0;
}

/* cmd key field value field value ..., POP3STORE_CHUNK pairs per command. */
static int hset_pairs(struct rq *q, const char *key, const char *const *fields, const char *const *values, size_t n,
		      struct mh_err *err)
{
	const char **argv = calloc(2 + 2 * POP3STORE_CHUNK, sizeof(*argv));
	int rc = 0;

	if (argv == NULL)
		abort();
	for (size_t start = 0; start < n && rc == 0; start += POP3STORE_CHUNK) {
		size_t m = n - start < POP3STORE_CHUNK ? n - start : POP3STORE_CHUNK;
		struct redisReply *r;
		argv[0] = "HSET";
		argv[1] = key;
		for (size_t i = 0; i < m; i++) {
			argv[2 + 2 * i] = fields[start + i];
			argv[3 + 2 * i] = values[start + i];
		}
		r = rq_command_argv(q, err, (int)(2 + 2 * m), argv, NULL);
		if (r == NULL)
			rc = -1;
		rq_reply_free(r);
	}
	free(argv);
	return rc;
}

/* HMGET key fields...: (*vals_r)[i] heap or NULL. */
static int hmget(struct rq *q, const char *key, const char *const *fields, size_t n, char ***vals_r,
		 struct mh_err *err)
{
	const char **argv = calloc(2 + POP3STORE_CHUNK, sizeof(*argv));
	char **vals = calloc(n + 1, sizeof(*vals));

	if (argv == NULL || vals == NULL)
		abort();
	for (size_t start = 0; start < n; start += POP3STORE_CHUNK) {
		size_t m = n - start < POP3STORE_CHUNK ? n - start : POP3STORE_CHUNK;
		struct redisReply *r;
		argv[0] = "HMGET";
		argv[1] = key;
		for (size_t i = 0; i < m; i++)
			argv[2 + i] = fields[start + i];
		r = rq_command_argv(q, err, (int)(2 + m), argv, NULL);
		if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != m) {
			if (r != NULL)
				mh_err_set(err, MH_E_REDIS, "HMGET %s: unexpected reply", key);
			rq_reply_free(r);
			free(argv);
			mh_pop3_strv_free(vals, n);
			return -1;
		}
		for (size_t i = 0; i < m; i++)
			if (r->element[i]->type == REDIS_REPLY_STRING &&
			    (vals[start + i] = strndup(r->element[i]->str, r->element[i]->len)) == NULL)
				abort();
		rq_reply_free(r);
	}
	free(argv);
	*vals_r = vals;
	return 0;
}

int mh_pop3_ids_store(struct rq *q, const char *job_id, const struct mh_pop3_id *ids, size_t n, struct mh_err *err)
{
	char key[MH_KEY_MAX];
	char (*names)[12] = calloc(n + 1, sizeof(*names));
	const char **fields = calloc(n + 1, sizeof(*fields)), **values = calloc(n + 1, sizeof(*values));
	int rc;

	if (names == NULL || fields == NULL || values == NULL)
		abort();
	mh_key_pop3_job(key, sizeof(key), job_id);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "%" PRIu32, ids[i].id);
		fields[i] = names[i];
		values[i] = ids[i].ident;
	}
	rc = hset_pairs(q, key, fields, values, n, err);
	free(names);
	free(fields);
	free(values);
	return rc;
}

int mh_pop3_ids_get(struct rq *q, const char *job_id, const uint32_t *ids, size_t n, char ***idents_r,
		    struct mh_err *err)
{
	char key[MH_KEY_MAX];
	char (*names)[12] = calloc(n + 1, sizeof(*names));
	const char **fields = calloc(n + 1, sizeof(*fields));
	int rc;

	if (names == NULL || fields == NULL)
		abort();
	mh_key_pop3_job(key, sizeof(key), job_id);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "%" PRIu32, ids[i]);
		fields[i] = names[i];
	}
	rc = hmget(q, key, fields, n, idents_r, err);
	free(names);
	free(fields);
	return rc;
}

int mh_pop3_copied_get(struct rq *q, const char *acct_key, const char *const *idents, size_t n, char ***vals_r,
		       struct mh_err *err)
{
	return hmget(q, acct_key, idents, n, vals_r, err);
}

int mh_pop3_copied_set(struct rq *q, const char *acct_key, const char *const *idents, size_t n, const char *job_id,
		       struct mh_err *err)
{
	char record[MH_JOB_ID_MAX + 24];
	const char **values = calloc(n + 1, sizeof(*values));
	int rc;

	if (values == NULL)
		abort();
	snprintf(record, sizeof(record), "%s %" PRIu64, job_id, mh_now_ms());
	for (size_t i = 0; i < n; i++)
		values[i] = record;
	rc = hset_pairs(q, acct_key, idents, values, n, err);
	free(values);
	return rc;
}

int mh_pop3_copied_by(const char *record, const char *job_id)
{
	size_t n = strlen(job_id);

	return record != NULL && strncmp(record, job_id, n) == 0 && record[n] == ' ';
}
