/* test_config.c - daemon settings: flags, MAILHAUL_* variables, the config file, and which
 * one wins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char tmpdir[] = "/tmp/mh-test-config-XXXXXX";
static char path[512];

/* Every variable the daemons read: a test sets what it needs on a clean slate. */
static const char *const env_names[] = {
	"MAILHAUL_REDIS",       "MAILHAUL_SEAL_KEY_FILE",  "MAILHAUL_CONCURRENCY", "MAILHAUL_NAME",
	"MAILHAUL_LOG_FORMAT",  "MAILHAUL_LOG_LEVEL",      "MAILHAUL_TRACE_FILE",  "MAILHAUL_BATCH_MESSAGES",
	"MAILHAUL_BATCH_MB",    "MAILHAUL_PLANNERS",       "MAILHAUL_CLAIM_IDLE",  "MAILHAUL_SHUTDOWN_GRACE",
	"MAILHAUL_CONFIG",      "MAILHAUL_RECORD_TTL",     "MAILHAUL_HTTP",        "MAILHAUL_HTTP_TOKEN_FILE",
};

static int group_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	unlink(path);
	return rmdir(tmpdir);
}

static int clean_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
		unsetenv(env_names[i]);
	return 0;
}

/* Writes len bytes of text to the test's config file and returns its path. */
static const char *conf_n(const char *text, size_t len)
{
	FILE *f;

	snprintf(path, sizeof(path), "%s/mailhaul.conf", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *conf(const char *text)
{
	return conf_n(text, strlen(text));
}

/* ARGV("--redis", "x"): a NULL-terminated, writable argv (getopt permutes it). */
#define ARGV(...) ((char *[]){"mailhaul-test", __VA_ARGS__, NULL})

static int argc_of(char **argv)
{
	int n = 0;

	while (argv[n] != NULL)
		n++;
	return n;
}

static int parse(enum mh_daemon d, char **argv, struct mh_daemon_config *c, struct mh_err *err)
{
	mh_err_clear(err);
	return mh_daemon_config_parse(argc_of(argv), argv, d, c, err);
}

/* Parses, expects failure, and checks the detail text exactly. */
static void expect_error(enum mh_daemon d, char **argv, enum mh_err_code code, const char *detail)
{
	struct mh_daemon_config c;
	struct mh_err err;

	assert_int_equal(parse(d, argv, &c, &err), -1);
	assert_int_equal(err.code, code);
	assert_string_equal(err.detail, detail);
	mh_daemon_config_cleanup(&c);
}

static void expect_file_error(enum mh_daemon d, const char *text, const char *detail_after_path)
{
	char want[1024];

	conf(text);
	snprintf(want, sizeof(want), "%s:%s", path, detail_after_path);
	expect_error(d, ARGV("--config", path, "--seal-key-file", "k"), MH_E_USAGE, want);
}

static void test_defaults(void **state)
{
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--seal-key-file", "/k"), &c, &err), 0);
	assert_null(c.config_file);
	assert_string_equal(c.redis_url, "redis://127.0.0.1:6379");
	assert_string_equal(c.seal_key_file, "/k");
	assert_null(c.name);
	assert_null(c.trace_file);
	assert_int_equal(c.log_format, MH_LOG_JSON);
	assert_int_equal(c.log_level, MH_LOG_INFO);
	assert_int_equal(c.concurrency, 2);
	assert_int_equal(c.claim_idle_ms, 60000);
	assert_int_equal(c.shutdown_grace_ms, 30000);
	assert_int_equal(c.planners, 1); /* workers plan */
	mh_daemon_config_cleanup(&c);

	assert_int_equal(parse(MH_DAEMON_COORDINATOR, ARGV("--seal-key-file", "/k"), &c, &err), 0);
	assert_int_equal(c.planners, 0); /* the coordinator does not, unless told */
	assert_int_equal(c.record_ttl_days, 90);
	assert_null(c.http_listen); /* no HTTP server unless asked for */
	assert_null(c.http_token_file);
	assert_int_equal(c.batch_messages, 0);
	assert_int_equal(c.batch_mb, 0);
	assert_int_equal(c.concurrency, 0);
	assert_int_equal(c.claim_idle_ms, 0);
	mh_daemon_config_cleanup(&c);
	mh_daemon_config_cleanup(&c); /* twice is fine */
}

static void test_flags(void **state)
{
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	assert_int_equal(parse(MH_DAEMON_WORKER,
			       ARGV("--redis", "unix:///run/r.sock", "--seal-key-file", "/k", "--concurrency", "8",
				    "--name", "w1", "--log-format", "text", "--log-level", "debug", "--trace", "/t",
				    "--claim-idle", "2.5", "--shutdown-grace", "0.25"),
			       &c, &err),
			 0);
	assert_string_equal(c.redis_url, "unix:///run/r.sock");
	assert_int_equal(c.concurrency, 8);
	assert_string_equal(c.name, "w1");
	assert_int_equal(c.log_format, MH_LOG_TEXT);
	assert_int_equal(c.log_level, MH_LOG_DEBUG);
	assert_string_equal(c.trace_file, "/t");
	assert_int_equal(c.claim_idle_ms, 2500);
	assert_int_equal(c.shutdown_grace_ms, 250);
	mh_daemon_config_cleanup(&c);

	assert_int_equal(parse(MH_DAEMON_COORDINATOR,
			       ARGV("--seal-key-file", "/k", "--planners", "16", "--batch-messages", "100",
				    "--batch-mb", "8"),
			       &c, &err),
			 0);
	assert_int_equal(c.planners, 16);
	assert_int_equal(c.batch_messages, 100);
	assert_int_equal(c.batch_mb, 8);
	mh_daemon_config_cleanup(&c);

	assert_int_equal(parse(MH_DAEMON_COORDINATOR,
			       ARGV("--seal-key-file", "/k", "--http", "[::1]:8425", "--http-token-file", "/t"), &c,
			       &err),
			 0);
	assert_string_equal(c.http_listen, "[::1]:8425");
	assert_string_equal(c.http_token_file, "/t");
	mh_daemon_config_cleanup(&c);
}

static void test_file_comments_quotes_whitespace(void **state)
{
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	conf("# mailhaul settings\n"
	     "\n"
	     "   # an indented comment\n"
	     "redis = redis://10.0.0.5:6379\n"
	     "seal-key-file=/etc/mailhaul/seal.key   \n"
	     "\tconcurrency\t=\t8\t\n"
	     "name = \" spaced # name \"\n"
	     "trace = \"/var/log/mailhaul/trace.log\"\r\n"
	     "log-format = text\r\n"
	     "claim-idle = 2.5\n"
	     "shutdown-grace = 45\n"
	     "   \n"
	     "log-level = warn"); /* no final newline */
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--config", path), &c, &err), 0);
	assert_string_equal(c.config_file, path);
	assert_string_equal(c.redis_url, "redis://10.0.0.5:6379");
	assert_string_equal(c.seal_key_file, "/etc/mailhaul/seal.key");
	assert_int_equal(c.concurrency, 8);
	assert_string_equal(c.name, " spaced # name ");
	assert_string_equal(c.trace_file, "/var/log/mailhaul/trace.log");
	assert_int_equal(c.log_format, MH_LOG_TEXT);
	assert_int_equal(c.log_level, MH_LOG_WARN);
	assert_int_equal(c.claim_idle_ms, 2500);
	assert_int_equal(c.shutdown_grace_ms, 45000);
	mh_daemon_config_cleanup(&c);
}

static void test_file_from_environment(void **state)
{
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	conf("seal-key-file = /from/file\n");
	setenv("MAILHAUL_CONFIG", path, 1);
	assert_int_equal(parse(MH_DAEMON_COORDINATOR, ARGV("--name", "c"), &c, &err), 0);
	assert_string_equal(c.config_file, path);
	assert_string_equal(c.seal_key_file, "/from/file");
	mh_daemon_config_cleanup(&c);

	/* --config wins over MAILHAUL_CONFIG */
	setenv("MAILHAUL_CONFIG", "/nonexistent/mailhaul.conf", 1);
	assert_int_equal(parse(MH_DAEMON_COORDINATOR, ARGV("--config", path), &c, &err), 0);
	assert_string_equal(c.seal_key_file, "/from/file");
	mh_daemon_config_cleanup(&c);
}

static void test_precedence_flag_env_file_default(void **state)
{
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	conf("seal-key-file = /file/key\n"
	     "redis = redis://file:1\n"
	     "name = file-name\n"
	     "concurrency = 3\n"
	     "claim-idle = 5\n");
	setenv("MAILHAUL_NAME", "env-name", 1);
	setenv("MAILHAUL_CONCURRENCY", "4", 1);
	setenv("MAILHAUL_CLAIM_IDLE", "6", 1);
	setenv("MAILHAUL_REDIS", "", 1); /* empty: unset */
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--config", path, "--name", "flag-name", "--claim-idle", "7"),
			       &c, &err),
			 0);
	assert_string_equal(c.name, "flag-name");      /* flag > env > file */
	assert_int_equal(c.claim_idle_ms, 7000);        /* flag > env > file */
	assert_int_equal(c.concurrency, 4);             /* env > file */
	assert_string_equal(c.redis_url, "redis://file:1"); /* file > default */
	assert_string_equal(c.seal_key_file, "/file/key");
	assert_int_equal(c.shutdown_grace_ms, 30000);   /* default */
	mh_daemon_config_cleanup(&c);
}

