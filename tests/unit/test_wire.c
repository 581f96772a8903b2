/* test_wire.c - round trips and hostile input for the msgpack schema (common/wire.c).
 *
 * Hostile payloads are made by unpacking a valid encoding, changing one field of the
 * object tree (drop, replace, add) and packing it again, so each test names exactly the
 * malformation it checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "wire.h"

enum kind { K_JOB, K_BATCH, K_RESULT };

static void bytes_set(struct mh_bytes *b, const char *s, size_t len)
{
	b->len = len;
	b->data = malloc(b->len);
	assert_non_null(b->data);
	memcpy(b->data, s, b->len);
}

static void job_fill(struct mh_job_spec *s, bool full)
{
	memset(s, 0, sizeof(*s));
	s->job_id = strdup("job-42");
	s->src.proto = MH_PROTO_IMAP;
	s->src.security = MH_SEC_TLS;
	s->src.host = strdup("imap.example.com");
	s->src.port = 993;
	s->src.user = strdup("alice@example.com");
	s->dst.proto = MH_PROTO_POP3;
	s->dst.security = MH_SEC_STARTTLS;
	s->dst.host = strdup("pop.example.net");
	s->dst.port = 65535;
	s->dst.user = strdup("");
	s->created = UINT64_MAX;
	s->max_connections = 3;
	if (full) {
		bytes_set(&s->src.sealed_password, "sealed\0with\0nul", 15);
		bytes_set(&s->dst.sealed_password, "x", 1);
		s->flags = MH_JOB_ALLOW_PLAINTEXT | MH_JOB_INSECURE;
		s->ca_file = strdup("/etc/ssl/ca.pem");
		s->pop3_folder = strdup("Old POP3 mail");
		s->pop3_flags = strdup("\\Seen $Imported");
	}
}

static void batch_fill(struct mh_batch *b, size_t count)
{
	memset(b, 0, sizeof(*b));
	b->job_id = strdup("job-42");
	b->batch_id = 0x1234567890ULL;
	b->folder_idx = UINT32_MAX;
	b->src_folder = strdup("INBOX/&AMQ-rger");
	b->dst_folder = strdup("INBOX/Ärger");
	b->src_uidvalidity = 1700000000u;
	b->attempt = 3;
	b->count = count;
	if (count > 0) {
		b->msgs = calloc(count, sizeof(*b->msgs));
		assert_non_null(b->msgs);
	}
	for (size_t i = 0; i < count; i++) {
		b->msgs[i].uid = (uint32_t)(i * 7 + 1);
		b->msgs[i].size = (uint64_t)i << 33;
	}
}

static void result_fill(struct mh_batch_result *r, size_t count, bool batch_error)
{
	memset(r, 0, sizeof(*r));
	r->job_id = strdup("job-42");
	r->batch_id = 99;
	r->folder_idx = 4;
	r->worker = strdup("worker-1:1234");
	r->attempt = 3;
	r->elapsed_ms = 1234567;
	r->count = count;
	if (count > 0) {
		r->msgs = calloc(count, sizeof(*r->msgs));
		assert_non_null(r->msgs);
	}
	for (size_t i = 0; i < count; i++) {
		struct mh_msg_result *m = &r->msgs[i];

		m->uid = (uint32_t)i + 1;
		m->status = (enum mh_msg_status)(i % 3 + 1);
		m->dst_uid = m->status == MH_MSG_COPIED ? (uint32_t)i + 100 : 0;
		m->bytes = i * 1000;
		if (m->status == MH_MSG_FAILED) {
			m->error = strdup("MSG_TOO_BIG");
			m->detail = strdup("NO [TOOBIG] message too large");
		}
	}
	if (batch_error) {
		r->error = strdup("AUTH_FAILED");
		r->detail = strdup("");
	}
}

static void assert_str_eq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_bytes_eq(const struct mh_bytes *a, const struct mh_bytes *b)
{
	assert_int_equal(a->len, b->len);
	if (a->len > 0)
		assert_memory_equal(a->data, b->data, a->len);
	else
		assert_null(b->data);
}

static void assert_ep_eq(const struct mh_wire_endpoint *a, const struct mh_wire_endpoint *b)
{
	assert_int_equal(a->proto, b->proto);
	assert_int_equal(a->security, b->security);
	assert_string_equal(a->host, b->host);
	assert_int_equal(a->port, b->port);
	assert_string_equal(a->user, b->user);
	assert_bytes_eq(&a->sealed_password, &b->sealed_password);
}

static void job_check_round_trip(bool full)
{
	struct mh_job_spec s, t;
	struct mh_bytes enc;
	struct mh_err err;

	job_fill(&s, full);
	assert_int_equal(mh_job_spec_encode(&s, &enc, &err), 0);
	assert_int_equal(mh_job_spec_decode(enc.data, enc.len, &t, &err), 0);
	assert_string_equal(s.job_id, t.job_id);
	assert_ep_eq(&s.src, &t.src);
	assert_ep_eq(&s.dst, &t.dst);
	assert_int_equal(s.flags, t.flags);
	assert_str_eq_null(s.ca_file, t.ca_file);
	assert_str_eq_null(s.pop3_folder, t.pop3_folder);
	assert_str_eq_null(s.pop3_flags, t.pop3_flags);
	assert_true(s.created == t.created);
	assert_int_equal(s.max_connections, t.max_connections);
	mh_job_spec_cleanup(&t);
	mh_job_spec_cleanup(&s);
	mh_bytes_free(&enc);
	assert_null(enc.data);
}

static void test_job_round_trip(void **state)
{
	(void)state;
	job_check_round_trip(true);
	job_check_round_trip(false);
}

static void batch_check_round_trip(size_t count)
{
	struct mh_batch b, c;
	struct mh_bytes enc;
	struct mh_err err;

	batch_fill(&b, count);
	assert_int_equal(mh_batch_encode(&b, &enc, &err), 0);
	assert_int_equal(mh_batch_decode(enc.data, enc.len, &c, &err), 0);
	assert_string_equal(b.job_id, c.job_id);
	assert_true(b.batch_id == c.batch_id);
	assert_int_equal(b.folder_idx, c.folder_idx);
	assert_string_equal(b.src_folder, c.src_folder);
	assert_string_equal(b.dst_folder, c.dst_folder);
	assert_int_equal(b.src_uidvalidity, c.src_uidvalidity);
	assert_int_equal(b.attempt, c.attempt);
	assert_int_equal(b.count, c.count);
	if (count == 0)
		assert_null(c.msgs);
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(b.msgs[i].uid, c.msgs[i].uid);
		assert_true(b.msgs[i].size == c.msgs[i].size);
	}
	mh_batch_cleanup(&b);
	mh_batch_cleanup(&c);
	mh_bytes_free(&enc);
}

static void test_batch_round_trip(void **state)
{
	(void)state;
	batch_check_round_trip(0);
	batch_check_round_trip(1);
	batch_check_round_trip(10000);
}

static void result_check_round_trip(size_t count, bool batch_error)
{
	struct mh_batch_result r, q;
	struct mh_bytes enc;
	struct mh_err err;

	result_fill(&r, count, batch_error);
	assert_int_equal(mh_batch_result_encode(&r, &enc, &err), 0);
	assert_int_equal(mh_batch_result_decode(enc.data, enc.len, &q, &err), 0);
	assert_string_equal(r.job_id, q.job_id);
	assert_true(r.batch_id == q.batch_id);
	assert_int_equal(r.folder_idx, q.folder_idx);
	assert_string_equal(r.worker, q.worker);
	assert_int_equal(r.attempt, q.attempt);
	assert_true(r.elapsed_ms == q.elapsed_ms);
	assert_str_eq_null(r.error, q.error);
	assert_str_eq_null(r.detail, q.detail);
	assert_int_equal(r.count, q.count);
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(r.msgs[i].uid, q.msgs[i].uid);
		assert_int_equal(r.msgs[i].status, q.msgs[i].status);
		assert_int_equal(r.msgs[i].dst_uid, q.msgs[i].dst_uid);
		assert_true(r.msgs[i].bytes == q.msgs[i].bytes);
		assert_str_eq_null(r.msgs[i].error, q.msgs[i].error);
		assert_str_eq_null(r.msgs[i].detail, q.msgs[i].detail);
	}
	mh_batch_result_cleanup(&r);
	mh_batch_result_cleanup(&q);
	mh_bytes_free(&enc);
}

static void test_result_round_trip(void **state)
{
	(void)state;
	result_check_round_trip(0, false);
	result_check_round_trip(0, true);
	result_check_round_trip(7, true);
	result_check_round_trip(10000, false);
}

static void test_encode_rejects_missing_required(void **state)
{
	struct mh_job_spec s;
	struct mh_batch b;
	struct mh_bytes enc = {(unsigned char *)"x", 1};
	struct mh_err err;

	(void)state;
	job_fill(&s, false);
	free(s.src.host);
	s.src.host = NULL;
	assert_int_equal(mh_job_spec_encode(&s, &enc, &err), -1);
	assert_int_equal(err.code, MH_E_WIRE);
	assert_non_null(strstr(err.detail, "host"));
	assert_null(enc.data);
	mh_job_spec_cleanup(&s);

	batch_fill(&b, 0);
	b.count = 3; /* msgs NULL */
	assert_int_equal(mh_batch_encode(&b, &enc, &err), -1);
	assert_non_null(strstr(err.detail, "msgs"));
	b.count = 0;
	mh_batch_cleanup(&b);
}

