/* Checks before anything moves: what this host offers, and every reason a
 * VM cannot come here, reported together (Compare-VM). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ferryd.h"
#include "qmp.h"
#include "settings.h"
#include "partial.h"
#include "storage.h"
#include "util.h"
#include "vmconfig.h"

/* Memory ferry leaves for the host and QEMU's own overhead per VM. */
#define QEMU_OVERHEAD_MIB 128

static uint64_t mem_available_mib(void)
{
	char *text = NULL, *p;
	size_t len;
	unsigned long long kb = 0;

	if (read_file("/proc/meminfo", 1 << 20, &text, &len) < 0)
		return 0;
	p = strstr(text, "MemAvailable:");
	if (p)
		sscanf(p, "MemAvailable: %llu", &kb);
	free(text);
	return kb / 1024;
}

static json_t *cpu_flags(void)
{
	char *text = NULL, *p, *end, *save = NULL, *tok;
	json_t *flags = json_array();
	size_t len;

	if (read_file("/proc/cpuinfo", 16 << 20, &text, &len) < 0)
		return flags;
	p = strstr(text, "\nflags");
	if (p && (p = strchr(p, ':'))) {
		end = strchr(p, '\n');
		if (end)
			*end = 0;
		for (tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
			json_array_append_new(flags, json_string(tok));
	}
	free(text);
	return flags;
}

json_t *host_capabilities(struct ferryd *d)
{
	json_t *machines = NULL, *cpus = NULL, *sw = switch_list(), *names = json_array(), *s;
	size_t i;

	qemu_machine_types(d->qemu_bin, &machines);
	qemu_cpu_models(d->qemu_bin, &cpus);
	json_array_foreach(json_object_get(sw, "switches") ? json_object_get(sw, "switches") : sw, i, s)
		json_array_append(names, json_object_get(s, "name"));
	json_decref(sw);
	return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:I}", "host-name", d->host_name, "accelerator",
			 d->kvm ? "kvm" : "tcg", "machine-types", machines ? machines : json_array(),
			 "cpu-models", cpus ? cpus : json_array(), "cpu-flags", cpu_flags(), "switches", names,
			 "memory-available-mib", (json_int_t)mem_available_mib());
}

