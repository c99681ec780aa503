/* Small helpers shared by ferryd and ferry: checked parsing, files, processes. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <jansson.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);
int parse_size_mib(const char *s, uint64_t *ret_mib);
bool name_is_valid(const char *name, size_t max_len);

int mkdir_p(const char *path, mode_t mode);
/* fsync of the directory that holds path: its new or removed entry survives a crash. */
int fsync_parent_dir(const char *path);
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* json_dumps(j, flags), then write_file_atomic. */
int write_json_atomic(const char *path, const json_t *j, size_t flags, mode_t mode);
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
/* The wall clock (CLOCK_REALTIME) in ms since the epoch: only to relate
 * two hosts' times (a move's pause); durations use now_ms. */
int64_t realtime_ms(void);
void socket_keepalive(int fd);
/* A listening TCP socket on sa (its port included): SO_REUSEADDR, IPv6 only
 * for an IPv6 address, O_CLOEXEC. 0 and *ret_fd, or -errno. */
int tcp_listen(const struct sockaddr *sa, socklen_t len, int backlog, int *ret_fd);
bool socket_peer_gone(int fd);

/* UTF-8 for text that goes into JSON, which jansson refuses unless valid
 * (review L11). utf8_truncate cuts off a multi-byte character that a
 * truncating snprintf left incomplete at the end of s; utf8_sanitize
 * replaces every byte of buf that is not part of a valid character by '?'
 * and returns how many it replaced; utf8_clean does both to a string. */
void utf8_truncate(char *s);
size_t utf8_sanitize(char *buf, size_t len);
void utf8_clean(char *s);

/* Writes guest text for a terminal (review L16): \n, \r, \t and printable
 * text as they are, other control characters as ^X (ESC is ^[, DEL ^?), the
 * C1 controls U+0080..U+009F as \x80..\x9f, so that no escape sequence
 * reaches the terminal. */
void fput_visible(const char *buf, size_t len, FILE *f);
/* The uid of the process at the other end of a unix socket (SO_PEERCRED). */
int socket_peer_uid(int fd, uid_t *ret_uid);
