/* check.c - the health check (see check.h): probe both servers, take stock, judge. */
#include "check.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "folder_map.h"
#include "folders.h"
#include "imap_utf7.h"
#include "imap_client.h"
#include "jobstore.h"
#include "log.h"
#include "plan_pop3.h"
#include "pop3_ident.h"
#include "textfmt.h"

/* A certificate expiring sooner than this is pointed out. */
#define CHECK_CERT_WARN_DAYS 14

static const char *const step_names[CHECK_STEPS] = {"dns", "connect", "tls", "greeting", "login", "folders"};
static const char *const status_names[] = {"skipped", "ok", "warning", "failed"};

const char *check_step_name(enum check_step s)
{
	return (unsigned)s < CHECK_STEPS ? step_names[s] : "?";
}

const char *check_status_name(enum check_status s)
{
	return (unsigned)s < sizeof(status_names) / sizeof(status_names[0]) ? status_names[s] : "?";
}

const char *check_verdict_name(enum check_verdict v)
{
	return v == CHECK_VERDICT_OK ? "ok" : v == CHECK_VERDICT_WARNINGS ? "warnings" : "blocked";
}

static void step_set(struct check_side *s, enum check_step step, enum check_status st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void step_set(struct check_side *s, enum check_step step, enum check_status st, const char *fmt, ...)
{
	va_list ap;

	s->steps[step] = st;
	va_start(ap, fmt);
	vsnprintf(s->step_detail[step], sizeof(s->step_detail[step]), fmt, ap);
	va_end(ap);
}

static void problem(struct check_report *r, bool blocking, enum mh_err_code code, const char *fix, const char *fmt,
		    ...) __attribute__((format(printf, 5, 6)));

static void problem(struct check_report *r, bool blocking, enum mh_err_code code, const char *fix, const char *fmt,
		    ...)
{
	struct check_problem *p;
	va_list ap;

	r->problems = realloc(r->problems, (r->problem_count + 1) * sizeof(*r->problems));
	if (r->problems == NULL)
		abort();
	p = &r->problems[r->problem_count++];
	p->blocking = blocking;
	p->code = code;
	va_start(ap, fmt);
	vsnprintf(p->cause, sizeof(p->cause), fmt, ap);
	va_end(ap);
	snprintf(p->fix, sizeof(p->fix), "%s", fix);
}

static const char *side_label(const struct check_side *s)
{
	return s->side == MH_SIDE_SOURCE ? "source" : "target";
}

/* --- connecting ------------------------------------------------------------------------ */

static bool is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void check_dns(struct check_side *s)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	char addr[64] = "";
	int rc;

	if (is_ip_literal(s->host)) {
		step_set(s, CHECK_DNS, CHECK_OK, "%s is an address (no lookup)", s->host);
		return;
	}
	rc = getaddrinfo(s->host, NULL, &hints, &res);
	if (rc != 0) {
		step_set(s, CHECK_DNS, CHECK_FAIL, "%s: %s", s->host, gai_strerror(rc));
		mh_err_set(&s->error, MH_E_DNS, "%s: %s", s->host, gai_strerror(rc));
		return;
	}
	if (res->ai_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, addr, sizeof(addr));
	else if (res->ai_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, addr, sizeof(addr));
	freeaddrinfo(res);
	step_set(s, CHECK_DNS, CHECK_OK, "%s is %s", s->host, addr);
}

/* Which step a failed open stopped at: the error code says it for most failures; for
 * timeouts and lost connections the client's stage does. */
static enum check_step failed_step(const struct mh_err *e, enum imap_stage stage)
{
	switch (mh_err_class_of(e->code)) {
	case MH_CLASS_ACCOUNT:
		return CHECK_LOGIN;
	default:
		break;
	}
	if (e->code == MH_E_DNS)
		return CHECK_DNS;
	if (e->code == MH_E_CONNECT_REFUSED)
		return CHECK_CONNECT;
	if (e->code == MH_E_STARTTLS_UNAVAILABLE || strncmp(mh_err_name(e->code), "TLS_", 4) == 0)
		return CHECK_TLS;
	switch (stage) {
	case IMAP_STAGE_CONNECT:
		return CHECK_CONNECT;
	case IMAP_STAGE_TLS:
		return CHECK_TLS;
	case IMAP_STAGE_GREETING:
		return CHECK_GREETING;
	default:
		return CHECK_LOGIN;
	}
}

