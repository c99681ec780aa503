/* The source half of a move (Move-VM), as the stages of ARCHITECTURE.md:
 * setup, storage, memory, switchover, cleanup. Until the destination has the
 * guest running, every failure leaves the guest running here with all its
 * writes, and the destination removes whatever it prepared. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockjob.h"
#include "fault.h"
#include "ferryd.h"
#include "image.h"
#include "log.h"
#include "move_endpoint.h"
#include "migrate_params.h"
#include "move_util.h"
#include "peer_msg.h"
#include "storage.h"
#include "settings.h"
#include "util.h"
#include "vmconfig.h"

#define POLL_MS 200
/* The guest is paused while these run: every millisecond of polling is downtime. */
#define MEMORY_POLL_MS 25
#define SWITCHOVER_POLL_MS 5
#define MIG_JOBS "mig" /* mirrors mig-mirror<i> to NBD nodes mig-tgt<i> (blockjob.h) */
/* how long a source whose finish went unanswered asks the destination */
#define FINISH_OUTCOME_WAIT_MS 120000
#define FORCED_DOWNTIME_MS 2000000 /* QEMU's maximum: converge on the next pass */

struct peer {
	struct conn conn;
	struct gss_session *sess;
	bool open;
};

struct move {
	struct ferryd *d;
	struct job *j;
	struct vm *vm;
	json_t *dest_cfg;
	bool storage, keep_disks, tls, migrating, prepared;
	struct move_endpoint ep;  /* where QEMU sends the guest: checked, built here */
	bool outcome_unknown;   /* the destination may be running the guest: never resume it here */
	size_t ndisks;
	char perf[16];
	char auth[16];          /* the auth setting, copied under the lock (review L8) */
	int channels;
	struct peer peer;
	char pskdir[PATH_MAX + 16];
	char err[2048];
	/* stall detection: the last time the byte counters moved */
	uint64_t progress_bytes, progress_ms, stall_ms;
};

static void peer_close(struct peer *p);

/* Fails the move when the destination went away or nothing moved for
 * stall-timeout seconds (a cut migration network stalls QEMU, it does not fail it). */