/* ------------------------------------------------------------------------------------- */

/* Decodes with the decoder for kind; on failure checks the struct came back empty. */
static int decode_any(enum kind k, const void *data, size_t len, struct mh_err *err)
{
	static const unsigned char zero[sizeof(struct mh_job_spec) + sizeof(struct mh_batch) +
					sizeof(struct mh_batch_result)];
	int rc;

	mh_err_clear(err);
	if (k == K_JOB) {
		struct mh_job_spec s;

		rc = mh_job_spec_decode(data, len, &s, err);
		if (rc < 0)
			assert_memory_equal(&s, zero, sizeof(s));
		mh_job_spec_cleanup(&s);
	} else if (k == K_BATCH) {
		struct mh_batch b;

		rc = mh_batch_decode(data, len, &b, err);
		if (rc < 0)
			assert_memory_equal(&b, zero, sizeof(b));
		mh_batch_cleanup(&b);
	} else {
		struct mh_batch_result r;

		rc = mh_batch_result_decode(data, len, &r, err);
		if (rc < 0)
			assert_memory_equal(&r, zero, sizeof(r));
		mh_batch_result_cleanup(&r);
	}
	if (rc < 0) {
		assert_int_equal(rc, -1);
		assert_int_equal(err->code, MH_E_WIRE);
		assert_true(err->detail[0] != '\0');
	} else {
		assert_int_equal(rc, 0);
	}
	return rc;
}

