/* spec.c - a new job's spec from two endpoints: passwords sealed, paths made absolute. */
#include "cli.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"
#include "wire.h"

static int seal_side(const struct mh_seal_key *key, const char *job_id, const struct mh_endpoint *ep,
		     struct mh_wire_endpoint *w, struct mh_err *err)
{
	w->proto = ep->proto;
	w->security = ep->security;
	w->host = (char *)ep->host;
	w->port = ep->port;
	w->user = (char *)ep->user;
	if (ep->password == NULL)
		return mh_err_set(err, MH_E_NO_PASSWORD, "no password for %s@%s", ep->user, ep->host);
	return mh_seal(key, job_id, ep->password, strlen(ep->password), &w->sealed_password, err);
}

int cli_build_spec(const struct mh_endpoint *from, const struct mh_endpoint *to, bool allow_plaintext,
		   bool insecure, const char *ca_file, const struct mh_seal_key *key, struct mh_job_spec *spec,
		   char *job_id, char *ca_path, struct mh_err *err)
{
	memset(spec, 0, sizeof(*spec));
	mh_job_id_new(job_id);
	spec->job_id = job_id;
	spec->created = (uint64_t)time(NULL);
	if (allow_plaintext)
		spec->flags |= MH_JOB_ALLOW_PLAINTEXT;
	if (insecure)
		spec->flags |= MH_JOB_INSECURE;
	if (ca_file != NULL) {
		/* workers may run elsewhere or in another directory: an absolute path */
		if (realpath(ca_file, ca_path) == NULL || access(ca_path, R_OK) != 0)
			return mh_err_set(err, MH_E_CONFIG_FILE, "CA file %s cannot be read", ca_file);
		spec->ca_file = ca_path;
	}
	if (seal_side(key, job_id, from, &spec->src, err) < 0 || seal_side(key, job_id, to, &spec->dst, err) < 0) {
		cli_spec_cleanup(spec);
		return -1;
	}
	return 0;
}

void cli_spec_cleanup(struct mh_job_spec *spec)
{
	mh_bytes_free(&spec->src.sealed_password);
	mh_bytes_free(&spec->dst.sealed_password);
}

const char *cli_default_redis_url(void)
{
	const char *env = getenv("MAILHAUL_REDIS");

	return env != NULL && env[0] != '\0' ? env : "redis://127.0.0.1:6379";
}

const char *cli_default_seal_key_file(void)
{
	const char *env = getenv("MAILHAUL_SEAL_KEY_FILE");

	return env != NULL && env[0] != '\0' ? env : NULL;
}