static void record_caps(struct check_side *s, struct imap_client *c)
{
	const char *const *caps;
	size_t n = imap_client_caps(c, &caps), len = 1, o = 0;

	for (size_t i = 0; i < n; i++)
		len += strlen(caps[i]) + 1;
	s->capabilities = malloc(len);
	if (s->capabilities == NULL)
		abort();
	s->capabilities[0] = '\0';
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(s->capabilities + o, len - o, "%s%s", o ? " " : "", caps[i]);
}

static enum imap_stage imap_stage_of_pop3(enum pop3_stage st)
{
	switch (st) {
	case POP3_STAGE_CONNECT:
		return IMAP_STAGE_CONNECT;
	case POP3_STAGE_TLS:
		return IMAP_STAGE_TLS;
	case POP3_STAGE_GREETING:
		return IMAP_STAGE_GREETING;
	default:
		return IMAP_STAGE_LOGIN;
	}
}

static void record_pop3_caps(struct check_side *s, struct pop3_client *c)
{
	const char *const *caps;
	size_t n = pop3_client_caps(c, &caps), len = 1, o = 0;

	for (size_t i = 0; i < n; i++)
		len += strlen(caps[i]) + 3;
	s->capabilities = malloc(len);
	if (s->capabilities == NULL)
		abort();
	s->capabilities[0] = '\0';
	/* CAPA lines may hold spaces ("SASL PLAIN"): keep each one's words together */
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(s->capabilities + o, len - o, "%s%s", o ? " " : "", caps[i]);
}

static int open_side(struct event_base *base, const struct mh_job_spec *spec, const struct mh_seal_key *key,
		     const struct check_opts *o, struct check_side *s, struct mh_conn *conn)
{
	struct mh_conn_opts co = {.connect_timeout_ms = o->connect_timeout_ms, .command_timeout_ms = o->command_timeout_ms};
	enum check_step failed;

	bool pop3 = s->side == MH_SIDE_SOURCE && spec->src.proto == MH_PROTO_POP3;
	const char *ready = pop3 ? "POP3 server ready" : "IMAP server ready";

	if (mh_conn_open(base, spec, s->side, key, &co, conn, &s->error) < 0) {
		failed = failed_step(&s->error, pop3 ? imap_stage_of_pop3(conn->pop3_stage) : conn->stage);
		if (failed > CHECK_CONNECT)
			step_set(s, CHECK_CONNECT, CHECK_OK, "%s port %u accepts connections", s->host, s->port);
		if (failed > CHECK_TLS && s->security != MH_SEC_PLAIN)
			step_set(s, CHECK_TLS, CHECK_OK, "TLS established");
		if (failed > CHECK_GREETING)
			step_set(s, CHECK_GREETING, CHECK_OK, "%s", ready);
		step_set(s, failed, CHECK_FAIL, "%s: %s", mh_err_text(s->error.code), s->error.detail);
		return -1;
	}
	step_set(s, CHECK_CONNECT, CHECK_OK, "%s port %u accepts connections", s->host, s->port);
	s->tls = pop3 ? pop3_client_tls_info(conn->pop3, &s->tls_info) : imap_client_tls_info(conn->imap, &s->tls_info);
	if (s->tls)
		step_set(s, CHECK_TLS, CHECK_OK, "%s %s, certificate %s%s", s->tls_info.protocol, s->tls_info.cipher,
			 s->tls_info.subject, s->tls_info.verified ? " (verified)" : " (NOT verified: --insecure)");
	else
		step_set(s, CHECK_TLS, CHECK_WARN, "no TLS: the password and the mail travel unencrypted");
	if (pop3)
		record_pop3_caps(s, conn->pop3);
	else
		record_caps(s, conn->imap);
	step_set(s, CHECK_GREETING, CHECK_OK, "%s", ready);
	step_set(s, CHECK_LOGIN, CHECK_OK, "logged in as %s", s->user);
	return 0;
}

