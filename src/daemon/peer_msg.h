/* The messages one ferryd sends another on TCP 6600 during a move, and one
 * reader per message (as vmd reads each imsg type with one function): it
 * checks every field the receiver uses, its presence, JSON type, bounds and
 * allowed values, and fills a struct, or says which field is wrong. Pure: no
 * I/O, no locks, no QEMU. Fields a reader does not name are ignored (a newer
 * peer may send more); the VM configuration refuses unknown fields
 * (vmconfig.c). Strings are borrowed from the message: they live as long as
 * it does. */
#pragma once
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Source -> destination requests (move_source.c asks, move_dest.c
 * answers): OP_MIGRATE_* in ops.h. */
#include "ops.h"

#define PEER_PSK_HEX_LEN 64          /* 32 bytes */
#define PEER_PSK_IDENTITY_MAX 64
#define PEER_CHANNELS_MAX 64
/* Disk sizes, bytes: 8 disks of this much cannot overflow a 64-bit sum. */
#define PEER_DISK_BYTES_MAX ((int64_t)1 << 56)
#define PEER_CPU_FLAGS_MAX 1024
#define PEER_CPU_FLAG_LEN_MAX 64
#define PEER_ADDRESSES_MAX 64
#define PEER_PRIORITY_MAX 1001
#define PEER_PROBLEMS_MAX 64
#define PEER_PROBLEM_LEN_MAX 1024
#define PEER_ROOM_DIRS_MAX 8         /* directories in a check reply's room: one per disk at most */
#define PEER_MEMORY_MIB_MAX ((int64_t)1 << 40)
#define PEER_LIMIT_MAX 1000          /* a destination's max-migrations, max-storage-migrations */
/* The link probe (probe.c): at most this long and this much, both ends. */
#define PEER_PROBE_MS_MIN 100
#define PEER_PROBE_MS_MAX 1000
#define PEER_PROBE_BYTES_MAX (64u << 20)
#define PEER_PROBE_TOKEN_LEN 16        /* bytes; 32 hex digits in the reply */
#define PEER_PROBE_RESULT_LEN 16       /* the destination's count: two big-endian uint64 */
#define PEER_PROBE_LATE_US 1000000     /* how late the destination's clock may stop, in microseconds */
/* A wall-clock time in ms since the epoch: positive, below year 10000. */
#define PEER_CLOCK_MS_MAX 253402300800000LL

/* Readers return 0, or -EINVAL (a field is missing or wrong: reply code
 * "bad_request") or -EBADMSG (the VM configuration is not valid: "invalid"),
 * with err naming the field. */
const char *peer_msg_code(int r);

/* a kept copy's token (partial.h) */
#define PEER_RESUME_TOKEN_HEX 32

/* migrate.check: {"config", "include-storage", "disks": [{"path", "size",
 * "allocated", "fingerprint"}], "source": capabilities, "storage-path", "vm-path",
 * "resume-tokens"} */
struct peer_check {
	json_t *config;            /* normalized copy (vmconfig_normalize), owned */
	bool include_storage;      /* absent: false */
	json_t *disks;             /* the size list, one entry per disk: checked */
	const char *storage_path;  /* clean absolute paths, NULL when absent */
	const char *vm_path;
	json_t *source;            /* the source's capabilities or NULL: accelerator, cpu-flags checked */
	/* "resume-tokens": per disk, the token of the source's resume bitmap
	 * (partial.h: PEER_RESUME_TOKEN_HEX lower-case hex digits) or null;
	 * NULL when absent */
	const json_t *resume_tokens;
};

/* migrate.prepare: the fields of migrate.check and {"encryption", "psk",
 * "psk-identity", "performance", "channels"} */
struct peer_prepare {
	struct peer_check check;
	bool encryption;           /* absent: true */
	const char *psk;           /* 64 hex digits; NULL only without encryption */
	const char *psk_identity;  /* a name (util.h name_is_valid) of at most 64 */
	const char *performance;   /* tcpip, compression or multichannel */
	int channels;              /* 0..64, absent: 0 */
};

/* migrate.probe: {"milliseconds"}, how long the source means to send
 * (PEER_PROBE_MS_MIN..MAX, absent: MAX). */
struct peer_probe {
	uint32_t milliseconds;
};

/* migrate.probe reply: {"port", "token", "milliseconds", "bytes"}: where to
 * connect (on the address the source reached), the token to send first, and
 * the destination's limits, which the source keeps. */
