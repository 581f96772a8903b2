/* config.c - daemon settings from flags, MAILHAUL_* variables and a config file (see config.h). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seal.h"
#include "trace.h"

/* A config file line longer than this is a mistake (or not a config file). */
#define CONFIG_LINE_MAX 4096

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

static void replace_str(char **p, const char *v)
{
	free(*p);
	*p = xstrdup(v);
}

/* An empty variable counts as unset, so "MAILHAUL_X=" in an env file falls through. */
static const char *env_get(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Digits only, 1 to max. */
static int parse_count(const char *s, unsigned max, unsigned *n_r)
{
	unsigned long v = 0;

	if (s[0] == '\0' || strlen(s) > 6)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > max)
		return -1;
	*n_r = (unsigned)v;
	return 0;
}

/* Seconds with up to three decimals ("60", "2.5", "0.125") as 1 ms to max_s s. */
static int parse_seconds_ms(const char *s, unsigned max_s, unsigned *ms_r)
{
	size_t nwhole = strspn(s, "0123456789"), nfrac = 0;
	const char *p = s + nwhole;
	unsigned long ms = 0;

	if (nwhole == 0 || nwhole > 6)
		return -1;
	for (size_t i = 0; i < nwhole; i++)
		ms = ms * 10 + (unsigned long)(s[i] - '0');
	ms *= 1000;
	if (*p == '.') {
		p++;
		nfrac = strspn(p, "0123456789");
		if (nfrac == 0 || nfrac > 3)
			return -1;
		for (unsigned long i = 0, scale = 100; i < nfrac; i++, scale /= 10)
			ms += (unsigned long)(p[i] - '0') * scale;
		p += nfrac;
	}
	if (*p != '\0' || ms == 0 || ms > (unsigned long)max_s * 1000)
		return -1;
	*ms_r = (unsigned)ms;
	return 0;
}

/* ---- the settings -------------------------------------------------------------------------- */

/* Each setter stores v in c, or returns -1 and says what would have been valid. */
typedef int setting_set_fn(struct mh_daemon_config *c, const char *v, const char **want_r);

static int set_string(char **field, const char *v, const char **want_r)
{
	if (v[0] == '\0') {
		*want_r = "non-empty";
		return -1;
	}
	replace_str(field, v);
	return 0;
}

static int set_count(unsigned *field, const char *v, unsigned max, const char *want, const char **want_r)
{
	*want_r = want;
	return parse_count(v, max, field);
}

static int set_redis(struct mh_daemon_config *c, const char *v, const char **w) { return set_string(&c->redis_url, v, w); }
static int set_seal(struct mh_daemon_config *c, const char *v, const char **w) { return set_string(&c->seal_key_file, v, w); }
static int set_name(struct mh_daemon_config *c, const char *v, const char **w) { return set_string(&c->name, v, w); }
static int set_trace(struct mh_daemon_config *c, const char *v, const char **w) { return set_string(&c->trace_file, v, w); }

static int set_format(struct mh_daemon_config *c, const char *v, const char **w)
{
	*w = "json or text";
	return mh_log_format_parse(v, &c->log_format);
}

static int set_level(struct mh_daemon_config *c, const char *v, const char **w)
{
	*w = "debug, info, warn or error";
	return mh_log_level_parse(v, &c->log_level);
}

static int set_concurrency(struct mh_daemon_config *c, const char *v, const char **w)
{
	return set_count(&c->concurrency, v, 256, "a number from 1 to 256", w);
}

static int set_batch_messages(struct mh_daemon_config *c, const char *v, const char **w)
{
	return set_count(&c->batch_messages, v, 100000, "a number from 1 to 100000", w);
}

static int set_batch_mb(struct mh_daemon_config *c, const char *v, const char **w)
{
	return set_count(&c->batch_mb, v, 4096, "a number from 1 to 4096", w);
}

static int set_record_ttl(struct mh_daemon_config *c, const char *v, const char **w)
{
	*w = "a number of days from 0 (keep forever) to 36500";
	if (strcmp(v, "0") == 0) {
		c->record_ttl_days = 0;
		return 0;
	}
	return parse_count(v, 36500, &c->record_ttl_days);
}

