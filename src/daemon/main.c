/* ferryd: owns this host's VMs and settings; serves the local control socket
 * and the migration service on TCP 6600. Runs in the foreground, logs to
 * stderr or, under systemd, to the journal (log.c). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "conffile.h"
#include "ferryd.h"
#include "krb5_check.h"
#include "learned_store.h"
#include "log.h"
#include "pac.h"
#include "partial.h"
#include "settings.h"
#include "util.h"

static volatile sig_atomic_t got_signal;

static void on_signal(int sig) { got_signal = sig; }

static int set_option(struct ferryd *d, const char *key, const char *value, char *err, size_t errlen)
{
	uint64_t v;

#define COPY(field)                                                                   \
	do {                                                                          \
		if ((size_t)snprintf(d->field, sizeof(d->field), "%s", value) >= sizeof(d->field)) { \
			snprintf(err, errlen, "%s: value too long", key);             \
			return -EINVAL;                                               \
		}                                                                     \
		return 0;                                                             \
	} while (0)

	if (!strcmp(key, "state-dir"))
		COPY(state_dir);
	if (!strcmp(key, "run-dir"))
		COPY(run_dir);
	if (!strcmp(key, "host-name")) {
		/* it names the Kerberos service ferry/host-name: a DNS name */
		for (const char *c = value; *c; c++)
			if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.') {
				snprintf(err, errlen, "host-name: '%s' is not a DNS name", value);
				return -EINVAL;
			}
		if (!*value) {
			snprintf(err, errlen, "host-name: empty");
			return -EINVAL;
		}
		COPY(host_name);
	}
	if (!strcmp(key, "keytab"))
		COPY(keytab);
	if (!strcmp(key, "admin-group"))
		COPY(admin_group);
	if (!strcmp(key, "qemu"))
		COPY(qemu_bin);
	if (!strcmp(key, "qemu-user"))
		COPY(qemu_user);
	if (!strcmp(key, "listen")) {
		if (d->n_listen >= MAX_LISTEN || strlen(value) >= sizeof(d->listen[0])) {
			snprintf(err, errlen, "listen: at most %d addresses", MAX_LISTEN);
			return -EINVAL;
		}
		snprintf(d->listen[d->n_listen++], sizeof(d->listen[0]), "%s", value);
		return 0;
	}
	if (!strcmp(key, "metrics")) {
		struct sockaddr_storage ss;
		socklen_t len;

		if (metrics_parse_addr(value, &ss, &len) < 0) {
			snprintf(err, errlen, "metrics: '%s' is not ADDR:PORT (an IP address, IPv6 in brackets)",
				 value);
			return -EINVAL;
		}
		COPY(metrics_addr);
	}
	if (!strcmp(key, "log-level")) {
		enum log_level level;

		if (log_level_parse(value, &level) < 0) {
			snprintf(err, errlen, "log-level: '%s' is not error, warning, info or debug", value);
			return -EINVAL;
		}
		log_set_level(level);
		return 0;
	}
	if (!strcmp(key, "port")) {
		if (parse_u64(value, 1, 65535, &v) < 0) {
			snprintf(err, errlen, "port: '%s' is not a port number (1..65535)", value);
			return -EINVAL;
		}
		d->port = (int)v;
		return 0;
	}
	if (!strcmp(key, "admin-principal")) {
		if (!*value || strlen(value) > 255) {
			snprintf(err, errlen, "admin-principal: expected user@REALM");
			return -EINVAL;
		}
		json_array_append_new(d->admin_principals, json_string(value));
		return 0;
	}
	if (!strcmp(key, "admin-group-sid")) {
		char sid[PAC_SID_STR_MAX];

		if (sid_normalize(value, sid, sizeof(sid)) < 0) {
			snprintf(err, errlen, "admin-group-sid: '%s' is not a SID (S-1-5-21-...-1105)", value);
			return -EINVAL;
		}
		json_array_append_new(d->admin_group_sids, json_string(sid));
		return 0;
	}
	snprintf(err, errlen, "unknown setting '%s'", key);
	return -EINVAL;
