/* Host settings and the migration service's settings (Set-VMHost,
 * Enable-/Disable-VMMigration, Add-/Remove-/Get-VMMigrationNetwork). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ferryd.h"
#include "migration_networks.h"
#include "ops.h"
#include "settings.h"
#include "util.h"

static json_t *host_show(struct request *req)
{
	struct ferryd *d = req->d;
	json_t *r, *listen = json_array();
	size_t nvms = 0;

	for (size_t i = 0; i < d->n_listen; i++)
		json_array_append_new(listen, json_string(d->listen[i]));
	pthread_mutex_lock(&d->lock);
	for (struct vm *vm = d->vms; vm; vm = vm->next)
		nvms += vm->incoming ? 0 : 1;
	r = json_pack("{s:s, s:s, s:s, s:O, s:o, s:i, s:I}", "host-name", d->host_name, "version",
		      FERRY_VERSION, "accelerator", d->kvm ? "kvm" : "tcg", "settings", d->settings,
		      "listen", listen, "port", d->port, "vms", (json_int_t)nvms);
	pthread_mutex_unlock(&d->lock);
	return reply_ok(r);
}

/* Checks one setting's text form: NULL and *ret set, or the refusal. */
static json_t *parse_one(const char *name, const char *text, json_t **ret)
{
	const struct setting_def *def = setting_find(name);
	char err[256], allowed[128];

	if (!def) {
		size_t n, len = 0;
		const struct setting_def *t = settings_table(&n);
		char names[1024] = "";
		for (size_t i = 0; i < n; i++)
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "", t[i].name);
		return reply_error("invalid", names, "unknown host setting '%s'; settings are: %s", name, names);
	}
	if (setting_parse(def, text, ret, err, sizeof(err)) < 0) {
		setting_allowed(def, allowed, sizeof(allowed));
		return reply_error("invalid", allowed, "%s", err);
	}
	return NULL;
}

/* Sets settings from their text forms ({name: text}), all or none: every
 * value is checked before any changes; then they are persisted at once. */
static json_t *set_many(struct ferryd *d, json_t *texts)
{
	json_t *vals = json_object(), *old, *v, *e;
	const char *name;
	bool relisten = false;
	int r;

	json_object_foreach(texts, name, v) {
		json_t *parsed = NULL;
		if (!json_is_string(v)) {
			json_decref(vals);
			return reply_error("bad_request", NULL, OP_HOST_SET ": the value of '%s' must be a string", name);
		}
		if ((e = parse_one(name, json_string_value(v), &parsed))) {
			json_decref(vals);
			return e;
		}
		json_object_set_new(vals, name, parsed);
		relisten |= !strcmp(name, "use-any-network");
	}
	pthread_mutex_lock(&d->lock);
	old = json_deep_copy(d->settings);
	json_object_update(d->settings, vals);
	r = ferryd_save_settings(d);
	if (r < 0) {
		/* nothing changes on failure */
		json_object_foreach(vals, name, v)
			json_object_set(d->settings, name, json_object_get(old, name));
	} else {
		if (relisten)
			d->listen_generation++;
		jobs_wake(d); /* a raised limit lets queued moves go */
	}
	pthread_mutex_unlock(&d->lock);
	json_decref(old);
	if (r < 0) {
		json_decref(vals);
		return reply_error("failed", NULL, "cannot save host settings: %s", strerror(-r));
	}
	return reply_ok(json_pack("{s:o}", "settings", vals));
}

/* Sets one setting from its text form, persists, and answers with the new value. */
static json_t *set_one(struct ferryd *d, const char *name, const char *text)
{
	json_t *texts = json_pack("{s:s}", name, text), *r, *v;

	r = set_many(d, texts);
	json_decref(texts);
	if (json_is_true(json_object_get(r, "ok"))) {
		v = json_incref(json_object_get(json_object_get(json_object_get(r, "result"), "settings"), name));
		json_decref(r);
		r = reply_ok(json_pack("{s:s, s:o}", "name", name, "value", v));
	}
	return r;
}

/* args: {"name", "value"} for one setting, or {"settings": {name: value, ...}}
 * for several at once (all or none). */
