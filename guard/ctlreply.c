/*
 * ctlreply.c — the daemon's answers to control requests: status (what runs,
 * its counters and the queue's), the exceptions in force, and allow/revoke,
 * which change the kernel set and the exceptions file together or not at
 * all; limit/unlimit, which change the mail gate's limit lines in the same
 * file the same way; and mailop, the CLI's note that it released or purged
 * held mail, written to the event log. Each answer is one JSON line (ctlproto.c's version), malloc'd for
 * control.c to send. Bad requests get an error reply, never a crash; it
 * never exits. Reload is smtpguardd.c's (it replaces everything); the state
 * read here is described in daemon.h.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "daemon.h"

static void
json_set_uids(json_t *o, const char *key, const uid_t *uids, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(uids[i]));
	json_object_set_new(o, key, a);
}

char *
ctlreply_ok(json_t *o)
{
	char *s;

	json_object_set_new(o, "v", json_integer(CTL_VERSION));
	json_object_set_new(o, "ok", json_true());
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

char *
ctlreply_error(const char *msg)
{
	json_t *o = json_pack("{s:i, s:b, s:s}", "v", CTL_VERSION, "ok", 0, "error", msg);
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	return s;
}

char *
ctlreply_status(const struct daemon *d)
{
	json_t *o = json_object(), *dec = json_object(), *ports = json_array();
	struct queue_stats qs;
	uint64_t live;

	/* Attempts the kernel reset in windows still open count now, not at their end. */
	(void)refuse_live(d->refuse, &live);
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "version", json_string(SMTPGUARD_VERSION));
	json_object_set_new(o, "started", json_integer(d->started));
	json_object_set_new(o, "config", json_string(d->cfg.path));
	json_object_set_new(o, "mta_users", json_string(d->mta_found));
	json_set_uids(o, "mta_uids", d->mta, d->nmta);
	for (size_t i = 0; i < d->cfg.nports; i++)
		json_array_append_new(ports, json_integer(d->cfg.ports[i]));
	json_object_set_new(o, "ports", ports);
	json_object_set_new(o, "action", json_string(action_name(d->cfg.action)));
	json_object_set_new(o, "allow_local", json_boolean(d->cfg.allow_local));
	json_object_set_new(o, "queue", json_integer(d->cfg.queue_num));
	json_object_set_new(o, "queue_path", json_string(d->native_queue ?
	    "native nft queue" : "xt NFQUEUE (compat)"));
	json_object_set_new(o, "table", json_boolean(ruleset_exists(TABLE_NAME) == 1));
	json_object_set_new(o, "exceptions", json_integer((json_int_t)d->exc.n));
	json_object_set_new(o, "events_file", json_string(d->cfg.log_file));
	json_object_set_new(o, "packets", json_integer((json_int_t)d->cnt.packets));
	json_object_set_new(o, "packet_bytes", json_integer((json_int_t)d->cnt.packet_bytes));
	json_object_set_new(o, "self_checks", json_integer((json_int_t)d->cnt.self_checks));
	for (int a = ACTION_REJECT; a <= ACTION_ALLOW; a++)
		json_object_set_new(dec, action_name(a), json_integer((json_int_t)
		    (d->cnt.decisions[a] + (a == ACTION_REJECT ? live : 0))));
	json_object_set_new(o, "decisions", dec);
	json_object_set_new(o, "unparsable", json_integer((json_int_t)d->cnt.unparsable));
	json_object_set_new(o, "verdict_errors",
	    json_integer((json_int_t)(d->cnt.verdict_errors + queue_verdicts_lost(d->queue))));
	json_object_set_new(o, "socket_overruns", json_integer((json_int_t)d->cnt.enobufs));
	json_object_set_new(o, "events_lost", json_integer((json_int_t)d->cnt.events_lost));
	json_object_set_new(o, "alerts", json_integer((json_int_t)d->cnt.alerts));
	json_object_set_new(o, "inspected", json_integer((json_int_t)d->cnt.inspected));
	json_object_set_new(o, "audit_overruns", json_integer((json_int_t)d->cnt.audit_overruns));
	json_object_set_new(o, "audit_copies", json_integer((json_int_t)d->cnt.audit_copies));
	json_object_set_new(o, "audit_copy_bytes",
	    json_integer((json_int_t)d->cnt.audit_copy_bytes));
	json_object_set_new(o, "audit_unreleased",
	    json_integer((json_int_t)d->cnt.audit_unreleased));
	json_object_set_new(o, "audit_lost", json_integer((json_int_t)d->cnt.audit_lost));
	json_object_set_new(o, "trap_direct", json_integer((json_int_t)d->cnt.trap_direct));
	json_object_set_new(o, "any_port_lost", json_integer((json_int_t)d->cnt.any_port_lost));
	json_object_set_new(o, "any_port_expired",
	    json_integer((json_int_t)d->cnt.any_port_expired));
	json_object_set_new(o, "any_port_refused",
	    json_integer((json_int_t)d->cnt.any_port_refused));
	json_object_set_new(o, "redirect_to", json_integer(d->cfg.redirect_to));
	json_object_set_new(o, "redirect_refused",
	    json_integer((json_int_t)d->cnt.redirect_refused));
	json_object_set_new(o, "redirect_named", json_integer((json_int_t)d->cnt.redirect_named));
	json_object_set_new(o, "kernel_refused",
	    json_integer((json_int_t)(d->cnt.kernel_refused + live)));
	json_object_set_new(o, "kernel_refusing",
	    json_integer((json_int_t)refuse_count(d->refuse)));
	json_object_set_new(o, "kernel_lost", json_integer((json_int_t)d->cnt.kernel_lost));
	json_object_set_new(o, "kernel_errors", json_integer((json_int_t)d->cnt.kernel_errors));
	json_object_set_new(o, "kernel_full", json_integer((json_int_t)d->cnt.kernel_full));
	json_object_set_new(o, "kernel_audited", json_integer((json_int_t)d->cnt.kernel_audited));
	json_object_set_new(o, "kernel_auditing", json_integer((json_int_t)fence_auditing(d, time(NULL))));
	json_object_set_new(o, "flows_followed", json_integer((json_int_t)flow_count(d->flows)));
	json_object_set_new(o, "attribution_ns", json_pack("{s:I, s:I, s:I, s:I}",
	    "lookups", (json_int_t)d->attrib_ns.total,
	    "p50", (json_int_t)hist_quantile(&d->attrib_ns, 0.50),
	    "p99", (json_int_t)hist_quantile(&d->attrib_ns, 0.99),
	    "max", (json_int_t)d->attrib_ns.max));
	gatewire_status(d, o);
	if (queue_stats(d->cfg.queue_num, &qs) == 0) {
		json_object_set_new(o, "queue_waiting", json_integer(qs.waiting));
		json_object_set_new(o, "queue_dropped", json_integer(qs.queue_dropped));
		json_object_set_new(o, "queue_user_dropped", json_integer(qs.user_dropped));
	}
	return ctlreply_ok(o);
}

