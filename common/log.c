/* log.c - structured logging to stderr. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum mh_log_format log_format = MH_LOG_TEXT;
static enum mh_log_level log_min = MH_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void mh_log_setup(enum mh_log_format format, enum mh_log_level min_level)
{
	log_format = format;
	log_min = min_level;
}

int mh_log_level_parse(const char *s, enum mh_log_level *level_r)
{
	for (unsigned i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*level_r = (enum mh_log_level)i;
			return 0;
		}
	}
	return -1;
}

int mh_log_format_parse(const char *s, enum mh_log_format *format_r)
{
	if (strcmp(s, "json") == 0)
		*format_r = MH_LOG_JSON;
	else if (strcmp(s, "text") == 0)
		*format_r = MH_LOG_TEXT;
	else
		return -1;
	return 0;
}

int mh_log_enabled(enum mh_log_level level)
{
	return level >= log_min;
}

/* Appends s to out as JSON string content (without quotes). */
static size_t json_escape(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	for (; *s != '\0' && o + 7 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return o;
}

void mh_log(enum mh_log_level level, const char *component, const char *fmt, ...)
{
	char msg[2048], esc[4096], line[4608], stamp[96];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

	if (log_format == MH_LOG_JSON) {
		json_escape(esc, sizeof(esc), msg);
		snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"%s\"}\n",
			 stamp, level_names[level], component, esc);
	} else {
		snprintf(line, sizeof(line), "%s %-5s %s: %s\n", stamp, level_names[level], component, msg);
	}
	pthread_mutex_lock(&log_lock);
	fputs(line, stderr);
	pthread_mutex_unlock(&log_lock);
}
