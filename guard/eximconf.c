/*
 * eximconf.c — the gate wired into a single-file Exim configuration, as
 * text: mail enable --exim-config FILE puts the ACL statements of
 * conf/exim4/smtpguard_acl (the same text, byte for byte: test_eximconf
 * compares them) at the start of the ACLs acl_smtp_data and acl_not_smtp
 * name, or adds ACLs of its own where the file names none, and the
 * SMTPGUARD_SOCKET and SMTPGUARD_FALLBACK macros before the first
 * "begin" line. Every line it adds is inside a pair of marker comments,
 * so eximconf_unwire takes out exactly those. A setting it cannot follow
 * (an ACL given inline, by file or by expansion; a continued line) is
 * refused with a reason, never guessed at. Pure: text in, text out; no
 * I/O, no logging.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define MARK_BEGIN	"# smtpguard mail gate: begin"
#define MARK_END	"# smtpguard mail gate: end"

/* conf/exim4/smtpguard_acl */
static const char statements[] =
	"  # smtpguard mail gate: ask smtpguardd about this message (smtpguard(8),\n"
	"  # smtpguard.conf(5) [mail]). SMTPGUARD_SOCKET is [mail] socket;\n"
	"  # SMTPGUARD_FALLBACK is the answer when the gate is down: \"pass\" for\n"
	"  # [mail] fail = accept, \"defer mail gate unavailable\" for fail = tempfail.\n"
	"  # The answer is one line, \"pass\" or \"hold|defer|reject TEXT\"; its newline\n"
	"  # becomes a blank ({ }), which the first word and the text leave out.\n"
	"  warn  set acl_m_smtpguard = ${readsocket{SMTPGUARD_SOCKET}{smtpguard-exim 1\\n\\\n"
	"id=$message_exim_id\\n\\\n"
	"local=${if def:sender_host_address{0}{1}}\\n\\\n"
	"uid=$originator_uid\\n\\\n"
	"auth=${if def:sender_host_authenticated{${escape:$authenticated_id}}}\\n\\\n"
	"mech=${escape:$sender_host_authenticated}\\n\\\n"
	"from=${escape:$sender_address}\\n\\\n"
	"rcpt-count=$recipients_count\\n\\\n"
	"rcpt=${escape:${substr_0_8000:$recipients}}\\n\\\n"
	"ip=$sender_host_address\\n\\\n"
	"port=$sender_host_port\\n\\\n"
	"daemon-ip=$received_ip_address\\n\\\n"
	"daemon-port=$received_port\\n\\\n"
	"helo=${escape:$sender_helo_name}\\n\\\n"
	"subject=${escape:$h_subject:}\\n\\\n"
	"message-id=${escape:$h_message-id:}\\n\\\n"
	"php=${escape:$h_x-php-originating-script:}\\n}{6s}{ }{SMTPGUARD_FALLBACK}}\n"
	"  defer condition = ${if eq{${extract{1}{ }{$acl_m_smtpguard}}}{defer}}\n"
	"        message = ${if match{$acl_m_smtpguard}{\\N^\\S+ +(.*\\S)\\s*$\\N}{$1}{try again later}}\n"
	"  deny  condition = ${if eq{${extract{1}{ }{$acl_m_smtpguard}}}{reject}}\n"
	"        message = ${if match{$acl_m_smtpguard}{\\N^\\S+ +(.*\\S)\\s*$\\N}{$1}{rejected}}\n"
	"  warn  condition = ${if eq{${extract{1}{ }{$acl_m_smtpguard}}}{hold}}\n"
	"        control = freeze/no_tell\n"
	"        log_message = smtpguard: $acl_m_smtpguard\n";

const char *
eximconf_statements(void)
{
	return statements;
}

struct line {
	const char	*p;
	size_t		 n;	/* without its newline */
};

/* The first word of a line after blanks, and where it ends. */
static size_t
word_at(const struct line *l, size_t *start)
{
	size_t i = 0, k;

	while (i < l->n && (l->p[i] == ' ' || l->p[i] == '\t'))
		i++;
	*start = i;
	for (k = i; k < l->n && (isalnum((unsigned char)l->p[k]) || l->p[k] == '_'); k++)
		;
	return k - i;
}

static bool
is_begin(const struct line *l)
{
	size_t s, n = word_at(l, &s);

	return n == 5 && memcmp(l->p + s, "begin", 5) == 0 && s + 5 < l->n &&
	    (l->p[s + 5] == ' ' || l->p[s + 5] == '\t');
}

/* "begin acl" (any blanks), the section of ACL definitions. */
static bool
is_begin_acl(const struct line *l)
{
	size_t i = 0;

	if (!is_begin(l))
		return false;
	while (i < l->n && (l->p[i] == ' ' || l->p[i] == '\t'))
		i++;
	i += 5;
	while (i < l->n && (l->p[i] == ' ' || l->p[i] == '\t'))
		i++;
	return l->n - i >= 3 && memcmp(l->p + i, "acl", 3) == 0 &&
	    (l->n - i == 3 || isspace((unsigned char)l->p[i + 3]));
}