/* HOST:PORT with a numeric IPv4 address, [IPv6] or localhost, and a port from 1 to 65535. */
static int set_http(struct mh_daemon_config *c, const char *v, const char **w)
{
	const char *colon = strrchr(v, ':');
	unsigned port = 0;

	*w = "HOST:PORT, e.g. 127.0.0.1:8425 (HOST an IP address, [IPv6] or localhost)";
	if (colon == NULL || colon == v || parse_count(colon + 1, 65535, &port) < 0 || port == 0)
		return -1;
	return set_string(&c->http_listen, v, w);
}

static int set_http_token(struct mh_daemon_config *c, const char *v, const char **w)
{
	return set_string(&c->http_token_file, v, w);
}

static int set_planners(struct mh_daemon_config *c, const char *v, const char **w)
{
	*w = "a number from 0 to 64";
	if (strcmp(v, "0") == 0) {
		c->planners = 0; /* plan elsewhere */
		return 0;
	}
	return parse_count(v, 64, &c->planners);
}

/* Both in ms, where 0 would mean "the default" to the worker: so more than 0. */
static int set_claim_idle(struct mh_daemon_config *c, const char *v, const char **w)
{
	*w = "seconds from 0.001 to 86400 (up to 3 decimals)";
	return parse_seconds_ms(v, 86400, &c->claim_idle_ms);
}

static int set_shutdown_grace(struct mh_daemon_config *c, const char *v, const char **w)
{
	*w = "seconds from 0.001 to 3600 (up to 3 decimals)";
	return parse_seconds_ms(v, 3600, &c->shutdown_grace_ms);
}

enum setting_scope { FOR_BOTH, FOR_WORKER, FOR_COORDINATOR };

struct setting {
	const char *key;  /* the flag without "--", and the config file key */
	const char *env;
	const char *def;  /* NULL: unset */
	const char *def_worker; /* the worker's default, when it differs from def */
	enum setting_scope scope;
	setting_set_fn *set;
	const char *arg, *help; /* for --help */
};

static const struct setting settings[] = {
	{"redis", "MAILHAUL_REDIS", "redis://127.0.0.1:6379", NULL, FOR_BOTH, set_redis, "URL",
	 "Redis (redis://host:port[/db] or unix:///path)"},
	{"seal-key-file", "MAILHAUL_SEAL_KEY_FILE", NULL, NULL, FOR_BOTH, set_seal, "F",
	 "credential seal key shared by the cluster"},
	{"concurrency", "MAILHAUL_CONCURRENCY", "2", NULL, FOR_WORKER, set_concurrency, "N",
	 "batches copied at once (threads; default 2)"},
	{"name", "MAILHAUL_NAME", NULL, NULL, FOR_BOTH, set_name, "NAME", "consumer name in Redis (default host-pid)"},
	{"log-format", "MAILHAUL_LOG_FORMAT", "json", NULL, FOR_BOTH, set_format, "F", "json (default) or text"},
	{"log-level", "MAILHAUL_LOG_LEVEL", "info", NULL, FOR_BOTH, set_level, "L", "debug, info (default), warn, error"},
	{"trace", "MAILHAUL_TRACE_FILE", NULL, NULL, FOR_BOTH, set_trace, "FILE",
	 "append IMAP transcripts (passwords redacted)"},
	{"batch-messages", "MAILHAUL_BATCH_MESSAGES", NULL, NULL, FOR_BOTH, set_batch_messages, "N",
	 "messages per batch at most, for the jobs planned here (default 500)"},
	{"batch-mb", "MAILHAUL_BATCH_MB", NULL, NULL, FOR_BOTH, set_batch_mb, "N",
	 "megabytes per batch at most, for the jobs planned here (default 32)"},
	{"planners", "MAILHAUL_PLANNERS", "0", "1", FOR_BOTH, set_planners, "N",
	 "jobs planned at once in this process (default: 1 in a worker, 0 in the coordinator)"},
	{"record-ttl", "MAILHAUL_RECORD_TTL", "90", NULL, FOR_COORDINATOR, set_record_ttl, "DAYS",
	 "forget ended jobs (transfer records and all) this many days after they ended; 0 keeps them (default 90)"},
	{"http", "MAILHAUL_HTTP", NULL, NULL, FOR_COORDINATOR, set_http, "HOST:PORT",
	 "serve the HTTP API, the dashboard and /metrics here (default off; keep it on a private address)"},
	{"http-token-file", "MAILHAUL_HTTP_TOKEN_FILE", NULL, NULL, FOR_COORDINATOR, set_http_token, "F",
	 "the API's bearer token: the first line of F (default: none asked for)"},
	{"claim-idle", "MAILHAUL_CLAIM_IDLE", "60", NULL, FOR_WORKER, set_claim_idle, "SECONDS",
	 "claim a silent worker's batch after this long idle (default 60)"},
	{"shutdown-grace", "MAILHAUL_SHUTDOWN_GRACE", "30", NULL, FOR_WORKER, set_shutdown_grace, "SECONDS",
	 "after SIGTERM, time to finish the batches in hand (default 30)"},
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static bool applies(const struct setting *s, enum mh_daemon daemon)
{
	return s->scope == FOR_BOTH || (s->scope == FOR_WORKER) == (daemon == MH_DAEMON_WORKER);
}

static const char *default_of(const struct setting *s, enum mh_daemon daemon)
{
	return daemon == MH_DAEMON_WORKER && s->def_worker != NULL ? s->def_worker : s->def;
}

static const struct setting *setting_find(const char *key)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings[i].key, key) == 0)
			return &settings[i];
	return NULL;
}

