/* TCP 6600: Kerberos-authenticated connections from users (ferry -H) and
 * from other ferryd acting for a user.
 *
 * ferryd listens on each --listen address and on each local address that
 * lies in an accepted migration network. The main loop binds them again
 * when the networks or use-any-network change (listen_generation); an
 * address that appears on an interface later needs such a change or a
 * restart.
 * One thread per connection; the Kerberos handshake is bounded in total time
 * (GSS_HANDSHAKE_TIMEOUT_S from accept, enforced by peer_reap_handshakes in
 * the main loop), in token size (PROTO_MAX_PREAUTH) and in number at once
 * (MAX_HANDSHAKES, MAX_HANDSHAKES_PER_ADDR from one address); connections in
 * all are at most MAX_CONNECTIONS; every message after it is sealed, and an
 * idle connection is closed (serve_connection). (review M3) */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdint.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferryd.h"
#include "migration_networks.h"
#include "net.h"
#include "gss.h"
#include "log.h"
#include "settings.h"
#include "util.h"

#define MAX_HANDSHAKES 32
#define MAX_HANDSHAKES_PER_ADDR 8
#define MAX_CONNECTIONS 256
#define CONNECT_TIMEOUT_MS 10000

struct peer_session {
	struct ferryd *d;
	int fd;
	int slot;
	char addr[64];
};

/* The handshakes under way, so that the main loop can cut one that outlives
 * its deadline: a client sending a byte every few seconds would otherwise
 * hold its slot for days. Shared by the listener and the connection threads. */
static struct handshake {
	bool used;
	int fd;
	char addr[64];
	uint64_t deadline_ms;
} handshakes[MAX_HANDSHAKES];
static pthread_mutex_t handshakes_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int connections;

/* A free slot for a handshake from addr, or -1 (too many in all, or from it). */
static int handshake_claim(int fd, const char *addr)
{
	int slot = -1, from_addr = 0;

	pthread_mutex_lock(&handshakes_lock);
	for (int i = 0; i < MAX_HANDSHAKES; i++) {
		if (!handshakes[i].used)
			slot = slot < 0 ? i : slot;
		else if (!strcmp(handshakes[i].addr, addr))
			from_addr++;
	}
	if (slot >= 0 && from_addr < MAX_HANDSHAKES_PER_ADDR) {
		handshakes[slot] = (struct handshake){.used = true, .fd = fd,
						     .deadline_ms = now_ms() + GSS_HANDSHAKE_TIMEOUT_S * 1000};
		snprintf(handshakes[slot].addr, sizeof(handshakes[slot].addr), "%s", addr);
	} else {
		slot = -1;
	}
	pthread_mutex_unlock(&handshakes_lock);
	return slot;
}

static void handshake_release(int slot)
{
	pthread_mutex_lock(&handshakes_lock);
	handshakes[slot].used = false;
	pthread_mutex_unlock(&handshakes_lock);
}

void peer_reap_handshakes(void)
{
	uint64_t now = now_ms();

	pthread_mutex_lock(&handshakes_lock);
	for (int i = 0; i < MAX_HANDSHAKES; i++)
		if (handshakes[i].used && now > handshakes[i].deadline_ms) {
			/* the thread's read fails at once; it closes the socket */
			shutdown(handshakes[i].fd, SHUT_RDWR);
			handshakes[i].deadline_ms = UINT64_MAX;
			log_info("connection from %s: no Kerberos handshake within %d s, closed", handshakes[i].addr,
				 GSS_HANDSHAKE_TIMEOUT_S);
		}
	pthread_mutex_unlock(&handshakes_lock);
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof(host));
	snprintf(buf, len, "%s", host);
}

static int bind_one(const struct sockaddr *sa, socklen_t salen, int port, int *ret_fd)
{
	struct sockaddr_storage ss;

	memcpy(&ss, sa, salen);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
	return tcp_listen((struct sockaddr *)&ss, salen, 64, ret_fd);
}

static bool already(char bound[][INET6_ADDRSTRLEN], size_t n, const char *addr)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(bound[i], addr))
			return true;
	return false;
}

static bool in_migration_networks(struct ferryd *d, const char *addr)
{
	bool yes;

	pthread_mutex_lock(&d->lock);
	yes = migration_network_of(json_object_get(d->settings, "migration-networks"), addr) != NULL;
	pthread_mutex_unlock(&d->lock);
	return yes;
}

