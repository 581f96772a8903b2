/* wire.c - the msgpack schema of everything that travels through Redis.
 *
 * Layout (keys are short strings; every map carries "v" = MH_WIRE_VERSION):
 *   job spec:     {v, id, src, dst, fl, ct, mc, ca?, p3f?, p3g?}  p3f/p3g: POP3 target folder, flags
 *   endpoint:     {pr, se, h, p, u, pw?}           pw is bin (the sealed password)
 *   batch:        {v, id, b, fi, sf, df, uv, at, m: [{u, s}, ...]}
 *   batch result: {v, id, b, fi, w, m: [{u, st, du, by, e?, d?}, ...], e?, d?}
 * A "?" key is optional: encoders omit it when the field is NULL/empty, decoders accept it
 * absent or nil. Unknown keys are ignored so a newer peer may add fields.
 *
 * Decoding runs in two passes. wire_scan() walks the raw bytes first and rejects any
 * container whose declared count exceeds the bytes left, plus truncation, nesting beyond
 * WIRE_MAX_DEPTH and trailing bytes; msgpack's unpacker allocates the declared count up
 * front, so it must never see a lying header. Only then does msgpack_unpack_next build
 * the object tree in a zone, from which the typed fields are copied to the heap. */
#include "wire.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WIRE_MAX_STR (64u * 1024u)
#define WIRE_MAX_DEPTH 16 /* our schema nests 3 deep; msgpack's own stack stops at 32 */

#define K_VERSION "v", "version"
#define K_JOB_ID "id", "job_id"
#define K_SRC "src", "src"
#define K_DST "dst", "dst"
#define K_FLAGS "fl", "flags"
#define K_CREATED "ct", "created"
#define K_CA_FILE "ca", "ca_file"
#define K_MAX_CONN "mc", "max_connections"
#define K_POP3_FOLDER "p3f", "pop3_folder"
#define K_POP3_FLAGS "p3g", "pop3_flags"
#define K_PROTO "pr", "proto"
#define K_SECURITY "se", "security"
#define K_HOST "h", "host"
#define K_PORT "p", "port"
#define K_USER "u", "user"
#define K_SEALED_PW "pw", "sealed_password"
#define K_BATCH_ID "b", "batch_id"
#define K_FOLDER_IDX "fi", "folder_idx"
#define K_SRC_FOLDER "sf", "src_folder"
#define K_DST_FOLDER "df", "dst_folder"
#define K_UIDVALIDITY "uv", "src_uidvalidity"
#define K_ATTEMPT "at", "attempt"
#define K_MSGS "m", "msgs"
#define K_UID "u", "uid"
#define K_SIZE "s", "size"
#define K_STATUS "st", "status"
#define K_DST_UID "du", "dst_uid"
#define K_BYTES "by", "bytes"
#define K_ERROR "e", "error"
#define K_DETAIL "d", "detail"
#define K_WORKER "w", "worker"
#define K_ELAPSED "el", "elapsed_ms"
#define K_DATE "dt", "date"
#define K_SUBJECT "sj", "subject"

#define JOB_FLAGS_KNOWN                                                                                     \
	(MH_JOB_ALLOW_PLAINTEXT | MH_JOB_INSECURE | MH_JOB_LEDGER_SUBJECTS | MH_JOB_SKIP_CHECK | MH_JOB_SYNC_FLAGS | \
	 MH_JOB_PROPAGATE_DELETES)

bool mh_imap_flags_valid(const char *flags)
{
	bool word_start = true;

	for (const char *p = flags; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == ' ') {
			if (word_start)
				return false; /* empty word: leading or double space */
			word_start = true;
			continue;
		}
		/* atom-char of RFC 3501 section 9, plus '\\' opening a system flag */
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"]", ch) != NULL || (ch == '\\' && !word_start))
			return false;
		if (ch == '\\' && (p[1] == ' ' || p[1] == '\0'))
			return false;
		word_start = false;
	}
	return !word_start || flags[0] == '\0';
}

/* Frees b->data and empties b; NULL and an empty b are fine. */
void mh_bytes_free(struct mh_bytes *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

/* House rule: out of memory aborts; every size that reaches here is capped by input. */
static void *wire_alloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size);

	if (p == NULL)
		abort();
	return p;
}