/*
 * A main-section setting "NAME = VALUE": 1 with VALUE (trimmed) in val,
 * 0 if the line sets something else, -1 if it sets NAME in a way we do
 * not follow (continued on the next line).
 */
static int
setting(const struct line *l, const char *name, char *val, size_t len)
{
	size_t s, n = word_at(l, &s), i, e;

	if (n != strlen(name) || memcmp(l->p + s, name, n) != 0)
		return 0;
	i = s + n;
	while (i < l->n && (l->p[i] == ' ' || l->p[i] == '\t'))
		i++;
	if (i == l->n || l->p[i] != '=')
		return 0;
	i++;
	while (i < l->n && (l->p[i] == ' ' || l->p[i] == '\t'))
		i++;
	e = l->n;
	while (e > i && (l->p[e - 1] == ' ' || l->p[e - 1] == '\t' || l->p[e - 1] == '\r'))
		e--;
	if (e > i && l->p[e - 1] == '\\')
		return -1;
	snprintf(val, len, "%.*s", (int)(e - i), l->p + i);
	return 1;
}

static bool
plain_name(const char *s)
{
	if (s[0] == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return false;
	return true;
}

/* The line "NAME:" that starts an ACL of that name; -1 if none. */
static long
acl_start(const struct line *ls, size_t nl, size_t from, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = from; i < nl; i++) {
		const struct line *l = &ls[i];
		size_t e = l->n;

		while (e > 0 && (l->p[e - 1] == ' ' || l->p[e - 1] == '\t' || l->p[e - 1] == '\r'))
			e--;
		if (e == n + 1 && memcmp(l->p, name, n) == 0 && l->p[n] == ':')
			return (long)i;
		if (i > from && is_begin(l))
			break;	/* the next section: the ACL is not in this one */
	}
	return -1;
}

static struct line *
split(const char *in, size_t n, size_t *nl)
{
	size_t cap = 1, k = 0;
	struct line *ls;

	for (size_t i = 0; i < n; i++)
		cap += in[i] == '\n';
	if ((ls = calloc(cap, sizeof(*ls))) == NULL)
		return NULL;
	for (size_t i = 0; i < n;) {
		const char *nlp = memchr(in + i, '\n', n - i);
		size_t len = nlp ? (size_t)(nlp - (in + i)) : n - i;

		ls[k].p = in + i;
		ls[k++].n = len;
		i += len + 1;
	}
	*nl = k;
	return ls;
}

bool
eximconf_wired(const char *in, size_t n)
{
	return memmem(in, n, MARK_BEGIN, strlen(MARK_BEGIN)) != NULL;
}

#define ADD(s, len)	do { if (mailrun_append(out, outlen, &cap, (s), (len), EXIMCONF_MAX) < 0) \
				goto fail; } while (0)
#define ADDS(s)		ADD((s), strlen(s))

