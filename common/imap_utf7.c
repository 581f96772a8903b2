/* imap_utf7.c - IMAP modified UTF-7 (RFC 3501 5.1.3), strict in both directions. */
#include "imap_utf7.h"

#include <stdint.h>
#include <stdlib.h>

/* Modified base64 (RFC 3501 5.1.3): ',' takes the place of '/'. */
static const char b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

struct out {
	char *buf; /* NULL when only validating */
	size_t len;
};

static void out_add(struct out *o, char ch)
{
	if (o->buf != NULL)
		o->buf[o->len] = ch;
	o->len++;
}

static int b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == ',')
		return 63;
	return -1;
}

static bool is_direct(uint32_t cp)
{
	/* Printable US-ASCII represents itself; '&' is handled by the callers. */
	return cp >= 0x20 && cp <= 0x7e;
}

static void utf8_put(struct out *o, uint32_t cp)
{
	if (cp < 0x80) {
		out_add(o, (char)cp);
	} else if (cp < 0x800) {
		out_add(o, (char)(0xc0 | (cp >> 6)));
		out_add(o, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		out_add(o, (char)(0xe0 | (cp >> 12)));
		out_add(o, (char)(0x80 | ((cp >> 6) & 0x3f)));
		out_add(o, (char)(0x80 | (cp & 0x3f)));
	} else {
		out_add(o, (char)(0xf0 | (cp >> 18)));
		out_add(o, (char)(0x80 | ((cp >> 12) & 0x3f)));
		out_add(o, (char)(0x80 | ((cp >> 6) & 0x3f)));
		out_add(o, (char)(0x80 | (cp & 0x3f)));
	}
}

/* Decodes one UTF-16 unit of a base64 run; *high carries a pending high surrogate. */
static int unit_decode(struct out *o, uint32_t unit, uint32_t *high, size_t pos,
		       struct mh_err *err)
{
	uint32_t cp;

	if (*high != 0) {
		if (unit < 0xdc00 || unit > 0xdfff)
			return mh_err_set(err, MH_E_FOLDER_NAME,
					  "modified UTF-7: high surrogate without low surrogate "
					  "near offset %zu", pos);
		cp = 0x10000 + ((*high - 0xd800) << 10) + (unit - 0xdc00);
		*high = 0;
		utf8_put(o, cp);
		return 0;
	}
	if (unit >= 0xd800 && unit <= 0xdbff) {
		*high = unit;
		return 0;
	}
	if (unit >= 0xdc00 && unit <= 0xdfff)
		return mh_err_set(err, MH_E_FOLDER_NAME,
				  "modified UTF-7: lone low surrogate near offset %zu", pos);
	if (unit == 0)
		return mh_err_set(err, MH_E_FOLDER_NAME,
				  "modified UTF-7: encoded NUL near offset %zu", pos);
	/* Printable ASCII must be sent as itself, so an encoded one is not canonical. */
	if (is_direct(unit))
		return mh_err_set(err, MH_E_FOLDER_NAME,
				  "modified UTF-7: printable ASCII encoded in base64 near offset %zu",
				  pos);
	utf8_put(o, unit);
	return 0;
}

/* Decodes the base64 run that starts after the '&' at in[start]; *pos_r is the index
 * just after its closing '-'. */
static int run_decode(const char *in, size_t len, size_t start, struct out *o,
		      size_t *pos_r, struct mh_err *err)
{
	uint32_t bits = 0, high = 0;
	unsigned nbits = 0;
	size_t units = 0, i = start + 1;

	for (;; i++) {
		int v;

		if (i >= len)
			return mh_err_set(err, MH_E_FOLDER_NAME,
					  "modified UTF-7: '&' at offset %zu is not terminated by '-'",
					  start);
		if (in[i] == '-')
			break;
		v = b64_value((unsigned char)in[i]);
		if (v < 0)
			return mh_err_set(err, MH_E_FOLDER_NAME,
					  "modified UTF-7: byte 0x%02x at offset %zu is not modified "
					  "base64", (unsigned char)in[i], i);
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits >= 16) {
			nbits -= 16;
			if (unit_decode(o, (bits >> nbits) & 0xffff, &high, i, err) < 0)
				return -1;
			bits &= (1u << nbits) - 1;
			units++;
		}
	}
	if (high != 0)
		return mh_err_set(err, MH_E_FOLDER_NAME,
				  "modified UTF-7: high surrogate at the end of the run at offset %zu",
				  start);
	if (units == 0)
		return mh_err_set(err, MH_E_FOLDER_NAME,
				  "modified UTF-7: run at offset %zu encodes no character", start);
	/* The encoder pads only to the next 6-bit boundary, with zero bits. */
	if (nbits >= 6 || bits != 0)
		return mh_err_set(err, MH_E_FOLDER_NAME,
				  "modified UTF-7: run at offset %zu has stray trailing bits", start);
	*pos_r = i + 1;
	return 0;
}

