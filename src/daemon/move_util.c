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
