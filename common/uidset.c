/* uidset.c - IMAP sequence sets (see uidset.h). */
#include "uidset.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *imap_uid_set_format(const uint32_t *uids, size_t n)
{
	size_t cap = n * 22 + 1, o = 0; /* "4294967295:4294967295," is 22 */
	char *s = malloc(cap);

	if (s == NULL)
		abort();
	s[0] = '\0';
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j == i)
			o += (size_t)snprintf(s + o, cap - o, "%s%" PRIu32, o ? "," : "", uids[i]);
		else
			o += (size_t)snprintf(s + o, cap - o, "%s%" PRIu32 ":%" PRIu32, o ? "," : "", uids[i],
					      uids[j]);
		i = j + 1;
	}
	return s;
}

/* One nz-number of a uid-set; *p moves past it. */
static int parse_uid(const char **p, const char *end, uint32_t *v_r)
{
	uint64_t v = 0;
	const char *s = *p;

	if (s == end || *s < '1' || *s > '9')
		return -1;
	while (s < end && *s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s++ - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*v_r = (uint32_t)v;
	*p = s;
	return 0;
}

int imap_uid_set_walk(const char *s, size_t len, int (*range)(void *ctx, uint32_t lo, uint32_t hi), void *ctx)
{
	const char *p = s, *end = s + len;

	for (;;) {
		uint32_t lo, hi;

		if (parse_uid(&p, end, &lo) < 0)
			return -1;
		hi = lo;
		if (p < end && *p == ':') {
			p++;
			if (parse_uid(&p, end, &hi) < 0)
				return -1;
			if (lo > hi) {
				uint32_t t = lo;
				lo = hi;
				hi = t;
			}
		}
		if (range(ctx, lo, hi) != 0)
			return 0;
		if (p == end)
			return 0;
		if (*p++ != ',')
			return -1;
	}
}

struct collect {
	uint32_t *uids;
	size_t n, cap, max;
	int too_many;
};

static int collect_range(void *ctx, uint32_t lo, uint32_t hi)
{
	struct collect *c = ctx;

	if ((uint64_t)hi - lo + 1 > c->max - c->n) {
		c->too_many = 1;
		return 1;
	}
	if (c->n + (hi - lo + 1) > c->cap) {
		size_t want = c->n + (hi - lo + 1);
		c->cap = c->cap * 2 > want ? c->cap * 2 : want;
		c->uids = realloc(c->uids, c->cap * sizeof(*c->uids));
		if (c->uids == NULL)
			abort();
	}
	for (uint64_t u = lo; u <= hi; u++)
		c->uids[c->n++] = (uint32_t)u;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int imap_uid_set_parse(const char *s, size_t len, size_t max, uint32_t **uids_r, size_t *n_r)
{
	struct collect c = {.max = max};
	size_t o = 0;

	if ((len > 0 && imap_uid_set_walk(s, len, collect_range, &c) < 0) || c.too_many) {
		free(c.uids);
		return -1;
	}
	if (c.n > 1)
		qsort(c.uids, c.n, sizeof(*c.uids), cmp_u32);
	for (size_t i = 0; i < c.n; i++)
		if (o == 0 || c.uids[o - 1] != c.uids[i])
			c.uids[o++] = c.uids[i];
	if (c.uids == NULL && (c.uids = malloc(sizeof(*c.uids))) == NULL)
		abort();
	*uids_r = c.uids;
	*n_r = o;
	return 0;
}
