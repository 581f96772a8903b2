/* err.c - the error catalogue and error helpers. */
#include "err.h"

#include <stdio.h>
#include <string.h>

struct catalogue_entry {
	const char *name;
	enum mh_err_class cls;
	const char *text;
	const char *fix;
};

static const struct catalogue_entry catalogue[] = {
#define MH_ERR(code, cls, text, fix) {#code, MH_CLASS_##cls, text, fix},
#include "errors.def"
#undef MH_ERR
};

static const struct catalogue_entry *entry(enum mh_err_code code)
{
	if ((unsigned)code >= MH_E_COUNT_)
		code = MH_E_INTERNAL;
	return &catalogue[code];
}

int mh_err_setv(struct mh_err *err, enum mh_err_code code, const char *fmt, va_list ap)
{
	char raw[MH_ERR_DETAIL_MAX];

	if (err == NULL)
		return -1;
	err->code = code;
	if (fmt == NULL) {
		err->detail[0] = '\0';
		return -1;
	}
	vsnprintf(raw, sizeof(raw), fmt, ap);
	mh_err_sanitize(err->detail, sizeof(err->detail), raw, strlen(raw));
	return -1;
}

int mh_err_set(struct mh_err *err, enum mh_err_code code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mh_err_setv(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

void mh_err_clear(struct mh_err *err)
{
	if (err != NULL) {
		err->code = MH_E_OK;
		err->detail[0] = '\0';
	}
}

const char *mh_err_name(enum mh_err_code code) { return entry(code)->name; }
const char *mh_err_text(enum mh_err_code code) { return entry(code)->text; }
const char *mh_err_fix(enum mh_err_code code) { return entry(code)->fix; }
enum mh_err_class mh_err_class_of(enum mh_err_code code) { return entry(code)->cls; }

const char *mh_err_class_name(enum mh_err_class cls)
{
	static const char *const names[] = {"none",       "message", "folder",   "account",
					    "connection", "config",  "canceled", "bug"};
	if ((unsigned)cls >= sizeof(names) / sizeof(names[0]))
		return "bug";
	return names[cls];
}

enum mh_err_code mh_err_from_name(const char *name)
{
	for (unsigned i = 0; i < MH_E_COUNT_; i++)
		if (strcmp(catalogue[i].name, name) == 0)
			return (enum mh_err_code)i;
	return MH_E_INTERNAL;
}

int mh_err_is_transient(enum mh_err_code code)
{
	return mh_err_class_of(code) == MH_CLASS_CONNECTION;
}

void mh_err_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t o = 0;
	int last_space = 0;

	if (dstlen == 0)
		return;
	for (size_t i = 0; i < srclen && o + 1 < dstlen; i++) {
		unsigned char ch = (unsigned char)src[i];
		int space = ch < 0x20 || ch == 0x7f || ch == ' ';
		if (space) {
			if (!last_space && o > 0)
				dst[o++] = ' ';
			last_space = 1;
			continue;
		}
		last_space = 0;
		dst[o++] = (char)ch;
	}
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

#define REDACTED "<redacted>"
/* A shorter cut-off end is too likely to be ordinary text. */
#define REDACT_TAIL_MIN 4

/* Replaces s[at, at+n) with REDACTED; returns the position after it. */
static size_t redact_span(char *s, size_t size, size_t at, size_t n)
{
	size_t len = strlen(s), rl = sizeof(REDACTED) - 1, tail = len - at - n;

	if (at + rl >= size) {
		memcpy(s + at, REDACTED, size - 1 - at);
		s[size - 1] = '\0';
		return size - 1;
	}
	if (at + rl + tail >= size)
		tail = size - 1 - at - rl;
	memmove(s + at + rl, s + at + n, tail);
	memcpy(s + at, REDACTED, rl);
	s[at + rl + tail] = '\0';
	return at + rl;
}

size_t mh_redact(char *s, size_t size, const char *secret)
{
	size_t sl = secret != NULL ? strlen(secret) : 0, n = 0, at = 0, len;
	char *hit;

	if (sl == 0 || s == NULL || size == 0)
		return 0;
	while ((hit = strstr(s + at, secret)) != NULL) {
		at = redact_span(s, size, (size_t)(hit - s), sl);
		n++;
	}
	len = strlen(s);
	for (size_t k = sl - 1; k >= REDACT_TAIL_MIN && k > 0; k--) {
		if (k <= len && memcmp(s + len - k, secret, k) == 0) {
			redact_span(s, size, len - k, k);
			n++;
			break;
		}
	}
	return n;
}

void mh_err_redact(struct mh_err *err, const char *secret)
{
	char clean[MH_ERR_DETAIL_MAX * 2];

	if (err == NULL || secret == NULL || secret[0] == '\0')
		return;
	mh_err_sanitize(clean, sizeof(clean), secret, strlen(secret));
	/* a secret of spaces and control characters only: nothing of it is left to find */
	mh_redact(err->detail, sizeof(err->detail), clean);
	explicit_bzero(clean, sizeof(clean));
}