/* An exception's destinations or ports as a JSON array (empty: any). */
static json_t *
exception_list(const struct exception *x, bool cidrs)
{
	json_t *a = json_array();
	char buf[INET6_ADDRSTRLEN + 8];

	for (size_t i = 0; cidrs && i < x->nto; i++) {
		cidr_format(&x->to[i], buf, sizeof(buf));
		json_array_append_new(a, json_string(buf));
	}
	for (size_t i = 0; !cidrs && i < x->nports; i++)
		json_array_append_new(a, json_integer(x->ports[i]));
	return a;
}

/* The mail gate's limit lines, in file order. */
static json_t *
limit_list(const struct exceptions *xs)
{
	json_t *a = json_array();
	char line[EXCEPTION_LINE_MAX];

	for (size_t i = 0; i < xs->nlimits; i++) {
		const struct mail_limit_rule *r = &xs->limits[i];
		json_t *e;

		if (maillimit_rule_format(r, line, sizeof(line)) < 0)
			continue;
		e = json_pack("{s:s, s:I, s:s}", "origin", r->origin, "per_hour",
		    (json_int_t)r->per_hour, "line", line);
		if (r->comment[0] != '\0')
			json_object_set_new(e, "comment", json_string(r->comment));
		json_array_append_new(a, e);
	}
	return a;
}

