/* tls.c - TLS client contexts and certificate checks (OpenSSL 1.1.1 / 3.x). */
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "net.h"

struct mh_tls {
	SSL_CTX *ctx;
	bool insecure;
};

static void ssl_queue_text(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", r != NULL ? r : "unknown OpenSSL error");
	ERR_clear_error();
}

struct mh_tls *mh_tls_new(const struct mh_tls_opts *opts, struct mh_err *err)
{
	struct mh_tls *tls = calloc(1, sizeof(*tls));
	char why[160];

	if (tls == NULL)
		abort();
	tls->insecure = opts != NULL && opts->insecure;
	tls->ctx = SSL_CTX_new(TLS_client_method());
	if (tls->ctx == NULL) {
		ssl_queue_text(why, sizeof(why));
		free(tls);
		mh_err_set(err, MH_E_INTERNAL, "SSL_CTX_new: %s", why);
		return NULL;
	}
	/* Many connections stay idle between commands: give the record buffers back. */
	SSL_CTX_set_mode(tls->ctx, SSL_MODE_RELEASE_BUFFERS);
	/* no SSL_CTX_set_read_ahead: bytes OpenSSL buffers ahead are invisible to the event
	 * loop's readiness checks, and connections stall (seen in test_imap_client) */
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* IMAP frames its own data; a missing close_notify is just a closed connection
	 * (OpenSSL 3 would report it as a protocol error otherwise). */
	SSL_CTX_set_options(tls->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	if (SSL_CTX_set_default_verify_paths(tls->ctx) != 1)
		ERR_clear_error(); /* no system store: only ca_file will be trusted */
	if (opts != NULL && opts->ca_file != NULL && opts->ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_locations(tls->ctx, opts->ca_file, NULL) != 1) {
			ssl_queue_text(why, sizeof(why));
			SSL_CTX_free(tls->ctx);
			free(tls);
			mh_err_set(err, MH_E_CONFIG_FILE, "CA file %s: %s", opts->ca_file, why);
			return NULL;
		}
	}
	SSL_CTX_set_verify(tls->ctx, tls->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	return tls;
}

void mh_tls_free(struct mh_tls **tlsp)
{
	struct mh_tls *tls = *tlsp;

	if (tls == NULL)
		return;
	*tlsp = NULL;
	SSL_CTX_free(tls->ctx);
	free(tls);
}

SSL *mh_tls_ssl_new(struct mh_tls *tls, const char *host, struct mh_err *err)
{
	SSL *ssl = SSL_new(tls->ctx);
	bool ip = net_is_ip_literal(host);
	char why[160];

	if (ssl == NULL) {
		ssl_queue_text(why, sizeof(why));
		mh_err_set(err, MH_E_INTERNAL, "SSL_new: %s", why);
		return NULL;
	}
	/* RFC 6066 3: SNI carries host names only, never address literals. */
	if (!ip && host[0] != '\0' && SSL_set_tlsext_host_name(ssl, host) != 1)
		goto fail;
	if (!tls->insecure) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		if (ip) {
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
				goto fail;
		} else {
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(ssl, host) != 1)
				goto fail;
		}
	}
	return ssl;
fail:
	ssl_queue_text(why, sizeof(why));
	SSL_free(ssl);
	mh_err_set(err, MH_E_INTERNAL, "TLS setup for %s: %s", host, why);
	return NULL;
}

struct verify_map {
	long verify;
	enum mh_err_code code;
};

static const struct verify_map verify_map[] = {
	{X509_V_ERR_CERT_HAS_EXPIRED, MH_E_TLS_CERT_EXPIRED},
	{X509_V_ERR_CERT_NOT_YET_VALID, MH_E_TLS_CERT_EXPIRED},
	{X509_V_ERR_HOSTNAME_MISMATCH, MH_E_TLS_CERT_HOSTNAME},
	{X509_V_ERR_IP_ADDRESS_MISMATCH, MH_E_TLS_CERT_HOSTNAME},
	{X509_V_ERR_EMAIL_MISMATCH, MH_E_TLS_CERT_HOSTNAME},
	{X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, MH_E_TLS_CERT_SELF_SIGNED},
	/* A root we do not trust: the fix is --ca-file with that root. */
	{X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, MH_E_TLS_CERT_UNTRUSTED},
	{X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, MH_E_TLS_CERT_UNTRUSTED},
	{X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, MH_E_TLS_CERT_UNTRUSTED},
	{X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, MH_E_TLS_CERT_UNTRUSTED},
	{X509_V_ERR_CERT_UNTRUSTED, MH_E_TLS_CERT_UNTRUSTED},
	{X509_V_ERR_CERT_REJECTED, MH_E_TLS_CERT_UNTRUSTED},
	{X509_V_ERR_INVALID_CA, MH_E_TLS_CERT_UNTRUSTED},
	{X509_V_ERR_CERT_SIGNATURE_FAILURE, MH_E_TLS_CERT_UNTRUSTED},
	{X509_V_ERR_INVALID_PURPOSE, MH_E_TLS_CERT_UNTRUSTED},
};

void mh_tls_explain_error(SSL *ssl, unsigned long lib_err, struct mh_err *err)
{
	long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	const char *reason;

	if (v != X509_V_OK) {
		enum mh_err_code code = MH_E_TLS_HANDSHAKE;
		for (size_t i = 0; i < sizeof(verify_map) / sizeof(verify_map[0]); i++) {
			if (verify_map[i].verify == v) {
				code = verify_map[i].code;
				break;
			}
		}
		mh_err_set(err, code, "certificate verification failed: %s",
			   X509_verify_cert_error_string(v));
		return;
	}
	reason = lib_err != 0 ? ERR_reason_error_string(lib_err) : NULL;
	if (reason != NULL)
		mh_err_set(err, MH_E_TLS_HANDSHAKE, "TLS handshake failed: %s", reason);
	else
		mh_err_set(err, MH_E_TLS_HANDSHAKE, "the server closed the connection during the TLS handshake");
}

void mh_tls_explain_failure(SSL *ssl, struct mh_err *err)
{
	unsigned long e = ERR_peek_last_error();

	mh_tls_explain_error(ssl, e, err);
	ERR_clear_error();
}

const char *mh_tls_describe(SSL *ssl, char *buf, size_t len)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);

	snprintf(buf, len, "%s %s", SSL_get_version(ssl), c != NULL ? SSL_CIPHER_get_name(c) : "?");
	return buf;
}

int mh_tls_get_info(SSL *ssl, struct mh_tls_info *info)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	X509 *cert = SSL_get1_peer_certificate(ssl);

	memset(info, 0, sizeof(*info));
	snprintf(info->protocol, sizeof(info->protocol), "%s", SSL_get_version(ssl));
	snprintf(info->cipher, sizeof(info->cipher), "%s", c != NULL ? SSL_CIPHER_get_name(c) : "?");
	info->verified = SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE && SSL_get_verify_result(ssl) == X509_V_OK;
	if (cert == NULL)
		return 0;
	X509_NAME_oneline(X509_get_subject_name(cert), info->subject, sizeof(info->subject));
	X509_NAME_oneline(X509_get_issuer_name(cert), info->issuer, sizeof(info->issuer));
	{
		const ASN1_TIME *t = X509_get0_notAfter(cert);
		struct tm tm;
		if (t != NULL && ASN1_TIME_to_tm(t, &tm) == 1)
			info->not_after = (int64_t)timegm(&tm);
	}
	X509_free(cert);
	return 0;
}

void mh_tls_ssl_free(SSL *ssl)
{
	SSL_free(ssl);
}
