/* msgheader.h - fields of a message's header block, as fetched with BODY.PEEK[HEADER]
 * or BODY.PEEK[HEADER.FIELDS (...)] (CRLF or bare LF line ends; folded lines unfolded). */
#ifndef MH_MSGHEADER_H
#define MH_MSGHEADER_H

#include <stddef.h>
#include <stdint.h>

/* The Message-ID ("<x@y>", or the trimmed value when it has no angle brackets), or NULL.
 * Heap string. */
char *mh_header_message_id(const char *h, size_t len);

/* A message's identity from its header when it has no Message-ID, as the planner keys it:
 * "H:<size>:<SHA-256 hex of the header block, its final empty line included, CRs left
 * out>" (a whole message may be given: the body is not hashed). Heap string. */
char *mh_header_hash_key(const char *h, size_t len, uint64_t size);

/* The value of the first field called name (case-insensitive, without the colon),
 * unfolded and trimmed, at most 1023 bytes; NULL when absent or empty. Heap string. */
char *mh_header_field(const char *h, size_t len, const char *name);

#endif
