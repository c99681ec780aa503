/* The local control socket and request dispatch.
 *
 * One thread per connection; requests on a connection are handled in order.
 * The caller's identity is taken from SO_PEERCRED at accept time. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ferryd.h"
#include "log.h"
#include "pac.h"
#include "util.h"

/* an authenticated connection that says nothing for this long is closed */
#define IDLE_TIMEOUT_S 600

const struct op_def *const op_tables[] = {host_ops, vm_ops, switch_ops, job_ops, move_ops, incoming_ops, probe_ops, auth_ops};
const size_t n_op_tables = ARRAY_SIZE(op_tables);

struct session {
	struct ferryd *d;
	int fd;
	struct caller caller;
};

int control_listen(struct ferryd *d, int *ret_fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control.sock", d->run_dir) >=
	    sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	/* Anyone may connect; authorization happens per request from SO_PEERCRED,
	 * so that a refused user gets a clear answer instead of EACCES. */
	chmod(sa.sun_path, 0666);
	*ret_fd = fd;
	return 0;
}

static bool uid_in_group(uid_t uid, gid_t gid, const char *group)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char buf[16384], gbuf[16384];
	gid_t groups[256];
	int n = ARRAY_SIZE(groups);

	if (!group[0] || getgrnam_r(group, &gr, gbuf, sizeof(gbuf), &grp) != 0 || !grp)
		return false;
	if (gid == grp->gr_gid)
		return true;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) != 0 || !pwp)
		return false;
	if (getgrouplist(pwp->pw_name, pwp->pw_gid, groups, &n) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == grp->gr_gid)
			return true;
	return false;
}

bool caller_is_admin(struct ferryd *d, const struct caller *c, char *why, size_t whylen)
{
	bool groups_configured = false;
	size_t i;
	json_t *p;

	if (c->local) {
		if (c->uid == 0 || uid_in_group(c->uid, c->gid, d->admin_group))
			return true;
		if (c->principal[0])
			goto principal; /* a local user proven by Kerberos (auth.kerberos) */
		snprintf(why, whylen,
			 "uid %u is not an administrator of %s: run as root or join the '%s' group",
			 (unsigned)c->uid, d->host_name, d->admin_group);
		return false;
	}
principal:
	if (!c->principal[0])
		goto refuse; /* group SIDs only ever come with a principal */
	pthread_mutex_lock(&d->lock);
	json_array_foreach(d->admin_principals, i, p) {
		if (json_is_string(p) && strcmp(json_string_value(p), c->principal) == 0) {
			pthread_mutex_unlock(&d->lock);
			return true;
		}
	}
	json_array_foreach(d->admin_group_sids, i, p) {
		if (json_is_string(p) && caller_in_group(c, json_string_value(p))) {
			pthread_mutex_unlock(&d->lock);
			return true;
		}
	}
	groups_configured = json_array_size(d->admin_group_sids) > 0;
	pthread_mutex_unlock(&d->lock);
refuse:
	/* not the configuration's path: the caller is no administrator (review L12) */
	snprintf(why, whylen,
		 "%s is not an administrator of %s: add it with admin-principal or admin-group-sid in "
		 "ferryd's configuration there%s",
		 c->principal[0] ? c->principal : "(anonymous)", d->host_name,
		 groups_configured && !c->n_group_sids ? " (its Kerberos ticket carried no group memberships)" : "");
	return false;
}

bool caller_in_group(const struct caller *c, const char *sid)
{
	const char *s = c->group_sids;

	for (size_t i = 0; i < c->n_group_sids; i++, s += strlen(s) + 1)
		if (!strcmp(s, sid))
			return true;
	return false;
}

