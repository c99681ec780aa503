#include "move_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

int qmpf(struct vm *vm, char *err, size_t errlen, json_t **ret, const char *cmd, const char *fmt, ...)
{
	json_error_t jerr;
	json_t *args = NULL;
	va_list ap;
	int r;

	if (fmt) {
		va_start(ap, fmt);
		args = json_vpack_ex(&jerr, 0, fmt, ap);
		va_end(ap);
		if (!args) {
			snprintf(err, errlen, "internal error building %s: %s", cmd, jerr.text);
			return -EINVAL;
		}
	}
	r = vm_qmp(vm, cmd, args, ret, err, errlen);
	json_decref(args);
	return r;
}

int migration_tune(struct vm *vm, const char *performance, int channels, bool tls, bool source,
		   char *err, size_t errlen)
{
	bool multifd = strcmp(performance, "tcpip") != 0;
	json_t *params;
	int r;

	r = qmpf(vm, err, errlen, NULL, "migrate-set-capabilities", "{s:[{s:s, s:b}, {s:s, s:b}]}",
		 "capabilities", "capability", "multifd", "state", multifd, "capability",
		 "pause-before-switchover", "state", source);
	if (r < 0)
		return r;
	params = json_pack("{s:s}", "tls-creds", tls ? TLS_ID : "");
	if (multifd) {
		json_object_set_new(params, "multifd-channels",
				    json_integer(strcmp(performance, "multichannel") == 0 ? channels : 2));
		json_object_set_new(params, "multifd-compression",
				    json_string(strcmp(performance, "compression") == 0 ? "zstd" : "none"));
	}
	if (source)
		/* ferry does not throttle; 0 would mean the 32 MiB/s default on 7.2 */
		json_object_set_new(params, "max-bandwidth", json_integer(100LL << 30));
	r = vm_qmp(vm, "migrate-set-parameters", params, NULL, err, errlen);
	json_decref(params);
	return r;
}

int image_sizes(const char *path, const char *format, uint64_t *ret_virtual, uint64_t *ret_allocated,
		char *err, size_t errlen)
{
	/* -f: the configured format, never a probe (review L5): a guest can write
	 * a qcow2 header into its raw disk, and the probe would report the size
	 * that header claims */
	const char *const argv[] = {"qemu-img", "info", "-U", "-f", format, "--output=json", path, NULL};
	char out[16384];
	json_t *info;
	int r;

	if (!format) {
		snprintf(err, errlen, "disk %s has no format in its configuration", path);
		return -EINVAL;
	}
	r = run_cmd(argv, out, sizeof(out));
	if (r != 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, out);
		return -EIO;
	}
	info = json_loads(out, 0, NULL);
	if (!json_is_integer(json_object_get(info, "virtual-size"))) {
		snprintf(err, errlen, "qemu-img gave no size for %s", path);
		json_decref(info);
		return -EIO;
	}
	*ret_virtual = (uint64_t)json_integer_value(json_object_get(info, "virtual-size"));
	if (ret_allocated)
		*ret_allocated = (uint64_t)json_integer_value(json_object_get(info, "actual-size"));
	json_decref(info);
	return 0;
}

void migration_untune(struct vm *vm)
{
	char err[256];

	/* the parameter holds a reference: drop it before the object */
	qmpf(vm, err, sizeof(err), NULL, "migrate-set-parameters", "{s:s}", "tls-creds", "");
	qmpf(vm, err, sizeof(err), NULL, "object-del", "{s:s}", "id", TLS_ID);
}

int moving_marker(const char *rundir, const char *dest, bool finish_sent)
{
	char path[PATH_MAX + 16], *text;
	json_t *o;
	int r;

	snprintf(path, sizeof(path), "%s/moving.json", rundir);
	if (!dest) {
		if (unlink(path) < 0 && errno != ENOENT) {
			r = -errno;
			/* harmless: recovery would only cancel a migration that is not there */
			log_warn("cannot remove %s: %s", path, strerror(errno));
			return r;
		}
		return 0;
	}
	o = json_pack("{s:s, s:b}", "dest", dest, "finish-sent", finish_sent);
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text)
		return -ENOMEM;
	r = write_file_atomic(path, text, strlen(text), 0600);
	free(text);
	return r;
}

void json_wipe_string(json_t *obj, const char *key)
{
	json_t *s = json_object_get(obj, key);

	/* jansson's own copy: writable, though handed out as const */
	if (json_is_string(s))
		explicit_bzero((char *)json_string_value(s), json_string_length(s));
}

int psk_dirs_remove(const char *rundir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *dir;
	int r = 0;

	if (!(dir = opendir(rundir)))
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(dir))) {
		if (strncmp(e->d_name, "tls-", 4) != 0 || e->d_type != DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", rundir, e->d_name);
		if (remove_tree(path) < 0 && r == 0)
			r = -EIO;
	}
	closedir(dir);
	return r;
}
