/* ferryd: the per-host daemon. One header for the daemon's files, grouped by file. */
#pragma once
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "gss.h"
#include "metrics.h"
#include "predict.h"
#include "proto.h"

#define FERRY_PORT 6600
#define MAX_LISTEN 8
#define PEER_MAX_LISTEN (2 * MAX_LISTEN)  /* --listen plus migration-network addresses */
#define CALLER_SIDS_SIZE 16384            /* room for ~350 group SIDs of a caller */

struct qmp;
struct job;

/* A VM this host owns. Fields other than the lock are guarded by ferryd.lock. */
struct vm {
	struct vm *next;
	json_t *config;            /* normalized (vmconfig_normalize) */
	char dir[PATH_MAX];        /* state_dir/vms/NAME: config.json, console.log */
	char rundir[PATH_MAX];     /* run_dir/vms/NAME: qmp.sock, qemu.pid */
	pid_t pid;                 /* QEMU, 0 while off */
	const char *busy;          /* non-NULL while a long operation owns the VM ("moving", ...) */
	bool incoming;             /* planned VM waiting for a migration: not registered yet */
	pthread_mutex_t qmp_lock;  /* serializes use of qmp */
	struct qmp *qmp;           /* open while running */
};

struct ferryd {
	char state_dir[PATH_MAX];
	char run_dir[PATH_MAX];
	char config_path[PATH_MAX];
	char host_name[256];          /* FQDN */
	char listen[MAX_LISTEN][64];  /* management/migration addresses for TCP 6600 */
	size_t n_listen;
	int port;
	char keytab[PATH_MAX];
	char admin_group[64];         /* local unix group allowed besides root */
	json_t *admin_principals;     /* Kerberos principals allowed (array of strings) */
	json_t *admin_group_sids;     /* AD groups allowed: SIDs, canonical (pac.h sid_normalize) */
	char qemu_bin[PATH_MAX];
	bool kvm;
	/* QEMU runs as this user (review H3, M9): set at start-up when ferryd
	 * runs as root and qemu_user is not "root" */
	char qemu_user[64];
	bool qemu_drop;
	uid_t qemu_uid;
	gid_t qemu_gid;
	gid_t qemu_groups[32];
	int n_qemu_groups;
	char metrics_addr[64];        /* --metrics ADDR:PORT, "" when off */

	/* one migrate.prepare at a time from its check to the planned VM's
	 * registration, which reserves its memory and disk (review M7) */
	pthread_mutex_t prepare_lock;
	pthread_mutex_t lock;         /* guards everything below */
	json_t *settings;             /* settings.h table values + migration-networks */
	struct vm *vms;
	struct job *jobs;
	uint64_t next_job_id;
	struct metrics metrics;       /* counted by job.c, read by metrics_server.c */
	/* what the last completed move to each host showed, per kind of
	 * stream (performance option, encryption), for the next prediction
	 * (move_predict.c); with all taken, the first goes */
	struct learned_link {
		char dest[256];
		char kind[32];
		struct predict_learned l;
	} learned[8];
	volatile unsigned listen_generation; /* bumped when migration networks change: re-bind 6600 */
	volatile int stopping;
};

/* Who is asking. Identity comes from SO_PEERCRED or GSSAPI, never from a message. */
struct caller {
	bool local;                /* unix socket */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char principal[256];       /* authenticated Kerberos principal ("" locally) */
	char addr[64];             /* peer address for TCP */
	bool is_peer_host;         /* another ferryd acting for a user */
	void *deleg_cred;          /* gss.h credential for onward hops (forwarded TGT or
	                              S4U2Proxy evidence) or NULL; freed with the connection,
	                              or, once a job took it, when the job's thread ends */
	bool forwarded;            /* deleg_cred is the user's own forwarded TGT (credssp) */
	/* The SIDs of principal's groups, from the PAC of the ticket that proved it
	 * (caller_load_groups): n_group_sids NUL-terminated strings one after the
	 * other. Inline, not allocated, so that copies of the caller (jobs) need
	 * no ownership rules. */
	size_t n_group_sids;
	char group_sids[CALLER_SIDS_SIZE];
	char planned[64];          /* incoming VM this connection prepared: aborted if it drops */
};

