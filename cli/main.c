/* main.c - the mailhaul command: dispatches to subcommands. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "seal.h"

#ifndef MAILHAUL_VERSION
#define MAILHAUL_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
	fputs("usage: mailhaul COMMAND [options]\n"
	      "\n"
	      "commands:\n"
	      "  check --from URL --to URL     health check of both servers before a migration (mailhaul check --help)\n"
	      "  migrate --from URL --to URL   copy one mailbox, server to server (see: mailhaul migrate --help)\n"
	      "  submit FILE.csv               one job per row of a bulk file (see: mailhaul submit --help)\n"
	      "  status [JOB...] [--json]      jobs in the cluster: state, progress, rate, ETA\n"
	      "  summary JOB... [--json]       a job's summary, as migrate prints it: totals, folders (source\n"
	      "                                vs target), health check problems, failures by cause and fix\n"
	      "  sync JOB [--json]             copy what is new on the source since the job's last run\n"
	      "                                (passwords as for requeue)\n"
	      "  autosync JOB --every 3h|--off sync the job on a schedule (keeps its sealed passwords), or stop\n"
	      "  history JOB [--json]          the job's runs (migration, syncs): start, end, what each copied\n"
	      "  pause|resume|cancel JOB...    hold a job's batches back, release them, or stop the job\n"
	      "  failures JOB [--csv]          the job's failed messages with the reason and the fix\n"
	      "  requeue JOB [--folder NAME] [--batch ID] [--error CODE]\n"
	      "                                copy the selected failed messages again\n"
	      "  records [--json]              transfer records: hosts, users, protocol, times, counts, errors\n"
	      "  forget JOB...|--user ADDRESS  delete jobs' records and every other trace of them in Redis\n"
	      "  keygen FILE                   create a credential seal key for a cluster (mode 0600)\n"
	      "  errors [CODE] [--json]        explain error codes: class, what happened, the fix\n"
	      "\n"
	      "cluster commands take --redis URL (default $MAILHAUL_REDIS, else redis://127.0.0.1:6379)\n"
	      "  version                       print the version\n",
	      out);
}

int cmd_keygen(int argc, char **argv)
{
	struct mh_err err;

	if (argc != 2) {
		fputs("usage: mailhaul keygen FILE\n", stderr);
		return MH_EXIT_USAGE;
	}
	if (mh_seal_key_generate_file(argv[1], &err) < 0) {
		fprintf(stderr, "mailhaul keygen: %s\n", err.detail);
		return MH_EXIT_FAILED;
	}
	printf("wrote %s: give the same file to every coordinator and worker (MAILHAUL_SEAL_KEY_FILE)\n", argv[1]);
	return MH_EXIT_OK;
}

int main(int argc, char **argv)
{
	/* a server hanging up must be an error reply, not a dead process */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return MH_EXIT_USAGE;
	}
	if (strcmp(argv[1], "migrate") == 0)
		return cmd_migrate(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0 || strcmp(argv[1], "summary") == 0 || strcmp(argv[1], "sync") == 0 || strcmp(argv[1], "autosync") == 0 || strcmp(argv[1], "history") == 0 || strcmp(argv[1], "pause") == 0 || strcmp(argv[1], "resume") == 0 ||
	    strcmp(argv[1], "cancel") == 0 || strcmp(argv[1], "failures") == 0 || strcmp(argv[1], "requeue") == 0)
		return cmd_jobs(argv[1], argc - 1, argv + 1);
	if (strcmp(argv[1], "records") == 0 || strcmp(argv[1], "forget") == 0)
		return cmd_records(argv[1], argc - 1, argv + 1);
	if (strcmp(argv[1], "submit") == 0)
		return cmd_submit(argc - 1, argv + 1);
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "errors") == 0)
		return cmd_errors(argc - 1, argv + 1);
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("mailhaul %s\n", MAILHAUL_VERSION);
		return MH_EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return MH_EXIT_OK;
	}
	fprintf(stderr, "mailhaul: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return MH_EXIT_USAGE;
}
