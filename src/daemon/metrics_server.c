/* The metrics endpoint (--metrics ADDR:PORT, off by default): a tiny
 * HTTP/1.0 server on its own thread that answers GET /metrics with the
 * Prometheus text exposition and closes the connection after each response.
 * It listens only on the address given. One connection at a time, each
 * bounded in size (METRICS_REQ_MAX) and in time (METRICS_TIMEOUT_MS): a slow
 * client delays the next scrape, never the rest of ferryd, which this thread
 * touches only to copy the counters under d->lock. There is no
 * authentication: bind it to a management address. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ferryd.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define METRICS_TIMEOUT_MS 3000

struct metrics_server {
	struct ferryd *d;
	int fd;
};

/* Reads a request head until the parser decides, within the deadline. */
static int read_request(int fd, enum metrics_request *ret)
{
	char buf[METRICS_REQ_MAX];
	enum metrics_request req = METRICS_REQ_INCOMPLETE;
	uint64_t deadline = now_ms() + METRICS_TIMEOUT_MS;
	size_t len = 0;

	while (req == METRICS_REQ_INCOMPLETE) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = now_ms();
		ssize_t n;
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ETIMEDOUT;
		/* the parser answers BAD before the buffer is full */
		n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		len += (size_t)n;
		req = metrics_parse_request(buf, len);
	}
	*ret = req;
	return 0;
}

/* The exposition of the counters now; NULL when out of memory. */
static char *render_now(struct ferryd *d, size_t *ret_len)
{
	struct metrics m;
	struct metrics_now now;
	char *text = NULL;

	pthread_mutex_lock(&d->lock);
	m = d->metrics;
	jobs_metrics_now(d, &now);
	pthread_mutex_unlock(&d->lock);
	if (metrics_render(&m, &now, &text, ret_len) < 0)
		return NULL;
	return text;
}

static void respond(struct ferryd *d, int fd, enum metrics_request req)
{
	const char *status = "400 Bad Request", *type = "text/plain; charset=utf-8", *extra = "";
	char head[256], *body = NULL;
	size_t len = 0;
	int n;

	if (req == METRICS_REQ_OK) {
		body = render_now(d, &len);
		status = body ? "200 OK" : "500 Internal Server Error";
		type = body ? "text/plain; version=0.0.4; charset=utf-8" : type;
	} else if (req == METRICS_REQ_NOT_FOUND) {
		status = "404 Not Found";
	} else if (req == METRICS_REQ_BAD_METHOD) {
		status = "405 Method Not Allowed";
		extra = "Allow: GET\r\n";
	}
	if (!body) {
		/* the status line again as the body: nothing from the request */
		n = asprintf(&body, "%s\n", status);
		if (n < 0)
			return;
		len = (size_t)n;
	}
	n = snprintf(head, sizeof(head), "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n", status, type, len, extra);
	if (write_all(fd, head, (size_t)n) == 0)
		write_all(fd, body, len);
	free(body);
}

static void serve_one(struct ferryd *d, int fd)
{
	struct timeval tv = {.tv_sec = METRICS_TIMEOUT_MS / 1000};
	enum metrics_request req;

	/* a client that does not read its answer cannot hold the thread */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (read_request(fd, &req) < 0)
		return; /* timed out or gone: nothing to answer */
	respond(d, fd, req);
	shutdown(fd, SHUT_WR);
}

static void *metrics_thread(void *arg)
{
	struct metrics_server *s = arg;

	for (;;) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(100000); /* out of descriptors: no busy loop */
			continue;
		}
		serve_one(s->d, fd);
		close(fd);
	}
	return NULL;
}

int metrics_serve(struct ferryd *d)
{
	struct sockaddr_storage ss;
	struct metrics_server *s;
	socklen_t len;
	pthread_t t;
	int fd, r;

	if (metrics_parse_addr(d->metrics_addr, &ss, &len) < 0)
		return -EINVAL; /* checked with the option already */
	if ((r = tcp_listen((struct sockaddr *)&ss, len, 16, &fd)) < 0)
		return r;
	s = malloc(sizeof(*s));
	if (!s) {
		r = -ENOMEM;
		goto close_fd;
	}
	*s = (struct metrics_server){.d = d, .fd = fd};
	if ((r = -pthread_create(&t, NULL, metrics_thread, s)) < 0) {
		free(s);
		goto close_fd;
	}
	pthread_detach(t);
	return 0;
close_fd:
	close(fd);
	return r;
}
