/* uidsearch.c - the UIDs of the selected folder (see uidsearch.h). */
#include "uidsearch.h"

#include <stdlib.h>
#include <string.h>

#include "imap_client.h"
#include "imap_parser.h"
#include "uidset.h"

/* UIDs per plain SEARCH: "4294967295 " is 11 bytes, so a reply stays far below the
 * parser's line limit */
#define SEARCH_SPAN 50000u
/* The most UIDs a reply may give in all (a hostile "1:4294967295") */
#define SEARCH_MAX (64u * 1024 * 1024)

struct search {
	uint32_t *v;
	size_t n, cap;
	bool bad;
};

static void push(struct search *s, uint32_t uid)
{
	if (s->n == SEARCH_MAX) {
		s->bad = true;
		return;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (s->v == NULL)
			abort();
	}
	s->v[s->n++] = uid;
}

static int push_range(void *ctx, uint32_t lo, uint32_t hi)
{
	struct search *s = ctx;

	if ((uint64_t)hi - lo + 1 > SEARCH_MAX - s->n) {
		s->bad = true;
		return 1;
	}
	for (uint64_t u = lo; u <= hi; u++)
		push(s, (uint32_t)u);
	return 0;
}

/* "* SEARCH 4 7 9", or "* ESEARCH (TAG "A5") UID ALL 4,7:9" */
static void on_search(void *ctx, const struct imap_response *r)
{
	struct search *s = ctx;

	if (r->name == NULL)
		return;
	if (strcmp(r->name, "SEARCH") == 0) {
		for (size_t i = 0; i < r->count; i++) {
			uint64_t uid;
			if (imap_arg_number(&r->args[i], UINT32_MAX, &uid) == 0 && uid > 0)
				push(s, (uint32_t)uid);
		}
	} else if (strcmp(r->name, "ESEARCH") == 0) {
		for (size_t i = 0; i + 1 < r->count; i++)
			if (imap_arg_is(&r->args[i], "ALL") &&
			    imap_uid_set_walk(r->args[i + 1].str, r->args[i + 1].len, push_range, s) < 0)
				s->bad = true;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int uid_search(struct event_base *base, struct imap_client *c, uint32_t below, bool undeleted, uint32_t **uids_r,
	       size_t *n_r, struct mh_err *err)
{
	struct search s = {0};
	const char *what = undeleted ? " UNDELETED" : "";
	size_t o = 0;
	int rc = 1;

	*uids_r = NULL;
	*n_r = 0;
	if (below > 1 && imap_client_has_cap(c, "ESEARCH")) {
		rc = imap_client_run(base, c, on_search, NULL, &s, err, "UID SEARCH RETURN (ALL) UID 1:%u%a",
				     (unsigned)(below - 1), what);
	} else {
		for (uint64_t lo = 1; lo < below && rc == 1; lo += SEARCH_SPAN) {
			uint64_t hi = lo + SEARCH_SPAN - 1 < below - 1 ? lo + SEARCH_SPAN - 1 : below - 1;
			rc = imap_client_run(base, c, on_search, NULL, &s, err, "UID SEARCH UID %u:%u%a", (unsigned)lo,
					     (unsigned)hi, what);
		}
	}
	if (rc == 1 && s.bad) {
		mh_err_set(err, MH_E_PROTOCOL, "a SEARCH reply with a malformed or huge UID set");
		rc = 0;
	}
	if (rc != 1) {
		free(s.v);
		return rc;
	}
	if (s.n > 1)
		qsort(s.v, s.n, sizeof(*s.v), cmp_u32);
	for (size_t i = 0; i < s.n; i++)
		if (s.v[i] < below && (o == 0 || s.v[o - 1] != s.v[i]))
			s.v[o++] = s.v[i];
	if (s.v == NULL && (s.v = malloc(sizeof(*s.v))) == NULL)
		abort();
	*uids_r = s.v;
	*n_r = o;
	return 1;
}
