/* finish.h - ends a job once every planned message has a result. */
#ifndef MH_FINISH_H
#define MH_FINISH_H

struct rq;

/* A complete running job is first verified (a planner counts its target folders, see
 * verify.h; this asks for it), then, called again once that is done, it becomes done
 * (partial when some messages failed) and its sealed passwords are deleted; anything else
 * is left alone. Safe to call by several processes at
 * once (mh_job_finish is atomic: one of them finishes it). Errors are logged: a job
 * missed here is finished by the coordinator's next sweep. */
void finish_if_complete(struct rq *q, const char *job_id);

#endif