int peer_listen(struct ferryd *d, int *fds, size_t *n)
{
	char bound[PEER_MAX_LISTEN][INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res, *ai;
	struct ifaddrs *ifs = NULL, *ifa;
	size_t cap = *n, count = 0;
	int r = 0, fd;

	for (size_t i = 0; i < d->n_listen; i++) {
		int g = getaddrinfo(d->listen[i], NULL, &hints, &res);
		if (g != 0) {
			log_err("--listen %s: %s", d->listen[i], gai_strerror(g));
			r = -EINVAL;
			goto fail;
		}
		for (ai = res; ai; ai = ai->ai_next) {
			addr_text(ai->ai_addr, addr, sizeof(addr));
			if (already(bound, count, addr))
				continue;
			if (count >= cap) {
				log_err("--listen: more than %zu addresses", cap);
				r = -E2BIG;
				break;
			}
			r = bind_one(ai->ai_addr, ai->ai_addrlen, d->port, &fd);
			if (r < 0) {
				log_err("cannot listen on %s port %d: %s", addr, d->port, strerror(-r));
				break;
			}
			fds[count] = fd;
			snprintf(bound[count++], sizeof(bound[0]), "%s", addr);
		}
		freeaddrinfo(res);
		if (r < 0)
			goto fail;
	}
	if (getifaddrs(&ifs) < 0) {
		log_warn("cannot list local addresses (%s): not listening on migration networks", strerror(errno));
		goto done;
	}
	for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
		socklen_t salen;

		if (!ifa->ifa_addr || (ifa->ifa_addr->sa_family != AF_INET && ifa->ifa_addr->sa_family != AF_INET6))
			continue;
		salen = ifa->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
		addr_text(ifa->ifa_addr, addr, sizeof(addr));
		if (already(bound, count, addr) || !in_migration_networks(d, addr))
			continue;
		if (count >= cap) {
			log_warn("not listening on %s: at most %zu addresses", addr, cap);
			continue;
		}
		if ((r = bind_one(ifa->ifa_addr, salen, d->port, &fd)) < 0) {
			log_warn("cannot listen on migration address %s port %d: %s", addr, d->port, strerror(-r));
			r = 0;
			continue;
		}
		fds[count] = fd;
		snprintf(bound[count++], sizeof(bound[0]), "%s", addr);
	}
	freeifaddrs(ifs);
done:
	for (size_t i = 0; i < count; i++)
		log_info("listening on %s port %d (Kerberos)", bound[i], d->port);
	*n = count;
	return 0;
fail:
	for (size_t i = 0; i < count; i++)
		close(fds[i]);
	return r;
}

static void *peer_thread(void *arg)
{
	struct peer_session *p = arg;
	struct ferryd *d = p->d;
	struct caller caller = {.local = false};
	struct gss_session *gs = NULL;
	struct conn c;
	char err[1024], pub[512];
	json_t *reply;
	int r;

	conn_init(&c, p->fd, PROTO_MAX_PREAUTH);
	snprintf(caller.addr, sizeof(caller.addr), "%s", p->addr);
	r = gss_server_accept(&c, d->keytab[0] ? d->keytab : NULL, d->host_name, &gs, caller.principal,
			      sizeof(caller.principal), &caller.deleg_cred, &caller.forwarded, err, sizeof(err), pub,
			      sizeof(pub));
	handshake_release(p->slot);
	if (r < 0) {
		/* the detail names the keytab and principals: the log has it, the peer a short reason */
		log_info("refused connection from %s: %s", p->addr, err);
		reply = reply_error("unauthenticated", NULL, "%s", pub);
		conn_send(&c, reply);
		json_decref(reply);
		goto out;
	}
	caller_load_groups(&caller, gs);
	log_info("connection from %s authenticated as %s%s, %zu group SIDs", p->addr, caller.principal,
		 !caller.deleg_cred ? "" : caller.forwarded ? " (forwarded ticket)" : " (delegable ticket)",
		 caller.n_group_sids);
	gss_protect(gs, &c);
	serve_connection(d, &c, &caller);
out:
	gss_cred_free(caller.deleg_cred);
	gss_session_free(gs);
	close(p->fd);
	free(p);
	atomic_fetch_sub(&connections, 1);
	return NULL;
}

static void refuse_busy(struct ferryd *d, int fd, const char *why)
{
	json_t *reply = reply_error("busy", "try again in a few seconds", "%s has %s", d->host_name, why);
	struct conn c;

	/* best effort: the socket buffer takes it without blocking */
	conn_init(&c, fd, PROTO_MAX_PREAUTH);
	conn_send(&c, reply);
	json_decref(reply);
	close(fd);
}

void peer_serve(struct ferryd *d, int listen_fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct peer_session *p;
	pthread_t t;
	int fd;

	char addr[64];
	int slot;

	fd = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	socket_keepalive(fd);
	addr_text((struct sockaddr *)&ss, addr, sizeof(addr));
	if (atomic_fetch_add(&connections, 1) >= MAX_CONNECTIONS) {
		atomic_fetch_sub(&connections, 1);
		refuse_busy(d, fd, "too many connections");
		return;
	}
	if ((slot = handshake_claim(fd, addr)) < 0) {
		atomic_fetch_sub(&connections, 1);
		refuse_busy(d, fd, "too many connections authenticating at once");
		return;
	}
	p = calloc(1, sizeof(*p));
	if (p) {
		*p = (struct peer_session){.d = d, .fd = fd, .slot = slot};
		snprintf(p->addr, sizeof(p->addr), "%s", addr);
	}
	if (!p || pthread_create(&t, NULL, peer_thread, p) != 0) {
		handshake_release(slot);
		atomic_fetch_sub(&connections, 1);
		close(fd);
		free(p);
		return;
	}
	pthread_detach(t);
}

int peer_connect(struct ferryd *d, const char *host, const char *addr, int port, enum gss_cred_kind kind,
		 void *cred, struct conn *ret_conn, struct gss_session **ret_sess, char *err, size_t errlen)
{
	struct gss_session *s = NULL;
	struct conn c;
	int fd, r;

	/* addr (a migration address) is where to connect; host names the service. */
	r = net_connect(addr ? addr : host, port > 0 ? port : FERRY_PORT, CONNECT_TIMEOUT_MS, &fd, err, errlen);
	if (r < 0)
		return r;
	socket_keepalive(fd);
	conn_init(&c, fd, PROTO_MAX_PREAUTH);
	r = gss_client_start(&c, host, kind, cred, false, &s, err, errlen);
	if (r < 0) {
		close(fd);
		return r;
	}
	gss_protect(s, &c);
	*ret_conn = c;
	*ret_sess = s;
	return 0;
}
