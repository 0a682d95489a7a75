/*
 * smtpguard.h — the one private header of smtpguard: shared types, named bounds,
 * and one prototype section per source file (in the order data flows).
 */
#ifndef SMTPGUARD_H
#define SMTPGUARD_H

#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#define SMTPGUARD_VERSION	"0.1.0"
#define DEFAULT_CONFIG		"/etc/smtpguard/smtpguard.conf"
#define TABLE_NAME		"smtpguard"

/* Bounds. Each is a hard maximum; input beyond it is an error, never a realloc. */
#define CONFIG_MAX_PORTS	32	/* ports fenced; nobody fences more SMTP ports */
#define CONFIG_MAX_UIDS		64	/* mta_users after resolution */
#define CONFIG_MAX_LIST		1024	/* bytes of a list-valued config value */
#define USER_NAME_MAX		64	/* longer than any useradd(8) accepts */
#define CMDLINE_MAX		4096	/* cmdline bytes kept per process; rest cut */
#define CGROUP_MAX		512

/* Actions, in the order of the design's table (DESIGN.md §2). */
enum action {
	ACTION_NONE = 0,
	ACTION_REJECT,
	ACTION_TRAP,
	ACTION_AUDIT,
	ACTION_REDIRECT,	/* NAT to the local MTA: the mail gate's limits apply */
	ACTION_ALLOW,
};

/* What the mail gate does with one message (DESIGN.md §6). */
enum mail_action {
	MAIL_PASS = 0,		/* on to the queue */
	MAIL_HOLD,		/* into the MTA's hold queue (quarantine, freeze) */
	MAIL_DEFER,		/* 4xx: the client retries later */
	MAIL_REJECT,		/* 5xx */
};

/*
 * Flow states kept in the configured mark bits (config.mark_mask), in the packet
 * mark of a verdict and then in the conntrack mark. The value is shifted to the
 * lowest set bit of the mask; 0 means "not decided yet".
 */
enum mark_state {
	MARK_NONE = 0,
	MARK_ALLOW = 1,		/* accept the rest of the flow in the kernel */
	MARK_REJECT = 2,	/* reset every packet of the flow */
	MARK_TRAP = 3,		/* NAT redirect to the trap listener */
	MARK_INSPECT = 4,	/* keep queueing the flow's packets (audit) */
	MARK_STATE_MAX = 4,	/* the last one stored in the ct mark */
	MARK_PROBE = 5,		/* packet mark of the self-check's SYN: not local, refused */
	MARK_NAT = 6,		/* packet mark of a SYN queued after NAT: allow or reject only */
	MARK_REDIRECT = 7,	/* NAT redirect to the local MTA (redirect_to); in the ct mark */
	MARK_LAST = 7,		/* the largest value the mark bits must hold */
};

struct config {
	char		 path[PATH_MAX];
	char		 mta_users[CONFIG_MAX_LIST];	/* "auto" or names/uids */
	int		 mta_users_line;	/* where it was set; 0: the default */
	uint16_t	 ports[CONFIG_MAX_PORTS];
	size_t		 nports;
	enum action	 action;
	bool		 allow_local;
	bool		 connect_hook;	/* find senders with the eBPF connect hook */
	uint16_t	 queue_num;
	uint16_t	 audit_log_group;	/* nfnetlink_log group of audited flows' copies */
	uint32_t	 queue_maxlen;
	uint16_t	 trap_port;
	uint16_t	 redirect_to;	/* the local MTA's port redirected flows go to */
	size_t		 inspect_bytes;
	bool		 detect_any_port;
	uint32_t	 any_port_timeout;	/* seconds a probed flow may stay undecided */
	char		 mail_relays[CONFIG_MAX_LIST];	/* TLS names that mean SMTP */
	uint32_t	 mark_mask;
	char		 exceptions[PATH_MAX];
	char		 control_socket[PATH_MAX];
	char		 pid_file[PATH_MAX];
	char		 log_file[PATH_MAX];
	bool		 log_syslog;
	unsigned int	 log_rate;	/* full attempt lines per key per window */
	unsigned int	 log_window;	/* seconds */
	unsigned int	 alert_threshold;	/* attempts per uid per 10 min; 0 = off */
	char		 alert_exec[PATH_MAX];
	uint32_t	 trap_sessions;		/* concurrent trap sessions */
	uint32_t	 trap_timeout;		/* seconds a trap client may stay idle */
	size_t		 trap_bytes;		/* bytes a trap client may send */
	char		 trap_reply[200];	/* after "550 " at the end of DATA */
	char		 trap_user[USER_NAME_MAX];	/* the trap child runs as this user */
	/* [mail]: the gate (gate.c) */
	bool		 mail_gate;
	bool		 mail_exim;		/* mta = exim: an Exim ACL asks (eximreq.c), no milter */
#define CONFIG_EXIM_SOCKET	"/run/smtpguard-gate/gate.sock"	/* socket's default for Exim */
	char		 mail_socket[PATH_MAX];	/* the milter (or Exim readsocket) socket */
	char		 mail_queue[PATH_MAX];	/* Postfix's queue_directory */
	uint32_t	 mail_limit;		/* recipients per origin per hour */
	uint32_t	 mail_domain_limit;	/* per sender domain; MAILLIMIT_OFF: none */
	enum mail_action mail_over;		/* past a limit: hold, defer or reject */
	bool		 mail_fail_tempfail;	/* no verdict: tempfail (else accept) */
	char		 mail_state[PATH_MAX];	/* the counters across restarts */
	char		 mail_user[USER_NAME_MAX];	/* the gate child runs as this user */
	char		 mail_group[USER_NAME_MAX];	/* the MTA's group: may use the socket */
	/* [metrics]: the Prometheus textfile (metrics.c) */
	char		 metrics_textfile[PATH_MAX];	/* empty: no metrics written */
	uint32_t	 metrics_interval;	/* seconds between writes */
	uint32_t	 metrics_top_users;	/* users shown by name, at most METRICS_TOP_MAX */
};

/* A decoded IPv4/IPv6 TCP segment. Addresses are in network order. */
struct pkt {
	int		 family;	/* AF_INET or AF_INET6 */
	uint8_t		 src[16];
	uint8_t		 dst[16];
	uint16_t	 sport;		/* host order */
	uint16_t	 dport;		/* host order */
	uint32_t	 seq;		/* host order */
	uint8_t		 tcp_flags;	/* TH_SYN, TH_FIN, ... */
	const uint8_t	*payload;	/* into the caller's buffer */
	size_t		 payload_len;
};

/* Who made a connection. has_* / empty strings mean "unknown": never guessed. */
struct attrib {
	bool		 has_uid, has_gid, has_pid, has_ppid;
	uid_t		 uid;
	gid_t		 gid;
	pid_t		 pid;
	pid_t		 ppid;
	ino_t		 inode;		/* socket inode, 0 if not found */
	char		 user[USER_NAME_MAX];
	char		 exe[PATH_MAX];
	char		 cmdline[CMDLINE_MAX];	/* NULs turned into spaces */
	char		 cwd[PATH_MAX];
	char		 cgroup[CGROUP_MAX];
};

/*
 * What an SMTP session said (client side, audit) or carried (trap). Strings are
 * NUL-terminated, cut at their bound, empty when not seen. Never a password.
 */
#define SMTP_FIELD_MAX		256	/* RFC 5321 path limit (256) covers addresses */
#define SMTP_HEADER_MAX		512	/* one decoded header value kept */
#define SMTP_RCPT_KEEP		32	/* recipients kept by name; the rest only counted */
struct smtp_info {
	char		 helo[SMTP_FIELD_MAX];
	char		 mail_from[SMTP_FIELD_MAX];
	char		 mail_params[SMTP_FIELD_MAX];	/* SIZE=, BODY=, ... */
	char		 rcpt_to[SMTP_RCPT_KEEP][SMTP_FIELD_MAX];
	size_t		 nrcpt_kept;
	size_t		 nrcpt;		/* all RCPT TO commands seen */
	char		 auth_mech[32];
	char		 auth_user[SMTP_FIELD_MAX];
	bool		 starttls;
	bool		 data;		/* DATA was sent */
	char		 tls_sni[SMTP_FIELD_MAX];
	char		 subject[SMTP_HEADER_MAX];
	char		 header_from[SMTP_HEADER_MAX];
	char		 header_to[SMTP_HEADER_MAX];
	char		 message_id[SMTP_HEADER_MAX];
	char		 x_mailer[SMTP_HEADER_MAX];
	char		 php_script[SMTP_HEADER_MAX];
	char		 reply[SMTP_FIELD_MAX];	/* what the trap or server answered last */
	const char	*inspect;	/* "complete", "incomplete", "cap", ...; NULL: not said */
	const char	*proto;		/* "smtp" when found on a non-SMTP port */
	uint64_t	 bytes;		/* client bytes seen */
};

/* What a mail event adds (the gate, DESIGN.md §6); NULL/empty fields are left out. */
struct mail_event {
	const char	*origin, *domain, *sasl_user, *client_ip, *queue_id, *mta;
	uint64_t	 rcpt_count;
	bool		 counted;	/* hour_count means something: it left, or was to */
	uint32_t	 hour_count;
	uint32_t	 limit;		/* UINT32_MAX: none */
};

/* One event-log line; NULL / has_* false fields are left out of the JSON. */
struct event {
	struct timespec		 ts;		/* CLOCK_REALTIME */
	const char		*event;		/* attempt|smtp|summary|alert|daemon */
	const char		*action;	/* reject|trap|audit|allow */
	const char		*rule;		/* what decided: "default", "exception:www-data", ... */
	const char		*msg;		/* daemon and alert events: free text */
	const struct attrib	*who;
	const struct pkt	*flow;		/* addresses and ports */
	uint64_t		 flow_id;	/* 0 = none */
	const struct smtp_info	*smtp;		/* smtp events */
	const struct mail_event	*mail;		/* mail events */
	/* summary events */
	uint64_t		 suppressed;
	unsigned int		 window;
};

