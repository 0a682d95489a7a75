/*
 * mailq.c — the MTA's queue as the admin's commands read it: one line of
 * `postqueue -j` (Postfix's JSON queue listing) or one message of `exim -bp`
 * into a struct mailq_msg, and one line of our own event log into the
 * origin and subject of the message it names. Both are untrusted text (the
 * sender and the subject are whatever a client sent), so every field is
 * type-checked, bounded and NUL-terminated here, and a queue id is accepted
 * only in the characters the MTA itself uses (postsuper and exim get them
 * as arguments). Also the list arithmetic mail enable/disable does on a
 * Postfix parameter (is our milter in it; the list without it). Pure: no
 * I/O, no logging; errors in a caller's buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "smtpguard.h"

/* Postfix: [0-9A-Za-z] (short ids are hex, long ids base 52); Exim: also '-'. */
bool
mailq_valid_qid(const char *s, bool exim)
{
	size_t n = strlen(s);

	/* Never a leading '-': postsuper and exim would read an option. */
	if (n == 0 || n >= MAIL_QID_MAX || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (exim && c == '-')))
			return false;
	}
	return true;
}

/* A string member, cut at len - 1 bytes on a UTF-8 boundary; absent is "". */
static int
copy_member(json_t *o, const char *key, char *out, size_t len, bool required)
{
	json_t *v = json_object_get(o, key);
	const char *s;
	size_t n;

	out[0] = '\0';
	if (v == NULL)
		return required ? -1 : 0;
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	n = strnlen(s, json_string_length(v));
	if (n >= len) {
		n = len - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;	/* never half a character */
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int
mailq_postqueue_line(const char *line, size_t len, struct mailq_msg *m, char *err,
    size_t errlen)
{
	json_error_t jerr;
	json_t *o, *v;
	int rc = -1;

	memset(m, 0, sizeof(*m));
	if (len > MAILQ_LINE_MAX) {
		snprintf(err, errlen, "queue listing line longer than %d bytes", MAILQ_LINE_MAX);
		return -1;
	}
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL || !json_is_object(o)) {
		snprintf(err, errlen, "not a JSON object (postqueue -j prints one per line)");
		goto out;
	}
	if (copy_member(o, "queue_id", m->queue_id, sizeof(m->queue_id), true) < 0 ||
	    !mailq_valid_qid(m->queue_id, false)) {
		snprintf(err, errlen, "no valid queue_id");
		goto out;
	}
	if (copy_member(o, "queue_name", m->queue_name, sizeof(m->queue_name), true) < 0 ||
	    m->queue_name[0] == '\0') {
		snprintf(err, errlen, "%s: no queue_name", m->queue_id);
		goto out;
	}
	if (copy_member(o, "sender", m->sender, sizeof(m->sender), false) < 0) {
		snprintf(err, errlen, "%s: sender is not a string", m->queue_id);
		goto out;
	}
	if ((v = json_object_get(o, "recipients")) != NULL) {
		if (!json_is_array(v)) {
			snprintf(err, errlen, "%s: recipients is not a list", m->queue_id);
			goto out;
		}
		m->nrcpt = (uint32_t)(json_array_size(v) > UINT32_MAX ? UINT32_MAX :
		    json_array_size(v));
	}
	if ((v = json_object_get(o, "arrival_time")) != NULL && json_is_integer(v) &&
	    json_integer_value(v) >= 0)
		m->arrival = (int64_t)json_integer_value(v);
	if ((v = json_object_get(o, "message_size")) != NULL && json_is_integer(v) &&
	    json_integer_value(v) >= 0)
		m->size = (uint64_t)json_integer_value(v);
	m->held = strcmp(m->queue_name, "hold") == 0;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

/*
 * `exim -bp`: a message is a head line, then one line per recipient,
 * indented, "D " before those already delivered, then a blank line:
 *   25m  2.9K 1tXyZa-000123-AB <alice@shop.example> *** frozen ***
 *             bob@remote.example
 * Fed one line at a time; returns 1 when a head line started a message in
 * m (recipients then add to it), 0 for a recipient or blank line, -1 for a
 * line that is neither.
 */
int
mailq_exim_line(const char *line, struct mailq_msg *m, char *err, size_t errlen)
{
	char age[16], size[16], id[MAIL_QID_MAX], rest[MAILQ_LINE_MAX];
	const char *lt, *gt;

	if (strlen(line) >= MAILQ_LINE_MAX) {
		snprintf(err, errlen, "queue listing line longer than %d bytes", MAILQ_LINE_MAX);
		return -1;
	}
	if (line[strspn(line, " \t")] == '\0')
		return 0;
	/* The age is right-aligned (" 3h"): a head line is told by its fields. */
	if (sscanf(line, "%15s %15s %31s %[^\n]", age, size, id, rest) != 4 ||
	    !mailq_valid_qid(id, true) || strchr(id, '-') == NULL) {
		const char *r = line + strspn(line, " \t");

		if (line[0] != ' ' && line[0] != '\t') {
			snprintf(err, errlen, "not a message line of exim -bp");
			return -1;
		}
		if (m->queue_id[0] != '\0' && strncmp(r, "D ", 2) != 0 &&
		    m->nrcpt < UINT32_MAX)
			m->nrcpt++;
		return 0;
	}
	memset(m, 0, sizeof(*m));
	strlcpy_sg(m->queue_id, id, sizeof(m->queue_id));
	if ((lt = strchr(rest, '<')) != NULL && (gt = strchr(lt, '>')) != NULL) {
		size_t n = (size_t)(gt - lt - 1);

		if (n >= sizeof(m->sender))
			n = sizeof(m->sender) - 1;
		memcpy(m->sender, lt + 1, n);
		m->sender[n] = '\0';
	}
	m->held = strstr(rest, "*** frozen ***") != NULL;
	strlcpy_sg(m->queue_name, m->held ? "frozen" : "queued", sizeof(m->queue_name));
	return 1;
}

/*
 * One event-log line: if it is a mail event with a queue id, that id and
 * what the gate named (origin, sender domain, subject) go into ev and 1 is
 * returned; 0 for any other line (another event, or not our JSON at all).
 */
int
mailq_event_line(const char *line, size_t len, struct mailq_event *ev)
{
	json_t *o;
	int rc = 0;

	memset(ev, 0, sizeof(*ev));
	if (len > MAILQ_LINE_MAX * 4 || memmem(line, len, "\"mail\"", 6) == NULL)
		return 0;	/* cheap: most lines of a busy log are not mail events */
	if ((o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return 0;
	if (!json_is_object(o) || !json_is_string(json_object_get(o, "event")) ||
	    strcmp(json_string_value(json_object_get(o, "event")), "mail") != 0)
		goto out;
	if (copy_member(o, "queue_id", ev->queue_id, sizeof(ev->queue_id), true) < 0 ||
	    !mailq_valid_qid(ev->queue_id, true))
		goto out;
	if (copy_member(o, "origin", ev->origin, sizeof(ev->origin), false) < 0 ||
	    copy_member(o, "domain", ev->domain, sizeof(ev->domain), false) < 0 ||
	    copy_member(o, "subject", ev->subject, sizeof(ev->subject), false) < 0 ||
	    copy_member(o, "action", ev->action, sizeof(ev->action), false) < 0)
		goto out;
	rc = 1;
out:
	if (rc == 0)
		memset(ev, 0, sizeof(*ev));
	json_decref(o);
	return rc;
}

/*
 * An origin as the limit lines key it (lower case, one form per address),
 * through the gate's limit-line parser itself, so that unlimit, held and
 * release find what limit wrote and the gate logged.
 */
int
mailq_origin_key(const char *in, char *out, size_t len, char *err, size_t errlen)
{
	char line[EXCEPTION_LINE_MAX];
	struct mail_limit_rule r;

	if (in[0] == '\0' || strpbrk(in, " \t\r\n") != NULL ||
	    (size_t)snprintf(line, sizeof(line), "limit %s 0/hour", in) >= sizeof(line)) {
		snprintf(err, errlen, "not an origin (sasl:LOGIN, user:NAME, domain:DOMAIN, "
		    "client:ADDR or bounce)");
		return -1;
	}
	if (maillimit_rule_parse(line, &r, err, errlen) < 0)
		return -1;
	if (strlcpy_sg(out, r.origin, len) >= len) {
		snprintf(err, errlen, "origin too long");
		return -1;
	}
	return 0;
}

/* Does ORIGIN (an origin key, "domain:D", or "unknown") select this message? */
bool
mailq_matches(const struct mailq_msg *m, const char *origin)
{
	if (strcmp(origin, "unknown") == 0)
		return m->origin[0] == '\0';
	return strcmp(m->origin, origin) == 0 || strcmp(m->domain, origin) == 0;
}

/* Is ENTRY one of a Postfix list's elements (commas or blanks between)? */
bool
mailq_list_has(const char *list, const char *entry)
{
	size_t n = strlen(entry);

	for (const char *p = list; *p != '\0';) {
		size_t k;

		p += strspn(p, ", \t");
		k = strcspn(p, ", \t");
		if (k == n && strncmp(p, entry, n) == 0)
			return true;
		p += k;
	}
	return false;
}

/* The list without ENTRY, its other elements in order, ", " between. */
void
mailq_list_without(const char *list, const char *entry, char *out, size_t len)
{
	size_t n = strlen(entry);

	out[0] = '\0';
	for (const char *p = list; *p != '\0';) {
		size_t k;

		p += strspn(p, ", \t");
		k = strcspn(p, ", \t");
		if (k > 0 && !(k == n && strncmp(p, entry, n) == 0))
			snprintf(out + strlen(out), len - strlen(out), "%s%.*s", out[0] ? ", " : "",
			    (int)k, p);
		p += k;
	}
}
