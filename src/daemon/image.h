/* Disk images: every qemu-img call of ferryd, each with -f and the format
 * the VM's configuration names. The format of a file is never probed: a
 * guest can write a qcow2 header into its raw disk (review L5). */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* qemu-img create -f format path bytes (the file may exist, empty: created
 * beforehand O_EXCL by the caller). 0 or -EIO with err. */
int image_create(const char *path, const char *format, uint64_t bytes, char *err, size_t errlen);
/* Size the guest sees, and the space the image takes on disk (sparse files,
 * qcow2: only what was written), which is what a copy needs. */
int image_sizes(const char *path, const char *format, uint64_t *ret_virtual, uint64_t *ret_allocated,
		char *err, size_t errlen);
/* The file is an image of that format: qemu-img opens it as such, and a
 * "raw" one does not start with a qcow2 header (which the administrator
 * more likely meant as qcow2). -EINVAL with err naming the fix. */
int image_check_format(const char *path, const char *format, char *err, size_t errlen);
