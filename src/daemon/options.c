/* ferryd's options and configuration-file keys, declared once: --help,
 * ferryd(8) and ferryd.conf(5) are made from this table (--dump-options). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ferryd.h"
#include "settings.h"
#include "util.h"

#define STR_(x) #x
#define STR(x) STR_(x)

const struct ferryd_opt ferryd_opts[] = {
	{"state-dir", "DIR", OPT_CMDLINE | OPT_CONF,
	 "VM configurations and host settings (default " FERRY_DEFAULT_STATE_DIR ")"},
	{"run-dir", "DIR", OPT_CMDLINE | OPT_CONF,
	 "control socket, QMP sockets, pid files (default " FERRY_DEFAULT_RUN_DIR ")"},
	{"config", "FILE", OPT_CMDLINE,
	 "configuration file (default " FERRY_DEFAULT_CONFIG "; a missing default file is no error)"},
	{"host-name", "FQDN", OPT_CMDLINE | OPT_CONF,
	 "this host's DNS name (default: the system's host name); its Kerberos service is ferry/FQDN"},
	{"listen", "ADDR", OPT_CMDLINE | OPT_CONF | OPT_REPEAT,
	 "address for TCP " STR(FERRY_PORT) ", management and migrations (repeatable, at most " STR(MAX_LISTEN)
	 "; default none: local only, plus the addresses in the migration networks)"},
	{"port", "N", OPT_CMDLINE | OPT_CONF, "TCP port instead of " STR(FERRY_PORT) " (tests)"},
	{"keytab", "FILE", OPT_CMDLINE | OPT_CONF, "keytab holding ferry/FQDN (default: the krb5 default keytab)"},
	{"admin-group", "NAME", OPT_CMDLINE | OPT_CONF,
	 "local group whose members may use ferry on the control socket (default ferry)"},
	{"qemu-user", "NAME", OPT_CMDLINE | OPT_CONF,
	 "the unprivileged user QEMU runs as (default ferry-qemu; 'root' runs QEMU as root, unconfined: not "
	 "recommended)"},
	{"qemu", "PATH", OPT_CONF, "the QEMU binary (default $FERRY_QEMU or qemu-system-x86_64)"},
	{"admin-principal", "PRINCIPAL", OPT_CMDLINE | OPT_CONF | OPT_REPEAT,
	 "Kerberos principal (user@REALM) allowed to administer this host (repeatable)"},
	{"admin-group-sid", "SID", OPT_CMDLINE | OPT_CONF | OPT_REPEAT,
	 "Active Directory group whose members may administer this host (repeatable), by SID: "
	 "S-1-5-21-...-1105 (samba-tool group show NAME --attributes=objectSid); read from the PAC of the ticket"},
	{"metrics", "ADDR:PORT", OPT_CMDLINE | OPT_CONF,
	 "serve Prometheus metrics at http://ADDR:PORT/metrics, on that address only (IPv6 as [ADDR]:PORT); no "
	 "authentication: give a management address (default: off)"},
	{"log-level", "LEVEL", OPT_CMDLINE | OPT_CONF,
	 "the least severe messages logged: error, warning, info or debug (default info)"},
	{"debug", NULL, OPT_CMDLINE, "log requests and QMP traffic too: the same as --log-level debug"},
	{"help", NULL, OPT_CMDLINE, "this help"},
	{"version", NULL, OPT_CMDLINE, "print the version"},
	{"dump-options", NULL, OPT_CMDLINE | OPT_HIDDEN, "this table as JSON (for the man pages)"},
};
const size_t ferryd_n_opts = ARRAY_SIZE(ferryd_opts);

/* Prints text from column indent, wrapped at 79 columns; col is where the
 * cursor is now. */
static void wrap(FILE *f, const char *text, size_t col, size_t indent)
{
	const char *p = text;

	while (*p) {
		size_t w = strcspn(p, " ");
		if (col > indent && col + 1 + w > 79) {
			fprintf(f, "\n%*s", (int)indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", (int)w, p);
		col += w;
		p += w;
		p += strspn(p, " ");
	}
	fputc('\n', f);
}

void ferryd_usage(FILE *f)
{
	fprintf(f,
		"Usage: ferryd [OPTIONS]\n"
		"\n"
		"The ferry host daemon: runs this host's virtual machines (one QEMU each),\n"
		"keeps its settings, and sends and receives live migrations on TCP %d.\n"
		"It stays in the foreground and logs to standard error (under systemd: the\n"
		"journal).\n"
		"\n"
		"Options:\n",
		FERRY_PORT);
	for (size_t i = 0; i < ferryd_n_opts; i++) {
		const struct ferryd_opt *o = &ferryd_opts[i];
		char syn[64];
		int n;

		if (!(o->flags & OPT_CMDLINE) || (o->flags & OPT_HIDDEN))
			continue;
		n = snprintf(syn, sizeof(syn), "  --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
		fputs(syn, f);
		if (n > 20) /* a long option gets its own line */
			fprintf(f, "\n%22s", "");
		else
			fprintf(f, "%*s", 22 - n, "");
		wrap(f, o->help, 22, 22);
	}
	fprintf(f, "\n"
		"Configuration file keys are the long option names, one 'key = value' a line\n"
		"(ferryd.conf(5)); options given on the command line win.\n"
		"Several ferryd may run on one machine with different --run-dir/--state-dir.\n");
}

int ferryd_dump_options(FILE *f)
{
	json_t *opts = json_array(), *settings = json_array(), *out;
	const struct setting_def *st;
	char *text;
	size_t n;

	for (size_t i = 0; i < ferryd_n_opts; i++) {
		const struct ferryd_opt *o = &ferryd_opts[i];
		if (o->flags & OPT_HIDDEN)
			continue;
		json_array_append_new(opts, json_pack("{s:s, s:s?, s:s, s:b, s:b, s:b}", "name", o->name, "arg", o->arg,
						      "help", o->help, "option", (o->flags & OPT_CMDLINE) != 0,
						      "conf", (o->flags & OPT_CONF) != 0, "repeatable",
						      (o->flags & OPT_REPEAT) != 0));
	}
	st = settings_table(&n);
	for (size_t i = 0; i < n; i++) {
		char allowed[256];
		setting_allowed(&st[i], allowed, sizeof(allowed));
		json_array_append_new(settings, json_pack("{s:s, s:s, s:s, s:s}", "name", st[i].name, "allowed",
							  allowed, "default", st[i].def, "help", st[i].help));
	}
	out = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "version", FERRY_VERSION, "state-dir",
			FERRY_DEFAULT_STATE_DIR, "run-dir", FERRY_DEFAULT_RUN_DIR, "config", FERRY_DEFAULT_CONFIG,
			"options", opts, "settings", settings);
	text = out ? json_dumps(out, JSON_INDENT(2)) : NULL;
	json_decref(out);
	if (!text)
		return 1;
	fprintf(f, "%s\n", text);
	free(text);
	return 0;
}