static void test_flag_hides_bad_variable(void **state)
{
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	setenv("MAILHAUL_CONCURRENCY", "many", 1);
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k", "--concurrency", "3"), &c, &err), 0);
	assert_int_equal(c.concurrency, 3);
	mh_daemon_config_cleanup(&c);
}

static void test_other_daemons_keys(void **state)
{
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	/* one file for both daemons */
	conf("seal-key-file = k\n"
	     "concurrency = 8\n"
	     "claim-idle = 2.5\n"
	     "shutdown-grace = 10\n"
	     "planners = 6\n"
	     "batch-messages = 200\n"
	     "batch-mb = 16\n");
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--config", path), &c, &err), 0);
	assert_int_equal(c.concurrency, 8);
	assert_int_equal(c.planners, 6); /* planning settings are both daemons' */
	assert_int_equal(c.batch_messages, 200);
	mh_daemon_config_cleanup(&c);
	assert_int_equal(parse(MH_DAEMON_COORDINATOR, ARGV("--config", path), &c, &err), 0);
	assert_int_equal(c.planners, 6);
	assert_int_equal(c.batch_messages, 200);
	assert_int_equal(c.batch_mb, 16);
	assert_int_equal(c.concurrency, 0);
	assert_int_equal(c.claim_idle_ms, 0);
	mh_daemon_config_cleanup(&c);

	/* a shared environment: the other daemon's variables are none of our business */
	setenv("MAILHAUL_CONCURRENCY", "many", 1);
	setenv("MAILHAUL_CLAIM_IDLE", "never", 1);
	assert_int_equal(parse(MH_DAEMON_COORDINATOR, ARGV("--seal-key-file", "k", "--planners", "2"), &c, &err), 0);
	mh_daemon_config_cleanup(&c);
	unsetenv("MAILHAUL_CLAIM_IDLE");
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k", "--concurrency", "2"), &c, &err), 0);
	mh_daemon_config_cleanup(&c);
	/* a worker that only copies */
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k", "--concurrency", "1", "--planners", "0"), &c, &err), 0);
	assert_int_equal(c.planners, 0);
	mh_daemon_config_cleanup(&c);

	/* but as flags they are mistakes */
	expect_error(MH_DAEMON_COORDINATOR, ARGV("--seal-key-file", "k", "--concurrency", "2"), MH_E_USAGE,
		     "--concurrency is a worker option");
	expect_error(MH_DAEMON_COORDINATOR, ARGV("--seal-key-file", "k", "--claim-idle", "2"), MH_E_USAGE,
		     "--claim-idle is a worker option");
	expect_error(MH_DAEMON_COORDINATOR, ARGV("--seal-key-file", "k", "--shutdown-grace", "2"), MH_E_USAGE,
		     "--shutdown-grace is a worker option");
}

