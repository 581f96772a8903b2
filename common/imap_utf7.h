/* imap_utf7.h - IMAP modified UTF-7 for mailbox names (RFC 3501 5.1.3).
 *
 * Pure: strings in, strings out. Both directions are strict, so that decoding and then
 * encoding gives back the input byte for byte:
 * - printable US-ASCII (0x20-0x7e) except '&' stands for itself and is never encoded;
 * - '&' is written "&-";
 * - everything else is a run of UTF-16 code units in modified base64 ('+' and ',' for
 *   base64's '+' and '/', no '=' padding) between '&' and '-'; the unused bits at the end
 *   of a run are fewer than 6 and zero; two runs never follow each other directly;
 * - surrogates come in pairs (high then low) inside one run;
 * - U+0000 is never allowed (results are C strings).
 * UTF-8 input must be well-formed: no overlong forms, no surrogates, nothing above
 * U+10FFFF, no NUL byte.
 *
 * Memory: results are heap strings (NUL-terminated) that the caller frees. Input is
 * (pointer, length) and need not be NUL-terminated. Running out of memory aborts.
 */
#ifndef MH_IMAP_UTF7_H
#define MH_IMAP_UTF7_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* Decodes the modified UTF-7 mailbox name in[0..len) into UTF-8 in *out_r.
 * Returns 0, or -1 with MH_E_FOLDER_NAME (and *out_r set to NULL) when the input is not
 * canonical modified UTF-7; the detail names the problem and its byte offset. */
int imap_utf7_to_utf8(const char *in, size_t len, char **out_r, struct mh_err *err);

/* Encodes the UTF-8 mailbox name in[0..len) as modified UTF-7 in *out_r.
 * Returns 0, or -1 with MH_E_FOLDER_NAME (and *out_r set to NULL) when the input is not
 * well-formed UTF-8 or contains a NUL byte. */
int imap_utf8_to_utf7(const char *in, size_t len, char **out_r, struct mh_err *err);

/* True when in[0..len) is canonical modified UTF-7 (imap_utf7_to_utf8() would succeed). */
bool imap_utf7_is_valid(const char *in, size_t len);

#endif
