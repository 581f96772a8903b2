/* wire.h - the msgpack schema of everything that travels through Redis.
 *
 * The only includer of <msgpack.h>. Every payload is a msgpack map with a "v" (schema
 * version) key; decoders reject other versions, missing required keys, wrong types,
 * trailing bytes, oversized strings (> 64 KiB) and container counts larger than the
 * bytes that remain. Never message content; passwords only sealed (see seal.h).
 *
 * Memory: decoded structs own heap copies of their strings/arrays; free them with the
 * matching _cleanup(). Encoders return a heap buffer in struct mh_bytes. */
#ifndef MH_WIRE_H
#define MH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "err.h"

#define MH_WIRE_VERSION 1

struct mh_bytes {
	unsigned char *data;
	size_t len;
};
void mh_bytes_free(struct mh_bytes *b);

/* One side of a job. The password travels only sealed. */
struct mh_wire_endpoint {
	enum mh_proto proto;
	enum mh_security security;
	char *host;
	uint16_t port;
	char *user;
	struct mh_bytes sealed_password; /* may be empty */
};

#define MH_JOB_ALLOW_PLAINTEXT 0x1u
#define MH_JOB_INSECURE 0x2u
#define MH_JOB_LEDGER_SUBJECTS 0x4u /* keep failed messages' subjects readable, not hashed */
#define MH_JOB_SKIP_CHECK 0x8u      /* plan without the health check first */
#define MH_JOB_SYNC_FLAGS 0x10u     /* syncs apply source flag changes to the copies */
#define MH_JOB_PROPAGATE_DELETES 0x20u /* syncs delete copies of messages deleted on the source */

struct mh_job_spec {
	char *job_id;
	struct mh_wire_endpoint src, dst;
	uint32_t flags;   /* MH_JOB_* */
	char *ca_file;    /* path valid on coordinator and workers, or NULL */
	uint64_t created; /* unix seconds */
	uint32_t max_connections; /* per account and side, fleet-wide; 0: the default (limit.h) */
	/* POP3 sources only: the target folder (NULL: INBOX) and the flags copies get
	 * (space-separated, e.g. "\\Seen"; NULL: none) */
	char *pop3_folder;
	char *pop3_flags;
};

/* True when flags is "" or space-separated IMAP flags ("\\Seen $Label1"): atoms, a
 * backslash only at a word's start, single spaces. */
bool mh_imap_flags_valid(const char *flags);

struct mh_batch_msg {
	uint32_t uid;
	uint64_t size;
};

struct mh_batch {
	char *job_id;
	uint64_t batch_id;
	uint32_t folder_idx;     /* index into the job's folder table */
	char *src_folder;        /* as on the source server (modified UTF-7) */
	char *dst_folder;        /* as on the target server */
	uint32_t src_uidvalidity;
	uint32_t attempt;        /* 0 for the first delivery */
	size_t count;
	struct mh_batch_msg *msgs;
};

enum mh_msg_status { MH_MSG_COPIED = 1, MH_MSG_SKIPPED = 2, MH_MSG_FAILED = 3 };

struct mh_msg_result {
	uint32_t uid;       /* source UID */
	enum mh_msg_status status;
	uint32_t dst_uid;   /* 0 when unknown */
	uint64_t bytes;
	char *error;        /* catalogue name (mh_err_name) for FAILED, else NULL */
	char *detail;       /* sanitized server text, or NULL */
	char *date;         /* FAILED: the message's INTERNALDATE, or NULL */
	char *subject;      /* FAILED: its Subject, or "sha256:<12 hex>" of it (privacy), or NULL */
};

struct mh_batch_result {
	char *job_id;
	uint64_t batch_id;
	uint32_t folder_idx;
	char *worker;
	uint32_t attempt;    /* the batch's attempt (0: first delivery) */
	uint64_t elapsed_ms; /* how long the worker spent on it */
	size_t count;
	struct mh_msg_result *msgs;
	char *error;  /* batch-level failure (catalogue name) when the batch could not run, else NULL */
	char *detail;
};

int mh_job_spec_encode(const struct mh_job_spec *s, struct mh_bytes *out, struct mh_err *err);
int mh_job_spec_decode(const void *data, size_t len, struct mh_job_spec *s, struct mh_err *err);
void mh_job_spec_cleanup(struct mh_job_spec *s);

int mh_batch_encode(const struct mh_batch *b, struct mh_bytes *out, struct mh_err *err);
int mh_batch_decode(const void *data, size_t len, struct mh_batch *b, struct mh_err *err);
void mh_batch_cleanup(struct mh_batch *b);

int mh_batch_result_encode(const struct mh_batch_result *r, struct mh_bytes *out, struct mh_err *err);
int mh_batch_result_decode(const void *data, size_t len, struct mh_batch_result *r, struct mh_err *err);
/* Frees one message result's strings. */
void mh_msg_result_cleanup(struct mh_msg_result *m);
void mh_batch_result_cleanup(struct mh_batch_result *r);

#endif