static int check_alive(struct move *m)
{
	uint64_t bytes;

	if (m->peer.open && socket_peer_gone(m->peer.conn.fd)) {
		snprintf(m->err, sizeof(m->err), "lost the connection to %s (its ferryd stopped or the network failed)",
			 m->j->dest);
		peer_close(&m->peer);
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

static void peer_close(struct peer *p)
{
	if (!p->open)
		return;
	close(p->conn.fd);
	gss_session_free(p->sess);
	p->open = false;
}

/* One request to the destination; a refusal becomes m->err with the peer's words. */
static int peer_call(struct move *m, const char *op, json_t *args, json_t **ret)
{
	json_t *reply = NULL, *e;
	int r;

	r = conn_call(&m->peer.conn, op, args, &reply);
	json_decref(args);
	if (r < 0) {
		snprintf(m->err, sizeof(m->err), "lost the connection to %s during %s: %s", m->j->dest, op,
			 strerror(-r));
		peer_close(&m->peer);
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
static int connect_dest(struct move *m)
{
	struct ferryd *d = m->d;
	enum gss_cred_kind kind;
	struct peer_addresses addrs;
	json_t *res = NULL;
	void *cred = NULL;
	bool owned;
	int r, port = (int)(json_integer_value(json_object_get(m->j->args, "port")) ?: d->port);

	if ((r = pick_credential(m, &kind, &cred, &owned)) < 0)
		return r;
	if ((r = open_peer(m, NULL, port, kind, &cred, &owned)) < 0)
		goto out;
	r = peer_call(m, PEER_OP_ADDRESSES, NULL, &res);
	peer_close(&m->peer);
	if (r < 0)
		goto out;
	if ((r = peer_read_addresses_reply(res, &addrs, m->err, sizeof(m->err))) < 0)
		goto out;
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

/* Destination disk paths: --disk SRC=DST, else --storage-path DIR/basename, else the same path. */
static json_t *dest_config(struct move *m)
{
	json_t *cfg = json_deep_copy(m->vm->config), *dsk, *map = json_object_get(m->j->args, "disks");
	const char *dir = arg_str(m->j->args, "storage-path"), *vm_path = arg_str(m->j->args, "vm-path");
	size_t i;

	/* where the VM's own files go there; none given: the destination's default */
	if (vm_path)
		json_object_set_new(cfg, "vm-path", json_string(vm_path));
	else
		json_object_del(cfg, "vm-path");

	json_array_foreach(json_object_get(cfg, "disks"), i, dsk) {
		const char *src = arg_str(dsk, "path"), *dst = map ? arg_str(map, src) : NULL;
		char buf[PATH_MAX], base[PATH_MAX];
		if (dst) {
			json_object_set_new(dsk, "path", json_string(dst));
		} else if (dir) {
			snprintf(base, sizeof(base), "%s", src);
			snprintf(buf, sizeof(buf), "%s/%s", dir, basename(base));
			json_object_set_new(dsk, "path", json_string(buf));
		}
	}
	return cfg;
}

static json_t *check_request(struct move *m, json_t *sizes)
{
	json_t *req = json_pack("{s:O, s:b, s:o, s:O}", "config", m->dest_cfg, "include-storage", m->storage,
				"source", host_capabilities(m->d), "disks", sizes);
	const char *sp = arg_str(m->j->args, "storage-path"), *vp = arg_str(m->j->args, "vm-path");

	if (sp)
		json_object_set_new(req, "storage-path", json_string(sp));
	if (vp)
		json_object_set_new(req, "vm-path", json_string(vp));
	return req;
}

static int fingerprint(struct move *m, json_t *dsk, json_t *entry)
{
	json_t *fp = NULL;
	int fd = open(arg_str(dsk, "path"), O_RDONLY | O_CLOEXEC), r;

	r = fd < 0 ? -errno : disk_fingerprint(fd, arg_str(dsk, "format"), &fp);
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		snprintf(m->err, sizeof(m->err), "cannot read disk %s: %s", arg_str(dsk, "path"), strerror(-r));
		return r;
	}
	json_object_set_new(entry, "fingerprint", fp);
	return 0;
}

static json_t *disk_sizes(struct move *m)
{
	json_t *sizes = json_array(), *dsk, *ddsk;
	size_t i;

	json_array_foreach(json_object_get(m->vm->config, "disks"), i, dsk) {
		uint64_t size = 0, used = 0;
		ddsk = json_array_get(json_object_get(m->dest_cfg, "disks"), i);
		if (image_sizes(arg_str(dsk, "path"), arg_str(dsk, "format"), &size, &used, m->err, sizeof(m->err)) < 0) {
			json_decref(sizes);
			return NULL;
		}
		json_array_append_new(sizes, json_pack("{s:s, s:I, s:I}", "path", arg_str(ddsk, "path"), "size",
						       (json_int_t)size, "allocated", (json_int_t)used));
		/* without storage the destination proves it sees this very file */
		if (!m->storage && fingerprint(m, dsk, json_array_get(sizes, i)) < 0) {
			json_decref(sizes);
			return NULL;
		}
	}
	return sizes;
}

static void join_problems(json_t *problems, char *out, size_t len)
{
	size_t i, n = 0;
	json_t *p;

	json_array_foreach(problems, i, p)
		n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s", i ? "; " : "", json_string_value(p));
}

static int stage_setup(struct move *m)
{
	json_t *sizes, *res = NULL, *args, *problems;
	uint8_t key[32];
	char hex[65], identity[64], connected[64];
	int r;

	if ((r = connect_dest(m)) < 0)
		return r;
	m->dest_cfg = dest_config(m);
	if (!(sizes = disk_sizes(m)))
		return -EIO;
	r = peer_call(m, PEER_OP_CHECK, check_request(m, json_incref(sizes)), &res);
	if (r == 0)
		r = peer_read_check_reply(res, &problems, m->err, sizeof(m->err));
	if (r < 0) {
		json_decref(res);
		json_decref(sizes);
		return r;
	}
	if (json_array_size(problems)) {
		char list[900];
		join_problems(problems, list, sizeof(list));
		snprintf(m->err, sizeof(m->err), "%s cannot take %s: %s", m->j->dest, m->j->vm, list);
		json_decref(res);
		json_decref(sizes);
		return -EPERM;
	}
	json_decref(res);
	res = NULL;
	if (job_cancelled(m->d, m->j)) {
		json_decref(sizes);
		return -ECANCELED;
	}

	random_bytes(key, sizeof(key));
	hex_encode(key, sizeof(key), hex);
	explicit_bzero(key, sizeof(key)); /* the hex form is all that is needed */
	snprintf(identity, sizeof(identity), "ferry-move-%llu", (unsigned long long)m->j->id);
	if (m->tls) {
		snprintf(m->pskdir, sizeof(m->pskdir), "%s/tls-%llu", m->vm->rundir, (unsigned long long)m->j->id);
		if ((r = psk_dir_write(m->pskdir, identity, hex, m->d->qemu_drop ? m->d->qemu_gid : (gid_t)-1)) < 0) {
			snprintf(m->err, sizeof(m->err), "cannot write the one-time key: %s", strerror(-r));
			explicit_bzero(hex, sizeof(hex));
			json_decref(sizes);
			return r;
		}
		r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "object-add", "{s:s, s:s, s:s, s:s, s:s}", "qom-type",
			 "tls-creds-psk", "id", TLS_ID, "endpoint", "client", "dir", m->pskdir, "username", identity);
		if (r < 0) {
			explicit_bzero(hex, sizeof(hex));
			json_decref(sizes);
			return r;
		}
	}
	args = check_request(m, sizes);
	json_object_set_new(args, "psk-identity", json_string(identity));
	json_object_set_new(args, "psk", json_string(hex));
	json_object_set_new(args, "encryption", json_boolean(m->tls));
	json_object_set_new(args, "performance", json_string(m->perf));
	json_object_set_new(args, "channels", json_integer(m->channels));
	explicit_bzero(hex, sizeof(hex));
	json_incref(args); /* to wipe the key in it after the call */
	/* A destination at its limits refuses ("busy", with its numbers): no
	 * waiting here, as two hosts moving to each other would wait forever. */
	r = peer_call(m, PEER_OP_PREPARE, args, &res);
	json_wipe_string(args, "psk");
	json_decref(args);
	if (r < 0)
		return r;
	/* prepared: from here on a failure aborts the planned VM there */
	m->prepared = true;
	r = socket_address(m->peer.conn.fd, true, connected, sizeof(connected));
	if (r < 0)
		snprintf(m->err, sizeof(m->err), "cannot read the destination's address: %s", strerror(-r));
	else
		r = move_endpoint_from_reply(res, connected, m->storage, &m->ep, m->err, sizeof(m->err));
	json_decref(res);
	return r;
}

/* Each round of the wait for the disk mirrors: progress for the job, and
 * the move's own reasons to stop. */
static int storage_round(void *ctx, const struct blockjob_progress *p)
{
	struct move *m = ctx;

	pthread_mutex_lock(&m->d->lock);
	m->j->disk_total = p->total;
	m->j->disk_remaining = p->remaining;
	pthread_mutex_unlock(&m->d->lock);
	if (job_cancelled(m->d, m->j))
		return -ECANCELED;
	return check_alive(m);
}

static int stage_storage(struct move *m)
{
	const char *addr = m->ep.address;
	char port[16], why[512];
	int r;

	snprintf(port, sizeof(port), "%d", m->ep.nbd_port);
	for (size_t i = 0; i < m->ndisks; i++) {
		char node[64], tgt[32], export[16];
		json_t *a;
		if ((r = blockjob_disk_node(m->vm, i, node, sizeof(node), m->err, sizeof(m->err))) < 0)
			return r;
		snprintf(tgt, sizeof(tgt), MIG_JOBS "-tgt%zu", i);
		snprintf(export, sizeof(export), "disk%zu", i);
		a = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:s}", "driver", "nbd", "node-name", tgt, "server", "type",
			      "inet", "host", addr, "port", port, "export", export);
		if (m->tls)
			json_object_set_new(a, "tls-creds", json_string(TLS_ID));
		r = vm_qmp(m->vm, "blockdev-add", a, NULL, m->err, sizeof(m->err));
		json_decref(a);
		if (r < 0)
			return r;
		if ((r = blockjob_mirror_start(m->vm, MIG_JOBS, i, node, m->err, sizeof(m->err))) < 0)
			return r;
	}
	why[0] = '\0';
	r = blockjob_wait(m->vm, MIG_JOBS, m->ndisks, BLOCKJOB_READY, now_ms() + BLOCKJOB_SYNC_TIMEOUT_MS, POLL_MS,
			  storage_round, m, why, sizeof(why));
	/* the round's own reasons (cancel, the destination gone) wrote m->err */
	if (r == -EIO || r == -ETIMEDOUT || (r < 0 && why[0]))
		snprintf(m->err, sizeof(m->err), "copying the disks failed: %s", why);
	return r;
}

static void update_memory_progress(struct move *m, json_t *info)
{
	json_t *ram = json_object_get(info, "ram");

	pthread_mutex_lock(&m->d->lock);
	m->j->mem_total = (uint64_t)json_integer_value(json_object_get(ram, "total"));
	m->j->mem_remaining = (uint64_t)json_integer_value(json_object_get(ram, "remaining"));
	m->j->mem_transferred = (uint64_t)json_integer_value(json_object_get(ram, "transferred"));
	m->j->mbps = json_number_value(json_object_get(ram, "mbps"));
	m->j->pass = (int)json_integer_value(json_object_get(ram, "dirty-sync-count"));
	if (json_is_integer(json_object_get(info, "downtime")))
		m->j->downtime_ms = json_integer_value(json_object_get(info, "downtime"));
	pthread_mutex_unlock(&m->d->lock);
}

/* One look at the migration, progress updated; a failed or cancelled
 * migration becomes an error that names what was being transferred. */
static int migration_status(struct move *m, const char *what, char *status, size_t len)
{
	json_t *info = NULL;
	const char *st;
	int r;

	if ((r = vm_qmp(m->vm, "query-migrate", NULL, &info, m->err, sizeof(m->err))) < 0)
		return r;
	st = arg_str(info, "status") ? arg_str(info, "status") : "";
	update_memory_progress(m, info);
	snprintf(status, len, "%s", st);
	if (!strcmp(st, "failed") || !strcmp(st, "cancelled")) {
		snprintf(m->err, sizeof(m->err), "%s %s: %s", what, st,
			 arg_str(info, "error-desc") ? arg_str(info, "error-desc") : "no reason given by QEMU");
		r = -EIO;
	}
	json_decref(info);
	return r;
}

/* Pre-copy until QEMU pauses before the switchover. */
static int stage_memory(struct move *m)
{
	int64_t max_passes, downtime;
	bool forced = false;
	char failed[512];
	int r;

	pthread_mutex_lock(&m->d->lock);
	max_passes = settings_int(m->d->settings, "max-passes");
	downtime = settings_int(m->d->settings, "downtime-ms");
	pthread_mutex_unlock(&m->d->lock);
	if ((r = migration_tune(m->vm, &(struct migration_tuning){.performance = m->perf, .channels = m->channels,
								  .tls = m->tls, .source = true,
								  .downtime_ms = downtime},
				m->err, sizeof(m->err))) < 0)
		return r;
	if ((r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "migrate", "{s:s}", "uri", m->ep.uri)) < 0)
		return r;
	m->migrating = true;
	for (;;) {
		char status[32];
		if ((r = migration_status(m, "the memory transfer", status, sizeof(status))) < 0)
			return r;
		if (!strcmp(status, "pre-switchover"))
			break;
		if (m->storage) {
			struct blockjob_progress p;
			if ((r = blockjob_check(m->vm, MIG_JOBS, m->ndisks, &p, failed, sizeof(failed))) < 0) {
				snprintf(m->err, sizeof(m->err), "mirroring the disks failed: %s", failed);
				return r;
			}
			pthread_mutex_lock(&m->d->lock);
			m->j->disk_total = p.total;
			m->j->disk_remaining = p.remaining;
			pthread_mutex_unlock(&m->d->lock);
		}
		if (job_cancelled(m->d, m->j))
			return -ECANCELED;
		if ((r = check_alive(m)) < 0)
			return r;
		if (!forced && m->j->pass > max_passes) {
			/* The guest dirties memory faster than it moves: stop iterating. */
			log_info("job %llu: %lld passes done, forcing the switchover", (unsigned long long)m->j->id,
				 (long long)max_passes);
			qmpf(m->vm, m->err, sizeof(m->err), NULL, "migrate-set-parameters", "{s:I}", "downtime-limit",
			     (json_int_t)FORCED_DOWNTIME_MS);
			forced = true;
		}
		usleep(MEMORY_POLL_MS * 1000);
	}
	return 0;
}

