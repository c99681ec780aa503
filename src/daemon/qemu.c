/* One QEMU per VM. QEMU daemonizes itself (-daemonize) so that it outlives a
 * ferryd restart; ferryd finds it again by its pidfile and QMP socket. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ferryd.h"
#include "log.h"
#include "qmp.h"
#include "util.h"
#include "vmconfig.h"

#define MAX_ARGS 160
#define QMP_CONNECT_MS 5000
#define DAEMONIZE_WAIT_MS 60000

struct argv_buf {
	char *v[MAX_ARGS + 1];
	size_t n;
	bool oom;
};

static void add(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s || a->n >= MAX_ARGS) {
		free(s);
		a->oom = true;
		return;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void argv_free(struct argv_buf *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

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

static int build_argv(struct ferryd *d, struct vm *vm, const char *incoming, struct argv_buf *a)
{
	json_t *cfg = vm->config, *disk, *nic;
	const char *name = vmconfig_name(cfg), *kernel, *machine;
	size_t i;

	machine = vmconfig_machine_type((int)json_integer_value(json_object_get(cfg, "config-version")));
	if (!machine)
		return -EINVAL;
	add(a, "%s", d->qemu_bin);
	add(a, "-daemonize");
	add(a, "-pidfile");
	add(a, "%s/qemu.pid", vm->rundir);
	add(a, "-nodefaults");
	add(a, "-no-user-config");
	add(a, "-display");
	add(a, "none");
	add(a, "-vga");
	add(a, "none");
	add(a, "-msg");
	add(a, "timestamp=on");
	add(a, "-accel");
	add(a, "%s", d->kvm ? "kvm" : "tcg");
	add(a, "-machine");
	add(a, "%s", machine);
	add(a, "-cpu");
	add(a, "%s", vmconfig_cpu_model(cfg, d->kvm));
	add(a, "-m");
	add(a, "%lld", (long long)json_integer_value(json_object_get(cfg, "memory-mib")));
	add(a, "-smp");
	add(a, "%lld", (long long)json_integer_value(json_object_get(cfg, "vcpus")));
	add(a, "-name");
	add(a, "%s,process=ferry-%s", name, name);
	add(a, "-uuid");
	add(a, "%s", vmconfig_id(cfg));
	add(a, "-qmp");
	add(a, "unix:%s/qmp.sock,server=on,wait=off", vm->rundir);
	add(a, "-chardev");
	add(a, "file,id=con0,path=%s/console.log,append=on", vm->dir);
	add(a, "-serial");
	add(a, "chardev:con0");
	if ((kernel = json_string_value(json_object_get(cfg, "kernel")))) {
		const char *initrd = json_string_value(json_object_get(cfg, "initrd"));
		const char *cmdline = json_string_value(json_object_get(cfg, "cmdline"));
		add(a, "-kernel");
		add(a, "%s", kernel);
		if (initrd) {
			add(a, "-initrd");
			add(a, "%s", initrd);
		}
		add(a, "-append");
		/* Under TCG a Linux guest's TSC clocksource does not survive a live
		 * migration (seen with QEMU 7.2: hangs and hrtimer panics after the
		 * move); HPET does. Unless the administrator chose a clocksource. */
		if (!d->kvm && !(cmdline && strstr(cmdline, "clocksource=")))
			add(a, "%s%sclocksource=hpet", cmdline ? cmdline : "console=ttyS0", " ");
		else
			add(a, "%s", cmdline ? cmdline : "console=ttyS0");
	}
	json_array_foreach(json_object_get(cfg, "disks"), i, disk) {
		add(a, "-blockdev");
		add(a, "driver=file,filename=%s,node-name=file%zu,cache.direct=off",
		    json_string_value(json_object_get(disk, "path")), i);
		add(a, "-blockdev");
		add(a, "driver=%s,file=file%zu,node-name=disk%zu",
		    json_string_value(json_object_get(disk, "format")), i, i);
		add(a, "-device");
		add(a, "virtio-blk-pci,drive=disk%zu,id=vd%zu%s", i, i, i == 0 && !kernel ? ",bootindex=0" : "");
	}
	json_array_foreach(json_object_get(cfg, "nics"), i, nic) {
		char tap[16];
		tap_name(cfg, i, tap);
		add(a, "-netdev");
		add(a, "tap,id=net%zu,ifname=%s,script=no,downscript=no", i, tap);
		add(a, "-device");
		add(a, "virtio-net-pci,netdev=net%zu,mac=%s,id=nic%zu", i,
		    json_string_value(json_object_get(nic, "mac")), i);
	}
	if (incoming) {
		/* -S: the guest stays paused after the stream arrives until ferryd
		 * says "cont", so it never runs on both hosts at once. */
		add(a, "-S");
		add(a, "-incoming");
		add(a, "%s", incoming);
	}
	return a->oom ? -ENOMEM : 0;
}