void caller_load_groups(struct caller *c, struct gss_session *gs)
{
	char **sids = NULL, err[512];
	size_t n = 0, off = 0, kept = 0;
	int r;

	c->n_group_sids = 0;
	c->group_sids[0] = '\0';
	r = gss_session_group_sids(gs, &sids, &n, err, sizeof(err));
	if (r < 0) {
		log_warn("%s: %s", c->principal, err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(sids[i]) + 1;

		if (len > sizeof(c->group_sids) - off)
			break;
		memcpy(c->group_sids + off, sids[i], len);
		off += len;
		kept++;
		log_debug("%s: member of %s", c->principal, sids[i]);
	}
	if (kept < n)
		log_warn("%s is a member of %zu groups: only the first %zu are considered for admin-group-sid",
			 c->principal, n, kept);
	c->n_group_sids = kept;
	pac_sids_free(sids, n);
}

json_t *dispatch(struct request *req)
{
	char why[512];
	json_t *reply;

	for (size_t t = 0; t < n_op_tables; t++) {
		for (const struct op_def *op = op_tables[t]; op->name; op++) {
			if (strcmp(op->name, req->op) != 0)
				continue;
			if (!(op->flags & (req->caller->local ? OP_LOCAL : OP_REMOTE)))
				return req->caller->local
					       ? reply_error("bad_request", NULL, "%s comes over TCP from another host's "
								 "ferryd, not over the local socket", req->op)
					       : reply_error("bad_request", "remote connections authenticate when they "
								 "connect", "%s is only for the local control socket",
							     req->op);
			/* auth.kerberos (not OP_ADMIN) only establishes who asks */
			if ((op->flags & OP_ADMIN) && !caller_is_admin(req->d, req->caller, why, sizeof(why))) {
				log_info("%s refused: %s (configuration: %s)", req->op, why, req->d->config_path);
				return reply_error("unauthorized", NULL, "%s", why);
			}
			reply = op->fn(req);
			if (op->flags & OP_MOVE_STEP)
				incoming_log_step(req, reply);
			return reply;
		}
	}
	return reply_error("bad_request", "run 'ferry --help' for the commands this version knows",
			   "unknown operation '%s'", req->op);
}

/* Serves requests on an established connection until the peer goes away. */
/* Before closing on a client that is still sending: stop writing, then read
 * and drop what it sends for a moment (bounded), so that the close does not
 * reset the connection and destroy the answer before the client reads it. */
static void linger_close(int fd)
{
	struct timeval tv = {.tv_sec = 1};
	uint64_t deadline = now_ms() + 3000;
	char buf[16384];
	size_t total = 0;
	ssize_t n;

	shutdown(fd, SHUT_WR);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (total < (4u << 20) && now_ms() < deadline && (n = read(fd, buf, sizeof(buf))) > 0)
		total += (size_t)n;
}

void serve_connection(struct ferryd *d, struct conn *c, struct caller *caller)
{
	for (;;) {
		char err[256];
		struct request req = {.d = d, .caller = caller, .conn = c};
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		json_t *msg = NULL, *reply;
		int r;

		/* An idle connection is closed (review M3), unless it carries an
		 * incoming move: its source speaks again only at the switchover. */
		r = poll(&pfd, 1, IDLE_TIMEOUT_S * 1000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 && caller->planned[0])
			continue;
		if (r == 0) {
			log_info("closing a connection of %s idle for %d s", caller->local ? "a local user" : caller->principal,
				 IDLE_TIMEOUT_S);
			break;
		}
		r = conn_recv(c, &msg, err, sizeof(err));
		if (r == -EBADMSG) {
			/* The stream is out of step: answer once, then drop the connection. */
			reply = reply_error("bad_request", NULL, "%s", err);
			conn_send(c, reply);
			json_decref(reply);
			break;
		}
		if (r == -EPROTO || r == -EMSGSIZE) {
			reply = reply_error("bad_request", NULL, "%s", err);
			conn_send(c, reply);
			json_decref(reply);
			if (r == -EMSGSIZE) {
				/* the oversized payload was not read: cannot resync */
				linger_close(c->fd);
				break;
			}
			continue;
		}
		if (r < 0)
			break;
		if (proto_check_request(msg, &req.op, &req.args, err, sizeof(err)) < 0) {
			reply = reply_error("bad_request", NULL, "%s", err);
		} else {
			json_t *empty = NULL;
			if (!req.args)
				req.args = empty = json_object();
			log_debug("request %s from %s", req.op, caller->local ? "local" : caller->principal);
			reply = dispatch(&req);
			json_decref(empty);
		}
		json_decref(msg);
		r = conn_send(c, reply);
		json_decref(reply);
		if (r < 0)
			break;
	}
	incoming_connection_closed(d, caller);
	gss_cred_free(caller->deleg_cred);
	caller->deleg_cred = NULL;
}

static void *session_thread(void *arg)
{
	struct session *s = arg;
	struct conn c;

	conn_init(&c, s->fd, PROTO_MAX_MSG);
	serve_connection(s->d, &c, &s->caller);
	close(s->fd);
	free(s);
	return NULL;
}

void control_serve(struct ferryd *d, int listen_fd)
{
	struct session *s;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	pthread_t t;
	int fd;

	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || !(s = calloc(1, sizeof(*s)))) {
		close(fd);
		return;
	}
	s->d = d;
	s->fd = fd;
	s->caller.local = true;
	s->caller.uid = cred.uid;
	s->caller.gid = cred.gid;
	s->caller.pid = cred.pid;
	if (pthread_create(&t, NULL, session_thread, s) != 0) {
		close(fd);
		free(s);
		return;
	}
	pthread_detach(t);
}
