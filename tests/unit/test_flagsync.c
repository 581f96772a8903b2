/* test_flagsync.c - a sync's flag and deletion pass (coordinator/flagsync.c) against
 * scripted source and target servers and a real Redis: a conditional STORE the target
 * refuses for a copy changed meanwhile ([MODIFIED]) leaves it alone and is counted; a flag
 * atom no STORE may carry is never sent on; UIDs a server adds beyond the range asked for
 * are ignored; exactly the copy of a message deleted on the source is expunged, by UID;
 * a recreated target folder (another UIDVALIDITY) is left alone with nothing sent; the
 * source only ever gets EXAMINE, FETCH and SEARCH. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_fixture.h"
#include "flagsync.h"
#include "imap_client.h"
#include "jobstore.h"
#include "redis_fixture.h"
#include "rq.h"
#include "syncstore.h"

#define JOB "j-flagsync"

/* A scripted server: a reply per command (matched whole, after the tag); "%s" in a reply
 * stands for the tag. What the client sent is kept, to assert on. */
struct reply {
	const char *cmd, *text;
};

struct script {
	const struct reply *replies;
	char *got[64];
	size_t ngot;
};

static void play(struct fake_server *srv, const char *line)
{
	struct script *s = srv->ctx;
	const char *sp = strchr(line, ' ');
	char tag[32], out[1024];

	if (sp == NULL || (size_t)(sp - line) >= sizeof(tag))
		return;
	memcpy(tag, line, (size_t)(sp - line));
	tag[sp - line] = '\0';
	if (s->ngot < 64)
		s->got[s->ngot++] = strdup(sp + 1);
	for (const struct reply *r = s->replies; r->cmd != NULL; r++) {
		if (strcmp(r->cmd, sp + 1) == 0) {
			snprintf(out, sizeof(out), r->text, tag);
			fake_server_send(srv, out);
			return;
		}
	}
	snprintf(out, sizeof(out), "%s BAD not in the script\r\n", tag);
	fake_server_send(srv, out);
}

