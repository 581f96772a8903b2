/* tls.h - TLS client contexts (the only module besides the clients that touches OpenSSL).
 *
 * Certificates are verified against the system CA store plus an optional CA file, and the
 * host name is checked (SSL_set1_host + SNI). insecure turns verification off. */
#ifndef MH_TLS_H
#define MH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "err.h"

typedef struct ssl_st SSL;

struct mh_tls_opts {
	const char *ca_file; /* extra trusted CA (PEM), or NULL */
	bool insecure;       /* do not verify certificates (loudly warned about by callers) */
};

struct mh_tls;

struct mh_tls *mh_tls_new(const struct mh_tls_opts *opts, struct mh_err *err);
void mh_tls_free(struct mh_tls **tls);
/* A new SSL object for one connection to host (SNI and name check set; an IP address
 * literal is checked against the certificate's IP SANs and sent without SNI). The caller
 * owns it (a bufferevent created with BEV_OPT_CLOSE_ON_FREE frees it). NULL on error. */
SSL *mh_tls_ssl_new(struct mh_tls *tls, const char *host, struct mh_err *err);
/* Frees an SSL object that was never handed to a bufferevent. */
void mh_tls_ssl_free(SSL *ssl);
/* After a failed handshake: maps the verify result / error queue onto the catalogue
 * (TLS_CERT_EXPIRED, TLS_CERT_HOSTNAME, TLS_CERT_SELF_SIGNED, TLS_CERT_UNTRUSTED,
 * TLS_HANDSHAKE) with a detail naming the problem. */
void mh_tls_explain_failure(SSL *ssl, struct mh_err *err);
/* The same, for an OpenSSL error code already taken off the thread's error queue (as
 * libevent does: bufferevent_get_openssl_error()); lib_err 0 means none is known. */
void mh_tls_explain_error(SSL *ssl, unsigned long lib_err, struct mh_err *err);
/* What the health check shows of an established session. */
struct mh_tls_info {
	char protocol[16];  /* "TLSv1.3" */
	char cipher[64];
	char subject[256];  /* the server certificate's subject, one line */
	char issuer[256];
	int64_t not_after;  /* unix seconds; 0 when unknown */
	bool verified;      /* the chain and name were checked (not --insecure) */
};
int mh_tls_get_info(SSL *ssl, struct mh_tls_info *info);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" into buf, for logs; returns buf. */
const char *mh_tls_describe(SSL *ssl, char *buf, size_t len);

#endif
