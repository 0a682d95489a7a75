/*
 * tls.c — the host name a TLS client asks for: the server_name extension
 * (RFC 6066) of its ClientHello, read from the first bytes the client sends
 * (on port 465, or after STARTTLS). Handshake fragments spread over several
 * records are joined, up to a bound. Every length is checked against the
 * bytes that hold it. It never decrypts, never answers the client and keeps
 * nothing: pure, no I/O.
 */
#include <errno.h>
#include <string.h>

#include "smtpguard.h"

#define TLS_RECORD_HEADER	5	/* type, version (2), length (2) */
#define TLS_RECORD_MAX		16384	/* RFC 8446 5.1: a plaintext record's limit */
#define TLS_HELLO_MAX		16384	/* ClientHellos are 0.3-2 KiB, even with PQ key shares */
#define TLS_CT_HANDSHAKE	22
#define TLS_MAJOR		3	/* SSL 3.0 and every TLS: 3.x on the record layer */
#define TLS_HS_HEADER		4	/* type, length (3) */
#define TLS_HS_CLIENT_HELLO	1
#define TLS_RANDOM_LEN		32
#define TLS_EXT_SERVER_NAME	0
#define TLS_NAME_HOST		0	/* NameType host_name */
#define TLS_HOST_MAX		255	/* RFC 6066 3: a DNS name */

/* A read cursor over bytes whose end was already checked. */
struct cur {
	const uint8_t	*p;
	size_t		 left;
};

static int
get8(struct cur *c, size_t *v)
{
	if (c->left < 1)
		return -1;
	*v = c->p[0];
	c->p++;
	c->left--;
	return 0;
}

static int
get16(struct cur *c, size_t *v)
{
	if (c->left < 2)
		return -1;
	*v = (size_t)c->p[0] << 8 | c->p[1];
	c->p += 2;
	c->left -= 2;
	return 0;
}

static int
skip(struct cur *c, size_t n)
{
	if (c->left < n)
		return -1;
	c->p += n;
	c->left -= n;
	return 0;
}

/* A sub-cursor of exactly n bytes, taken from c. */
static int
sub(struct cur *c, size_t n, struct cur *s)
{
	if (c->left < n)
		return -1;
	s->p = c->p;
	s->left = n;
	return skip(c, n);
}

static bool
host_char(uint8_t ch)
{
	/* LDH plus '_', which real names carry; anything else is not a host name. */
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
}

static int
server_name(struct cur ext, char *out, size_t outlen)
{
	struct cur list, name;
	size_t n, type;

	if (get16(&ext, &n) < 0 || sub(&ext, n, &list) < 0 || ext.left != 0)
		goto bad;
	while (list.left > 0) {
		if (get8(&list, &type) < 0 || get16(&list, &n) < 0 || sub(&list, n, &name) < 0)
			goto bad;
		if (type != TLS_NAME_HOST)
			continue;
		if (n == 0 || n > TLS_HOST_MAX)
			goto bad;
		for (size_t i = 0; i < n; i++)
			if (!host_char(name.p[i]))
				goto bad;
		if (n >= outlen) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(out, name.p, n);
		out[n] = '\0';
		return 0;
	}
	errno = ENOENT;
	return -1;
bad:
	errno = EINVAL;
	return -1;
}

static int
client_hello(struct cur h, char *out, size_t outlen)
{
	struct cur exts, ext;
	size_t n, type;

	if (skip(&h, 2 + TLS_RANDOM_LEN) < 0 ||		/* legacy_version, random */
	    get8(&h, &n) < 0 || skip(&h, n) < 0 ||	/* session id */
	    get16(&h, &n) < 0 || skip(&h, n) < 0 ||	/* cipher suites */
	    get8(&h, &n) < 0 || skip(&h, n) < 0)	/* compression methods */
		goto bad;
	if (h.left == 0) {
		errno = ENOENT;		/* a ClientHello without extensions */
		return -1;
	}
	if (get16(&h, &n) < 0 || sub(&h, n, &exts) < 0 || h.left != 0)
		goto bad;
	while (exts.left > 0) {
		if (get16(&exts, &type) < 0 || get16(&exts, &n) < 0 || sub(&exts, n, &ext) < 0)
			goto bad;
		if (type == TLS_EXT_SERVER_NAME)
			return server_name(ext, out, outlen);
	}
	errno = ENOENT;
	return -1;
bad:
	errno = EINVAL;
	return -1;
}

/*
 * Returns 0 and the host name in out, or -1 with errno: EAGAIN when the bytes
 * so far are a well-formed start of a ClientHello that goes on past len;
 * ENOENT when the whole ClientHello names no host; ENAMETOOLONG when the name
 * does not fit outlen; EINVAL for anything else (not TLS, not a ClientHello,
 * a length that lies, a name that is not a host name).
 */
int
tls_sni(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	uint8_t hs[TLS_HELLO_MAX];	/* the handshake message, joined from its records */
	size_t hslen = 0, need = 0;
	struct cur in = { p, len }, rec, h;
	size_t type, major, n;

	if (outlen > 0)
		out[0] = '\0';
	for (;;) {
		if (in.left == 0)
			goto more;
		if (get8(&in, &type) < 0)
			goto more;
		if (type != TLS_CT_HANDSHAKE)
			goto bad;
		if (get8(&in, &major) < 0)
			goto more;
		if (major != TLS_MAJOR)
			goto bad;
		if (skip(&in, 1) < 0 || get16(&in, &n) < 0)	/* minor version */
			goto more;
		if (n == 0 || n > TLS_RECORD_MAX)
			goto bad;
		if (in.left < n)
			n = in.left;	/* a cut record: use what is here, ask for more */
		if (sub(&in, n, &rec) < 0 || hslen + n > sizeof(hs))
			goto bad;
		memcpy(hs + hslen, rec.p, n);
		hslen += n;
		if (need == 0 && hslen >= TLS_HS_HEADER) {
			if (hs[0] != TLS_HS_CLIENT_HELLO)
				goto bad;
			need = TLS_HS_HEADER + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
			if (need > sizeof(hs))
				goto bad;
		}
		if (need != 0 && hslen >= need)
			break;
		if (in.left == 0)
			goto more;
	}
	h.p = hs + TLS_HS_HEADER;
	h.left = need - TLS_HS_HEADER;
	return client_hello(h, out, outlen);
more:
	errno = EAGAIN;
	return -1;
bad:
	errno = EINVAL;
	return -1;
}
