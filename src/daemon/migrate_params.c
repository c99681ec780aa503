/* Migration capabilities and parameters from the table of performance
 * options (migrate_params.h), and the one-time key's directory. */
#include "migrate_params.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stall_ladder.h"
#include "util.h"
#include "vm_qmp.h"

static const struct perf_option table[] = {
	/* name           multifd  channels               compression */
	{"tcpip",         false,   0,                     "none"},
	{"compression",   true,    2,                     "zstd"},
	{"multichannel",  true,    PERF_CHANNELS_SETTING, "none"},
};

const struct perf_option *perf_options(size_t *ret_count)
{
	*ret_count = ARRAY_SIZE(table);
	return table;
}

const struct perf_option *perf_option_find(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(table); i++)
		if (!strcmp(table[i].name, name))
			return &table[i];
	return NULL;
}

/* Is every member of want in have, with the same value? The first that is
 * not goes to err. */
static bool all_taken(json_t *want, json_t *have, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach(want, key, v) {
		json_t *h = json_object_get(have, key);
		if (!json_equal(v, h)) {
			char *a = json_dumps(v, JSON_ENCODE_ANY), *b = h ? json_dumps(h, JSON_ENCODE_ANY) : NULL;
			snprintf(err, errlen, "QEMU did not take the migration setting %s (asked %s, has %s)", key,
				 a ? a : "?", b ? b : "nothing");
			free(a);
			free(b);
			return false;
		}
	}
	return true;
}

int migration_tune(struct vm *vm, const struct migration_tuning *t, char *err, size_t errlen)
{
	const struct perf_option *p = perf_option_find(t->performance);
	json_t *caps = NULL, *params = NULL, *have = NULL, *list = NULL, *c;
	size_t i;
	int r;

	if (!p) {
		snprintf(err, errlen, "unknown performance option %s", t->performance ? t->performance : "(none)");
		return -EINVAL;
	}
	caps = json_pack("{s:b, s:b}", "multifd", p->multifd, "pause-before-switchover", t->source);
	params = json_pack("{s:s}", "tls-creds", t->tls ? TLS_ID : "");
	if (p->multifd) {
		json_object_set_new(params, "multifd-channels",
				    json_integer(p->channels == PERF_CHANNELS_SETTING ? t->channels : p->channels));
		json_object_set_new(params, "multifd-compression", json_string(p->compression));
	}
	if (t->source) {
		/* ferry does not throttle; 0 would mean the 32 MiB/s default on 7.2 */
		json_object_set_new(params, "max-bandwidth", json_integer(100LL << 30));
		json_object_set_new(params, "downtime-limit", json_integer(t->downtime_ms));
		/* the stall ladder's throttle rung wakes it (stall_ladder.c);
		 * otherwise off: the migration before may have left it on */
		json_object_set_new(caps, "auto-converge", json_boolean(t->arm_throttle));
		if (t->arm_throttle) {
			json_object_set_new(params, "cpu-throttle-initial", json_integer(LADDER_THROTTLE_DORMANT));
			json_object_set_new(params, "cpu-throttle-increment", json_integer(LADDER_THROTTLE_DORMANT));
			json_object_set_new(params, "max-cpu-throttle", json_integer(LADDER_THROTTLE_DORMANT));
		}
	}
	/* set ... */
	list = json_array();
	{
		const char *name;
		json_object_foreach(caps, name, c)
			json_array_append_new(list, json_pack("{s:s, s:O}", "capability", name, "state", c));
	}
	if ((r = qmpf(vm, err, errlen, NULL, "migrate-set-capabilities", "{s:O}", "capabilities", list)) < 0 ||
	    (r = vm_qmp(vm, "migrate-set-parameters", params, NULL, err, errlen)) < 0)
		goto out;
	/* ... and read back, the same way for every row */
	if ((r = vm_qmp(vm, "query-migrate-capabilities", NULL, &have, err, errlen)) < 0)
		goto out;
	{
		json_t *states = json_object();
		json_array_foreach(have, i, c)
			if (json_string_value(json_object_get(c, "capability")))
				json_object_set(states, json_string_value(json_object_get(c, "capability")),
						json_object_get(c, "state"));
		r = all_taken(caps, states, err, errlen) ? 0 : -EPROTO;
		json_decref(states);
	}
	json_decref(have);
	have = NULL;
	if (r < 0 || (r = vm_qmp(vm, "query-migrate-parameters", NULL, &have, err, errlen)) < 0)
		goto out;
	r = all_taken(params, have, err, errlen) ? 0 : -EPROTO;
out:
	json_decref(list);
	json_decref(caps);
	json_decref(params);
	json_decref(have);
	return r;
}

void migration_untune(struct vm *vm)
{
	char err[256];

	/* the parameter holds a reference: drop it before the object */
	qmpf(vm, err, sizeof(err), NULL, "migrate-set-parameters", "{s:s}", "tls-creds", "");
	qmpf(vm, err, sizeof(err), NULL, "object-del", "{s:s}", "id", TLS_ID);
}

static const char ffdhe2048_pem[] =
	"-----BEGIN DH PARAMETERS-----\n"
	"MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz\n"
	"+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a\n"
	"87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7\n"
	"YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi\n"
	"7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD\n"
	"ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==\n"
	"-----END DH PARAMETERS-----\n";

int psk_dir_write(const char *dir, const char *identity, const char *hexkey, gid_t gid)
{
	char path[PATH_MAX], line[256];
	mode_t mode = gid == (gid_t)-1 ? 0600 : 0640;
	int r;

	r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	/* root owns it; QEMU's group reads it, nobody else */
	if (gid != (gid_t)-1 && (chown(dir, 0, gid) < 0 || chmod(dir, 0750) < 0))
		return -errno;
	snprintf(path, sizeof(path), "%s/dh-params.pem", dir);
	r = write_file_atomic(path, ffdhe2048_pem, strlen(ffdhe2048_pem), mode);
	if (r == 0 && gid != (gid_t)-1 && chown(path, 0, gid) < 0)
		r = -errno;
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/keys.psk", dir);
	snprintf(line, sizeof(line), "%s:%s\n", identity, hexkey);
	r = write_file_atomic(path, line, strlen(line), mode);
	explicit_bzero(line, sizeof(line));
	if (r == 0 && gid != (gid_t)-1 && chown(path, 0, gid) < 0)
		r = -errno;
	return r;
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

void json_wipe_string(json_t *obj, const char *key)
{
	json_t *s = json_object_get(obj, key);

	/* jansson's own copy: writable, though handed out as const */
	if (json_is_string(s))
		explicit_bzero((char *)json_string_value(s), json_string_length(s));
}
