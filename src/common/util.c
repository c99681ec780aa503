#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

/* "512", "512M", "2G" -> MiB */
int parse_size_mib(const char *s, uint64_t *ret_mib)
{
	char buf[32];
	size_t n;
	uint64_t mult = 1, v;
	int r;

	if (!s || (n = strlen(s)) == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n + 1);
	switch (buf[n - 1]) {
	case 'G': case 'g': mult = 1024; buf[n - 1] = 0; break;
	case 'M': case 'm': buf[n - 1] = 0; break;
	default: break;
	}
	r = parse_u64(buf, 1, UINT64_MAX / 1024, &v);
	if (r < 0)
		return r;
	*ret_mib = v * mult;
	return 0;
}

/* Names of VMs, switches and the like: safe as file names and in QEMU ids. */
bool name_is_valid(const char *name, size_t max_len)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > max_len || name[0] == '-' || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("-_.", name[i]))
			return false;
	return true;
}

int mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Returns -EPIPE when the peer closed before len bytes arrived. */
int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t r = read(fd, p, len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int fsync_parent_dir(const char *path)
{
	char dir[4096];
	int dfd, r = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (fsync(dfd) < 0)
		r = -errno;
	close(dfd);
	return r;
}

/* temp file, fsync, rename, fsync of the directory: a crash leaves old or new, never half. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[4096];
	int fd = -1, r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	/* a new file, never one found there (a planted link is not followed: review L6) */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, len);
	if (r < 0)
		goto out;
	if (fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto out;
	}
	fsync_parent_dir(path);
	return 0;
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

int write_json_atomic(const char *path, const json_t *j, size_t flags, mode_t mode)
{
	char *text = json_dumps(j, flags);
	int r;

	if (!text)
		return -ENOMEM;
	r = write_file_atomic(path, text, strlen(text), mode);
	free(text);
	return r;
}

int read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;
		if (cap - len < 4096) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *nb;
			if (ncap > max + 1)
				ncap = max + 1;
			if (ncap <= len) {
				r = -EFBIG;
				goto out;
			}
			nb = realloc(buf, ncap + 1);
			if (!nb) {
				r = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			r = -EFBIG;
			goto out;
		}
	}
	if (!buf && !(buf = malloc(1))) {
		r = -ENOMEM;
		goto out;
	}
	buf[len] = 0;
	*ret_buf = buf;
	*ret_len = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int remove_tree(const char *path)
{
	if (!path_exists(path))
		return 0;
	return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

/* A directory, or a symbolic link to one: the link and its target go. */
int remove_tree_follow(const char *path)
{
	char target[4096];
	ssize_t n = readlink(path, target, sizeof(target) - 1);

	if (n > 0) {
		target[n] = 0;
		remove_tree(target);
		return unlink(path) < 0 ? -errno : 0;
	}
	return remove_tree(path);
}

bool path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Runs argv[0] (searched in PATH) and waits; stdout+stderr go to out when given.
 * Returns the exit status (>= 0) or -errno when it could not run. */
int run_cmd(const char *const argv[], char *out, size_t out_size)
{
	int pipefd[2] = {-1, -1}, status;
	size_t len = 0;
	pid_t pid;

	if (out && out_size)
		out[0] = 0;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -errno;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		char buf[512];
		ssize_t n = read(pipefd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out && out_size > 1) {
			size_t take = (size_t)n;
			if (take > out_size - 1 - len)
				take = out_size - 1 - len;
			memcpy(out + len, buf, take);
			len += take;
			out[len] = 0;
		}
	}
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (out && len > 0 && out[len - 1] == '\n')
		out[len - 1] = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void random_bytes(void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			abort(); /* no entropy source: nothing safe to do */
		}
		p += n;
		len -= (size_t)n;
	}
}

void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = 0;
}

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A peer that vanishes (host down, network cut) is noticed within ~15-20 s
 * instead of the kernel's hours: keepalive for an idle connection, a user
 * timeout for data that goes unacknowledged. */
void socket_keepalive(int fd)
{
	int on = 1, idle = 5, intvl = 2, cnt = 5;
	unsigned int user_timeout_ms = 20000;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
}

int tcp_listen(const struct sockaddr *sa, socklen_t len, int backlog, int *ret_fd)
{
	int fd, one = 1, r;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

bool socket_peer_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	/* Nothing may arrive unasked on a request/reply connection: readable means EOF or error. */
	return poll(&p, 1, 0) != 0;
}

bool path_is_clean(const char *p)
{
	size_t len = p ? strlen(p) : 0;

	if (len == 0 || p[0] != '/' || len >= PATH_MAX || (len > 1 && p[len - 1] == '/'))
		return false;
	for (const char *c = p; *c; c++) {
		if (*c != '/')
			continue;
		/* each component: not empty, not "." or ".." */
		if (c[1] == '/' || (c[1] == '.' && (c[2] == '/' || c[2] == 0)) ||
		    (c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == 0)))
			return false;
	}
	return true;
}

/* Bytes of the valid UTF-8 character at s (len bytes available), 0 if the
 * bytes there are not one: the rules of RFC 3629, which jansson enforces
 * (no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_char_len(const unsigned char *s, size_t len)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void utf8_truncate(char *s)
{
	size_t len = strlen(s), start = len, need;
	unsigned char lead;

	/* back over at most 3 continuation bytes to the start of the last character */
	while (start > 0 && len - start < 4 && ((unsigned char)s[start - 1] & 0xc0) == 0x80)
		start--;
	if (start == 0)
		return;
	lead = (unsigned char)s[start - 1];
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	if (need > 1 && len - (start - 1) < need)
		s[start - 1] = '\0';
}

size_t utf8_sanitize(char *buf, size_t len)
{
	size_t replaced = 0, n;

	for (size_t i = 0; i < len; i += n) {
		n = utf8_char_len((const unsigned char *)buf + i, len - i);
		if (n == 0) {
			buf[i] = '?';
			n = 1;
			replaced++;
		}
	}
	return replaced;
}

void utf8_clean(char *s)
{
	utf8_truncate(s);
	utf8_sanitize(s, strlen(s));
}

void fput_visible(const char *buf, size_t len, FILE *f)
{
	const unsigned char *p = (const unsigned char *)buf;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' || p[i] == '\r' || p[i] == '\t' || (p[i] >= 0x20 && p[i] < 0x7f)) {
			fputc(p[i], f);
		} else if (p[i] < 0x20 || p[i] == 0x7f) {
			fprintf(f, "^%c", p[i] ^ 0x40); /* ESC: ^[ */
		} else if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) {
			fprintf(f, "\\x%02x", p[++i]); /* C1 controls (U+0080..U+009F): CSI is one */
		} else {
			fputc(p[i], f); /* the rest of UTF-8 text */
		}
	}
}

int socket_peer_uid(int fd, uid_t *ret_uid)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	*ret_uid = uc.uid;
	return 0;
}
