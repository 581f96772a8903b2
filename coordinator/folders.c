/* folders.c - a side's folders and the routes from source to target (see folders.h). */
#include "folders.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "folder_map.h"
#include "imap_client.h"
#include "imap_utf7.h"

static char *arg_strdup(const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING && a->type != IMAP_ARG_LITERAL)
		return NULL;
	return strndup(a->str, a->len);
}

static void on_namespace(void *ctx, const struct imap_response *r)
{
	struct mh_side_folders *f = ctx;
	const struct imap_arg *personal, *first;

	/* * NAMESPACE (("INBOX." ".")) NIL NIL : the first personal namespace counts */
	if (r->name == NULL || strcmp(r->name, "NAMESPACE") != 0 || r->count < 1)
		return;
	personal = &r->args[0];
	if (personal->type != IMAP_ARG_LIST || personal->count < 1)
		return;
	first = &personal->items[0];
	if (first->type != IMAP_ARG_LIST || first->count < 2)
		return;
	free(f->ns_prefix);
	f->ns_prefix = arg_strdup(&first->items[0]);
	if (first->items[1].type == IMAP_ARG_STRING && first->items[1].len == 1)
		f->ns_sep = first->items[1].str[0];
}

static void on_list(void *ctx, const struct imap_response *r)
{
	struct mh_side_folders *f = ctx;
	struct mh_side_folder *item;
	const struct imap_arg *attrs;

	if (r->name == NULL || strcmp(r->name, "LIST") != 0 || r->count < 3 || r->args[0].type != IMAP_ARG_LIST)
		return;
	if (f->count == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 32;
		f->items = realloc(f->items, f->cap * sizeof(*f->items));
		if (f->items == NULL)
			abort();
	}
	item = &f->items[f->count];
	memset(item, 0, sizeof(*item));
	item->name = arg_strdup(&r->args[2]);
	if (item->name == NULL)
		return;
	if (r->args[1].type == IMAP_ARG_STRING && r->args[1].len == 1)
		item->sep = r->args[1].str[0];
	attrs = &r->args[0];
	for (size_t i = 0; i < attrs->count; i++) {
		const struct imap_arg *a = &attrs->items[i];
		if (imap_arg_is(a, "\\Noselect") || imap_arg_is(a, "\\NonExistent"))
			item->noselect = true;
		item->special |= mh_special_use_from_attr(a->str, a->len);
	}
	f->count++;
}

int mh_side_folders_read(struct event_base *base, struct imap_client *c, struct mh_side_folders *f,
			 struct mh_err *err)
{
	int rc;

	memset(f, 0, sizeof(*f));
	if (imap_client_has_cap(c, "NAMESPACE") &&
	    imap_client_run(base, c, on_namespace, NULL, f, err, "NAMESPACE") <= 0)
		return -1;
	if (f->ns_prefix == NULL)
		f->ns_prefix = strdup("");
	if (imap_client_has_cap(c, "SPECIAL-USE"))
		rc = imap_client_run(base, c, on_list, NULL, f, err, "LIST \"\" \"*\" RETURN (SPECIAL-USE)");
	else
		rc = imap_client_run(base, c, on_list, NULL, f, err, "LIST \"\" \"*\"");
	if (rc <= 0)
		return -1;
	if (f->ns_sep == 0 && f->count > 0)
		f->ns_sep = f->items[0].sep;
	return 0;
}

void mh_side_folders_cleanup(struct mh_side_folders *f)
{
	for (size_t i = 0; i < f->count; i++)
		free(f->items[i].name);
	free(f->items);
	free(f->ns_prefix);
	memset(f, 0, sizeof(*f));
}

const struct mh_side_folder *mh_side_folders_find(const struct mh_side_folders *f, const char *name)
{
	for (size_t i = 0; i < f->count; i++)
		if (strcmp(f->items[i].name, name) == 0 ||
		    (strcasecmp(name, "INBOX") == 0 && strcasecmp(f->items[i].name, "INBOX") == 0))
			return &f->items[i];
	return NULL;
}

char *mh_folder_display_name(const char *raw)
{
	char *utf8 = NULL;

	if (imap_utf7_to_utf8(raw, strlen(raw), &utf8, NULL) < 0)
		return strdup(raw);
	return utf8;
}

/* INBOX first, then by name. */
static int cmp_route(const void *a, const void *b)
{
	const struct mh_folder *x = a, *y = b;
	int xi = strcasecmp(x->name, "INBOX") == 0, yi = strcasecmp(y->name, "INBOX") == 0;

	if (xi != yi)
		return yi - xi;
	return strcmp(x->name, y->name);
}

void mh_folder_routes(const struct mh_side_folders *src, const struct mh_side_folders *dst,
		      struct mh_folder_route **routes_r, size_t *n_r)
{
	struct mh_folder *s = calloc(src->count + 1, sizeof(*s));
	struct mh_folder *d = calloc(dst->count + 1, sizeof(*d));
	struct mh_namespace src_ns = {src->ns_prefix != NULL ? src->ns_prefix : "", src->ns_sep};
	struct mh_namespace dst_ns = {dst->ns_prefix != NULL ? dst->ns_prefix : "", dst->ns_sep};
	struct mh_folder_route *routes;
	size_t n = 0;

	if (s == NULL || d == NULL)
		abort();
	for (size_t i = 0; i < src->count; i++) {
		const struct mh_side_folder *f = &src->items[i];
		unsigned special = f->special;
		if (f->noselect)
			continue;
		if (special == 0) {
			/* servers without SPECIAL-USE: recognise "Sent Items" and friends by name */
			char *utf8 = mh_folder_display_name(f->name);
			special = mh_special_use_guess(utf8);
			free(utf8);
		}
		s[n++] = (struct mh_folder){f->name, f->sep, special};
	}
	for (size_t i = 0; i < dst->count; i++)
		d[i] = (struct mh_folder){dst->items[i].name, dst->items[i].sep, dst->items[i].special};
	qsort(s, n, sizeof(*s), cmp_route);
	mh_special_use_dedupe(s, n);

	routes = calloc(n + 1, sizeof(*routes));
	if (routes == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		struct mh_folder_route *r = &routes[i];
		r->src = mh_side_folders_find(src, s[i].name);
		r->special = s[i].special;
		mh_err_clear(&r->error);
		if (mh_folder_map(&s[i], &src_ns, d, dst->count, &dst_ns, &r->dst, &r->renamed, &r->error) == 0)
			r->dst_exists = mh_side_folders_find(dst, r->dst) != NULL;
	}
	free(s);
	free(d);
	*routes_r = routes;
	*n_r = n;
}

void mh_folder_routes_free(struct mh_folder_route *routes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(routes[i].dst);
	free(routes);
}