/* --- target limits: QUOTA and APPENDLIMIT ------------------------------------------------ */

static void on_quota(void *ctx, const struct imap_response *r)
{
	struct check_side *s = ctx;
	const struct imap_arg *list;

	/* * QUOTA "User quota" (STORAGE 10 1024 MESSAGE 3 1000): usage and limit, STORAGE in KiB */
	if (r->name == NULL || strcmp(r->name, "QUOTA") != 0 || r->count < 2 || r->args[1].type != IMAP_ARG_LIST)
		return;
	list = &r->args[1];
	for (size_t i = 0; i + 2 < list->count; i += 3) {
		uint64_t used, limit;
		if (imap_arg_number(&list->items[i + 1], UINT64_MAX / 1024, &used) < 0 ||
		    imap_arg_number(&list->items[i + 2], UINT64_MAX / 1024, &limit) < 0)
			continue;
		if (imap_arg_is(&list->items[i], "STORAGE") && (!s->has_quota || limit * 1024 < s->quota_limit)) {
			s->has_quota = true;
			s->quota_used = used * 1024;
			s->quota_limit = limit * 1024;
		} else if (imap_arg_is(&list->items[i], "MESSAGE") &&
			   (!s->has_message_quota || limit < s->quota_msgs_limit)) {
			s->has_message_quota = true;
			s->quota_msgs_used = used;
			s->quota_msgs_limit = limit;
		}
	}
}

static void on_status_appendlimit(void *ctx, const struct imap_response *r)
{
	struct check_side *s = ctx;
	const struct imap_arg *list;

	if (r->name == NULL || strcmp(r->name, "STATUS") != 0 || r->count < 2 || r->args[1].type != IMAP_ARG_LIST)
		return;
	list = &r->args[1];
	for (size_t i = 0; i + 1 < list->count; i += 2)
		if (imap_arg_is(&list->items[i], "APPENDLIMIT"))
			imap_arg_number(&list->items[i + 1], UINT64_MAX, &s->appendlimit);
}

static int read_target_limits(struct event_base *base, struct imap_client *c, struct check_side *s,
			      struct mh_err *err)
{
	const char *v;

	if (imap_client_has_cap(c, "QUOTA") && imap_client_run(base, c, on_quota, NULL, s, err, "GETQUOTAROOT INBOX") < 0)
		return -1;
	v = imap_client_cap_value(c, "APPENDLIMIT");
	if (v != NULL) {
		s->appendlimit = strtoull(v, NULL, 10);
	} else if (imap_client_has_cap(c, "APPENDLIMIT")) {
		/* no server-wide value: ask the mailbox (RFC 7889 section 4) */
		if (imap_client_run(base, c, on_status_appendlimit, NULL, s, err, "STATUS INBOX (APPENDLIMIT)") < 0)
			return -1;
	}
	return 0;
}

/* --- inventories ----------------------------------------------------------------------- */

struct size_scan {
	struct check_report *r;
	const struct check_opts *opts;
	struct check_folder *folder;
	uint64_t limit; /* the target's APPENDLIMIT, 0 for none */
	uint32_t exists;
	uint64_t status_messages, status_size;
	bool status_has_size;
};

static void on_examine(void *ctx, const struct imap_response *r)
{
	struct size_scan *sc = ctx;

	if (r->name != NULL && strcmp(r->name, "EXISTS") == 0 && r->has_number)
		sc->exists = r->number;
}

