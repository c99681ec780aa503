#include "proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const uint8_t magic[3] = {'F', 'R', 'Y'};

void conn_init(struct conn *c, int fd, size_t max_msg)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->max_msg = max_msg;
}

void proto_header_encode(uint8_t hdr[PROTO_HEADER_LEN], uint32_t len)
{
	memcpy(hdr, magic, 3);
	hdr[3] = PROTO_VERSION;
	hdr[4] = (uint8_t)(len >> 24);
	hdr[5] = (uint8_t)(len >> 16);
	hdr[6] = (uint8_t)(len >> 8);
	hdr[7] = (uint8_t)len;
}

int proto_header_decode(const uint8_t hdr[PROTO_HEADER_LEN], size_t max, uint32_t *ret_len)
{
	uint32_t len;

	if (memcmp(hdr, magic, 3) != 0 || hdr[3] != PROTO_VERSION)
		return -EBADMSG;
	len = (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | (uint32_t)hdr[6] << 8 | hdr[7];
	if (len == 0 || len > max)
		return -EMSGSIZE;
	*ret_len = len;
	return 0;
}

int frame_send(int fd, const void *buf, size_t len)
{
	uint8_t hdr[PROTO_HEADER_LEN];
	int r;

	if (len == 0 || len > UINT32_MAX)
		return -EMSGSIZE;
	proto_header_encode(hdr, (uint32_t)len);
	r = write_all(fd, hdr, sizeof(hdr));
	return r < 0 ? r : write_all(fd, buf, len);
}

int frame_recv(int fd, size_t max, uint8_t **ret, size_t *ret_len)
{
	uint8_t hdr[PROTO_HEADER_LEN], *buf;
	uint32_t len;
	int r;

	r = read_all(fd, hdr, sizeof(hdr));
	if (r < 0)
		return r;
	r = proto_header_decode(hdr, max, &len);
	if (r < 0)
		return r;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	r = read_all(fd, buf, len);
	if (r < 0) {
		free(buf);
		return r == -EPIPE ? -EBADMSG : r; /* truncated frame */
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

static int json_depth_ok(json_t *v, int depth)
{
	const char *key;
	json_t *item;
	size_t i;

	if (depth > PROTO_MAX_DEPTH)
		return 0;
	if (json_is_object(v)) {
		json_object_foreach(v, key, item)
			if (!json_depth_ok(item, depth + 1))
				return 0;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			if (!json_depth_ok(item, depth + 1))
				return 0;
	}
	return 1;
}

int proto_parse(const uint8_t *buf, size_t len, json_t **ret, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *v;

	v = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v) {
		snprintf(err, errlen, "malformed JSON at byte %d: %s", jerr.position, jerr.text);
		return -EPROTO;
	}
	if (!json_is_object(v)) {
		snprintf(err, errlen, "message is not a JSON object");
		json_decref(v);
		return -EPROTO;
	}
	if (!json_depth_ok(v, 0)) {
		snprintf(err, errlen, "message nested deeper than %d levels", PROTO_MAX_DEPTH);
		json_decref(v);
		return -EPROTO;
	}
	*ret = v;
	return 0;
}

int proto_check_request(json_t *msg, const char **ret_op, json_t **ret_args, char *err, size_t errlen)
{
	json_t *op = json_object_get(msg, "op"), *args = json_object_get(msg, "args");

	if (!json_is_string(op) || json_string_length(op) == 0 || json_string_length(op) > PROTO_MAX_OP) {
		snprintf(err, errlen, "request needs \"op\": a string of 1 to %d characters", PROTO_MAX_OP);
		return -EPROTO;
	}
	if (args && !json_is_object(args)) {
		snprintf(err, errlen, "\"args\" must be a JSON object");
		return -EPROTO;
	}
	*ret_op = json_string_value(op);
	*ret_args = args;
	return 0;
}

int conn_send(struct conn *c, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	uint8_t *wrapped = NULL;
	size_t len, wlen;
	int r;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	if (c->sec) {
		r = c->sec->wrap(c->sec_ctx, (uint8_t *)text, len, &wrapped, &wlen);
		if (r < 0)
			goto out;
		r = frame_send(c->fd, wrapped, wlen);
	} else {
		r = frame_send(c->fd, text, len);
	}
out:
	free(wrapped);
	/* plaintext may carry a one-time key (migrate.prepare): not left in freed memory */
	explicit_bzero(text, len);
	free(text);
	return r;
}

int conn_recv(struct conn *c, json_t **ret, char *err, size_t errlen)
{
	uint8_t *buf = NULL, *plain = NULL;
	size_t len, plen;
	int r;

	snprintf(err, errlen, "connection error");
	r = frame_recv(c->fd, c->max_msg, &buf, &len);
	if (r == -EMSGSIZE) {
		snprintf(err, errlen, "message larger than %zu bytes or empty", c->max_msg);
		return r;
	}
	if (r == -EBADMSG) {
		snprintf(err, errlen, "bad frame header or truncated message (ferry protocol version %d)", PROTO_VERSION);
		return r;
	}
	if (r < 0)
		return r;
	if (c->sec) {
		r = c->sec->unwrap(c->sec_ctx, buf, len, &plain, &plen);
		if (r < 0) {
			snprintf(err, errlen, "message failed its integrity check");
			goto out;
		}
		r = proto_parse(plain, plen, ret, err, errlen);
	} else {
		r = proto_parse(buf, len, ret, err, errlen);
	}
out:
	/* the plaintext, as in conn_send */
	if (plain)
		explicit_bzero(plain, plen);
	else if (buf)
		explicit_bzero(buf, len);
	free(plain);
	free(buf);
	return r;
}

json_t *reply_ok(json_t *result)
{
	return json_pack("{s:b, s:o}", "ok", 1, "result", result ? result : json_object());
}

json_t *reply_error(const char *code, const char *hint, const char *fmt, ...)
{
	char msg[1024];
	json_t *e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* a cut '→' or a byte from a file name would make json_pack fail: no reply at all */
	utf8_clean(msg);
	e = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (hint)
		json_object_set_new(e, "hint", json_string(hint));
	return json_pack("{s:b, s:o}", "ok", 0, "error", e);
}

int conn_call(struct conn *c, const char *op, json_t *args, json_t **ret_reply)
{
	char err[256];
	json_t *req, *rep;
	int r;

	req = json_pack("{s:s, s:o}", "op", op, "args", args ? json_incref(args) : json_object());
	if (!req)
		return -ENOMEM;
	r = conn_send(c, req);
	json_decref(req);
	if (r < 0)
		return r;
	for (;;) {
		r = conn_recv(c, &rep, err, sizeof(err));
		if (r < 0)
			return r;
		if (!json_object_get(rep, "event"))
			break;
		json_decref(rep);
	}
	*ret_reply = rep;
	return 0;
}
