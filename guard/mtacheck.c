/*
 * mtacheck.c — `smtpguard mta-check`: is this host's MTA an open relay?
 * A child process moves into a new network namespace joined to this host by
 * a veth pair on a documentation subnet (192.0.2.252/30), so the MTA sees an
 * outside client. From there it reads the banner and EHLO, then offers a
 * message for a foreign domain without AUTH and stops at RCPT: no DATA is
 * ever sent, so nothing is queued. Its only route leads to this host, and it
 * connects only to the address the MTA listens on. The namespace and both
 * veth ends vanish with the child. It stays one room past 600 lines: the
 * namespace, its veth (rtnetlink by hand), the probe and the printout are
 * one procedure whose set-up and clean-up order must be read as one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "smtpguard.h"

#define HOST_ADDR	"192.0.2.253"	/* this host's end of the veth */
#define CLIENT_ADDR	"192.0.2.254"	/* the outside client's */
#define NET_PREFIX	30
#define PORTS_MAX	8
#define REPLY_MAX	512		/* kept of each SMTP reply */
#define SMTP_WAIT_S	10		/* per reply; a slow MTA (tarpit) answers within it */
#define CHECK_WAIT_S	60		/* the whole child, whatever happens */
#define DEFAULT_RCPT	"relay-test@smtpguard-relay-check.example"	/* RFC 2606 */
#define PROBE_HELO	"mta-check.smtpguard.invalid"

enum listen_kind { LISTEN_NONE, LISTEN_LOOPBACK, LISTEN_ADDR, LISTEN_ANY };

/* What the child learned on one port; sent up the pipe whole. */
struct port_check {
	uint16_t	 port;
	enum listen_kind listen;
	char		 target[INET_ADDRSTRLEN];
	char		 error[160];		/* connect or dialogue failure */
	char		 banner[REPLY_MAX];
	char		 ehlo[REPLY_MAX];
	char		 mail[REPLY_MAX];
	char		 rcpt[REPLY_MAX];
	int		 rcpt_code;		/* 0: RCPT not reached */
	bool		 starttls, auth_clear;
	char		 auth_mechs[128];
};

/* --- who listens ------------------------------------------------------------ */

/*
 * The MTA's listeners on PORT, from /proc/net/tcp{,6}: a wildcard wins, then
 * a non-loopback IPv4 address (kept in addr), then loopback only.
 */
static enum listen_kind
find_listener(uint16_t port, char *addr, size_t len)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	enum listen_kind best = LISTEN_NONE;
	char line[512];

	for (size_t f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "re");

		if (fp == NULL)
			continue;
		while (fgets(line, sizeof(line), fp) != NULL) {
			char local[64];
			unsigned int lport, state;

			if (sscanf(line, " %*u: %63[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", local, &lport,
			    &state) != 3 || state != 0x0A || lport != port)
				continue;
			if (strspn(local, "0") == strlen(local)) {
				best = LISTEN_ANY;
			} else if (f == 0) {
				struct in_addr a = { .s_addr = (in_addr_t)strtoul(local, NULL, 16) };

				if ((ntohl(a.s_addr) >> 24) == 127) {
					if (best == LISTEN_NONE)
						best = LISTEN_LOOPBACK;
				} else if (best != LISTEN_ANY) {
					best = LISTEN_ADDR;
					inet_ntop(AF_INET, &a, addr, (socklen_t)len);
				}
			} else if (best == LISTEN_NONE)
				best = LISTEN_LOOPBACK;	/* ::1 or another IPv6 address: not checked */
		}
		fclose(fp);
	}
	return best;
}

/* --- rtnetlink -------------------------------------------------------------- */

static int
rt_talk(struct mnl_socket *nl, struct nlmsghdr *nlh)
{
	static unsigned int seq;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	ssize_t n;

	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ||
	    (n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) < 0)
		return -1;
	return mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl), NULL, NULL) < 0 ? -1 : 0;
}

static struct nlmsghdr *
rt_link_msg(char *buf, uint16_t type, uint16_t flags, int ifindex)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	return nlh;
}