/* ------------------------------------------------------------------------------------- */
/* Encoding                                                                                */

struct wenc {
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int failed; /* a msgpack_pack_* call failed (out of memory) */
	const char *bad_field; /* a field the schema cannot carry */
};

static void enc_init(struct wenc *e)
{
	msgpack_sbuffer_init(&e->sb);
	msgpack_packer_init(&e->pk, &e->sb, msgpack_sbuffer_write);
	e->failed = 0;
	e->bad_field = NULL;
}

static void enc_check(struct wenc *e, int rc)
{
	if (rc != 0)
		e->failed = 1;
}

static void enc_key(struct wenc *e, const char *key)
{
	size_t n = strlen(key);

	enc_check(e, msgpack_pack_str(&e->pk, n));
	enc_check(e, msgpack_pack_str_body(&e->pk, key, n));
}

static void enc_map(struct wenc *e, size_t n)
{
	enc_check(e, msgpack_pack_map(&e->pk, n));
}

static void enc_u64(struct wenc *e, const char *key, const char *name, uint64_t v)
{
	(void)name;
	enc_key(e, key);
	enc_check(e, msgpack_pack_uint64(&e->pk, v));
}

/* A required string must not be NULL; every string must fit the decoder's limit. */
static void enc_str(struct wenc *e, const char *key, const char *name, const char *s)
{
	size_t n;

	if (s == NULL || (n = strlen(s)) > WIRE_MAX_STR) {
		if (e->bad_field == NULL)
			e->bad_field = name;
		return;
	}
	enc_key(e, key);
	enc_check(e, msgpack_pack_str(&e->pk, n));
	enc_check(e, msgpack_pack_str_body(&e->pk, s, n));
}

static void enc_bin(struct wenc *e, const char *key, const char *name, const struct mh_bytes *b)
{
	if (b->len > WIRE_MAX_STR || (b->len > 0 && b->data == NULL)) {
		if (e->bad_field == NULL)
			e->bad_field = name;
		return;
	}
	enc_key(e, key);
	enc_check(e, msgpack_pack_bin(&e->pk, b->len));
	enc_check(e, msgpack_pack_bin_body(&e->pk, b->data, b->len));
}

static int enc_array(struct wenc *e, const char *key, const char *name, size_t n, const void *items)
{
	if (n > UINT32_MAX || (n > 0 && items == NULL)) {
		if (e->bad_field == NULL)
			e->bad_field = name;
		return -1;
	}
	enc_key(e, key);
	enc_check(e, msgpack_pack_array(&e->pk, n));
	return 0;
}

/* Hands the buffer to out, or frees it and reports why the encoding failed. */
static int enc_finish(struct wenc *e, const char *what, struct mh_bytes *out, struct mh_err *err)
{
	out->data = NULL;
	out->len = 0;
	if (e->failed || e->bad_field != NULL) {
		msgpack_sbuffer_destroy(&e->sb);
		if (e->bad_field != NULL)
			return mh_err_set(err, MH_E_WIRE, "%s: field %s: missing or too long to encode",
					  what, e->bad_field);
		return mh_err_set(err, MH_E_WIRE, "%s: msgpack encoding failed", what);
	}
	out->len = e->sb.size;
	out->data = (unsigned char *)msgpack_sbuffer_release(&e->sb);
	return 0;
}

static void enc_endpoint(struct wenc *e, const char *key, const char *name,
			 const struct mh_wire_endpoint *ep)
{
	bool pw = ep->sealed_password.len > 0;

	(void)name;
	enc_key(e, key);
	enc_map(e, 5 + pw);
	enc_u64(e, K_PROTO, (uint64_t)ep->proto);
	enc_u64(e, K_SECURITY, (uint64_t)ep->security);
	enc_str(e, K_HOST, ep->host);
	enc_u64(e, K_PORT, ep->port);
	enc_str(e, K_USER, ep->user);
	if (pw)
		enc_bin(e, K_SEALED_PW, &ep->sealed_password);
}

/*
 * Encodes a job spec into a new heap buffer (free with mh_bytes_free). job_id and both
 * endpoints' host and user are required; ca_file and the sealed passwords may be empty.
 * Returns 0, or -1 with MH_E_WIRE.
 */
