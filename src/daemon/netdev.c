/* Virtual switches are Linux bridges marked with the alias "ferry-switch";
 * a VM NIC is a persistent tap on one. Driven through ip(8). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferryd.h"
#include "log.h"
#include "util.h"
#include "vmconfig.h"

#define SWITCH_ALIAS "ferry-switch"
#define IFNAME_MAX 15

static bool iface_exists(const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "/sys/class/net/%s", name);
	return path_exists(p);
}

static bool iface_is_bridge(const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "/sys/class/net/%s/bridge", name);
	return path_exists(p);
}

static bool iface_is_tap(const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "/sys/class/net/%s/tun_flags", name);
	return path_exists(p);
}

static bool is_ferry_switch(const char *name)
{
	char p[PATH_MAX], *buf = NULL;
	size_t len;
	bool ok;

	if (!iface_is_bridge(name))
		return false;
	snprintf(p, sizeof(p), "/sys/class/net/%s/ifalias", name);
	if (read_file(p, 256, &buf, &len) < 0)
		return false;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = 0;
	ok = strcmp(buf, SWITCH_ALIAS) == 0;
	free(buf);
	return ok;
}

/* Runs ip(8); on failure err gets "what: ip's message". */
static int ip(char *err, size_t errlen, const char *what, const char *const argv[])
{
	char out[512];
	int r = run_cmd(argv, out, sizeof(out));

	if (r == 0)
		return 0;
	if (err)
		snprintf(err, errlen, "%s: %s", what, r < 0 ? strerror(-r) : out[0] ? out : "ip failed");
	return r < 0 ? r : -EIO;
}

bool switch_exists(const char *name)
{
	return name_is_valid(name, IFNAME_MAX) && is_ferry_switch(name);
}

/* A switch carries VM traffic only; the host is not on it (Hyper-V: "allow the
 * management OS to share this adapter" off). Without this the host answers ARP
 * for its own addresses through the bridge too, and a neighbour that learns the
 * bridge's MAC sends traffic that reverse-path filtering then drops. */
static void bridge_no_host_stack(const char *name)
{
	static const char *const knobs[][2] = {
		{"/proc/sys/net/ipv4/conf/%s/arp_ignore", "8"},
		{"/proc/sys/net/ipv6/conf/%s/disable_ipv6", "1"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(knobs); i++) {
		char path[PATH_MAX];
		int fd;
		snprintf(path, sizeof(path), knobs[i][0], name);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, knobs[i][1], 1) != 1)
			log_warn("switch %s: cannot set %s: %s", name, path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
}

int switch_create(const char *name, const char *uplink, char *err, size_t errlen)
{
	char p[PATH_MAX], w[128];
	int r;

	if (!name_is_valid(name, IFNAME_MAX)) {
		snprintf(err, errlen, "'%s' is not a valid switch name: 1-%d letters, digits, '-', '_' or '.'",
			 name ? name : "", IFNAME_MAX);
		return -EINVAL;
	}
	if (iface_exists(name)) {
		snprintf(err, errlen, "%s '%s' already exists on this host",
			 is_ferry_switch(name) ? "virtual switch" : "a network interface named", name);
		return -EEXIST;
	}
	if (uplink) {
		if (!name_is_valid(uplink, IFNAME_MAX) || !iface_exists(uplink)) {
			snprintf(err, errlen, "uplink '%s' is not a network interface on this host", uplink);
			return -ENODEV;
		}
		snprintf(p, sizeof(p), "/sys/class/net/%s/master", uplink);
		if (path_exists(p)) {
			char target[PATH_MAX];
			ssize_t n = readlink(p, target, sizeof(target) - 1);
			target[n > 0 ? n : 0] = 0;
			snprintf(err, errlen, "uplink '%s' is already attached to '%s'", uplink,
				 n > 0 ? strrchr(target, '/') + 1 : "another device");
			return -EBUSY;
		}
		if (iface_is_bridge(uplink)) {
			snprintf(err, errlen, "uplink '%s' is itself a bridge; use a physical or virtual NIC", uplink);
			return -EINVAL;
		}
	}
	r = ip(err, errlen, "creating the bridge", (const char *const[]){"ip", "link", "add", name, "type", "bridge", NULL});
	if (r < 0)
		return r;
	r = ip(err, errlen, "marking the bridge", (const char *const[]){"ip", "link", "set", name, "alias", SWITCH_ALIAS, NULL});
	if (r < 0)
		goto undo;
	bridge_no_host_stack(name);
	r = ip(err, errlen, "bringing the bridge up", (const char *const[]){"ip", "link", "set", name, "up", NULL});
	if (r < 0)
		goto undo;
	if (uplink) {
		snprintf(w, sizeof(w), "attaching uplink %s", uplink);
		r = ip(err, errlen, w, (const char *const[]){"ip", "link", "set", uplink, "master", name, NULL});
		if (r < 0)
			goto undo;
		r = ip(err, errlen, w, (const char *const[]){"ip", "link", "set", uplink, "up", NULL});
		if (r < 0)
			goto undo;
	}
	log_info("virtual switch %s created%s%s", name, uplink ? " with uplink " : "", uplink ? uplink : "");
	return 0;
undo:
	run_cmd((const char *const[]){"ip", "link", "del", name, NULL}, NULL, 0);
	return r;
}

/* Ports of a bridge: taps into taps (array of names), the rest into ret_uplink. */
static void bridge_ports(const char *name, json_t *taps, json_t **ret_uplink)
{
	char p[PATH_MAX];
	struct dirent *de;
	DIR *dir;

	snprintf(p, sizeof(p), "/sys/class/net/%s/brif", name);
	dir = opendir(p);
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (iface_is_tap(de->d_name))
			json_array_append_new(taps, json_string(de->d_name));
		else if (ret_uplink && !*ret_uplink)
			*ret_uplink = json_string(de->d_name);
	}
	closedir(dir);
}