char *
ctlreply_exceptions(const struct daemon *d)
{
	json_t *o = json_object(), *list = json_array();
	char line[EXCEPTION_LINE_MAX];

	for (size_t i = 0; i < d->exc.n; i++) {
		const struct exception *x = &d->exc.v[i];
		json_t *e;

		if (exception_format(x, line, sizeof(line)) < 0)
			continue;
		e = json_pack("{s:s, s:s, s:I, s:I, s:s, s:I}", "who", x->who, "line", line,
		    "hits", (json_int_t)x->hits, "last_hit", (json_int_t)x->last_hit,
		    "mode", exception_is_plain(x) ? "kernel" : x->audit ? "audit" :
		    x->redirect ? "redirect" : "allow",
		    "cap", (json_int_t)x->cap_per_hour);
		json_set_uids(e, "uids", x->uids, x->nuids);
		json_object_set_new(e, "to", exception_list(x, true));
		json_object_set_new(e, "ports", exception_list(x, false));
		if (x->comment[0] != '\0')
			json_object_set_new(e, "comment", json_string(x->comment));
		json_array_append_new(list, e);
	}
	json_object_set_new(o, "exceptions", list);
	json_object_set_new(o, "limits", limit_list(&d->exc));
	return ctlreply_ok(o);
}

/*
 * allow/revoke: validate on a copy, apply the kernel set delta in one batch,
 * then persist; if persisting fails, the kernel change is undone. Either
 * both the kernel and the file change, or neither.
 */
char *
ctlreply_change(struct daemon *d, const struct ctl_request *req)
{
	struct exceptions next = { 0 };
	struct exception x;
	uid_t before[KERNEL_UIDS_MAX], after[KERNEL_UIDS_MAX];
	uid_t add[KERNEL_UIDS_MAX], del[KERNEL_UIDS_MAX];
	size_t nbefore, nafter, nadd = 0, ndel = 0;
	char err[512], msg[CTL_ARG_MAX + 64];
	char *reply;

	/* Before the kernel set changes, whatever the request: a managed file is not
	 * the CLI's to change. */
	if (exceptions_check_unmanaged(d->cfg.exceptions, err, sizeof(err)) < 0)
		return ctlreply_error(err);
	if (exceptions_copy(&next, &d->exc) < 0)
		return ctlreply_error("out of memory");
	if (req->cmd == CTL_ALLOW) {
		if (exception_parse(req->arg, PASSWD_FILE, GROUP_FILE, &x, err, sizeof(err)) < 0 ||
		    exceptions_add(&next, &x, err, sizeof(err)) < 0)
			goto fail;
	} else if (exceptions_remove(&next, req->arg, err, sizeof(err)) < 0)
		goto fail;

	/*
	 * The uids refused in the kernel were judged under the old exceptions:
	 * out, counted, before the new ones apply (no packet is read between).
	 */
	if (fence_kernel_flush(d, err, sizeof(err)) < 0)
		goto fail;
	nbefore = exceptions_kernel_uids(&d->exc, before, KERNEL_UIDS_MAX);
	nafter = exceptions_kernel_uids(&next, after, KERNEL_UIDS_MAX);
	for (size_t i = 0; i < nafter; i++)
		if (!uid_in_sorted(after[i], before, nbefore))
			add[nadd++] = after[i];
	for (size_t i = 0; i < nbefore; i++)
		if (!uid_in_sorted(before[i], after, nafter))
			del[ndel++] = before[i];
	if (nadd > 0 && ruleset_set_uids(TABLE_NAME, "allow_uids", true, add, nadd,
	    err, sizeof(err)) < 0)
		goto fail;
	if (ndel > 0 && ruleset_set_uids(TABLE_NAME, "allow_uids", false, del, ndel,
	    err, sizeof(err)) < 0) {
		if (nadd > 0)
			(void)ruleset_set_uids(TABLE_NAME, "allow_uids", false, add, nadd,
			    msg, sizeof(msg));
		goto fail;
	}
	if (exceptions_save(d->cfg.exceptions, &next, err, sizeof(err)) < 0) {
		if (nadd > 0)
			(void)ruleset_set_uids(TABLE_NAME, "allow_uids", false, add, nadd,
			    msg, sizeof(msg));
		if (ndel > 0)
			(void)ruleset_set_uids(TABLE_NAME, "allow_uids", true, del, ndel,
			    msg, sizeof(msg));
		goto fail;
	}
	exceptions_free(&d->exc);
	d->exc = next;
	snprintf(msg, sizeof(msg), "%s %s", req->cmd == CTL_ALLOW ? "allowed:" : "revoked:",
	    req->arg);
	fence_emit_daemon(d, msg);
	return ctlreply_ok(json_pack("{s:s}", "done", msg));
fail:
	exceptions_free(&next);
	reply = ctlreply_error(err);
	return reply;
}

