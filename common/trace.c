/* trace.c - protocol transcripts (see trace.h). */
#include "trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static FILE *trace_file;
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;

int mh_trace_open(const char *path, struct mh_err *err)
{
	FILE *f;

	if (path == NULL || path[0] == '\0')
		return 0;
	f = fopen(path, "a");
	if (f == NULL)
		return mh_err_set(err, MH_E_CONFIG_FILE, "cannot open trace file %s: %s", path, strerror(errno));
	setvbuf(f, NULL, _IOLBF, 0);
	pthread_mutex_lock(&trace_lock);
	if (trace_file != NULL)
		fclose(trace_file);
	trace_file = f;
	pthread_mutex_unlock(&trace_lock);
	return 0;
}

void mh_trace_close(void)
{
	pthread_mutex_lock(&trace_lock);
	if (trace_file != NULL)
		fclose(trace_file);
	trace_file = NULL;
	pthread_mutex_unlock(&trace_lock);
}

imap_trace_cb_t *mh_trace_cb(void)
{
	return trace_file != NULL ? mh_trace_line : NULL;
}

void mh_trace_line(void *label, enum imap_trace_dir dir, const char *line, size_t len)
{
	pthread_mutex_lock(&trace_lock);
	if (trace_file != NULL)
		fprintf(trace_file, "%s %c %.*s\n", (const char *)label, dir == IMAP_TRACE_SENT ? '>' : '<', (int)len,
			line);
	pthread_mutex_unlock(&trace_lock);
}
