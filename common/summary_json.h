/* summary_json.h - a job's summary (jobstore.h) as one JSON object: what `mailhaul migrate
 * --json`, `mailhaul summary --json` and the coordinator's HTTP API give (keys in README,
 * "--json keys"). */
#ifndef MH_SUMMARY_JSON_H
#define MH_SUMMARY_JSON_H

#include <stdint.h>
#include <stdio.h>

#include "jobstore.h"

/* The object, without a line end. */
void mh_summary_json(FILE *out, const struct mh_job_summary *s);
/* A job's runs (mh_job_history) as a JSON array, without a line end. */
void mh_history_json(FILE *out, const struct mh_run *runs, size_t n);
/* From its start (or creation) to its end, or now while it runs. */
double mh_job_summary_duration_s(const struct mh_job_summary *s);
/* The source name of folder idx, "?" when unknown. */
const char *mh_job_summary_folder(const struct mh_job_summary *s, uint32_t idx);

#endif