/* A veth pair: HOST here, PEER in the network namespace of process PID. */
static int
rt_veth(struct mnl_socket *nl, const char *host, const char *peer, pid_t pid)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = rt_link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
	struct nlattr *info, *data, *peer_attr;
	struct ifinfomsg *peer_ifi;

	mnl_attr_put_strz(nlh, IFLA_IFNAME, host);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	peer_attr = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	/* VETH_INFO_PEER carries a struct ifinfomsg before its own attributes. */
	peer_ifi = mnl_nlmsg_get_payload_tail(nlh);
	memset(peer_ifi, 0, sizeof(*peer_ifi));
	nlh->nlmsg_len += MNL_ALIGN(sizeof(*peer_ifi));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_PID, (uint32_t)pid);
	mnl_attr_nest_end(nlh, peer_attr);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	return rt_talk(nl, nlh);
}

static int
rt_link_up(struct mnl_socket *nl, int ifindex)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = rt_link_msg(buf, RTM_NEWLINK, 0, ifindex);
	struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);

	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	return rt_talk(nl, nlh);
}

static int
rt_link_del(struct mnl_socket *nl, int ifindex)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];

	return rt_talk(nl, rt_link_msg(buf, RTM_DELLINK, 0, ifindex));
}

static int
rt_addr(struct mnl_socket *nl, int ifindex, const char *addr)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;
	struct in_addr a;

	if (inet_pton(AF_INET, addr, &a) != 1)
		return -1;
	nlh->nlmsg_type = RTM_NEWADDR;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = NET_PREFIX;
	ifa->ifa_index = (unsigned int)ifindex;
	mnl_attr_put(nlh, IFA_LOCAL, sizeof(a), &a);
	mnl_attr_put(nlh, IFA_ADDRESS, sizeof(a), &a);
	return rt_talk(nl, nlh);
}

static int
rt_default_route(struct mnl_socket *nl, int ifindex, const char *gateway)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	struct in_addr gw;

	if (inet_pton(AF_INET, gateway, &gw) != 1)
		return -1;
	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = RTPROT_BOOT;
	rtm->rtm_scope = RT_SCOPE_UNIVERSE;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_GATEWAY, sizeof(gw), &gw);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
	return rt_talk(nl, nlh);
}

/* --- the SMTP dialogue (in the child) -------------------------------------------- */

struct smtp_conn {
	int	 fd;
	char	 buf[4096];
	size_t	 len;
};

/* One whole reply (all its lines); returns its code, or -1. The text is kept joined by "; ". */
static int
smtp_reply(struct smtp_conn *c, char *text, size_t textlen)
{
	size_t used = 0;

	text[0] = '\0';
	for (;;) {
		char *nl;
		ssize_t n;

		while ((nl = memchr(c->buf, '\n', c->len)) == NULL) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

			if (c->len == sizeof(c->buf) || poll(&pfd, 1, SMTP_WAIT_S * 1000) <= 0 ||
			    (n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len)) <= 0)
				return -1;
			c->len += (size_t)n;
		}
		*nl = '\0';
		if (nl > c->buf && nl[-1] == '\r')
			nl[-1] = '\0';
		if (used + 2 < textlen)
			used += (size_t)snprintf(text + used, textlen - used, "%s%s", used ? "; " : "",
			    c->buf);
		if (used >= textlen)
			used = textlen - 1;
		bool last = strlen(c->buf) < 4 || c->buf[3] != '-';
		int code = (int)strtol(c->buf, NULL, 10);

		c->len -= (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, c->len);
		if (last)
			return code >= 200 && code <= 599 ? code : -1;
	}
}

static int
smtp_send(struct smtp_conn *c, const char *line)
{
	size_t n = strlen(line);

	return write(c->fd, line, n) == (ssize_t)n ? 0 : -1;
}

