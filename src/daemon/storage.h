/* Storage roots: the only places a peer may make this host create or open a
 * file (storage.c). */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ferryd.h"

#define STORAGE_ROOTS_MAX 16

/* A file as it was created: deleted later only if it is still that file. */
struct file_id {
	dev_t dev;
	ino_t ino;
};

/* The roots in force: the setting storage-roots (':'-separated), or
 * STATE_DIR/disks when it is empty. Caller holds d->lock. */
size_t storage_roots(struct ferryd *d, char roots[][PATH_MAX], size_t max);
/* The root that path (clean: util.h path_is_clean) lies under, else NULL. */
const char *storage_root_of(char roots[][PATH_MAX], size_t n, const char *path);
/* "a, b" for messages. */
void storage_roots_text(char roots[][PATH_MAX], size_t n, char *out, size_t len);

/* A file may be created at path (under root): every directory below root
 * exists and is not a symbolic link, and nothing is at path. 0 or -errno
 * with err. */
int storage_check_new(const char *root, const char *path, char *err, size_t errlen);
/* Creates an empty file at path (mode 0600; O_EXCL, O_NOFOLLOW, directories
 * below root opened without following links) and returns its identity. */
int storage_create(const char *root, const char *path, struct file_id *ret, char *err, size_t errlen);
/* Opens an existing regular file at path under root, read-only, following
 * no symbolic link below root; block devices and the like are refused. */
int storage_open_existing(const char *root, const char *path, int *ret_fd, char *err, size_t errlen);
/* Unlinks path only if it is still the file id names; true if it did. */
bool storage_unlink_created(const char *path, const struct file_id *id);

/* What shows that two hosts see the same disk file (a move without storage):
 * {"header": hex of the first 64 bytes} for qcow2, {"file-size": N} for raw. */
int disk_fingerprint(int fd, const char *format, json_t **ret);
/* The same for a record {"path", "dev", "ino"} (planned.json, "_created-disks"). */
bool created_file_unlink(const json_t *f);
