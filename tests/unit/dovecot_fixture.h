/* dovecot_fixture.h - a private Dovecot for one unit test group.
 *
 * dovecot_fixture_start() runs tests/support/dovecot-ctl start in a fresh mkdtemp directory
 * (IMAP + STARTTLS, IMAPS, POP3 + STLS and POP3S on free loopback ports, certificates from
 * a throwaway CA) and reads the ports and the CA file from dovecot-ctl's env file;
 * dovecot_fixture_adduser() adds a user; dovecot_fixture_stop() stops the server by PID
 * (dovecot-ctl stop) and removes the directory, unless MH_TEST_KEEP is set. Without Dovecot
 * installed, start sets missing and returns 0, so each test can skip() with a message
 * (dovecot_fixture_need()).
 *
 * MH_SOURCE_DIR names the repository root (ctest sets it); without it the root is searched
 * for upwards from this file's path and the current directory.
 *
 * Header-only (static inline) so each test executable takes just what it uses. Include it
 * after <cmocka.h>. */
#ifndef MH_TEST_DOVECOT_FIXTURE_H
#define MH_TEST_DOVECOT_FIXTURE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct dovecot_fixture {
	bool missing;       /* Dovecot is not installed */
	char src[1024];     /* repository root, holding tests/support/dovecot-ctl */
	char dir[256];      /* the temp dir: start.log and the server's own dir */
	char ddir[300];     /* dovecot-ctl's DIR, inside dir */
	uint16_t imap_port, imaps_port, pop3_port, pop3s_port;
	char ca_file[1300]; /* the CA that signed the server's certificate */
};

static inline bool dovecot_fixture_file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Runs a shell command built like printf; returns system()'s status. */
static inline int dovecot_fixture_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int dovecot_fixture_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* Writes s into out in single quotes, for a shell command line. */
static inline void dovecot_fixture_sh_quote(const char *s, char *out, size_t size)
{
	size_t o = 0;

	assert_true(size >= 3);
	out[o++] = '\'';
	for (; *s != '\0'; s++) {
		const char *piece = *s == '\'' ? "'\\''" : NULL; /* close, escaped quote, reopen */
		size_t n = piece != NULL ? strlen(piece) : 1;

		assert_true(o + n + 2 <= size);
		if (piece != NULL)
			memcpy(out + o, piece, n);
		else
			out[o] = *s;
		o += n;
	}
	out[o++] = '\'';
	out[o] = '\0';
}

static inline void dovecot_fixture_find_source_dir(struct dovecot_fixture *d)
{
	const char *env = getenv("MH_SOURCE_DIR");
	char path[1024];

	if (env != NULL && env[0] != '\0') {
		snprintf(d->src, sizeof(d->src), "%s", env);
		return;
	}
	/* __FILE__ is .../tests/unit/dovecot_fixture.h */
	snprintf(path, sizeof(path), "%s", __FILE__);
	for (int i = 0; i < 3; i++) {
		char *slash = strrchr(path, '/');

		if (slash == NULL) {
			path[0] = '\0';
			break;
		}
		*slash = '\0';
	}
	if (path[0] == '\0')
		snprintf(path, sizeof(path), ".");
	for (int up = 0; up < 4; up++) {
		char probe[1100];

		snprintf(probe, sizeof(probe), "%s/tests/support/dovecot-ctl", path);
		if (dovecot_fixture_file_exists(probe)) {
			snprintf(d->src, sizeof(d->src), "%s", path);
			return;
		}
		strncat(path, "/..", sizeof(path) - strlen(path) - 1);
	}
	snprintf(d->src, sizeof(d->src), ".");
}

static inline bool dovecot_fixture_installed(void)
{
	return dovecot_fixture_file_exists("/usr/sbin/dovecot") ||
	       dovecot_fixture_sh("command -v dovecot >/dev/null 2>&1") == 0;
}

/* The value of a *_PORT line of dovecot-ctl's env file; 0 when it is not a port. */
static inline uint16_t dovecot_fixture_port(const char *value)
{
	char *end;
	unsigned long port = strtoul(value, &end, 10);

	return *end == '\0' && port <= 65535 ? (uint16_t)port : 0;
}