static bool sent(const struct script *s, const char *prefix)
{
	for (size_t i = 0; i < s->ngot; i++)
		if (strncmp(s->got[i], prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

static void script_free(struct script *s)
{
	for (size_t i = 0; i < s->ngot; i++)
		free(s->got[i]);
}

static const char greeting[] = "* PREAUTH [CAPABILITY IMAP4rev1 CONDSTORE UIDPLUS ESEARCH UNSELECT] ready\r\n";

static void opened(void *ctx, const struct imap_response *tagged, const struct mh_err *err)
{
	(void)tagged;
	assert_null(err);
	*(bool *)ctx = true;
}

static struct imap_client *connect_to(struct fake_server *srv, struct script *s, const struct reply *replies)
{
	struct imap_client_opts o;
	struct imap_client *c;
	bool done = false;

	memset(s, 0, sizeof(*s));
	s->replies = replies;
	fake_server_start(srv, greeting, play, s);
	memset(&o, 0, sizeof(o));
	o.name = "fake";
	o.host = "127.0.0.1";
	o.port = srv->port;
	o.security = MH_SEC_PLAIN;
	o.user = "u";
	o.password = "p";
	o.command_timeout_ms = 5000;
	o.trace = on_trace;
	o.trace_ctx = &fx->tr;
	c = imap_client_new(fx->base, &o);
	assert_non_null(c);
	imap_client_open(c, opened, &done);
	fx_run(&done);
	return c;
}

/* A job whose source UIDs 1 and 2 were copied to target UIDs 101 and 102, and 3 found
 * there as 103; the folder was last read at MODSEQ 40 with UIDs 1:3. */
static struct rq *job_in_redis(void **state)
{
	struct redis_fixture *f = redis_fixture_need(state);
	struct mh_err err;
	struct rq *q = rq_connect(f->url, 5000, &err);

	assert_non_null(q);
	rq_reply_free(rq_command(q, &err, "FLUSHALL"));
	rq_reply_free(rq_command(q, &err, "HSET mh:job:" JOB " state done"));
	rq_reply_free(rq_command(q, &err, "HSET mh:job:" JOB ":done 0:1 c101 0:2 c102 0:3 s103"));
	return q;
}

static const struct mh_folder_sync known = {.modseq = 40, .opts = MH_SYNC_FLAGS | MH_SYNC_DELETES, .messages = 3,
					    .uids = "1:3"};

static const struct reply source_replies[] = {
	{"EXAMINE INBOX (CONDSTORE)",
	 "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [HIGHESTMODSEQ 50] x\r\n%s OK [READ-ONLY] done\r\n"},
	/* 1 and 3 changed; a hostile flag on 3; an unasked-for UID 99 */
	{"UID FETCH 1:3 (UID FLAGS) (CHANGEDSINCE 40)",
	 "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (45))\r\n"
	 "* 2 FETCH (UID 3 FLAGS ($Work Bad*Flag) MODSEQ (46))\r\n"
	 "* 9 FETCH (UID 99 FLAGS (\\Seen))\r\n%s OK done\r\n"},
	/* 2 is gone (expunged); 98 was never asked for */
	{"UID SEARCH RETURN (ALL) UID 1:3 UNDELETED", "* ESEARCH (TAG \"A0\") UID ALL 1,3,98\r\n%s OK done\r\n"},
	{NULL, NULL},
};

/* One pass over INBOX of the job job_in_redis() makes, against the source script above and
 * the given target script. */
struct pass {
	struct fake_server src_srv, dst_srv;
	struct script src_s, dst_s;
	struct imap_client *src, *dst;
	struct rq *q;
	struct flagsync_outcome out;
};

static void pass_run(void **state, struct pass *p, const struct reply *target_replies)
{
	struct flagsync_folder f = {0, "INBOX", "INBOX", 7, 9, 4, &known};
	struct mh_err err;

	memset(p, 0, sizeof(*p));
	p->q = job_in_redis(state);
	p->src = connect_to(&p->src_srv, &p->src_s, source_replies);
	p->dst = connect_to(&p->dst_srv, &p->dst_s, target_replies);
	assert_int_equal(
		flagsync_folder(fx->base, p->src, p->dst, p->q, JOB, MH_SYNC_FLAGS | MH_SYNC_DELETES, &f, &p->out, &err), 0);
}

static void pass_cleanup(struct pass *p)
{
	flagsync_outcome_cleanup(&p->out);
	imap_client_free(&p->src);
	imap_client_free(&p->dst);
	fake_server_stop(&p->src_srv);
	fake_server_stop(&p->dst_srv);
	script_free(&p->src_s);
	script_free(&p->dst_s);
	rq_free(&p->q);
}

static void test_conflict_hostile_flag_and_deletion(void **state)
{
	static const struct reply target_replies[] = {
		{"SELECT INBOX (CONDSTORE)", "* OK [UIDVALIDITY 9] x\r\n* OK [HIGHESTMODSEQ 500] x\r\n%s OK done\r\n"},
		{"UID FETCH 101,103 (UID FLAGS)", "* 1 FETCH (UID 101 FLAGS ())\r\n* 3 FETCH (UID 103 FLAGS ())\r\n%s OK x\r\n"},
		/* someone changed 101 on the target after we looked */
		{"UID STORE 101 (UNCHANGEDSINCE 500) FLAGS.SILENT (\\Seen)", "%s OK [MODIFIED 101] Conditional STORE failed\r\n"},
		{"UID STORE 102 +FLAGS.SILENT (\\Deleted)", "%s OK done\r\n"},
		{"UID EXPUNGE 102", "* 2 EXPUNGE\r\n%s OK done\r\n"},
		{"UNSELECT", "%s OK done\r\n"},
		{NULL, NULL},
	};
	struct pass p;
	struct mh_err err;
	const uint32_t uids[] = {1, 2, 3};
	uint32_t dst_uids[3];
	struct mh_folder_sync stored;

	pass_run(state, &p, target_replies);
	assert_null(p.out.left_alone);
	assert_int_equal(p.out.conflicts, 1);     /* 101: kept as the target has it */
	assert_int_equal(p.out.flags_updated, 0); /* 103's flags cannot be sent */
	assert_int_equal(p.out.deleted, 1);       /* 102, by UID */
	assert_int_equal(p.out.unmapped, 0);
	assert_int_equal(p.out.now.modseq, 50);
	assert_string_equal(p.out.now.uids, "1,3"); /* 98 was not asked for */
	assert_false(sent(&p.dst_s, "UID STORE 103"));
	assert_false(sent(&p.dst_s, "EXPUNGE"));
	assert_false(sent(&p.dst_s, "CLOSE"));
	for (size_t i = 0; i < p.src_s.ngot; i++)
		assert_true(strncmp(p.src_s.got[i], "EXAMINE ", 8) == 0 || strncmp(p.src_s.got[i], "UID FETCH ", 10) == 0 ||
			    strncmp(p.src_s.got[i], "UID SEARCH ", 11) == 0);
	/* 102's copy is forgotten and counted; the others keep theirs */
	assert_int_equal(mh_job_target_uids(p.q, JOB, 0, uids, 3, dst_uids, &err), 0);
	assert_true(dst_uids[0] == 101 && dst_uids[1] == 0 && dst_uids[2] == 103);
	/* recording is the planner's: nothing was stored for the folder */
	assert_int_equal(mh_job_folder_sync_load(p.q, JOB, 0, &stored, &err), 0);
	assert_null(stored.uids);

	pass_cleanup(&p);
}

static void test_recreated_target_folder_is_left_alone(void **state)
{
	static const struct reply target_replies[] = {
		{"SELECT INBOX (CONDSTORE)", "* OK [UIDVALIDITY 10] x\r\n* OK [HIGHESTMODSEQ 3] x\r\n%s OK done\r\n"},
		{"UNSELECT", "%s OK done\r\n"},
		{NULL, NULL},
	};
	struct pass p;
	struct mh_err err;
	const uint32_t uids[] = {2};
	uint32_t dst_uid;

	pass_run(state, &p, target_replies);
	assert_non_null(p.out.left_alone);
	assert_non_null(strstr(p.out.left_alone, "UIDVALIDITY"));
	assert_true(p.out.flags_updated == 0 && p.out.deleted == 0);
	assert_null(p.out.now.uids); /* nothing to record: the next run tries again */
	assert_false(sent(&p.dst_s, "UID STORE"));
	assert_false(sent(&p.dst_s, "UID EXPUNGE"));
	assert_int_equal(mh_job_target_uids(p.q, JOB, 0, uids, 1, &dst_uid, &err), 0);
	assert_int_equal(dst_uid, 102); /* still known */

	pass_cleanup(&p);
}

static int group_setup(void **state)
{
	return redis_fixture_group_start(state, "flagsync");
}

static int group_teardown(void **state)
{
	return redis_fixture_group_stop(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		FX_TEST(test_conflict_hostile_flag_and_deletion),
		FX_TEST(test_recreated_target_folder_is_left_alone),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
