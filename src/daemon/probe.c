/* The migration link probe (probe.h): migrate.probe at the destination, its
 * one-time listener and counter; the sender at the source. */
#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ferryd.h"
#include "log.h"
#include "migration_networks.h"
#include "move_endpoint.h"
#include "ops.h"
#include "settings.h"
#include "util.h"

#define CHUNK (256u << 10)
#define TOKEN_WAIT_US 1000000     /* a connection must send its token this fast */
#define DRAIN_US 1000000          /* after its count, the destination reads on this long for the close */
#define SEND_AFTER_US 1000000     /* the source sends at most this much longer than the destination counts */
#define COUNT_WAIT_US 2000000     /* ... and waits at most this much longer for the count */
/* What a probe may send: enough for a rate at 1 Gbit/s (134 ms) and beyond
 * the first round trips at 10 Gbit/s, a fraction of any move's stream. The
 * protocol allows up to PEER_PROBE_BYTES_MAX. */
#define PROBE_BYTES (16u << 20)

/* One probe per host at a time: the limit is the host's, and the probe's
 * thread outlives the request that started it. */
static atomic_int probing;

struct probe_job {
	int lfd;
	char source[64];                      /* the address of the sealed connection that asked */
	uint8_t token[PEER_PROBE_TOKEN_LEN];
	uint32_t ms, bytes;
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* poll for events until deadline: >0 ready (revents in *ret), 0 time is up, <0 -errno */
static int wait_fd(int fd, short events, int64_t deadline, short *ret)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t left = deadline - now_us();
		int r;
		if (left <= 0)
			return 0;
		r = poll(&p, 1, (int)((left + 999) / 1000));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0) {
			if (ret)
				*ret = p.revents;
			return 1;
		}
	}
}

static int sockaddr_of(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*len = sizeof(*s4);
	return inet_pton(AF_INET, addr, &s4->sin_addr) == 1 ? 0 : -EINVAL;
}

