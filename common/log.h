/* log.h - one JSON object per line on stderr (or plain text for humans).
 *
 * Thread-safe: each line is written with a single fputs under a lock. Callers must never
 * pass passwords; the IMAP client redacts LOGIN/AUTHENTICATE before tracing. */
#ifndef MH_LOG_H
#define MH_LOG_H

enum mh_log_level { MH_LOG_DEBUG, MH_LOG_INFO, MH_LOG_WARN, MH_LOG_ERROR };
enum mh_log_format { MH_LOG_JSON, MH_LOG_TEXT };

void mh_log_setup(enum mh_log_format format, enum mh_log_level min_level);
/* Parses "debug|info|warn|error"; returns -1 for anything else. */
int mh_log_level_parse(const char *s, enum mh_log_level *level_r);
/* Parses "json|text"; returns -1 for anything else. */
int mh_log_format_parse(const char *s, enum mh_log_format *format_r);
int mh_log_enabled(enum mh_log_level level);

/* component: "worker", "coordinator", "imap"... msg is printf-formatted. */
void mh_log(enum mh_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define mh_debug(comp, ...) do { if (mh_log_enabled(MH_LOG_DEBUG)) mh_log(MH_LOG_DEBUG, comp, __VA_ARGS__); } while (0)
#define mh_info(comp, ...) mh_log(MH_LOG_INFO, comp, __VA_ARGS__)
#define mh_warn(comp, ...) mh_log(MH_LOG_WARN, comp, __VA_ARGS__)
#define mh_error(comp, ...) mh_log(MH_LOG_ERROR, comp, __VA_ARGS__)

#endif