/* The connection broke while the destination was resuming the guest: ask it
 * again on a new connection whether the guest runs there. Only a clear "no"
 * lets the source resume it; otherwise it stays paused here. */
static int finish_outcome(struct move *m)
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
		int r;

		peer_close(&m->peer); /* the connection that lost the answer, then each try's */
		r = connect_dest(m);

		if (r == 0)
			r = conn_call(&m->peer.conn, "vm.show", args, &reply);
		json_decref(args);
		peer_close(&m->peer);
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
		json_decref(reply);
		if (!strcmp(code, "not_found")) {
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

/* The guest is paused: finish the disk mirrors (no pivot: the source keeps
 * its own disks until the end), then let QEMU send the last state. */
static int stage_switchover(struct move *m)
{
	json_t *res = NULL;
	int r;

	/* cancel of a ready mirror: it writes what is left, then ends without a
	 * pivot (the source keeps its own disks until the move is over) */
	if (m->storage) {
		char why[512] = "";
		if ((r = blockjob_finish_all(m->vm, MIG_JOBS, m->ndisks, false, m->err, sizeof(m->err))) < 0)
			return r;
		r = blockjob_wait(m->vm, MIG_JOBS, m->ndisks, BLOCKJOB_GONE, now_ms() + 120000, SWITCHOVER_POLL_MS,
				  NULL, NULL, why, sizeof(why));
		if (r < 0) {
			snprintf(m->err, sizeof(m->err), "the last disk writes did not reach %s: %s", m->j->dest, why);
			return r;
		}
	}
	if (job_cancelled(m->d, m->j))
		return -ECANCELED;
	/* Past this point the destination resumes the guest: it must still be there. */
	m->progress_ms = 0;
	if ((r = check_alive(m)) < 0)
		return r;
	pthread_mutex_lock(&m->d->lock);
	m->j->past_cancel_point = true;
	pthread_mutex_unlock(&m->d->lock);
	if ((r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "migrate-continue", "{s:s}", "state", "pre-switchover")) < 0)
		return r;
	/* The guest is paused and cancel refused: a cut network must not keep it
	 * so for the minutes TCP takes to give up (review M6). No progress for
	 * stall-timeout seconds, or the destination gone: roll back; it was not
	 * told to resume the guest, so the source resumes it. */
	m->progress_ms = now_ms();
	for (;;) {
		char status[32];
		if ((r = migration_status(m, "the final state transfer", status, sizeof(status))) < 0)
			return r;
		if (!strcmp(status, "completed"))
			break;
		if ((r = check_alive(m)) < 0)
			return r;
		usleep(SWITCHOVER_POLL_MS * 1000);
	}
	m->migrating = false;
	/* Without this record a restart would resume the guest here while the
	 * destination may run it: tell the destination nothing, roll back. */
	if ((r = moving_marker(m->vm->rundir, m->j->dest, true)) < 0) {
		snprintf(m->err, sizeof(m->err),
			 "cannot record in %s that %s is being resumed on %s (%s): the move is rolled back and "
			 "the guest resumes here",
			 m->vm->rundir, m->j->vm, m->j->dest, strerror(-r));
		log_err("job %llu: %s", (unsigned long long)m->j->id, m->err);
		return r;
	}
	fault_point("finish-sent");
	r = peer_call(m, PEER_OP_FINISH, json_pack("{s:s}", "name", m->j->vm), &res);
	json_decref(res);
	if (r < 0 && r != -EPERM)
		return finish_outcome(m);
	return r;
}

