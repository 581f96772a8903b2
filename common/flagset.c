/* flagset.c - IMAP flags as text (see flagset.h). */
#include "flagset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parser.h"

char *mh_flags_from_list(const struct imap_arg *list)
{
	size_t cap = 1, o = 0;
	char *s;

	for (size_t i = 0; i < list->count; i++)
		cap += list->items[i].len + 1;
	s = malloc(cap);
	if (s == NULL)
		abort();
	s[0] = '\0';
	for (size_t i = 0; i < list->count; i++) {
		const struct imap_arg *f = &list->items[i];
		if (f->type != IMAP_ARG_ATOM || imap_arg_is(f, "\\Recent"))
			continue;
		o += (size_t)snprintf(s + o, cap - o, "%s%s", o ? " " : "", f->str);
	}
	return s;
}

static int cmp_flag(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

char *mh_flags_canonical(const char *flags)
{
	char *copy = strdup(flags), *out, *save = NULL, **words;
	size_t n = 0, o = 0;

	out = malloc(strlen(flags) + 1);
	words = calloc(strlen(flags) / 2 + 2, sizeof(*words));
	if (copy == NULL || out == NULL || words == NULL)
		abort();
	for (char *w = strtok_r(copy, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save))
		if (strcasecmp(w, "\\Recent") != 0)
			words[n++] = w;
	qsort(words, n, sizeof(*words), cmp_flag);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcasecmp(words[i - 1], words[i]) == 0)
			continue;
		o += (size_t)sprintf(out + o, "%s%s", o ? " " : "", words[i]);
	}
	free(words);
	free(copy);
	return out;
}

bool mh_flags_same(const char *a, const char *b)
{
	char *ca = mh_flags_canonical(a), *cb = mh_flags_canonical(b);
	bool same = strcasecmp(ca, cb) == 0;

	free(ca);
	free(cb);
	return same;
}

bool mh_flags_has(const char *flags, const char *flag)
{
	size_t n = strlen(flag);

	for (const char *p = flags; *p != '\0';) {
		size_t w = strcspn(p, " ");
		if (w == n && strncasecmp(p, flag, n) == 0)
			return true;
		p += w;
		p += strspn(p, " ");
	}
	return false;
}

char *mh_flags_with(const char *flags, const char *flag, bool on)
{
	size_t cap = strlen(flags) + strlen(flag) + 2, o = 0, n = strlen(flag);
	char *out = malloc(cap);

	if (out == NULL)
		abort();
	out[0] = '\0';
	for (const char *p = flags; *p != '\0';) {
		size_t w = strcspn(p, " ");
		if (w > 0 && !(w == n && strncasecmp(p, flag, n) == 0))
			o += (size_t)snprintf(out + o, cap - o, "%s%.*s", o ? " " : "", (int)w, p);
		p += w;
		p += strspn(p, " ");
	}
	if (on)
		snprintf(out + o, cap - o, "%s%s", o ? " " : "", flag);
	return out;
}
