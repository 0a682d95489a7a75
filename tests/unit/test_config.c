/*
 * config.c: the admin's file becomes struct config exactly, and every
 * mistake is refused with FILE:LINE, the key and the value. Run from the
 * top of the source tree (fixtures are tests/fixtures/conf/).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"

#define FIXTURES	"tests/fixtures/conf/"
#define ERR_MAX		1024

static void
load_ok(const char *text, struct config *cfg)
{
	char err[ERR_MAX] = "";

	if (config_load_string(cfg, text, strlen(text), "t.conf", err, sizeof(err)) < 0)
		fail_msg("refused: %s", err);
}

static void
load_fails(const char *text, const char *want)
{
	struct config cfg;
	char err[ERR_MAX] = "";

	if (config_load_string(&cfg, text, strlen(text), "t.conf", err, sizeof(err)) == 0)
		fail_msg("accepted: %s", text);
	assert_string_equal(err, want);
}

static void
defaults_are_the_documented_ones(void **state)
{
	struct config c;

	(void)state;
	config_defaults(&c);
	assert_string_equal(c.mta_users, "auto");
	assert_int_equal(c.nports, 3);
	assert_int_equal(c.ports[0], 25);
	assert_int_equal(c.ports[1], 465);
	assert_int_equal(c.ports[2], 587);
	assert_int_equal(c.action, ACTION_REJECT);
	assert_true(c.allow_local);
	assert_int_equal(c.queue_num, 0);
	assert_int_equal(c.queue_maxlen, 4096);
	assert_int_equal(c.trap_port, 10025);
	assert_int_equal(c.redirect_to, 25);
	assert_int_equal(c.inspect_bytes, 4096);
	assert_false(c.detect_any_port);
	assert_int_equal(c.mark_mask, 0x00700000);
	assert_string_equal(c.exceptions, "/etc/smtpguard/exceptions.conf");
	assert_string_equal(c.control_socket, "/run/smtpguard/control.sock");
	assert_string_equal(c.pid_file, "/run/smtpguard/smtpguardd.pid");
	assert_string_equal(c.log_file, "/var/log/smtpguard/events.jsonl");
	assert_true(c.log_syslog);
	assert_int_equal(c.log_rate, 20);
	assert_int_equal(c.log_window, 60);
	assert_int_equal(c.alert_threshold, 0);
	assert_string_equal(c.alert_exec, "");
	assert_false(c.mail_gate);
	assert_string_equal(c.mail_socket, "/var/spool/postfix/smtpguard/gate.sock");
	assert_int_equal(c.mail_limit, 200);
	assert_int_equal(c.mail_domain_limit, MAILLIMIT_OFF);
	assert_int_equal(c.mail_over, MAIL_HOLD);
	assert_false(c.mail_fail_tempfail);
	assert_string_equal(c.mail_state, "/var/lib/smtpguard/mail.state");
	assert_string_equal(c.mail_queue, "/var/spool/postfix");
	assert_string_equal(c.mail_user, "nobody");
	assert_string_equal(c.mail_group, "postfix");
	assert_string_equal(c.metrics_textfile, "");
	assert_int_equal(c.metrics_interval, 15);
	assert_int_equal(c.metrics_top_users, 10);
	assert_string_equal(c.path, "");
}

static void
shipped_conf_changes_nothing(void **state)
{
	struct config loaded, want;
	char err[ERR_MAX] = "";

	(void)state;
	if (config_load(&loaded, "conf/smtpguard.conf", err, sizeof(err)) < 0)
		fail_msg("conf/smtpguard.conf refused: %s", err);
	config_defaults(&want);
	strlcpy_sg(want.path, "conf/smtpguard.conf", sizeof(want.path));
	want.mta_users_line = loaded.mta_users_line;	/* where, not what */
	assert_memory_equal(&loaded, &want, sizeof(want));
}