static void encode_sample(enum kind k, size_t count, struct mh_bytes *out)
{
	struct mh_err err;

	if (k == K_JOB) {
		struct mh_job_spec s;

		job_fill(&s, true);
		assert_int_equal(mh_job_spec_encode(&s, out, &err), 0);
		mh_job_spec_cleanup(&s);
	} else if (k == K_BATCH) {
		struct mh_batch b;

		batch_fill(&b, count);
		assert_int_equal(mh_batch_encode(&b, out, &err), 0);
		mh_batch_cleanup(&b);
	} else {
		struct mh_batch_result r;

		result_fill(&r, count, true);
		assert_int_equal(mh_batch_result_encode(&r, out, &err), 0);
		mh_batch_result_cleanup(&r);
	}
}

static void test_truncated_at_every_byte(void **state)
{
	(void)state;
	for (enum kind k = K_JOB; k <= K_RESULT; k++) {
		struct mh_bytes enc;
		struct mh_err err;

		encode_sample(k, 5, &enc);
		for (size_t n = 0; n < enc.len; n++) {
			/* A private copy of exactly n bytes lets ASan catch any over-read. */
			unsigned char *p = malloc(n ? n : 1);

			memcpy(p, enc.data, n);
			assert_int_equal(decode_any(k, p, n, &err), -1);
			free(p);
		}
		assert_int_equal(decode_any(k, enc.data, enc.len, &err), 0);
		mh_bytes_free(&enc);
	}
}

