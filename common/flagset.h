/* flagset.h - a message's IMAP flags as text ("\\Seen $Label1"), as sent in APPEND and
 * STORE, and compared between servers (flag names are case-insensitive, RFC 3501 2.3.2). */
#ifndef MH_FLAGSET_H
#define MH_FLAGSET_H

#include <stdbool.h>

struct imap_arg;

/* The flags of a FETCH FLAGS list, space-separated, without \Recent (session state that
 * nobody may store). Heap string. */
char *mh_flags_from_list(const struct imap_arg *list);
/* flags sorted and without repeats (case-insensitively) or \Recent: two sets are equal
 * when their canonical forms are equal ignoring case. Heap string. */
char *mh_flags_canonical(const char *flags);
/* Whether two space-separated flag lists hold the same flags. */
bool mh_flags_same(const char *a, const char *b);
/* Whether flags holds flag (case-insensitively). */
bool mh_flags_has(const char *flags, const char *flag);
/* flags with flag added (on) or taken out (!on). Heap string. */
char *mh_flags_with(const char *flags, const char *flag, bool on);

#endif