/* Everything since setup undone: the guest keeps running here. */
static void roll_back(struct move *m)
{
	char err[256];
	json_t *st = NULL;

	/* A cut network leaves the migration and NBD sockets hanging until TCP
	 * gives up (minutes), and cancelling a mirror would wait for them: shut
	 * them down first (QMP yank), then cancel. */
	if (m->migrating || m->storage) {
		json_t *inst = json_array();
		if (m->migrating)
			json_array_append_new(inst, json_pack("{s:s}", "type", "migration"));
		for (size_t i = 0; i < m->ndisks && m->storage; i++) {
			char tgt[32];
			snprintf(tgt, sizeof(tgt), MIG_JOBS "-tgt%zu", i);
			json_array_append_new(inst, json_pack("{s:s, s:s}", "type", "block-node", "node-name", tgt));
		}
		/* one instance at a time: yank refuses the whole list if one is unknown */
		for (size_t i = 0; i < json_array_size(inst); i++) {
			json_t *a = json_pack("{s:[O]}", "instances", json_array_get(inst, i));
			if (vm_qmp_oob(m->vm, "yank", a, err, sizeof(err)) < 0)
				log_debug("yank: %s", err);
			json_decref(a);
		}
		json_decref(inst);
	}
	if (m->migrating)
		vm_qmp(m->vm, "migrate_cancel", NULL, NULL, err, sizeof(err));
	if (m->storage)
		blockjob_abandon(m->vm, MIG_JOBS, m->ndisks, 5000);
	/* A migration cancelled in pre-switchover leaves the guest paused. */
	for (int tries = 0; tries < 50 && !m->outcome_unknown; tries++) {
		const char *s;
		json_decref(st);
		st = NULL;
		if (vm_qmp(m->vm, "query-status", NULL, &st, err, sizeof(err)) < 0)
			break;
		s = arg_str(st, "status");
		if (s && !strcmp(s, "running"))
			break;
		if (s && (!strcmp(s, "paused") || !strcmp(s, "postmigrate") || !strcmp(s, "finish-migrate")))
			vm_qmp(m->vm, "cont", NULL, NULL, err, sizeof(err));
		usleep(100 * 1000);
	}
	json_decref(st);
	if (m->tls)
		migration_untune(m->vm);
	if (m->prepared && m->peer.open && m->j && !m->outcome_unknown) {
		json_t *a = json_pack("{s:s}", "name", m->j->vm);
		json_t *reply = NULL;
		if (conn_call(&m->peer.conn, PEER_OP_ABORT, a, &reply) < 0)
			log_warn("could not tell %s to drop %s; it removes it when the connection closes", m->j->dest,
				 m->j->vm);
		json_decref(a);
		json_decref(reply);
	}
}

