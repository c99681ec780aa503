/* Partial disk copies kept at the destination (partial.h). */
#include "partial.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "settings.h"
#include "storage.h"
#include "util.h"
#include "vmconfig.h"

static void record_path(struct ferryd *d, const char *vm_id, char *out, size_t len)
{
	snprintf(out, len, "%s/partials/%s.json", d->state_dir, vm_id);
}

int64_t partial_retention_s(struct ferryd *d)
{
	int64_t s;

	pthread_mutex_lock(&d->lock);
	s = settings_int(d->settings, "partial-copy-retention");
	pthread_mutex_unlock(&d->lock);
	return s;
}

void partial_new_token(char out[PARTIAL_TOKEN_HEX + 1])
{
	uint8_t raw[PARTIAL_TOKEN_HEX / 2];

	random_bytes(raw, sizeof(raw));
	hex_encode(raw, sizeof(raw), out);
}

static const char *const kind_names[] = {[PARTIAL_COPY] = "partial-copy", [PARTIAL_SOURCE_DISKS] = "source-disks"};

static bool is_source_disks(const json_t *rec)
{
	return !strcmp(json_string_value(json_object_get(rec, "kind")) ?: "", kind_names[PARTIAL_SOURCE_DISKS]);
}

int partial_keep(struct ferryd *d, enum partial_kind kind, const char *vm_id, const char *vm_name, const char *source,
		 const char *token, const json_t *created, int64_t retention_s)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];
	json_t *rec;
	int r;

	if (!name_is_valid(vm_id, 64))
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%s/partials", d->state_dir);
	if ((r = mkdir_p(dir, 0700)) < 0)
		return r;
	record_path(d, vm_id, path, sizeof(path));
	rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:O}", "kind", kind_names[kind], "id", vm_id, "name", vm_name,
			"source", source, "token", token, "expires-ms", (json_int_t)(realtime_ms() + retention_s * 1000),
			"disks", created);
	r = rec ? write_json_atomic(path, rec, JSON_COMPACT, 0600) : -ENOMEM;
	json_decref(rec);
	return r;
}

/* The record goes, and a partial copy's files; source disks stay. */
static void drop(const char *record, json_t *rec)
{
	json_t *f;
	size_t i;

	if (!is_source_disks(rec))
		json_array_foreach(json_object_get(rec, "disks"), i, f)
			created_file_unlink(f);
	unlink(record);
}

/* Whether another VM of this host (not vm_id's planned copy) has a disk at
 * path: its file is not a copy to write into, whatever a record says. */
static bool used_here(struct ferryd *d, const char *vm_id, const char *path)
{
	struct vm *vm;
	json_t *dsk;
	size_t i;
	bool used = false;

	pthread_mutex_lock(&d->lock);
	for (vm = d->vms; vm && !used; vm = vm->next)
		if (strcmp(vmconfig_id(vm->config) ?: "", vm_id) != 0)
			json_array_foreach(json_object_get(vm->config, "disks"), i, dsk)
				used |= !strcmp(json_string_value(json_object_get(dsk, "path")) ?: "", path);
	pthread_mutex_unlock(&d->lock);
	return used;
}

/* Whether rec is a record in force: not past its time, with its files. */
static bool live(const json_t *rec)
{
	return json_integer_value(json_object_get(rec, "expires-ms")) >= realtime_ms() &&
	       json_is_array(json_object_get(rec, "disks"));
}

/* The record, or NULL; one past its time is deleted with its files. */
static json_t *load(const char *path)
{
	json_t *rec = json_load_file(path, 0, NULL);

	if (!rec)
		return NULL;
	if (!live(rec)) {
		if (is_source_disks(rec))
			log_info("the disks VM %s left here when it moved to %s are no longer offered for its move back "
				 "(partial-copy-retention): they stay", json_string_value(json_object_get(rec, "name")),
				 json_string_value(json_object_get(rec, "source")));
		else
			log_info("partial copy of VM %s from %s expired: deleted",
				 json_string_value(json_object_get(rec, "name")),
				 json_string_value(json_object_get(rec, "source")));
		drop(path, rec);
		json_decref(rec);
		return NULL;
	}
	return rec;
}

/* Per path, whether rec's file there is one a move from source with tokens
 * may build on (partial.h, partial_claim): a new array of booleans. Reads
 * only. */