struct request {
	struct ferryd *d;
	const char *op;
	json_t *args;
	struct caller *caller;
	struct conn *conn;         /* for requests that stream events (job.watch) */
};

typedef json_t *(*op_handler)(struct request *req);
/* Who may call an op, and over what: dispatch (control.c) checks it before
 * the handler runs. Every TCP message is sealed (Kerberos); the local socket
 * is never sealed, its caller known by SO_PEERCRED. */
enum op_flag {
	OP_ADMIN = 1u << 0,  /* an administrator of this host (root, admin group, admin principals or groups) */
	OP_LOCAL = 1u << 1,  /* over the local control socket */
	OP_REMOTE = 1u << 2, /* over TCP 6600 */
	OP_PEER = 1u << 3,   /* sent by another ferryd in a move; read by peer_msg.c's reader */
	OP_MOVE_STEP = 1u << 4, /* a step of an incoming move: dispatch logs its outcome (move_log.c) */
};
#define OP_USER (OP_ADMIN | OP_LOCAL | OP_REMOTE) /* an administrator, here or remotely */

struct op_def {
	const char *name;
	op_handler fn;
	unsigned flags;      /* enum op_flag */
};

/* main.c */
int ferryd_save_settings(struct ferryd *d);

/* options.c: ferryd's options and ferryd.conf keys; a key is its option's name */
enum { OPT_CMDLINE = 1, OPT_CONF = 2, OPT_REPEAT = 4, OPT_HIDDEN = 8 };
struct ferryd_opt {
	const char *name;
	const char *arg;           /* metavariable, NULL for a flag */
	unsigned flags;
	const char *help;
};
extern const struct ferryd_opt ferryd_opts[];
extern const size_t ferryd_n_opts;
void ferryd_usage(FILE *f);
/* Hidden --dump-options: the table and the host settings as JSON. */
int ferryd_dump_options(FILE *f);

/* control.c: local unix socket and dispatch */
int control_listen(struct ferryd *d, int *ret_fd);
void control_serve(struct ferryd *d, int listen_fd);
json_t *dispatch(struct request *req);
/* The op tables dispatch searches, in order (names: ops.h). */
extern const struct op_def *const op_tables[];
extern const size_t n_op_tables;
bool caller_is_admin(struct ferryd *d, const struct caller *c, char *why, size_t whylen);
/* After a Kerberos authentication of c: its group SIDs from the PAC of the
 * session's ticket (none, with a warning in the log, if the PAC is unusable). */
void caller_load_groups(struct caller *c, struct gss_session *gs);
bool caller_in_group(const struct caller *c, const char *sid);

/* peer.c: TCP 6600, Kerberos-authenticated connections between hosts */
int peer_listen(struct ferryd *d, int *fds, size_t *n);
void peer_serve(struct ferryd *d, int listen_fd);
/* Cuts the handshakes that outlived their deadline; the main loop calls it. */
void peer_reap_handshakes(void);
int peer_connect(struct ferryd *d, const char *host, const char *addr, int port, enum gss_cred_kind kind,
		 void *cred, struct conn *ret_conn, struct gss_session **ret_sess, char *err, size_t errlen);
void serve_connection(struct ferryd *d, struct conn *c, struct caller *caller);

/* args.c: reading request arguments with clear errors */
const char *arg_str(json_t *args, const char *key);
int arg_name(json_t *args, const char *key, const char **ret, json_t **ret_err);
bool arg_bool(json_t *args, const char *key, bool def);

/* ops_host.c */
extern const struct op_def host_ops[];

/* ops_vm.c */
extern const struct op_def vm_ops[];

/* ops_switch.c */
extern const struct op_def switch_ops[];

/* ops_auth.c: auth.kerberos, a user's Kerberos identity on the local socket */
extern const struct op_def auth_ops[];

/* vm.c: the VM registry (caller holds d->lock unless noted) */
int vms_load(struct ferryd *d);
struct vm *vm_find(struct ferryd *d, const char *name);
struct vm *vm_find_id(struct ferryd *d, const char *id);
int vm_add(struct ferryd *d, json_t *config, bool persist, struct vm **ret, char *err, size_t errlen);
int vm_save(struct ferryd *d, struct vm *vm);
/* Removes the saved configuration again (a VM that turned out not to run here). */
void vm_unsave(struct vm *vm);
void vm_remove(struct ferryd *d, struct vm *vm, bool delete_disks);
const char *vm_state(struct vm *vm);
json_t *vm_summary(struct vm *vm);

