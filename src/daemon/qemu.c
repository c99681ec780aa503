/* One QEMU per VM, started detached (double fork, new session) so that it
 * outlives a ferryd restart; ferryd finds it again by the pidfile it writes
 * and the QMP socket. QEMU runs as an unprivileged user (d->qemu_user) under
 * a seccomp sandbox: ferryd opens what it needs first (the QMP listening
 * socket, the console file, the taps) and passes the descriptors; the disks
 * are given to that user. (QEMU's own -daemonize and -runas do not go together with
 * -sandbox elevateprivileges=deny, which forbids setsid and setuid.) */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ferryd.h"
#include "log.h"
#include "qemu_argv.h"
#include "qmp.h"
#include "storage.h"
#include "util.h"
#include "move_resume.h"
#include "vm_qmp.h"
#include "vmconfig.h"

#define START_WAIT_MS 60000

static void run_path(struct vm *vm, const char *file, char *out, size_t len)
{
	/* the run dir is short by construction; an overlong one yields "" and fails to open */
	if ((size_t)snprintf(out, len, "%s/%s", vm->rundir, file) >= len)
		out[0] = 0;
}

/* The last lines of qemu.log, for error messages. */
static void log_tail(struct vm *vm, char *out, size_t len)
{
	char path[PATH_MAX], *buf = NULL, *p;
	size_t n;

	out[0] = 0;
	run_path(vm, "qemu.log", path, sizeof(path));
	if (read_file(path, 1 << 20, &buf, &n) < 0)
		return;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	p = n > len - 1 ? buf + n - (len - 1) : buf;
	snprintf(out, len, "%s", p);
	for (p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
	free(buf);
}

/* Does pid exist and is it not a zombie? (QEMU just forked may not have
 * exec'd yet: its command line is still ferryd's.) */
static bool pid_alive(pid_t pid)
{
	char path[64], *buf = NULL, *p;
	size_t n;
	bool alive;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file(path, 4096, &buf, &n) < 0)
		return false;
	p = strrchr(buf, ')');
	alive = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	free(buf);
	return alive;
}

/* Is pid a QEMU for this VM? Guards against pid reuse after a restart. */
static bool pid_is_vm(pid_t pid, const char *uuid)
{
	char path[64], *buf = NULL;
	size_t n;
	bool ok = false;

	if (pid <= 0 || !uuid)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (read_file(path, 1 << 20, &buf, &n) < 0)
		return false;
	for (size_t off = 0; off < n; off += strlen(buf + off) + 1)
		if (strcmp(buf + off, uuid) == 0)
			ok = true;
	free(buf);
	return ok;
}

static int read_pidfile(struct vm *vm, pid_t *ret)
{
	char path[PATH_MAX], *buf = NULL;
	uint64_t v;
	size_t n;
	int r;

	run_path(vm, "qemu.pid", path, sizeof(path));
	r = read_file(path, 64, &buf, &n);
	if (r < 0)
		return r;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	r = parse_u64(buf, 1, INT32_MAX, &v);
	free(buf);
	if (r < 0)
		return r;
	*ret = (pid_t)v;
	return 0;
}

static bool wait_gone(pid_t pid, const char *uuid, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	do {
		if (!pid_is_vm(pid, uuid))
			return true;
		usleep(50 * 1000);
	} while (now_ms() < deadline);
	return !pid_is_vm(pid, uuid);
}

static void nics_down(struct vm *vm)
{
	size_t n = json_array_size(json_object_get(vm->config, "nics"));

	for (size_t i = 0; i < n; i++) {
		char tap[16];
		tap_name(vm->config, i, tap);
		tap_delete(tap);
	}
}

static int nics_up(struct vm *vm, char *err, size_t errlen)
{
	json_t *nics = json_object_get(vm->config, "nics"), *nic;
	size_t i;

	json_array_foreach(nics, i, nic) {
		const char *sw = json_string_value(json_object_get(nic, "switch"));
		char tap[16], why[256];
		int r;

		tap_name(vm->config, i, tap);
		r = tap_create(tap, sw, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "network adapter %zu on switch '%s': %s", i, sw, why);
			nics_down(vm);
			return r;
		}
	}
	return 0;
}