static json_t *match(struct ferryd *d, const json_t *rec, const char *vm_id, const char *source, const json_t *tokens,
		     const json_t *paths)
{
	const json_t *disks = json_object_get(rec, "disks");
	const char *token = json_string_value(json_object_get(rec, "token"));
	const char *from = json_string_value(json_object_get(rec, "source"));
	/* source disks are for whoever moves the VM back, under the token the
	 * host it went to holds; a partial copy only for the same caller */
	bool own = !is_source_disks(rec);
	json_t *reuse = json_array();
	size_t i;

	for (i = 0; i < json_array_size(paths); i++) {
		const json_t *f = json_array_get(disks, i);
		const char *want = json_string_value(json_array_get(paths, i));
		const char *tok = json_string_value(json_array_get(tokens, i));
		bool ok = f && want && tok && token && from && (!own || !strcmp(from, source ?: "")) &&
			  !strcmp(tok, token) && !strcmp(want, json_string_value(json_object_get(f, "path")) ?: "") &&
			  !used_here(d, vm_id, want);
		if (ok) {
			struct stat st;
			ok = stat(want, &st) == 0 && S_ISREG(st.st_mode) &&
			     st.st_ino == (ino_t)json_integer_value(json_object_get(f, "ino")) &&
			     st.st_dev == (dev_t)json_integer_value(json_object_get(f, "dev"));
		}
		json_array_append_new(reuse, json_boolean(ok));
	}
	return reuse;
}

json_t *partial_reusable(struct ferryd *d, const char *vm_id, const char *source, const json_t *tokens,
			 const json_t *paths)
{
	char path[PATH_MAX + 64];
	json_t *rec = NULL, *reuse;
	size_t i;

	if (name_is_valid(vm_id, 64)) {
		record_path(d, vm_id, path, sizeof(path));
		rec = json_load_file(path, 0, NULL);
	}
	if (rec && live(rec))
		reuse = match(d, rec, vm_id, source, tokens, paths);
	else
		for (reuse = json_array(), i = 0; i < json_array_size(paths); i++)
			json_array_append_new(reuse, json_false());
	json_decref(rec);
	return reuse;
}

json_t *partial_claim(struct ferryd *d, const char *vm_id, const char *source, const json_t *tokens,
		      const json_t *paths, json_t **ret_created)
{
	char path[PATH_MAX + 64];
	json_t *rec, *reuse, *disks, *created, *b;
	bool any = false;
	size_t i;

	*ret_created = NULL;
	if (!name_is_valid(vm_id, 64))
		return NULL;
	record_path(d, vm_id, path, sizeof(path));
	if (!(rec = load(path)))
		return NULL;
	disks = json_object_get(rec, "disks");
	reuse = match(d, rec, vm_id, source, tokens, paths);
	created = json_array();
	json_array_foreach(reuse, i, b) {
		json_array_append(created, json_is_true(b) ? json_array_get(disks, i) : json_null());
		any |= json_is_true(b);
	}
	/* a partial copy not reused goes now: the new move makes its own files */
	for (i = 0; !is_source_disks(rec) && i < json_array_size(disks); i++)
		if (!json_is_true(json_array_get(reuse, i)))
			created_file_unlink(json_array_get(disks, i));
	unlink(path);
	json_decref(rec);
	if (!any) {
		json_decref(reuse);
		json_decref(created);
		return NULL;
	}
	*ret_created = created;
	return reuse;
}

bool partial_holds(struct ferryd *d, const char *vm_id, const char *path, bool tokens_known, const char *token)
{
	char rec_path[PATH_MAX + 64];
	json_t *rec, *f;
	bool found = false;
	size_t i;

	if (!name_is_valid(vm_id, 64))
		return false;
	record_path(d, vm_id, rec_path, sizeof(rec_path));
	if (!(rec = load(rec_path)))
		return false;
	json_array_foreach(json_object_get(rec, "disks"), i, f)
		found |= !strcmp(json_string_value(json_object_get(f, "path")) ?: "", path);
	if (found && is_source_disks(rec) && tokens_known)
		found = token && !strcmp(token, json_string_value(json_object_get(rec, "token")) ?: "");
	json_decref(rec);
	return found && !used_here(d, vm_id, path);
}

void partial_forget(struct ferryd *d, const char *vm_id)
{
	char path[PATH_MAX + 64];

	if (!name_is_valid(vm_id, 64))
		return;
	record_path(d, vm_id, path, sizeof(path));
	unlink(path);
}

void partial_sweep(struct ferryd *d)
{
	char dir[PATH_MAX], path[PATH_MAX + 300];
	struct dirent *de;
	DIR *dh;

	snprintf(dir, sizeof(dir), "%s/partials", d->state_dir);
	if (!(dh = opendir(dir)))
		return;
	while ((de = readdir(dh))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		json_decref(load(path));
	}
	closedir(dh);
}
