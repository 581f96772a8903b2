/* endpoint.c - parsing and printing mailbox URLs, and reading password files. */
#include "endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* Longest password file line we accept; anything longer is not a password. */
#define PASSWORD_FILE_MAX 4096

struct scheme {
	const char *name;
	enum mh_proto proto;
	enum mh_security security;
	uint16_t port;
};

static const struct scheme schemes[] = {
	{"imap", MH_PROTO_IMAP, MH_SEC_STARTTLS, 143},
	{"imaps", MH_PROTO_IMAP, MH_SEC_TLS, 993},
	{"pop3", MH_PROTO_POP3, MH_SEC_STARTTLS, 110},
	{"pop3s", MH_PROTO_POP3, MH_SEC_TLS, 995},
};

static char *strdup_or_abort(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		abort();
	return p;
}

static int hex_value(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Bytes allowed unencoded in the user and password (RFC 3986 3.2.1 unreserved and
 * sub-delims; bytes >= 0x80 for UTF-8 user names, as in IRIs). */
static bool userinfo_char_ok(unsigned char ch)
{
	if (ch >= 0x80)
		return true;
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return strchr("-._~!$&'()*+,;=", ch) != NULL && ch != '\0';
}

/* Percent-decodes s[0..len) into dst (size dstlen); colon_ok lets ':' through raw (in a
 * password, RFC 3986 3.2.1). Returns the decoded length, or a PCT_* error. Errors never
 * quote s, since s may be a password. */
enum { PCT_BAD_ESCAPE = -1, PCT_NUL = -2, PCT_RAW = -3, PCT_LONG = -4 };

static const char *pct_problem(int rc)
{
	switch (rc) {
	case PCT_NUL:
		return "contains %00";
	case PCT_RAW:
		return "contains a character that must be percent-encoded";
	case PCT_LONG:
		return "is too long";
	default:
		return "has a bad percent escape (expected %XX with hex digits)";
	}
}

static int pct_decode(const char *s, size_t len, bool colon_ok, char *dst, size_t dstlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '%') {
			int hi, lo;

			if (len - i < 3)
				return PCT_BAD_ESCAPE;
			hi = hex_value((unsigned char)s[i + 1]);
			lo = hex_value((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return PCT_BAD_ESCAPE;
			if (hi == 0 && lo == 0)
				return PCT_NUL;
			ch = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (!userinfo_char_ok(ch) && !(colon_ok && ch == ':')) {
			return PCT_RAW;
		}
		if (o + 1 >= dstlen)
			return PCT_LONG;
		dst[o++] = (char)ch;
	}
	dst[o] = '\0';
	return (int)o;
}

/* Digits only, 1..65535; no sign, space or leading '+'. */
static int port_parse(const char *s, size_t len, uint16_t *port_r)
{
	uint32_t v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9)
			return -1;
		v = v * 10 + d;
	}
	if (v < 1 || v > 65535)
		return -1;
	*port_r = (uint16_t)v;
	return 0;
}

/* A DNS name or IPv4 address: letters, digits, '-', '.', '_'. */
static bool host_name_ok(const char *s, size_t len)
{
	if (len == 0 || len >= MH_HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_'))
			return false;
	}
	return true;
}

static int url_fail(struct mh_endpoint *ep, struct mh_err *err, const char *what)
{
	mh_endpoint_cleanup(ep);
	return mh_err_set(err, MH_E_BAD_URL, "%s", what);
}

