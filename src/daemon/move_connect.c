/* The source's connection to the destination (move.h): the credential that
 * carries the user, the destination's addresses, calls, liveness, and the
 * answer to a lost migrate.finish. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gss.h"
#include "log.h"
#include "move.h"
#include "ops.h"
#include "peer_msg.h"
#include "settings.h"
#include "util.h"

/* how long a source whose finish went unanswered asks the destination */
#define FINISH_OUTCOME_WAIT_MS 120000

/* Fails the move when the destination went away or nothing moved for
 * stall-timeout seconds (a cut migration network stalls QEMU, it does not fail it). */
int move_check_alive(struct move *m)
{
	uint64_t bytes;

	if (m->peer.open && socket_peer_gone(m->peer.conn.fd)) {
		snprintf(m->err, sizeof(m->err), "lost the connection to %s (its ferryd stopped or the network failed)",
			 m->j->dest);
		move_peer_close(&m->peer);
		return -ECONNRESET;
	}
	pthread_mutex_lock(&m->d->lock);
	bytes = m->j->mem_transferred + (m->j->disk_total - m->j->disk_remaining);
	pthread_mutex_unlock(&m->d->lock);
	if (bytes != m->progress_bytes || !m->progress_ms) {
		m->progress_bytes = bytes;
		m->progress_ms = now_ms();
	} else if (now_ms() - m->progress_ms > m->stall_ms) {
		snprintf(m->err, sizeof(m->err),
			 "no progress for %llu s: is the migration network between %s and %s down?",
			 (unsigned long long)(m->stall_ms / 1000), m->d->host_name, m->j->dest);
		return -ETIMEDOUT;
	}
	return 0;
}

void move_peer_close(struct peer *p)
{
	if (!p->open)
		return;
	close(p->conn.fd);
	gss_session_free(p->sess);
	p->open = false;
}

/* One request to the destination; a refusal becomes m->err with the peer's words. */
int move_peer_call(struct move *m, const char *op, json_t *args, json_t **ret)
{
	json_t *reply = NULL, *e;
	int r;

	r = conn_call(&m->peer.conn, op, args, &reply);
	json_decref(args);
	if (r < 0) {
		snprintf(m->err, sizeof(m->err), "lost the connection to %s during %s: %s", m->j->dest, op,
			 strerror(-r));
		move_peer_close(&m->peer);
		return r;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		e = json_object_get(reply, "error");
		snprintf(m->err, sizeof(m->err), "%s%s%s", arg_str(e, "message") ? arg_str(e, "message") : "refused",
			 arg_str(e, "hint") ? "; " : "", arg_str(e, "hint") ? arg_str(e, "hint") : "");
		json_decref(reply);
		return -EPERM;
	}
	if (ret)
		*ret = json_incref(json_object_get(reply, "result"));
	json_decref(reply);
	return 0;
}

/* Which credential carries the user to the destination (seed: CredSSP vs Kerberos). */
static int pick_credential(struct move *m, enum gss_cred_kind *kind, void **cred, bool *owned)
{
	struct caller *c = &m->j->caller;

	/* a copy: host.set frees the setting's string once the lock is dropped */
	pthread_mutex_lock(&m->d->lock);
	snprintf(m->auth, sizeof(m->auth), "%s", settings_str(m->d->settings, "auth"));
	pthread_mutex_unlock(&m->d->lock);
	*owned = false;
	*kind = GSS_CRED_HANDLE;
	if (strcmp(m->auth, "credssp") == 0) {
		if (!c->local) {
			snprintf(m->err, sizeof(m->err),
				 "Virtual machine migration operation failed at migration source. Failed to establish a "
				 "connection with host %s: no credentials are available in the security package "
				 "(0x8009030E). With authentication 'credssp' your credentials reach only the host you "
				 "signed in to: run the move on %s itself, or set 'ferry host set auth kerberos' on both "
				 "hosts and configure constrained delegation",
				 m->j->dest, m->d->host_name);
			return -EPERM;
		}
		if (!c->deleg_cred || !c->forwarded) {
			snprintf(m->err, sizeof(m->err),
				 "no credentials are available in the security package (0x8009030E): ferry on %s did not "
				 "forward your Kerberos credentials; run kinit on %s first",
				 m->d->host_name, m->d->host_name);
			return -EPERM;
		}
		*cred = c->deleg_cred;
		return 0;
	}
	/* kerberos: constrained delegation with the user's ticket as evidence
	 * (S4U2Proxy), or protocol transition (S4U2Self) for a local user. */
	if (c->deleg_cred) {
		*cred = c->deleg_cred;
		return 0;
	}
	if (c->principal[0]) {
		if (gss_impersonate(m->d->keytab[0] ? m->d->keytab : NULL, m->d->host_name, c->principal, cred,
				    m->err, sizeof(m->err)) < 0)
			return -EPERM;
		*owned = true;
		return 0;
	}
	snprintf(m->err, sizeof(m->err),
		 "no Kerberos identity for this request: run kinit as the administrator who moves the VM, then retry");
	return -EPERM;
}

