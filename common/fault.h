/* fault.h - fault injection for crash tests.
 *
 * MAILHAUL_FAULTS="name:N[,name:N...]" makes mh_fault("name") true on its Nth call in the
 * process, and the caller then fails the way a crash would (tests kill a worker at the
 * worst moment this way, e.g. "append-ok": just after the target stored an APPEND, before
 * anything was reported). Unset, it costs one getenv per process. */
#ifndef MH_FAULT_H
#define MH_FAULT_H

#include <stdbool.h>

bool mh_fault(const char *name);

/* For tests and for working around broken servers: calls fn(ctx, word) for each word of
 * the comma-separated environment variable var (e.g. MAILHAUL_IMAP_DISABLE_CAPS=
 * "CONDSTORE,UIDPLUS": capabilities the clients pretend a server never offered). */
void mh_env_words(const char *var, void (*fn)(void *ctx, const char *word), void *ctx);

#endif
