/* pop3_ident.h - a POP3 maildrop's messages with their sizes and stable identities.
 *
 * Identity (see pop3store.h): "U:<UIDL>" when the server offers UIDL (RFC 1939 section 7;
 * the UIDL capability, or a server without CAPA that answers UIDL); else
 * "H:<size>:<SHA-256 hex of the header block without CRs>", the header read with TOP n 0
 * (RETR when TOP is not offered either). Two messages with the same fallback identity
 * get "#2", "#3"... appended in maildrop order, so that each has its own. Used by the
 * planner, the workers (to find this session's message numbers) and the health check. */
#ifndef MH_POP3_IDENT_H
#define MH_POP3_IDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "pop3store.h"

struct event_base;
struct pop3_client;

struct mh_pop3_msg {
	uint32_t msgno; /* valid in this session only */
	uint64_t size;  /* LIST's octets */
	char ident[MH_POP3_IDENT_MAX];
};

/* Reads the listing (LIST, and UIDL or the header hashes when want_idents) running base
 * until done. *msgs_r heap (free()), in message number order; *uidl_r: identities came
 * from UIDL. 0, or -1 with err (a connection error, or a malformed listing). */
int mh_pop3_inventory(struct event_base *base, struct pop3_client *c, bool want_idents, struct mh_pop3_msg **msgs_r,
		      size_t *n_r, bool *uidl_r, struct mh_err *err);

/* Every listed message's key for finding it on an IMAP target (TOP n 0, else RETR):
 * "M:<Message-ID>", or for a message without one "H:<size>:<SHA-256 hex of the header
 * block, its final empty line included, without CRs>" -- the planner's identity of the
 * copy on the target (BODY[HEADER], RFC822.SIZE). Free with mh_pop3_strv_free(). */
int mh_pop3_target_keys(struct event_base *base, struct pop3_client *c, const struct mh_pop3_msg *msgs, size_t n,
			char ***ids_r, struct mh_err *err);

/* Index of ident in msgs (n entries), or -1. */
long mh_pop3_find(const struct mh_pop3_msg *msgs, size_t n, const char *ident);

#endif