/*
 * limit/unlimit: the same order as allow/revoke, with no kernel part: the
 * change is made on a copy, written to the file atomically, and only then
 * put in force (the gate reads d->exc.limits for each message). A refusal
 * changes nothing.
 */
char *
ctlreply_limit(struct daemon *d, const struct ctl_request *req)
{
	struct exceptions next = { 0 };
	struct mail_limit_rule r;
	char err[512], origin[MAIL_ORIGIN_MAX], msg[CTL_ARG_MAX + 64];

	/* Whatever the request: a managed file is not the CLI's to change. */
	if (exceptions_check_unmanaged(d->cfg.exceptions, err, sizeof(err)) < 0)
		return ctlreply_error(err);
	if (exceptions_copy(&next, &d->exc) < 0)
		return ctlreply_error("out of memory");
	if (req->cmd == CTL_LIMIT) {
		if (maillimit_rule_parse(req->arg, &r, err, sizeof(err)) < 0 ||
		    exceptions_add_limit(&next, &r, err, sizeof(err)) < 0)
			goto fail;
		snprintf(msg, sizeof(msg), "limited: %s %lu/hour", r.origin,
		    (unsigned long)r.per_hour);
	} else {
		if (mailq_origin_key(req->arg, origin, sizeof(origin), err, sizeof(err)) < 0 ||
		    exceptions_remove_limit(&next, origin, err, sizeof(err)) < 0)
			goto fail;
		snprintf(msg, sizeof(msg), "unlimited: %s (the [mail] limit applies)", origin);
	}
	if (exceptions_save(d->cfg.exceptions, &next, err, sizeof(err)) < 0)
		goto fail;
	exceptions_free(&d->exc);
	d->exc = next;
	fence_emit_daemon(d, msg);
	return ctlreply_ok(json_pack("{s:s}", "done", msg));
fail:
	exceptions_free(&next);
	return ctlreply_error(err);
}

#define MAILOP_NOTE_MAX	512	/* "mail: released 20 held messages of ORIGIN (postsuper -H)" */

/* The CLI's note of what it did to held mail: a daemon event, printable text only. */
char *
ctlreply_mailop(struct daemon *d, const struct ctl_request *req)
{
	size_t n = strlen(req->arg);

	if (strncmp(req->arg, CTL_MAILOP_PREFIX, strlen(CTL_MAILOP_PREFIX)) != 0 ||
	    n >= MAILOP_NOTE_MAX)
		return ctlreply_error("a mailop note starts with \"" CTL_MAILOP_PREFIX "\" and "
		    "is shorter than 512 bytes");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)req->arg[i] < 0x20 || (unsigned char)req->arg[i] > 0x7e)
			return ctlreply_error("a mailop note is printable ASCII");
	fence_emit_daemon(d, req->arg);
	return ctlreply_ok(json_pack("{s:s}", "done", "noted"));
}