static void test_file_errors_name_the_line(void **state)
{
	(void)state;
	expect_file_error(MH_DAEMON_WORKER, "# x\nredis = redis://r:1\nbogus = 1\n", "3: unknown key \"bogus\"");
	expect_file_error(MH_DAEMON_WORKER, "\nconcurrency = eight\n",
			  "2: concurrency must be a number from 1 to 256, not \"eight\"");
	expect_file_error(MH_DAEMON_WORKER, "concurrency = 8 # per host\n",
			  "1: concurrency must be a number from 1 to 256, not \"8 # per host\"");
	expect_file_error(MH_DAEMON_WORKER, "redis redis://r:1\n", "1: expected \"key = value\" (no '=')");
	expect_file_error(MH_DAEMON_WORKER, "= 5\n", "1: no key before '='");
	expect_file_error(MH_DAEMON_WORKER, "name =\n", "1: name has no value");
	expect_file_error(MH_DAEMON_WORKER, "name = \"\"\n", "1: name has no value");
	expect_file_error(MH_DAEMON_WORKER, "name = \"w1\n", "1: a value starting with '\"' must end with '\"'");
	expect_file_error(MH_DAEMON_WORKER, "name = \"\n", "1: a value starting with '\"' must end with '\"'");
	expect_file_error(MH_DAEMON_WORKER, "name = a\n\nname = b\n", "3: name is already set on line 1");
	expect_file_error(MH_DAEMON_WORKER, "config = /etc/other.conf\n",
			  "1: config cannot be set in a config file");
	expect_file_error(MH_DAEMON_WORKER, "--redis = redis://r:1\n", "1: unknown key \"--redis\"");
	expect_file_error(MH_DAEMON_WORKER, "log-level = loud\n",
			  "1: log-level must be debug, info, warn or error, not \"loud\"");
	/* the other daemon's keys are checked too: the file is wrong for both */
	expect_file_error(MH_DAEMON_WORKER, "concurrency = 0\n", "1: concurrency must be a number from 1 to 256, not \"0\"");
	expect_file_error(MH_DAEMON_WORKER, "planners = -1\n", "1: planners must be a number from 0 to 64, not \"-1\"");
	expect_file_error(MH_DAEMON_COORDINATOR, "claim-idle = soon\n",
			  "1: claim-idle must be seconds from 0.001 to 86400 (up to 3 decimals), not \"soon\"");
}

