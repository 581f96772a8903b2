/* fault.c - fault injection for crash tests (see fault.h). */
#include "fault.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *spec;
static bool loaded;

/* Counts calls per name in a small table (tests name a few faults at most). */
static struct {
	char name[32];
	unsigned calls;
} seen[8];

bool mh_fault(const char *name)
{
	bool hit = false;
	size_t nlen = strlen(name);

	pthread_mutex_lock(&lock);
	if (!loaded) {
		spec = getenv("MAILHAUL_FAULTS");
		loaded = true;
	}
	for (const char *p = spec; p != NULL && *p != '\0' && nlen < sizeof(seen[0].name);) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

		if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == ':') {
			unsigned long at = strtoul(p + nlen + 1, NULL, 10);
			size_t i;
			for (i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
				if (seen[i].name[0] == '\0')
					memcpy(seen[i].name, name, nlen + 1);
				if (strcmp(seen[i].name, name) == 0)
					break;
			}
			if (i < sizeof(seen) / sizeof(seen[0]))
				hit = ++seen[i].calls == at;
			break;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	pthread_mutex_unlock(&lock);
	return hit;
}

void mh_env_words(const char *var, void (*fn)(void *ctx, const char *word), void *ctx)
{
	const char *env = getenv(var);
	char word[64];

	while (env != NULL && *env != '\0') {
		size_t n = strcspn(env, ",");
		if (n > 0 && n < sizeof(word)) {
			memcpy(word, env, n);
			word[n] = '\0';
			fn(ctx, word);
		}
		env += n + (env[n] == ',');
	}
}