/* EHLO's keywords: STARTTLS, and AUTH before any TLS. */
static void
ehlo_keywords(struct port_check *pc)
{
	for (char *p = pc->ehlo; p != NULL && *p != '\0'; p = strstr(p, "; ")) {
		if (p[0] == ';')
			p += 2;
		if (strlen(p) < 4)
			break;
		p += 4;		/* "250-" */
		if (strncasecmp(p, "STARTTLS", 8) == 0)
			pc->starttls = true;
		else if (strncasecmp(p, "AUTH", 4) == 0 && (p[4] == ' ' || p[4] == '=')) {
			const char *e = strstr(p, "; ");
			size_t n = e ? (size_t)(e - p - 5) : strlen(p + 5);

			pc->auth_clear = true;
			if (n >= sizeof(pc->auth_mechs))
				n = sizeof(pc->auth_mechs) - 1;
			memcpy(pc->auth_mechs, p + 5, n);
			pc->auth_mechs[n] = '\0';
		}
	}
}

static void
check_port(struct port_check *pc, const char *rcpt)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(pc->port) };
	struct smtp_conn c = { .fd = -1 };
	char cmd[600];
	int code;

	inet_pton(AF_INET, pc->target, &sin.sin_addr);
	if ((c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(c.fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		snprintf(pc->error, sizeof(pc->error), "connect to %s:%u: %s", pc->target,
		    pc->port, strerror(errno));
		goto out;
	}
	if ((code = smtp_reply(&c, pc->banner, sizeof(pc->banner))) != 220) {
		snprintf(pc->error, sizeof(pc->error), "no 220 banner%s", code < 0 ?
		    " (closed or silent)" : "");
		goto out;
	}
	if (smtp_send(&c, "EHLO " PROBE_HELO "\r\n") < 0 ||
	    smtp_reply(&c, pc->ehlo, sizeof(pc->ehlo)) != 250) {
		snprintf(pc->error, sizeof(pc->error), "EHLO refused");
		goto out;
	}
	ehlo_keywords(pc);
	/* The null sender: the relay decision is made at RCPT, whoever the sender is. */
	if (smtp_send(&c, "MAIL FROM:<>\r\n") < 0 ||
	    (code = smtp_reply(&c, pc->mail, sizeof(pc->mail))) < 0) {
		snprintf(pc->error, sizeof(pc->error), "no answer to MAIL FROM");
		goto out;
	}
	if (code / 100 != 2)
		goto quit;
	snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>\r\n", rcpt);
	if (smtp_send(&c, cmd) < 0 || (pc->rcpt_code = smtp_reply(&c, pc->rcpt,
	    sizeof(pc->rcpt))) < 0) {
		pc->rcpt_code = 0;
		snprintf(pc->error, sizeof(pc->error), "no answer to RCPT TO");
		goto out;
	}
	/* Never DATA: an open relay would queue the message for delivery. */
	(void)smtp_send(&c, "RSET\r\n");
quit:
	(void)smtp_send(&c, "QUIT\r\n");
out:
	if (c.fd >= 0)
		close(c.fd);
}

/* The child: wait for the veth, give its end an address and a route home, probe, report. */
static void
child_main(int ready_fd, int go_fd, int result_fd, const char *peer, struct port_check *pcs,
    size_t n, const char *rcpt)
{
	struct mnl_socket *nl;
	char go;
	int ifindex;

	alarm(CHECK_WAIT_S);
	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(pcs[0].error, sizeof(pcs[0].error), "unshare(CLONE_NEWNET): %s",
		    strerror(errno));
		goto report;
	}
	if (write(ready_fd, "r", 1) != 1 || read(go_fd, &go, 1) != 1 || go != 'g')
		_exit(1);
	if ((nl = mnl_socket_open(NETLINK_ROUTE)) == NULL ||
	    mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    (ifindex = (int)if_nametoindex(peer)) == 0 || rt_link_up(nl, ifindex) < 0 ||
	    rt_addr(nl, ifindex, CLIENT_ADDR) < 0 ||
	    rt_default_route(nl, ifindex, HOST_ADDR) < 0) {
		snprintf(pcs[0].error, sizeof(pcs[0].error), "setting up %s: %s", peer,
		    strerror(errno));
		goto report;
	}
	mnl_socket_close(nl);
	for (size_t i = 0; i < n; i++)
		if (pcs[i].listen == LISTEN_ANY || pcs[i].listen == LISTEN_ADDR)
			check_port(&pcs[i], rcpt);
report:
	for (size_t i = 0; i < n; i++)
		if (write(result_fd, &pcs[i], sizeof(pcs[i])) != (ssize_t)sizeof(pcs[i]))
			_exit(1);
	_exit(0);
}

