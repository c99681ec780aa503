/* The ferry wire protocol: versioned, length-prefixed JSON messages.
 *
 * Frame: "FRY" magic, one version byte, a 32-bit big-endian payload length,
 * then the payload: a JSON object (possibly GSSAPI-wrapped on TCP).
 * Request:  {"op": NAME, "args": {...}}   (the names: ops.h)
 * Reply:    {"ok": true, "result": ...}
 *           {"ok": false, "error": {"code": "...", "message": "...", "hint": "..."}}
 * Progress: {"event": "progress", ...} frames may precede the reply of a
 *           long-running request (job.watch).
 */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_HEADER_LEN 8
#define PROTO_MAX_MSG (1024 * 1024)     /* after authentication */
#define PROTO_MAX_PREAUTH (64 * 1024)   /* before: GSSAPI tokens only */
#define PROTO_MAX_OP 64
#define PROTO_MAX_DEPTH 16

/* Optional security layer (GSSAPI wrap/unwrap); NULL ops = plain. */
struct sec_ops {
	int (*wrap)(void *ctx, const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len);
	int (*unwrap)(void *ctx, const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len);
};

struct conn {
	int fd;
	size_t max_msg;
	const struct sec_ops *sec;
	void *sec_ctx;
};

void conn_init(struct conn *c, int fd, size_t max_msg);

/* Raw frames (used for authentication tokens). */
int frame_send(int fd, const void *buf, size_t len);
int frame_recv(int fd, size_t max, uint8_t **ret, size_t *ret_len);

/* Checks a header; returns 0 and the payload length, or -EBADMSG/-EMSGSIZE. */
int proto_header_decode(const uint8_t hdr[PROTO_HEADER_LEN], size_t max, uint32_t *ret_len);
void proto_header_encode(uint8_t hdr[PROTO_HEADER_LEN], uint32_t len);

/* Parses and validates a payload as a JSON object; err gets a reason. */
int proto_parse(const uint8_t *buf, size_t len, json_t **ret, char *err, size_t errlen);
/* Validates a request object: op is a short string, args (optional) an object. */
int proto_check_request(json_t *msg, const char **ret_op, json_t **ret_args, char *err, size_t errlen);

int conn_send(struct conn *c, json_t *msg);
/* Returns 0; -EPIPE when the peer closed cleanly; -EPROTO with err filled for
 * a malformed payload (the stream is still in step); -EBADMSG for a bad or
 * truncated frame and -EMSGSIZE for an oversized one (the stream is lost);
 * other -errno. */
int conn_recv(struct conn *c, json_t **ret, char *err, size_t errlen);

/* Reply builders. */
json_t *reply_ok(json_t *result);
json_t *reply_error(const char *code, const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Client side: does a request and waits for its reply (skipping events). */
int conn_call(struct conn *c, const char *op, json_t *args, json_t **ret_reply);