static void on_sizes(void *ctx, const struct imap_response *r)
{
	struct size_scan *sc = ctx;
	uint32_t uid = imap_fetch_uid(r);
	uint64_t size = 0;

	if (imap_arg_number(imap_fetch_attr(r, "RFC822.SIZE"), UINT64_MAX, &size) < 0)
		return;
	sc->folder->messages++;
	sc->folder->bytes += size;
	if (size > sc->folder->largest)
		sc->folder->largest = size;
	if (sc->limit > 0 && size > sc->limit) {
		struct check_report *rep = sc->r;
		if (rep->too_big_listed < sc->opts->list_max) {
			rep->too_big = realloc(rep->too_big, (rep->too_big_listed + 1) * sizeof(*rep->too_big));
			if (rep->too_big == NULL)
				abort();
			rep->too_big[rep->too_big_listed++] =
				(struct check_big_message){strdup(sc->folder->name), (uint32_t)uid, size};
		}
		rep->too_big_count++;
	}
}

static struct check_folder *add_folder(struct check_side *s, const char *raw_name)
{
	struct check_folder *f;

	s->folders = realloc(s->folders, (s->folder_count + 1) * sizeof(*s->folders));
	if (s->folders == NULL)
		abort();
	f = &s->folders[s->folder_count++];
	memset(f, 0, sizeof(*f));
	f->name = mh_folder_display_name(raw_name);
	return f;
}

static void add_totals(struct check_side *s, const struct check_folder *f)
{
	s->messages += f->messages;
	s->bytes += f->bytes;
	if (f->largest > s->largest) {
		s->largest = f->largest;
		free(s->largest_folder);
		s->largest_folder = strdup(f->name);
	}
}

/* Every source folder: messages, bytes and the largest message, from RFC822.SIZE (the
 * sizes are needed one by one to find what exceeds the target's APPENDLIMIT). */
static int source_inventory(struct event_base *base, struct imap_client *c, struct check_report *r,
			    const struct mh_folder_route *routes, size_t n, const struct check_opts *o, struct mh_err *err)
{
	struct check_side *s = &r->src;

	for (size_t i = 0; i < n; i++) {
		struct size_scan sc = {.r = r, .opts = o, .limit = r->dst.appendlimit};
		int rc;

		sc.folder = add_folder(s, routes[i].src->name);
		sc.folder->special = routes[i].special;
		sc.folder->target = routes[i].dst != NULL ? mh_folder_display_name(routes[i].dst) : NULL;
		sc.folder->target_exists = routes[i].dst_exists;
		sc.folder->renamed = routes[i].renamed;
		rc = imap_client_run(base, c, on_examine, NULL, &sc, err, "EXAMINE %s", routes[i].src->name);
		if (rc < 0)
			return -1;
		if (rc > 0 && sc.exists > 0 &&
		    imap_client_run(base, c, on_sizes, NULL, &sc, err, "UID FETCH 1:* (UID RFC822.SIZE)") < 0)
			return -1;
		add_totals(s, sc.folder);
	}
	return 0;
}

static void on_status_counts(void *ctx, const struct imap_response *r)
{
	struct size_scan *sc = ctx;
	const struct imap_arg *list;

	if (r->name == NULL || strcmp(r->name, "STATUS") != 0 || r->count < 2 || r->args[1].type != IMAP_ARG_LIST)
		return;
	list = &r->args[1];
	for (size_t i = 0; i + 1 < list->count; i += 2) {
		if (imap_arg_is(&list->items[i], "MESSAGES"))
			imap_arg_number(&list->items[i + 1], UINT32_MAX, &sc->status_messages);
		else if (imap_arg_is(&list->items[i], "SIZE"))
			sc->status_has_size = imap_arg_number(&list->items[i + 1], UINT64_MAX, &sc->status_size) == 0;
	}
}

/* The target's existing folders and what they hold (STATUS, with SIZE when offered). */
static int target_inventory(struct event_base *base, struct imap_client *c, struct check_report *r,
			    const struct mh_side_folders *dst, struct mh_err *err)
{
	bool size = imap_client_has_cap(c, "STATUS=SIZE");

	for (size_t i = 0; i < dst->count; i++) {
		struct size_scan sc = {.r = r};
		struct check_folder *f;
		int rc;

		if (dst->items[i].noselect)
			continue;
		f = add_folder(&r->dst, dst->items[i].name);
		f->special = dst->items[i].special;
		rc = imap_client_run(base, c, on_status_counts, NULL, &sc, err,
				     size ? "STATUS %s (MESSAGES SIZE)" : "STATUS %s (MESSAGES)", dst->items[i].name);
		if (rc < 0)
			return -1;
		f->messages = sc.status_messages;
		f->bytes = sc.status_size;
		add_totals(&r->dst, f);
	}
	return 0;
}