int mh_job_spec_encode(const struct mh_job_spec *s, struct mh_bytes *out, struct mh_err *err)
{
	struct wenc e;

	enc_init(&e);
	enc_map(&e, 7 + (s->ca_file != NULL) + (s->pop3_folder != NULL) + (s->pop3_flags != NULL));
	enc_u64(&e, K_VERSION, MH_WIRE_VERSION);
	enc_str(&e, K_JOB_ID, s->job_id);
	enc_endpoint(&e, K_SRC, &s->src);
	enc_endpoint(&e, K_DST, &s->dst);
	enc_u64(&e, K_FLAGS, s->flags);
	enc_u64(&e, K_CREATED, s->created);
	enc_u64(&e, K_MAX_CONN, s->max_connections);
	if (s->ca_file != NULL)
		enc_str(&e, K_CA_FILE, s->ca_file);
	if (s->pop3_folder != NULL)
		enc_str(&e, K_POP3_FOLDER, s->pop3_folder);
	if (s->pop3_flags != NULL)
		enc_str(&e, K_POP3_FLAGS, s->pop3_flags);
	return enc_finish(&e, "job spec", out, err);
}

/*
 * Encodes a batch (count messages in msgs; msgs may be NULL when count is 0) into a new
 * heap buffer. job_id, src_folder and dst_folder are required. Returns 0, or -1 (MH_E_WIRE).
 */
int mh_batch_encode(const struct mh_batch *b, struct mh_bytes *out, struct mh_err *err)
{
	struct wenc e;

	enc_init(&e);
	enc_map(&e, 9);
	enc_u64(&e, K_VERSION, MH_WIRE_VERSION);
	enc_str(&e, K_JOB_ID, b->job_id);
	enc_u64(&e, K_BATCH_ID, b->batch_id);
	enc_u64(&e, K_FOLDER_IDX, b->folder_idx);
	enc_str(&e, K_SRC_FOLDER, b->src_folder);
	enc_str(&e, K_DST_FOLDER, b->dst_folder);
	enc_u64(&e, K_UIDVALIDITY, b->src_uidvalidity);
	enc_u64(&e, K_ATTEMPT, b->attempt);
	if (enc_array(&e, K_MSGS, b->count, b->msgs) == 0) {
		for (size_t i = 0; i < b->count && !e.failed; i++) {
			enc_map(&e, 2);
			enc_u64(&e, K_UID, b->msgs[i].uid);
			enc_u64(&e, K_SIZE, b->msgs[i].size);
		}
	}
	return enc_finish(&e, "batch", out, err);
}

/*
 * Encodes a batch result into a new heap buffer. job_id and worker are required; the
 * batch-level and per-message error/detail are optional (NULL is omitted).
 * Returns 0, or -1 (MH_E_WIRE).
 */
int mh_batch_result_encode(const struct mh_batch_result *r, struct mh_bytes *out,
			   struct mh_err *err)
{
	struct wenc e;

	enc_init(&e);
	enc_map(&e, 8 + (r->error != NULL) + (r->detail != NULL));
	enc_u64(&e, K_VERSION, MH_WIRE_VERSION);
	enc_str(&e, K_JOB_ID, r->job_id);
	enc_u64(&e, K_BATCH_ID, r->batch_id);
	enc_u64(&e, K_FOLDER_IDX, r->folder_idx);
	enc_str(&e, K_WORKER, r->worker);
	enc_u64(&e, K_ATTEMPT, r->attempt);
	enc_u64(&e, K_ELAPSED, r->elapsed_ms);
	if (enc_array(&e, K_MSGS, r->count, r->msgs) == 0) {
		for (size_t i = 0; i < r->count && !e.failed; i++) {
			const struct mh_msg_result *m = &r->msgs[i];

			enc_map(&e, 4 + (m->error != NULL) + (m->detail != NULL) + (m->date != NULL) +
					    (m->subject != NULL));
			enc_u64(&e, K_UID, m->uid);
			enc_u64(&e, K_STATUS, (uint64_t)m->status);
			enc_u64(&e, K_DST_UID, m->dst_uid);
			enc_u64(&e, K_BYTES, m->bytes);
			if (m->error != NULL)
				enc_str(&e, K_ERROR, m->error);
			if (m->detail != NULL)
				enc_str(&e, K_DETAIL, m->detail);
			if (m->date != NULL)
				enc_str(&e, K_DATE, m->date);
			if (m->subject != NULL)
				enc_str(&e, K_SUBJECT, m->subject);
		}
	}
	if (r->error != NULL)
		enc_str(&e, K_ERROR, r->error);
	if (r->detail != NULL)
		enc_str(&e, K_DETAIL, r->detail);
	return enc_finish(&e, "batch result", out, err);
}