static void cleanup_source(struct move *m)
{
	struct ferryd *d = m->d;
	bool delete_disks = m->storage && !m->keep_disks;

	qemu_stop(d, m->vm, 0, true);
	pthread_mutex_lock(&d->lock);
	vm_remove(d, m->vm, delete_disks);
	pthread_mutex_unlock(&d->lock);
	m->vm = NULL;
}

static void move_thread(struct ferryd *d, struct job *j)
{
	struct move m = {.d = d, .j = j};
	int r;

	pthread_mutex_lock(&d->lock);
	m.vm = vm_find(d, j->vm);
	if (!m.vm || m.vm->incoming || strcmp(vm_state(m.vm), "running") != 0) {
		pthread_mutex_unlock(&d->lock);
		job_fail(d, j, "VM %s is not running on %s (state %s): start it, or move it while off by copying", j->vm,
			 d->host_name, m.vm ? vm_state(m.vm) : "unknown");
		return;
	}
	m.vm->busy = "moving";
	m.storage = j->storage;
	m.keep_disks = arg_bool(j->args, "keep-source-disks", false);
	m.tls = settings_bool(d->settings, "encryption");
	snprintf(m.perf, sizeof(m.perf), "%s", settings_str(d->settings, "performance"));
	m.channels = (int)settings_int(d->settings, "channels");
	m.stall_ms = (uint64_t)settings_int(d->settings, "stall-timeout") * 1000;
	m.ndisks = json_array_size(json_object_get(m.vm->config, "disks"));
	if (!settings_bool(d->settings, "migration-enabled")) {
		m.vm->busy = NULL;
		pthread_mutex_unlock(&d->lock);
		job_fail(d, j, "live migrations are disabled on %s: run 'ferry migration enable'", d->host_name);
		return;
	}
	pthread_mutex_unlock(&d->lock);

	/* the record move_recover needs to undo the move after a restart */
	if ((r = moving_marker(m.vm->rundir, j->dest, false)) < 0)
		snprintf(m.err, sizeof(m.err), "cannot record the move in %s: %s", m.vm->rundir, strerror(-r));
	else
		r = stage_setup(&m);
	if (r == 0 && m.storage) {
		job_set_stage(d, j, STAGE_STORAGE);
		r = stage_storage(&m);
	}
	if (r == 0) {
		job_set_stage(d, j, STAGE_MEMORY);
		r = stage_memory(&m);
	}
	if (r == 0) {
		job_set_stage(d, j, STAGE_SWITCHOVER);
		r = stage_switchover(&m);
	}
	if (r < 0) {
		if (r == -ECANCELED)
			snprintf(m.err, sizeof(m.err), "cancelled by the administrator");
		roll_back(&m);
		if (!m.outcome_unknown)
			moving_marker(m.vm->rundir, NULL, false);
		pthread_mutex_lock(&d->lock);
		m.vm->busy = NULL;
		pthread_mutex_unlock(&d->lock);
		job_fail(d, j, "%s", m.err);
	} else {
		job_set_stage(d, j, STAGE_CLEANUP);
		cleanup_source(&m);
		job_set_stage(d, j, STAGE_COMPLETED);
	}
	if (m.pskdir[0])
		remove_tree(m.pskdir);
	peer_close(&m.peer);
	json_decref(m.dest_cfg);
	/* the credential is freed by job.c when this returns: one hop, one move */
}

