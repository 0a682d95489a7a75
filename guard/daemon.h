/*
 * daemon.h — the daemon's private state, shared by its three rooms and by
 * nothing else (the CLI and the library modules never include it):
 *   smtpguardd.c  set-up, reload, signals, teardown: it creates and replaces
 *                 every object below and writes the configuration fields;
 *   fence.c       the packet path: reads them, writes the counters, the
 *                 followed flows and the event-log state;
 *   ctlreply.c    the answers to control requests: reads them, and for
 *                 allow/revoke replaces exc;
 *   gatewire.c    the mail gate's child and its requests: writes the gate
 *                 fields and the event log (through fence.c);
 *   metricsfile.c reads the counters each [metrics] interval and writes them
 *                 for Prometheus; writes only its own fields.
 * One thread, one epoll loop: no locking.
 */
#ifndef SMTPGUARD_DAEMON_H
#define SMTPGUARD_DAEMON_H

#include <jansson.h>

#include "smtpguard.h"

#define PASSWD_FILE	"/etc/passwd"
#define GROUP_FILE	"/etc/group"

struct counters {
	uint64_t	 packets;		/* packets read from the queue */
	uint64_t	 self_checks;		/* `smtpguard check` probes refused */
	uint64_t	 packet_bytes;		/* their IP bytes: what crossed into userspace */
	uint64_t	 decisions[ACTION_ALLOW + 1];
	uint64_t	 attempts[ACTION_ALLOW + 1];	/* SMTP attempts of fenced users */
	uint64_t	 unparsable;		/* not IPv4/IPv6 TCP: reset */
	uint64_t	 verdict_errors;
	uint64_t	 enobufs;		/* the kernel dropped queue messages */
	uint64_t	 events_lost;		/* event lines that could not be written */
	uint64_t	 alerts;
	uint64_t	 inspected;		/* packets of audited flows read */
	uint64_t	 audit_copies;		/* copies read from the tap, of any flow */
	uint64_t	 audit_copy_bytes;	/* their bytes (each at most the rules' snaplen) */
	uint64_t	 audit_overruns;		/* the tap's socket overran: copies lost (ENOBUFS) */
	uint64_t	 audit_unreleased;	/* read flows whose ct mark could not be set */
	uint64_t	 audit_lost;		/* followed flows whose last copies an overrun lost */
	uint64_t	 trap_direct;		/* connections to the trap port it was not sent */
	uint64_t	 trap_sessions;		/* trapped sessions that ended */
	/* detect_any_port: flows reset because they could not be read to a decision */
	uint64_t	 any_port_lost;		/* packets of followed flows the daemon lost */
	uint64_t	 any_port_expired;	/* undecided when their time was up */
	uint64_t	 any_port_refused;	/* SYNs with no room: the table or the uid's share full */
	uint64_t	 redirect_refused;	/* redirects reset: no room to keep their name */
	uint64_t	 redirect_named;	/* gate messages named by a redirected flow */
	/* refuse.c: flooding uids refused in the kernel */
	uint64_t	 kernel_refused;	/* their SYNs reset there, in ended windows
						   (refuse_live: the open ones) */
	uint64_t	 kernel_lost;		/* refused uids whose counter object was gone */
	uint64_t	 kernel_errors;		/* changes the kernel refused: an add (queue
						   path kept) or a delete (retried) */
	uint64_t	 kernel_full;		/* attempts kept on the queue path: set full */
	uint64_t	 kernel_audited;	/* SYNs audited in the kernel (@audited_uids) */
};