static json_t *host_set(struct request *req)
{
	const char *name = arg_str(req->args, "name"), *value = arg_str(req->args, "value");
	json_t *many = json_object_get(req->args, "settings");

	if (json_is_object(many) && json_object_size(many) > 0 && !name && !value)
		return set_many(req->d, many);
	if (!name || !value)
		return reply_error("bad_request", NULL, OP_HOST_SET " needs 'name' and 'value', or 'settings'");
	return set_one(req->d, name, value);
}

static json_t *migration_enable(struct request *req) { return set_one(req->d, "migration-enabled", "on"); }
static json_t *migration_disable(struct request *req) { return set_one(req->d, "migration-enabled", "off"); }

static json_t *network_list(struct request *req)
{
	json_t *r;

	pthread_mutex_lock(&req->d->lock);
	r = json_pack("{s:O, s:O}", "networks", json_object_get(req->d->settings, "migration-networks"),
		      "use-any-network", json_object_get(req->d->settings, "use-any-network"));
	pthread_mutex_unlock(&req->d->lock);
	return reply_ok(r);
}

static json_t *network_change(struct request *req, bool add)
{
	struct ferryd *d = req->d;
	const char *cidr = arg_str(req->args, "cidr");
	json_int_t prio = json_integer_value(json_object_get(req->args, "priority"));
	uint8_t addr[16];
	int family, prefix, r;
	json_t *nets, *copy, *n;
	size_t i, at = (size_t)-1;
	char canon[64];

	if (!cidr || cidr_parse(cidr, &family, addr, &prefix) < 0)
		return reply_error("invalid", "for example 10.78.0.0/24 or fd00::/64",
				   "'%s' is not a network in CIDR notation", cidr ? cidr : "");
	/* One spelling per network: no host bits, the address as inet_ntop writes it. */
	if (!migration_cidr_canonical(cidr, canon, sizeof(canon)))
		return reply_error("invalid", canon, "'%s' has host bits set: the network is %s", cidr, canon);
	if (json_object_get(req->args, "priority") && (prio < 0 || prio > 1000))
		return reply_error("invalid", "0..1000", "priority must be from 0 to 1000 (lower is preferred)");
	if (!json_object_get(req->args, "priority"))
		prio = 1;
	pthread_mutex_lock(&d->lock);
	nets = json_object_get(d->settings, "migration-networks");
	json_array_foreach(nets, i, n) {
		char stored[64];
		const char *c = json_string_value(json_object_get(n, "cidr"));
		/* entries saved by older versions may be spelled otherwise */
		if (c && (migration_cidr_canonical(c, stored, sizeof(stored)), strcmp(stored, canon) == 0))
			at = i;
	}
	if (!add && at == (size_t)-1) {
		pthread_mutex_unlock(&d->lock);
		return reply_error("not_found", "see 'ferry migration network list'",
				   "%s is not a migration network of this host", canon);
	}
	copy = json_deep_copy(nets);
	if (at != (size_t)-1)
		json_array_remove(nets, at);
	if (add)
		json_array_append_new(nets, json_pack("{s:s, s:I}", "cidr", canon, "priority", prio));
	r = ferryd_save_settings(d);
	if (r < 0)
		json_object_set(d->settings, "migration-networks", copy);
	else
		d->listen_generation++;
	json_decref(copy);
	pthread_mutex_unlock(&d->lock);
	if (r < 0)
		return reply_error("failed", NULL, "cannot save host settings: %s", strerror(-r));
	return network_list(req);
}

static json_t *network_add(struct request *req) { return network_change(req, true); }
static json_t *network_remove(struct request *req) { return network_change(req, false); }

const struct op_def host_ops[] = {
	{OP_HOST_SHOW, host_show, OP_USER},
	{OP_HOST_SET, host_set, OP_USER},
	{OP_MIGRATION_ENABLE, migration_enable, OP_USER},
	{OP_MIGRATION_DISABLE, migration_disable, OP_USER},
	{OP_MIGRATION_NETWORK_LIST, network_list, OP_USER},
	{OP_MIGRATION_NETWORK_ADD, network_add, OP_USER},
	{OP_MIGRATION_NETWORK_REMOVE, network_remove, OP_USER},
	{NULL, NULL, 0},
};