/* Reads exactly len bytes before deadline (fd non-blocking or polled). */
static int read_exact(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
	size_t got = 0;

	while (got < len) {
		int r = wait_fd(fd, POLLIN, deadline, NULL);
		ssize_t n;
		if (r <= 0)
			return r < 0 ? r : -ETIMEDOUT;
		n = read(fd, buf + got, len - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

static bool same_token(const uint8_t *a, const uint8_t *b)
{
	uint8_t diff = 0;

	for (size_t i = 0; i < PEER_PROBE_TOKEN_LEN; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/* The one connection from the source that sent the token, or -1 when none
 * came in time; the listener is closed either way. */
static int accept_source(struct probe_job *p)
{
	int64_t deadline = now_us() + (int64_t)PROBE_ACCEPT_MS * 1000;
	int fd = -1;

	while (fd < 0 && wait_fd(p->lfd, POLLIN, deadline, NULL) > 0) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		uint8_t token[PEER_PROBE_TOKEN_LEN];
		char from[INET6_ADDRSTRLEN] = "?";
		int64_t token_deadline;

		fd = accept4(p->lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			continue;
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, from, sizeof(from));
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, from, sizeof(from));
		token_deadline = now_us() + TOKEN_WAIT_US;
		if (strcmp(from, p->source) != 0) {
			log_warn("link probe: refused a connection from %s (the probe is %s's)", from, p->source);
		} else if (read_exact(fd, token, sizeof(token), token_deadline < deadline ? token_deadline : deadline) < 0 ||
			   !same_token(token, p->token)) {
			log_warn("link probe: a connection from %s without the probe's token, closed", from);
		} else {
			break;
		}
		close(fd);
		fd = -1;
	}
	close(p->lfd);
	p->lfd = -1;
	return fd;
}

static void put_be64(uint8_t *b, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

/* Reads and discards for at most p->ms or p->bytes, then writes the count. */
static void count_bytes(struct probe_job *p, int fd, uint8_t *buf)
{
	int64_t t0 = now_us(), end = t0 + (int64_t)p->ms * 1000, last = t0;
	uint64_t total = 0;
	uint8_t out[PEER_PROBE_RESULT_LEN];

	while (total < p->bytes && wait_fd(fd, POLLIN, end, NULL) > 0) {
		size_t want = p->bytes - total < CHUNK ? p->bytes - total : CHUNK;
		ssize_t n = read(fd, buf, want);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		total += (uint64_t)n;
		last = now_us();
	}
	put_be64(out, total);
	put_be64(out + 8, last > t0 ? (uint64_t)(last - t0) : 1);
	if (wait_fd(fd, POLLOUT, now_us() + DRAIN_US, NULL) <= 0 || write(fd, out, sizeof(out)) != sizeof(out)) {
		log_warn("link probe: could not send the count to %s", p->source);
		return;
	}
	shutdown(fd, SHUT_WR);
	/* read on until the source closes, so that the count is not lost to a reset */
	for (int64_t stop = now_us() + DRAIN_US; wait_fd(fd, POLLIN, stop, NULL) > 0;) {
		ssize_t n = read(fd, buf, CHUNK);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			break;
	}
	log_info("link probe from %s: %llu bytes in %.3f s", p->source, (unsigned long long)total,
		 (double)(last - t0) / 1e6);
}

static void *probe_thread(void *arg)
{
	struct probe_job *p = arg;
	uint8_t *buf = malloc(CHUNK);
	int fd = accept_source(p);

	if (fd >= 0 && buf)
		count_bytes(p, fd, buf);
	else if (fd < 0)
		log_warn("link probe: %s did not connect within %d ms", p->source, PROBE_ACCEPT_MS);
	if (fd >= 0)
		close(fd);
	free(buf);
	free(p);
	atomic_store(&probing, 0);
	return NULL;
}

/* A listening socket on addr, any free port, for one connection. */
static int listen_once(const char *addr, int *ret_fd, int *ret_port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, r;

	if ((r = sockaddr_of(addr, 0, &ss, &len)) < 0)
		return r;
	if ((r = tcp_listen((struct sockaddr *)&ss, len, 1, &fd)) < 0)
		return r;
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						   : ((struct sockaddr_in *)&ss)->sin_port);
	*ret_fd = fd;
	return 0;
}

/* migrate.probe {milliseconds} -> {port, token, milliseconds, bytes} */
static json_t *op_probe(struct request *req)
{
	struct ferryd *d = req->d;
	struct peer_probe pp;
	struct probe_job *p = NULL;
	char err[256], nets[512], addr[64], hex[2 * PEER_PROBE_TOKEN_LEN + 1];
	bool enabled, accepted;
	int r, idle = 0, port = 0;
	pthread_t t;

	if ((r = peer_read_probe(req->args, &pp, err, sizeof(err))) < 0)
		return reply_error(peer_msg_code(r), NULL, "%s", err);
	pthread_mutex_lock(&d->lock);
	enabled = settings_bool(d->settings, "migration-enabled");
	accepted = migration_source_accepted(json_object_get(d->settings, "migration-networks"),
					     settings_bool(d->settings, "use-any-network"), req->caller->addr, nets,
					     sizeof(nets));
	pthread_mutex_unlock(&d->lock);
	if (!enabled)
		return reply_error("refused", "run 'ferry migration enable' there", "live migrations are disabled on %s",
				   d->host_name);
	if (!accepted)
		return reply_error("refused", "add the source's network with 'ferry migration network add CIDR' on the destination",
				   "%s does not accept migrations from %s: it accepts only %s", d->host_name,
				   req->caller->addr, nets[0] ? nets : "no network at all");
	if (!req->conn)
		return reply_error("failed", NULL, "the link probe needs a network connection");
	if (!atomic_compare_exchange_strong(&probing, &idle, 1))
		return reply_error("busy", "try again in a few seconds", "%s is measuring its link for another move",
				   d->host_name);
	if (!(p = calloc(1, sizeof(*p)))) {
		atomic_store(&probing, 0);
		return reply_error("failed", NULL, "out of memory");
	}
	p->ms = pp.milliseconds;
	p->bytes = PROBE_BYTES;
	snprintf(p->source, sizeof(p->source), "%s", req->caller->addr);
	random_bytes(p->token, sizeof(p->token));
	/* where the source reached this host: where its migration stream would come */
	if ((r = socket_address(req->conn->fd, false, addr, sizeof(addr))) < 0 ||
	    (r = listen_once(addr, &p->lfd, &port)) < 0) {
		free(p);
		atomic_store(&probing, 0);
		return reply_error("failed", NULL, "cannot listen for the link probe: %s", strerror(-r));
	}
	if (pthread_create(&t, NULL, probe_thread, p) != 0) {
		close(p->lfd);
		free(p);
		atomic_store(&probing, 0);
		return reply_error("failed", NULL, "cannot start the link probe");
	}
	pthread_detach(t);
	hex_encode(p->token, sizeof(p->token), hex);
	return reply_ok(json_pack("{s:i, s:s, s:I, s:I}", "port", port, "token", hex, "milliseconds",
				  (json_int_t)pp.milliseconds, "bytes", (json_int_t)PROBE_BYTES));
}

const struct op_def probe_ops[] = {
	{OP_MIGRATE_PROBE, op_probe, OP_ADMIN | OP_REMOTE | OP_PEER},
	{NULL, NULL, 0},
};

static int connect_to(const char *addr, int port, int64_t deadline, int *ret_fd)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, r, soerr = 0;
	socklen_t elen = sizeof(soerr);

	if ((r = sockaddr_of(addr, port, &ss, &len)) < 0)
		return r;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
		r = -errno;
		close(fd);
		return r;
	}
	r = wait_fd(fd, POLLOUT, deadline, NULL);
	if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) < 0 || soerr) {
		close(fd);
		return r < 0 ? r : r == 0 ? -ETIMEDOUT : -(soerr ? soerr : errno);
	}
	*ret_fd = fd;
	return 0;
}