/* ---- the config file ----------------------------------------------------------------------- */

/* What the file says, per setting: value is NULL when it does not name the key. */
struct file_value {
	char *value;
	unsigned line;
};

static void trim_right(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && strchr(" \t\r\n\v\f", s[n - 1]) != NULL)
		s[--n] = '\0';
}

static char *skip_space(char *s)
{
	return s + strspn(s, " \t\v\f");
}

/* Splits one line in place. 1 with *key_r and *value_r, 0 for a blank or comment line, or
 * -1 with what is wrong in *why_r. */
static int line_split(char *line, char **key_r, char **value_r, const char **why_r)
{
	char *s = skip_space(line), *eq, *v;
	size_t n;

	trim_right(s);
	if (s[0] == '\0' || s[0] == '#')
		return 0;
	eq = strchr(s, '=');
	if (eq == NULL) {
		*why_r = "expected \"key = value\" (no '=')";
		return -1;
	}
	*eq = '\0';
	trim_right(s);
	v = skip_space(eq + 1);
	n = strlen(v);
	/* quotes keep leading/trailing spaces and a leading '#' in the value */
	if (v[0] == '"') {
		if (n < 2 || v[n - 1] != '"') {
			*why_r = "a value starting with '\"' must end with '\"'";
			return -1;
		}
		v[n - 1] = '\0';
		v++;
	}
	if (s[0] == '\0') {
		*why_r = "no key before '='";
		return -1;
	}
	*key_r = s;
	*value_r = v;
	return 1;
}

/* Checks one key = value against the table, whatever the daemon, and keeps the value. */
static int file_take(const char *path, unsigned lineno, const char *key, const char *v, struct file_value *fv,
		     struct mh_err *err)
{
	const struct setting *s = setting_find(key);
	struct mh_daemon_config scratch = {0};
	const char *want = NULL;
	int rc;

	if (s == NULL && strcmp(key, "config") == 0)
		return mh_err_set(err, MH_E_USAGE, "%s:%u: config cannot be set in a config file", path, lineno);
	if (s == NULL)
		return mh_err_set(err, MH_E_USAGE, "%s:%u: unknown key \"%.40s\"", path, lineno, key);
	fv += s - settings;
	if (fv->value != NULL)
		return mh_err_set(err, MH_E_USAGE, "%s:%u: %s is already set on line %u", path, lineno, key, fv->line);
	if (v[0] == '\0')
		return mh_err_set(err, MH_E_USAGE, "%s:%u: %s has no value", path, lineno, key);
	/* a key of the other daemon is checked too: a shared file is wrong for both */
	rc = s->set(&scratch, v, &want);
	mh_daemon_config_cleanup(&scratch);
	if (rc < 0)
		return mh_err_set(err, MH_E_USAGE, "%s:%u: %s must be %s, not \"%.60s\"", path, lineno, key, want, v);
	fv->value = xstrdup(v);
	fv->line = lineno;
	return 0;
}

