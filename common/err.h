/* err.h - errors with a class (blast radius) and a catalogue code.
 *
 * Functions that can fail take a struct mh_err * and return 0 or -1; on -1 the err says
 * what failed. The catalogue lives in errors.def. */
#ifndef MH_ERR_H
#define MH_ERR_H

#include <stdarg.h>
#include <stddef.h>

enum mh_err_class {
	MH_CLASS_NONE,
	MH_CLASS_MESSAGE,    /* one message failed; the rest of the batch goes on */
	MH_CLASS_FOLDER,     /* one folder cannot be copied */
	MH_CLASS_ACCOUNT,    /* nothing in this account can be copied until fixed */
	MH_CLASS_CONNECTION, /* transient: reconnect and retry */
	MH_CLASS_CONFIG,     /* the operator must change something before retrying */
	MH_CLASS_CANCELED,
	MH_CLASS_BUG,
};

enum mh_err_code {
#define MH_ERR(code, cls, text, fix) MH_E_##code,
#include "errors.def"
#undef MH_ERR
	MH_E_COUNT_
};

#define MH_ERR_DETAIL_MAX 256

struct mh_err {
	enum mh_err_code code;
	char detail[MH_ERR_DETAIL_MAX]; /* sanitized: printable, bounded, no credentials */
};

/* Sets err (when not NULL) and returns -1, so callers can "return mh_err_set(...)". */
int mh_err_set(struct mh_err *err, enum mh_err_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int mh_err_setv(struct mh_err *err, enum mh_err_code code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
void mh_err_clear(struct mh_err *err);

const char *mh_err_name(enum mh_err_code code);   /* "AUTH_FAILED" */
const char *mh_err_text(enum mh_err_code code);   /* plain-language explanation */
const char *mh_err_fix(enum mh_err_code code);    /* what the operator can do */
enum mh_err_class mh_err_class_of(enum mh_err_code code);
const char *mh_err_class_name(enum mh_err_class cls); /* "account" */
/* Looks a code up by name; returns MH_E_INTERNAL for an unknown name. */
enum mh_err_code mh_err_from_name(const char *name);
/* True for errors worth retrying automatically: exactly the connection class. */
int mh_err_is_transient(enum mh_err_code code);

/* Copies untrusted server text into dst (size dstlen, always NUL-terminated): control
 * characters become spaces, runs of spaces fold, and it is cut at dstlen-1 bytes. */
void mh_err_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen);

/* Replaces every occurrence of secret in the NUL-terminated string s (a buffer of size
 * bytes) with "<redacted>", in place; so is an end of s that is the start of secret (4 bytes
 * or more: the rest was cut off). What no longer fits is cut. An empty or NULL secret
 * changes nothing. Returns how many replacements were made. */
size_t mh_redact(char *s, size_t size, const char *secret);
/* The same for err->detail, which was sanitized: secret is sanitized alike before it is
 * looked for. For credentials a server may echo in its text. */
void mh_err_redact(struct mh_err *err, const char *secret);

#endif