#undef COPY
}

static int conf_line(void *ctx, const char *key, const char *value, int line, char *err, size_t errlen)
{
	char sub[256];
	int r = set_option(ctx, key, value, sub, sizeof(sub));

	if (r < 0)
		snprintf(err, errlen, "line %d: %s", line, sub);
	return r;
}

static int load_config(struct ferryd *d, bool required)
{
	char *text = NULL, err[512];
	size_t len;
	int r;

	r = read_file(d->config_path, CONF_MAX_SIZE, &text, &len);
	if (r == -ENOENT && !required)
		return 0;
	if (r < 0) {
		log_err("cannot read %s: %s", d->config_path, strerror(-r));
		return r;
	}
	r = conffile_parse(text, len, conf_line, d, err, sizeof(err));
	if (r < 0)
		log_err("%s: %s", d->config_path, err);
	free(text);
	return r;
}

static bool cpu_has_hw_virt(void)
{
	char *text = NULL;
	size_t len;
	bool yes;

	if (read_file("/proc/cpuinfo", 16 << 20, &text, &len) < 0)
		return false;
	yes = strstr(text, " vmx") || strstr(text, " svm");
	free(text);
	return yes && access("/dev/kvm", R_OK | W_OK) == 0;
}

static void log_krb5_problem(void *ctx, const char *line) { log_warn("%s", line); }

/* QEMU's user, looked up once (the child that drops to it may not call NSS). */
static int qemu_user_setup(struct ferryd *d)
{
	struct passwd *pw;
	int n = (int)(sizeof(d->qemu_groups) / sizeof(d->qemu_groups[0]));

	if (geteuid() != 0 || !strcmp(d->qemu_user, "root")) {
		if (geteuid() == 0)
			log_warn("QEMU runs as root (qemu-user root): a guest that escapes QEMU owns this host");
		return 0;
	}
	pw = getpwnam(d->qemu_user);
	if (!pw || pw->pw_uid == 0) {
		log_err("user %s %s; QEMU runs as that unprivileged user: create it with 'useradd --system "
			"--user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin %s' "
			"(docs/security.md)", d->qemu_user, pw ? "is root" : "does not exist", d->qemu_user);
		return -ENOENT;
	}
	d->qemu_uid = pw->pw_uid;
	d->qemu_gid = pw->pw_gid;
	/* its supplementary groups too (kvm, for /dev/kvm) */
	if (getgrouplist(d->qemu_user, pw->pw_gid, d->qemu_groups, &n) < 0)
		n = 0;
	d->n_qemu_groups = n;
	d->qemu_drop = true;
	return 0;
}

static int load_settings(struct ferryd *d)
{
	char path[PATH_MAX + 16], *text = NULL, err[512];
	json_error_t jerr;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "%s/host.json", d->state_dir);
	r = read_file(path, 1 << 20, &text, &len);
	if (r == -ENOENT) {
		d->settings = settings_defaults();
		return ferryd_save_settings(d);
	}
	if (r < 0)
		return r;
	d->settings = json_loadb(text, len, 0, &jerr);
	free(text);
	if (!json_is_object(d->settings)) {
		log_err("%s is damaged (%s): fix or remove it", path, jerr.text);
		return -EINVAL;
	}
	if (settings_sanitize(d->settings, err, sizeof(err)) > 0)
		log_warn("%s: %s", path, err);
	return 0;
}

int ferryd_save_settings(struct ferryd *d)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/host.json", d->state_dir);
	return write_json_atomic(path, d->settings, JSON_INDENT(2) | JSON_SORT_KEYS, 0600);
}