/* vm.move {name, dest, include-storage, storage-path, vm-path, disks {SRC: DST},
 *          keep-source-disks, port} -> {job} */
/* Paths are rewritten only when the disks are copied: without storage the
 * destination opens the very files the source uses (review M2). */
static json_t *storage_args_check(json_t *args)
{
	if (!arg_bool(args, "include-storage", false) &&
	    (arg_str(args, "storage-path") || json_object_size(json_object_get(args, "disks"))))
		return reply_error("bad_request", "add --include-storage to copy the disks there",
				   "--storage-path and --disk choose where copied disks go: without --include-storage "
				   "the disks are not copied and the destination uses them where they are");
	return NULL;
}

static json_t *op_move(struct request *req)
{
	struct ferryd *d = req->d;
	const char *name, *dest = arg_str(req->args, "dest");
	json_t *e = NULL, *r;
	struct job *j;
	struct vm *vm;

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	if (!dest || !*dest || strlen(dest) > 253)
		return reply_error("bad_request", NULL, "missing destination host");
	if ((e = storage_args_check(req->args)))
		return e;
	pthread_mutex_lock(&d->lock);
	vm = vm_find(d, name);
	if (!vm || vm->incoming)
		e = reply_error("not_found", "see 'ferry vm list'", "no VM named '%s' on %s", name, d->host_name);
	else if (vm->busy)
		e = reply_error("busy", NULL, "VM '%s' is %s", name, vm->busy);
	else
		for (struct job *o = d->jobs; o; o = o->next)
			if (!strcmp(o->vm, name) && (o->stage == STAGE_QUEUED))
				e = reply_error("busy", "see 'ferry job list'", "VM '%s' already waits in job %llu", name,
						(unsigned long long)o->id);
	pthread_mutex_unlock(&d->lock);
	if (e)
		return e;
	if (job_start(d, "move", name, dest, true, arg_bool(req->args, "include-storage", false), req->args,
		      req->caller, move_thread, &j) < 0)
		return reply_error("failed", NULL, "cannot start the move");
	pthread_mutex_lock(&d->lock);
	r = reply_ok(job_json(j));
	pthread_mutex_unlock(&d->lock);
	return r;
}

