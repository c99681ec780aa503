/* ferryd: the per-host daemon. One header for the daemon's files, grouped by file. */
#pragma once
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define FERRY_PORT 6600
#define MAX_LISTEN 8

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
	char qemu_bin[PATH_MAX];
	bool kvm;

	pthread_mutex_t lock;         /* guards everything below */
	json_t *settings;             /* settings.h table values + migration-networks */
	struct vm *vms;
	struct job *jobs;
	uint64_t next_job_id;
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
	void *deleg_cred;          /* gss_cred_id_t forwarded by the user (credssp) or NULL */
};

struct request {
	struct ferryd *d;
	const char *op;
	json_t *args;
	struct caller *caller;
	struct conn *conn;         /* for requests that stream events (job.watch) */
};

typedef json_t *(*op_handler)(struct request *req);
struct op_def {
	const char *name;
	op_handler fn;
};

/* main.c */
int ferryd_save_settings(struct ferryd *d);

/* control.c: local unix socket and dispatch */
int control_listen(struct ferryd *d, int *ret_fd);
void control_serve(struct ferryd *d, int listen_fd);
json_t *dispatch(struct request *req);
bool caller_is_admin(struct ferryd *d, const struct caller *c, char *why, size_t whylen);

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

/* vm.c: the VM registry (caller holds d->lock unless noted) */
int vms_load(struct ferryd *d);
struct vm *vm_find(struct ferryd *d, const char *name);
struct vm *vm_find_id(struct ferryd *d, const char *id);
int vm_add(struct ferryd *d, json_t *config, bool persist, struct vm **ret, char *err, size_t errlen);
int vm_save(struct ferryd *d, struct vm *vm);
void vm_remove(struct ferryd *d, struct vm *vm, bool delete_disks);
const char *vm_state(struct vm *vm);
json_t *vm_summary(struct vm *vm);

/* qemu.c: one QEMU per VM */
int qemu_start(struct ferryd *d, struct vm *vm, const char *incoming, char *err, size_t errlen);
int qemu_reattach(struct ferryd *d, struct vm *vm);
int qemu_stop(struct ferryd *d, struct vm *vm, int timeout_s, bool force);
void qemu_kill(struct vm *vm);
bool qemu_alive(struct vm *vm);
/* Runs one QMP command on the VM's QEMU; ret gets "return" or NULL. err says why. */
int vm_qmp(struct vm *vm, const char *cmd, json_t *args, json_t **ret, char *err, size_t errlen);
int qemu_machine_types(const char *qemu_bin, json_t **ret);
int qemu_cpu_models(const char *qemu_bin, json_t **ret);

/* netdev.c: virtual switches (Linux bridges) and taps */
int switch_create(const char *name, const char *uplink, char *err, size_t errlen);
int switch_delete(const char *name, char *err, size_t errlen);
bool switch_exists(const char *name);
json_t *switch_list(void);
int tap_create(const char *tap, const char *bridge, char *err, size_t errlen);
void tap_delete(const char *tap);
void tap_name(json_t *config, size_t index, char out[16]);
