/* check_render.c - the health check report for people and for programs (see check.h). */
#include <inttypes.h>
#include <string.h>

#include "check.h"
#include "folder_map.h"
#include "textfmt.h"

static const char *security_name(enum mh_security s)
{
	return s == MH_SEC_TLS ? "TLS" : s == MH_SEC_STARTTLS ? "STARTTLS" : "plain";
}

/* The lowest special use of a folder as its attribute ("\\Sent"), or NULL. */
static const char *special_attr(unsigned special)
{
	static const char *const names[] = {"\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged"};

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (special & (1u << i))
			return names[i];
	return NULL;
}

/* --- text --------------------------------------------------------------------------------- */

static void text_side(FILE *out, const struct check_side *s)
{
	char b1[32], b2[32];

	fprintf(out, "%s: %s@%s port %u (%s)\n", s->side == MH_SIDE_SOURCE ? "Source" : "Target", s->user, s->host,
		s->port, security_name(s->security));
	for (int st = 0; st < CHECK_STEPS; st++) {
		if (s->steps[st] == CHECK_SKIPPED)
			continue;
		fprintf(out, "  %-8s %-9s %s\n", check_status_name(s->steps[st]), check_step_name(st), s->step_detail[st]);
	}
	if (s->steps[CHECK_FOLDERS] != CHECK_OK)
		return;
	mh_fmt_bytes(b1, sizeof(b1), s->bytes);
	fprintf(out, "  holds %" PRIu64 " message%s, %s, in %zu folder%s", s->messages, s->messages == 1 ? "" : "s", b1,
		s->folder_count, s->folder_count == 1 ? "" : "s");
	if (s->largest > 0) {
		mh_fmt_bytes(b2, sizeof(b2), s->largest);
		fprintf(out, "; largest message %s in %s", b2, s->largest_folder);
	}
	fputc('\n', out);
	if (s->side != MH_SIDE_TARGET)
		return;
	if (s->has_quota) {
		mh_fmt_bytes(b1, sizeof(b1), s->quota_used);
		mh_fmt_bytes(b2, sizeof(b2), s->quota_limit);
		fprintf(out, "  quota: %s used of %s\n", b1, b2);
	} else {
		fprintf(out, "  quota: none announced\n");
	}
	if (s->has_message_quota)
		fprintf(out, "  message quota: %" PRIu64 " of %" PRIu64 "\n", s->quota_msgs_used, s->quota_msgs_limit);
	if (s->appendlimit > 0) {
		mh_fmt_bytes(b1, sizeof(b1), s->appendlimit);
		fprintf(out, "  largest message accepted: %s (APPENDLIMIT)\n", b1);
	}
	for (size_t i = 0; i < s->folder_count; i++)
		if (s->folders[i].messages > 0)
			fprintf(out, "  already holds %" PRIu64 " message%s in %s\n", s->folders[i].messages,
				s->folders[i].messages == 1 ? "" : "s", s->folders[i].name);
}

static void text_mapping(FILE *out, const struct check_side *src)
{
	char b[32];

	fprintf(out, "Folder mapping (source -> target):\n");
	for (size_t i = 0; i < src->folder_count; i++) {
		const struct check_folder *f = &src->folders[i];
		const char *su = special_attr(f->special);
		mh_fmt_bytes(b, sizeof(b), f->bytes);
		fprintf(out, "  %s%s%s%s -> %s%s  (%" PRIu64 " message%s, %s)\n", f->name, su ? " (" : "", su ? su : "",
			su ? ")" : "", f->target != NULL ? f->target : "(cannot be created)",
			f->target == NULL ? "" : f->target_exists ? " (exists)" : " (new)", f->messages,
			f->messages == 1 ? "" : "s", b);
	}
}

