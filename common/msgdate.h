/* msgdate.h - the INTERNALDATE a message gets when its source has none (POP3).
 *
 * Pure: bytes of a header block in, an IMAP date-time out. The date a message arrived is
 * the date of its first (topmost) Received header, the one the receiving server added
 * (RFC 5321 section 4.4: the date after the last ';'); without a usable one, its Date
 * header (when it was written); without that, the caller uses the current time. */
#ifndef MH_MSGDATE_H
#define MH_MSGDATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* "dd-Mon-yyyy hh:mm:ss +zzzz" (RFC 3501 date-time, without the quotes) and its NUL. */
#define MH_IMAP_DATE_LEN 27

/* Which header gave the date. */
enum mh_date_source { MH_DATE_NONE, MH_DATE_RECEIVED, MH_DATE_DATE };

/* Parses an RFC 5322 date-time (day name optional, seconds optional, 2- and 3-digit years
 * as in its section 4.3, obsolete zone names UT GMT EST..PDT and military letters as
 * +0000, trailing comments ignored) into an IMAP date-time. 0, or -1 when it is not one. */
int mh_date_rfc5322_to_imap(const char *s, size_t len, char out[MH_IMAP_DATE_LEN]);

/* The INTERNALDATE for a header block (CRLF or LF lines; folded lines unfolded; the
 * block ends at the first empty line or at len): from the first Received header whose
 * date parses, else the Date header. Returns where it came from; out is set unless
 * MH_DATE_NONE. */
enum mh_date_source mh_header_internaldate(const char *hdr, size_t len, char out[MH_IMAP_DATE_LEN]);

/* t as an IMAP date-time in UTC (+0000). */
void mh_imap_date_from_time(time_t t, char out[MH_IMAP_DATE_LEN]);

#endif
