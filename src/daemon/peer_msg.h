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
/* A wall-clock time in ms since the epoch: positive, below year 10000. */
#define PEER_CLOCK_MS_MAX 253402300800000LL

/* Readers return 0, or -EINVAL (a field is missing or wrong: reply code
 * "bad_request") or -EBADMSG (the VM configuration is not valid: "invalid"),
 * with err naming the field. */
const char *peer_msg_code(int r);

/* migrate.check: {"config", "include-storage", "disks": [{"path", "size",
 * "allocated", "fingerprint"}], "source": capabilities, "storage-path", "vm-path"} */
struct peer_check {
	json_t *config;            /* normalized copy (vmconfig_normalize), owned */
	bool include_storage;      /* absent: false */
	json_t *disks;             /* the size list, one entry per disk: checked */
	const char *storage_path;  /* clean absolute paths, NULL when absent */
	const char *vm_path;
	json_t *source;            /* the source's capabilities or NULL: accelerator, cpu-flags checked */
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
/* migrate.addresses takes no argument: nothing to read. */

/* Replies the source reads ("result" of an ok reply). The prepare reply is
 * move_endpoint.h's; the abort reply is not read. */
int peer_read_addresses_reply(json_t *result, struct peer_addresses *ret, char *err, size_t errlen);
/* {"problems": [strings], "capabilities": {}}: *ret borrows the problems. */
int peer_read_check_reply(json_t *result, json_t **ret_problems, char *err, size_t errlen);
/* migrate.finish reply: the VM as vm show has it, and "resumed-ms", the
 * destination's wall clock when the guest resumed there (absent: *ret 0). */
int peer_read_finish_reply(json_t *result, int64_t *ret_resumed_ms, char *err, size_t errlen);