static void test_trailing_bytes(void **state)
{
	(void)state;
	for (enum kind k = K_JOB; k <= K_RESULT; k++) {
		struct mh_bytes enc;
		struct mh_err err;
		unsigned char *p;

		encode_sample(k, 2, &enc);
		p = malloc(enc.len + 1);
		memcpy(p, enc.data, enc.len);
		p[enc.len] = 0xc0; /* nil */
		assert_int_equal(decode_any(k, p, enc.len + 1, &err), -1);
		assert_non_null(strstr(err.detail, "trailing"));
		free(p);
		mh_bytes_free(&enc);
	}
}

/* --- mutation of a valid encoding ------------------------------------------------------ */

enum op { OP_DROP, OP_REPLACE, OP_ADD };

struct mutation {
	void *allocs[16];
	int nallocs;
	bool found;
};

static msgpack_object mutate_obj(struct mutation *mu, msgpack_object o, const char *const *path,
				 enum op op, const msgpack_object *rep)
{
	if (o.type == MSGPACK_OBJECT_ARRAY) {
		size_t idx = (size_t)atoi(path[0]);
		msgpack_object *a;

		assert_true(idx < o.via.array.size);
		a = malloc(o.via.array.size * sizeof(*a));
		mu->allocs[mu->nallocs++] = a;
		memcpy(a, o.via.array.ptr, o.via.array.size * sizeof(*a));
		if (path[1] == NULL) {
			assert_int_equal(op, OP_REPLACE);
			a[idx] = *rep;
			mu->found = true;
		} else {
			a[idx] = mutate_obj(mu, a[idx], path + 1, op, rep);
		}
		o.via.array.ptr = a;
		return o;
	}
	assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
	{
		uint32_t n = o.via.map.size, j = 0;
		msgpack_object_kv *kv = malloc((n + 1) * sizeof(*kv));

		mu->allocs[mu->nallocs++] = kv;
		for (uint32_t i = 0; i < n; i++) {
			msgpack_object_kv e = o.via.map.ptr[i];
			bool match = e.key.type == MSGPACK_OBJECT_STR &&
				     e.key.via.str.size == strlen(path[0]) &&
				     memcmp(e.key.via.str.ptr, path[0], e.key.via.str.size) == 0;

			if (match && path[1] != NULL) {
				e.val = mutate_obj(mu, e.val, path + 1, op, rep);
			} else if (match && op != OP_ADD) {
				mu->found = true;
				if (op == OP_DROP)
					continue;
				e.val = *rep;
			}
			kv[j++] = e;
		}
		if (op == OP_ADD && path[1] == NULL) {
			kv[j].key.type = MSGPACK_OBJECT_STR;
			kv[j].key.via.str.ptr = path[0];
			kv[j].key.via.str.size = (uint32_t)strlen(path[0]);
			kv[j++].val = *rep;
			mu->found = true;
		}
		o.via.map.ptr = kv;
		o.via.map.size = j;
		return o;
	}
}

/* Encodes a sample of kind k, applies op at path ("src", "h") and returns the bytes. */
static void mutate(enum kind k, const char *const *path, enum op op, const msgpack_object *rep,
		   struct mh_bytes *out)
{
	struct mh_bytes enc;
	msgpack_unpacked u;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct mutation mu = {.nallocs = 0, .found = false};
	msgpack_object root;
	size_t off = 0;