/* --- judging ---------------------------------------------------------------------------- */

static void judge_connection(struct check_report *r, const struct check_side *s)
{
	enum mh_err_code code = s->error.code;

	if (code == MH_E_OK)
		return;
	if (s->side == MH_SIDE_TARGET && code == MH_E_AUTH_FAILED) {
		/* servers answer an unknown user exactly like a wrong password */
		problem(r, true, MH_E_DEST_MAILBOX_MISSING,
			"destination mailbox not found: create it on the new server first, or check its password",
			"The target login as %s failed: the destination mailbox does not exist or its password is "
			"wrong (%s).",
			s->user, s->error.detail);
		return;
	}
	problem(r, true, code, mh_err_fix(code), "The %s server %s port %u: %s (%s).", side_label(s), s->host, s->port,
		mh_err_text(code), s->error.detail);
}

static void judge_tls(struct check_report *r, const struct check_side *s, const struct mh_job_spec *spec)
{
	if (s->error.code != MH_E_OK)
		return;
	if (!s->tls) {
		problem(r, false, MH_E_STARTTLS_UNAVAILABLE,
			"use imaps:// or a server that offers STARTTLS unless this network is trusted",
			"The %s connection is not encrypted: the password and the mail travel in plain text.",
			side_label(s));
	} else if ((spec->flags & MH_JOB_INSECURE) != 0) {
		problem(r, false, MH_E_TLS_CERT_UNTRUSTED, "drop --insecure and pass the server's CA with --ca-file",
			"The %s server's certificate is not verified (--insecure): anyone on the path could pose as it.",
			side_label(s));
	} else if (s->tls_info.not_after > 0 &&
		   s->tls_info.not_after < (int64_t)time(NULL) + CHECK_CERT_WARN_DAYS * 86400) {
		problem(r, false, MH_E_TLS_CERT_EXPIRED,
			"renew the certificate before the migration runs, or the connections will fail",
			"The %s server's certificate expires within %d days.", side_label(s), CHECK_CERT_WARN_DAYS);
	}
}

static void judge_volume(struct check_report *r)
{
	const struct check_side *src = &r->src, *dst = &r->dst;
	char a[32], b[32], c[32];

	if (dst->has_quota && dst->quota_limit > 0) {
		uint64_t free_bytes = dst->quota_limit > dst->quota_used ? dst->quota_limit - dst->quota_used : 0;
		if (free_bytes < src->bytes) {
			mh_fmt_bytes(a, sizeof(a), free_bytes);
			mh_fmt_bytes(b, sizeof(b), src->bytes);
			mh_fmt_bytes(c, sizeof(c), dst->quota_used + src->bytes);
			char fix[400];
			snprintf(fix, sizeof(fix), "raise the quota of %s on the new server to at least %s, or move less mail",
				 dst->user, c);
			problem(r, true, MH_E_OVER_QUOTA, fix,
				"The target has %s free under its quota, but the source holds %s.", a, b);
		}
	}
	if (dst->has_message_quota && dst->quota_msgs_limit > 0 &&
	    dst->quota_msgs_used + src->messages > dst->quota_msgs_limit)
		problem(r, true, MH_E_OVER_QUOTA, "raise the target's message-count quota, or move fewer messages",
			"The target allows %" PRIu64 " messages and holds %" PRIu64 ", but the source has %" PRIu64 ".",
			dst->quota_msgs_limit, dst->quota_msgs_used, src->messages);
	if (r->too_big_count > 0) {
		mh_fmt_bytes(a, sizeof(a), dst->appendlimit);
		mh_fmt_bytes(b, sizeof(b), src->largest);
		problem(r, false, MH_E_MSG_TOO_BIG,
			"raise the message size limit on the new server, or move those messages by hand (the report lists them)",
			"%zu message%s larger than the target accepts (its limit is %s; the largest is %s in %s).",
			r->too_big_count, r->too_big_count == 1 ? " is" : "s are", a, b,
			src->largest_folder != NULL ? src->largest_folder : "?");
	}
	if (dst->messages > 0)
		problem(r, false, MH_E_OK, "nothing to do if this is expected (e.g. a second run)",
			"The target already holds %" PRIu64 " message%s: those the source also has are skipped, the "
			"rest are added beside them.",
			dst->messages, dst->messages == 1 ? "" : "s");
	if (src->error.code == MH_E_OK && src->messages == 0)
		problem(r, false, MH_E_OK, "check that this is the right source account",
			"The source mailbox holds no messages.");
}

