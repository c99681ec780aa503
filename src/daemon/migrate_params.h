/* Migration capabilities and parameters, as libvirt's
 * qemu_migration_params.c keeps them: each performance option is one row of
 * a table, and every value ferry sets is set and then read back the same
 * way, on both ends. A new option is a new row (and its name in the
 * performance setting's choices, src/common/settings.c). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <sys/types.h>

#include "ferryd.h"

#define TLS_ID "tlsmig" /* the tls-creds-psk object of a move */
#define PERF_CHANNELS_SETTING (-1) /* multifd-channels from the host setting "channels" */

struct perf_option {
	const char *name;          /* value of the performance setting */
	bool multifd;
	int channels;              /* multifd-channels, or PERF_CHANNELS_SETTING */
	const char *compression;   /* multifd-compression ("none", "zstd") */
};

/* The row of a performance option, NULL if there is none. */
const struct perf_option *perf_option_find(const char *name);
/* The table, for tests and documentation. */
const struct perf_option *perf_options(size_t *ret_count);

struct migration_tuning {
	const char *performance;
	int channels;              /* the host setting, for PERF_CHANNELS_SETTING */
	bool tls;                  /* tls-creds TLS_ID (the object exists) */
	bool source;               /* pause-before-switchover, max-bandwidth, downtime-limit */
	int64_t downtime_ms;       /* source: downtime-limit */
	bool arm_throttle;         /* source: auto-converge, held at 1% (stall_ladder.h) */
};

/* Sets the capabilities and parameters of t on the VM's QEMU and reads them
 * back: -EPROTO with err naming the value QEMU did not take. */
int migration_tune(struct vm *vm, const struct migration_tuning *t, char *err, size_t errlen);
/* Forgets the one-time key after a move (or its failure). */
void migration_untune(struct vm *vm);
/* Writes keys.psk for QEMU's tls-creds-psk into dir (0700; files 0600, or
 * 0640 for group gid, QEMU's, when gid is not -1), with fixed DH
 * parameters: QEMU would otherwise make new ones for each move. */
int psk_dir_write(const char *dir, const char *identity, const char *hexkey, gid_t gid);
/* Removes the one-time key directories (tls-JOB) a source's moves left in
 * the VM's run directory (after a restart: review L1). */
int psk_dirs_remove(const char *rundir);
/* Overwrites the text of the string obj[key] (a key) before it is freed. */
void json_wipe_string(json_t *obj, const char *key);