int switch_delete(const char *name, char *err, size_t errlen)
{
	json_t *taps;
	int r;

	if (!name_is_valid(name, IFNAME_MAX) || !iface_exists(name)) {
		snprintf(err, errlen, "virtual switch '%s' does not exist on this host", name ? name : "");
		return -ENOENT;
	}
	if (!is_ferry_switch(name)) {
		snprintf(err, errlen, "'%s' is a network interface ferry did not create; it is left alone", name);
		return -EPERM;
	}
	taps = json_array();
	bridge_ports(name, taps, NULL);
	if (json_array_size(taps) > 0) {
		char list[256] = "";
		size_t i, n = 0;
		json_t *t;
		json_array_foreach(taps, i, t)
			if (n < sizeof(list))
				n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "",
						      json_string_value(t));
		snprintf(err, errlen, "virtual switch '%s' is in use by running VMs (taps %s): stop them first",
			 name, list);
		json_decref(taps);
		return -EBUSY;
	}
	json_decref(taps);
	r = ip(err, errlen, "deleting the bridge", (const char *const[]){"ip", "link", "del", name, NULL});
	if (r == 0)
		log_info("virtual switch %s deleted", name);
	return r;
}

json_t *switch_list(void)
{
	json_t *list = json_array();
	struct dirent *de;
	DIR *dir = opendir("/sys/class/net");

	if (!dir)
		return list;
	while ((de = readdir(dir))) {
		json_t *taps, *uplink = NULL;
		if (de->d_name[0] == '.' || !is_ferry_switch(de->d_name))
			continue;
		taps = json_array();
		bridge_ports(de->d_name, taps, &uplink);
		json_array_append_new(list, json_pack("{s:s, s:o, s:o}", "name", de->d_name, "uplink",
						      uplink ? uplink : json_null(), "ports", taps));
	}
	closedir(dir);
	return list;
}

void tap_name(json_t *config, size_t index, char out[16])
{
	const char *id = vmconfig_id(config);
	char hex[9] = "00000000";
	size_t n = 0;

	for (const char *p = id ? id : ""; *p && n < 8; p++)
		if (*p != '-')
			hex[n++] = *p;
	snprintf(out, 16, "fy%.8s%zu", hex, index % 100);
}

struct vm *vm_find_tap_owner(struct ferryd *d, json_t *config)
{
	char mine[16], theirs[16];

	tap_name(config, 0, mine);
	for (struct vm *vm = d->vms; vm; vm = vm->next) {
		tap_name(vm->config, 0, theirs);
		if (strcmp(mine, theirs) == 0)
			return vm;
	}
	return NULL;
}

void tap_delete(const char *tap)
{
	if (iface_exists(tap))
		run_cmd((const char *const[]){"ip", "link", "del", tap, NULL}, NULL, 0);
}

int tap_open(const char *tap, int *ret)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret = fd;
	return 0;
}

int tap_create(const char *tap, const char *bridge, char *err, size_t errlen)
{
	int r;

	tap_delete(tap); /* a leftover from a crash */
	r = ip(err, errlen, "creating the tap", (const char *const[]){"ip", "tuntap", "add", "dev", tap, "mode", "tap", NULL});
	if (r < 0)
		return r;
	r = ip(err, errlen, "attaching the tap", (const char *const[]){"ip", "link", "set", tap, "master", bridge, NULL});
	if (r == 0)
		r = ip(err, errlen, "bringing the tap up", (const char *const[]){"ip", "link", "set", tap, "up", NULL});
	if (r < 0)
		tap_delete(tap);
	return r;
}