/* Opens m->peer to the destination's service, at addr (NULL: its name), with
 * the credential pick_credential chose (it also set m->auth). A
 * local Kerberos user whose ticket cannot serve as evidence for constrained
 * delegation (not forwardable) is carried by protocol transition (S4U2Self)
 * instead, where the directory allows "any authentication protocol". */
static int open_peer(struct move *m, const char *addr, int port, enum gss_cred_kind kind, void **cred, bool *owned)
{
	struct caller *c = &m->j->caller;
	char sub[1024], sub2[1024];
	void *imp = NULL;
	int r;

	r = peer_connect(m->d, m->j->dest, addr, port, kind, *cred, &m->peer.conn, &m->peer.sess, sub, sizeof(sub));
	if (r < 0 && c->local && c->principal[0] && !*owned && !c->forwarded &&
	    strcmp(m->auth, "kerberos") == 0) {
		if (gss_impersonate(m->d->keytab[0] ? m->d->keytab : NULL, m->d->host_name, c->principal, &imp, sub2,
				    sizeof(sub2)) == 0) {
			r = peer_connect(m->d, m->j->dest, addr, port, GSS_CRED_HANDLE, imp, &m->peer.conn, &m->peer.sess,
					 sub2, sizeof(sub2));
			if (r == 0) {
				log_info("job %llu: %s carried by protocol transition (S4U2Self)", (unsigned long long)m->j->id,
					 c->principal);
				*cred = imp;
				*owned = true;
			} else {
				gss_cred_free(imp);
			}
		}
		if (r < 0) {
			char both[1024];
			snprintf(both, sizeof(both), "protocol transition failed too: %s; before that, with the user's own ticket: %s",
				 sub2, sub);
			memcpy(sub, both, sizeof(sub));
		}
	}
	if (r < 0) {
		snprintf(m->err, sizeof(m->err), "Failed to establish a connection with host %s%s%s: %s", m->j->dest,
			 addr ? " on its migration address " : "", addr ? addr : "", sub);
		return r;
	}
	m->peer.open = true;
	return 0;
}

/* Connects to the destination on its best migration address: first to its
 * name to learn the addresses, then there, where the source must be accepted. */
int move_connect_dest(struct move *m)
{
	struct ferryd *d = m->d;
	enum gss_cred_kind kind;
	struct peer_addresses addrs;
	json_t *res = NULL;
	void *cred = NULL;
	bool owned;
	int64_t t_send, t_recv;
	int r, port = (int)(json_integer_value(json_object_get(m->j->args, "port")) ?: d->port);

	if ((r = pick_credential(m, &kind, &cred, &owned)) < 0)
		return r;
	if ((r = open_peer(m, NULL, port, kind, &cred, &owned)) < 0)
		goto out;
	t_send = realtime_ms();
	r = move_peer_call(m, OP_MIGRATE_ADDRESSES, NULL, &res);
	t_recv = realtime_ms();
	move_peer_close(&m->peer);
	if (r < 0)
		goto out;
	if ((r = peer_read_addresses_reply(res, &addrs, m->err, sizeof(m->err))) < 0)
		goto out;
	/* a cheap request: its round trip relates the two clocks (move_pause.c) */
	move_clock_sample(m, t_send, t_recv, addrs.clock_ms);
	if (!addrs.migration_enabled) {
		snprintf(m->err, sizeof(m->err), "live migrations are disabled on %s: run 'ferry migration enable' there",
			 m->j->dest);
		r = -EPERM;
		goto out;
	}
	if (addrs.n == 0) {
		snprintf(m->err, sizeof(m->err),
			 "%s accepts migrations on no network: add one there with 'ferry migration network add CIDR' "
			 "or 'ferry migration use-any-network on'",
			 m->j->dest);
		r = -EPERM;
		goto out;
	}
	/* either end requiring encryption makes the move encrypted */
	if (!m->tls && addrs.encryption_required) {
		log_info("job %llu: %s requires encryption: this move is encrypted", (unsigned long long)m->j->id,
			 m->j->dest);
		m->tls = true;
	}
	r = open_peer(m, addrs.first, port, kind, &cred, &owned);
out:
	if (owned)
		gss_cred_free(cred);
	json_decref(res);
	return r;
}