static void
empty_file_means_defaults(void **state)
{
	struct config c, want;

	(void)state;
	load_ok("", &c);
	config_defaults(&want);
	strlcpy_sg(want.path, "t.conf", sizeof(want.path));
	assert_memory_equal(&c, &want, sizeof(want));
}

static void
every_key_reaches_the_config(void **state)
{
	struct config c;
	char err[ERR_MAX] = "";

	(void)state;
	if (config_load(&c, FIXTURES "every_key.conf", err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_string_equal(c.path, FIXTURES "every_key.conf");
	assert_string_equal(c.mta_users, "postfix, 105 Debian-exim");
	assert_int_equal(c.nports, 3);
	assert_int_equal(c.ports[0], 25);
	assert_int_equal(c.ports[1], 2525);
	assert_int_equal(c.ports[2], 587);
	assert_int_equal(c.action, ACTION_TRAP);
	assert_false(c.allow_local);
	assert_int_equal(c.queue_num, 7);
	assert_int_equal(c.queue_maxlen, 1024);
	assert_int_equal(c.trap_port, 2526);
	assert_int_equal(c.inspect_bytes, 8192);
	assert_true(c.detect_any_port);
	assert_int_equal(c.mark_mask, 0x0000e000);
	assert_string_equal(c.exceptions, "/srv/sg/exceptions.conf");
	assert_string_equal(c.control_socket, "/srv/sg/control.sock");
	assert_string_equal(c.pid_file, "/srv/sg/smtpguardd.pid");
	assert_string_equal(c.log_file, "/srv/sg/events.jsonl");
	assert_false(c.log_syslog);
	assert_int_equal(c.log_rate, 5);
	assert_int_equal(c.log_window, 300);
	assert_int_equal(c.alert_threshold, 50);
	assert_string_equal(c.alert_exec, "/usr/local/bin/page-admin");
	assert_string_equal(c.metrics_textfile, "/srv/sg/smtpguard.prom");
	assert_int_equal(c.metrics_interval, 30);
	assert_int_equal(c.metrics_top_users, 100);
}

/* mta = exim: the gate answers Exim's readsocket, on a socket and group of Exim's. */
static void
mta_exim_gets_its_own_socket_and_group_unless_given(void **state)
{
	struct config c;

	(void)state;
	load_ok("[mail]\nmta = exim\n", &c);
	assert_true(c.mail_exim);
	assert_string_equal(c.mail_socket, CONFIG_EXIM_SOCKET);
	assert_string_equal(c.mail_group, "Debian-exim");
	load_ok("[mail]\nmta = exim\nsocket = /srv/g.sock\ngroup = mail\n", &c);
	assert_string_equal(c.mail_socket, "/srv/g.sock");
	assert_string_equal(c.mail_group, "mail");
	load_ok("[mail]\nmta = postfix\n", &c);
	assert_false(c.mail_exim);
	assert_string_equal(c.mail_group, "postfix");
}

/* action redirect with the gate that puts limits on what it sends to the MTA. */
static void
redirect_with_the_gate_is_taken(void **state)
{
	static const char text[] = "[guard]\naction = redirect\nredirect_to = 2525\n"
	    "[mail]\ngate = yes\n";
	struct config c;
	char err[ERR_MAX] = "";

	(void)state;
	if (config_load_string(&c, text, sizeof(text) - 1, "t.conf", err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(c.action, ACTION_REDIRECT);
	assert_int_equal(c.redirect_to, 2525);
	assert_true(c.mail_gate);
}

/* BOM, CRLF, indented lines, an inline comment, "key: value". */
static void
file_from_a_windows_editor_is_read(void **state)
{
	struct config c;
	char err[ERR_MAX] = "";

	(void)state;
	if (config_load(&c, FIXTURES "windows.conf", err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(c.action, ACTION_AUDIT);
	assert_int_equal(c.nports, 1);
	assert_int_equal(c.ports[0], 587);
	assert_int_equal(c.log_rate, 3);
}

/* libinih alone would append an indented line to the previous value. */
static void
indented_key_is_a_key_not_a_continuation(void **state)
{
	struct config c;

	(void)state;
	load_ok("[guard]\nports = 25\n   queue = 3\n", &c);
	assert_int_equal(c.nports, 1);
	assert_int_equal(c.queue_num, 3);
}

static void
booleans_read_every_spelling(void **state)
{
	static const char *const yes[] = { "yes", "YES", "true", "on", "1" };
	static const char *const no[] = { "no", "False", "off", "0" };
	struct config c;
	char text[128];

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		snprintf(text, sizeof(text), "[guard]\ndetect_any_port = %s\n", yes[i]);
		load_ok(text, &c);
		assert_true(c.detect_any_port);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		snprintf(text, sizeof(text), "[guard]\nallow_local = %s\n", no[i]);
		load_ok(text, &c);
		assert_false(c.allow_local);
	}
}

static void
numbers_are_decimal_even_with_a_leading_zero(void **state)
{
	struct config c;

	(void)state;
	load_ok("[guard]\nports = 025, 0587\nqueue = 010\n", &c);
	assert_int_equal(c.ports[0], 25);
	assert_int_equal(c.ports[1], 587);
	assert_int_equal(c.queue_num, 10);
}

static void
bounds_themselves_are_accepted(void **state)
{
	struct config c;

	(void)state;
	load_ok("[guard]\nports = 1 65535\nqueue = 65535\nqueue_maxlen = 1048576\n"
	    "inspect_bytes = 64\nmark_mask = 7\n[log]\nrate = 100000\nwindow = 86400\n"
	    "[alert]\nthreshold = 1000000/10min\n", &c);
	assert_int_equal(c.ports[1], 65535);
	assert_int_equal(c.queue_num, 65535);
	assert_int_equal(c.queue_maxlen, 1048576);
	assert_int_equal(c.inspect_bytes, 64);
	assert_int_equal(c.mark_mask, 7);
	assert_int_equal(c.log_rate, 100000);
	assert_int_equal(c.log_window, 86400);
	assert_int_equal(c.alert_threshold, 1000000);
}

static void
mta_users_takes_names_and_uids(void **state)
{
	struct config c;

	(void)state;
	load_ok("[guard]\nmta_users = postfix,Debian-exim 8 nullmail$\n", &c);
	assert_string_equal(c.mta_users, "postfix,Debian-exim 8 nullmail$");
	assert_int_equal(c.mta_users_line, 2);
}

static void
alert_exec_may_be_empty(void **state)
{
	struct config c;

	(void)state;
	load_ok("[alert]\nexec =\nthreshold = 12\n", &c);
	assert_string_equal(c.alert_exec, "");
	assert_int_equal(c.alert_threshold, 12);
}

struct bad {
	const char	*text;
	const char	*err;
};

static const struct bad bad_values[] = {
	{ "[guard]\nqueue = 70000\n",
	  "t.conf:2: [guard] queue: expected a number from 0 to 65535 (got '70000')" },
	{ "[guard]\nqueue = -1\n",
	  "t.conf:2: [guard] queue: expected a number from 0 to 65535 (got '-1')" },
	{ "[guard]\nqueue = 12abc\n",
	  "t.conf:2: [guard] queue: expected a number from 0 to 65535 (got '12abc')" },
	{ "[guard]\nqueue =\n",
	  "t.conf:2: [guard] queue: expected a number from 0 to 65535 (got '')" },
	{ "[guard]\nqueue = 99999999999999999999999\n",
	  "t.conf:2: [guard] queue: expected a number from 0 to 65535 "
	  "(got '99999999999999999999999')" },
	{ "[guard]\nqueue_maxlen = 0\n",
	  "t.conf:2: [guard] queue_maxlen: expected a number from 1 to 1048576 (got '0')" },
	{ "[guard]\ntrap_port = 0\n",
	  "t.conf:2: [guard] trap_port: expected a number from 1 to 65535 (got '0')" },
	/* values that would break the fence */
	{ "[guard]\ntrap_port = 25\n",
	  "t.conf:2: [guard] trap_port: 25 is a fenced port: trapped flows would be sent to "
	  "an SMTP port; choose one outside ports (got '25')" },
	{ "[guard]\nports = 25, 10025\n",
	  "t.conf:2: [guard] ports: 10025 is the trap's port (trap_port): fencing it would "
	  "send trapped flows back to the fence; set trap_port to a port outside ports "
	  "(got '10025')" },
	{ "[guard]\nredirect_to = 0\n",
	  "t.conf:2: [guard] redirect_to: expected a number from 1 to 65535 (got '0')" },
	{ "[guard]\nredirect_to = 10025\n",
	  "t.conf:2: [guard] redirect_to: 10025 is the trap's port: redirected mail would be "
	  "refused by the trap instead of queued by the MTA; give the MTA's smtpd port (25) "
	  "(got '10025')" },
	{ "[guard]\nports = 587\ntrap_port = 25\n",
	  "t.conf:3: [guard] trap_port: 25 is the port redirected flows go to "
	  "(redirect_to): choose another trap port (got '25')" },
	{ "[guard]\naction = redirect\n",
	  "t.conf:2: [guard] action: redirected mail would enter the MTA's queue with no "
	  "limit on it: set [mail] gate = yes (and `smtpguard mail enable`), or choose "
	  "reject, trap or audit (got 'redirect')" },
	{ "[guard]\nmta_users = postfix, 0\n",
	  "t.conf:2: [guard] mta_users: '0' is root: root is fenced like every user, and "
	  "exempting it would exempt anything running as root; name the MTA's own "
	  "account(s) (got 'postfix, 0')" },
	{ "[guard]\nmta_users = root\n",
	  "t.conf:2: [guard] mta_users: 'root' is root: root is fenced like every user, and "
	  "exempting it would exempt anything running as root; name the MTA's own "
	  "account(s) (got 'root')" },
	{ "[guard]\ninspect_bytes = 63\n",
	  "t.conf:2: [guard] inspect_bytes: expected a number from 64 to 1048576 (got '63')" },
	{ "[log]\nrate = 0\n",
	  "t.conf:2: [log] rate: expected a number from 1 to 100000 (got '0')" },
	{ "[log]\nwindow = 86401\n",
	  "t.conf:2: [log] window: expected a number from 1 to 86400 (got '86401')" },
	{ "[guard]\nports = 25, 0\n",
	  "t.conf:2: [guard] ports: '0' is not a port (1-65535) (got '25, 0')" },
	{ "[guard]\nports = 25 65536\n",
	  "t.conf:2: [guard] ports: '65536' is not a port (1-65535) (got '25 65536')" },
	{ "[guard]\nports = 0x19\n",
	  "t.conf:2: [guard] ports: '0x19' is not a port (1-65535) (got '0x19')" },
	{ "[guard]\nports = 25, 587, 25\n",
	  "t.conf:2: [guard] ports: port 25 listed twice (got '25, 587, 25')" },
	{ "[guard]\nports = ,\n",
	  "t.conf:2: [guard] ports: at least one port is needed (got ',')" },
	{ "[guard]\nallow_local = maybe\n",
	  "t.conf:2: [guard] allow_local: expected yes or no (also true/false, on/off, 1/0) "
	  "(got 'maybe')" },
	{ "[log]\nsyslog = 2\n",
	  "t.conf:2: [log] syslog: expected yes or no (also true/false, on/off, 1/0) "
	  "(got '2')" },
	{ "[guard]\naction = allow\n",
	  "t.conf:2: [guard] action: expected reject, trap, audit or redirect (got 'allow')" },
	{ "[guard]\naction = drop\n",
	  "t.conf:2: [guard] action: expected reject, trap, audit or redirect (got 'drop')" },
	{ "[guard]\nmark_mask = 0\n",
	  "t.conf:2: [guard] mark_mask: expected a mask whose lowest set bits can hold the "
	  "values 1-7 (3 contiguous bits), e.g. 0x00700000 (got '0')" },
	{ "[guard]\nmark_mask = 0x00300000\n",
	  "t.conf:2: [guard] mark_mask: expected a mask whose lowest set bits can hold the "
	  "values 1-7 (3 contiguous bits), e.g. 0x00700000 (got '0x00300000')" },
	/* holds 4 (bit 2) but not 2 or 3 (bit 1): the states must all fit */
	{ "[guard]\nmark_mask = 0x5\n",
	  "t.conf:2: [guard] mark_mask: expected a mask whose lowest set bits can hold the "
	  "values 1-7 (3 contiguous bits), e.g. 0x00700000 (got '0x5')" },
	{ "[guard]\nmark_mask = 0x100000000\n",
	  "t.conf:2: [guard] mark_mask: expected a mask whose lowest set bits can hold the "
	  "values 1-7 (3 contiguous bits), e.g. 0x00700000 (got '0x100000000')" },
	{ "[guard]\nexceptions = etc/exceptions.conf\n",
	  "t.conf:2: [guard] exceptions: must be an absolute path (got 'etc/exceptions.conf')" },
	{ "[guard]\ncontrol_socket = control.sock\n",
	  "t.conf:2: [guard] control_socket: must be an absolute path (got 'control.sock')" },
	{ "[guard]\npid_file = ./smtpguardd.pid\n",
	  "t.conf:2: [guard] pid_file: must be an absolute path (got './smtpguardd.pid')" },
	{ "[log]\nfile = events.jsonl\n",
	  "t.conf:2: [log] file: must be an absolute path (got 'events.jsonl')" },
	{ "[log]\nfile =\n",
	  "t.conf:2: [log] file: must be an absolute path (got '')" },
	{ "[alert]\nexec = page-admin\n",
	  "t.conf:2: [alert] exec: must be an absolute path (got 'page-admin')" },
	{ "[alert]\nthreshold = 5/hour\n",
	  "t.conf:2: [alert] threshold: expected N or N/10min, N from 0 to 1000000 (0 = off) "
	  "(got '5/hour')" },
	{ "[alert]\nthreshold = lots\n",
	  "t.conf:2: [alert] threshold: expected N or N/10min, N from 0 to 1000000 (0 = off) "
	  "(got 'lots')" },
	{ "[alert]\nthreshold = /10min\n",
	  "t.conf:2: [alert] threshold: expected N or N/10min, N from 0 to 1000000 (0 = off) "
	  "(got '/10min')" },
	{ "[guard]\nmta_users = auto, postfix\n",
	  "t.conf:2: [guard] mta_users: auto cannot be mixed with names: list every account "
	  "instead (got 'auto, postfix')" },
	{ "[guard]\nmta_users = post/fix\n",
	  "t.conf:2: [guard] mta_users: 'post/fix' is not a user name (got 'post/fix')" },
	{ "[guard]\nmta_users = 4294967295\n",
	  "t.conf:2: [guard] mta_users: '4294967295' is not a uid (0-4294967294) "
	  "(got '4294967295')" },
	{ "[guard]\nmta_users =\n",
	  "t.conf:2: [guard] mta_users: expected auto or a list of user names and uids "
	  "(got '')" },
	{ "[guard]\n\n; a comment\nfoo = 1\n",
	  "t.conf:4: [guard] foo: unknown key (got '1')" },
	{ "[log]\nqueue = 1\n",
	  "t.conf:2: [log] queue: unknown key (got '1')" },
	{ "[mail]\nrelay = yes\n",
	  "t.conf:2: [mail] relay: unknown key (got 'yes')" },
	{ "[mail]\nlimit = 200\n",
	  "t.conf:2: [mail] limit: expected N/hour, N from 0 to 10000000 (got '200')" },
	{ "[mail]\ndomain_limit = none\n",
	  "t.conf:2: [mail] domain_limit: expected N/hour, N from 0 to 10000000, or off "
	  "(got 'none')" },
	{ "[mail]\nmta = sendmail\n",
	  "t.conf:2: [mail] mta: expected postfix or exim (got 'sendmail')" },
	{ "[mail]\nover_limit = drop\n",
	  "t.conf:2: [mail] over_limit: expected hold, defer or reject (got 'drop')" },
	{ "[mail]\nfail = open\n",
	  "t.conf:2: [mail] fail: expected accept or tempfail (got 'open')" },
	{ "[metrics]\ntextfile = smtpguard.prom\n",
	  "t.conf:2: [metrics] textfile: must be an absolute path (got 'smtpguard.prom')" },
	{ "[metrics]\ninterval = 0\n",
	  "t.conf:2: [metrics] interval: expected a number from 1 to 3600 (got '0')" },
	{ "[metrics]\ntop_users = 101\n",
	  "t.conf:2: [metrics] top_users: expected a number from 0 to 100 (got '101')" },
	{ "[gate]\nx = 1\n",
	  "t.conf:1: unknown section (known: [guard], [log], [alert], [trap], [mail], [metrics]) "
	  "(got '[gate]')" },
	{ "[guard]\nqueue = 1\n[bogus]\n",
	  "t.conf:3: unknown section (known: [guard], [log], [alert], [trap], [mail], [metrics]) "
	  "(got '[bogus]')" },
	{ "[guard\nqueue = 1\n",
	  "t.conf:1: a [section] line without ']' (got '[guard')" },
	{ "[guard] queue = 1\n",
	  "t.conf:1: text after a [section] (got '[guard] queue = 1')" },
	{ "[guard]\nqueue = 1\n# later, someone adds it again\nqueue = 2\n",
	  "t.conf:4: [guard] queue: duplicate key (got '2')" },
	{ "[guard]\njust some words\n",
	  "t.conf:2: not a [section] or key = value line (got 'just some words')" },
	{ "[guard]\n= 5\n",
	  "t.conf:2: a value without a key (got '= 5')" },
	{ "queue = 1\n",
	  "t.conf:1: queue: key before any [section] (got '1')" },
};

static void
every_mistake_names_file_line_key_and_value(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++)
		load_fails(bad_values[i].text, bad_values[i].err);
}

static void
too_many_ports_is_a_list_too_long(void **state)
{
	char text[512] = "[guard]\nports =";
	struct config c;
	char err[ERR_MAX];
	const char *want = "t.conf:2: [guard] ports: list too long: more than 32 ports";

	(void)state;
	for (int p = 1; p <= CONFIG_MAX_PORTS + 1; p++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), " %d", p);
	strcat(text, "\n");
	assert_int_equal(config_load_string(&c, text, strlen(text), "t.conf", err,
	    sizeof(err)), -1);
	assert_true(strncmp(err, want, strlen(want)) == 0);
}

static void
too_many_mta_users_is_a_list_too_long(void **state)
{
	char text[512] = "[guard]\nmta_users =";
	struct config c;
	char err[ERR_MAX];
	const char *want = "t.conf:2: [guard] mta_users: list too long: more than 64 accounts";

	(void)state;
	for (int i = 0; i <= CONFIG_MAX_UIDS; i++)
		strcat(text, i ? ",1" : " 1");
	strcat(text, "\n");
	assert_int_equal(config_load_string(&c, text, strlen(text), "t.conf", err,
	    sizeof(err)), -1);
	assert_true(strncmp(err, want, strlen(want)) == 0);
}

/* libinih would split it and read the tail as a line of its own. */
static void
overlong_line_is_refused_not_cut(void **state)
{
	char text[512] = "[log]\nfile = /";
	struct config c;
	char err[ERR_MAX];
	const char *want = "t.conf:2: line longer than 197 characters (got 'file = /aaaa";

	(void)state;
	memset(text + strlen(text), 'a', 250);
	strcat(text, "\n");
	assert_int_equal(config_load_string(&c, text, strlen(text), "t.conf", err,
	    sizeof(err)), -1);
	assert_true(strncmp(err, want, strlen(want)) == 0);
}

static void
line_of_exactly_the_limit_is_read(void **state)
{
	char text[512] = "[log]\nfile = /";
	struct config c;
	size_t pad = 197 - strlen("file = /");

	(void)state;
	memset(text + strlen(text), 'a', pad);
	strcat(text, "\n");
	load_ok(text, &c);
	assert_int_equal(strlen(c.log_file), 1 + pad);
}

static void
nul_byte_means_not_a_text_file(void **state)
{
	static const char text[] = "[guard]\nqueue = 1\0 2\n";
	struct config c;
	char err[ERR_MAX];

	(void)state;
	assert_int_equal(config_load_string(&c, text, sizeof(text) - 1, "t.conf", err,
	    sizeof(err)), -1);
	assert_string_equal(err, "t.conf:2: a NUL byte: not a text file (got '')");
}

static void
refused_file_leaves_nothing_usable(void **state)
{
	struct config c;
	char err[ERR_MAX];
	static const char text[] = "[guard]\nports = 2525\nqueue = x\n";

	(void)state;
	assert_int_equal(config_load_string(&c, text, strlen(text), "t.conf", err,
	    sizeof(err)), -1);
	assert_int_equal(c.nports, 0);
	assert_string_equal(c.path, "");
	assert_string_equal(c.log_file, "");
}

static void
missing_file_is_named(void **state)
{
	struct config c;
	char err[ERR_MAX];

	(void)state;
	assert_int_equal(config_load(&c, FIXTURES "no-such.conf", err, sizeof(err)), -1);
	assert_string_equal(err, FIXTURES "no-such.conf: No such file or directory");
}

static void
directory_is_not_a_config(void **state)
{
	struct config c;
	char err[ERR_MAX];

	(void)state;
	assert_int_equal(config_load(&c, FIXTURES, err, sizeof(err)), -1);
	assert_string_equal(err, FIXTURES ": not a regular file of at most 262144 bytes");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_are_the_documented_ones),
		cmocka_unit_test(shipped_conf_changes_nothing),
		cmocka_unit_test(empty_file_means_defaults),
		cmocka_unit_test(every_key_reaches_the_config),
		cmocka_unit_test(mta_exim_gets_its_own_socket_and_group_unless_given),
		cmocka_unit_test(redirect_with_the_gate_is_taken),
		cmocka_unit_test(file_from_a_windows_editor_is_read),
		cmocka_unit_test(indented_key_is_a_key_not_a_continuation),
		cmocka_unit_test(booleans_read_every_spelling),
		cmocka_unit_test(numbers_are_decimal_even_with_a_leading_zero),
		cmocka_unit_test(bounds_themselves_are_accepted),
		cmocka_unit_test(mta_users_takes_names_and_uids),
		cmocka_unit_test(alert_exec_may_be_empty),
		cmocka_unit_test(every_mistake_names_file_line_key_and_value),
		cmocka_unit_test(too_many_ports_is_a_list_too_long),
		cmocka_unit_test(too_many_mta_users_is_a_list_too_long),
		cmocka_unit_test(overlong_line_is_refused_not_cut),
		cmocka_unit_test(line_of_exactly_the_limit_is_read),
		cmocka_unit_test(nul_byte_means_not_a_text_file),
		cmocka_unit_test(refused_file_leaves_nothing_usable),
		cmocka_unit_test(missing_file_is_named),
		cmocka_unit_test(directory_is_not_a_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