	encode_sample(k, 3, &enc);
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)enc.data, enc.len, &off),
			 MSGPACK_UNPACK_SUCCESS);
	root = mutate_obj(&mu, u.data, path, op, rep);
	assert_true(mu.found);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	assert_int_equal(msgpack_pack_object(&pk, root), 0);
	out->len = sb.size;
	out->data = (unsigned char *)msgpack_sbuffer_release(&sb);
	for (int i = 0; i < mu.nallocs; i++)
		free(mu.allocs[i]);
	msgpack_unpacked_destroy(&u);
	mh_bytes_free(&enc);
}

/* Runs one mutation; expects failure with want_detail in the detail, or success when
 * want_detail is NULL. */
static void check_mutation(enum kind k, const char *const *path, enum op op,
			   const msgpack_object *rep, const char *want_detail)
{
	struct mh_bytes b;
	struct mh_err err;
	int rc;

	mutate(k, path, op, rep, &b);
	rc = decode_any(k, b.data, b.len, &err);
	if (want_detail == NULL) {
		if (rc != 0)
			fail_msg("mutation of %s unexpectedly rejected: %s", path[0], err.detail);
	} else {
		if (rc == 0)
			fail_msg("mutation of %s.%s accepted", path[0], path[1] ? path[1] : "");
		if (strstr(err.detail, want_detail) == NULL)
			fail_msg("detail \"%s\" lacks \"%s\"", err.detail, want_detail);
	}
	mh_bytes_free(&b);
}

#define P(...) ((const char *const[]){__VA_ARGS__, NULL})

static msgpack_object o_uint(uint64_t v)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};

	o.via.u64 = v;
	return o;
}

static msgpack_object o_neg(int64_t v)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER};

	o.via.i64 = v;
	return o;
}

static msgpack_object o_strn(const char *s, size_t n)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_STR};

	o.via.str.ptr = s;
	o.via.str.size = (uint32_t)n;
	return o;
}

static msgpack_object o_str(const char *s) { return o_strn(s, strlen(s)); }

static msgpack_object o_nil(void)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_NIL};

	return o;
}

static msgpack_object o_float(void)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64};

	o.via.f64 = 1.5;
	return o;
}

struct field {
	enum kind k;
	const char *const *path;
	const char *name; /* expected in the detail */
	bool required;
	bool is_str;
};

static const struct field fields[] = {
	{K_JOB, P("v"), "version", true, false},
	{K_JOB, P("id"), "job_id", true, true},
	{K_JOB, P("src"), "src", true, false},
	{K_JOB, P("dst"), "dst", true, false},
	{K_JOB, P("fl"), "flags", true, false},
	{K_JOB, P("ct"), "created", true, false},
	{K_JOB, P("mc"), "max_connections", true, false},
	{K_JOB, P("ca"), "ca_file", false, true},
	{K_JOB, P("p3f"), "pop3_folder", false, true},
	{K_JOB, P("p3g"), "pop3_flags", false, true},
	{K_JOB, P("src", "pr"), "src.proto", true, false},
	{K_JOB, P("src", "se"), "src.security", true, false},
	{K_JOB, P("src", "h"), "src.host", true, true},
	{K_JOB, P("dst", "p"), "dst.port", true, false},
	{K_JOB, P("dst", "u"), "dst.user", true, true},
	{K_JOB, P("src", "pw"), "src.sealed_password", false, false},
	{K_BATCH, P("v"), "version", true, false},
	{K_BATCH, P("id"), "job_id", true, true},
	{K_BATCH, P("b"), "batch_id", true, false},
	{K_BATCH, P("fi"), "folder_idx", true, false},
	{K_BATCH, P("sf"), "src_folder", true, true},
	{K_BATCH, P("df"), "dst_folder", true, true},
	{K_BATCH, P("uv"), "src_uidvalidity", true, false},
	{K_BATCH, P("at"), "attempt", true, false},
	{K_BATCH, P("m"), "msgs", true, false},
	{K_BATCH, P("m", "1", "u"), "msgs[1].uid", true, false},
	{K_BATCH, P("m", "2", "s"), "msgs[2].size", true, false},
	{K_RESULT, P("v"), "version", true, false},
	{K_RESULT, P("id"), "job_id", true, true},
	{K_RESULT, P("b"), "batch_id", true, false},
	{K_RESULT, P("fi"), "folder_idx", true, false},
	{K_RESULT, P("w"), "worker", true, true},
	{K_RESULT, P("at"), "attempt", true, false},
	{K_RESULT, P("el"), "elapsed_ms", true, false},
	{K_RESULT, P("m"), "msgs", true, false},
	{K_RESULT, P("e"), "error", false, true},
	{K_RESULT, P("d"), "detail", false, true},
	{K_RESULT, P("m", "0", "u"), "msgs[0].uid", true, false},
	{K_RESULT, P("m", "0", "st"), "msgs[0].status", true, false},
	{K_RESULT, P("m", "1", "du"), "msgs[1].dst_uid", true, false},
	{K_RESULT, P("m", "1", "by"), "msgs[1].bytes", true, false},
	{K_RESULT, P("m", "2", "e"), "msgs[2].error", false, true},
	{K_RESULT, P("m", "2", "d"), "msgs[2].detail", false, true},
};

