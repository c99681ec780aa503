/* ferry: the command line. One header for the CLI's files. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "proto.h"

struct cli {
	const char *host;      /* -H: remote ferryd (Kerberos), NULL = local socket */
	const char *socket;    /* local control socket */
	int port;
	bool json;
	bool quiet;
	struct conn conn;
	bool connected;
	void *gss;             /* remote session state */
};

struct cli_cmd {
	const char *group;
	const char *name;
	const char *args;      /* synopsis after "ferry GROUP NAME" */
	const char *summary;
	const char *help;      /* options and details, shown by --help */
	int (*fn)(struct cli *cli, int argc, char **argv);
};

/* client.c */
int cli_connect(struct cli *cli);
/* Sends op with args (consumed) and returns the result object, or prints the
 * error and returns NULL. ret_code gets the exit code to use on failure. */
json_t *cli_call(struct cli *cli, const char *op, json_t *args);
/* The same, silent: 0 and *ret_result, or -1 and *ret_error ({"code",
 * "message", "hint"}), for a caller that reports errors its own way. */
int cli_try_call(struct cli *cli, const char *op, json_t *args, json_t **ret_result, json_t **ret_error);
void cli_close(struct cli *cli);

/* remote.c: hands the user's Kerberos identity (and, when the local ferryd's
 * auth setting is credssp, their forwarded TGT) to the local ferryd over the
 * connection, for the requests that follow on it; only to a ferryd running
 * as root (or as the user). err says why not. */
int cli_local_kerberos(struct cli *cli, char *err, size_t errlen);

/* cmd_move.c: before a move (or a check) on this connection, the user's
 * Kerberos credential goes to the local ferryd (nothing to do with -H);
 * one connection carries one move's credential (the job keeps it). */
void cli_authenticate_for_move(struct cli *cli);

/* cmd_evacuate.c: host evacuate, a row of host_cmds */
int host_evacuate(struct cli *cli, int argc, char **argv);

/* output.c */
void print_error(const char *code, const char *msg, const char *hint);
void print_json(json_t *v);
void print_table(json_t *rows, const char *const cols[], const char *const heads[]);
const char *jstr(json_t *o, const char *key);
void format_bytes(unsigned long long b, char *buf, size_t len);
int usage_error(const struct cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const struct cli_cmd *current_cmd(void);

/* command tables */
extern const struct cli_cmd host_cmds[];
extern const struct cli_cmd vm_cmds[];
extern const struct cli_cmd switch_cmds[];
extern const struct cli_cmd move_cmds[];
extern const struct cli_cmd job_cmds[];

/* cmd_host.c: the host settings, for 'host set --help' */
void print_settings_help(FILE *f);

/* cmd_common.c: commands whose whole job is one op with a name, result shown */
int simple_call(struct cli *cli, const char *op, json_t *args);