/* Child: QEMU with output to qemu.log, default signals, no inherited fds. */
static void exec_qemu(char *const argv[], int logfd)
{
	sigset_t none;
	int nullfd = open("/dev/null", O_RDONLY);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	setsid();
	dup2(nullfd, 0);
	dup2(logfd, 1);
	dup2(logfd, 2);
	closefrom(3);
	execvp(argv[0], argv);
	dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int qemu_start(struct ferryd *d, struct vm *vm, const char *incoming, char *err, size_t errlen)
{
	struct argv_buf a = {.n = 0};
	char path[PATH_MAX], tail[400];
	struct qmp *q = NULL;
	uint64_t deadline;
	int logfd = -1, status = 0, r;
	pid_t child, pid = 0;

	if ((r = mkdir_p(vm->rundir, 0700)) < 0 || chmod(vm->rundir, 0700) < 0 ||
	    (r = mkdir_p(vm->dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", vm->rundir, strerror(r < 0 ? -r : errno));
		return r < 0 ? r : -errno;
	}
	run_path(vm, "qmp.sock", path, sizeof(path));
	unlink(path);
	run_path(vm, "qemu.pid", path, sizeof(path));
	unlink(path);
	r = build_argv(d, vm, incoming, &a);
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
	r = nics_up(vm, err, errlen);
	if (r < 0)
		goto out;
	log_info("starting VM %s: %s ...", vmconfig_name(vm->config), a.v[0]);
	child = fork();
	if (child < 0) {
		r = -errno;
		snprintf(err, errlen, "fork: %s", strerror(-r));
		goto out_nics;
	}
	if (child == 0)
		exec_qemu(a.v, logfd);
	/* The first QEMU process exits once the daemon is initialized. */
	deadline = now_ms() + DAEMONIZE_WAIT_MS;
	for (;;) {
		pid_t w = waitpid(child, &status, WNOHANG);
		if (w == child)
			break;
		if (w < 0 && errno != EINTR) {
			r = -errno;
			snprintf(err, errlen, "waitpid: %s", strerror(-r));
			goto out_nics;
		}
		if (now_ms() > deadline) {
			kill(child, SIGKILL);
			waitpid(child, &status, 0);
			r = -ETIMEDOUT;
			snprintf(err, errlen, "QEMU did not finish starting within %d s", DAEMONIZE_WAIT_MS / 1000);
			goto out_nics;
		}
		usleep(20 * 1000);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_tail(vm, tail, sizeof(tail));
		snprintf(err, errlen, "QEMU failed to start: %s", tail[0] ? tail : "no message");
		r = -EIO;
		goto out_nics;
	}
	r = read_pidfile(vm, &pid);
	if (r < 0) {
		snprintf(err, errlen, "QEMU started but wrote no pidfile in %s", vm->rundir);
		goto out_nics;
	}
	run_path(vm, "qmp.sock", path, sizeof(path));
	deadline = now_ms() + QMP_CONNECT_MS;
	while ((r = qmp_connect(path, QMP_CONNECT_MS, &q)) < 0 && now_ms() < deadline)
		usleep(50 * 1000);
	if (r < 0) {
		snprintf(err, errlen, "cannot connect to QEMU's QMP socket %s: %s", path, strerror(-r));
		kill(pid, SIGKILL);
		wait_gone(pid, vmconfig_id(vm->config), 5000);
		goto out_nics;
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
	argv_free(&a);
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

int vm_qmp(struct vm *vm, const char *cmd, json_t *args, json_t **ret, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int r;

	if (ret)
		*ret = NULL;
	pthread_mutex_lock(&vm->qmp_lock);
	if (vm->qmp && qmp_broken(vm->qmp)) {
		qmp_close(vm->qmp);
		vm->qmp = NULL;
	}
	if (!vm->qmp && vm->pid > 0) {
		run_path(vm, "qmp.sock", path, sizeof(path));
		qmp_connect(path, QMP_CONNECT_MS, &vm->qmp);
	}
	if (!vm->qmp) {
		snprintf(err, errlen, vm->pid > 0 ? "QEMU of VM %s is not answering on QMP" : "VM %s is not running",
			 vmconfig_name(vm->config));
		r = -ENOTCONN;
	} else {
		r = qmp_execute(vm->qmp, cmd, args, ret, err, errlen);
	}
	pthread_mutex_unlock(&vm->qmp_lock);
	return r;
}

int vm_qmp_oob(struct vm *vm, const char *cmd, json_t *args, char *err, size_t errlen)
{
	int r = -ENOTCONN;

	pthread_mutex_lock(&vm->qmp_lock);
	if (vm->qmp && !qmp_broken(vm->qmp))
		r = qmp_execute_oob(vm->qmp, cmd, args, 5000, err, errlen);
	else
		snprintf(err, errlen, "no QMP connection");
	pthread_mutex_unlock(&vm->qmp_lock);
	return r;
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