extern json_t *op_compare(struct request *req);
extern json_t *op_move_storage(struct request *req);

const struct op_def move_ops[] = {
	{"vm.move", op_move},
	{"vm.compare", op_compare},
	{"vm.move-storage", op_move_storage},
	{NULL, NULL},
};

static void add_problem(json_t *problems, char *text)
{
	utf8_clean(text); /* a cut multi-byte character would lose the problem */
	json_array_append_new(problems, json_string(text));
}

/* vm.compare {name, dest, storage-path, vm-path, include-storage, disks}: every
 * reason the VM cannot move there, nothing moved (Compare-VM). */
json_t *op_compare(struct request *req)
{
	struct ferryd *d = req->d;
	struct job j = {0};
	struct vm snap = {0};
	struct move m = {.d = d, .j = &j};
	json_t *e = NULL, *problems = json_array(), *res = NULL, *sizes, *found;
	const char *name, *dest = arg_str(req->args, "dest");

	if (arg_name(req->args, "name", &name, &e) < 0) {
		json_decref(problems);
		return e;
	}
	if (!dest || !*dest || strlen(dest) > 253) {
		json_decref(problems);
		return reply_error("bad_request", NULL, "missing destination host");
	}
	if ((e = storage_args_check(req->args))) {
		json_decref(problems);
		return e;
	}
	pthread_mutex_lock(&d->lock);
	m.vm = vm_find(d, name);
	if (!m.vm || m.vm->incoming) {
		pthread_mutex_unlock(&d->lock);
		json_decref(problems);
		return reply_error("not_found", "see 'ferry vm list'", "no VM named '%s' on %s", name, d->host_name);
	}
	if (!settings_bool(d->settings, "migration-enabled"))
		json_array_append_new(problems, json_sprintf("live migrations are disabled on %s: run 'ferry migration enable'",
							     d->host_name));
	if (strcmp(vm_state(m.vm), "running") != 0)
		json_array_append_new(problems, json_sprintf("VM %s is %s: only a running VM can be moved live", name,
							     vm_state(m.vm)));
	/* The checks below go over the network without the lock, while the VM
	 * may be deleted or moved away: they read a copy of its configuration
	 * (review M8). */
	snap.config = json_deep_copy(m.vm->config);
	m.vm = &snap;
	pthread_mutex_unlock(&d->lock);
	snprintf(j.dest, sizeof(j.dest), "%s", dest);
	snprintf(j.vm, sizeof(j.vm), "%s", name);
	j.args = req->args;
	j.caller = *req->caller;
	m.storage = arg_bool(req->args, "include-storage", false);
	/* Borrowed for the check: the credential stays with the connection. */
	if (connect_dest(&m) < 0) {
		add_problem(problems, m.err);
		goto out;
	}
	m.dest_cfg = dest_config(&m);
	if (!(sizes = disk_sizes(&m))) {
		add_problem(problems, m.err);
		goto out;
	}
	if (peer_call(&m, PEER_OP_CHECK, check_request(&m, sizes), &res) < 0 ||
	    peer_read_check_reply(res, &found, m.err, sizeof(m.err)) < 0)
		add_problem(problems, m.err);
	else
		json_array_extend(problems, found);
out:
	peer_close(&m.peer);
	json_decref(m.dest_cfg);
	json_decref(snap.config);
	json_decref(res);
	return reply_ok(json_pack("{s:s, s:s, s:b, s:o}", "vm", name, "dest", dest, "compatible",
				  json_array_size(problems) == 0, "problems", problems));
}

