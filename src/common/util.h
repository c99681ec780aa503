/* Small helpers shared by ferryd and ferry: checked parsing, files, processes. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);
int parse_size_mib(const char *s, uint64_t *ret_mib);
bool name_is_valid(const char *name, size_t max_len);

int mkdir_p(const char *path, mode_t mode);
/* fsync of the directory that holds path: its new or removed entry survives a crash. */
int fsync_parent_dir(const char *path);
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
int read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);
int remove_tree(const char *path);
int remove_tree_follow(const char *path);
bool path_exists(const char *path);
/* Absolute, no empty, "." or ".." component, no trailing '/' (but "/"):
 * a path whose meaning does not depend on how it is spelled. */
bool path_is_clean(const char *p);

int run_cmd(const char *const argv[], char *out, size_t out_size);
int write_all(int fd, const void *buf, size_t len);
int read_all(int fd, void *buf, size_t len);
void random_bytes(void *buf, size_t len);
void hex_encode(const uint8_t *in, size_t len, char *out);
uint64_t now_ms(void);
void socket_keepalive(int fd);
bool socket_peer_gone(int fd);