static void judge_folders(struct check_report *r, const struct mh_folder_route *routes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *src = mh_folder_display_name(routes[i].src->name);
		if (routes[i].dst == NULL) {
			problem(r, false, routes[i].error.code, "rename the folder on the source, or move its mail by hand",
				"The folder \"%s\" cannot be created on the target (%s); its messages would not be copied.",
				src, routes[i].error.detail);
		} else if (routes[i].renamed) {
			char *dst = mh_folder_display_name(routes[i].dst);
			problem(r, false, MH_E_FOLDER_NAME, "nothing to do if the new name is acceptable",
				"The folder \"%s\" becomes \"%s\" on the target: its name holds the target's hierarchy "
				"separator.",
				src, dst);
			free(dst);
		}
		for (size_t k = 0; k < i && routes[i].dst != NULL; k++) {
			if (routes[k].dst != NULL && strcmp(routes[k].dst, routes[i].dst) == 0) {
				char *other = mh_folder_display_name(routes[k].src->name);
				char *dst = mh_folder_display_name(routes[i].dst);
				problem(r, false, MH_E_FOLDER_NAME,
					"nothing to do if merging them is acceptable; else rename one on the source",
					"The folders \"%s\" and \"%s\" both go to \"%s\" on the target.", other, src, dst);
				free(other);
				free(dst);
				break;
			}
		}
		free(src);
	}
}

static void decide(struct check_report *r, uint64_t rate_bytes, unsigned rate_msgs)
{
	r->verdict = CHECK_VERDICT_OK;
	for (size_t i = 0; i < r->problem_count; i++) {
		if (r->problems[i].blocking)
			r->verdict = CHECK_VERDICT_BLOCKED;
		else if (r->verdict == CHECK_VERDICT_OK)
			r->verdict = CHECK_VERDICT_WARNINGS;
	}
	/* rough: the target's cost per message plus the bytes at a modest rate */
	r->estimate_s = r->src.bytes / rate_bytes + r->src.messages / rate_msgs;
}

/* --- the run ---------------------------------------------------------------------------- */

struct pop3_stat_wait {
	bool done, ok;
	uint32_t count;
	uint64_t octets;
	struct mh_err err;
};

static void on_pop3_stat(void *ctx, uint32_t count, uint64_t octets, const struct mh_err *err)
{
	struct pop3_stat_wait *w = ctx;

	w->done = true;
	w->ok = err == NULL;
	w->count = count;
	w->octets = octets;
	if (err != NULL)
		w->err = *err;
}

/* A POP3 source: one folder ("POP3 INBOX") going to the job's pop3_folder; STAT gives
 * the count and volume, LIST every size (the largest, and what exceeds APPENDLIMIT);
 * UIDL support decides how duplicates are recognised. */