/* Reads path into fv (N_SETTINGS entries, zeroed by the caller; freed by it too). */
static int file_read(const char *path, struct file_value *fv, struct mh_err *err)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, *key, *value;
	size_t cap = 0;
	unsigned lineno = 0;
	const char *why;
	ssize_t n;
	int rc = 0;

	if (f == NULL)
		return mh_err_set(err, MH_E_CONFIG_FILE, "cannot open config file %s: %s", path, strerror(errno));
	while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (n > CONFIG_LINE_MAX)
			rc = mh_err_set(err, MH_E_USAGE, "%s:%u: line longer than %d bytes", path, lineno, CONFIG_LINE_MAX);
		else if ((size_t)n != strlen(line))
			rc = mh_err_set(err, MH_E_USAGE, "%s:%u: contains a NUL byte", path, lineno);
		else
			switch (line_split(line, &key, &value, &why)) {
			case 1: rc = file_take(path, lineno, key, value, fv, err); break;
			case -1: rc = mh_err_set(err, MH_E_USAGE, "%s:%u: %s", path, lineno, why); break;
			}
	}
	/* a directory opens fine and fails here (EISDIR) */
	if (rc == 0 && ferror(f))
		rc = mh_err_set(err, MH_E_CONFIG_FILE, "cannot read config file %s: %s", path, strerror(errno));
	free(line);
	fclose(f);
	return rc;
}

static void file_values_free(struct file_value *fv)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		free(fv[i].value);
		fv[i].value = NULL;
	}
}

/* ---- putting it together -------------------------------------------------------------------- */

enum { O_SETTING = 256, O_CONFIG = O_SETTING + N_SETTINGS, O_HELP };

/* Reads the flags: flag_val[i] for settings[i] (pointers into argv), *config_r for --config. */
static int flags_read(int argc, char **argv, enum mh_daemon daemon, const char **flag_val, const char **config_r,
		      struct mh_daemon_config *c, struct mh_err *err)
{
	struct option opts[N_SETTINGS + 3];
	int ch;

	for (size_t i = 0; i < N_SETTINGS; i++)
		opts[i] = (struct option){settings[i].key, required_argument, NULL, O_SETTING + (int)i};
	opts[N_SETTINGS] = (struct option){"config", required_argument, NULL, O_CONFIG};
	opts[N_SETTINGS + 1] = (struct option){"help", no_argument, NULL, O_HELP};
	opts[N_SETTINGS + 2] = (struct option){NULL, 0, NULL, 0};
	optind = 0; /* glibc and musl: start afresh, forgetting the last argv */
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == O_HELP) {
			c->help = true;
			return 0;
		}
		if (ch == O_CONFIG) {
			*config_r = optarg;
		} else if (ch >= O_SETTING && ch < O_CONFIG) {
			const struct setting *s = &settings[ch - O_SETTING];

			if (!applies(s, daemon))
				return mh_err_set(err, MH_E_USAGE, "--%s is a %s option", s->key,
						  s->scope == FOR_WORKER ? "worker" : "coordinator");
			flag_val[ch - O_SETTING] = optarg;
		} else {
			return mh_err_set(err, MH_E_USAGE, "unknown option (see --help)");
		}
	}
	if (optind < argc)
		return mh_err_set(err, MH_E_USAGE, "unexpected argument \"%s\"", argv[optind]);
	return 0;
}

/* Applies, per setting, the flag, else the variable, else the file's value, else the default;
 * an error names where the bad value came from. */