static void test_missing_keys(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const struct field *f = &fields[i];
		msgpack_object nil = o_nil();

		check_mutation(f->k, f->path, OP_DROP, NULL, f->required ? f->name : NULL);
		/* nil stands for "absent" */
		check_mutation(f->k, f->path, OP_REPLACE, &nil, f->required ? f->name : NULL);
	}
}

static void test_wrong_types(void **state)
{
	msgpack_object s = o_str("1"), u = o_uint(1), fl = o_float();

	(void)state;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const struct field *f = &fields[i];

		check_mutation(f->k, f->path, OP_REPLACE, f->is_str ? &u : &s, f->name);
		check_mutation(f->k, f->path, OP_REPLACE, &fl, f->name);
	}
	/* msgs elements must be maps */
	check_mutation(K_BATCH, P("m", "0"), OP_REPLACE, &u, "msgs[0]");
	check_mutation(K_RESULT, P("m", "2"), OP_REPLACE, &s, "msgs[2]");
}

static void test_negative_integers(void **state)
{
	msgpack_object neg = o_neg(-1);

	(void)state;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const struct field *f = &fields[i];

		check_mutation(f->k, f->path, OP_REPLACE, &neg, f->name);
	}
}

static void test_out_of_range(void **state)
{
	msgpack_object big = o_uint((uint64_t)UINT32_MAX + 1);
	msgpack_object v2 = o_uint(2), v0 = o_uint(0), v3 = o_uint(3), v4 = o_uint(4), v64 = o_uint(64);
	msgpack_object p = o_uint(65536);

	(void)state;
	check_mutation(K_JOB, P("v"), OP_REPLACE, &v2, "version");
	check_mutation(K_BATCH, P("v"), OP_REPLACE, &v0, "version");
	check_mutation(K_RESULT, P("v"), OP_REPLACE, &big, "version");
	check_mutation(K_JOB, P("src", "pr"), OP_REPLACE, &v2, "src.proto");
	check_mutation(K_JOB, P("dst", "se"), OP_REPLACE, &v3, "dst.security");
	check_mutation(K_JOB, P("src", "p"), OP_REPLACE, &p, "src.port");
	check_mutation(K_JOB, P("fl"), OP_REPLACE, &v64, "flags"); /* an unknown flag bit */
	check_mutation(K_JOB, P("fl"), OP_REPLACE, &big, "flags");
	check_mutation(K_BATCH, P("fi"), OP_REPLACE, &big, "folder_idx");
	check_mutation(K_BATCH, P("uv"), OP_REPLACE, &big, "src_uidvalidity");
	check_mutation(K_BATCH, P("at"), OP_REPLACE, &big, "attempt");
	check_mutation(K_BATCH, P("m", "0", "u"), OP_REPLACE, &big, "msgs[0].uid");
	check_mutation(K_RESULT, P("m", "1", "st"), OP_REPLACE, &v0, "msgs[1].status");
	check_mutation(K_RESULT, P("m", "1", "st"), OP_REPLACE, &v4, "msgs[1].status");
	check_mutation(K_RESULT, P("m", "1", "du"), OP_REPLACE, &big, "msgs[1].dst_uid");
	check_mutation(K_RESULT, P("fi"), OP_REPLACE, &big, "folder_idx");
}