static inline int dovecot_fixture_read_env(struct dovecot_fixture *d)
{
	char envpath[400], line[1200];
	FILE *f;

	snprintf(envpath, sizeof(envpath), "%s/env", d->ddir);
	f = fopen(envpath, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "IMAP_PORT=", 10) == 0)
			d->imap_port = dovecot_fixture_port(line + 10);
		else if (strncmp(line, "IMAPS_PORT=", 11) == 0)
			d->imaps_port = dovecot_fixture_port(line + 11);
		else if (strncmp(line, "POP3_PORT=", 10) == 0)
			d->pop3_port = dovecot_fixture_port(line + 10);
		else if (strncmp(line, "POP3S_PORT=", 11) == 0)
			d->pop3s_port = dovecot_fixture_port(line + 11);
		else if (strncmp(line, "CA_FILE=", 8) == 0)
			snprintf(d->ca_file, sizeof(d->ca_file), "%s", line + 8);
	}
	fclose(f);
	if (d->imap_port == 0 || d->imaps_port == 0 || d->pop3_port == 0 || d->pop3s_port == 0 ||
	    d->ca_file[0] == '\0')
		return -1;
	return 0;
}

/* Stops the server (dovecot-ctl stop, by the PID it recorded) and removes the temp dir
 * unless MH_TEST_KEEP is set. Safe to call twice, or after a failed start. */
static inline void dovecot_fixture_stop(struct dovecot_fixture *d)
{
	if (d->ddir[0] != '\0')
		dovecot_fixture_sh("'%s/tests/support/dovecot-ctl' stop '%s' >/dev/null 2>&1", d->src, d->ddir);
	d->ddir[0] = '\0';
	if (d->dir[0] != '\0' && getenv("MH_TEST_KEEP") == NULL)
		dovecot_fixture_sh("rm -rf '%s'", d->dir);
	d->dir[0] = '\0';
}

/* After a failed start: stops whatever did start, and forgets the temp dir so that
 * dovecot_fixture_stop() keeps it for its start.log. */
static inline int dovecot_fixture_give_up(struct dovecot_fixture *d, const char *why)
{
	fprintf(stderr, "# %s; see %s/start.log\n", why, d->dir);
	dovecot_fixture_sh("'%s/tests/support/dovecot-ctl' stop '%s' >/dev/null 2>&1", d->src, d->ddir);
	d->ddir[0] = '\0';
	d->dir[0] = '\0';
	return -1;
}

/* Starts Dovecot for d (zeroed by the caller). tag names the temp dir; options are more
 * dovecot-ctl start options, already quoted for the shell (or ""). Returns 0 (check
 * d->missing), or -1 when the server could not be started. */
static inline int dovecot_fixture_start(struct dovecot_fixture *d, const char *tag, const char *options)
{
	dovecot_fixture_find_source_dir(d);
	if (!dovecot_fixture_installed()) {
		d->missing = true;
		return 0;
	}
	snprintf(d->dir, sizeof(d->dir), "/tmp/mh-%s-XXXXXX", tag);
	if (mkdtemp(d->dir) == NULL) {
		d->dir[0] = '\0';
		return -1;
	}
	snprintf(d->ddir, sizeof(d->ddir), "%s/dovecot", d->dir);
	if (dovecot_fixture_sh("'%s/tests/support/dovecot-ctl' start '%s' %s >'%s/start.log' 2>&1", d->src, d->ddir,
			       options, d->dir) != 0)
		return dovecot_fixture_give_up(d, "dovecot-ctl start failed");
	if (dovecot_fixture_read_env(d) < 0)
		return dovecot_fixture_give_up(d, "dovecot-ctl's env file lacks a port or CA_FILE");
	return 0;
}

/* Adds a user with password (any bytes but ':' and newlines). Returns 0 or -1. */
static inline int dovecot_fixture_adduser(const struct dovecot_fixture *d, const char *user, const char *password)
{
	char quoted_user[256], quoted_password[1024];

	dovecot_fixture_sh_quote(user, quoted_user, sizeof(quoted_user));
	dovecot_fixture_sh_quote(password, quoted_password, sizeof(quoted_password));
	if (dovecot_fixture_sh("'%s/tests/support/dovecot-ctl' adduser '%s' %s %s", d->src, d->ddir, quoted_user,
			       quoted_password) != 0) {
		fprintf(stderr, "# dovecot-ctl adduser %s failed\n", user);
		return -1;
	}
	return 0;
}

/* For a test body: skips (saying why) when Dovecot is not installed. */
static inline void dovecot_fixture_need(const struct dovecot_fixture *d)
{
	if (d->missing) {
		print_message("dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d): "
			      "skipping\n");
		skip();
	}
}

#endif
