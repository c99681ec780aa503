/* Every operation name of the wire protocol, once: the daemon's op tables
 * (control.c dispatch), the CLI's calls and one ferryd's requests to another
 * use these, so both sides cannot spell one differently. A new op is a line
 * here and in FERRY_OPS (test_ops checks the daemon serves each). */
#pragma once

#define OP_HOST_SHOW "host.show"
#define OP_HOST_SET "host.set"
#define OP_MIGRATION_ENABLE "migration.enable"
#define OP_MIGRATION_DISABLE "migration.disable"
#define OP_MIGRATION_NETWORK_LIST "migration.network.list"
#define OP_MIGRATION_NETWORK_ADD "migration.network.add"
#define OP_MIGRATION_NETWORK_REMOVE "migration.network.remove"

#define OP_SWITCH_CREATE "switch.create"
#define OP_SWITCH_DELETE "switch.delete"
#define OP_SWITCH_LIST "switch.list"

#define OP_VM_DEFINE "vm.define"
#define OP_VM_LIST "vm.list"
#define OP_VM_SHOW "vm.show"
#define OP_VM_START "vm.start"
#define OP_VM_STOP "vm.stop"
#define OP_VM_KILL "vm.kill"
#define OP_VM_SUSPEND "vm.suspend"
#define OP_VM_RESUME "vm.resume"
#define OP_VM_DELETE "vm.delete"
#define OP_VM_CONSOLE "vm.console"
#define OP_VM_SET "vm.set"
#define OP_VM_MOVE "vm.move"
#define OP_VM_COMPARE "vm.compare"
#define OP_VM_MOVE_STORAGE "vm.move-storage"

#define OP_JOB_LIST "job.list"
#define OP_JOB_SHOW "job.show"
#define OP_JOB_CANCEL "job.cancel"
#define OP_JOB_WATCH "job.watch"

/* a local user hands over a Kerberos identity (local socket only) */
#define OP_AUTH_KERBEROS "auth.kerberos"

/* one ferryd to another during a move: the source asks, the destination
 * answers (move_dest.c); peer_msg.c reads each */
#define OP_MIGRATE_ADDRESSES "migrate.addresses"
#define OP_MIGRATE_CHECK "migrate.check"
#define OP_MIGRATE_PREPARE "migrate.prepare"
#define OP_MIGRATE_FINISH "migrate.finish"
#define OP_MIGRATE_ABORT "migrate.abort"
/* the link probe before a move or in vm compare (probe.c answers) */
#define OP_MIGRATE_PROBE "migrate.probe"

/* All of them, for the tests that keep both sides equal. */
#define FERRY_OPS(X)                                                                                               \
	X(OP_HOST_SHOW) X(OP_HOST_SET) X(OP_MIGRATION_ENABLE) X(OP_MIGRATION_DISABLE)                              \
	X(OP_MIGRATION_NETWORK_LIST) X(OP_MIGRATION_NETWORK_ADD) X(OP_MIGRATION_NETWORK_REMOVE)                    \
	X(OP_SWITCH_CREATE) X(OP_SWITCH_DELETE) X(OP_SWITCH_LIST)                                                  \
	X(OP_VM_DEFINE) X(OP_VM_LIST) X(OP_VM_SHOW) X(OP_VM_START) X(OP_VM_STOP) X(OP_VM_KILL) X(OP_VM_DELETE)     \
	X(OP_VM_SUSPEND) X(OP_VM_RESUME)                                                                           \
	X(OP_VM_CONSOLE) X(OP_VM_SET) X(OP_VM_MOVE) X(OP_VM_COMPARE) X(OP_VM_MOVE_STORAGE)                         \
	X(OP_JOB_LIST) X(OP_JOB_SHOW) X(OP_JOB_CANCEL) X(OP_JOB_WATCH)                                             \
	X(OP_AUTH_KERBEROS)                                                                                        \
	X(OP_MIGRATE_ADDRESSES) X(OP_MIGRATE_CHECK) X(OP_MIGRATE_PREPARE) X(OP_MIGRATE_FINISH) X(OP_MIGRATE_ABORT) \
	X(OP_MIGRATE_PROBE)