/* util.c */
#define HIST_BUCKETS	252	/* hist_bucket(UINT64_MAX) + 1 */
struct hist {
	uint64_t	 count[HIST_BUCKETS];
	uint64_t	 total;
	uint64_t	 max;
};
const char	*action_name(enum action);
int		 action_parse(const char *, enum action *);
uint32_t	 mark_value(uint32_t mask, enum mark_state);
enum mark_state	 mark_state_of(uint32_t mask, uint32_t mark);
size_t		 strlcpy_sg(char *, const char *, size_t);
int		 text_line(const char **p, const char *end, size_t max, const char **line,
		    size_t *len);
bool		 uid_in_sorted(uid_t, const uid_t *, size_t);
int		 ensure_parent_dir(const char *, mode_t);
int		 file_replace(const char *path, mode_t, int (*fill)(FILE *, void *), void *arg);
int		 file_replace_owned(const char *path, mode_t, uid_t, gid_t,
		    int (*fill)(FILE *, void *), void *arg);
int		 file_replace_bytes(const char *path, mode_t, uid_t, gid_t, const char *,
		    size_t);
uint64_t	 mono_ns(void);
void		 hist_add(struct hist *, uint64_t);
uint64_t	 hist_quantile(const struct hist *, double q);
void		 put_safe(FILE *, const char *, size_t max);
void		 cli_say(const char *, ...) __attribute__((format(printf, 1, 2)));
#define ERR_QUOTE_MAX	64	/* bytes of hostile input echoed in an error */
const char	*err_quote(const char *, char *out, size_t outlen);
bool		 utf8_valid(const unsigned char *);
int		 close_inherited(int *keep, size_t nkeep);
/* A chained hash table of nodes that embed struct hnode first; it doubles as it fills. */
struct hnode {
	struct hnode	*next;
	size_t		 hash;
};
struct htab {
	struct hnode	**b;
	size_t		  nb, n;
};
int		 htab_init(struct htab *);
void		 htab_insert(struct htab *, struct hnode *);
void		 htab_remove(struct htab *, struct hnode *);
void		 htab_free(struct htab *, void (*free_node)(struct hnode *));
void		 hnode_free(struct hnode *);
#define FNV1A64_BASIS	14695981039346656037ULL	/* FNV-1a's 64-bit offset basis */
#define FNV1A64_PRIME	1099511628211ULL	/* FNV's 64-bit prime, 2^40 + 2^8 + 0xb3 */
uint64_t	 fnv1a64(uint64_t h, const void *, size_t);
uint64_t	 fnv1a64_lower(uint64_t h, const void *, size_t);
size_t		 str_hash(const char *);

/* log.c */
void	 log_init(bool foreground);
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *, ...) __attribute__((format(printf, 1, 2)));

/* config.c */
void	 config_defaults(struct config *);
int	 config_load(struct config *, const char *path, char *err, size_t errlen);
int	 config_load_string(struct config *, const char *text, size_t len,
	    const char *name, char *err, size_t errlen);

/* mtauser.c */
int	 mtauser_resolve(const struct config *, const char *passwd_path, uid_t *uids,
	    size_t *nuids, char *found, size_t foundlen, char *err, size_t errlen);

/* cidr.c */
struct cidr {
	int		 family;
	uint8_t		 addr[16];
	uint8_t		 prefix;
};
int	 cidr_parse(const char *, struct cidr *);
bool	 cidr_contains(const struct cidr *, int family, const uint8_t *addr);
void	 cidr_format(const struct cidr *, char *, size_t);

/* exceptions.c */
#define EXCEPTIONS_MAX		1024	/* a big shared host has a few hundred sites */
#define EXCEPTION_LINE_MAX	1024	/* one line, NUL included, also once written out */
#define EXCEPTIONS_FILE_MAX	(4 * 1024 * 1024)	/* 4x every line at its longest: room for notes */
#define EXCEPTION_WHO_MAX	(USER_NAME_MAX + 1)	/* "@" + a group name */
#define EXCEPTION_UIDS_MAX	256	/* users of one @group */
#define EXCEPTION_CIDRS_MAX	16	/* a relay's or provider's published ranges */
#define EXCEPTION_PORTS_MAX	16	/* more than the fenced ports (25, 465, 587) */
#define EXCEPTION_COMMENT_MAX	200	/* bytes: a note for the admin, not a document */
#define EXCEPTION_CAP_MAX	100000	/* connections per hour; more is as good as none */
#define EXCEPTION_CAP_BUCKETS	60	/* one per minute of the rolling hour */
#define KERNEL_UIDS_MAX		4096	/* uids in @allow_uids; more go to policy_decide() */
struct exception {
	char		 who[EXCEPTION_WHO_MAX];	/* as written: name, uid or @group */
	uid_t		 uids[EXCEPTION_UIDS_MAX];
	size_t		 nuids;
	struct cidr	 to[EXCEPTION_CIDRS_MAX];
	size_t		 nto;
	uint16_t	 ports[EXCEPTION_PORTS_MAX];
	size_t		 nports;
	bool		 audit;
	bool		 redirect;		/* to the local MTA (action redirect) */
	unsigned int	 cap_per_hour;		/* 0: no cap */
	char		 comment[EXCEPTION_COMMENT_MAX + 1];
	/* runtime, not saved; carried across a reload by who */
	uint64_t	 hits;
	time_t		 last_hit;
	long		 cap_minute[EXCEPTION_CAP_BUCKETS];	/* now / 60 of the bucket */
	uint32_t	 cap_count[EXCEPTION_CAP_BUCKETS];	/* connections that minute */
};
struct mail_limit_rule;
struct exceptions {
	struct exception	*v;
	size_t			 n;
	struct mail_limit_rule	*limits;	/* the file's limit lines (maillimit.c) */
	size_t			 nlimits;
};
int	 exception_parse(const char *line, const char *passwd, const char *group,
	    struct exception *, char *err, size_t errlen);
bool	 exception_is_plain(const struct exception *);
int	 exception_check_comment(const char *, char *err, size_t errlen);
const char *exception_comment_parse(const char *, char *out, size_t outlen, char *err,
	    size_t errlen);
int	 exception_comment_format(const char *comment, char *, size_t, size_t *off);
int	 exception_format(const struct exception *, char *, size_t);
int	 exception_from_argv(int, char **, char *line, size_t, char *err, size_t errlen);
int	 exceptions_load(const char *path, const char *passwd, const char *group,
	    struct exceptions *, char *err, size_t errlen);
int	 exceptions_save(const char *path, const struct exceptions *, char *err,
	    size_t errlen);
int	 exceptions_check_unmanaged(const char *path, char *err, size_t errlen);
int	 exceptions_add(struct exceptions *, const struct exception *, char *err,
	    size_t errlen);
int	 exceptions_remove(struct exceptions *, const char *who, char *err, size_t errlen);
int	 exceptions_copy(struct exceptions *dst, const struct exceptions *src);
size_t	 exceptions_kernel_uids(const struct exceptions *, uid_t *, size_t max);
void	 exceptions_carry_counters(struct exceptions *next, const struct exceptions *old);
void	 exceptions_free(struct exceptions *);
int	 exceptions_add_limit(struct exceptions *, const struct mail_limit_rule *, char *err,
	    size_t errlen);
int	 exceptions_remove_limit(struct exceptions *, const char *origin, char *err,
	    size_t errlen);

/* nl.c */
#define NL_BATCH_MAX_MSGS	80	/* the ruleset: 55 messages; 65 with full sets and detect_any_port */
#define NL_LABEL_MAX		64	/* "add rule fence #12 (queue)" */
struct mnl_nlmsg_batch;
struct mnl_socket;
struct nlmsghdr;
/*
 * One nf_tables transaction, built in its own buffer. Per message:
 * nl_batch_put() (labels it, returns the header to fill with libnftnl),
 * then nl_batch_next(). nl_batch_send() sends it once and reads every ACK.
 */