static void test_file_hostile_bytes(void **state)
{
	char big[5000];
	char want[1024];

	(void)state;
	conf_n("name = a\0b\n", 11);
	snprintf(want, sizeof(want), "%s:1: contains a NUL byte", path);
	expect_error(MH_DAEMON_WORKER, ARGV("--config", path, "--seal-key-file", "k"), MH_E_USAGE, want);

	memset(big, 'x', sizeof(big));
	memcpy(big, "name = ", 7);
	big[sizeof(big) - 1] = '\n';
	conf_n(big, sizeof(big));
	snprintf(want, sizeof(want), "%s:1: line longer than 4096 bytes", path);
	expect_error(MH_DAEMON_WORKER, ARGV("--config", path, "--seal-key-file", "k"), MH_E_USAGE, want);
}

static void test_file_unreadable(void **state)
{
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--config", "/nonexistent/mh.conf", "--seal-key-file", "k"), &c,
			       &err),
			 -1);
	assert_int_equal(err.code, MH_E_CONFIG_FILE);
	assert_string_equal(err.detail, "cannot open config file /nonexistent/mh.conf: No such file or directory");
	mh_daemon_config_cleanup(&c);

	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--config", tmpdir, "--seal-key-file", "k"), &c, &err), -1);
	assert_int_equal(err.code, MH_E_CONFIG_FILE);
	assert_non_null(strstr(err.detail, tmpdir));
	mh_daemon_config_cleanup(&c);

	setenv("MAILHAUL_CONFIG", "/nonexistent/env.conf", 1);
	assert_int_equal(parse(MH_DAEMON_COORDINATOR, ARGV("--seal-key-file", "k"), &c, &err), -1);
	assert_int_equal(err.code, MH_E_CONFIG_FILE);
	assert_non_null(strstr(err.detail, "/nonexistent/env.conf"));
	mh_daemon_config_cleanup(&c);
}