void check_render_text(FILE *out, const struct check_report *r)
{
	size_t blocking = 0, warnings = 0;
	char b1[32], b2[32];

	fprintf(out, "Health check\n\n");
	text_side(out, &r->src);
	fputc('\n', out);
	text_side(out, &r->dst);
	/* the mapping depends on the target's folders: only once they are known */
	if (r->src.folder_count > 0 && r->dst.steps[CHECK_FOLDERS] == CHECK_OK) {
		fputc('\n', out);
		text_mapping(out, &r->src);
	}
	if (r->too_big_count > 0) {
		mh_fmt_bytes(b1, sizeof(b1), r->dst.appendlimit);
		fprintf(out, "\nToo large for the target (limit %s): %zu messages\n", b1, r->too_big_count);
		for (size_t i = 0; i < r->too_big_listed; i++) {
			mh_fmt_bytes(b2, sizeof(b2), r->too_big[i].size);
			fprintf(out, "  %s, UID %" PRIu32 ", %s\n", r->too_big[i].folder, r->too_big[i].uid, b2);
		}
		if (r->too_big_listed < r->too_big_count)
			fprintf(out, "  ... and %zu more\n", r->too_big_count - r->too_big_listed);
	}
	if (r->problem_count > 0) {
		fprintf(out, "\nProblems:\n");
		for (size_t i = 0; i < r->problem_count; i++) {
			const struct check_problem *p = &r->problems[i];
			blocking += p->blocking;
			warnings += !p->blocking;
			fprintf(out, "  %s%s%s %s\n", p->blocking ? "BLOCKING" : "warning", p->code != MH_E_OK ? " " : "",
				p->code != MH_E_OK ? mh_err_name(p->code) : "", p->cause);
			fprintf(out, "      fix: %s\n", p->fix);
		}
	}
	if (r->src.steps[CHECK_FOLDERS] == CHECK_OK) {
		char d[32];
		mh_fmt_duration(d, sizeof(d), (double)r->estimate_s);
		mh_fmt_bytes(b1, sizeof(b1), r->src.bytes);
		fprintf(out, "\nEstimate: %s%s to copy %" PRIu64 " message%s (%s)\n", r->estimate_s < 60 ? "under a minute" : "about ",
			r->estimate_s < 60 ? "" : d, r->src.messages, r->src.messages == 1 ? "" : "s", b1);
	}
	fprintf(out, "\nVerdict: %s", r->verdict == CHECK_VERDICT_OK ? "OK, the migration can proceed"
					  : r->verdict == CHECK_VERDICT_WARNINGS
						  ? "the migration can proceed; read the warnings"
						  : "the migration cannot proceed until the blocking problems are fixed");
	if (blocking + warnings > 0)
		fprintf(out, " (%zu blocking, %zu warning%s)", blocking, warnings, warnings == 1 ? "" : "s");
	fputc('\n', out);
}

/* --- JSON --------------------------------------------------------------------------------- */

