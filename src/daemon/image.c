/* Disk images through qemu-img, always with -f (image.h). */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define INFO_MAX (64 * 1024)

static int need_format(const char *path, const char *format, char *err, size_t errlen)
{
	if (format && (!strcmp(format, "qcow2") || !strcmp(format, "raw")))
		return 0;
	snprintf(err, errlen, "disk %s: format %s is not qcow2 or raw", path, format ? format : "(none)");
	return -EINVAL;
}

int image_create(const char *path, const char *format, uint64_t bytes, char *err, size_t errlen)
{
	char size[32], out[1024];
	const char *const argv[] = {"qemu-img", "create", "-q", "-f", format, path, size, NULL};
	int r;

	if ((r = need_format(path, format, err, errlen)) < 0)
		return r;
	snprintf(size, sizeof(size), "%" PRIu64, bytes);
	r = run_cmd(argv, out, sizeof(out));
	if (r != 0) {
		snprintf(err, errlen, "cannot create disk %s: %s", path, r < 0 ? strerror(-r) : out);
		return -EIO;
	}
	return 0;
}

/* qemu-img info -U -f format --output=json path, parsed. */
static int image_info(const char *path, const char *format, json_t **ret, char *err, size_t errlen)
{
	const char *const argv[] = {"qemu-img", "info", "-U", "-f", format, "--output=json", path, NULL};
	char *out;
	int r;

	if ((r = need_format(path, format, err, errlen)) < 0)
		return r;
	if (!(out = malloc(INFO_MAX)))
		return -ENOMEM;
	r = run_cmd(argv, out, INFO_MAX);
	if (r != 0) {
		snprintf(err, errlen, "cannot read disk %s as %s: %s", path, format, r < 0 ? strerror(-r) : out);
		free(out);
		return -EIO;
	}
	*ret = json_loads(out, 0, NULL);
	free(out);
	if (!*ret) {
		snprintf(err, errlen, "qemu-img info gave no answer for %s", path);
		return -EIO;
	}
	return 0;
}

int image_sizes(const char *path, const char *format, uint64_t *ret_virtual, uint64_t *ret_allocated,
		char *err, size_t errlen)
{
	json_t *info = NULL;
	int r;

	if ((r = image_info(path, format, &info, err, errlen)) < 0)
		return r;
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

int image_check_format(const char *path, const char *format, char *err, size_t errlen)
{
	static const unsigned char qcow2_magic[4] = {'Q', 'F', 'I', 0xfb};
	unsigned char head[4];
	json_t *info = NULL;
	ssize_t n = 0;
	int fd, r;

	if ((r = image_info(path, format, &info, err, errlen)) < 0) {
		if (r == -EIO && !strcmp(format, "qcow2"))
			snprintf(err, errlen, "disk %s is not a qcow2 image: give format=raw, or convert it with "
					      "qemu-img convert -O qcow2", path);
		return r == -EIO ? -EINVAL : r;
	}
	json_decref(info);
	if (strcmp(format, "raw") != 0)
		return 0;
	/* raw opens anything: read the magic ourselves, outside qemu-img */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		n = read(fd, head, sizeof(head));
		close(fd);
	}
	if (n == (ssize_t)sizeof(head) && !memcmp(head, qcow2_magic, sizeof(head))) {
		snprintf(err, errlen, "disk %s is a qcow2 image, not raw: give format=qcow2", path);
		return -EINVAL;
	}
	return 0;
}