static void test_bad_values_name_their_source(void **state)
{
	(void)state;
	expect_error(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k", "--concurrency", "0"), MH_E_USAGE,
		     "--concurrency must be a number from 1 to 256, not \"0\"");
	expect_error(MH_DAEMON_COORDINATOR, ARGV("--seal-key-file", "k", "--planners", "65"), MH_E_USAGE,
		     "--planners must be a number from 0 to 64, not \"65\"");
	expect_error(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k", "--name", ""), MH_E_USAGE,
		     "--name must be non-empty, not \"\"");
	expect_error(MH_DAEMON_COORDINATOR, ARGV("--seal-key-file", "k", "--http", "8425"), MH_E_USAGE,
		     "--http must be HOST:PORT, e.g. 127.0.0.1:8425 (HOST an IP address, [IPv6] or localhost), not "
		     "\"8425\"");
	expect_error(MH_DAEMON_COORDINATOR, ARGV("--seal-key-file", "k", "--http", "127.0.0.1:0"), MH_E_USAGE,
		     "--http must be HOST:PORT, e.g. 127.0.0.1:8425 (HOST an IP address, [IPv6] or localhost), not "
		     "\"127.0.0.1:0\"");
	setenv("MAILHAUL_SHUTDOWN_GRACE", "forever", 1);
	expect_error(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k"), MH_E_USAGE,
		     "MAILHAUL_SHUTDOWN_GRACE must be seconds from 0.001 to 3600 (up to 3 decimals), not \"forever\"");
	unsetenv("MAILHAUL_SHUTDOWN_GRACE");
	setenv("MAILHAUL_PLANNERS", "x", 1);
	expect_error(MH_DAEMON_COORDINATOR, ARGV("--seal-key-file", "k"), MH_E_USAGE,
		     "MAILHAUL_PLANNERS must be a number from 0 to 64, not \"x\"");
}

static void test_seconds(void **state)
{
	static const struct {
		const char *s;
		unsigned ms; /* 0: rejected */
	} cases[] = {
		{"60", 60000},   {"2.5", 2500},      {"0.125", 125},     {"0.001", 1},      {"007", 7000},
		{"1.05", 1050},  {"86400", 86400000}, {"0", 0},          {"0.0", 0},        {"0.0001", 0},
		{"1.2345", 0},   {"", 0},             {"-1", 0},         {"+1", 0},         {"2.", 0},
		{".5", 0},       {"1e3", 0},          {"1,5", 0},        {" 5", 0},         {"5 ", 0},
		{"5s", 0},       {"0x10", 0},         {"86400.001", 0},  {"9999999", 0},    {"1.2.3", 0},
	};
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = parse(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k", "--claim-idle", (char *)cases[i].s), &c,
			       &err);

		if (cases[i].ms == 0) {
			if (rc != -1)
				fail_msg("\"%s\" accepted as %u ms", cases[i].s, c.claim_idle_ms);
			assert_non_null(strstr(err.detail, "--claim-idle must be seconds"));
		} else {
			if (rc != 0)
				fail_msg("\"%s\" refused: %s", cases[i].s, err.detail);
			assert_int_equal(c.claim_idle_ms, cases[i].ms);
		}
		mh_daemon_config_cleanup(&c);
	}
	/* the grace period stops at an hour */
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k", "--shutdown-grace", "3600"), &c, &err), 0);
	assert_int_equal(c.shutdown_grace_ms, 3600000);
	mh_daemon_config_cleanup(&c);
	expect_error(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k", "--shutdown-grace", "3600.5"), MH_E_USAGE,
		     "--shutdown-grace must be seconds from 0.001 to 3600 (up to 3 decimals), not \"3600.5\"");
}