static int settings_resolve(enum mh_daemon daemon, const char **flag_val, const struct file_value *fv,
			    const char *path, struct mh_daemon_config *c, struct mh_err *err)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		const char *env = env_get(s->env), *want = NULL;

		if (!applies(s, daemon))
			continue;
		if (flag_val[i] != NULL) {
			if (s->set(c, flag_val[i], &want) < 0)
				return mh_err_set(err, MH_E_USAGE, "--%s must be %s, not \"%.60s\"", s->key, want,
						  flag_val[i]);
		} else if (env != NULL) {
			if (s->set(c, env, &want) < 0)
				return mh_err_set(err, MH_E_USAGE, "%s must be %s, not \"%.60s\"", s->env, want, env);
		} else if (fv[i].value != NULL) {
			if (s->set(c, fv[i].value, &want) < 0) /* checked as it was read */
				return mh_err_set(err, MH_E_USAGE, "%s:%u: %s must be %s", path, fv[i].line, s->key, want);
		} else if (default_of(s, daemon) != NULL && s->set(c, default_of(s, daemon), &want) < 0) {
			return mh_err_set(err, MH_E_INTERNAL, "the default of %s is not %s", s->key, want);
		}
	}
	return 0;
}

int mh_daemon_config_parse(int argc, char **argv, enum mh_daemon daemon, struct mh_daemon_config *c,
			   struct mh_err *err)
{
	const char *flag_val[N_SETTINGS] = {0}, *path = NULL;
	struct file_value fv[N_SETTINGS] = {{0}};
	int rc;

	memset(c, 0, sizeof(*c));
	if (flags_read(argc, argv, daemon, flag_val, &path, c, err) < 0)
		return -1;
	if (c->help)
		return 0;
	if (path == NULL)
		path = env_get("MAILHAUL_CONFIG");
	if (path != NULL) {
		c->config_file = xstrdup(path);
		if (file_read(path, fv, err) < 0) {
			file_values_free(fv);
			return -1;
		}
	}
	rc = settings_resolve(daemon, flag_val, fv, path, c, err);
	file_values_free(fv);
	if (rc < 0)
		return -1;
	if (c->seal_key_file == NULL)
		return mh_err_set(err, MH_E_USAGE,
				  "no seal key: pass --seal-key-file F, set MAILHAUL_SEAL_KEY_FILE or put "
				  "seal-key-file in the config file (create one with: mailhaul keygen F)");
	return 0;
}

void mh_daemon_config_cleanup(struct mh_daemon_config *c)
{
	free(c->config_file);
	free(c->redis_url);
	free(c->seal_key_file);
	free(c->name);
	free(c->trace_file);
	free(c->http_listen);
	free(c->http_token_file);
	memset(c, 0, sizeof(*c));
}

void mh_daemon_config_usage(const char *prog, enum mh_daemon daemon)
{
	char flag[64];

	printf("usage: %s [options]\n\n", prog);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];

		if (!applies(s, daemon))
			continue;
		snprintf(flag, sizeof(flag), "--%s %s", s->key, s->arg);
		printf("  %-25s %s; $%s\n", flag, s->help, s->env);
	}
	printf("  %-25s %s; $%s\n", "--config FILE", "more settings as \"key = value\" lines", "MAILHAUL_CONFIG");
	printf("\nA flag wins over its variable, a variable over the config file. Config file keys are\n"
	       "the flag names without \"--\"; one file can serve both daemons.\n");
}

static atomic_int *stop_flag;

static void on_stop_signal(int sig)
{
	(void)sig;
	atomic_store(stop_flag, 1);
}

int mh_daemon_init(int argc, char **argv, const char *prog, enum mh_daemon daemon, struct mh_daemon_config *cfg,
		   struct mh_seal_key *key, atomic_int *stop)
{
	struct sigaction sa = {.sa_handler = on_stop_signal};
	struct mh_err err;

	if (mh_daemon_config_parse(argc, argv, daemon, cfg, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.detail);
		return 2;
	}
	if (cfg->help) {
		mh_daemon_config_usage(prog, daemon);
		return 0;
	}
	mh_log_setup(cfg->log_format, cfg->log_level);
	if (mh_seal_key_load(cfg->seal_key_file, key, &err) < 0 || mh_trace_open(cfg->trace_file, &err) < 0) {
		mh_error(prog, "%s", err.detail);
		return 2;
	}
	stop_flag = stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* a peer hanging up must be an error reply, not a dead process */
	signal(SIGPIPE, SIG_IGN);
	return -1;
}