int main(int argc, char **argv)
{
	struct option longopts[32];
	struct ferryd *d;
	struct sigaction sa = {.sa_handler = on_signal};
	struct pollfd pfd[1 + PEER_MAX_LISTEN];
	int peer_fds[PEER_MAX_LISTEN];
	size_t n_peer = PEER_MAX_LISTEN;
	char err[512];
	bool config_given = false;
	char path[PATH_MAX + 8], vmsdir[PATH_MAX + 8];
	int opt, idx, r, ctl_fd = -1;
	unsigned generation;

	log_setup("ferryd");
	/* at build time, for the man pages: nothing else runs, nothing is allocated */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--dump-options"))
			return ferryd_dump_options(stdout);
	/* getopt's table from ours: the option's name is what set_option takes */
	for (size_t i = 0, n = 0; i < ferryd_n_opts; i++) {
		if (!(ferryd_opts[i].flags & OPT_CMDLINE))
			continue;
		if (n + 1 >= ARRAY_SIZE(longopts))
			abort(); /* the table outgrew longopts */
		longopts[n++] = (struct option){ferryd_opts[i].name, ferryd_opts[i].arg ? required_argument : no_argument,
						NULL, 1};
		longopts[n] = (struct option){NULL, 0, NULL, 0};
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return 1;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->prepare_lock, NULL);
	d->admin_principals = json_array();
	d->admin_group_sids = json_array();
	d->port = FERRY_PORT;
	d->next_job_id = 1;
	snprintf(d->state_dir, sizeof(d->state_dir), "%s", FERRY_DEFAULT_STATE_DIR);
	snprintf(d->run_dir, sizeof(d->run_dir), "%s", FERRY_DEFAULT_RUN_DIR);
	snprintf(d->config_path, sizeof(d->config_path), "%s", FERRY_DEFAULT_CONFIG);
	snprintf(d->admin_group, sizeof(d->admin_group), "ferry");
	snprintf(d->qemu_user, sizeof(d->qemu_user), "ferry-qemu");
	snprintf(d->qemu_bin, sizeof(d->qemu_bin), "%s", getenv("FERRY_QEMU") ? getenv("FERRY_QEMU") : "qemu-system-x86_64");
	if (gethostname(d->host_name, sizeof(d->host_name)) < 0)
		snprintf(d->host_name, sizeof(d->host_name), "localhost");

	/* The config file is read first so that command-line options override it. */
	for (int i = 1; i < argc; i++) {
		const char *path = NULL;
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			path = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			path = argv[i] + 9;
		if (path) {
			snprintf(d->config_path, sizeof(d->config_path), "%s", path);
			config_given = true;
		}
	}
	if (load_config(d, config_given) < 0)
		return 1;
	while ((opt = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		const char *name = longopts[idx].name;

		if (opt == '?') {
			ferryd_usage(stderr);
			return 2;
		}
		if (!strcmp(name, "config"))
			continue; /* read above */
		if (!strcmp(name, "debug")) {
			log_set_level(LOG_DEBUG);
		} else if (!strcmp(name, "help")) {
			ferryd_usage(stdout);
			return 0;
		} else if (!strcmp(name, "version")) {
			printf("ferryd %s\n", FERRY_VERSION);
			return 0;
		} else if (!strcmp(name, "dump-options")) {
			return ferryd_dump_options(stdout);
		} else if (set_option(d, name, optarg, err, sizeof(err)) < 0) {
			log_err("--%s", err);
			return 2;
		}
	}
	if (optind < argc) {
		log_err("unexpected argument '%s' (see ferryd --help)", argv[optind]);
		return 2;
	}

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	umask(022);
	/* 0711: QEMU's user reaches the disks in STATE/disks (the default storage
	 * root) and the one-time keys in RUN/vms/NAME, and lists nothing */
	snprintf(path, sizeof(path), "%s/disks", d->state_dir);
	snprintf(vmsdir, sizeof(vmsdir), "%s/vms", d->run_dir);
	if ((r = mkdir_p(d->state_dir, 0711)) < 0 || (r = mkdir_p(path, 0711)) < 0 ||
	    (r = mkdir_p(d->run_dir, 0755)) < 0 || (r = mkdir_p(vmsdir, 0711)) < 0 ||
	    (chmod(d->state_dir, 0711) < 0 && (r = -errno)) || (chmod(vmsdir, 0711) < 0 && (r = -errno))) {
		log_err("cannot create %s or %s: %s", d->state_dir, d->run_dir, strerror(-r));
		return 1;
	}
	d->kvm = cpu_has_hw_virt();
	if (qemu_user_setup(d) < 0)
		return 1;
	krb5_check_setup(d->keytab, d->host_name, log_krb5_problem, NULL);
	if ((r = load_settings(d)) < 0) {
		log_err("cannot load host settings: %s", strerror(-r));
		return 1;
	}
	pthread_mutex_lock(&d->lock);
	learned_load(d);
	r = vms_load(d);
	if (r == 0) {
		incoming_sweep(d);
		partial_sweep(d);
	}
	for (struct vm *vm = d->vms, *next; r == 0 && vm; vm = next) {
		next = vm->next; /* move_recover may remove vm */
		if (vm->pid > 0)
			move_recover(d, vm);
	}
	pthread_mutex_unlock(&d->lock);
	if (r < 0) {
		log_err("cannot load VMs from %s: %s", d->state_dir, strerror(-r));
		return 1;
	}
	if ((r = control_listen(d, &ctl_fd)) < 0) {
		log_err("cannot listen on %s/control.sock: %s", d->run_dir, strerror(-r));
		return 1;
	}
	if (peer_listen(d, peer_fds, &n_peer) < 0)
		return 1;
	if (d->metrics_addr[0]) {
		if ((r = metrics_serve(d)) < 0) {
			log_err("cannot serve metrics on %s: %s", d->metrics_addr, strerror(-r));
			return 1;
		}
		log_info("metrics at http://%s/metrics", d->metrics_addr);
	}
	log_info("%s ready: accelerator %s, control socket %s/control.sock", d->host_name,
		 d->kvm ? "kvm" : "tcg", d->run_dir);

	pfd[0] = (struct pollfd){.fd = ctl_fd, .events = POLLIN};
	for (size_t i = 0; i < n_peer; i++)
		pfd[1 + i] = (struct pollfd){.fd = peer_fds[i], .events = POLLIN};
	generation = d->listen_generation;
	while (!got_signal) {
		if (generation != d->listen_generation) {
			/* Migration networks changed: listen on exactly their addresses now. */
			size_t n_new = PEER_MAX_LISTEN;
			int new_fds[PEER_MAX_LISTEN];
			generation = d->listen_generation;
			for (size_t i = 0; i < n_peer; i++)
				close(peer_fds[i]);
			n_peer = 0;
			if (peer_listen(d, new_fds, &n_new) == 0) {
				memcpy(peer_fds, new_fds, n_new * sizeof(int));
				n_peer = n_new;
			} else {
				log_err("cannot listen on TCP %d any more: see the errors above", d->port);
			}
			for (size_t i = 0; i < n_peer; i++)
				pfd[1 + i] = (struct pollfd){.fd = peer_fds[i], .events = POLLIN};
		}
		if (poll(pfd, 1 + n_peer, 1000) < 0 && errno != EINTR)
			break;
		peer_reap_handshakes();
		if (pfd[0].revents & POLLIN)
			control_serve(d, ctl_fd);
		for (size_t i = 0; i < n_peer; i++)
			if (pfd[1 + i].revents & POLLIN)
				peer_serve(d, peer_fds[i]);
	}
	/* VMs keep running: a restarted ferryd re-attaches to them. */
	log_info("signal %d: exiting, VMs keep running", (int)got_signal);
	return 0;
}