static void test_seal_key_required(void **state)
{
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	conf("redis = redis://r:1\n");
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--config", path), &c, &err), -1);
	assert_int_equal(err.code, MH_E_USAGE);
	assert_non_null(strstr(err.detail, "no seal key"));
	assert_non_null(strstr(err.detail, "seal-key-file in the config file"));
	mh_daemon_config_cleanup(&c);
}

static void test_usage_errors(void **state)
{
	(void)state;
	opterr = 0; /* getopt's own message is for humans at a terminal */
	expect_error(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k", "--bogus"), MH_E_USAGE,
		     "unknown option (see --help)");
	expect_error(MH_DAEMON_WORKER, ARGV("--seal-key-file", "k", "stray"), MH_E_USAGE,
		     "unexpected argument \"stray\"");
	opterr = 1;
}

static void test_help_ignores_broken_config(void **state)
{
	struct mh_daemon_config c;
	struct mh_err err;

	(void)state;
	setenv("MAILHAUL_CONFIG", "/nonexistent/mh.conf", 1);
	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--help"), &c, &err), 0);
	assert_true(c.help);
	mh_daemon_config_cleanup(&c);
}

/* deploy/mailhaul.conf.example with every setting uncommented is valid for both daemons,
 * and the defaults it shows are the real ones. */
static void test_deploy_example(void **state)
{
	const char *src = getenv("MH_SOURCE_DIR");
	char example[512], line[1024];
	struct mh_daemon_config c;
	struct mh_err err;
	FILE *in, *out;

	(void)state;
	if (src == NULL)
		skip(); /* run outside ctest */
	snprintf(example, sizeof(example), "%s/deploy/mailhaul.conf.example", src);
	in = fopen(example, "r");
	assert_non_null(in);
	conf("");
	out = fopen(path, "w");
	assert_non_null(out);
	while (fgets(line, sizeof(line), in) != NULL)
		fputs(line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' ? line + 1 : line, out);
	fclose(in);
	assert_int_equal(fclose(out), 0);

	assert_int_equal(parse(MH_DAEMON_WORKER, ARGV("--config", path), &c, &err), 0);
	assert_string_equal(c.redis_url, "redis://127.0.0.1:6379");
	assert_string_equal(c.seal_key_file, "/etc/mailhaul/seal.key");
	assert_int_equal(c.concurrency, 2);
	assert_int_equal(c.claim_idle_ms, 60000);
	assert_int_equal(c.shutdown_grace_ms, 30000);
	mh_daemon_config_cleanup(&c);
	assert_int_equal(parse(MH_DAEMON_COORDINATOR, ARGV("--config", path), &c, &err), 0);
	assert_int_equal(c.planners, 1);
	assert_int_equal(c.batch_messages, 500);
	assert_int_equal(c.batch_mb, 32);
	mh_daemon_config_cleanup(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, clean_env),
		cmocka_unit_test_setup(test_flags, clean_env),
		cmocka_unit_test_setup(test_file_comments_quotes_whitespace, clean_env),
		cmocka_unit_test_setup(test_file_from_environment, clean_env),
		cmocka_unit_test_setup(test_precedence_flag_env_file_default, clean_env),
		cmocka_unit_test_setup(test_flag_hides_bad_variable, clean_env),
		cmocka_unit_test_setup(test_other_daemons_keys, clean_env),
		cmocka_unit_test_setup(test_file_errors_name_the_line, clean_env),
		cmocka_unit_test_setup(test_file_hostile_bytes, clean_env),
		cmocka_unit_test_setup(test_file_unreadable, clean_env),
		cmocka_unit_test_setup(test_bad_values_name_their_source, clean_env),
		cmocka_unit_test_setup(test_seconds, clean_env),
		cmocka_unit_test_setup(test_seal_key_required, clean_env),
		cmocka_unit_test_setup(test_usage_errors, clean_env),
		cmocka_unit_test_setup(test_help_ignores_broken_config, clean_env),
		cmocka_unit_test_setup(test_deploy_example, clean_env),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