/* --- the command ---------------------------------------------------------------- */

static bool
address_in_use(void)
{
	struct ifaddrs *ifa, *i;
	bool used = false;

	if (getifaddrs(&ifa) < 0)
		return false;
	for (i = ifa; i != NULL; i = i->ifa_next) {
		char s[INET_ADDRSTRLEN];

		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET)
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, s, sizeof(s));
		used |= strcmp(s, HOST_ADDR) == 0 || strcmp(s, CLIENT_ADDR) == 0;
	}
	freeifaddrs(ifa);
	return used;
}

/* Runs the child and collects its findings; -1 with a message in err. */
static int
run_probe(struct port_check *pcs, size_t n, const char *rcpt, char *err, size_t errlen)
{
	char host[IFNAMSIZ], peer[IFNAMSIZ], r;
	int ready[2], go[2], result[2], status, ifindex = 0, rc = -1;
	struct mnl_socket *nl = NULL;
	pid_t pid;

	snprintf(host, sizeof(host), "sgchk%d", (int)getpid() % 100000);
	snprintf(peer, sizeof(peer), "sgchkp%d", (int)getpid() % 100000);
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0 ||
	    pipe2(result, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		close(result[0]);
		child_main(ready[1], go[0], result[1], peer, pcs, n, rcpt);
	}
	close(ready[1]);
	close(go[0]);
	close(result[1]);
	if (read(ready[0], &r, 1) != 1) {
		/* the child could not unshare: its report says why */
		goto collect;
	}
	if ((nl = mnl_socket_open(NETLINK_ROUTE)) == NULL ||
	    mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "rtnetlink: %s", strerror(errno));
		goto fail;
	}
	if (rt_veth(nl, host, peer, pid) < 0) {
		snprintf(err, errlen, "creating veth %s: %s", host, strerror(errno));
		goto fail;
	}
	if ((ifindex = (int)if_nametoindex(host)) == 0 || rt_link_up(nl, ifindex) < 0 ||
	    rt_addr(nl, ifindex, HOST_ADDR) < 0) {
		snprintf(err, errlen, "setting up %s: %s", host, strerror(errno));
		goto fail;
	}
	if (write(go[1], "g", 1) != 1) {
		snprintf(err, errlen, "the probe process died");
		goto fail;
	}
collect:
	for (size_t i = 0; i < n; i++)
		if (read(result[0], &pcs[i], sizeof(pcs[i])) != (ssize_t)sizeof(pcs[i])) {
			snprintf(err, errlen, "the probe process gave no answer in %d s",
			    CHECK_WAIT_S);
			goto fail;
		}
	rc = 0;
fail:
	close(go[1]);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	/* The peer died with the child's namespace, and took this end with it. */
	if (nl != NULL && ifindex > 0 && if_nametoindex(host) != 0)
		(void)rt_link_del(nl, ifindex);
	if (nl != NULL)
		mnl_socket_close(nl);
	close(ready[0]);
	close(result[0]);
	return rc;
}

static const char *
listen_text(const struct port_check *pc)
{
	switch (pc->listen) {
	case LISTEN_ANY:
		return "all addresses";
	case LISTEN_ADDR:
		return pc->target;
	case LISTEN_LOOPBACK:
		return "loopback only";
	default:
		return "nothing";
	}
}

/* 0: not an open relay; 1: open relay. */
static int
verdict(const struct port_check *pc, const char **text)
{
	if (pc->listen == LISTEN_NONE)
		*text = "nothing listens";
	else if (pc->listen == LISTEN_LOOPBACK)
		*text = "listens on loopback only: other hosts cannot reach it";
	else if (pc->error[0] != '\0')
		*text = "not tested";
	else if (pc->rcpt_code == 0)
		*text = "MAIL FROM:<> refused, so relaying was not tested";
	else if (pc->rcpt_code / 100 == 2) {
		*text = "OPEN RELAY: it took mail for a foreign domain from an outside address "
		    "without AUTH";
		return 1;
	} else
		*text = "refuses to relay for an outside client without AUTH";
	return 0;
}