/* Parses "host[:port][/]" (already cut off the userinfo) into ep. */
static int hostport_parse(const char *s, struct mh_endpoint *ep, struct mh_err *err)
{
	size_t len = strlen(s);
	const char *host, *rest;
	size_t host_len;

	/* Only an empty path is allowed: "imap://u@h/" is the same server as "imap://u@h". */
	if (len > 0 && s[len - 1] == '/')
		len--;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		char tmp[INET6_ADDRSTRLEN + 1];
		unsigned char addr[16];

		if (close == NULL)
			return url_fail(ep, err, "IPv6 address without closing ']'");
		host = s + 1;
		host_len = (size_t)(close - host);
		if (host_len == 0 || host_len >= sizeof(tmp))
			return url_fail(ep, err, "invalid IPv6 address");
		memcpy(tmp, host, host_len);
		tmp[host_len] = '\0';
		if (inet_pton(AF_INET6, tmp, addr) != 1)
			return url_fail(ep, err, "invalid IPv6 address");
		rest = close + 1;
	} else {
		const char *end = s;

		while (end < s + len && *end != ':' && *end != '/')
			end++;
		host = s;
		host_len = (size_t)(end - s);
		if (host_len == 0)
			return url_fail(ep, err, "no host name");
		if (!host_name_ok(host, host_len)) {
			char shown[MH_HOST_MAX];

			mh_err_sanitize(shown, sizeof(shown), host, host_len);
			mh_endpoint_cleanup(ep);
			return mh_err_set(err, MH_E_BAD_URL, "invalid host name '%s'", shown);
		}
		rest = end;
	}
	memcpy(ep->host, host, host_len);
	ep->host[host_len] = '\0';

	if (rest == s + len)
		return 0;
	if (*rest != ':')
		return url_fail(ep, err, "unexpected text after the host (no path is allowed)");
	rest++;
	if (port_parse(rest, (size_t)(s + len - rest), &ep->port) < 0)
		return url_fail(ep, err, "the port must be a number from 1 to 65535");
	return 0;
}

/* mh_endpoint_parse: see endpoint.h. Accepts scheme names in any case (RFC 3986 3.1). */
int mh_endpoint_parse(const char *url, struct mh_endpoint *ep, struct mh_err *err)
{
	const struct scheme *sc = NULL;
	const char *p, *at, *colon, *auth_end;
	char pw[PASSWORD_FILE_MAX];
	int n;

	memset(ep, 0, sizeof(*ep));
	ep->password = NULL;
	if (url == NULL)
		return mh_err_set(err, MH_E_BAD_URL, "no URL given");

	p = strstr(url, "://");
	if (p != NULL) {
		for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
			size_t sl = strlen(schemes[i].name);

			if ((size_t)(p - url) == sl && strncasecmp(url, schemes[i].name, sl) == 0)
				sc = &schemes[i];
		}
	}
	if (sc == NULL)
		return mh_err_set(err, MH_E_BAD_URL,
				  "the URL must start with imap://, imaps://, pop3:// or pop3s://");
	ep->proto = sc->proto;
	ep->security = sc->security;
	ep->port = sc->port;
	p += 3;

	/* The host part holds no '@', so the last '@' ends the userinfo. */
	at = strrchr(p, '@');
	if (at == NULL)
		return mh_err_set(err, MH_E_BAD_URL, "no user name (expected user@host)");
	colon = memchr(p, ':', (size_t)(at - p));
	auth_end = colon != NULL ? colon : at;
	if (auth_end == p)
		return mh_err_set(err, MH_E_BAD_URL, "the user name is empty");
	n = pct_decode(p, (size_t)(auth_end - p), false, ep->user, sizeof(ep->user));
	if (n < 0)
		return mh_err_set(err, MH_E_BAD_URL, "the user name %s", pct_problem(n));
	if (colon != NULL) {
		if (colon + 1 == at)
			return url_fail(ep, err, "the password in the URL is empty");
		n = pct_decode(colon + 1, (size_t)(at - colon - 1), true, pw, sizeof(pw));
		if (n < 0) {
			OPENSSL_cleanse(pw, sizeof(pw));
			return mh_err_set(err, MH_E_BAD_URL, "the password in the URL %s",
					  pct_problem(n));
		}
		mh_endpoint_set_password(ep, pw);
		OPENSSL_cleanse(pw, sizeof(pw));
		ep->password_in_url = true;
	}
	return hostport_parse(at + 1, ep, err);
}

/* mh_endpoint_set_password: see endpoint.h. */
void mh_endpoint_set_password(struct mh_endpoint *ep, const char *password)
{
	char *copy = password != NULL ? strdup_or_abort(password) : NULL;

	if (ep->password != NULL) {
		OPENSSL_cleanse(ep->password, strlen(ep->password));
		free(ep->password);
	}
	ep->password = copy;
	ep->password_in_url = false;
}

/* mh_endpoint_cleanup: see endpoint.h. Safe to call twice. */
void mh_endpoint_cleanup(struct mh_endpoint *ep)
{
	mh_endpoint_set_password(ep, NULL);
}