/* After a ferryd restart: a move this host was making died with the old
 * process, but QEMU may still be migrating or paused at the switchover.
 * Undo it so the guest runs here (the destination drops its planned VM when
 * the old connection closes, and never resumes it: it waits for "cont"),
 * unless the destination had already been told to resume it. */
void move_recover(struct vm *vm)
{
	struct move m = {.vm = vm, .storage = true, .tls = true};
	char path[PATH_MAX + 16], *text = NULL;
	json_t *marker = NULL;
	size_t len;

	snprintf(path, sizeof(path), "%s/moving.json", vm->rundir);
	if (read_file(path, 4096, &text, &len) < 0)
		return;
	marker = json_loads(text, 0, NULL);
	free(text);
	if (json_is_true(json_object_get(marker, "finish-sent"))) {
		log_err("VM %s: ferryd stopped while %s was resuming it; it is paused here. If it runs on %s, "
			"remove it here (ferry vm kill %s; ferry vm delete %s --keep-disks); if not, resume it with 'ferry vm start %s --force'",
			vmconfig_name(vm->config), arg_str(marker, "dest"), arg_str(marker, "dest"),
			vmconfig_name(vm->config), vmconfig_name(vm->config), vmconfig_name(vm->config));
		json_decref(marker);
		return;
	}
	log_warn("VM %s: its move to %s was interrupted by a ferryd restart: it stays here",
		 vmconfig_name(vm->config), arg_str(marker, "dest"));
	m.migrating = true;
	m.ndisks = json_array_size(json_object_get(vm->config, "disks"));
	roll_back(&m);
	/* the old process never removed its one-time key (spent by now) */
	if (psk_dirs_remove(vm->rundir) < 0)
		log_warn("VM %s: cannot remove the one-time key directories in %s", vmconfig_name(vm->config),
			 vm->rundir);
	unlink(path);
	json_decref(marker);
}