struct peer_probe_reply {
	int port;                  /* 1..65535 */
	uint8_t token[PEER_PROBE_TOKEN_LEN];
	uint32_t milliseconds;     /* PEER_PROBE_MS_MIN..MAX */
	uint32_t bytes;            /* 1..PEER_PROBE_BYTES_MAX */
};

/* What the destination counted on the probe connection, given the reply's limits. */
struct peer_probe_result {
	uint64_t bytes;            /* at most the reply's bytes */
	uint64_t microseconds;     /* 1..milliseconds x 1000 + PEER_PROBE_LATE_US */
};

/* migrate.addresses reply: {"addresses": [{"address", "priority"}],
 * "migration-enabled", "encryption-required", "clock-ms"} */
struct peer_addresses {
	size_t n;                  /* how many addresses */
	char first[64];            /* the first one (best priority), an IP literal; "" when n is 0 */
	bool migration_enabled;
	bool encryption_required;  /* absent: false */
	int64_t clock_ms;          /* the destination's wall clock as it answered; absent: 0 */
};

/* The VM configuration a peer sends: a normalized copy, every file path in
 * it (disks, kernel, initrd, vm-path) clean (util.h path_is_clean). */
int peer_read_config(json_t *v, json_t **ret, char *err, size_t errlen);

int peer_read_check(json_t *args, struct peer_check *ret, char *err, size_t errlen);
int peer_read_prepare(json_t *args, struct peer_prepare *ret, char *err, size_t errlen);
void peer_check_clear(struct peer_check *c);
/* migrate.finish, migrate.abort: {"name"}, a valid VM name. */
int peer_read_name(json_t *args, const char *op, const char **ret, char *err, size_t errlen);
/* migrate.finish's "kept-copy-token": the source keeps its disks
 * (--keep-source-disks) for the move back under this token, which the
 * destination names a persistent dirty bitmap after (partial.h). *ret
 * NULL when absent. */
int peer_read_kept_token(json_t *args, const char *op, const char **ret, char *err, size_t errlen);
/* migrate.addresses takes no argument: nothing to read. */
int peer_read_probe(json_t *args, struct peer_probe *ret, char *err, size_t errlen);

/* Replies the source reads ("result" of an ok reply). The prepare reply is
 * move_endpoint.h's; the abort reply is not read. */
int peer_read_addresses_reply(json_t *result, struct peer_addresses *ret, char *err, size_t errlen);
/* {"problems": [strings], "capabilities": {}}: *ret borrows the problems. */
int peer_read_check_reply(json_t *result, json_t **ret_problems, char *err, size_t errlen);
/* The check reply's "room" (check_incoming, ferryd.h): {"memory-needed-mib",
 * "memory-available-mib", "disks": [{"dir", "needed", "free"}],
 * "max-migrations", "max-storage-migrations"}. *ret is a new object with
 * exactly these fields, checked; NULL when the destination sent none (an
 * older ferryd). */
int peer_read_check_room(json_t *result, json_t **ret_room, char *err, size_t errlen);
/* The check reply's "reuse", sent when the request carried resume-tokens:
 * per disk (ndisks of them), whether the destination would build on a copy
 * it kept (partial.h). *ret borrows the list; NULL when absent. */
int peer_read_check_reuse(json_t *result, size_t ndisks, json_t **ret_reuse, char *err, size_t errlen);
int peer_read_probe_reply(json_t *result, struct peer_probe_reply *ret, char *err, size_t errlen);
/* The PEER_PROBE_RESULT_LEN bytes the destination writes back on the probe
 * connection (len: how many arrived), checked against what it had promised. */
int peer_read_probe_result(const uint8_t *buf, size_t len, const struct peer_probe_reply *asked,
			   struct peer_probe_result *ret, char *err, size_t errlen);
/* migrate.finish reply: the VM as vm show has it, and "resumed-ms", the
 * destination's wall clock when the guest resumed there (absent: *ret 0). */
int peer_read_finish_reply(json_t *result, int64_t *ret_resumed_ms, char *err, size_t errlen);
/* migrate.finish reply's "kept-copy-recorded": whether the destination
 * records, under the kept-copy-token, what the guest writes there from now
 * on (absent: false). */
int peer_read_kept_recorded(json_t *result, bool *ret, char *err, size_t errlen);