static int utf7_decode(const char *in, size_t len, struct out *o, struct mh_err *err)
{
	bool after_run = false;
	size_t i = 0;

	while (i < len) {
		unsigned char ch = (unsigned char)in[i];

		if (ch == '&') {
			if (i + 1 < len && in[i + 1] == '-') {
				out_add(o, '&');
				i += 2;
				after_run = false;
				continue;
			}
			/* An encoder merges adjacent runs, so "&..-&..-" is not canonical. */
			if (after_run)
				return mh_err_set(err, MH_E_FOLDER_NAME,
						  "modified UTF-7: base64 run at offset %zu directly "
						  "follows another", i);
			if (run_decode(in, len, i, o, &i, err) < 0)
				return -1;
			after_run = true;
			continue;
		}
		if (!is_direct(ch))
			return mh_err_set(err, MH_E_FOLDER_NAME,
					  "modified UTF-7: byte 0x%02x at offset %zu must be encoded",
					  ch, i);
		out_add(o, (char)ch);
		i++;
		after_run = false;
	}
	return 0;
}

/* Strict UTF-8 (RFC 3629): returns the sequence length, or 0 if it is malformed. */
static size_t utf8_get(const unsigned char *s, size_t len, uint32_t *cp_r)
{
	unsigned char b0 = s[0], lo = 0x80, hi = 0xbf;
	size_t n;
	uint32_t cp;

	if (b0 < 0x80) {
		*cp_r = b0;
		return 1;
	}
	if (b0 >= 0xc2 && b0 <= 0xdf) {
		n = 2;
		cp = b0 & 0x1f;
	} else if (b0 >= 0xe0 && b0 <= 0xef) {
		n = 3;
		cp = b0 & 0x0f;
		if (b0 == 0xe0)
			lo = 0xa0; /* overlong */
		else if (b0 == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (b0 >= 0xf0 && b0 <= 0xf4) {
		n = 4;
		cp = b0 & 0x07;
		if (b0 == 0xf0)
			lo = 0x90; /* overlong */
		else if (b0 == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	*cp_r = cp;
	return n;
}

struct run {
	uint32_t bits;
	unsigned nbits;
	bool open;
};

static void run_put_unit(struct out *o, struct run *r, uint32_t unit)
{
	if (!r->open) {
		out_add(o, '&');
		r->open = true;
		r->bits = 0;
		r->nbits = 0;
	}
	r->bits = (r->bits << 16) | unit;
	r->nbits += 16;
	while (r->nbits >= 6) {
		r->nbits -= 6;
		out_add(o, b64_chars[(r->bits >> r->nbits) & 0x3f]);
	}
	r->bits &= (1u << r->nbits) - 1;
}

static void run_close(struct out *o, struct run *r)
{
	if (!r->open)
		return;
	if (r->nbits > 0)
		out_add(o, b64_chars[(r->bits << (6 - r->nbits)) & 0x3f]);
	out_add(o, '-');
	r->open = false;
}

static int utf8_encode(const char *in, size_t len, struct out *o, struct mh_err *err)
{
	const unsigned char *s = (const unsigned char *)in;
	struct run r = {0, 0, false};
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_get(s + i, len - i, &cp);

		if (n == 0)
			return mh_err_set(err, MH_E_FOLDER_NAME,
					  "folder name is not valid UTF-8 at offset %zu", i);
		if (cp == 0)
			return mh_err_set(err, MH_E_FOLDER_NAME,
					  "folder name contains a NUL byte at offset %zu", i);
		i += n;
		if (is_direct(cp)) {
			run_close(o, &r);
			out_add(o, (char)cp);
			if (cp == '&')
				out_add(o, '-');
		} else if (cp >= 0x10000) {
			run_put_unit(o, &r, 0xd800 + ((cp - 0x10000) >> 10));
			run_put_unit(o, &r, 0xdc00 + ((cp - 0x10000) & 0x3ff));
		} else {
			run_put_unit(o, &r, cp);
		}
	}
	run_close(o, &r);
	return 0;
}

static char *alloc_or_abort(size_t n)
{
	char *p = malloc(n);

	if (p == NULL)
		abort();
	return p;
}

/* imap_utf7_to_utf8: see imap_utf7.h. */
int imap_utf7_to_utf8(const char *in, size_t len, char **out_r, struct mh_err *err)
{
	/* A base64 run can grow (32 chars -> 12 units -> 36 bytes); twice is enough. */
	struct out o = {NULL, 0};

	*out_r = NULL;
	if (len > (SIZE_MAX - 1) / 2)
		return mh_err_set(err, MH_E_FOLDER_NAME, "folder name is too long");
	o.buf = alloc_or_abort(len * 2 + 1);
	if (utf7_decode(in, len, &o, err) < 0) {
		free(o.buf);
		return -1;
	}
	o.buf[o.len] = '\0';
	*out_r = o.buf;
	return 0;
}

/* imap_utf8_to_utf7: see imap_utf7.h. */
int imap_utf8_to_utf7(const char *in, size_t len, char **out_r, struct mh_err *err)
{
	/* Worst case is one control character per run: 1 byte -> "&AAE-". */
	struct out o = {NULL, 0};

	*out_r = NULL;
	if (len > (SIZE_MAX - 1) / 5)
		return mh_err_set(err, MH_E_FOLDER_NAME, "folder name is too long");
	o.buf = alloc_or_abort(len * 5 + 1);
	if (utf8_encode(in, len, &o, err) < 0) {
		free(o.buf);
		return -1;
	}
	o.buf[o.len] = '\0';
	*out_r = o.buf;
	return 0;
}

/* imap_utf7_is_valid: see imap_utf7.h. */
bool imap_utf7_is_valid(const char *in, size_t len)
{
	struct out o = {NULL, 0};

	return utf7_decode(in, len, &o, NULL) == 0;
}
