/* metrics.h - the cluster's numbers for Prometheus (GET /metrics): jobs by state, the
 * messages and bytes of every job Redis holds by result, queue lengths, live copy threads
 * and planner pools. Gauges only: a job forgotten after its retention leaves the sums, so
 * a counter would go backwards. One scrape reads every job hash once, in one script. */
#ifndef MH_METRICS_H
#define MH_METRICS_H

#include <stdio.h>

#include "err.h"

struct rq;

/* Writes the exposition text. 0, or -1 (err set) when Redis failed. */
int metrics_write(struct rq *q, FILE *out, struct mh_err *err);

#endif