static int pop3_source_inventory(struct event_base *base, struct pop3_client *c, const struct mh_job_spec *spec,
				 const struct mh_side_folders *dst_folders, struct check_report *r,
				 const struct check_opts *o, struct mh_err *err)
{
	struct check_side *s = &r->src;
	const char *target = spec->pop3_folder != NULL ? spec->pop3_folder : "INBOX";
	struct pop3_stat_wait w = {0};
	struct mh_pop3_msg *msgs = NULL;
	struct check_folder *f;
	const char *const *caps;
	size_t n = 0;
	bool uidl;

	if (pop3_client_stat(c, on_pop3_stat, &w, err) < 0)
		return -1;
	if (imap_run_until(base, &w.done) < 0 && !w.done)
		return mh_err_set(err, MH_E_INTERNAL, "event loop ended during STAT");
	if (!w.ok) {
		*err = w.err;
		return -1;
	}
	if (mh_pop3_inventory(base, c, false, &msgs, &n, &uidl, err) < 0)
		return -1;
	s->folders = calloc(1, sizeof(*s->folders));
	if (s->folders == NULL)
		abort();
	s->folder_count = 1;
	f = &s->folders[0];
	f->name = strdup(MH_POP3_FOLDER_DISPLAY);
	f->target = strdup(target);
	{
		char *raw = NULL;
		struct mh_err e;
		f->target_exists = imap_utf8_to_utf7(target, strlen(target), &raw, &e) == 0 &&
				   mh_side_folders_find(dst_folders, raw) != NULL;
		free(raw);
	}
	f->messages = w.count;
	f->bytes = w.octets;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].size > f->largest)
			f->largest = msgs[i].size;
		if (r->dst.appendlimit > 0 && msgs[i].size > r->dst.appendlimit) {
			if (r->too_big_listed < o->list_max) {
				r->too_big = realloc(r->too_big, (r->too_big_listed + 1) * sizeof(*r->too_big));
				if (r->too_big == NULL)
					abort();
				/* POP3 has no UIDs: the message number of this session */
				r->too_big[r->too_big_listed++] =
					(struct check_big_message){strdup(f->name), msgs[i].msgno, msgs[i].size};
			}
			r->too_big_count++;
		}
	}
	free(msgs);
	add_totals(s, f);
	if (!pop3_client_has_cap(c, "UIDL") && pop3_client_caps(c, &caps) > 0)
		problem(r, false, MH_E_SERVER_CAPABILITY,
			"nothing to do for a single run; for repeated runs, ask the provider to enable UIDL",
			"The POP3 server does not offer UIDL: messages are recognised by their size and headers, so an "
			"edited or duplicated message may be copied again or skipped on a later run.");
	return 0;
}

static void side_init(struct check_side *s, enum mh_side side, const struct mh_wire_endpoint *ep)
{
	memset(s, 0, sizeof(*s));
	s->side = side;
	snprintf(s->host, sizeof(s->host), "%s", ep->host);
	snprintf(s->user, sizeof(s->user), "%s", ep->user);
	s->port = ep->port;
	s->security = ep->security;
	mh_err_clear(&s->error);
}

