/*
 * inspect.c — passive reading of an audited SMTP session: the client's
 * segments, in sequence-number order, into lines for smtp.c, until
 * there is nothing more worth reading. The session is released (its
 * conntrack mark set to "allowed") at DATA, at STARTTLS once the TLS
 * ClientHello has shown its SNI, after inspect_bytes, at FIN/RST, or at
 * a gap stream.c cannot fill ("incomplete"), so the message body never
 * crosses userspace.
 *
 * With detect_any_port it also reads a probed flow (inspect_any_*): both
 * directions, each put back in order from the SYN (client, its payload
 * included: TCP Fast Open) and the SYN-ACK (server), fed to sniff.c, which
 * says SMTP, SMTP over TLS to a mail relay, OTHER or MORE. What it cannot
 * read on (a reply before the SYN-ACK, a gap it cannot hold) or can wait for
 * no longer (inspect_any_finish) is UNDECIDED, which fails closed: whether
 * that is reset is policy.c's to say. A direction in order (nearly always)
 * costs no store; the 16 KiB stream.c store is allocated only when a segment
 * comes ahead of a gap.
 * Pure: it only reads the bytes it is given, and never looks at the clock.
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

/* No copy of its flow comes after this segment: the kernel released the flow at it. */
bool
inspect_released_in_kernel(const struct pkt *p)
{
	if (p->payload_len < INSPECT_DATA_LEN)
		return false;
	for (size_t i = 0; i < INSPECT_DATA_LEN; i++) {
		uint8_t c = p->payload[i];

		if (i < INSPECT_DATA_LETTERS)
			c &= INSPECT_CASE_MASK;
		if (c != (uint8_t)INSPECT_DATA_LINE[i])
			return false;
	}
	return true;
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

struct inspect_any *
inspect_any_new(uint32_t syn_seq, sniff_relay_fn relay, void *relay_arg)
{
	struct inspect_any *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	sniff_init(&a->sniff, relay, relay_arg);
	a->side[SNIFF_CLIENT].anchored = true;
	a->side[SNIFF_CLIENT].next = syn_seq + 1;	/* the SYN takes one sequence number */
	a->result = INSPECT_PROBE_MORE;
	return a;
}

static enum inspect_probe
undecided(struct inspect_any *a, const char *why)
{
	if (a->result == INSPECT_PROBE_MORE) {
		a->result = INSPECT_PROBE_UNDECIDED;
		a->sniff.info.inspect = why;
	}
	return a->result;
}

/* Bytes at SEQ of one direction, fed in order; -1: a gap that cannot be held. */
static int
side_bytes(struct inspect_any *a, enum sniff_dir dir, uint32_t seq, const uint8_t *p,
    size_t len)
{
	struct inspect_side *sd = &a->side[dir];
	struct stream_chunk out[STREAM_CHUNKS_MAX];
	size_t n = 0;

	if (len == 0)
		return 0;
	if (sd->held == NULL) {
		int32_t ahead = (int32_t)(seq - sd->next);

		if (ahead <= 0) {
			/* In order, or a retransmission: its new tail only (RFC 1982 arithmetic). */
			size_t seen = (size_t)-(int64_t)ahead;

			if (seen >= len)
				return 0;
			sd->next += (uint32_t)(len - seen);
			(void)sniff_feed(&a->sniff, dir, p + seen, len - seen);
			return 0;
		}
		if ((sd->held = malloc(sizeof(*sd->held))) == NULL)
			return -1;
		stream_init(sd->held, sd->next - 1);
	}
	if (stream_add(sd->held, seq, p, len, out, &n) != STREAM_OK)
		return -1;
	for (size_t i = 0; i < n; i++)
		(void)sniff_feed(&a->sniff, dir, out[i].p, out[i].len);
	return 0;
}

static enum inspect_probe
result_of(struct inspect_any *a)
{
	if (a->result != INSPECT_PROBE_MORE)
		return a->result;
	switch (a->sniff.result) {
	case SNIFF_MORE:
		return INSPECT_PROBE_MORE;
	case SNIFF_SMTP:
		a->result = INSPECT_PROBE_SMTP;
		break;
	case SNIFF_SMTP_TLS:
		a->result = INSPECT_PROBE_TLS;
		break;
	case SNIFF_OTHER:
		a->result = INSPECT_PROBE_OTHER;
		break;
	}
	a->sniff.info.inspect = a->sniff.why;
	return a->result;
}

/*
 * One packet of a probed flow, DIR as the caller found it by its 4-tuple.
 * The answer, once not MORE, never changes.
 */
enum inspect_probe
inspect_any_packet(struct inspect_any *a, enum sniff_dir dir, const struct pkt *p)
{
	struct inspect_side *sd = &a->side[dir], *server = &a->side[SNIFF_SERVER];
	bool syn = (p->tcp_flags & TH_SYN) != 0;
	uint32_t seq = p->seq;

	if (a->result != INSPECT_PROBE_MORE)
		return a->result;
	if (dir == SNIFF_SERVER && !sd->anchored) {
		if ((p->tcp_flags & TH_RST) && !syn) {
			/* Refused (a closed port): no session, nothing was said. */
			a->result = INSPECT_PROBE_OTHER;
			a->sniff.info.inspect = "reset by the server before its SYN-ACK";
			return a->result;
		}
		/* The server's stream starts at its SYN-ACK; anything else cannot be placed. */
		if ((p->tcp_flags & (TH_SYN | TH_ACK)) != (TH_SYN | TH_ACK))
			return undecided(a, "a reply before the server's SYN-ACK: fails closed");
		sd->anchored = true;
		sd->next = p->seq + 1;
	} else if (dir == SNIFF_CLIENT && !syn && !server->anchored &&
	    (p->payload_len > 0 || !(p->tcp_flags & (TH_FIN | TH_RST)))) {
		/*
		 * The client answers the SYN-ACK only once it has passed the
		 * reply queue: not seen means the replies are not being read.
		 */
		return undecided(a, "client bytes before the server's SYN-ACK: fails closed");
	}
	if (syn)
		seq++;	/* a SYN's payload (TCP Fast Open) follows its own sequence number */
	if (side_bytes(a, dir, seq, p->payload, p->payload_len) < 0)
		(void)sniff_end(&a->sniff, dir);	/* a gap: what came before decides */
	if (p->tcp_flags & (TH_FIN | TH_RST))
		(void)sniff_end(&a->sniff, dir);
	return result_of(a);
}

/* The caller can wait no longer (the flow's time is up): decide, failing closed. */
enum inspect_probe
inspect_any_finish(struct inspect_any *a, const char *why)
{
	if (a->result != INSPECT_PROBE_MORE)
		return a->result;
	(void)sniff_finish(&a->sniff);	/* what the event says it looked like (proto) */
	return undecided(a, why);
}

void
inspect_any_free(struct inspect_any *a)
{
	if (a == NULL)
		return;
	free(a->side[SNIFF_CLIENT].held);
	free(a->side[SNIFF_SERVER].held);
	free(a);
}

void
inspect_free(struct inspect *in)
{
	free(in);
}