struct nl_batch {
	char			*buf;
	struct mnl_nlmsg_batch	*mnl;
	uint32_t		 seq0, seq;	/* seq0: BEGIN; message i has seq0 + 1 + i */
	bool			 finished;	/* END appended */
	int			 failed;	/* message the kernel refused, -1 if none */
	size_t			 nlabels;
	char			 labels[NL_BATCH_MAX_MSGS][NL_LABEL_MAX];
};
int		 nl_batch_init(struct nl_batch *);
void		 nl_batch_free(struct nl_batch *);
struct nlmsghdr	*nl_batch_put(struct nl_batch *, uint16_t type, uint16_t family,
		    uint16_t flags, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int		 nl_batch_next(struct nl_batch *);
int		 nl_batch_finish(struct nl_batch *, const void **, size_t *);
const char	*nl_batch_label(const struct nl_batch *, int);
int		 nl_batch_send(struct nl_batch *, char *err, size_t errlen);
struct mnl_socket *nl_open(void);
int		 nl_talk(struct mnl_socket *, struct nlmsghdr *);
void		 nl_rcvbuf(struct mnl_socket *, int size);

/* ruleset.c */
struct ruleset_spec {
	const char	*table;
	const uint16_t	*ports;
	size_t		 nports;
	const uid_t	*mta_uids;
	size_t		 nmta;
	const uid_t	*allow_uids;
	size_t		 nallow;
	bool		 allow_local;
	uint16_t	 queue_num;
	uint16_t	 audit_group;	/* nfnetlink_log group audited flows are copied to */
	uint32_t	 audit_snaplen;	/* bytes of each of their packets copied */
	bool		 data_release;	/* the DATA rule (an inner-header payload match,
					   which older kernels lack): cleared where refused */
	uint32_t	 mark_mask;
	bool		 trap;		/* the nat chain that redirects trapped flows */
	bool		 redirect;	/* the nat chain that sends redirected flows to the MTA */
	bool		 detect_any_port;	/* all TCP meets the fence, not just @ports */
	uint16_t	 trap_port;
	uint16_t	 redirect_port;	/* the redirect chain's target: the local MTA */
};
void	 ruleset_spec_of(const struct config *, const uid_t *mta, size_t nmta,
	    const uid_t *allow, size_t nallow, struct ruleset_spec *);
int	 ruleset_build(struct nl_batch *, const struct ruleset_spec *, bool native_queue);
int	 ruleset_install(struct ruleset_spec *, bool *native_queue, char *err,
	    size_t errlen);
int	 ruleset_remove(const char *table, char *err, size_t errlen);
int	 ruleset_exists(const char *table);
int	 ruleset_build_set_uids(struct nl_batch *, const char *table, const char *set,
	    bool add, const uid_t *, size_t);
int	 ruleset_set_uids(const char *table, const char *set, bool add, const uid_t *,
	    size_t, char *err, size_t errlen);
/* @refused_uids: the flooding uids refused in the kernel (refuse.c), each to its
 * counter object; the map's size and the most objects at once */
#define REFUSED_UIDS_MAX	256	/* uids flooding at once; more stay on the queue path */
/* @audited_uids: the uids whose SYNs the kernel audits (fence.c) */
#define AUDITED_UIDS_MAX	1024	/* more stay on the queue path */
#define AUDITED_TIMEOUT_S	30	/* then the uid's next SYN is queued, and it is added again */
int	 ruleset_build_audited(struct nl_batch *, const char *table, bool add, uid_t,
	    uint64_t timeout_ms);
int	 ruleset_audited(const char *table, bool add, uid_t, uint64_t timeout_ms, char *err,
	    size_t errlen);
int	 ruleset_build_refused_add(struct nl_batch *, const char *table, uid_t,
	    uint64_t timeout_ms);
int	 ruleset_build_refused_del(struct nl_batch *, const char *table, const uid_t *);
int	 ruleset_build_refused_forget(struct nl_batch *, const char *table, uid_t);
typedef void (*ruleset_count_fn)(void *arg, uid_t, uint64_t packets);
int	 ruleset_refused_obj(const struct nlmsghdr *, const char *table, ruleset_count_fn,
	    void *arg);
int	 ruleset_refused_dump(const char *table, ruleset_count_fn, void *arg);

/* queue.c */
struct queue_packet {
	uint32_t	 id;
	uint16_t	 hw_protocol;	/* ETH_P_IP / ETH_P_IPV6 */
	const uint8_t	*payload;	/* from the IP header on */
	size_t		 len;
	uint32_t	 mark;		/* the packet mark, 0 if none */
	bool		 has_uid, has_gid;
	uid_t		 uid;
	gid_t		 gid;
};
struct queue_stats {
	unsigned int	 waiting;	/* packets queued, no verdict yet */
	unsigned int	 queue_dropped;	/* dropped: queue full */
	unsigned int	 user_dropped;	/* dropped: netlink socket full */
	unsigned int	 id_sequence;	/* packets ever queued */
};
typedef void (*queue_packet_cb)(const struct queue_packet *, void *);
struct queue;
struct queue	*queue_open(uint16_t num, uint32_t maxlen);
void		 queue_close(struct queue *);
int		 queue_fd(const struct queue *);
int		 queue_read(struct queue *, queue_packet_cb, void *);
int		 queue_verdict(struct queue *, uint32_t id, int verdict, bool set_mark,
		    uint32_t mark);
uint64_t	 queue_verdicts_lost(const struct queue *);
int		 queue_stats(uint16_t num, struct queue_stats *);

/* nflog.c */
struct nflog_packet {
	const uint8_t	*payload;	/* from the IP header on */
	size_t		 len;
	bool		 has_uid, has_gid;	/* the socket's owner, if it had one */
	uid_t		 uid;
	gid_t		 gid;
};
typedef void (*nflog_packet_cb)(const struct nflog_packet *, void *);
struct nflog;
struct nflog	*nflog_open(uint16_t group);
void		 nflog_close(struct nflog *);
int		 nflog_fd(const struct nflog *);
int		 nflog_read(struct nflog *, nflog_packet_cb, void *);
/* A point in the tap's stream, to ask later whether all before it was read. */
struct nflog_mark {
	uint64_t	 bytes;		/* read by then */
	uint64_t	 ns;		/* mono */
};
void		 nflog_mark(const struct nflog *, struct nflog_mark *);
bool		 nflog_read_past(struct nflog *, const struct nflog_mark *);

/* ctmark.c */
struct ctmark;
struct ctmark	*ctmark_open(void);
void		 ctmark_close(struct ctmark *);
int		 ctmark_set(struct ctmark *, const struct pkt *flow, uint32_t mask, uint32_t value);
int		 ctmark_each(uint32_t mask, uint32_t value, void (*)(const struct pkt *, void *),
		    void *);

/* pkt.c */
int	 pkt_parse(const uint8_t *buf, size_t len, struct pkt *);
int	 pkt_parse_copy(const uint8_t *buf, size_t len, struct pkt *);

/* flow.c */
#define FLOWS_MAX		1024	/* flows followed after their SYN; ~13 KiB each + what hangs on them */
#define FLOW_SHARE_MAX		(FLOWS_MAX / 16)	/* held by one uid at once: 16 users fill it */
#define FLOW_MARKERS_MAX	4096	/* decided flows remembered: ~0.3 KiB each */
struct flow_key {
	uint8_t		 family;
	uint8_t		 src[16];
	uint8_t		 dst[16];
	uint16_t	 sport, dport;
};
struct flow {
	struct flow_key	 key;
	struct flow	*next;		/* hash chain */
	time_t		 created, last_seen;
	uint64_t	 flow_id;
	enum action	 action;
	struct pkt	 addr;		/* addresses, for the events (no payload) */
	struct attrib	*who;		/* the attempt's attribution (flow.c's); NULL on a marker */
	void		*inspect;	/* the owner's inspection state */
	bool		 probe;		/* detect_any_port: inspect is a struct inspect_any */
	bool		 shared;	/* counted in its uid's share (flow_share_take) */
	uid_t		 share_uid;
	enum mark_state	 marker;	/* MARK_NONE: followed; else decided, kept as a marker */
	uint32_t	 tap_seen;	/* audit, after an overrun: the last census it was in */
	uint32_t	 tap_missed;	/* the last census it was missing from (0: none) */
};
struct flow_table;
void		 flow_key_of(const struct pkt *, struct flow_key *);
struct flow_table *flow_table_new(size_t max);
void		 flow_table_free(struct flow_table *, void (*)(struct flow *, void *), void *);
struct flow	*flow_lookup(struct flow_table *, const struct flow_key *);
struct flow	*flow_find_source(struct flow_table *, enum action, int family,
		    const uint8_t *src, uint16_t sport);
struct flow	*flow_insert(struct flow_table *, const struct flow_key *, time_t now);
void		 flow_remove(struct flow_table *, struct flow *);
size_t		 flow_count(const struct flow_table *);
size_t		 flow_markers(const struct flow_table *);
void		 flow_key_reverse(const struct flow_key *, struct flow_key *);
int		 flow_share_take(struct flow_table *, struct flow *, uid_t, size_t max);
void		 flow_retire(struct flow_table *, struct flow *, enum mark_state, time_t now);
void		 flow_expire_markers(struct flow_table *, time_t before);
void		 flow_sweep(struct flow_table *, bool (*gone)(struct flow *, void *),
		    void (*done)(struct flow *, void *), void *);
void		 flow_expire(struct flow_table *, time_t idle_before,
		    void (*)(struct flow *, void *), void *);

/* diag.c */
struct diag;
struct diag_sock {
	ino_t		 inode;
	uid_t		 uid;		/* the socket's owner */
	uint64_t	 cookie;	/* SO_COOKIE: unique for the kernel's uptime */
};
struct diag	*diag_open(void);
void		 diag_close(struct diag *);
int		 diag_lookup(struct diag *, const struct pkt *, struct diag_sock *);

/* procfs.c */
/* Whose socket it is: the process found holding it, and at which fd. */
struct procfs_holder {
	pid_t	 pid;
	int	 fd;
};
int	 procfs_find_socket(const char *proc_root, uid_t uid, ino_t inode,
	    struct procfs_holder *);
int	 procfs_open_pid(const char *proc_root, pid_t pid);
uid_t	 procfs_owner_at(int piddir);
int	 procfs_socket_fd_at(int piddir, ino_t inode);
bool	 procfs_fd_is_socket_at(int piddir, int fd, ino_t inode);
int64_t	 procfs_boottime_offset(const char *proc_root);
bool	 procfs_started_by_at(int piddir, uint64_t host_ns, int64_t offset, struct attrib *);
/* What the index did: how lookups were answered, and its bound when hit. */
struct procfs_index_stats {
	uint64_t	 lookups;
	uint64_t	 by_inode;	/* the socket was seen before, still held */
	uint64_t	 by_new;	/* held by a process started since the last lookup */
	uint64_t	 by_fd_count;	/* held by one whose number of fds changed */
	uint64_t	 by_owner;	/* found by reading every candidate's fd table */
	uint64_t	 not_found;
	uint64_t	 timed_out;	/* PROC_SEARCH_BUDGET_NS spent */
	uint64_t	 listings;	/* /proc listed whole */
	uint64_t	 probed;	/* new processes added one by one */
	uint64_t	 fd_tables;	/* fd tables read */
	uint64_t	 full;		/* a process left out: the index's bound */
	uint64_t	 full_searches;	/* then ended in the full search */
};
struct procfs_index;
struct procfs_index	*procfs_index_open(const char *proc_root, size_t max);
void			 procfs_index_close(struct procfs_index *);
int			 procfs_index_find(struct procfs_index *, uid_t uid, ino_t inode,
			    struct procfs_holder *);
size_t			 procfs_index_size(const struct procfs_index *);
const struct procfs_index_stats *procfs_index_stats(const struct procfs_index *);
int	 procfs_read(const char *proc_root, pid_t pid, struct attrib *);
int	 procfs_read_exe_at(int piddir, pid_t pid, struct attrib *);
void	 procfs_read_rest_at(int piddir, struct attrib *);

/* connhook.c */
#define CONNHOOK_PORTS_MAX	CONFIG_MAX_PORTS
#define CONNHOOK_SKIP_MAX	CONFIG_MAX_UIDS
struct connhook;
/* Which connects the hook records; more than the bounds is refused (E2BIG). */
struct connhook_filter {
	const uint16_t	*ports;		/* destination ports; none: every port */
	size_t		 nports;
	const uid_t	*skip;		/* callers never recorded (the MTA's uids) */
	size_t		 nskip;
};
struct connhook	*connhook_open(char *cgroup_root, size_t, const struct connhook_filter *);
int		 connhook_refilter(struct connhook *, const struct connhook_filter *);
void		 connhook_close(struct connhook *);
int		 connhook_pid(struct connhook *, uint64_t cookie, pid_t *, uint64_t *boot_ns);

/* attrib.c */
struct attrib_ctx;
struct attrib_ctx	*attrib_open(const char *proc_root);
void			 attrib_close(struct attrib_ctx *);
int			 attrib_hook(struct attrib_ctx *, char *cgroup_root, size_t,
			    const struct connhook_filter *);
int			 attrib_hook_refilter(struct attrib_ctx *, const struct connhook_filter *);
void			 attrib_flow(struct attrib_ctx *, const struct pkt *, bool has_uid,
			    uid_t uid, bool has_gid, gid_t gid, struct attrib *);
void			 attrib_sender(struct attrib_ctx *, const struct pkt *, bool has_uid,
			    uid_t uid, bool has_gid, gid_t gid, struct attrib *);
void			 attrib_details(struct attrib_ctx *, struct attrib *);
const struct procfs_index_stats *attrib_index_stats(const struct attrib_ctx *);

/* stream.c */
#define STREAM_PENDING_MAX	8	/* segments held ahead of a gap */
#define STREAM_PENDING_BYTES	16384	/* bytes held ahead of a gap: a few full segments */
#define STREAM_SEGMENT_MAX	65535	/* the largest TCP payload an IP packet carries */
#define STREAM_CHUNKS_MAX	(1 + STREAM_PENDING_MAX)	/* the segment, then held ones */
enum stream_result {
	STREAM_OK = 0,		/* out holds the newly contiguous bytes (maybe none) */
	STREAM_INCOMPLETE,	/* a gap the bounds cannot wait for: stop reading, for good */
	STREAM_INVALID,		/* a segment longer than STREAM_SEGMENT_MAX */
};
struct stream_chunk {
	const uint8_t	*p;		/* valid until the next stream_add() */
	size_t		 len;
};
struct stream_seg {
	uint32_t	 seq;
	uint32_t	 len;
	size_t		 off;		/* into store */
};
struct stream {
	uint32_t		 next;		/* the next byte to deliver */
	uint64_t		 delivered;
	bool			 incomplete;
	bool			 stale;		/* store holds delivered bytes to drop */
	size_t			 npend;
	struct stream_seg	 pend[STREAM_PENDING_MAX];	/* in sequence order */
	size_t			 used;
	uint8_t			 store[STREAM_PENDING_BYTES];
};
void			 stream_init(struct stream *, uint32_t isn);
enum stream_result	 stream_add(struct stream *, uint32_t seq, const uint8_t *, size_t,
			    struct stream_chunk out[STREAM_CHUNKS_MAX], size_t *nout);
size_t			 stream_pending(const struct stream *);

/* smtp.c */
enum smtp_verb {
	SMTP_UNKNOWN = 0, SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_RSET,
	SMTP_NOOP, SMTP_QUIT, SMTP_STARTTLS, SMTP_AUTH, SMTP_VRFY, SMTP_EXPN, SMTP_HELP,
};
enum smtp_auth_step {
	SMTP_AUTH_NONE = 0, SMTP_AUTH_PLAIN_NEXT, SMTP_AUTH_LOGIN_USER, SMTP_AUTH_LOGIN_PASS,
};
/* A client's parse state across lines (commands, AUTH dialogue, headers). */
struct smtp_client {
	enum smtp_auth_step	 auth_step;
	bool			 body;		/* past the header block */
	size_t			 hlen;
	char			 hbuf[1024];	/* the header field being unfolded */
};
#define SMTP_LINE_MAX		1000	/* RFC 5321 4.5.3.1.6: text line, with CRLF */
bool		 smtp_looks_like_smtp(const uint8_t *, size_t);
enum smtp_verb	 smtp_client_line(struct smtp_client *, struct smtp_info *, const char *line,
		    size_t len);
void		 smtp_decode_header(const char *, size_t, char *out, size_t size);
bool		 smtp_message_line(struct smtp_client *, struct smtp_info *, const char *line,
		    size_t len);

/* tls.c */
int	 tls_sni(const uint8_t *, size_t, char *out, size_t outlen);

/* sniff.c: is a flow to an unfenced port SMTP? (detect_any_port) */
#define SNIFF_CLIENT_MAX	4096	/* client bytes read: a pipelined burst's first segments */
#define SNIFF_SERVER_MAX	4096	/* server bytes: a long multi-line greeting and a few replies */
#define SNIFF_TLS_MAX		4096	/* ClientHello bytes kept for the SNI: 0.3-2 KiB in practice */
enum sniff_result {
	SNIFF_MORE = 0,		/* undecided: feed more bytes (see sniff_wants) */
	SNIFF_SMTP,		/* SMTP in clear: reset it */
	SNIFF_SMTP_TLS,		/* TLS whose SNI names a mail relay */
	SNIFF_OTHER,		/* not SMTP: release it */
};
enum sniff_dir { SNIFF_CLIENT = 0, SNIFF_SERVER = 1 };
/* true when a TLS server name (SNI) is a configured mail relay */
typedef bool (*sniff_relay_fn)(const char *sni, void *arg);
struct sniff_side {
	size_t		 bytes;		/* read so far, at most the side's bound */
	size_t		 lines;		/* lines ended (CR, LF or CRLF) */
	bool		 full;		/* the bound is reached: later bytes go unread */
	bool		 closed;	/* FIN, RST or a gap: no more bytes */
	bool		 cr;		/* the last byte was CR: a LF right after ends nothing */
	bool		 overlong;	/* the line so far is past SMTP_LINE_MAX; rest dropped */
	size_t		 len;
	char		 line[SMTP_LINE_MAX + 1];
};
struct sniff {
	enum sniff_result	 result;	/* sticky once decided */
	const char		*why;		/* what decided (static text), NULL while MORE */
	const char		*verb;		/* the client's SMTP-only verb that decided, or NULL */
	sniff_relay_fn		 relay;
	void			*relay_arg;
	struct sniff_side	 side[2];	/* by enum sniff_dir */
	bool			 tls;		/* the client's first byte opens a TLS handshake record */
	bool			 tls_done;	/* its ClientHello was read (or could not be) */
	size_t			 tls_len;
	uint8_t			 tls_buf[SNIFF_TLS_MAX];
	bool			 shared;	/* the client sent NOOP, QUIT, HELP or AUTH */
	bool			 greeted;	/* the server opened with 220, 421 or 554 */
	bool			 greeting_done;	/* the greeting's last line was seen */
	char			 first[SMTP_FIELD_MAX];	/* the client's first line, cleaned */
	struct smtp_client	 client;
	struct smtp_info	 info;		/* helo, mail_from, ..., tls_sni, reply: the greeting */
};
void			 sniff_init(struct sniff *, sniff_relay_fn, void *relay_arg);
enum sniff_result	 sniff_feed(struct sniff *, enum sniff_dir, const uint8_t *, size_t);
enum sniff_result	 sniff_end(struct sniff *, enum sniff_dir);
enum sniff_result	 sniff_finish(struct sniff *);
bool			 sniff_wants(const struct sniff *, enum sniff_dir);
const char		*sniff_result_name(enum sniff_result);

/* inspect.c */
enum inspect_result { INSPECT_MORE, INSPECT_DONE };
struct inspect {
	struct stream		 stream;		/* the client's bytes, in order */
	size_t			 max_bytes;	/* inspect_bytes */
	bool			 tls_next;	/* the next bytes are a TLS ClientHello */
	bool			 overlong;
	size_t			 len;
	char			 line[SMTP_LINE_MAX + 1];
	struct smtp_client	 client;
	struct smtp_info	 info;
};
struct inspect	*inspect_new(uint32_t syn_seq, size_t max_bytes, bool implicit_tls);
void		 inspect_free(struct inspect *);
enum inspect_result inspect_segment(struct inspect *, const struct pkt *);
/*
 * The line after which an audited flow is read no further. The fence's rule
 * finds it in the kernel at the start of a segment's payload, any case
 * (letters & 0xdf), and releases the flow there (ruleset.c).
 */
#define INSPECT_DATA_LINE	"DATA\r\n"
#define INSPECT_DATA_LEN	6
#define INSPECT_DATA_LETTERS	4	/* "DATA": the bytes the case mask folds */
#define INSPECT_CASE_MASK	0xdf
bool		 inspect_released_in_kernel(const struct pkt *);
/*
 * detect_any_port: a probed flow, read from both directions (each put back in
 * order, its store allocated only when a segment comes ahead of a gap) by sniff.c.
 */
enum inspect_probe {
	INSPECT_PROBE_NONE = 0,	/* not a probed flow's packet */
	INSPECT_PROBE_MORE,	/* undecided: let this packet pass, read the next */
	INSPECT_PROBE_SMTP,	/* it speaks SMTP */
	INSPECT_PROBE_TLS,	/* TLS to a name in mail_relays */
	INSPECT_PROBE_OTHER,	/* not SMTP: release it for good */
	INSPECT_PROBE_UNDECIDED,	/* cannot be read on, or waited for no longer: reset */
};
struct inspect_side {
	bool		 anchored;	/* its SYN (client) or SYN-ACK (server) was seen */
	uint32_t	 next;		/* the next byte in order while held is NULL */
	struct stream	*held;		/* segments ahead of a gap; allocated when one comes */
};
struct inspect_any {
	struct sniff		 sniff;
	struct inspect_side	 side[2];	/* by enum sniff_dir */
	enum inspect_probe	 result;	/* sticky once not MORE */
};
struct inspect_any	*inspect_any_new(uint32_t syn_seq, sniff_relay_fn, void *relay_arg);
enum inspect_probe	 inspect_any_packet(struct inspect_any *, enum sniff_dir,
			    const struct pkt *);
enum inspect_probe	 inspect_any_finish(struct inspect_any *, const char *why);
void			 inspect_any_free(struct inspect_any *);

/* policy.c */
/*
 * One question about a queued packet. Until the sender is looked for (named),
 * the answer may be "need_sender": ask again with its uid. cfg gives the
 * action, the fenced ports, detect_any_port, mail_relays and the mark mask.
 */
struct policy_query {
	const struct config	*cfg;
	struct exceptions	*exc;		/* hits and caps are counted here */
	const struct pkt	*pkt;
	uint32_t		 mark;		/* packet mark; MARK_PROBE: self-check */
	bool			 named;		/* attrib_sender has looked */
	bool			 has_uid;
	uid_t			 uid;
	enum inspect_probe	 probe;		/* a probed flow's bytes, as inspect_any read them */
	time_t			 now;
};
enum policy_follow {
	POLICY_FOLLOW_NONE = 0,
	POLICY_FOLLOW_TRAP,	/* keep the attribution for the trap's report */
	POLICY_FOLLOW_AUDIT,	/* inspect the client's bytes from the SYN on */
	POLICY_FOLLOW_PROBE,	/* detect_any_port: read its first client bytes */
	POLICY_FOLLOW_REDIRECT,	/* keep the attribution for the mail gate */
};
struct decision {
	enum action		 action;	/* ACTION_NONE: no attempt */
	char			 rule[96];	/* "default", "exception:WHO", ... */
	enum mark_state		 mark;		/* MARK_NONE: pass, keep reading */
	enum policy_follow	 follow;
	enum mark_state		 unfollowed;	/* when it cannot be followed */
	bool			 implicit_tls;	/* audit on 465: TLS at once */
	bool			 need_sender;	/* ask again, named (mark: reject) */
	bool			 self_check;
	bool			 cap_exceeded;	/* a cap was reached: alert */
	bool			 lost;		/* a followed flow's packet, flow unknown */
	const char		*proto;		/* "smtp", "smtp-tls" on another port */
	const struct exception	*matched;
};
void	 policy_decide(const struct policy_query *, struct decision *);
bool	 policy_mail_relay(const char *sni, void *cfg);
bool	 policy_kernel_refusable(const struct policy_query *, const struct decision *);
bool	 policy_kernel_auditable(const struct policy_query *, const struct decision *);

/* flood.c */
/*
 * One summary per key whose window ended with attempts suppressed. The
 * overflow key (table full) reports uid (uid_t)-1, exe NULL, ACTION_NONE.
 */
typedef void (*flood_summary_fn)(void *arg, uid_t, const char *exe, enum action,
    uint64_t suppressed, unsigned int window);
struct flood;
struct flood	*flood_new(unsigned int rate, unsigned int window, size_t max_keys);
void		 flood_free(struct flood *);
bool		 flood_admit(struct flood *, uid_t, const char *exe, enum action, time_t now);
size_t		 flood_expire(struct flood *, time_t now, flood_summary_fn, void *arg);
time_t		 flood_window_end(const struct flood *, uid_t, const char *exe, enum action);
/*
 * The mail gate's table: per (origin, mail action). The overflow key
 * reports origin NULL (and MAIL_PASS, meaning nothing).
 */
typedef void (*flood_mail_summary_fn)(void *arg, const char *origin, enum mail_action,
    uint64_t suppressed, unsigned int window);
bool		 flood_admit_mail(struct flood *, const char *origin, enum mail_action,
		    time_t now);
size_t		 flood_expire_mail(struct flood *, time_t now, flood_mail_summary_fn,
		    void *arg);

/* refuse.c */
/* A uid left the kernel: REFUSED SYNs reset there, or LOST (its counter object gone: unknown). */
typedef void (*refuse_fn)(void *arg, uid_t, uint64_t refused, bool lost);
struct refuse;
struct refuse	*refuse_new(const char *table);
void		 refuse_free(struct refuse *);
bool		 refuse_known(const struct refuse *, uid_t);
size_t		 refuse_count(const struct refuse *);
int		 refuse_add(struct refuse *, uid_t, time_t now, time_t end, char *err,
		    size_t errlen);
int		 refuse_expire(struct refuse *, time_t now, refuse_fn, void *arg, char *err,
		    size_t errlen);
int		 refuse_flush(struct refuse *, refuse_fn, void *arg, char *err, size_t errlen);
void		 refuse_forget(struct refuse *, refuse_fn, void *arg);
int		 refuse_live(const struct refuse *, uint64_t *sum);

/* alert.c */
struct alerts;
struct alerts	*alerts_new(unsigned int threshold);
void		 alerts_free(struct alerts *);
bool		 alerts_count(struct alerts *, uid_t, time_t now, uint64_t *in_window);
bool		 alerts_quiet(const struct alerts *, uid_t, time_t until);
void		 alerts_credit(struct alerts *, uid_t, time_t now, uint64_t n);
int		 alerts_exec(struct alerts *, const char *program, const char *json, size_t);
int		 alerts_reap(struct alerts *, time_t now);
int		 alerter_start(const char *program, pid_t *);

/* event.c */
#define EVENT_LINE_MAX		(64 * 1024)	/* longer: written with its strings cut */
void	 event_time(const struct timespec *, char *, size_t);
int	 event_encode(const struct event *, char *buf, size_t len);
struct event_log;
struct event_log	*event_open(const char *path, bool use_syslog, char *err, size_t errlen);
void			 event_close(struct event_log *);
int			 event_write(struct event_log *, const struct event *);

/* metrics.c: the counters in the Prometheus text format (node_exporter's textfile collector) */
#define METRICS_TOP_MAX		100	/* [metrics] top_users: two series each, so at most 200 */
#define METRICS_UIDS_MAX	4096	/* uids counted; past that the least recently seen is reused */
#define METRICS_WINDOW		10	/* minutes: the busiest users are ranked over these, as alerts are */
#define METRICS_LATENCY_BOUNDS	13	/* histogram buckets, +Inf apart */
#define METRICS_TEXT_MAX	(64 * 1024)	/* the whole file: ~10 KiB with 100 users */
struct metrics_latency {
	uint64_t	 bucket[METRICS_LATENCY_BOUNDS + 1];	/* per bucket, not cumulative; last: +Inf */
	uint64_t	 count;
	uint64_t	 sum_ns;
};
struct metrics_user {
	uid_t		 uid;
	char		 user[USER_NAME_MAX];	/* empty: unknown */
	uint64_t	 total;		/* attempts since the daemon started */
	uint64_t	 recent;	/* in the last METRICS_WINDOW minutes */
};
struct metrics {
	bool		 fence_up;
	bool		 native_queue;
	unsigned int	 queue_num;
	time_t		 started, now;
	uint64_t	 packets, packet_bytes;
	uint64_t	 decisions[ACTION_ALLOW + 1];
	uint64_t	 attempts[ACTION_ALLOW + 1];
	bool		 has_queue_stats;
	struct queue_stats qs;
	uint64_t	 socket_overruns, verdict_errors, unparsable, events_lost, alerts;
	uint64_t	 trap_sessions, trap_direct;
	uint64_t	 kernel_refused;	/* flood attempts the kernel reset (refuse.c) */
	unsigned int	 kernel_refusing;
	uint64_t	 kernel_audited;	/* SYNs audited in the kernel (@audited_uids) */
	unsigned int	 kernel_auditing;
	uint64_t	 kernel_full, kernel_errors;	/* kept on the queue path */
	const struct metrics_latency *attrib;
	bool		 mail_gate, mail_up;
	uint64_t	 mail[MAIL_REJECT + 1];
	unsigned int	 top_users;
	const struct metrics_user *users;
	size_t		 nusers;
};
struct metrics_users;
void		 metrics_latency_add(struct metrics_latency *, uint64_t ns);
struct metrics_users *metrics_users_new(void);
void		 metrics_users_free(struct metrics_users *);
void		 metrics_users_count(struct metrics_users *, uid_t, time_t now);
void		 metrics_users_add(struct metrics_users *, uid_t, time_t now, uint64_t n);
size_t		 metrics_users_top(const struct metrics_users *, time_t now,
		    struct metrics_user *out, size_t max);
int		 metrics_format(const struct metrics *, char *buf, size_t len);

/* trap.c */
struct trap_report {
	int		 family;
	uint8_t		 src[16], dst[16];	/* the client; the destination it asked for */
	uint16_t	 sport, dport;
	char		 reason[16];		/* complete, quit, closed, timeout, bytes, errors */
	struct smtp_info info;
};
pid_t	 trap_start(const struct config *, const char *chroot_dir, int *report_fd,
	    char *err, size_t errlen);
int	 trap_read_report(int fd, struct trap_report *);

/* trap_session.c: one trapped client's SMTP dialogue */
struct trap_session {
	int			 fd;		/* -1: free */
	time_t			 last;
	uint64_t		 bytes;
	int			 bad;
	bool			 in_data;
	size_t			 len;		/* bytes in line */
	bool			 overlong;	/* discarding the rest of a too-long line */
	char			 line[SMTP_LINE_MAX + 1];
	struct smtp_client	 client;
	struct trap_report	 report;
};
void		 trap_session_send(struct trap_session *, const char *text);
const char	*trap_session_feed(struct trap_session *, const struct config *, const char *,
		    size_t);

/* mailorigin.c: the facts an MTA gives about one message, and whom they name */
#define MAIL_QID_MAX		32	/* Postfix long ids are 15+, Exim's 23 */
#define MAIL_ORIGIN_MAX		(SMTP_FIELD_MAX + 16)	/* "sasl:" + a login or address */
#define MAIL_NAME_MAX		64	/* an MTA or daemon name */
/*
 * Everything the gate learns about one message, MTA-neutral: the Postfix
 * milter and (later) the Exim ACL fill the same struct. Strings are
 * NUL-terminated and cut at their bound; empty means "not said".
 */
struct mail_facts {
	char		 mta[MAIL_NAME_MAX];		/* "postfix", "exim" */
	char		 queue_id[MAIL_QID_MAX];
	char		 sasl_user[SMTP_FIELD_MAX];	/* {auth_authen} */
	char		 client_addr[INET6_ADDRSTRLEN];	/* {client_addr}, as printed */
	char		 client_name[SMTP_FIELD_MAX];	/* {client_name} */
	uint16_t	 client_port;			/* 0: not known */
	char		 daemon_addr[INET6_ADDRSTRLEN];	/* where the client connected to */
	uint16_t	 daemon_port;
	char		 daemon_name[MAIL_NAME_MAX];	/* {daemon_name} */
	bool		 local_submit;	/* not SMTP: sendmail(1), pickup, Exim -bm */
	bool		 has_uid;	/* the submitting uid, as the MTA recorded it: */
					/* trusted only with local_submit */
	uint32_t	 uid;
	bool		 received_seen;	/* the first Received header has been read */
	bool		 has_mail_from;	/* MAIL FROM was given; empty mail_from = <> */
	uint32_t	 nrcpt_here;	/* recipients delivered on this host (not egress) */
	struct smtp_info info;		/* helo, mail_from, rcpt_to, subject, ... */
};
enum mail_origin_kind {
	MAIL_ORIGIN_UNKNOWN = 0,
	MAIL_ORIGIN_SASL,	/* "sasl:LOGIN" */
	MAIL_ORIGIN_BOUNCE,	/* "bounce": the null sender */
	MAIL_ORIGIN_USER,	/* "user:NAME" (or "user:UID" for a uid without a name) */
	MAIL_ORIGIN_CLIENT,	/* "client:ADDR" */
};
struct mail_origin {
	enum mail_origin_kind	 kind;
	char			 name[MAIL_ORIGIN_MAX];
	char			 domain[MAIL_ORIGIN_MAX];	/* "domain:D" or "" */
};
void	 mailorigin_reset(struct mail_facts *, const char *mta);
void	 mailorigin_header(struct mail_facts *, const char *name, const char *value);
void	 mailorigin_mail_from(struct mail_facts *, const char *arg);
void	 mailorigin_rcpt(struct mail_facts *, const char *arg, const char *mailer);
bool	 mailorigin_mailer_here(const char *mailer);
int	 mailorigin_received_uid(const char *value, uint32_t *uid);
int	 mailorigin_queue_uid(const uint8_t *, size_t, uint32_t *uid);
int	 mailorigin_domain(const char *addr, char *out, size_t len);
int	 mailorigin_norm_addr(const char *in, char *out, size_t len);
bool	 mailorigin_is_loopback(const char *addr);
void	 mailorigin_name(const struct mail_facts *, const struct attrib *local,
	    struct mail_origin *);

/* maillimit.c: recipients per origin and per domain over a sliding hour */
#define MAILLIMIT_ORIGINS	4096	/* origins counted at once; see maillimit.c */
#define MAILLIMIT_BUCKETS	60	/* one per minute of the hour */
#define MAILLIMIT_MAX		10000000	/* recipients per hour; more is no limit */
#define MAILLIMIT_RULES_MAX	1024	/* limit lines in exceptions.conf */
#define MAILLIMIT_OFF		UINT32_MAX	/* no limit */
#define MAILLIMIT_OVERFLOW	"overflow"	/* the shared bucket once the table is full */
struct mail_limit_rule {
	char		 origin[MAIL_ORIGIN_MAX];	/* "sasl:X", "user:X", "domain:X", "client:A" */
	uint32_t	 per_hour;			/* 0: hold everything */
	char		 comment[EXCEPTION_COMMENT_MAX + 1];
};
struct mail_decision {
	enum mail_action action;
	uint32_t	 hour_count;	/* the origin's recipients this hour, this message's too */
	uint32_t	 limit;		/* the origin's limit, MAILLIMIT_OFF if none */
	uint32_t	 domain_count, domain_limit;
	bool		 over;		/* past a limit (the action says what was done) */
	bool		 alert;		/* first time over this hour: raise an alert */
	bool		 overflow;	/* counted in the shared overflow bucket */
	char		 rule[MAIL_ORIGIN_MAX + 16];	/* "limit:ORIGIN", "domain_limit:D", ... */
};
/* What the gate did with messages since a local midnight (status: "today"). */
struct mail_tally {
	time_t		 day;			/* that midnight; 0: none yet */
	uint64_t	 n[MAIL_REJECT + 1];	/* messages, by action */
};
struct maillimit;
const char	*maillimit_action_name(enum mail_action);
int		 maillimit_parse_rate(const char *, bool allow_off, uint32_t *);
int		 maillimit_rule_parse(const char *line, struct mail_limit_rule *, char *err,
		    size_t errlen);
int		 maillimit_rule_format(const struct mail_limit_rule *, char *, size_t);
int		 maillimit_rule_from_argv(int, char **, char *line, size_t, char *err,
		    size_t errlen);
struct maillimit *maillimit_new(size_t max_origins);
void		 maillimit_free(struct maillimit *);
size_t		 maillimit_count(const struct maillimit *);
void		 maillimit_decide(struct maillimit *, const struct mail_origin *,
		    uint32_t nrcpt, uint32_t limit, uint32_t domain_limit,
		    enum mail_action over_action, time_t now, struct mail_decision *);
uint32_t	 maillimit_limit_for(const struct mail_limit_rule *, size_t, const char *origin,
		    uint32_t fallback);
int		 maillimit_save(const struct maillimit *, const struct mail_tally *,
		    const char *path, time_t now, char *err, size_t errlen);
int		 maillimit_load(struct maillimit *, struct mail_tally *, const char *path,
		    time_t now, char *err, size_t errlen);

/* gateproto.c: the gate child <-> smtpguardd, one SOCK_SEQPACKET message each way */
#define GATEPROTO_VERSION	1
struct gate_request {
	uint32_t		 version;
	uint32_t		 len;		/* sizeof(struct gate_request) */
	uint64_t		 id;		/* the gate's, echoed in the reply */
	struct mail_facts	 facts;
};
struct gate_reply {
	uint32_t		 version;
	uint32_t		 len;
	uint64_t		 id;
	uint32_t		 action;	/* enum mail_action */
	char			 reason[SMTP_FIELD_MAX];	/* for a defer/reject reply text */
};
int	 gateproto_check_request(const void *, size_t, struct gate_request *);
int	 gateproto_check_reply(const void *, size_t, struct gate_reply *);
void	 gateproto_terminate(struct mail_facts *);

/* eximreq.c: the Exim ACL's ${readsocket} request and the gate's answer */
#define EXIMREQ_MAX		16384	/* one request: 32 recipients of 256 and the headers fit */
#define EXIMREQ_REPLY_MAX	(SMTP_FIELD_MAX + 16)	/* "reject " + a reason + "\n" */
int	 eximreq_parse(const char *, size_t, struct mail_facts *, char *err, size_t errlen);
int	 eximreq_reply(enum mail_action, const char *reason, char *out, size_t len);

/* eximconf.c: the gate's lines in a single-file Exim configuration (mail enable) */
#define EXIMCONF_MAX	(16 * 1024 * 1024)	/* an exim4.conf is some 50 KiB */
const char	*eximconf_statements(void);
bool		 eximconf_wired(const char *, size_t);
int		 eximconf_wire(const char *, size_t, const char *socket, bool tempfail,
		    char **out, size_t *outlen, char *err, size_t errlen);
int		 eximconf_unwire(const char *, size_t, char **out, size_t *outlen);

/* gate.c: the libmilter process (unprivileged child of smtpguardd) */
#define GATE_VERDICT_WAIT_MS	5000	/* then the gate answers as [mail] fail says */
pid_t	 gate_start(const struct config *, const char *chroot_dir, int *parent_fd,
	    char *err, size_t errlen);
int	 gate_ask(struct gate_request *, struct gate_reply *);

/* gate_exim.c: the gate child's ${readsocket} listener for Exim ([mail] mta = exim) */
int	 gate_exim_listen(const char *path, gid_t group);
int	 gate_exim_main(int listener, bool fail_tempfail);

/* mailgate.c: smtpguardd's half of the gate: counters, decision, event */
#define MAILGATE_SAVE_EVERY	5	/* seconds between saves of the counters */
#define MAILGATE_ALERT_RCPTS	10	/* recipients named in a limit alert */
struct mailgate;
/*
 * Who a session the fence redirected to the MTA is (the client's address
 * and port as the MTA saw them): the attempt's attribution and flow id, or
 * NULL if it is none of those (fence_redirected in the daemon).
 */
typedef const struct attrib *(*mailgate_redirected_fn)(void *arg, int family,
    const uint8_t *src, uint16_t sport, uint64_t *flow_id, time_t now);
struct mailgate_result {
	struct gate_reply	 reply;
	struct attrib		 who;		/* the local sender, when known */
	bool			 redirected;	/* named by a flow the fence redirected */
	struct mail_origin	 origin;
	struct mail_decision	 dec;
	struct mail_event	 mail;
	char			 client_ip[INET6_ADDRSTRLEN];
	struct event		 ev;		/* the mail event (points into this and the request) */
	bool			 alert;		/* raise ev as an alert, with alert_smtp */
	struct smtp_info	 alert_smtp;	/* the message, first recipients only */
	char			 alert_msg[MAIL_ORIGIN_MAX * 2 + 128];
};
struct mailgate	*mailgate_new(size_t max_origins);
void		 mailgate_free(struct mailgate *);
int		 mailgate_load(struct mailgate *, const char *path, time_t now, char *err,
		    size_t errlen);
int		 mailgate_save(struct mailgate *, const char *path, time_t now, bool force,
		    char *err, size_t errlen);
void		 mailgate_decide(struct mailgate *, const struct config *,
		    const struct exceptions *, struct attrib_ctx *, mailgate_redirected_fn,
		    void *redirected_arg, struct gate_request *, time_t now,
		    struct mailgate_result *);
time_t		 mailgate_day_start(time_t now);
void		 mailgate_counts(const struct mailgate *, uint64_t by_action[MAIL_REJECT + 1]);
void		 mailgate_today(const struct mailgate *, time_t now, struct mail_tally *);
const char	*mailgate_last_mta(const struct mailgate *);

/* mailq.c: the MTA's queue listing and our mail events, read for held/release/purge */
#define MAILQ_LINE_MAX		(64 * 1024)	/* a postqueue -j line: 1000 recipients fit */
struct mailq_msg {
	char		 queue_id[MAIL_QID_MAX];
	char		 queue_name[16];		/* "hold", "deferred", ...; "frozen" */
	bool		 held;				/* Postfix hold queue / Exim frozen */
	char		 sender[SMTP_FIELD_MAX];	/* "" for <> */
	uint32_t	 nrcpt;
	int64_t		 arrival;			/* 0: not said */
	uint64_t	 size;
	/* from the event log's mail event for this queue id; "" if none */
	char		 origin[MAIL_ORIGIN_MAX];
	char		 domain[MAIL_ORIGIN_MAX];
	char		 subject[SMTP_FIELD_MAX];
};
struct mailq_event {
	char		 queue_id[MAIL_QID_MAX];
	char		 origin[MAIL_ORIGIN_MAX];
	char		 domain[MAIL_ORIGIN_MAX];
	char		 subject[SMTP_FIELD_MAX];
	char		 action[16];
};
bool	 mailq_valid_qid(const char *, bool exim);
int	 mailq_postqueue_line(const char *, size_t, struct mailq_msg *, char *err,
	    size_t errlen);
int	 mailq_exim_line(const char *, struct mailq_msg *, char *err, size_t errlen);
int	 mailq_event_line(const char *, size_t, struct mailq_event *);
bool	 mailq_matches(const struct mailq_msg *, const char *origin);
int	 mailq_origin_key(const char *, char *out, size_t len, char *err, size_t errlen);
bool	 mailq_list_has(const char *list, const char *entry);
void	 mailq_list_without(const char *list, const char *entry, char *out, size_t len);

/* mailrun.c: running the MTA's tools, and the options of the mail commands */
#define MAILRUN_ERR_MAX	(64 * 1024)	/* what a tool says on stderr */
struct mailrun {
	char	*out;	/* stdout, NUL-terminated */
	size_t	 outlen;
	char	 err[MAILRUN_ERR_MAX];	/* stderr, NUL-terminated, cut */
	int	 status;	/* exit status; -1: killed or not run */
};
struct mailrun_opts {
	const char	*postfix_dir, *exim_conf;
	bool		 json;
	const char	*arg;	/* the one positional argument */
};
int	 mailrun_append(char **buf, size_t *len, size_t *cap, const char *, size_t n,
	    size_t max);
int	 mailrun(char *const argv[], struct mailrun *);
int	 mailrun_ok(char *const argv[], struct mailrun *);
bool	 mailrun_in_path(const char *name);
int	 mailrun_opts(int argc, char **argv, bool json_ok, struct mailrun_opts *,
	    const char *usage);

/* mailcli.c: smtpguard held|release|purge */
int	 mailcli_held(const struct config *, int, char **);
int	 mailcli_act(const struct config *, int, char **);

/* mailenable.c: smtpguard mail enable|disable */
int	 mailenable_cmd(const struct config *, int, char **);
int	 mailenable_wired(const struct config *, char *out, size_t len, bool *unguarded_if_down);

/* ctlproto.c */
#define CTL_VERSION		1
#define CTL_REQUEST_MAX		(64 * 1024)	/* an exception line is 1 KiB; room to spare */
#define CTL_ARG_MAX		2048
enum ctl_cmd {
	CTL_NONE = 0,
	CTL_STATUS,
	CTL_ALLOW,
	CTL_REVOKE,
	CTL_EXCEPTIONS,
	CTL_RELOAD,
	CTL_LIMIT,	/* a mail gate limit line, as exceptions.conf holds it */
	CTL_UNLIMIT,	/* an origin */
	CTL_MAILOP,	/* the CLI acted on held mail: a note for the event log */
};
#define CTL_MAILOP_PREFIX	"mail: "	/* every mailop note starts so */
struct ctl_request {
	enum ctl_cmd	 cmd;
	char		 arg[CTL_ARG_MAX];
};
int	 ctl_parse_request(const char *, size_t, struct ctl_request *, char *err,
	    size_t errlen);
char	*ctl_format_request(enum ctl_cmd, const char *arg);

/* control.c */
#define CTL_MAX_CLIENTS		16	/* root's CLI; more at once is a bug or an attack */
#define CTL_CLIENT_TIMEOUT	5	/* seconds to send a request */
/* epoll tags: control.c registers its clients as CTL_TAG_CLIENT + slot */
#define CTL_TAG_CLIENT		1000
/* Handles one request; returns a malloc'd JSON reply line (without newline). */
typedef char *(*ctl_handler)(const struct ctl_request *, uid_t peer, void *arg);
struct control;
struct control	*control_open(const char *path, int epfd, uint64_t listen_tag,
		    ctl_handler, void *arg, char *err, size_t errlen);
void		 control_close(struct control *);
void		 control_accept(struct control *);
void		 control_client_event(struct control *, uint64_t tag);
void		 control_expire(struct control *, time_t now);
char		*control_call(const char *path, enum ctl_cmd, const char *arg, char *err,
		    size_t errlen);

/* when.c: the times typed after --since and --until */
int	 when_parse(const char *, time_t now, time_t *);
int	 when_parse_ts(const char *, time_t now, char *out, size_t len);

/* cliopt.c: --since/--until/--limit/--help of log, top, mta-report, mta-check */
enum {
	CLIOPT_SINCE = 256,	/* getopt codes of the shared long options */
	CLIOPT_UNTIL,
	CLIOPT_LIMIT,
	CLIOPT_HELP,
	CLIOPT_JSON,
	CLIOPT_OWN = 300,	/* a command's own long-only codes start here */
};
#define CLIOPT_WANT_TIME	0x1	/* the command takes --since and --until */
#define CLIOPT_WANT_LIMIT	0x2	/* ... and --limit */
#define CLIOPT_WANT_JSON	0x4	/* ... and --json */
#define CLIOPT_TS_MAX		40	/* an RFC 3339 UTC time with microseconds, and more */
struct cliopt {
	const char	*cmd;		/* "top": messages say "smtpguard top: ..." */
	const char	*const *help;	/* NULL-ended parts that --help and -h print */
	unsigned	 takes;		/* CLIOPT_WANT_* */
	bool		 operands;	/* arguments after the options are the command's */
	time_t		 since, until;	/* 0: open */
	char		 since_ts[CLIOPT_TS_MAX], until_ts[CLIOPT_TS_MAX];	/* "": open */
	long		 limit;		/* the command's default until --limit */
	bool		 json;		/* --json */
	int		 next;		/* argv[next..]: the operands */
};
/* One of a command's own long options (getopt's struct option, without its flag pointer). */
struct cliopt_option {
	const char	*name;
	bool		 arg;		/* takes a value */
	int		 code;		/* what the callback is given */
};
/* A command's own option: 1 taken, 0 not its own, -1 a bad value (why: in err). */
typedef int	 cliopt_fn(void *ctx, int ch, const char *arg, char *err, size_t errlen);
int		 cliopt_parse(struct cliopt *, int argc, char **argv, const char *shortopts,
		    const struct cliopt_option *own, cliopt_fn *, void *ctx);
const char	*cliopt_word(const char *arg, const char *const *words, size_t n);

/* evread.c: reading and filtering the event log for log and top */
#define EVREAD_LINE_MAX		(EVENT_LINE_MAX + 1)
enum evread_field { EVREAD_TS, EVREAD_EVENT, EVREAD_ACTION, EVREAD_USER, EVREAD_UID,
    EVREAD_EXE, EVREAD_CWD, EVREAD_DST_IP, EVREAD_DST_PORT, EVREAD_MAIL_FROM,
    EVREAD_PHP_SCRIPT, EVREAD_SUBJECT, EVREAD_SUPPRESSED, EVREAD_ORIGIN, EVREAD_DOMAIN,
    EVREAD_RCPT_COUNT, EVREAD_HOST, EVREAD_NFIELDS };
/* An event as the filters and top see it: each field a string, an integer, or absent
 * (but the host: evread_local_host() where the event names none). */
struct evread_event {
	const char	*s[EVREAD_NFIELDS];
	long long	 n[EVREAD_NFIELDS];
	bool		 has_n[EVREAD_NFIELDS];
};
struct evread_filter {
	char		 since[CLIOPT_TS_MAX], until[CLIOPT_TS_MAX];	/* compared as strings */
	const char	*user, *action, *event, *dst, *origin, *host;
	long		 uid;		/* -1: any */
	struct cidr	 dst_net;
	bool		 dst_is_net;
	long		 dst_port;	/* -1: any */
};
#define EVREAD_FILTER_INIT	{ .uid = -1, .dst_port = -1 }
enum { EVREAD_OPT_USER = CLIOPT_OWN, EVREAD_OPT_UID, EVREAD_OPT_ACTION, EVREAD_OPT_EVENT,
    EVREAD_OPT_DST, EVREAD_OPT_ORIGIN, EVREAD_OPT_HOST,
    EVREAD_OPT_END /* log's and top's own codes start here */ };
#define EVREAD_FILTER_OPTIONS \
	{ "user", true, EVREAD_OPT_USER }, { "uid", true, EVREAD_OPT_UID }, \
	{ "action", true, EVREAD_OPT_ACTION }, { "event", true, EVREAD_OPT_EVENT }, \
	{ "dst", true, EVREAD_OPT_DST }, { "origin", true, EVREAD_OPT_ORIGIN }, \
	{ "host", true, EVREAD_OPT_HOST }
extern const char evread_filter_help[];
struct evread {
	FILE		*fp;
	char		*line;		/* the last line read, as it is in the file */
	size_t		 cap;
	uint64_t	 unreadable;	/* lines skipped: not JSON objects, or too long */
	char		*blk;		/* evread_next_event()'s blocks: its lines lie in it */
	size_t		 blk_len, blk_at;
	bool		 blk_err;	/* no memory for it */
};
typedef struct json_t json_t;
cliopt_fn	 evread_filter_option;	/* ctx: a struct evread_filter */
void		 evread_filter_window(struct evread_filter *, const struct cliopt *);
bool		 evread_matches(const struct evread_filter *, const struct evread_event *);
bool		 evread_matches_json(const struct evread_filter *, json_t *);
void		 evread_from_json(struct evread_event *, json_t *);
int		 evread_flat_scan(char *line, size_t len, struct evread_event *);
int		 evread_open(struct evread *, const char *path);
int		 evread_reopen(struct evread *, const char *path);
bool		 evread_outside(const struct evread_filter *, const char *line, size_t len);
json_t		*evread_next(struct evread *, const struct evread_filter *, size_t *len);
bool		 evread_next_event(struct evread *, const struct evread_filter *,
		    struct evread_event *, json_t **owner);
void		 evread_close(struct evread *);
const char	*evread_local_time(const char *ts, char *out, size_t len);
const char	*evread_local_host(void);
/* The event files of a command line: its operands (directories expanded), else the default. */
struct evread_files {
	char		**paths;
	size_t		 n, cap;
};
int		 evread_files_expand(struct evread_files *, char *const *args, size_t nargs,
		    const char *deflt, char *err, size_t errlen);
void		 evread_files_free(struct evread_files *);

/* review_log.c */
int	 review_log(const char *events_path, int argc, char **argv);

/* review_top.c */
int	 review_top(const char *events_path, int argc, char **argv);

/* mtalog.c: one line of a Postfix (syslog) or Exim main log */
#define MTALOG_QID_MAX	24	/* Exim 4.97 ids are 23 characters, Postfix long ids fewer */
enum mtalog_kind {
	MTALOG_BAD,	/* not a log line we can read: counted, never fatal */
	MTALOG_OTHER,	/* a log line that says nothing about a message's path */
	MTALOG_ORIGIN,	/* where a message came from (smtpd client=, pickup uid=, Exim <=) */
	MTALOG_QUEUED,	/* Postfix qmgr: envelope sender, size, recipient count */
	MTALOG_MSGID,	/* Postfix cleanup: Message-ID */
	MTALOG_RCPT,	/* one recipient's delivery attempt and its outcome */
	MTALOG_NDR,	/* Postfix bounce: this message caused the non-delivery report child_qid */
	MTALOG_DONE,	/* the message left the queue (removed, Completed) */
};
enum mtalog_status { MTALOG_NO_STATUS, MTALOG_SENT, MTALOG_DEFERRED, MTALOG_BOUNCED };
struct mtalog_str {
	const char	*p;		/* into the caller's line, not NUL-terminated */
	size_t		 len;
};
struct mtalog_line {
	enum mtalog_kind kind;
	int64_t		 ts;		/* seconds since the epoch, UTC */
	struct mtalog_str qid, sender, client_ip, sasl_user, local_user, rcpt, relay, reply,
			 msgid, child_qid;
	long		 uid;		/* pickup uid=, else -1 */
	long long	 size, nrcpt;	/* -1: not in this line */
	enum mtalog_status status;
	bool		 has_sender;	/* sender is set; empty means the null sender <> */
	bool		 remote;	/* the recipient's attempt went to a remote host */
	bool		 local;		/* Exim P=local: submitted by a local process */
};
/* Turns wall-clock stamps into UTC; the reference date gives syslog stamps their year. */
struct mtalog_clock {
	int		 ref_year, ref_mon, ref_mday;
	int64_t		 hour_key, hour_off;
	bool		 hour_valid;
};
void		 mtalog_clock_init(struct mtalog_clock *, time_t ref);
enum mtalog_kind mtalog_parse(struct mtalog_clock *, const char *line, size_t len,
		    struct mtalog_line *);
bool		 mtalog_blacklisted(const char *reply, size_t len);

/* mtareport.c: the mail that went through the MTA, per origin, from its logs */
#define MTAREPORT_INFLIGHT_MAX	1000000	/* messages open at once; past it, new ones are not followed */
#define MTAREPORT_EVIDENCE_MAX	3	/* queue ids shown per flag */
#define MTAREPORT_BAD_EXAMPLES	3	/* unparseable lines shown by file:line */
#define MTAREPORT_NLOGS		4	/* default logs: Postfix, Exim, both spellings */
enum mtareport_kind { MTAREPORT_SASL, MTAREPORT_BOUNCE, MTAREPORT_USER, MTAREPORT_IP,
    MTAREPORT_SENDER, MTAREPORT_UNKNOWN, MTAREPORT_OTHER };
/* What makes an origin a likely culprit (the thresholds are in mtareport.c). */
enum mtareport_flag { MTAREPORT_FLAG_VOLUME, MTAREPORT_FLAG_DOMAINS, MTAREPORT_FLAG_BOUNCES,
    MTAREPORT_FLAG_DEFERRALS, MTAREPORT_FLAG_BLOCKLISTED, MTAREPORT_FLAG_BACKSCATTER,
    MTAREPORT_FLAG_MANY_IPS, MTAREPORT_NFLAGS };
struct mtareport_evidence {
	char		 qid[MTALOG_QID_MAX + 1];
	char		 text[200];
};
struct mtareport_origin {
	struct hnode	 node;
	enum mtareport_kind kind;
	char		 key[256];		/* what rows are told apart by */
	char		 name[256];		/* what the admin reads */
	bool		 labelled;		/* a user's name(uid) was looked up */
	char		 user[USER_NAME_MAX];	/* that name; empty if this host lacks it */
	long		 uid;
	uint64_t	 messages, recipients, sent, bounced, deferred, pending, blocklisted;
	uint64_t	 domains, ips, senders;
	bool		 capped;		/* a cap was reached: distinct counts are lower bounds */
	char		 sender[256];		/* the first envelope sender seen */
	int64_t		 first, last, peak_hour;
	uint64_t	 peak;
	unsigned	 flags;			/* 1 << enum mtareport_flag */
	struct mtareport_evidence ev[MTAREPORT_NFLAGS][MTAREPORT_EVIDENCE_MAX];
	unsigned	 nev[MTAREPORT_NFLAGS];
};
struct mtareport {
	struct htab	 msgs, origins, pairs;
	struct mtareport_origin *other;
	int64_t		 since, until;		/* 0: open */
	uint64_t	 files, lines, used, other_lines, bad, untracked, outbound_msgs,
			 local_only, undelivered;
	int64_t		 first, last;
	uint64_t	 next_seq;		/* messages in the order first seen */
	char		 bad_where[MTAREPORT_BAD_EXAMPLES][PATH_MAX + 24];
};
extern const char *const mtareport_logs[MTAREPORT_NLOGS];
int		 mtareport_init(struct mtareport *, time_t since, time_t until);
int		 mtareport_file(struct mtareport *, const char *path, char *err, size_t errlen);
void		 mtareport_end(struct mtareport *);
struct mtareport_origin **mtareport_rows(struct mtareport *, size_t *n);
size_t		 mtareport_default_logs(char ***paths);
void		 mtareport_free(struct mtareport *);

/* mtareport_cli.c: `smtpguard mta-report`, and the MTA volume of `top --mta` */
struct mtareport_user {
	long		 uid;		/* -1: a name this host's password file lacks */
	char		 name[USER_NAME_MAX];
	uint64_t	 messages, recipients;	/* outbound */
};
int	 mtareport_cli(int argc, char **argv);
int	 mtareport_cli_users(char **logs, size_t nlogs, time_t since, time_t until,
	    void (*fn)(const struct mtareport_user *, void *), void *arg);

/* mtacheck.c */
int	 mta_check(int argc, char **argv);

/* sandbox.c */
int	 sandbox_enter(char *err, size_t);

#endif /* SMTPGUARD_H */