/* Connects to the destination by its name (its management address): the
 * question after a lost finish must get through when the migration network
 * is what broke. */
static int move_connect_dest_by_name(struct move *m)
{
	enum gss_cred_kind kind;
	void *cred = NULL;
	bool owned;
	int r, port = (int)(json_integer_value(json_object_get(m->j->args, "port")) ?: m->d->port);

	if ((r = pick_credential(m, &kind, &cred, &owned)) < 0)
		return r;
	r = open_peer(m, NULL, port, kind, &cred, &owned);
	if (owned)
		gss_cred_free(cred);
	return r;
}

/* The connection broke while the destination was resuming the guest: ask it
 * again on a new connection whether the guest runs there. Only a clear "no"
 * lets the source resume it; otherwise it stays paused here. */
int move_finish_outcome(struct move *m)
{
	uint64_t deadline = now_ms() + FINISH_OUTCOME_WAIT_MS;
	char first[1024];

	snprintf(first, sizeof(first), "%s", m->err);
	/* Only the destination knows whether it resumed the guest, and it may be
	 * restarting (it then completes a resume it had saved: finish_recover):
	 * ask again until it answers "running" or "not here", or time is up. */
	for (;;) {
		json_t *args = json_pack("{s:s}", "name", m->j->vm), *reply = NULL;
		const char *state = "", *code = "";
		bool not_found;
		int r;

		move_peer_close(&m->peer); /* the connection that lost the answer, then each try's */
		r = move_connect_dest_by_name(m);

		if (r == 0)
			r = conn_call(&m->peer.conn, OP_VM_SHOW, args, &reply);
		json_decref(args);
		move_peer_close(&m->peer);
		if (r == 0) {
			state = arg_str(json_object_get(reply, "result"), "state") ?: "";
			code = arg_str(json_object_get(reply, "error"), "code") ?: "";
		}
		if (json_is_true(json_object_get(reply, "ok")) && !strcmp(state, "running")) {
			json_decref(reply);
			log_warn("job %llu: lost the answer from %s, but %s runs there", (unsigned long long)m->j->id,
				 m->j->dest, m->j->vm);
			return 0;
		}
		if (r < 0)
			log_info("job %llu: asking %s whether %s runs there: %s", (unsigned long long)m->j->id, m->j->dest,
				 m->j->vm, m->err);
		else
			log_info("job %llu: asking %s whether %s runs there: %s%s", (unsigned long long)m->j->id,
				 m->j->dest, m->j->vm, state[0] ? state : code, state[0] || code[0] ? "" : "no answer");
		not_found = !strcmp(code, "not_found"); /* code points into reply */
		json_decref(reply);
		if (not_found) {
			snprintf(m->err, sizeof(m->err), "%s; %s does not have the VM, so it resumes here", first,
				 m->j->dest);
			return -EIO;
		}
		if (now_ms() >= deadline)
			break;
		sleep(2);
	}
	m->outcome_unknown = true;
	snprintf(m->err, sizeof(m->err),
		 "%s. %s may be running %s now: it stays paused here. If it runs on %s, remove it here "
		 "(ferry vm kill %s; ferry vm delete %s --keep-disks); if not, resume it here with 'ferry vm start %s --force'",
		 first, m->j->dest, m->j->vm, m->j->dest, m->j->vm, m->j->vm, m->j->vm);
	return -EIO;
}
