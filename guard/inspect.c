/*
 * inspect.c — passive reading of an audited SMTP session: the client's
 * segments, in sequence-number order, into lines for smtp.c, until
 * there is nothing more worth reading. The session is released (its
 * conntrack mark set to "allowed") at DATA, at STARTTLS once the TLS
 * ClientHello has shown its SNI, after inspect_bytes, at FIN/RST, or at
 * a gap stream.c cannot fill ("incomplete"), so the message body never
 * crosses userspace.
 *
 * With detect_any_port it also reads a probed flow's first client bytes
 * (inspect_probe): an SMTP greeting, a TLS ClientHello's SNI, or something
 * else; whether that is mail is policy.c's to say.
 * Pure: it only reads the bytes it is given.
 */
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

struct inspect *
inspect_new(uint32_t syn_seq, size_t max_bytes, bool implicit_tls)
{
	struct inspect *in = calloc(1, sizeof(*in));

	if (in == NULL)
		return NULL;
	stream_init(&in->stream, syn_seq);
	in->max_bytes = max_bytes;
	in->tls_next = implicit_tls;
	return in;
}

static enum inspect_result
inspect_bytes_in(struct inspect *in, const uint8_t *p, size_t len)
{
	if (in->tls_next) {
		/* The first client bytes after STARTTLS (or on 465): the ClientHello. */
		(void)tls_sni(p, len, in->info.tls_sni, sizeof(in->info.tls_sni));
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
	struct stream_chunk out[STREAM_CHUNKS_MAX];
	size_t n = 0;

	if (p->payload_len > 0) {
		/* Retransmissions are trimmed, reordering is held; a gap ends it. */
		if (stream_add(&in->stream, p->seq, p->payload, p->payload_len, out, &n) !=
		    STREAM_OK) {
			in->info.inspect = "incomplete";
			return INSPECT_DONE;
		}
		for (size_t i = 0; i < n; i++) {
			in->info.bytes += out[i].len;
			if (inspect_bytes_in(in, out[i].p, out[i].len) == INSPECT_DONE)
				return INSPECT_DONE;
		}
		if (in->info.bytes >= in->max_bytes) {
			in->info.inspect = "cap";
			return INSPECT_DONE;
		}
	}
	if (p->tcp_flags & (TH_FIN | TH_RST)) {
		if (in->info.inspect == NULL)
			in->info.inspect = stream_pending(&in->stream) > 0 ? "incomplete" : "closed";
		return INSPECT_DONE;
	}
	return INSPECT_MORE;
}

/* The length of the first line of a payload, without its CRLF, bounded. */
static size_t
first_line_len(const uint8_t *p, size_t len)
{
	size_t n = 0;

	while (n < len && n < SMTP_LINE_MAX && p[n] != '\r' && p[n] != '\n')
		n++;
	return n;
}

/*
 * Only the first packet with payload matters: a probed flow is never
 * reassembled. Payload-less packets (the handshake's ACK) are waited out, up
 * to a bound, unless the flow ends.
 */
enum inspect_probe
inspect_probe(struct inspect *in, const struct pkt *p)
{
	if (p->payload_len == 0 && !(p->tcp_flags & (TH_FIN | TH_RST)) &&
	    ++in->empty < INSPECT_PROBE_EMPTY_MAX)
		return INSPECT_PROBE_MORE;
	if (p->payload_len == 0)
		return INSPECT_PROBE_OTHER;
	in->info.bytes = p->payload_len;
	if (smtp_looks_like_smtp(p->payload, p->payload_len)) {
		smtp_client_line(&in->client, &in->info, (const char *)p->payload,
		    first_line_len(p->payload, p->payload_len));
		return INSPECT_PROBE_SMTP;
	}
	if (tls_sni(p->payload, p->payload_len, in->info.tls_sni, sizeof(in->info.tls_sni)) == 0)
		return INSPECT_PROBE_TLS;
	return INSPECT_PROBE_OTHER;
}

void
inspect_free(struct inspect *in)
{
	free(in);
}