/* qemu.c: one QEMU per VM. These never take d->lock (the caller owns the VM
 * through vm->busy, or holds d->lock); they may block for seconds. */
int qemu_start(struct ferryd *d, struct vm *vm, const char *incoming, char *err, size_t errlen);
int qemu_reattach(struct ferryd *d, struct vm *vm);
int qemu_stop(struct ferryd *d, struct vm *vm, int timeout_s, bool force);
void qemu_kill(struct vm *vm);
/* QMP quit, SIGKILL if QEMU is still there after 5 s: true when it ended by
 * the quit (its images closed cleanly). */
bool qemu_quit(struct vm *vm);
bool qemu_alive(struct vm *vm);
/* QMP to a VM's QEMU: vm_qmp.h */
int qemu_machine_types(const char *qemu_bin, json_t **ret);
int qemu_cpu_models(const char *qemu_bin, json_t **ret);

/* netdev.c: virtual switches (Linux bridges) and taps */
int switch_create(const char *name, const char *uplink, char *err, size_t errlen);
int switch_delete(const char *name, char *err, size_t errlen);
bool switch_exists(const char *name);
json_t *switch_list(void);
int tap_create(const char *tap, const char *bridge, char *err, size_t errlen);
/* Opens an existing tap for QEMU (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), O_CLOEXEC. */
int tap_open(const char *tap, int *ret);
void tap_delete(const char *tap);
void tap_name(json_t *config, size_t index, char out[16]);
/* The VM of this host whose tap names the VM with config would take (the
 * names come from the first 8 hex digits of the id): NULL if none. Caller
 * holds d->lock. */
struct vm *vm_find_tap_owner(struct ferryd *d, json_t *config);

/* job.c: long-running work (moves), visible with ferry job ... */
enum job_stage {
	STAGE_QUEUED, STAGE_SETUP, STAGE_STORAGE, STAGE_MEMORY, STAGE_SWITCHOVER, STAGE_CLEANUP,
	STAGE_COMPLETED, STAGE_FAILED, STAGE_CANCELLED,
};

struct job {
	struct job *next;
	uint64_t id;
	char kind[16];              /* "move", "move-storage" */
	char vm[64];
	char dest[256];
	bool storage;               /* counts against max-storage-migrations */
	bool live;                  /* counts against max-migrations */
	enum job_stage stage;
	const char *phase;          /* for the log: the phase table row it is in
	                               (move_source.c), a static string; NULL: the stage */
	enum job_stage failed_stage;
	char error[2048];
	volatile bool cancel;
	bool past_cancel_point;     /* switchover begun: cancel is refused */
	uint64_t started_ms, ended_ms, created_realtime;
	uint64_t started_realtime_ms, ended_realtime_ms; /* wall clock, 0 until then */
	/* progress, updated by the job thread under d->lock */
	int pass;
	uint64_t mem_total, mem_remaining, mem_transferred;
	uint64_t disk_total, disk_remaining;
	uint64_t disk_reused;       /* bytes a kept partial copy spared (move_resume.h) */
	double mbps;
	/* predicted vs actual (move_predict.c): the prediction made in setup,
	 * owned, NULL if none; when the guest's bytes began to move (storage or
	 * memory stage) and when it ran there (cleanup stage) */
	json_t *prediction;
	uint64_t copy_started_ms, copy_ended_ms;
	int64_t downtime_ms;        /* QEMU's, -1 until known */
	int64_t pause_ms, pause_uncertainty_ms; /* ferry's: source stop to destination resume, -1 unknown */
	json_t *ladder;             /* the stall ladder's steps: [{rung, pass, reason}], owned */
	json_t *args;               /* request arguments, owned */
	struct caller caller;       /* copy of the requester (cred ownership moves here;
	                               freed when the job's thread ends) */
	pthread_cond_t changed;
	bool running;               /* its thread has not returned yet */
	int watchers;               /* job.watch requests waiting on it */
	/* neither kind of job is pruned: both still use it (review L7) */
};

