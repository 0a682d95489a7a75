/*
 * inspect.c — passive reading of an audited SMTP session: the client's
 * segments, in sequence-number order, into lines for smtpcmd.c, until
 * there is nothing more worth reading. The session is released (its
 * conntrack mark set to "allowed") at DATA, at STARTTLS once the TLS
 * ClientHello has shown its SNI, after inspect_bytes, at FIN/RST, or at
 * the first gap or overlap it cannot resolve ("incomplete"), so the message
 * body never crosses userspace. Pure: it only reads the bytes it is given.
 */
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

/* TLS record type 22 (handshake), handshake type 1 (ClientHello). */
#define TLS_HANDSHAKE		22
#define TLS_CLIENT_HELLO	1
#define TLS_EXT_SNI		0

struct inspect *
inspect_new(uint32_t syn_seq, size_t max_bytes, bool implicit_tls)
{
	struct inspect *in = calloc(1, sizeof(*in));

	if (in == NULL)
		return NULL;
	in->next_seq = syn_seq + 1;
	in->max_bytes = max_bytes;
	in->tls_next = implicit_tls;
	return in;
}

static uint32_t
be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

/* The server_name of a ClientHello in one TLS record; -1 if not there or malformed. */
int
tls_client_hello_sni(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	size_t off, end, n;

	if (len < 5 + 4 || p[0] != TLS_HANDSHAKE || p[5] != TLS_CLIENT_HELLO)
		return -1;
	end = 5 + be16(p + 3);
	if (end > len)
		end = len;	/* the rest may be in the next segment; parse what is here */
	off = 5 + 4 + 2 + 32;			/* handshake header, version, random */
	if (off + 1 > end)
		return -1;
	off += 1 + p[off];			/* session id */
	if (off + 2 > end)
		return -1;
	off += 2 + be16(p + off);		/* cipher suites */
	if (off + 1 > end)
		return -1;
	off += 1 + p[off];			/* compression methods */
	if (off + 2 > end)
		return -1;
	n = be16(p + off);
	off += 2;
	if (off + n < end)
		end = off + n;
	while (off + 4 <= end) {
		uint32_t type = be16(p + off), elen = be16(p + off + 2);

		off += 4;
		if (off + elen > end)
			return -1;
		if (type == TLS_EXT_SNI && elen >= 5) {
			/* list length (2), name type (1, host_name = 0), name length (2) */
			uint32_t nlen = be16(p + off + 3);

			if (p[off + 2] != 0 || 5 + nlen > elen || nlen == 0 || nlen >= outlen)
				return -1;
			for (uint32_t i = 0; i < nlen; i++) {
				uint8_t c = p[off + 5 + i];

				out[i] = c > 0x20 && c < 0x7f ? (char)c : '?';
			}
			out[nlen] = '\0';
			return 0;
		}
		off += elen;
	}
	return -1;
}

static enum inspect_result
inspect_bytes_in(struct inspect *in, const uint8_t *p, size_t len)
{
	if (in->tls_next) {
		/* The first client bytes after STARTTLS (or on 465): the ClientHello. */
		(void)tls_client_hello_sni(p, len, in->info.tls_sni, sizeof(in->info.tls_sni));
		in->info.inspect = "tls";
		return INSPECT_DONE;
	}
	for (size_t i = 0; i < len; i++) {
		enum smtp_verb v;

		if (p[i] != '\n') {
			if (in->len < SMTP_LINE_MAX)
				in->line[in->len++] = (char)p[i];
			else
				in->overlong = true;
			continue;
		}
		if (in->overlong) {
			in->info.inspect = "overlong";
			return INSPECT_DONE;
		}
		if (in->len > 0 && in->line[in->len - 1] == '\r')
			in->len--;
		v = smtp_client_line(&in->client, &in->info, in->line, in->len);
		in->len = 0;
		if (v == SMTP_DATA) {
			in->info.inspect = "complete";
			return INSPECT_DONE;
		}
		if (v == SMTP_QUIT) {
			in->info.inspect = "complete";
			return INSPECT_DONE;
		}
		if (v == SMTP_STARTTLS) {
			/* What follows the server's 220 is TLS: read only its ClientHello. */
			in->tls_next = true;
			if (i + 1 < len)
				return inspect_bytes_in(in, p + i + 1, len - i - 1);
			return INSPECT_MORE;
		}
	}
	return INSPECT_MORE;
}

enum inspect_result
inspect_segment(struct inspect *in, const struct pkt *p)
{
	const uint8_t *data = p->payload;
	size_t len = p->payload_len;
	int32_t ahead = (int32_t)(p->seq - in->next_seq);	/* serial arithmetic */

	if (len > 0) {
		if (ahead > 0) {
			/* A gap: the segment before it never came through us. */
			in->info.inspect = "incomplete";
			return INSPECT_DONE;
		}
		if (ahead < 0) {
			size_t seen = (size_t)-(int64_t)ahead;

			if (seen >= len)
				goto flags;	/* a retransmission of what we have */
			data += seen;	/* overlap: keep only the new part */
			len -= seen;
		}
		in->next_seq += (uint32_t)len;
		in->info.bytes += len;
		if (inspect_bytes_in(in, data, len) == INSPECT_DONE)
			return INSPECT_DONE;
		if (in->info.bytes >= in->max_bytes) {
			in->info.inspect = "cap";
			return INSPECT_DONE;
		}
	}
flags:
	if (p->tcp_flags & (TH_FIN | TH_RST)) {
		if (in->info.inspect == NULL)
			in->info.inspect = "closed";
		return INSPECT_DONE;
	}
	return INSPECT_MORE;
}

void
inspect_free(struct inspect *in)
{
	free(in);
}