/* Sends until the count comes back (the destination stops counting at its
 * limits), or the promised bytes are sent, or the time is up. */
static int send_and_count(int fd, const struct peer_probe_reply *asked, uint8_t *buf, uint8_t *count, size_t *got)
{
	int64_t start = now_us(), stop_sending = start + (int64_t)asked->milliseconds * 1000 + SEND_AFTER_US;
	int64_t deadline = stop_sending + COUNT_WAIT_US;
	uint64_t sent = 0;
	bool sending = true;

	for (;;) {
		short ev = 0;
		int r = wait_fd(fd, sending ? POLLIN | POLLOUT : POLLIN, deadline, &ev);
		if (r <= 0)
			return r < 0 ? r : -ETIMEDOUT;
		if (ev & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(fd, count + *got, PEER_PROBE_RESULT_LEN - *got);
			if (n > 0 && (*got += (size_t)n) == PEER_PROBE_RESULT_LEN)
				return 0;
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
				return 0; /* the reader says what is missing */
		}
		if (sending && (ev & POLLOUT)) {
			size_t want = asked->bytes - sent < CHUNK ? (size_t)(asked->bytes - sent) : CHUNK;
			ssize_t n = send(fd, buf, want, MSG_NOSIGNAL);
			if (n > 0)
				sent += (uint64_t)n;
			else if (n < 0 && errno != EINTR && errno != EAGAIN)
				sending = false; /* closed there: its count may still be readable */
			if (sent >= asked->bytes || now_us() >= stop_sending) {
				sending = false;
				shutdown(fd, SHUT_WR);
			}
		}
	}
}

int probe_send(const char *addr, const struct peer_probe_reply *asked, struct peer_probe_result *ret, char *err,
	       size_t errlen)
{
	uint8_t count[PEER_PROBE_RESULT_LEN], *buf = NULL;
	size_t got = 0;
	int fd = -1, r;

	if ((r = connect_to(addr, asked->port, now_us() + (int64_t)PROBE_ACCEPT_MS * 1000, &fd)) < 0) {
		snprintf(err, errlen, "cannot connect to the link probe at %s port %d: %s", addr, asked->port,
			 strerror(-r));
		return r;
	}
	if (!(buf = malloc(CHUNK))) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* random bytes: nothing on the way can make them smaller */
	random_bytes(buf, CHUNK);
	if ((r = write_all(fd, asked->token, PEER_PROBE_TOKEN_LEN)) < 0) {
		snprintf(err, errlen, "cannot send to the link probe at %s: %s", addr, strerror(-r));
		goto out;
	}
	if ((r = send_and_count(fd, asked, buf, count, &got)) < 0) {
		snprintf(err, errlen, "the link probe at %s: %s", addr, strerror(-r));
		goto out;
	}
	if ((r = peer_read_probe_result(count, got, asked, ret, err, errlen)) < 0)
		goto out;
	if (ret->bytes == 0) {
		r = -EIO;
		snprintf(err, errlen, "no byte of the link probe reached %s", addr);
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}