/* The POP3 flags go into APPEND as they are: anything but flag words is refused. */
static void test_pop3_options_checked(void **state)
{
	msgpack_object inject = o_str("\\Seen) {5}"), crlf = o_str("\\Seen\r\nA1 LOGOUT"), empty = o_str("");

	(void)state;
	check_mutation(K_JOB, P("p3g"), OP_REPLACE, &inject, "pop3_flags");
	check_mutation(K_JOB, P("p3g"), OP_REPLACE, &crlf, "pop3_flags");
	check_mutation(K_JOB, P("p3f"), OP_REPLACE, &empty, "pop3_folder");
	assert_true(mh_imap_flags_valid(""));
	assert_true(mh_imap_flags_valid("\\Seen"));
	assert_true(mh_imap_flags_valid("\\Seen \\Flagged $Label1"));
	assert_false(mh_imap_flags_valid(" \\Seen"));
	assert_false(mh_imap_flags_valid("\\Seen "));
	assert_false(mh_imap_flags_valid("\\Seen  \\Draft"));
	assert_false(mh_imap_flags_valid("a\\b"));
	assert_false(mh_imap_flags_valid("\\"));
	assert_false(mh_imap_flags_valid("(\\Seen)"));
	assert_false(mh_imap_flags_valid("\"x\""));
}

static void test_string_limits(void **state)
{
	size_t max = 64 * 1024;
	char *s = malloc(max + 1);
	msgpack_object ok, too_long, nul = o_strn("a\0b", 3);

	(void)state;
	memset(s, 'x', max + 1);
	ok = o_strn(s, max);
	too_long = o_strn(s, max + 1);
	check_mutation(K_JOB, P("id"), OP_REPLACE, &ok, NULL);
	check_mutation(K_JOB, P("id"), OP_REPLACE, &too_long, "job_id");
	check_mutation(K_JOB, P("src", "h"), OP_REPLACE, &too_long, "src.host");
	check_mutation(K_RESULT, P("m", "2", "d"), OP_REPLACE, &too_long, "msgs[2].detail");
	check_mutation(K_BATCH, P("sf"), OP_REPLACE, &nul, "src_folder");
	free(s);
}

static void test_unknown_and_duplicate_keys(void **state)
{
	msgpack_object x = o_str("future"), u = o_uint(7);

	(void)state;
	/* forward compatibility: unknown keys are ignored, at every level */
	check_mutation(K_JOB, P("zz"), OP_ADD, &x, NULL);
	check_mutation(K_JOB, P("src", "zz"), OP_ADD, &x, NULL);
	check_mutation(K_RESULT, P("m", "0", "zz"), OP_ADD, &u, NULL);
	/* a repeated known key is ambiguous */
	check_mutation(K_JOB, P("id"), OP_ADD, &x, "job_id");
	check_mutation(K_BATCH, P("m", "1", "u"), OP_ADD, &u, "msgs[1].uid");
}

static void test_non_map_top_level(void **state)
{
	static const unsigned char array[] = {0x91, 0x01};
	static const unsigned char str[] = {0xa1, 'v'};
	static const unsigned char num[] = {0x01};
	struct mh_err err;

	(void)state;
	for (enum kind k = K_JOB; k <= K_RESULT; k++) {
		assert_int_equal(decode_any(k, array, sizeof(array), &err), -1);
		assert_non_null(strstr(err.detail, "not a map"));
		assert_int_equal(decode_any(k, str, sizeof(str), &err), -1);
		assert_int_equal(decode_any(k, num, sizeof(num), &err), -1);
		assert_int_equal(decode_any(k, NULL, 0, &err), -1);
	}
}