/* "250-mx.example; 250-PIPELINING; 250 SIZE" as "mx.example (PIPELINING SIZE)". */
static void
print_ehlo(const char *ehlo)
{
	char copy[REPLY_MAX], *save = NULL;
	size_t i = 0;

	strlcpy_sg(copy, ehlo, sizeof(copy));
	for (char *line = strtok_r(copy, ";", &save); line != NULL;
	    line = strtok_r(NULL, ";", &save), i++) {
		while (*line == ' ')
			line++;
		if (strlen(line) >= 4)
			line += 4;	/* "250-" */
		if (i == 1)
			fputs(" (", stdout);
		else if (i > 1)
			putchar(' ');
		put_safe(stdout, line, 80);
	}
	if (i > 1)
		putchar(')');
}

static void
print_check(const struct port_check *pc, const char *rcpt)
{
	const char *v;

	(void)verdict(pc, &v);
	printf("port %u: MTA listens on %s\n", pc->port, listen_text(pc));
	if (pc->banner[0] != '\0') {
		printf("  banner   ");
		put_safe(stdout, pc->banner, 200);
		printf("\n  EHLO     ");
		print_ehlo(pc->ehlo);
		printf("\n  TLS      STARTTLS %s; AUTH before TLS: %s", pc->starttls ? "offered" :
		    "NOT offered", pc->auth_clear ? "" : "no");
		if (pc->auth_clear) {
			put_safe(stdout, pc->auth_mechs, 80);
			printf(" (WARNING: passwords can cross the network in clear)");
		}
		putchar('\n');
	}
	if (pc->mail[0] != '\0') {
		printf("  relay    MAIL FROM:<> -> ");
		put_safe(stdout, pc->mail, 120);
		if (pc->rcpt[0] != '\0') {
			printf("\n           RCPT TO:<%s> -> ", rcpt);
			put_safe(stdout, pc->rcpt, 200);
		}
		putchar('\n');
	}
	if (pc->error[0] != '\0') {
		printf("  error    ");
		put_safe(stdout, pc->error, 160);
		putchar('\n');
	}
	printf("  verdict  %s\n", v);
}

static json_t *
check_json(const struct port_check *pc)
{
	const char *v;
	int open = verdict(pc, &v);

	return json_pack("{s:i, s:s, s:s?, s:s?, s:s?, s:b, s:b, s:s?, s:s?, s:s?, s:i, s:b, s:s,"
	    " s:s?}",
	    "port", pc->port, "listens", listen_text(pc),
	    "target", pc->target[0] ? pc->target : NULL,
	    "banner", pc->banner[0] ? pc->banner : NULL, "ehlo", pc->ehlo[0] ? pc->ehlo : NULL,
	    "starttls", pc->starttls, "auth_before_tls", pc->auth_clear,
	    "auth_mechanisms", pc->auth_mechs[0] ? pc->auth_mechs : NULL,
	    "mail_reply", pc->mail[0] ? pc->mail : NULL, "rcpt_reply", pc->rcpt[0] ? pc->rcpt : NULL,
	    "rcpt_code", pc->rcpt_code, "open_relay", open == 1, "verdict", v,
	    "error", pc->error[0] ? pc->error : NULL);
}

static const char check_help[] =
"usage: smtpguard mta-check [--port N]... [--to ADDRESS] [--json]\n"
"Is this host's MTA an open relay? From a throwaway network namespace on\n"
CLIENT_ADDR ", joined to this host by a veth (" HOST_ADDR "/30, removed after),\n"
"it reads the MTA's banner and EHLO, then offers mail for a foreign domain\n"
"without AUTH and stops at RCPT TO (no DATA: nothing is ever queued). It\n"
"connects only to the address the MTA listens on. IPv4 only; needs root.\n"
"  --port N     ports to check (default 25 and 587; up to 8)\n"
"  --to ADDR    the foreign recipient (default " DEFAULT_RCPT ")\n"
"  --json       one JSON array, an object per port\n"
"Exit status: 0 no open relay, 1 an open relay or a listening port that could\n"
"not be checked, 2 usage.\n"
"It also reports STARTTLS and whether AUTH is offered before TLS.\n";