/* ------------------------------------------------------------------------------------- */
/* Structural pre-scan                                                                     */

static uint64_t be_read(const unsigned char *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Walks one msgpack object spanning exactly len bytes without allocating. Containers may
 * not declare more elements than the bytes left could hold (one byte per element at least),
 * which is what makes the later msgpack_unpack_next safe. */
static int wire_scan(const unsigned char *p, size_t len, const char *what, struct mh_err *err)
{
	uint64_t pending[WIRE_MAX_DEPTH + 1]; /* elements still owed per open container */
	int depth = 0;
	size_t off = 0;

	pending[0] = 1;
	while (depth >= 0) {
		uint64_t skip = 0;  /* payload bytes after the header */
		uint64_t elems = 0; /* for containers: elements that follow */
		size_t hdr = 1;     /* header bytes, including the type byte */
		bool container = false;
		unsigned char t;

		if (pending[depth] == 0) {
			depth--;
			continue;
		}
		if (off >= len)
			return mh_err_set(err, MH_E_WIRE, "%s: truncated at byte %zu", what, off);
		t = p[off];
		if (t <= 0x7f || t >= 0xe0 || (t >= 0xc0 && t <= 0xc3 && t != 0xc1)) {
			/* fixint, nil, bool */
		} else if (t >= 0x80 && t <= 0x9f) {
			container = true;
			elems = t & 0x0f;
			if (t <= 0x8f)
				elems *= 2;
		} else if (t >= 0xa0 && t <= 0xbf) {
			skip = t & 0x1f;
		} else {
			static const unsigned char lenbytes[] = {
				[0xc4 - 0xc4] = 1, [0xc5 - 0xc4] = 2, [0xc6 - 0xc4] = 4, /* bin */
				[0xc7 - 0xc4] = 1, [0xc8 - 0xc4] = 2, [0xc9 - 0xc4] = 4, /* ext */
				[0xd9 - 0xc4] = 1, [0xda - 0xc4] = 2, [0xdb - 0xc4] = 4, /* str */
				[0xdc - 0xc4] = 2, [0xdd - 0xc4] = 4,                    /* array */
				[0xde - 0xc4] = 2, [0xdf - 0xc4] = 4,                    /* map */
			};
			size_t lb;

			if (t == 0xc1)
				return mh_err_set(err, MH_E_WIRE, "%s: invalid type byte at %zu", what, off);
			if (t == 0xca || t == 0xcb) {
				skip = t == 0xca ? 4 : 8;
			} else if (t >= 0xcc && t <= 0xd3) {
				skip = 1u << ((t - 0xcc) & 3);
			} else if (t >= 0xd4 && t <= 0xd8) {
				skip = 1 + (1u << (t - 0xd4)); /* fixext: type byte + data */
			} else {
				lb = lenbytes[t - 0xc4];
				if (len - off - 1 < lb)
					return mh_err_set(err, MH_E_WIRE, "%s: truncated at byte %zu", what, off);
				hdr += lb;
				if (t >= 0xdc) {
					container = true;
					elems = be_read(p + off + 1, lb);
					if (t >= 0xde)
						elems *= 2;
				} else {
					skip = be_read(p + off + 1, lb);
					if (t >= 0xc7 && t <= 0xc9)
						skip++; /* the ext type byte */
				}
			}
		}
		if (len - off < hdr || len - off - hdr < skip)
			return mh_err_set(err, MH_E_WIRE, "%s: truncated at byte %zu", what, off);
		off += hdr + (size_t)skip;
		pending[depth]--;
		if (container && elems > 0) {
			if (elems > len - off)
				return mh_err_set(err, MH_E_WIRE,
						  "%s: container at byte %zu declares %llu elements but "
						  "only %zu bytes remain",
						  what, off - hdr, (unsigned long long)elems, len - off);
			if (depth == WIRE_MAX_DEPTH)
				return mh_err_set(err, MH_E_WIRE, "%s: nested deeper than %d", what,
						  WIRE_MAX_DEPTH);
			pending[++depth] = elems;
		}
	}
	if (off != len)
		return mh_err_set(err, MH_E_WIRE, "%s: %zu trailing bytes after the map", what,
				  len - off);
	return 0;
}

/* ------------------------------------------------------------------------------------- */
/* Typed field access                                                                      */

struct wdec {
	const char *what;  /* "job spec" */
	char path[48];     /* prefix of the current map, "" or "src." or "msgs[12]." */
	struct mh_err *err;
};

static int dec_fail(struct wdec *d, const char *name, const char *problem)
{
	return mh_err_set(d->err, MH_E_WIRE, "%s: field %s%s: %s", d->what, d->path, name, problem);
}

/* Finds key in map. *o_r is NULL when the key is absent or nil. A key given twice is
 * rejected: two readers could otherwise disagree on which one counts. */
static int dec_find(struct wdec *d, const msgpack_object *map, const char *key, const char *name,
		    bool required, const msgpack_object **o_r)
{
	size_t klen = strlen(key);
	const msgpack_object *found = NULL;

	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];

		if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != klen ||
		    memcmp(kv->key.via.str.ptr, key, klen) != 0)
			continue;
		if (found != NULL)
			return dec_fail(d, name, "duplicate key");
		found = &kv->val;
	}
	if (found != NULL && found->type == MSGPACK_OBJECT_NIL)
		found = NULL;
	if (found == NULL && required)
		return dec_fail(d, name, "missing");
	*o_r = found;
	return 0;
}

