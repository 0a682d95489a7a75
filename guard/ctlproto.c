/*
 * ctlproto.c — the control socket's wire format, version 1.
 *
 * One request per connection: a single line of JSON, at most CTL_REQUEST_MAX
 * bytes, answered by a single line of JSON, then the daemon closes.
 *   request:  {"v":1,"cmd":"status"}
 *             {"v":1,"cmd":"allow","line":"allow www-data port=587"}
 *             {"v":1,"cmd":"revoke","who":"www-data"}
 *             {"v":1,"cmd":"exceptions"}  {"v":1,"cmd":"reload"}
 *             {"v":1,"cmd":"limit","line":"limit user:www-data 50/hour"}
 *             {"v":1,"cmd":"unlimit","origin":"user:www-data"}
 *             {"v":1,"cmd":"mailop","note":"mail: released 20 held messages ..."}
 *   reply:    {"v":1,"ok":true,...}  or  {"v":1,"ok":false,"error":"why"}
 * Pure: parses and validates untrusted bytes, never logs.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "smtpguard.h"

static const struct {
	const char	*name;
	enum ctl_cmd	 cmd;
	const char	*arg;	/* the one string argument it needs, or NULL */
} ctl_cmds[] = {
	{ "status",	CTL_STATUS,	NULL },
	{ "allow",	CTL_ALLOW,	"line" },
	{ "revoke",	CTL_REVOKE,	"who" },
	{ "exceptions",	CTL_EXCEPTIONS,	NULL },
	{ "reload",	CTL_RELOAD,	NULL },
	{ "limit",	CTL_LIMIT,	"line" },
	{ "unlimit",	CTL_UNLIMIT,	"origin" },
	{ "mailop",	CTL_MAILOP,	"note" },
};

int
ctl_parse_request(const char *buf, size_t len, struct ctl_request *req, char *err,
    size_t errlen)
{
	json_error_t jerr;
	json_t *root, *v, *cmd, *arg;
	int rc = -1;

	memset(req, 0, sizeof(*req));
	if (len > CTL_REQUEST_MAX) {
		snprintf(err, errlen, "request too large (%zu bytes, at most %d)", len,
		    CTL_REQUEST_MAX);
		return -1;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &jerr);
	if (root == NULL || !json_is_object(root)) {
		snprintf(err, errlen, "request is not a JSON object");
		goto out;
	}
	v = json_object_get(root, "v");
	if (!json_is_integer(v) || json_integer_value(v) != CTL_VERSION) {
		snprintf(err, errlen, "unsupported protocol version (this daemon speaks %d)",
		    CTL_VERSION);
		goto out;
	}
	cmd = json_object_get(root, "cmd");
	if (!json_is_string(cmd)) {
		snprintf(err, errlen, "request has no \"cmd\"");
		goto out;
	}
	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++) {
		if (strcmp(json_string_value(cmd), ctl_cmds[i].name) != 0)
			continue;
		req->cmd = ctl_cmds[i].cmd;
		if (ctl_cmds[i].arg == NULL) {
			rc = 0;
			goto out;
		}
		arg = json_object_get(root, ctl_cmds[i].arg);
		if (!json_is_string(arg)) {
			snprintf(err, errlen, "\"%s\" needs a string \"%s\"", ctl_cmds[i].name,
			    ctl_cmds[i].arg);
			goto out;
		}
		if (json_string_length(arg) >= sizeof(req->arg) ||
		    strlen(json_string_value(arg)) != json_string_length(arg)) {
			snprintf(err, errlen, "\"%s\" is too long or holds a NUL",
			    ctl_cmds[i].arg);
			goto out;
		}
		strlcpy_sg(req->arg, json_string_value(arg), sizeof(req->arg));
		rc = 0;
		goto out;
	}
	snprintf(err, errlen, "unknown command");
out:
	json_decref(root);
	return rc;
}

char *
ctl_format_request(enum ctl_cmd cmd, const char *arg)
{
	json_t *root;
	char *s;

	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++) {
		if (ctl_cmds[i].cmd != cmd)
			continue;
		root = json_pack("{s:i, s:s}", "v", CTL_VERSION, "cmd", ctl_cmds[i].name);
		if (root == NULL)
			return NULL;
		if (ctl_cmds[i].arg != NULL &&
		    json_object_set_new(root, ctl_cmds[i].arg, json_string(arg ? arg : "")) < 0) {
			json_decref(root);
			return NULL;
		}
		s = json_dumps(root, JSON_COMPACT);
		json_decref(root);
		return s;
	}
	errno = EINVAL;
	return NULL;
}
