/* trace.h - protocol transcripts: every IMAP line sent and received, credentials redacted.
 *
 * Enabled with MAILHAUL_TRACE_FILE (or --trace FILE); lines look like
 *   "source > A3 EXAMINE INBOX" and "target < A7 OK [APPENDUID 1 5] Append completed."
 * Tests read it to prove exactly which commands reached a server. Thread-safe. */
#ifndef MH_TRACE_H
#define MH_TRACE_H

#include <stddef.h>

#include "imap_client.h"

/* Opens (appends to) path; NULL or "" turns tracing off. 0 or -1. */
int mh_trace_open(const char *path, struct mh_err *err);
void mh_trace_close(void);
/* An imap_trace_cb_t; ctx is the label ("source"/"target"), a static string. Returns
 * NULL when tracing is off so callers can pass it straight into imap_client_opts. */
imap_trace_cb_t *mh_trace_cb(void);
void mh_trace_line(void *label, enum imap_trace_dir dir, const char *line, size_t len);

#endif
