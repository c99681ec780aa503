/* Files a peer may make this host create or open: only under its storage
 * roots, named by clean paths, reached without following a symbolic link
 * below the root, and created only where nothing was (review H2, M2). */
#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "settings.h"
#include "util.h"

size_t storage_roots(struct ferryd *d, char roots[][PATH_MAX], size_t max)
{
	const char *s = settings_str(d->settings, "storage-roots");
	size_t n = 0;

	while (*s && n < max) {
		size_t len = strcspn(s, ":");
		if (len > 0 && len < PATH_MAX) {
			memcpy(roots[n], s, len);
			roots[n++][len] = 0;
		}
		s += len + (s[len] == ':');
	}
	if (n == 0 && max > 0)
		snprintf(roots[n++], PATH_MAX, "%s/disks", d->state_dir);
	return n;
}

const char *storage_root_of(char roots[][PATH_MAX], size_t n, const char *path)
{
	if (!path_is_clean(path))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(roots[i]);
		if (strncmp(path, roots[i], len) == 0 && (path[len] == '/' || path[len] == 0 || len == 1))
			return roots[i];
	}
	return NULL;
}

void storage_roots_text(char roots[][PATH_MAX], size_t n, char *out, size_t len)
{
	size_t k = 0;

	out[0] = 0;
	for (size_t i = 0; i < n && k < len; i++)
		k += (size_t)snprintf(out + k, len - k, "%s%s", i ? ", " : "", roots[i]);
}

/* Opens the directory that holds path (below root), component by component,
 * never following a symbolic link; *ret_name points at the last component. */
static int open_parent(const char *root, const char *path, int *ret_dirfd, const char **ret_name)
{
	char buf[PATH_MAX];
	const char *rel = path + strlen(root);
	char *p, *slash;
	int dfd, next;

	if (*rel == '/')
		rel++;
	if (!*rel || strlen(rel) >= sizeof(buf))
		return -EINVAL;
	dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	snprintf(buf, sizeof(buf), "%s", rel);
	for (p = buf; (slash = strchr(p, '/')); p = slash + 1) {
		*slash = 0;
		next = openat(dfd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(dfd);
		if (next < 0)
			return errno == ELOOP ? -ELOOP : -errno;
		dfd = next;
	}
	*ret_dirfd = dfd;
	*ret_name = path + strlen(path) - strlen(p);
	return 0;
}

/* err = "PATH: why", in the words the refusals use. */
static int explain(int r, const char *path, char *err, size_t errlen)
{
	const char *why = r == -EEXIST	 ? "already exists; ferry will not overwrite it"
			  : r == -ELOOP	 ? "a symbolic link (not followed)"
			  : r == -ENOTDIR ? "a directory on the way is a symbolic link or not a directory"
			  : r == -ENOENT ? "its directory does not exist"
					 : strerror(-r);

	snprintf(err, errlen, "%s: %s", path, why);
	return r;
}

/* Opens path below root: the directories by open_parent, the file itself
 * with flags | O_NOFOLLOW. */
static int open_below(const char *root, const char *path, int flags, mode_t mode, int *ret_fd, char *err,
		      size_t errlen)
{
	const char *name;
	int dfd, fd, r;

	if ((r = open_parent(root, path, &dfd, &name)) < 0)
		return explain(r == -ELOOP ? -ENOTDIR : r, path, err, errlen);
	fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	r = fd < 0 ? -errno : 0;
	close(dfd);
	if (r < 0)
		return explain(r, path, err, errlen);
	*ret_fd = fd;
	return 0;
}

int storage_check_new(const char *root, const char *path, char *err, size_t errlen)
{
	const char *name;
	struct stat st;
	int dfd, r;

	if ((r = open_parent(root, path, &dfd, &name)) < 0)
		return explain(r == -ELOOP ? -ENOTDIR : r, path, err, errlen);
	r = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? -EEXIST : (errno == ENOENT ? 0 : -errno);
	close(dfd);
	return r < 0 ? explain(r, path, err, errlen) : 0;
}

int storage_create(const char *root, const char *path, struct file_id *ret, char *err, size_t errlen)
{
	struct stat st;
	int fd, r;

	if ((r = open_below(root, path, O_WRONLY | O_CREAT | O_EXCL, 0600, &fd, err, errlen)) < 0)
		return r;
	r = fstat(fd, &st) < 0 ? -errno : 0;
	close(fd);
	if (r < 0) {
		unlink(path);
		return explain(r, path, err, errlen);
	}
	*ret = (struct file_id){.dev = st.st_dev, .ino = st.st_ino};
	return 0;
}

int storage_open_existing(const char *root, const char *path, int *ret_fd, char *err, size_t errlen)
{
	struct stat st;
	int fd, r;

	if ((r = open_below(root, path, O_RDONLY | O_NONBLOCK, 0, &fd, err, errlen)) < 0)
		return r;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s is not a regular file (block devices and other files are refused)", path);
		return -EINVAL;
	}
	*ret_fd = fd;
	return 0;
}

bool storage_unlink_created(const char *path, const struct file_id *id)
{
	struct stat st;

	if (!path || id->ino == 0 || lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_dev != id->dev ||
	    st.st_ino != id->ino)
		return false;
	return unlink(path) == 0;
}

int disk_fingerprint(int fd, const char *format, json_t **ret)
{
	unsigned char head[64];
	char hex[2 * sizeof(head) + 1];
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return -errno;
	n = pread(fd, head, sizeof(head), 0);
	if (n < 0)
		return -errno;
	/* a qcow2 header (magic, version, backing file, virtual size...) does
	 * not change while the guest writes; the first sector of a raw disk may,
	 * but a raw file never changes its length */
	if (format && !strcmp(format, "qcow2")) {
		hex_encode(head, (size_t)n, hex);
		*ret = json_pack("{s:s}", "header", hex);
	} else {
		*ret = json_pack("{s:I}", "file-size", (json_int_t)st.st_size);
	}
	return *ret ? 0 : -ENOMEM;
}

bool created_file_unlink(const json_t *f)
{
	struct file_id id = {.dev = (dev_t)json_integer_value(json_object_get(f, "dev")),
			     .ino = (ino_t)json_integer_value(json_object_get(f, "ino"))};

	return storage_unlink_created(json_string_value(json_object_get(f, "path")), &id);
}