static bool in_array(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

static void problem(json_t *list, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(json_t *list, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	utf8_clean(buf);
	json_array_append_new(list, json_string(buf));
}

static void parent_dir(const char *path, char *out, size_t len)
{
	char *slash;

	snprintf(out, len, "%s", path);
	slash = strrchr(out, '/');
	if (slash && slash != out)
		*slash = 0;
	else if (slash)
		slash[1] = 0;
}

/* A move without storage: the disk must be the very file the source uses,
 * seen here at the same path (review M2): a regular file under a storage
 * root whose fingerprint (storage.h) matches the one the source sent. */
static void same_file_check(json_t *p, struct ferryd *d, size_t i, const char *root, json_t *dsk, json_t *sz)
{
	const char *path = arg_str(dsk, "path");
	json_t *mine = NULL, *theirs = json_object_get(sz, "fingerprint");
	char why[PATH_MAX + 128];
	int fd;

	if (storage_open_existing(root, path, &fd, why, sizeof(why)) < 0) {
		problem(p, "disk %zu: %s is not visible to %s at the same path (%s); move it with --include-storage", i,
			path, d->host_name, why);
		return;
	}
	if (disk_fingerprint(fd, arg_str(dsk, "format"), &mine) < 0 || !json_equal(mine, theirs))
		problem(p, "disk %zu: %s on %s is not the file the source uses (another %s); move it with "
			   "--include-storage, or share the storage",
			i, path, d->host_name, json_object_get(mine, "header") ? "image header" : "size");
	json_decref(mine);
	close(fd);
}

/* What the VM needs here and what this host has left for it, in numbers:
 * an evacuation places several VMs from them (check_incoming, ferryd.h). */
static json_t *room_json(uint64_t needed_mib, uint64_t avail_mib, json_t *need, json_t *free_bytes,
			 int64_t max_live, int64_t max_storage)
{
	json_t *disks = json_array(), *bytes;
	const char *dir;

	json_object_foreach(need, dir, bytes)
		json_array_append_new(disks, json_pack("{s:s, s:I, s:I}", "dir", dir, "needed", json_integer_value(bytes),
						       "free", json_integer_value(json_object_get(free_bytes, dir))));
	return json_pack("{s:I, s:I, s:o, s:I, s:I}", "memory-needed-mib", (json_int_t)needed_mib,
			 "memory-available-mib", (json_int_t)avail_mib, "disks", disks, "max-migrations",
			 (json_int_t)max_live, "max-storage-migrations", (json_int_t)max_storage);
}

/* req: {"include-storage", "disks": [{"path" (here), "size" (bytes)}], "source": capabilities,
 *       "storage-path", "vm-path", "resume-tokens"} */
json_t *check_incoming(struct ferryd *d, json_t *cfg, json_t *req, json_t **ret_need, json_t **ret_room)
{
	json_t *p = json_array(), *caps = host_capabilities(d), *src = json_object_get(req, "source");
	const char *name = vmconfig_name(cfg), *id = vmconfig_id(cfg);
	bool storage = json_is_true(json_object_get(req, "include-storage"));
	json_int_t mem = json_integer_value(json_object_get(cfg, "memory-mib"));
	int version = (int)json_integer_value(json_object_get(cfg, "config-version"));
	const char *machine = vmconfig_machine_type(version), *cpu;
	const char *dirs[] = {arg_str(req, "storage-path"), arg_str(req, "vm-path")};
	json_t *need = json_object();  /* directory -> bytes the disks going there need */
	json_t *sizes = json_object_get(req, "disks"), *disks = json_object_get(cfg, "disks");
	json_t *tokens = json_object_get(req, "resume-tokens"); /* checked: peer_msg.h */
	json_t *reserved = json_object(); /* directory -> bytes planned VMs may still write */
	json_t *free_bytes = json_object(); /* directory -> bytes free there, less what is reserved */
	int64_t max_live, max_storage;
	char roots[STORAGE_ROOTS_MAX][PATH_MAX], roots_text[1024];
	uint64_t reserved_mib = 0, avail_mib;
	size_t n_roots;
	struct vm *vm;
	json_t *x;
	size_t i;

	pthread_mutex_lock(&d->lock);
	n_roots = storage_roots(d, roots, STORAGE_ROOTS_MAX);
	/* Other incoming moves hold what they were promised until they end
	 * (review M7): their memory and the disk space their copies need. The
	 * part already used counts twice, which errs on the safe side. */
	for (vm = d->vms; vm; vm = vm->next) {
		const char *dir;
		json_t *bytes;
		if (!vm->incoming)
			continue;
		reserved_mib += (uint64_t)json_integer_value(json_object_get(vm->config, "memory-mib")) + QEMU_OVERHEAD_MIB;
		json_object_foreach(json_object_get(vm->config, "_reserve-disk"), dir, bytes)
			json_object_set_new(reserved, dir, json_integer(json_integer_value(json_object_get(reserved, dir)) +
									 json_integer_value(bytes)));
	}
	max_live = settings_int(d->settings, "max-migrations");
	max_storage = settings_int(d->settings, "max-storage-migrations");
	if (!settings_bool(d->settings, "migration-enabled"))
		problem(p, "live migrations are disabled on %s: run 'ferry migration enable' there", d->host_name);
	if ((vm = vm_find(d, name)))
		problem(p, "%s already has a VM named %s", d->host_name, name);
	else if (id && (vm = vm_find_id(d, id)))
		problem(p, "%s already has a VM with id %s (%s)", d->host_name, id, vmconfig_name(vm->config));
	else if ((vm = vm_find_tap_owner(d, cfg)))
		/* tap names come from the id's first 8 hex digits (review L14) */
		problem(p, "the VM's id %s begins as that of %s on %s (%s): their network ports would share names",
			id ? id : "?", vmconfig_name(vm->config), d->host_name, vmconfig_id(vm->config));
	pthread_mutex_unlock(&d->lock);

	avail_mib = (uint64_t)json_integer_value(json_object_get(caps, "memory-available-mib"));
	avail_mib = avail_mib > reserved_mib ? avail_mib - reserved_mib : 0;
	if ((uint64_t)mem + QEMU_OVERHEAD_MIB > avail_mib)
		problem(p, "not enough memory on %s: the VM needs %lld MiB (+%d MiB for QEMU), %llu MiB available%s",
			d->host_name, (long long)mem, QEMU_OVERHEAD_MIB, (unsigned long long)avail_mib,
			reserved_mib ? " besides what incoming moves hold" : "");
	storage_roots_text(roots, n_roots, roots_text, sizeof(roots_text));
	for (size_t k = 0; k < ARRAY_SIZE(dirs); k++) {
		struct stat st;
		if (!dirs[k])
			continue;
		if (!storage_root_of(roots, n_roots, dirs[k]))
			problem(p, "%s path %s is outside the storage roots of %s (%s): choose one under them, or add it "
				   "there with 'ferry host set storage-roots DIR[:DIR...]'",
				k ? "VM" : "storage", dirs[k], d->host_name, roots_text);
		else if (stat(dirs[k], &st) < 0 || !S_ISDIR(st.st_mode))
			problem(p, "%s path %s does not exist on %s: create it first", k ? "VM" : "storage", dirs[k],
				d->host_name);
	}
	/* every file the VM names here, its kernel and initrd too, lies under a
	 * storage root: a peer never makes this host open /etc/shadow */
	for (size_t k = 0; k < 2; k++) {
		const char *key = k ? "initrd" : "kernel", *path = arg_str(cfg, key);
		const char *root = path ? storage_root_of(roots, n_roots, path) : NULL;
		char why[PATH_MAX + 128];
		int fd;
		if (!path)
			continue;
		if (!root)
			problem(p, "%s %s is outside the storage roots of %s (%s)", key, path, d->host_name, roots_text);
		else if (storage_open_existing(root, path, &fd, why, sizeof(why)) < 0)
			problem(p, "%s on %s: %s", key, d->host_name, why);
		else
			close(fd);
	}
	if (json_array_size(sizes) != json_array_size(disks))
		problem(p, "the request lists %zu disk sizes for %zu disks", json_array_size(sizes), json_array_size(disks));
	json_array_foreach(disks, i, x) {
		const char *path = arg_str(x, "path"), *root = path ? storage_root_of(roots, n_roots, path) : NULL;
		json_t *sz = json_array_get(sizes, i);
		char dir[PATH_MAX], why[PATH_MAX + 128];
		struct statvfs vfs;
		if (!root) {
			problem(p, "disk %zu: %s is outside the storage roots of %s (%s): choose --storage-path under "
				   "one, or add one there with 'ferry host set storage-roots DIR[:DIR...]'",
				i, path ? path : "(no path)", d->host_name, roots_text);
			continue;
		}
		if (storage) {
			if (!json_is_integer(json_object_get(sz, "size")) ||
			    json_integer_value(json_object_get(sz, "size")) <= 0 ||
			    !json_is_integer(json_object_get(sz, "allocated")) ||
			    json_integer_value(json_object_get(sz, "allocated")) < 0) {
				problem(p, "disk %zu: no valid size in the request", i);
				continue;
			}
			/* a copy this host kept of the VM (partial.h) is not in the way */
			if (storage_check_new(root, path, why, sizeof(why)) < 0 &&
			    !partial_holds(d, vmconfig_id(cfg), path, tokens != NULL,
					   json_string_value(json_array_get(tokens, i)))) {
				problem(p, "disk %zu on %s: %s (use --storage-path or --disk SRC=DST)", i, d->host_name, why);
				continue;
			}
			parent_dir(path, dir, sizeof(dir));
			if (statvfs(dir, &vfs) == 0) {
				uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize, need_disk;
				uint64_t held = (uint64_t)json_integer_value(json_object_get(reserved, dir));
				avail = avail > held ? avail - held : 0;
				/* the copy writes what the source image holds, not its virtual size;
				 * disks bound for the same directory share its free space */
				need_disk = (uint64_t)json_integer_value(json_object_get(need, dir)) +
					    (uint64_t)json_integer_value(json_object_get(sz, "allocated"));
				json_object_set_new(need, dir, json_integer((json_int_t)need_disk));
				json_object_set_new(free_bytes, dir, json_integer((json_int_t)avail));
				if (need_disk > avail)
					problem(p, "not enough disk space in %s on %s: %llu MiB needed, %llu MiB free%s",
						dir, d->host_name, (unsigned long long)(need_disk >> 20),
						(unsigned long long)(avail >> 20),
						held ? " besides what incoming moves hold" : "");
			}
		} else {
			same_file_check(p, d, i, root, x, sz);
		}
	}
	json_array_foreach(json_object_get(cfg, "nics"), i, x) {
		const char *sw = arg_str(x, "switch");
		if (sw && !in_array(json_object_get(caps, "switches"), sw))
			problem(p, "virtual switch '%s' does not exist on %s: create it there with 'ferry switch create %s --uplink IFACE'",
				sw, d->host_name, sw);
	}
	if (!machine || !in_array(json_object_get(caps, "machine-types"), machine))
		problem(p, "machine type %s (configuration version %d) is not available on %s", machine ? machine : "?",
			version, d->host_name);
	cpu = vmconfig_cpu_model(cfg, d->kvm);
	if (!in_array(json_object_get(caps, "cpu-models"), cpu))
		problem(p, "CPU model %s is not available on %s", cpu, d->host_name);
	if (src) {
		const char *accel = arg_str(src, "accelerator");
		if (accel && strcmp(accel, d->kvm ? "kvm" : "tcg"))
			problem(p, "the source runs the VM with %s and %s uses %s: both ends must use the same accelerator",
				accel, d->host_name, d->kvm ? "kvm" : "tcg");
		if (!json_is_true(json_object_get(cfg, "processor-compat"))) {
			json_array_foreach(json_object_get(src, "cpu-flags"), i, x) {
				if (!in_array(json_object_get(caps, "cpu-flags"), json_string_value(x))) {
					problem(p, "the hardware on %s is not compatible with the hardware requirements of this virtual machine "
						   "(its processor lacks '%s'): turn on processor compatibility while the VM is off: "
						   "ferry vm set %s --processor-compat on",
						d->host_name, json_string_value(x), name);
					break;
				}
			}
		}
	}
	json_decref(caps);
	json_decref(reserved);
	if (ret_room)
		*ret_room = room_json((uint64_t)mem + QEMU_OVERHEAD_MIB, avail_mib, need, free_bytes, max_live, max_storage);
	json_decref(free_bytes);
	if (ret_need)
		*ret_need = need;
	else
		json_decref(need);
	return p;
}

int free_tcp_port(const char *addr, int *ret_port)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int fd, r = 0;

	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			return -EINVAL;
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			return -EINVAL;
		len = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		r = -errno;
	else
		*ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);
	close(fd);
	return r;
}

/* RFC 7919 ffdhe2048. Without dh-params.pem beside keys.psk, QEMU's TLS
 * server generates fresh parameters for every move: up to seconds here. */