int check_run(struct event_base *base, const struct mh_job_spec *spec, const struct mh_seal_key *key,
	      const struct check_opts *opts, struct check_report *r, struct mh_err *err)
{
	struct check_opts o = *opts;
	struct mh_conn src = {0}, dst = {0};
	struct mh_side_folders src_folders = {0}, dst_folders = {0};
	struct mh_folder_route *routes = NULL;
	size_t nroutes = 0;
	bool src_up = false, dst_up = false, pop3_up = false;

	(void)err;
	if (o.connect_timeout_ms == 0)
		o.connect_timeout_ms = 15000;
	if (o.command_timeout_ms == 0)
		o.command_timeout_ms = 60000;
	if (o.rate_bytes_per_s == 0)
		o.rate_bytes_per_s = 8u * 1024 * 1024;
	if (o.rate_msgs_per_s == 0)
		o.rate_msgs_per_s = 100;
	if (o.list_max == 0)
		o.list_max = 50;
	memset(r, 0, sizeof(*r));
	r->started_ms = mh_now_ms();
	side_init(&r->src, MH_SIDE_SOURCE, &spec->src);
	side_init(&r->dst, MH_SIDE_TARGET, &spec->dst);

	for (int i = 0; i < 2; i++) {
		struct check_side *s = i == 0 ? &r->src : &r->dst;
		struct mh_conn *c = i == 0 ? &src : &dst;
		check_dns(s);
		if (s->steps[CHECK_DNS] == CHECK_FAIL)
			continue;
		if (open_side(base, spec, key, &o, s, c) == 0)
			*(i == 0 ? &src_up : &dst_up) = true;
	}
	if (src_up && spec->src.proto == MH_PROTO_POP3) {
		pop3_up = true;
		src_up = false; /* no IMAP folders to read: the POP3 inventory runs below */
	}
	if (src_up && mh_side_folders_read(base, src.imap, &src_folders, &r->src.error) < 0) {
		step_set(&r->src, CHECK_FOLDERS, CHECK_FAIL, "LIST: %s", r->src.error.detail);
		src_up = false;
	}
	if (dst_up && (mh_side_folders_read(base, dst.imap, &dst_folders, &r->dst.error) < 0 ||
		       read_target_limits(base, dst.imap, &r->dst, &r->dst.error) < 0 ||
		       target_inventory(base, dst.imap, r, &dst_folders, &r->dst.error) < 0)) {
		step_set(&r->dst, CHECK_FOLDERS, CHECK_FAIL, "%s", r->dst.error.detail);
		dst_up = false;
	} else if (dst_up) {
		step_set(&r->dst, CHECK_FOLDERS, CHECK_OK, "%zu folder%s, %" PRIu64 " message%s", r->dst.folder_count,
			 r->dst.folder_count == 1 ? "" : "s", r->dst.messages, r->dst.messages == 1 ? "" : "s");
	}
	if (src_up) {
		mh_folder_routes(&src_folders, &dst_folders, &routes, &nroutes);
		if (source_inventory(base, src.imap, r, routes, nroutes, &o, &r->src.error) < 0) {
			step_set(&r->src, CHECK_FOLDERS, CHECK_FAIL, "%s", r->src.error.detail);
		} else {
			step_set(&r->src, CHECK_FOLDERS, CHECK_OK, "%zu folder%s, %" PRIu64 " message%s",
				 r->src.folder_count, r->src.folder_count == 1 ? "" : "s", r->src.messages,
				 r->src.messages == 1 ? "" : "s");
			mh_err_clear(&r->src.error);
		}
	}

	if (pop3_up) {
		if (pop3_source_inventory(base, src.pop3, spec, &dst_folders, r, &o, &r->src.error) < 0) {
			step_set(&r->src, CHECK_FOLDERS, CHECK_FAIL, "%s", r->src.error.detail);
			pop3_up = false;
		} else {
			step_set(&r->src, CHECK_FOLDERS, CHECK_OK, "POP3 maildrop: %" PRIu64 " message%s",
				 r->src.messages, r->src.messages == 1 ? "" : "s");
			mh_err_clear(&r->src.error);
			src_up = true;
		}
	}
	judge_connection(r, &r->src);
	judge_connection(r, &r->dst);
	judge_tls(r, &r->src, spec);
	judge_tls(r, &r->dst, spec);
	if (src_up && dst_up) {
		judge_volume(r);
		judge_folders(r, routes, nroutes);
	}
	decide(r, o.rate_bytes_per_s, o.rate_msgs_per_s);
	r->ended_ms = mh_now_ms();

	mh_folder_routes_free(routes, nroutes);
	mh_side_folders_cleanup(&src_folders);
	mh_side_folders_cleanup(&dst_folders);
	mh_conn_close(&src);
	mh_conn_close(&dst);
	return 0;
}

const struct check_problem *check_first_blocking(const struct check_report *r)
{
	for (size_t i = 0; i < r->problem_count; i++)
		if (r->problems[i].blocking)
			return &r->problems[i];
	return NULL;
}

static void side_cleanup(struct check_side *s)
{
	for (size_t i = 0; i < s->folder_count; i++) {
		free(s->folders[i].name);
		free(s->folders[i].target);
	}
	free(s->folders);
	free(s->capabilities);
	free(s->largest_folder);
}

void check_report_cleanup(struct check_report *r)
{
	side_cleanup(&r->src);
	side_cleanup(&r->dst);
	for (size_t i = 0; i < r->too_big_listed; i++)
		free(r->too_big[i].folder);
	free(r->too_big);
	free(r->problems);
	memset(r, 0, sizeof(*r));
}