/* Appends to buf without overflowing; *o may pass len, and the caller terminates. */
static void fmt_add(char *buf, size_t len, size_t *o, char ch)
{
	if (*o + 1 < len)
		buf[*o] = ch;
	(*o)++;
}

/* mh_endpoint_format: see endpoint.h. The user is percent-encoded wherever the parser
 * would not take the byte raw (so '@', ':', '/' and '%' always), so the output parses
 * back to the same endpoint. The result is cut to fit len (always NUL-terminated). */
void mh_endpoint_format(const struct mh_endpoint *ep, char *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *scheme;
	char port[8];
	size_t o = 0;
	bool v6 = strchr(ep->host, ':') != NULL;

	if (len == 0)
		return;
	if (ep->proto == MH_PROTO_POP3)
		scheme = ep->security == MH_SEC_TLS ? "pop3s://" : "pop3://";
	else
		scheme = ep->security == MH_SEC_TLS ? "imaps://" : "imap://";
	for (const char *s = scheme; *s != '\0'; s++)
		fmt_add(buf, len, &o, *s);
	for (const unsigned char *u = (const unsigned char *)ep->user; *u != '\0'; u++) {
		if (userinfo_char_ok(*u)) {
			fmt_add(buf, len, &o, (char)*u);
		} else {
			fmt_add(buf, len, &o, '%');
			fmt_add(buf, len, &o, hex[*u >> 4]);
			fmt_add(buf, len, &o, hex[*u & 0xf]);
		}
	}
	fmt_add(buf, len, &o, '@');
	if (v6)
		fmt_add(buf, len, &o, '[');
	for (const char *s = ep->host; *s != '\0'; s++)
		fmt_add(buf, len, &o, *s);
	if (v6)
		fmt_add(buf, len, &o, ']');
	snprintf(port, sizeof(port), ":%u", (unsigned)ep->port);
	for (const char *s = port; *s != '\0'; s++)
		fmt_add(buf, len, &o, *s);
	buf[o < len ? o : len - 1] = '\0';
}

/* mh_proto_name: see endpoint.h. */
const char *mh_proto_name(enum mh_proto proto)
{
	return proto == MH_PROTO_POP3 ? "pop3" : "imap";
}

/* mh_security_name: see endpoint.h. */
const char *mh_security_name(enum mh_security sec)
{
	switch (sec) {
	case MH_SEC_PLAIN:
		return "plain";
	case MH_SEC_STARTTLS:
		return "starttls";
	case MH_SEC_TLS:
		return "tls";
	}
	return "unknown";
}

/* mh_password_read_file: see endpoint.h. Reads with read(2) into a stack buffer that is
 * wiped afterwards, so no copy of the password is left in stdio or realloc leftovers.
 * Rejects an empty first line, a NUL byte, and a first line of PASSWORD_FILE_MAX bytes
 * or more. */
int mh_password_read_file(const char *path, char **password_r, struct mh_err *err)
{
	char buf[PASSWORD_FILE_MAX + 1];
	size_t have = 0;
	char *nl = NULL;
	int fd, rc = -1;

	*password_r = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mh_err_set(err, MH_E_CONFIG_FILE, "cannot open password file %s: %s", path,
				  strerror(errno));
	while (have < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mh_err_set(err, MH_E_CONFIG_FILE, "cannot read password file %s: %s", path,
				   strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		nl = memchr(buf + have, '\n', (size_t)n);
		have += (size_t)n;
		if (nl != NULL)
			break;
	}
	if (nl == NULL && have == sizeof(buf) - 1) {
		mh_err_set(err, MH_E_CONFIG_FILE, "password file %s: the first line is too long",
			   path);
		goto out;
	}
	if (nl == NULL)
		nl = buf + have;
	if (nl > buf && nl[-1] == '\r')
		nl--;
	*nl = '\0';
	if (memchr(buf, '\0', (size_t)(nl - buf)) != NULL) {
		mh_err_set(err, MH_E_CONFIG_FILE, "password file %s: contains a NUL byte", path);
		goto out;
	}
	if (nl == buf) {
		mh_err_set(err, MH_E_CONFIG_FILE, "password file %s: the first line is empty",
			   path);
		goto out;
	}
	*password_r = strdup_or_abort(buf);
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}
