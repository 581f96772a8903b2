/* endpoints.c - the two accounts of a command line: URLs, passwords, warnings. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "log.h"

/* Password from file, else env, else the URL (warned about). */
static int resolve_password(struct mh_endpoint *ep, const char *file, const char *env_name, const char *side,
			    struct mh_err *err)
{
	const char *env = getenv(env_name);
	char *pw = NULL;

	if (file != NULL) {
		if (mh_password_read_file(file, &pw, err) < 0)
			return -1;
		mh_endpoint_set_password(ep, pw);
		mh_secret_free(&pw);
		return 0;
	}
	if (env != NULL && env[0] != '\0') {
		mh_endpoint_set_password(ep, env);
		return 0;
	}
	if (ep->password != NULL) {
		mh_warn("cli", "the %s password is in the URL: it may show in shell history and process lists; "
			       "use --%s-password-file or $%s",
			side, side, env_name);
		return 0;
	}
	return mh_err_set(err, MH_E_NO_PASSWORD, "no password for the %s account: use --%s-password-file or $%s",
			  side, side, env_name);
}

/* Overwrites the password of "scheme://user:password@host" in place, so that it does not
 * stay visible in `ps` and /proc/PID/cmdline for the whole run. */
static void hide_url_password(char *url)
{
	char *start = strstr(url, "://"), *at, *colon;

	if (start == NULL)
		return;
	start += 3;
	at = strrchr(start, '@');
	if (at == NULL)
		return;
	colon = memchr(start, ':', (size_t)(at - start));
	if (colon != NULL)
		memset(colon + 1, '*', (size_t)(at - colon - 1));
}

int cli_endpoints_resolve(char *from_url, char *to_url, const char *from_password_file, const char *to_password_file,
			  bool insecure, struct mh_endpoint *from, struct mh_endpoint *to, struct mh_err *err)
{
	if (mh_endpoint_parse(from_url, from, err) < 0) {
		mh_err_set(err, MH_E_BAD_URL, "--from: %s", err->detail);
		return -1;
	}
	if (mh_endpoint_parse(to_url, to, err) < 0) {
		mh_err_set(err, MH_E_BAD_URL, "--to: %s", err->detail);
		return -1;
	}
	hide_url_password(from_url);
	hide_url_password(to_url);
	/* POP3 can be read from, not written to: there is no way to store a message */
	if (to->proto != MH_PROTO_IMAP)
		return mh_err_set(err, MH_E_BAD_URL, "--to: the destination must be IMAP (imap:// or imaps://); "
						     "POP3 works only as a source");
	if (insecure)
		mh_warn("cli", "--insecure: TLS certificates are NOT verified; anyone on the path can read the passwords");
	if (resolve_password(from, from_password_file, "MAILHAUL_FROM_PASSWORD", "from", err) < 0 ||
	    resolve_password(to, to_password_file, "MAILHAUL_TO_PASSWORD", "to", err) < 0)
		return -1;
	return 0;
}
