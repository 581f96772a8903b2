/* msgheader.h - fields of a message's header block, as fetched with BODY.PEEK[HEADER]
 * or BODY.PEEK[HEADER.FIELDS (...)] (CRLF or bare LF line ends; folded lines unfolded). */
#ifndef MH_MSGHEADER_H
#define MH_MSGHEADER_H

#include <stddef.h>

/* The Message-ID ("<x@y>", or the trimmed value when it has no angle brackets), or NULL.
 * Heap string. */
char *mh_header_message_id(const char *h, size_t len);

/* The value of the first field called name (case-insensitive, without the colon),
 * unfolded and trimmed, at most 1023 bytes; NULL when absent or empty. Heap string. */
char *mh_header_field(const char *h, size_t len, const char *name);

#endif