struct daemon {
	struct config		 cfg;
	uid_t			 mta[CONFIG_MAX_UIDS];
	size_t			 nmta;
	char			 mta_found[512];
	struct exceptions	 exc;
	bool			 foreground;
	bool			 native_queue;
	bool			 data_release;	/* the fence releases audited flows at DATA */
	bool			 table_installed;
	bool			 quit;
	int			 epfd, sigfd, timerfd;
	struct queue		*queue;
	struct nflog		*audit_tap;	/* copies of audited flows' packets */
	struct ctmark		*ctmark;	/* releases an audited flow once read */
	bool			 tap_overran;	/* copies lost since the last census */
	uint32_t		 tap_census;	/* stamp of the last census (fence.c) */
	struct nflog_mark	 census_end;	/* where the tap's stream was when it ended */
	bool			 census_failing;	/* the last census's dump failed (logged) */
	struct attrib_ctx	*attrib;
	struct event_log	*events;
	struct flood		*flood;
	struct refuse		*refuse;	/* flooding uids refused in the kernel */
	struct audited_uid {
		uid_t	 uid;
		time_t	 until;		/* its element's timeout */
	}			 audited[AUDITED_UIDS_MAX];	/* @audited_uids, as added */
	size_t			 naudited;
	struct alerts		*alerts;	/* counting; the alerter runs the program */
	int			 alert_fd;	/* to the alerter; -1 without [alert] exec */
	pid_t			 alerter_pid;
	struct control		*control;
	struct flow_table	*flows;		/* trapped, audited, probed, redirected flows (fence.c) */
	pid_t			 trap_pid;
	int			 trap_fd;
	time_t			 trap_restart;
	struct mailgate		*mailgate;	/* [mail]: counters and decisions (gatewire.c) */
	struct flood		*mail_flood;	/* [log] rate/window per origin (gatewire.c) */
	pid_t			 gate_pid;	/* the milter child */
	int			 gate_fd;
	uint64_t		 gate_tag;	/* its epoll tag */
	time_t			 gate_restart;
	struct hist		 gate_ns;	/* request in to verdict out, per message */
	uint64_t		 next_flow_id;
	time_t			 started;
	struct counters		 cnt;
	struct hist		 attrib_ns;	/* time to name a sender (attrib_sender) */
	struct metrics_latency	 attrib_le;	/* the same, in Prometheus' buckets */
	struct metrics_users	*users;		/* attempts per uid, for the busiest */
	time_t			 metrics_next;	/* when metricsfile.c writes again */
	bool			 metrics_failing;	/* the last write failed (logged once) */
	bool			 events_failing;	/* the last event write failed */
};

/* fence.c */
int	 fence_open(struct daemon *);
void	 fence_close(struct daemon *);
void	 fence_read(struct daemon *);
void	 fence_read_audit(struct daemon *);
int	 fence_trap_reports(struct daemon *);
void	 fence_tick(struct daemon *, time_t now);
void	 fence_summaries(struct daemon *, time_t until);
int	 fence_kernel_flush(struct daemon *, char *err, size_t errlen);
void	 fence_kernel_lost(struct daemon *);
size_t	 fence_auditing(const struct daemon *, time_t now);
void	 fence_emit(struct daemon *, struct event *);
void	 fence_emit_daemon(struct daemon *, const char *msg);
void	 fence_alert(struct daemon *, const struct event *, const char *msg);
const struct flow *fence_redirected(struct daemon *, int family, const uint8_t *src,
	    uint16_t sport, time_t now);

/* gatewire.c */
int	 gatewire_open(struct daemon *, char *err, size_t errlen);
void	 gatewire_close(struct daemon *);
int	 gatewire_start(struct daemon *, char *err, size_t errlen);
void	 gatewire_stop(struct daemon *);
void	 gatewire_requests(struct daemon *);
void	 gatewire_tick(struct daemon *, time_t now);
bool	 gatewire_child_changed(const struct config *, const struct config *);
void	 gatewire_reload(struct daemon *, bool child_changed);
void	 gatewire_status(const struct daemon *, json_t *);
void	 gatewire_flood_reset(struct daemon *, unsigned int rate, unsigned int window);
void	 gatewire_summaries(struct daemon *, time_t until);

/* metricsfile.c */
void	 metricsfile_tick(struct daemon *, time_t now);

/* ctlreply.c */
char	*ctlreply_ok(json_t *);
char	*ctlreply_error(const char *msg);
char	*ctlreply_status(const struct daemon *);
char	*ctlreply_exceptions(const struct daemon *);
char	*ctlreply_change(struct daemon *, const struct ctl_request *);
char	*ctlreply_limit(struct daemon *, const struct ctl_request *);
char	*ctlreply_mailop(struct daemon *, const struct ctl_request *);

#endif /* SMTPGUARD_DAEMON_H */