enum { OPT_PORT = CLIOPT_OWN, OPT_TO };

struct check_args {
	uint16_t	 ports[PORTS_MAX];
	size_t		 nports;
	const char	*rcpt;
};

static int
check_option(void *ctx, int ch, const char *arg, char *err, size_t errlen)
{
	struct check_args *a = ctx;
	char *end;

	switch (ch) {
	case OPT_PORT: {
		long p = strtol(arg, &end, 10);

		if (*end != '\0' || p < 1 || p > 65535 || a->nports == PORTS_MAX) {
			snprintf(err, errlen, "bad --port '%s' (1-65535, at most %d)", arg,
			    PORTS_MAX);
			return -1;
		}
		a->ports[a->nports++] = (uint16_t)p;
		return 1;
	}
	case OPT_TO:
		if (strlen(arg) > 254 || strchr(arg, '@') == NULL ||
		    strpbrk(arg, "<> \r\n\t") != NULL) {
			snprintf(err, errlen, "bad --to '%s' (user@domain)", arg);
			return -1;
		}
		a->rcpt = arg;
		return 1;
	}
	return 0;
}

int
mta_check(int argc, char **argv)
{
	static const struct cliopt_option opts[] = {
		{ "port", true, OPT_PORT },
		{ "to", true, OPT_TO },
		{ NULL, false, 0 },
	};
	static const char *const help[] = { check_help, NULL };
	struct cliopt o = { .cmd = "mta-check", .help = help, .takes = CLIOPT_WANT_JSON };
	struct check_args args = { .ports = { 25, 587 }, .rcpt = DEFAULT_RCPT };
	struct port_check pcs[PORTS_MAX];
	uint16_t *ports = args.ports;
	size_t nports;
	const char *rcpt;
	char err[256];
	bool json, any = false;
	int rc, open = 0;

	if ((rc = cliopt_parse(&o, argc, argv, "h", opts, check_option, &args)) != 0)
		return rc == 1 ? 0 : 2;
	nports = args.nports;
	rcpt = args.rcpt;
	json = o.json;
	if (nports == 0)
		nports = 2;
	if (geteuid() != 0) {
		fprintf(stderr, "smtpguard mta-check: must run as root (it creates a network "
		    "namespace and a veth pair)\n");
		return 1;
	}
	memset(pcs, 0, sizeof(pcs));
	for (size_t i = 0; i < nports; i++) {
		pcs[i].port = ports[i];
		pcs[i].listen = find_listener(ports[i], pcs[i].target, sizeof(pcs[i].target));
		if (pcs[i].listen == LISTEN_ANY)
			strlcpy_sg(pcs[i].target, HOST_ADDR, sizeof(pcs[i].target));
		any |= pcs[i].listen == LISTEN_ANY || pcs[i].listen == LISTEN_ADDR;
	}
	if (any && address_in_use()) {
		fprintf(stderr, "smtpguard mta-check: %s or %s is already an address of this host; "
		    "the check needs both for its veth\n", HOST_ADDR, CLIENT_ADDR);
		return 1;
	}
	if (any && run_probe(pcs, nports, rcpt, err, sizeof(err)) < 0) {
		fprintf(stderr, "smtpguard mta-check: %s\n", err);
		return 1;
	}
	if (json) {
		json_t *a = json_array();

		for (size_t i = 0; i < nports; i++)
			json_array_append_new(a, check_json(&pcs[i]));
		json_dumpf(a, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(a);
	} else
		printf("mta-check: an outside client (%s, in a throwaway namespace) against this "
		    "host's MTA\n", CLIENT_ADDR);
	for (size_t i = 0; i < nports; i++) {
		const char *v;

		open |= verdict(&pcs[i], &v);
		open |= pcs[i].error[0] != '\0';
		if (!json)
			print_check(&pcs[i], rcpt);
	}
	fflush(stdout);
	return open || ferror(stdout) ? 1 : 0;
}