int
eximconf_wire(const char *in, size_t n, const char *socket, bool tempfail, char **out,
    size_t *outlen, char *err, size_t errlen)
{
	static const char *const opt[2] = { "acl_smtp_data", "acl_not_smtp" };
	static const char *const ours[2] = { "smtpguard_check_data", "smtpguard_not_smtp" };
	char names[2][256];
	bool have[2] = { false, false };
	long at[2] = { -1, -1 }, first_begin = -1, begin_acl = -1;
	size_t nl = 0, cap = 0;
	struct line *ls;
	char macro[PATH_MAX + 128];

	*out = NULL;
	*outlen = 0;
	if (n > EXIMCONF_MAX) {
		snprintf(err, errlen, "longer than %d bytes", EXIMCONF_MAX);
		return -1;
	}
	if (eximconf_wired(in, n)) {
		snprintf(err, errlen, "the gate is in it already (its \"%s\" lines)", MARK_BEGIN);
		return -1;
	}
	if (strpbrk(socket, " \t\r\n\\$}{") != NULL) {
		snprintf(err, errlen, "the gate's socket path %s holds characters Exim expands",
		    socket);
		return -1;
	}
	if ((ls = split(in, n, &nl)) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < nl; i++) {
		if (is_begin(&ls[i])) {
			if (first_begin < 0)
				first_begin = (long)i;
			if (begin_acl < 0 && is_begin_acl(&ls[i]))
				begin_acl = (long)i;
			continue;
		}
		if (first_begin >= 0)
			continue;
		for (int k = 0; k < 2; k++) {
			int r = setting(&ls[i], opt[k], names[k], sizeof(names[k]));

			if (r < 0) {
				snprintf(err, errlen, "line %zu: %s is continued on the next line: "
				    "put the statements of conf/exim4/smtpguard_acl at the start of "
				    "that ACL by hand", i + 1, opt[k]);
				goto fail;
			}
			if (r == 1) {
				if (!plain_name(names[k])) {
					snprintf(err, errlen, "line %zu: %s = %.100s is not the name "
					    "of an ACL in this file: put the statements of "
					    "conf/exim4/smtpguard_acl at the start of it by hand",
					    i + 1, opt[k], names[k]);
					goto fail;
				}
				have[k] = true;
			}
		}
	}
	for (int k = 0; k < 2; k++) {
		if (!have[k])
			continue;
		if (begin_acl < 0 || (at[k] = acl_start(ls, nl, (size_t)begin_acl + 1,
		    names[k])) < 0) {
			snprintf(err, errlen, "%s = %s, but no ACL %s: is defined after \"begin "
			    "acl\"", opt[k], names[k], names[k]);
			goto fail;
		}
	}
	for (size_t i = 0; i <= nl; i++) {
		if ((long)i == first_begin || (i == nl && first_begin < 0)) {
			/* The main section's end: the macros, and our ACLs' names. */
			if (*outlen > 0 && (*out)[*outlen - 1] != '\n')
				ADDS("\n");
			ADDS(MARK_BEGIN " (smtpguard mail enable; smtpguard mail disable takes "
			    "it out)\n");
			snprintf(macro, sizeof(macro), "SMTPGUARD_SOCKET = %s\n", socket);
			ADDS(macro);
			ADDS(tempfail ? "SMTPGUARD_FALLBACK = defer mail gate unavailable, try "
			    "again later\n" : "SMTPGUARD_FALLBACK = pass\n");
			for (int k = 0; k < 2; k++)
				if (!have[k]) {
					snprintf(macro, sizeof(macro), "%s = %s\n", opt[k], ours[k]);
					ADDS(macro);
				}
			if (begin_acl < 0 && (!have[0] || !have[1]))
				ADDS("\nbegin acl\n");
			if (begin_acl < 0)
				for (int k = 0; k < 2; k++)
					if (!have[k]) {
						snprintf(macro, sizeof(macro), "\n%s:\n", ours[k]);
						ADDS(macro);
						ADDS(statements);
						ADDS("  accept\n");
					}
			ADDS(MARK_END "\n\n");
		}
		if (i == nl)
			break;
		ADD(ls[i].p, ls[i].n);
		if (ls[i].p + ls[i].n < in + n)
			ADDS("\n");
		if ((long)i == begin_acl && (!have[0] || !have[1])) {
			ADDS(MARK_BEGIN "\n");
			for (int k = 0; k < 2; k++)
				if (!have[k]) {
					snprintf(macro, sizeof(macro), "%s:\n", ours[k]);
					ADDS(macro);
					ADDS(statements);
					ADDS("  accept\n\n");
				}
			ADDS(MARK_END "\n");
		}
		for (int k = 0; k < 2; k++)
			if ((long)i == at[k]) {
				ADDS(MARK_BEGIN "\n");
				ADDS(statements);
				ADDS(MARK_END "\n");
			}
	}
	free(ls);
	return 0;
fail:
	if (err[0] == '\0')
		snprintf(err, errlen, "%s", strerror(errno));
	free(ls);
	free(*out);
	*out = NULL;
	*outlen = 0;
	return -1;
}

/* The text without every marked block; how many were taken out (0: none there). */
int
eximconf_unwire(const char *in, size_t n, char **out, size_t *outlen)
{
	size_t nl = 0, cap = 0;
	struct line *ls;
	bool inside = false;
	int blocks = 0;

	*out = NULL;
	*outlen = 0;
	if ((ls = split(in, n, &nl)) == NULL)
		return -1;
	if (mailrun_append(out, outlen, &cap, "", 0, EXIMCONF_MAX) < 0)
		goto fail;
	for (size_t i = 0; i < nl; i++) {
		const struct line *l = &ls[i];
		bool nlafter = l->p + l->n < in + n;

		if (!inside && l->n >= strlen(MARK_BEGIN) &&
		    memcmp(l->p, MARK_BEGIN, strlen(MARK_BEGIN)) == 0) {
			inside = true;
			blocks++;
			continue;
		}
		if (inside) {
			if (l->n >= strlen(MARK_END) && memcmp(l->p, MARK_END, strlen(MARK_END)) == 0) {
				inside = false;
				/* The blank line enable put after the main block goes too. */
				if (i + 1 < nl && ls[i + 1].n == 0 && i + 2 < nl && is_begin(&ls[i + 2]))
					i++;
			}
			continue;
		}
		ADD(l->p, l->n);
		if (nlafter)
			ADDS("\n");
	}
	free(ls);
	return blocks;
fail:
	free(ls);
	free(*out);
	*out = NULL;
	*outlen = 0;
	return -1;
}