static int dec_u64(struct wdec *d, const msgpack_object *map, const char *key, const char *name,
		   uint64_t min, uint64_t max, uint64_t *v_r)
{
	const msgpack_object *o;

	if (dec_find(d, map, key, name, true, &o) < 0)
		return -1;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return dec_fail(d, name, "negative integer");
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return dec_fail(d, name, "not an integer");
	if (o->via.u64 < min || o->via.u64 > max)
		return dec_fail(d, name, "integer out of range");
	*v_r = o->via.u64;
	return 0;
}

static int dec_u32(struct wdec *d, const msgpack_object *map, const char *key, const char *name,
		   uint32_t *v_r)
{
	uint64_t v;

	if (dec_u64(d, map, key, name, 0, UINT32_MAX, &v) < 0)
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

/* Copies a string field to the heap. Optional strings come back NULL when absent. */
static int dec_str(struct wdec *d, const msgpack_object *map, const char *key, const char *name,
		   bool required, char **s_r)
{
	const msgpack_object *o;
	char *s;

	if (dec_find(d, map, key, name, required, &o) < 0)
		return -1;
	if (o == NULL)
		return 0;
	if (o->type != MSGPACK_OBJECT_STR)
		return dec_fail(d, name, "not a string");
	if (o->via.str.size > WIRE_MAX_STR)
		return dec_fail(d, name, "string longer than 64 KiB");
	/* A NUL would silently cut the C string short. */
	if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		return dec_fail(d, name, "string contains a NUL byte");
	s = wire_alloc(o->via.str.size + 1, 1);
	memcpy(s, o->via.str.ptr, o->via.str.size);
	*s_r = s;
	return 0;
}

static int dec_bin(struct wdec *d, const msgpack_object *map, const char *key, const char *name,
		   struct mh_bytes *b)
{
	const msgpack_object *o;

	if (dec_find(d, map, key, name, false, &o) < 0)
		return -1;
	if (o == NULL)
		return 0;
	if (o->type != MSGPACK_OBJECT_BIN)
		return dec_fail(d, name, "not binary");
	if (o->via.bin.size > WIRE_MAX_STR)
		return dec_fail(d, name, "binary longer than 64 KiB");
	if (o->via.bin.size == 0)
		return 0;
	b->data = wire_alloc(o->via.bin.size, 1);
	memcpy(b->data, o->via.bin.ptr, o->via.bin.size);
	b->len = o->via.bin.size;
	return 0;
}

static int dec_map(struct wdec *d, const msgpack_object *map, const char *key, const char *name,
		   const msgpack_object **o_r)
{
	if (dec_find(d, map, key, name, true, o_r) < 0)
		return -1;
	if ((*o_r)->type != MSGPACK_OBJECT_MAP)
		return dec_fail(d, name, "not a map");
	return 0;
}

static int dec_array(struct wdec *d, const msgpack_object *map, const char *key, const char *name,
		     const msgpack_object **o_r)
{
	if (dec_find(d, map, key, name, true, o_r) < 0)
		return -1;
	if ((*o_r)->type != MSGPACK_OBJECT_ARRAY)
		return dec_fail(d, name, "not an array");
	return 0;
}

/* Enters element idx of an array of maps: later messages name "msgs[idx].field". */
static int dec_enter(struct wdec *d, const msgpack_object *o, const char *name, size_t idx)
{
	char elem[32];

	if (o->type != MSGPACK_OBJECT_MAP) {
		d->path[0] = '\0';
		snprintf(elem, sizeof(elem), "%s[%zu]", name, idx);
		return dec_fail(d, elem, "not a map");
	}
	snprintf(d->path, sizeof(d->path), "%s[%zu].", name, idx);
	return 0;
}

/* Scans, unpacks and checks the top-level map and its version. */
static int dec_begin(struct wdec *d, const void *data, size_t len, msgpack_unpacked *u)
{
	const msgpack_object *root;
	size_t off = 0;
	uint64_t v;
	msgpack_unpack_return rc;

	if (data == NULL || len == 0)
		return mh_err_set(d->err, MH_E_WIRE, "%s: empty input", d->what);
	if (wire_scan(data, len, d->what, d->err) < 0)
		return -1;
	rc = msgpack_unpack_next(u, data, len, &off);
	if ((rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES) || off != len)
		return mh_err_set(d->err, MH_E_WIRE, "%s: msgpack parse error %d", d->what, (int)rc);
	root = &u->data;
	if (root->type != MSGPACK_OBJECT_MAP)
		return mh_err_set(d->err, MH_E_WIRE, "%s: top level is not a map", d->what);
	if (dec_u64(d, root, K_VERSION, 0, UINT64_MAX, &v) < 0)
		return -1;
	if (v != MH_WIRE_VERSION)
		return mh_err_set(d->err, MH_E_WIRE, "%s: field version: %llu, expected %d", d->what,
				  (unsigned long long)v, MH_WIRE_VERSION);
	return 0;
}

/* ------------------------------------------------------------------------------------- */
/* Decoders                                                                                */

static int dec_endpoint(struct wdec *d, const msgpack_object *root, const char *key,
			const char *name, struct mh_wire_endpoint *ep)
{
	const msgpack_object *m;
	uint64_t proto, sec, port;

	if (dec_map(d, root, key, name, &m) < 0)
		return -1;
	snprintf(d->path, sizeof(d->path), "%s.", name);
	if (dec_u64(d, m, K_PROTO, MH_PROTO_IMAP, MH_PROTO_POP3, &proto) < 0 ||
	    dec_u64(d, m, K_SECURITY, MH_SEC_PLAIN, MH_SEC_TLS, &sec) < 0 ||
	    dec_str(d, m, K_HOST, true, &ep->host) < 0 ||
	    dec_u64(d, m, K_PORT, 0, UINT16_MAX, &port) < 0 ||
	    dec_str(d, m, K_USER, true, &ep->user) < 0 ||
	    dec_bin(d, m, K_SEALED_PW, &ep->sealed_password) < 0)
		return -1;
	ep->proto = (enum mh_proto)proto;
	ep->security = (enum mh_security)sec;
	ep->port = (uint16_t)port;
	d->path[0] = '\0';
	return 0;
}

/*
 * Decodes a job spec from len bytes (the whole buffer must be one map). s is initialized
 * here; on success it owns heap copies (free with mh_job_spec_cleanup). Unknown flag bits
 * are rejected: a worker must not run a job whose rules it does not understand.
 * Returns 0, or -1 with MH_E_WIRE and s left empty.
 */
int mh_job_spec_decode(const void *data, size_t len, struct mh_job_spec *s, struct mh_err *err)
{
	struct wdec d = {.what = "job spec", .path = "", .err = err};
	msgpack_unpacked u;
	const msgpack_object *root = &u.data;
	uint64_t flags, max_conn = 0;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	msgpack_unpacked_init(&u);
	if (dec_begin(&d, data, len, &u) < 0 ||
	    dec_str(&d, root, K_JOB_ID, true, &s->job_id) < 0 ||
	    dec_endpoint(&d, root, K_SRC, &s->src) < 0 ||
	    dec_endpoint(&d, root, K_DST, &s->dst) < 0 ||
	    dec_u64(&d, root, K_FLAGS, 0, UINT32_MAX, &flags) < 0 ||
	    dec_u64(&d, root, K_CREATED, 0, UINT64_MAX, &s->created) < 0 ||
	    dec_u64(&d, root, K_MAX_CONN, 0, 1024, &max_conn) < 0 ||
	    dec_str(&d, root, K_CA_FILE, false, &s->ca_file) < 0 ||
	    dec_str(&d, root, K_POP3_FOLDER, false, &s->pop3_folder) < 0 ||
	    dec_str(&d, root, K_POP3_FLAGS, false, &s->pop3_flags) < 0)
		goto out;
	if (s->pop3_folder != NULL && s->pop3_folder[0] == '\0') {
		dec_fail(&d, "pop3_folder", "empty folder name");
		goto out;
	}
	/* the flags go into an APPEND command as they are: nothing but flag words */
	if (s->pop3_flags != NULL && !mh_imap_flags_valid(s->pop3_flags)) {
		dec_fail(&d, "pop3_flags", "not a list of IMAP flags");
		goto out;
	}
	if ((flags & ~(uint64_t)JOB_FLAGS_KNOWN) != 0) {
		dec_fail(&d, "flags", "unknown flag bits");
		goto out;
	}
	s->flags = (uint32_t)flags;
	s->max_connections = (uint32_t)max_conn;
	rc = 0;
out:
	msgpack_unpacked_destroy(&u);
	if (rc < 0)
		mh_job_spec_cleanup(s);
	return rc;
}

/* Frees what a decode (or the caller) put into s and zeroes it; safe on a zeroed s. */
void mh_job_spec_cleanup(struct mh_job_spec *s)
{
	if (s == NULL)
		return;
	free(s->job_id);
	free(s->src.host);
	free(s->src.user);
	mh_bytes_free(&s->src.sealed_password);
	free(s->dst.host);
	free(s->dst.user);
	mh_bytes_free(&s->dst.sealed_password);
	free(s->ca_file);
	free(s->pop3_folder);
	free(s->pop3_flags);
	memset(s, 0, sizeof(*s));
}

/*
 * Decodes a batch. On success b owns its strings and msgs (NULL when count is 0); free
 * with mh_batch_cleanup. Returns 0, or -1 with MH_E_WIRE and b left empty.
 */
int mh_batch_decode(const void *data, size_t len, struct mh_batch *b, struct mh_err *err)
{
	struct wdec d = {.what = "batch", .path = "", .err = err};
	msgpack_unpacked u;
	const msgpack_object *root = &u.data;
	const msgpack_object *arr;
	int rc = -1;

	memset(b, 0, sizeof(*b));
	msgpack_unpacked_init(&u);
	if (dec_begin(&d, data, len, &u) < 0 ||
	    dec_str(&d, root, K_JOB_ID, true, &b->job_id) < 0 ||
	    dec_u64(&d, root, K_BATCH_ID, 0, UINT64_MAX, &b->batch_id) < 0 ||
	    dec_u32(&d, root, K_FOLDER_IDX, &b->folder_idx) < 0 ||
	    dec_str(&d, root, K_SRC_FOLDER, true, &b->src_folder) < 0 ||
	    dec_str(&d, root, K_DST_FOLDER, true, &b->dst_folder) < 0 ||
	    dec_u32(&d, root, K_UIDVALIDITY, &b->src_uidvalidity) < 0 ||
	    dec_u32(&d, root, K_ATTEMPT, &b->attempt) < 0 ||
	    dec_array(&d, root, K_MSGS, &arr) < 0)
		goto out;
	if (arr->via.array.size > 0) {
		b->msgs = wire_alloc(arr->via.array.size, sizeof(*b->msgs));
		b->count = arr->via.array.size;
	}
	for (size_t i = 0; i < b->count; i++) {
		const msgpack_object *m = &arr->via.array.ptr[i];

		if (dec_enter(&d, m, "msgs", i) < 0 ||
		    dec_u32(&d, m, K_UID, &b->msgs[i].uid) < 0 ||
		    dec_u64(&d, m, K_SIZE, 0, UINT64_MAX, &b->msgs[i].size) < 0)
			goto out;
	}
	rc = 0;
out:
	msgpack_unpacked_destroy(&u);
	if (rc < 0)
		mh_batch_cleanup(b);
	return rc;
}

/* Frees what b owns and zeroes it; safe on a zeroed b. */
void mh_batch_cleanup(struct mh_batch *b)
{
	if (b == NULL)
		return;
	free(b->job_id);
	free(b->src_folder);
	free(b->dst_folder);
	free(b->msgs);
	memset(b, 0, sizeof(*b));
}

/*
 * Decodes a batch result. Statuses outside enum mh_msg_status are rejected. On success r
 * owns everything (free with mh_batch_result_cleanup). Returns 0, or -1 with MH_E_WIRE
 * and r left empty.
 */
int mh_batch_result_decode(const void *data, size_t len, struct mh_batch_result *r,
			   struct mh_err *err)
{
	struct wdec d = {.what = "batch result", .path = "", .err = err};
	msgpack_unpacked u;
	const msgpack_object *root = &u.data;
	const msgpack_object *arr;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	msgpack_unpacked_init(&u);
	if (dec_begin(&d, data, len, &u) < 0 ||
	    dec_str(&d, root, K_JOB_ID, true, &r->job_id) < 0 ||
	    dec_u64(&d, root, K_BATCH_ID, 0, UINT64_MAX, &r->batch_id) < 0 ||
	    dec_u32(&d, root, K_FOLDER_IDX, &r->folder_idx) < 0 ||
	    dec_str(&d, root, K_WORKER, true, &r->worker) < 0 ||
	    dec_u32(&d, root, K_ATTEMPT, &r->attempt) < 0 ||
	    dec_u64(&d, root, K_ELAPSED, 0, UINT64_MAX, &r->elapsed_ms) < 0 ||
	    dec_str(&d, root, K_ERROR, false, &r->error) < 0 ||
	    dec_str(&d, root, K_DETAIL, false, &r->detail) < 0 ||
	    dec_array(&d, root, K_MSGS, &arr) < 0)
		goto out;
	if (arr->via.array.size > 0) {
		r->msgs = wire_alloc(arr->via.array.size, sizeof(*r->msgs));
		r->count = arr->via.array.size;
	}
	for (size_t i = 0; i < r->count; i++) {
		const msgpack_object *o = &arr->via.array.ptr[i];
		struct mh_msg_result *m = &r->msgs[i];
		uint64_t status = 0;

		if (dec_enter(&d, o, "msgs", i) < 0 ||
		    dec_u32(&d, o, K_UID, &m->uid) < 0 ||
		    dec_u64(&d, o, K_STATUS, MH_MSG_COPIED, MH_MSG_FAILED, &status) < 0 ||
		    dec_u32(&d, o, K_DST_UID, &m->dst_uid) < 0 ||
		    dec_u64(&d, o, K_BYTES, 0, UINT64_MAX, &m->bytes) < 0 ||
		    dec_str(&d, o, K_ERROR, false, &m->error) < 0 ||
		    dec_str(&d, o, K_DETAIL, false, &m->detail) < 0 ||
		    dec_str(&d, o, K_DATE, false, &m->date) < 0 ||
		    dec_str(&d, o, K_SUBJECT, false, &m->subject) < 0)
			goto out;
		m->status = (enum mh_msg_status)status;
	}
	rc = 0;
out:
	msgpack_unpacked_destroy(&u);
	if (rc < 0)
		mh_batch_result_cleanup(r);
	return rc;
}

/* Frees what r owns (including every message's error and detail) and zeroes it. */
void mh_msg_result_cleanup(struct mh_msg_result *m)
{
	free(m->error);
	free(m->detail);
	free(m->date);
	free(m->subject);
	memset(m, 0, sizeof(*m));
}

void mh_batch_result_cleanup(struct mh_batch_result *r)
{
	if (r == NULL)
		return;
	free(r->job_id);
	free(r->worker);
	for (size_t i = 0; i < r->count; i++)
		mh_msg_result_cleanup(&r->msgs[i]);
	free(r->msgs);
	free(r->error);
	free(r->detail);
	memset(r, 0, sizeof(*r));
}