static void json_folders(FILE *out, const struct check_side *s)
{
	fputs("[", out);
	for (size_t i = 0; i < s->folder_count; i++) {
		const struct check_folder *f = &s->folders[i];
		fputs(i ? ",{\"name\":" : "{\"name\":", out);
		mh_json_str(out, f->name);
		fputs(",\"special_use\":", out);
		mh_json_str(out, special_attr(f->special));
		fprintf(out, ",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64, f->messages, f->bytes);
		if (s->side == MH_SIDE_SOURCE) {
			fprintf(out, ",\"largest\":%" PRIu64 ",\"target\":", f->largest);
			mh_json_str(out, f->target);
			fprintf(out, ",\"target_exists\":%s,\"renamed\":%s", f->target_exists ? "true" : "false",
				f->renamed ? "true" : "false");
		}
		fputc('}', out);
	}
	fputs("]", out);
}

static void json_side(FILE *out, const struct check_side *s)
{
	fputs("{\"host\":", out);
	mh_json_str(out, s->host);
	fprintf(out, ",\"port\":%u,\"user\":", s->port);
	mh_json_str(out, s->user);
	fputs(",\"security\":", out);
	mh_json_str(out, security_name(s->security));
	fputs(",\"steps\":{", out);
	for (int st = 0; st < CHECK_STEPS; st++) {
		fprintf(out, "%s\"%s\":{\"status\":\"%s\",\"detail\":", st ? "," : "", check_step_name(st),
			check_status_name(s->steps[st]));
		mh_json_str(out, s->step_detail[st]);
		fputc('}', out);
	}
	fputs("},\"error\":", out);
	mh_json_str(out, s->error.code != MH_E_OK ? mh_err_name(s->error.code) : NULL);
	if (s->tls) {
		fputs(",\"tls\":{\"protocol\":", out);
		mh_json_str(out, s->tls_info.protocol);
		fputs(",\"cipher\":", out);
		mh_json_str(out, s->tls_info.cipher);
		fputs(",\"certificate\":", out);
		mh_json_str(out, s->tls_info.subject);
		fputs(",\"issuer\":", out);
		mh_json_str(out, s->tls_info.issuer);
		fprintf(out, ",\"not_after\":%" PRId64 ",\"verified\":%s}", s->tls_info.not_after,
			s->tls_info.verified ? "true" : "false");
	}
	fputs(",\"capabilities\":", out);
	mh_json_str(out, s->capabilities);
	fprintf(out, ",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"largest\":%" PRIu64 ",\"largest_folder\":",
		s->messages, s->bytes, s->largest);
	mh_json_str(out, s->largest_folder);
	if (s->side == MH_SIDE_TARGET) {
		if (s->has_quota)
			fprintf(out, ",\"quota\":{\"used\":%" PRIu64 ",\"limit\":%" PRIu64 "}", s->quota_used, s->quota_limit);
		else
			fputs(",\"quota\":null", out);
		if (s->has_message_quota)
			fprintf(out, ",\"message_quota\":{\"used\":%" PRIu64 ",\"limit\":%" PRIu64 "}", s->quota_msgs_used,
				s->quota_msgs_limit);
		fprintf(out, ",\"appendlimit\":%" PRIu64, s->appendlimit);
	}
	fputs(",\"folders\":", out);
	json_folders(out, s);
	fputc('}', out);
}

void check_render_json(FILE *out, const struct check_report *r)
{
	fprintf(out, "{\"verdict\":\"%s\",\"source\":", check_verdict_name(r->verdict));
	json_side(out, &r->src);
	fputs(",\"target\":", out);
	json_side(out, &r->dst);
	fprintf(out, ",\"too_big\":{\"count\":%zu,\"limit\":%" PRIu64 ",\"messages\":[", r->too_big_count,
		r->dst.appendlimit);
	for (size_t i = 0; i < r->too_big_listed; i++) {
		fputs(i ? ",{\"folder\":" : "{\"folder\":", out);
		mh_json_str(out, r->too_big[i].folder);
		fprintf(out, ",\"uid\":%" PRIu32 ",\"size\":%" PRIu64 "}", r->too_big[i].uid, r->too_big[i].size);
	}
	fputs("]},\"problems\":[", out);
	for (size_t i = 0; i < r->problem_count; i++) {
		const struct check_problem *p = &r->problems[i];
		fprintf(out, "%s{\"severity\":\"%s\",\"code\":", i ? "," : "", p->blocking ? "blocking" : "warning");
		mh_json_str(out, p->code != MH_E_OK ? mh_err_name(p->code) : NULL);
		fputs(",\"cause\":", out);
		mh_json_str(out, p->cause);
		fputs(",\"fix\":", out);
		mh_json_str(out, p->fix);
		fputc('}', out);
	}
	fprintf(out, "],\"estimate_s\":%" PRIu64 ",\"duration_ms\":%" PRIu64 "}\n", r->estimate_s,
		r->ended_ms - r->started_ms);
}
