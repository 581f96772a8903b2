/* endpoint.h - where a mailbox lives: protocol, security, host, port, user, password.
 *
 * URLs: imap://user@host[:port] (STARTTLS), imaps://user@host[:port] (implicit TLS),
 * pop3://... (STLS), pop3s://... (implicit TLS). The user part is percent-decoded, so
 * "alice%40example.com" is "alice@example.com". IPv6 literals go in brackets. A password
 * in the URL (user:pass@) is accepted but flagged (password_in_url) so callers can warn. */
#ifndef MH_ENDPOINT_H
#define MH_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum mh_proto { MH_PROTO_IMAP, MH_PROTO_POP3 };
enum mh_security { MH_SEC_PLAIN, MH_SEC_STARTTLS, MH_SEC_TLS };

#define MH_HOST_MAX 256
#define MH_USER_MAX 321

struct mh_endpoint {
	enum mh_proto proto;
	enum mh_security security;
	char host[MH_HOST_MAX]; /* without brackets for IPv6 */
	uint16_t port;
	char user[MH_USER_MAX];
	char *password; /* heap, NUL-terminated, or NULL; wiped by mh_endpoint_cleanup() */
	bool password_in_url;
};

/* Parses url into ep (which it initializes). Returns 0, or -1 with MH_E_BAD_URL and a
 * detail that says what is wrong (never echoing a password). */
int mh_endpoint_parse(const char *url, struct mh_endpoint *ep, struct mh_err *err);
/* Replaces the password (copied; the old one is wiped). NULL clears it. */
void mh_endpoint_set_password(struct mh_endpoint *ep, const char *password);
/* Wipes and frees the password. */
void mh_endpoint_cleanup(struct mh_endpoint *ep);
/* "imaps://alice%40example.com@mail.example.com:993" (never the password). */
void mh_endpoint_format(const struct mh_endpoint *ep, char *buf, size_t len);
const char *mh_proto_name(enum mh_proto proto);       /* "imap" / "pop3" */
const char *mh_security_name(enum mh_security sec);   /* "plain" / "starttls" / "tls" */
/* Reads a password file: the first line, without its line ending. 0 or -1
 * (MH_E_CONFIG_FILE). The result is heap memory the caller wipes and frees. */
int mh_password_read_file(const char *path, char **password_r, struct mh_err *err);

#endif
