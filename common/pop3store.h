/* pop3store.h - what Redis keeps for POP3 sources: message identities and dedup.
 *
 * POP3 message numbers are valid for one session only (RFC 1939 section 5), so nothing
 * outside a session ever names a message by its number. A message's identity is
 * "U:<its UIDL>", or, on servers without UIDL, "H:<size>:<SHA-256 of its header block>"
 * (pop3_ident.h). Keys:
 *   mh:job:<id>:pop3     hash: job-local message id (decimal, the "uid" of batches and
 *                        results) -> identity. Written by the planner; a job planned again
 *                        keeps its ids. Deleted with the job (mailhaul forget).
 *   mh:pop3:<sha256 hex of lowercased host NUL user>
 *                        (no port: pop3:// on 110 and pop3s:// on 995 reach one maildrop)
 *                        hash: identity -> "<job id> <unix ms>" for every message copied
 *                        from that source account, by any job: a second run, a requeue
 *                        and a redelivered batch copy only what is not in it. Written by
 *                        a worker right after the target accepted the APPEND, before the
 *                        result is reported. Kept across jobs (it is the account's dedup
 *                        memory); user names never appear in key names.
 */
#ifndef MH_POP3STORE_H
#define MH_POP3STORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct rq;

#define MH_POP3_IDENT_MAX 96 /* "U:" + 70-byte UIDL, or "H:<size>:<64 hex>" */

struct mh_pop3_id {
	uint32_t id;
	char *ident; /* heap */
};

void mh_key_pop3_account(char *buf, size_t len, const char *host, const char *user);
void mh_key_pop3_job(char *buf, size_t len, const char *job_id);

/* Every id -> identity of the job (*ids_r heap, free with mh_pop3_ids_free). 0 or -1. */
int mh_pop3_ids_load(struct rq *q, const char *job_id, struct mh_pop3_id **ids_r, size_t *n_r, struct mh_err *err);
int mh_pop3_ids_store(struct rq *q, const char *job_id, const struct mh_pop3_id *ids, size_t n, struct mh_err *err);
void mh_pop3_ids_free(struct mh_pop3_id *ids, size_t n);

/* The identities of ids[0..n): (*idents_r)[i] heap or NULL when unknown. Free with
 * mh_pop3_strv_free(*idents_r, n). 0 or -1. */
int mh_pop3_ids_get(struct rq *q, const char *job_id, const uint32_t *ids, size_t n, char ***idents_r,
		    struct mh_err *err);

/* Which identities were copied already from the account acct_key: (*vals_r)[i] is the
 * record ("<job> <ms>") or NULL. 0 or -1. */
int mh_pop3_copied_get(struct rq *q, const char *acct_key, const char *const *idents, size_t n, char ***vals_r,
		       struct mh_err *err);
/* Records idents as copied by job_id now. 0 or -1. */
int mh_pop3_copied_set(struct rq *q, const char *acct_key, const char *const *idents, size_t n, const char *job_id,
		       struct mh_err *err);
/* True when a record of mh_pop3_copied_get names job_id. */
int mh_pop3_copied_by(const char *record, const char *job_id);

void mh_pop3_strv_free(char **v, size_t n);

#endif