const char *job_stage_name(enum job_stage s);
void jobs_wake(struct ferryd *d);   /* caller holds d->lock */
/* Migrations under way on this host: running move jobs and incoming moves
 * (planned VMs), live and storage, as the limits count them. Caller holds
 * d->lock. */
void migrations_active(struct ferryd *d, int *ret_live, int *ret_storage);
/* Creates a queued job and its thread; fn runs once the limits allow. */
int job_start(struct ferryd *d, const char *kind, const char *vm, const char *dest, bool live,
	      bool storage, json_t *args, struct caller *caller, void (*fn)(struct ferryd *, struct job *),
	      struct job **ret);
/* Job thread helpers (take d->lock themselves). */
void job_set_stage(struct ferryd *d, struct job *j, enum job_stage s);
/* The same, for a job that is a row of a phase table: the log names the phase. */
void job_enter_phase(struct ferryd *d, struct job *j, enum job_stage s, const char *phase);
/* The disk copies' progress, as job show and the metrics report it. */
void job_set_disk_progress(struct ferryd *d, struct job *j, uint64_t total, uint64_t remaining);
/* Records the move's prediction (taken; replaces an earlier one). */
void job_set_prediction(struct ferryd *d, struct job *j, json_t *prediction);
/* A resumed disk copy: reused of total bytes were at the destination already. */
void job_set_disk_reuse(struct ferryd *d, struct job *j, uint64_t reused, uint64_t total);
/* The guest's pause as ferry measured it (move_pause.c). */
void job_set_pause(struct ferryd *d, struct job *j, int64_t pause_ms, int64_t uncertainty_ms);
/* A step of the stall ladder (stall_ladder.h): in the job and its log. */
void job_ladder_step(struct ferryd *d, struct job *j, const char *rung, int pass, const char *reason);
void job_fail(struct ferryd *d, struct job *j, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool job_cancelled(struct ferryd *d, struct job *j);
json_t *job_json(struct job *j);   /* caller holds d->lock */
/* What is under way for the metrics: queue, running jobs, incoming moves,
 * bytes sent so far. Caller holds d->lock. */
void jobs_metrics_now(struct ferryd *d, struct metrics_now *ret);
extern const struct op_def job_ops[];

/* metrics_server.c: binds d->metrics_addr and answers GET /metrics on a
 * thread of its own. */
int metrics_serve(struct ferryd *d);

/* move_source.c, move_dest.c, move_storage.c, move_check.c */
extern const struct op_def move_ops[];
extern const struct op_def incoming_ops[];
/* probe.c: migrate.probe, the destination's end of the link probe */
extern const struct op_def probe_ops[];
void incoming_connection_closed(struct ferryd *d, struct caller *c);
/* move_log.c: one line for a step of an incoming move, from its reply. */
void incoming_log_step(const struct request *req, json_t *reply);
/* At start-up: removes planned VMs a crash left behind (caller holds d->lock). */
void incoming_sweep(struct ferryd *d);
/* At start-up, for each running VM: settles a move the last ferryd left half
 * done (caller holds d->lock); true when the VM was removed (its move had
 * ended: it runs on the destination). */
bool move_recover(struct ferryd *d, struct vm *vm);
/* Everything about this host a destination check needs, as JSON. */
json_t *host_capabilities(struct ferryd *d);
/* Every reason this host cannot take the VM, as a list of sentences. With
 * ret_need, also what its disks need per directory ({DIR: bytes}): the
 * reservation migrate.prepare records in the planned VM ("_reserve-disk").
 * With ret_room, the numbers behind the memory, disk and limit checks
 * ({"memory-needed-mib", "memory-available-mib", "disks": [{"dir",
 * "needed", "free"}], "max-migrations", "max-storage-migrations"}), what
 * migrate.check answers as "room". */
json_t *check_incoming(struct ferryd *d, json_t *cfg, json_t *req, json_t **ret_need, json_t **ret_room);
int free_tcp_port(const char *addr, int *ret_port);
/* Gives a regular file under the storage roots (no link followed below the
 * root) to QEMU's user, mode 0600; a no-op when QEMU runs as root. err says
 * why not (outside the roots: -EPERM). */
int qemu_file_own(struct ferryd *d, const char *path, char *err, size_t errlen);