static void test_huge_declared_count(void **state)
{
	/* A few bytes that declare 4 billion elements: msgpack would allocate ~100 GB. */
	static const unsigned char arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
	static const unsigned char map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
	static const unsigned char nested[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 'm',
					       0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0};
	/* count equal to the bytes left but the elements are not there */
	static const unsigned char liar16[] = {0xdc, 0x00, 0x03, 0xc0, 0xc0};
	/* a declared string longer than the input */
	static const unsigned char str32[] = {0x81, 0xa1, 'v', 0xdb, 0xff, 0xff, 0xff, 0xff};
	struct mh_err err;

	(void)state;
	for (enum kind k = K_JOB; k <= K_RESULT; k++) {
		assert_int_equal(decode_any(k, arr32, sizeof(arr32), &err), -1);
		assert_non_null(strstr(err.detail, "declares"));
		assert_int_equal(decode_any(k, map32, sizeof(map32), &err), -1);
		assert_int_equal(decode_any(k, nested, sizeof(nested), &err), -1);
		assert_non_null(strstr(err.detail, "declares"));
		assert_int_equal(decode_any(k, liar16, sizeof(liar16), &err), -1);
		assert_int_equal(decode_any(k, str32, sizeof(str32), &err), -1);
	}
}

static void test_deep_nesting(void **state)
{
	unsigned char buf[64];
	struct mh_err err;
	size_t n = 0;

	(void)state;
	buf[n++] = 0x82;
	buf[n++] = 0xa1;
	buf[n++] = 'v';
	buf[n++] = 0x01;
	buf[n++] = 0xa1;
	buf[n++] = 'x';
	while (n < sizeof(buf) - 1)
		buf[n++] = 0x91; /* [[[[...]]]] */
	buf[n++] = 0xc0;
	assert_int_equal(decode_any(K_JOB, buf, n, &err), -1);
	assert_non_null(strstr(err.detail, "nested"));
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)rng_state;
}

static void test_random_garbage(void **state)
{
	unsigned char buf[96];
	struct mh_err err;

	(void)state;
	for (int i = 0; i < 30000; i++) {
		size_t n = rng() % sizeof(buf);

		for (size_t j = 0; j < n; j++)
			buf[j] = (unsigned char)rng();
		if (n > 0 && i % 2)
			buf[0] = (unsigned char)(0x80 | (rng() & 0x0f)); /* make it a fixmap */
		decode_any((enum kind)(i % 3), buf, n, &err);
	}
}

/* Flips bytes of valid encodings: whatever decodes must clean up, whatever fails must
 * fail cleanly. */
static void test_random_mutations(void **state)
{
	struct mh_err err;

	(void)state;
	for (enum kind k = K_JOB; k <= K_RESULT; k++) {
		struct mh_bytes enc;
		unsigned char *p;

		encode_sample(k, 4, &enc);
		p = malloc(enc.len);
		for (int i = 0; i < 20000; i++) {
			memcpy(p, enc.data, enc.len);
			for (int f = 1 + rng() % 3; f > 0; f--)
				p[rng() % enc.len] = (unsigned char)rng();
			decode_any(k, p, enc.len, &err);
		}
		free(p);
		mh_bytes_free(&enc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_job_round_trip),
		cmocka_unit_test(test_pop3_options_checked),
		cmocka_unit_test(test_batch_round_trip),
		cmocka_unit_test(test_result_round_trip),
		cmocka_unit_test(test_encode_rejects_missing_required),
		cmocka_unit_test(test_truncated_at_every_byte),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_missing_keys),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_negative_integers),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_string_limits),
		cmocka_unit_test(test_unknown_and_duplicate_keys),
		cmocka_unit_test(test_non_map_top_level),
		cmocka_unit_test(test_huge_declared_count),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_random_garbage),
		cmocka_unit_test(test_random_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