/* Forgets the QEMU: QMP, taps, socket and pidfile (qemu.log stays for diagnosis). */
static void cleanup(struct vm *vm)
{
	char path[PATH_MAX];

	pthread_mutex_lock(&vm->qmp_lock);
	qmp_close(vm->qmp);
	vm->qmp = NULL;
	vm->pid = 0;
	pthread_mutex_unlock(&vm->qmp_lock);
	nics_down(vm);
	run_path(vm, "qmp.sock", path, sizeof(path));
	unlink(path);
	run_path(vm, "qemu.pid", path, sizeof(path));
	unlink(path);
}

/* Moves fd to a number of 10 or more, so that dup2 to 0..4 cannot clobber it. */
static int fd_high(int fd)
{
	return fd < 0 ? fd : fcntl(fd, F_DUPFD, 10);
}

/* Grandchild: QEMU with output to qemu.log, default signals, as QEMU's
 * user, and no descriptor but the QMP socket (FD_QMP), the console
 * (FD_CONSOLE) and the taps (FD_TAP0...). Few calls and no allocation here:
 * ferryd has threads. */
static void exec_qemu(struct ferryd *d, char *const argv[], int logfd, int qmpfd, int confd, const int *taps,
		      size_t ntaps)
{
	sigset_t none;
	int nullfd = fd_high(open("/dev/null", O_RDONLY)), high[VM_MAX_NICS];

	logfd = fd_high(logfd);
	qmpfd = fd_high(qmpfd);
	confd = fd_high(confd);
	for (size_t i = 0; i < ntaps; i++)
		if ((high[i] = fd_high(taps[i])) < 0)
			_exit(126);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	if (nullfd < 0 || logfd < 0 || qmpfd < 0 || confd < 0 || dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 ||
	    dup2(logfd, 2) < 0 || dup2(qmpfd, FD_QMP) < 0 || dup2(confd, FD_CONSOLE) < 0)
		_exit(126);
	for (size_t i = 0; i < ntaps; i++)
		if (dup2(high[i], FD_TAP0 + (int)i) < 0)
			_exit(126);
	closefrom(FD_TAP0 + (int)ntaps);
	if (d->qemu_drop && (setgroups((size_t)d->n_qemu_groups, d->qemu_groups) < 0 || setgid(d->qemu_gid) < 0 ||
			     setuid(d->qemu_uid) < 0 || setuid(0) == 0)) {
		dprintf(2, "cannot become user %s: %s\n", d->qemu_user, strerror(errno));
		_exit(126);
	}
	execvp(argv[0], argv);
	dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* The QMP socket: ferryd binds it (root's run directory) and QEMU inherits
 * the listening descriptor. */
static int qmp_listen(const char *path, int *ret)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 || listen(fd, 4) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret = fd;
	return 0;
}

int qemu_file_own(struct ferryd *d, const char *path, char *err, size_t errlen)
{
	char roots[STORAGE_ROOTS_MAX][PATH_MAX], text[1024], why[PATH_MAX + 128];
	const char *root;
	size_t n;
	int fd, r = 0;

	if (!d->qemu_drop)
		return 0;
	/* only files under the storage roots are given away: never /etc/shadow */
	pthread_mutex_lock(&d->lock);
	n = storage_roots(d, roots, STORAGE_ROOTS_MAX);
	pthread_mutex_unlock(&d->lock);
	root = storage_root_of(roots, n, path);
	if (!root) {
		storage_roots_text(roots, n, text, sizeof(text));
		snprintf(err, errlen, "disk %s is outside the storage roots (%s): ferry gives QEMU's user %s only "
				      "files under them; move it there or add its directory with 'ferry host set "
				      "storage-roots DIR[:DIR...]'", path, text, d->qemu_user);
		return -EPERM;
	}
	if ((r = storage_open_existing(root, path, &fd, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "disk %s", why);
		return r;
	}
	if (fchown(fd, d->qemu_uid, d->qemu_gid) < 0 || fchmod(fd, 0600) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot give disk %s to user %s: %s", path, d->qemu_user, strerror(-r));
	}
	close(fd);
	return r;
}

static int write_pidfile(struct vm *vm, pid_t pid)
{
	char path[PATH_MAX], text[32];

	run_path(vm, "qemu.pid", path, sizeof(path));
	snprintf(text, sizeof(text), "%d\n", (int)pid);
	return write_file_atomic(path, text, strlen(text), 0600);
}

/* Starts QEMU detached: a child starts a new session and forks QEMU, tells
 * its pid through a pipe and exits, so QEMU is never ferryd's child. */
static int spawn_detached(struct ferryd *d, char *const argv[], int logfd, int qmpfd, int confd, const int *taps,
			  size_t ntaps, pid_t *ret)
{
	int pfd[2], status = 0, r = 0;
	pid_t child, pid = 0;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	child = fork();
	if (child < 0) {
		r = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	if (child == 0) {
		pid_t q;
		setsid();
		q = fork();
		if (q == 0) {
			close(pfd[0]);
			close(pfd[1]);
			exec_qemu(d, argv, logfd, qmpfd, confd, taps, ntaps);
		}
		if (q > 0 && write(pfd[1], &q, sizeof(q)) == (ssize_t)sizeof(q))
			_exit(0);
		_exit(127);
	}
	close(pfd[1]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || read(pfd[0], &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
		r = -ECHILD;
	close(pfd[0]);
	*ret = pid;
	return r;
}

int qemu_start(struct ferryd *d, struct vm *vm, const char *incoming, char *err, size_t errlen)
{
	struct argv_buf a = {.n = 0};
	char path[PATH_MAX], tail[400];
	struct qmp *q = NULL;
	uint64_t deadline;
	int logfd = -1, qmpfd = -1, confd = -1, taps[VM_MAX_NICS], r;
	pid_t pid = 0;
	json_t *disk;
	size_t i, ntaps = 0;

	/* 0711: QEMU's user may reach the one-time key directory inside */
	if ((r = mkdir_p(vm->rundir, 0711)) < 0 || chmod(vm->rundir, 0711) < 0 ||
	    (r = mkdir_p(vm->dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", vm->rundir, strerror(r < 0 ? -r : errno));
		return r < 0 ? r : -errno;
	}
	run_path(vm, "qemu.pid", path, sizeof(path));
	unlink(path);
	json_array_foreach(json_object_get(vm->config, "disks"), i, disk) {
		const char *dp = json_string_value(json_object_get(disk, "path"));
		/* writes a crashed move left in an overlay come back first */
		if ((r = overlay_fold_offline(dp, err, errlen)) < 0 || (r = qemu_file_own(d, dp, err, errlen)) < 0)
			return r;
	}
	r = qemu_argv_build(d, vm, incoming, &a);
	if (r < 0) {
		snprintf(err, errlen, "cannot build the QEMU command line: %s", strerror(-r));
		goto out;
	}
	run_path(vm, "qemu.log", path, sizeof(path));
	logfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(-r));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/console.log", vm->dir);
	confd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	run_path(vm, "qmp.sock", path, sizeof(path));
	if (confd < 0 || (r = qmp_listen(path, &qmpfd)) < 0) {
		r = confd < 0 ? -errno : r;
		snprintf(err, errlen, "cannot create the console log or QMP socket of %s: %s", vmconfig_name(vm->config),
			 strerror(-r));
		goto out;
	}
	r = nics_up(vm, err, errlen);
	if (r < 0)
		goto out;
	log_info("starting VM %s: %s ... as user %s", vmconfig_name(vm->config), a.v[0],
		 d->qemu_drop ? d->qemu_user : "root");
	ntaps = json_array_size(json_object_get(vm->config, "nics"));
	for (i = 0; i < ntaps; i++) {
		char tap[16];
		tap_name(vm->config, i, tap);
		if ((r = tap_open(tap, &taps[i])) < 0) {
			snprintf(err, errlen, "cannot open tap %s: %s", tap, strerror(-r));
			ntaps = i;
			goto out_nics;
		}
	}
	r = spawn_detached(d, a.v, logfd, qmpfd, confd, taps, ntaps, &pid);
	/* QEMU holds the listening socket now: ours would keep it open after QEMU died */
	close(qmpfd);
	qmpfd = -1;
	if (r < 0) {
		snprintf(err, errlen, "cannot start QEMU: %s", strerror(-r));
		goto out_nics;
	}
	if ((r = write_pidfile(vm, pid)) < 0) {
		snprintf(err, errlen, "cannot write %s/qemu.pid: %s", vm->rundir, strerror(-r));
		kill(pid, SIGKILL);
		goto out_nics;
	}
	/* QEMU answers on QMP once it is up; if it exits first, qemu.log says why */
	run_path(vm, "qmp.sock", path, sizeof(path));
	deadline = now_ms() + START_WAIT_MS;
	for (;;) {
		if (!pid_alive(pid)) {
			usleep(100 * 1000); /* let the last words reach qemu.log */
			log_tail(vm, tail, sizeof(tail));
			snprintf(err, errlen, "QEMU failed to start: %s", tail[0] ? tail : "no message");
			r = -EIO;
			goto out_nics;
		}
		if ((r = qmp_connect(path, QMP_CONNECT_MS, &q)) == 0)
			break;
		if (now_ms() > deadline) {
			snprintf(err, errlen, "QEMU did not answer on %s within %d s: %s", path, START_WAIT_MS / 1000,
				 strerror(-r));
			kill(pid, SIGKILL);
			wait_gone(pid, vmconfig_id(vm->config), 5000);
			goto out_nics;
		}
		usleep(50 * 1000);
	}
	pthread_mutex_lock(&vm->qmp_lock);
	vm->qmp = q;
	vm->pid = pid;
	pthread_mutex_unlock(&vm->qmp_lock);
	log_info("VM %s running, QEMU pid %d%s", vmconfig_name(vm->config), (int)pid,
		 incoming ? " (waiting for an incoming migration)" : "");
	r = 0;
	goto out;
out_nics:
	nics_down(vm);
	run_path(vm, "qmp.sock", path, sizeof(path));
	unlink(path);
	run_path(vm, "qemu.pid", path, sizeof(path));
	unlink(path);
out:
	if (logfd >= 0)
		close(logfd);
	if (confd >= 0)
		close(confd);
	if (qmpfd >= 0)
		close(qmpfd);
	for (i = 0; i < ntaps; i++)
		close(taps[i]);
	qemu_argv_free(&a);
	return r;
}

int qemu_reattach(struct ferryd *d, struct vm *vm)
{
	const char *uuid = vmconfig_id(vm->config);
	char path[PATH_MAX];
	struct qmp *q = NULL;
	pid_t pid;
	int r;

	r = read_pidfile(vm, &pid);
	if (r < 0 || !pid_is_vm(pid, uuid)) {
		cleanup(vm);
		return r < 0 ? r : -ESRCH;
	}
	run_path(vm, "qmp.sock", path, sizeof(path));
	r = qmp_connect(path, QMP_CONNECT_MS, &q);
	pthread_mutex_lock(&vm->qmp_lock);
	vm->pid = pid;
	vm->qmp = q;
	pthread_mutex_unlock(&vm->qmp_lock);
	if (r < 0)
		log_warn("VM %s: QEMU pid %d is running but QMP is not answering (%s); will retry",
			 vmconfig_name(vm->config), (int)pid, strerror(-r));
	else
		log_info("VM %s: reattached to QEMU pid %d", vmconfig_name(vm->config), (int)pid);
	return r;
}

bool qemu_alive(struct vm *vm)
{
	return vm->pid > 0 && pid_is_vm(vm->pid, vmconfig_id(vm->config));
}

void qemu_kill(struct vm *vm)
{
	pid_t pid = vm->pid;

	if (pid > 0 && pid_is_vm(pid, vmconfig_id(vm->config))) {
		kill(pid, SIGKILL);
		if (!wait_gone(pid, vmconfig_id(vm->config), 5000))
			log_warn("QEMU pid %d survived SIGKILL for 5 s", (int)pid);
	}
	cleanup(vm);
}

bool qemu_quit(struct vm *vm)
{
	pid_t pid = vm->pid;
	const char *uuid = vmconfig_id(vm->config);
	char err[256];
	bool clean = false;

	if (pid > 0 && pid_is_vm(pid, uuid)) {
		vm_qmp(vm, "quit", NULL, NULL, err, sizeof(err));
		clean = wait_gone(pid, uuid, 5000);
	}
	qemu_kill(vm);
	return clean;
}

int qemu_stop(struct ferryd *d, struct vm *vm, int timeout_s, bool force)
{
	const char *uuid = vmconfig_id(vm->config), *name = vmconfig_name(vm->config);
	pid_t pid = vm->pid;
	char err[256];

	if (pid <= 0 || !pid_is_vm(pid, uuid)) {
		cleanup(vm);
		return 0;
	}
	if (!force) {
		if (vm_qmp(vm, "system_powerdown", NULL, NULL, err, sizeof(err)) < 0)
			log_warn("VM %s: system_powerdown: %s", name, err);
		else if (wait_gone(pid, uuid, (timeout_s > 0 ? timeout_s : 1) * 1000))
			goto done;
		log_info("VM %s did not shut down within %d s; turning it off", name, timeout_s);
	}
	/* quit ends QEMU at once; the reply may or may not arrive before the socket closes */
	vm_qmp(vm, "quit", NULL, NULL, err, sizeof(err));
	if (wait_gone(pid, uuid, 5000))
		goto done;
	log_warn("VM %s: QEMU pid %d ignored quit; killing it", name, (int)pid);
	kill(pid, SIGKILL);
	if (!wait_gone(pid, uuid, 5000)) {
		log_err("VM %s: QEMU pid %d survived SIGKILL", name, (int)pid);
		return -EBUSY;
	}
done:
	cleanup(vm);
	log_info("VM %s stopped", name);
	return 0;
}

/* "-machine help" / "-cpu help", parsed once. */
static const char *help_bin;
static json_t *machine_list, *cpu_list;
static pthread_once_t machine_once = PTHREAD_ONCE_INIT, cpu_once = PTHREAD_ONCE_INIT;

static json_t *help_names(const char *opt, const char *prefix)
{
	const char *const argv[] = {help_bin, opt, "help", NULL};
	size_t plen = prefix ? strlen(prefix) : 0;
	char *out = malloc(256 * 1024), *line, *save = NULL;
	json_t *list;
	bool first = true;

	if (!out || run_cmd(argv, out, 256 * 1024) != 0) {
		free(out);
		return NULL;
	}
	list = json_array();
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128];
		if (prefix && strncmp(line, prefix, plen) != 0)
			continue;
		if (!prefix && (first || line[0] == ' ')) {
			first = false; /* "Supported machines are:" */
			continue;
		}
		if (sscanf(line + plen, "%127s", name) == 1)
			json_array_append_new(list, json_string(name));
	}
	free(out);
	return list;
}

static void machine_init(void) { machine_list = help_names("-machine", NULL); }
static void cpu_init(void) { cpu_list = help_names("-cpu", "x86 "); }

int qemu_machine_types(const char *qemu_bin, json_t **ret)
{
	help_bin = qemu_bin;
	pthread_once(&machine_once, machine_init);
	if (!machine_list)
		return -EIO;
	*ret = json_deep_copy(machine_list);
	return 0;
}

int qemu_cpu_models(const char *qemu_bin, json_t **ret)
{
	help_bin = qemu_bin;
	pthread_once(&cpu_once, cpu_init);
	if (!cpu_list)
		return -EIO;
	*ret = json_deep_copy(cpu_list);
	return 0;
}
