/* The readers of peer messages (peer_msg.c): a good message of each type is
 * accepted; a missing field, a wrong type, an oversized value, a bad choice
 * and a bad key are refused with the field named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "peer_msg.h"

#define PSK "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
#define CONFIG                                                                                                 \
	"{\"name\":\"web1\",\"memory-mib\":64,\"vcpus\":1,\"kernel\":\"/srv/vms/vmlinuz\","                       \
	"\"disks\":[{\"path\":\"/srv/vms/web1.qcow2\",\"format\":\"qcow2\"}],\"nics\":[]}"
#define SIZES "[{\"path\":\"/srv/vms/web1.qcow2\",\"size\":1048576,\"allocated\":0}]"
#define PREPARE                                                                                                \
	"{\"config\":" CONFIG ",\"include-storage\":true,\"disks\":" SIZES ",\"storage-path\":\"/srv/vms\","       \
	"\"source\":{\"accelerator\":\"kvm\",\"cpu-flags\":[\"fpu\",\"sse2\"]},\"psk-identity\":\"ferry-move-7\","   \
	"\"psk\":\"" PSK "\",\"encryption\":true,\"performance\":\"tcpip\",\"channels\":4}"

static json_t *load(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	assert_non_null(j);
	return j;
}

/* The good prepare with one field replaced (value NULL: removed). */
static json_t *prepare_with(const char *key, json_t *value)
{
	json_t *j = load(PREPARE);

	if (value)
		json_object_set_new(j, key, value);
	else
		json_object_del(j, key);
	return j;
}

/* Refused with code (peer_msg_code) and err containing needle. */
static void prepare_refused(json_t *args, const char *code, const char *needle)
{
	struct peer_prepare p;
	char err[1024] = "";
	int r = peer_read_prepare(args, &p, err, sizeof(err));

	if (r == 0 || !strstr(err, needle) || strcmp(peer_msg_code(r), code) != 0)
		fail_msg("expected %s naming '%s', got %d %s: %s", code, needle, r, peer_msg_code(r), err);
	json_decref(args);
}

static void test_prepare_good(void **state)
{
	json_t *j = load(PREPARE);
	struct peer_prepare p;
	char err[1024];

	(void)state;
	assert_int_equal(peer_read_prepare(j, &p, err, sizeof(err)), 0);
	assert_true(p.encryption);
	assert_true(p.check.include_storage);
	assert_string_equal(p.psk, PSK);
	assert_string_equal(p.psk_identity, "ferry-move-7");
	assert_string_equal(p.performance, "tcpip");
	assert_int_equal(p.channels, 4);
	assert_string_equal(p.check.storage_path, "/srv/vms");
	assert_null(p.check.vm_path);
	assert_int_equal(json_array_size(p.check.disks), 1);
	/* normalized: defaults filled in, the message left as it was */
	assert_non_null(json_object_get(p.check.config, "id"));
	assert_null(json_object_get(json_object_get(j, "config"), "id"));
	peer_check_clear(&p.check);
	json_decref(j);
}

static void test_prepare_defaults(void **state)
{
	json_t *j = load(PREPARE);
	struct peer_prepare p;
	char err[1024];

	(void)state;
	json_object_del(j, "channels");
	json_object_del(j, "source");
	json_object_del(j, "storage-path");
	json_object_set_new(j, "encryption", json_false());
	json_object_del(j, "psk");
	json_object_del(j, "psk-identity");
	assert_int_equal(peer_read_prepare(j, &p, err, sizeof(err)), 0);
	assert_false(p.encryption);
	assert_null(p.psk);
	assert_int_equal(p.channels, 0);
	assert_null(p.check.source);
	peer_check_clear(&p.check);
	json_decref(j);
}

static void test_prepare_missing(void **state)
{
	(void)state;
	prepare_refused(prepare_with("performance", NULL), "bad_request", "performance");
	prepare_refused(prepare_with("psk", NULL), "bad_request", "psk");
	prepare_refused(prepare_with("psk-identity", NULL), "bad_request", "psk-identity");
	prepare_refused(prepare_with("disks", NULL), "bad_request", "disks");
	prepare_refused(prepare_with("config", NULL), "invalid", "config");
	prepare_refused(json_null(), "bad_request", "arguments");
}

static void test_prepare_wrong_type(void **state)
{
	(void)state;
	prepare_refused(prepare_with("channels", json_string("4")), "bad_request", "channels");
	prepare_refused(prepare_with("encryption", json_string("false")), "bad_request", "encryption");
	prepare_refused(prepare_with("include-storage", json_integer(1)), "bad_request", "include-storage");
	prepare_refused(prepare_with("psk", json_integer(12345678)), "bad_request", "psk");
	prepare_refused(prepare_with("storage-path", json_true()), "bad_request", "storage-path");
	prepare_refused(prepare_with("disks", load("{\"path\":\"/srv/vms/a\"}")), "bad_request", "disks");
	prepare_refused(prepare_with("disks", load("[[\"/srv/vms/a\", 1]]")), "bad_request", "disks[0]");
	prepare_refused(prepare_with("disks", load("[{\"path\":\"/srv/vms/a\",\"size\":\"1048576\",\"allocated\":0}]")),
			"bad_request", "disks[0].size");
	prepare_refused(prepare_with("disks", load("[{\"path\":\"/srv/vms/a\",\"size\":1,\"allocated\":-1}]")),
			"bad_request", "disks[0].allocated");
	prepare_refused(prepare_with("disks", load("[{\"path\":\"/srv/vms/a\",\"size\":1,\"allocated\":0,"
						   "\"fingerprint\":\"x\"}]")),
			"bad_request", "disks[0].fingerprint");
	prepare_refused(prepare_with("source", json_string("kvm")), "bad_request", "source");
	prepare_refused(prepare_with("source", load("{\"cpu-flags\":[\"fpu\",7]}")), "bad_request",
			"source.cpu-flags[1]");
	prepare_refused(prepare_with("config", load("[{\"name\":\"web1\"}]")), "invalid", "configuration");
	prepare_refused(prepare_with("config", load("{\"name\":\"web1\",\"kernel\":\"/k\",\"memory-mib\":\"64\"}")),
			"invalid", "memory-mib");
}

static void test_prepare_oversize(void **state)
{
	char big[5001];
	json_t *flags = json_array();

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	prepare_refused(prepare_with("performance", json_string(big)), "bad_request", "performance");
	prepare_refused(prepare_with("psk-identity", json_string(big)), "bad_request", "psk-identity");
	prepare_refused(prepare_with("psk", json_string(big)), "bad_request", "psk");
	prepare_refused(prepare_with("channels", json_integer(65)), "bad_request", "channels");
	prepare_refused(prepare_with("channels", json_integer(-1)), "bad_request", "channels");
	prepare_refused(prepare_with("disks", load("[{\"path\":\"/srv/vms/a\",\"size\":72057594037927937,"
						   "\"allocated\":0}]")),
			"bad_request", "disks[0].size");
	prepare_refused(prepare_with("disks", load("[" "{\"path\":\"/a\",\"size\":1,\"allocated\":0},"
						   "{\"path\":\"/a\",\"size\":1,\"allocated\":0},"
						   "{\"path\":\"/a\",\"size\":1,\"allocated\":0},"
						   "{\"path\":\"/a\",\"size\":1,\"allocated\":0},"
						   "{\"path\":\"/a\",\"size\":1,\"allocated\":0},"
						   "{\"path\":\"/a\",\"size\":1,\"allocated\":0},"
						   "{\"path\":\"/a\",\"size\":1,\"allocated\":0},"
						   "{\"path\":\"/a\",\"size\":1,\"allocated\":0},"
						   "{\"path\":\"/a\",\"size\":1,\"allocated\":0}]")),
			"bad_request", "disks");
	for (int i = 0; i <= PEER_CPU_FLAGS_MAX; i++)
		json_array_append_new(flags, json_string("fpu"));
	prepare_refused(prepare_with("source", json_pack("{s:o}", "cpu-flags", flags)), "bad_request", "cpu-flags");
	prepare_refused(prepare_with("source", json_pack("{s:[s]}", "cpu-flags", big)), "bad_request", "cpu-flags[0]");
}

static void test_prepare_bad_enum(void **state)
{
	(void)state;
	prepare_refused(prepare_with("performance", json_string("fast")), "bad_request", "performance");
	prepare_refused(prepare_with("performance", json_string("TCPIP")), "bad_request", "performance");
	prepare_refused(prepare_with("source", load("{\"accelerator\":\"hvf\"}")), "bad_request", "source.accelerator");
	prepare_refused(prepare_with("config", load("{\"name\":\"web1\",\"kernel\":\"/k\",\"disks\":[{\"path\":\"/a\","
						    "\"format\":\"vmdk\"}]}")),
			"invalid", "format");
}

static void test_prepare_bad_psk(void **state)
{
	char nl[65];

	(void)state;
	/* 64 characters, not all hex: a newline would add a line to keys.psk */
	memcpy(nl, PSK, 64);
	nl[63] = '\n';
	nl[64] = 0;
	prepare_refused(prepare_with("psk", json_string(nl)), "bad_request", "psk");
	prepare_refused(prepare_with("psk", json_string(PSK "00")), "bad_request", "psk");
	prepare_refused(prepare_with("psk", json_string("")), "bad_request", "psk");
	prepare_refused(prepare_with("psk-identity", json_string("ferry:move")), "bad_request", "psk-identity");
	prepare_refused(prepare_with("psk-identity", json_string("-x")), "bad_request", "psk-identity");
}

static void test_prepare_unclean_paths(void **state)
{
	(void)state;
	prepare_refused(prepare_with("storage-path", json_string("/srv/vms/")), "bad_request", "storage-path");
	prepare_refused(prepare_with("vm-path", json_string("/srv/vms/../etc")), "bad_request", "vm-path");
	prepare_refused(prepare_with("disks", load("[{\"path\":\"/srv/vms/a/..\",\"size\":1,\"allocated\":0}]")),
			"bad_request", "disks[0].path");
	prepare_refused(prepare_with("disks", load("[{\"path\":\"a.qcow2\",\"size\":1,\"allocated\":0}]")),
			"bad_request", "disks[0].path");
	/* vmconfig lets these through; a peer may not */
	prepare_refused(prepare_with("config", load("{\"name\":\"web1\",\"disks\":[{\"path\":\"/srv/vms/x/..\"}]}")),
			"invalid", "disk 0 path");
	prepare_refused(prepare_with("config", load("{\"name\":\"web1\",\"disks\":[{\"path\":\"/srv//x\"}]}")),
			"invalid", "disk 0 path");
	prepare_refused(prepare_with("config", load("{\"name\":\"web1\",\"kernel\":\"/srv/./k\"}")), "invalid",
			"kernel");
	prepare_refused(prepare_with("config", load("{\"name\":\"web1\",\"kernel\":\"/k\",\"initrd\":\"/i/\"}")),
			"invalid", "initrd");
	prepare_refused(prepare_with("config", load("{\"name\":\"web1\",\"kernel\":\"/k\",\"vm-path\":\"/v/.\"}")),
			"invalid", "vm-path");
	/* the VM's directory goes where the configuration says: the request's checked path */
	prepare_refused(prepare_with("config", load("{\"name\":\"web1\",\"kernel\":\"/k\",\"vm-path\":\"/etc\"}")),
			"bad_request", "vm-path");
	{
		json_t *j = prepare_with("vm-path", json_string("/srv/vms"));
		json_object_set_new(json_object_get(j, "config"), "vm-path", json_string("/srv/vms/x"));
		prepare_refused(j, "bad_request", "vm-path");
	}
}

static void test_check(void **state)
{
	json_t *j = load(PREPARE);
	struct peer_check c;
	char err[1024];

	(void)state;
	/* migrate.check carries no key: none needed */
	json_object_del(j, "psk");
	json_object_del(j, "psk-identity");
	json_object_del(j, "performance");
	assert_int_equal(peer_read_check(j, &c, err, sizeof(err)), 0);
	assert_true(c.include_storage);
	assert_non_null(c.source);
	peer_check_clear(&c);
	/* without storage, a shared raw file may be empty */
	json_object_set_new(j, "include-storage", json_false());
	json_object_set_new(j, "disks", load("[{\"path\":\"/srv/vms/web1.qcow2\",\"size\":0,\"allocated\":0,"
					     "\"fingerprint\":{\"file-size\":0}}]"));
	assert_int_equal(peer_read_check(j, &c, err, sizeof(err)), 0);
	peer_check_clear(&c);
	/* with storage it may not */
	json_object_set_new(j, "include-storage", json_true());
	assert_int_equal(peer_read_check(j, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "migrate.check: disks[0].size"));
	json_object_del(j, "disks");
	assert_int_equal(peer_read_check(j, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "migrate.check: disks"));
	json_decref(j);
}

static void test_name(void **state)
{
	static const char *const bad[] = {"{}", "{\"name\":[\"victim\"]}", "{\"name\":\"../x\"}", "{\"name\":\"\"}",
					  "{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}"};
	const char *name;
	char err[256];
	json_t *j = load("{\"name\":\"web1\"}");

	(void)state;
	assert_int_equal(peer_read_name(j, OP_MIGRATE_FINISH, &name, err, sizeof(err)), 0);
	assert_string_equal(name, "web1");
	json_decref(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = load(bad[i]);
		assert_int_equal(peer_read_name(j, OP_MIGRATE_ABORT, &name, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "migrate.abort: name"));
		json_decref(j);
	}
}

static void test_kept_copy(void **state)
{
	static const char *const bad[] = {"{\"kept-copy-token\":\"00112233445566778899AABBCCDDEEFF\"}",
					  "{\"kept-copy-token\":\"0011\"}", "{\"kept-copy-token\":7}",
					  "{\"kept-copy-token\":\"../../../../etc/passwd/0123456789\"}"};
	const char *tok;
	char err[256];
	bool kept;
	json_t *j = load("{\"name\":\"web1\",\"kept-copy-token\":\"00112233445566778899aabbccddeeff\"}");

	(void)state;
	assert_int_equal(peer_read_kept_token(j, OP_MIGRATE_FINISH, &tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "00112233445566778899aabbccddeeff");
	json_decref(j);
	j = load("{\"name\":\"web1\"}");
	assert_int_equal(peer_read_kept_token(j, OP_MIGRATE_FINISH, &tok, err, sizeof(err)), 0);
	assert_null(tok);
	/* an older destination does not say: not recorded */
	assert_int_equal(peer_read_kept_recorded(j, &kept, err, sizeof(err)), 0);
	assert_false(kept);
	json_decref(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = load(bad[i]);
		assert_int_equal(peer_read_kept_token(j, OP_MIGRATE_FINISH, &tok, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "kept-copy-token"));
		json_decref(j);
	}
	j = load("{\"kept-copy-recorded\":true}");
	assert_int_equal(peer_read_kept_recorded(j, &kept, err, sizeof(err)), 0);
	assert_true(kept);
	json_decref(j);
	j = load("{\"kept-copy-recorded\":\"yes\"}");
	assert_int_equal(peer_read_kept_recorded(j, &kept, err, sizeof(err)), -EPROTO);
	assert_false(kept);
	json_decref(j);
}

static void addresses_refused(const char *text, const char *needle)
{
	struct peer_addresses a;
	char err[512] = "";
	json_t *j = load(text);

	if (peer_read_addresses_reply(j, &a, err, sizeof(err)) != -EPROTO || !strstr(err, needle))
		fail_msg("%s: expected a refusal naming '%s': %s", text, needle, err);
	json_decref(j);
}

static void test_addresses_reply(void **state)
{
	struct peer_addresses a;
	char err[512];
	json_t *j = load("{\"addresses\":[{\"address\":\"10.78.0.12\",\"priority\":1},{\"address\":\"fd00::12\","
			 "\"priority\":1001}],\"migration-enabled\":true,\"encryption-required\":true}");

	(void)state;
	assert_int_equal(peer_read_addresses_reply(j, &a, err, sizeof(err)), 0);
	assert_int_equal(a.n, 2);
	assert_string_equal(a.first, "10.78.0.12");
	assert_true(a.migration_enabled && a.encryption_required);
	json_decref(j);
	/* encryption-required is optional, the list may be empty */
	j = load("{\"addresses\":[],\"migration-enabled\":false}");
	assert_int_equal(peer_read_addresses_reply(j, &a, err, sizeof(err)), 0);
	assert_int_equal(a.n, 0);
	assert_string_equal(a.first, "");
	assert_false(a.migration_enabled || a.encryption_required);
	json_decref(j);

	addresses_refused("{\"migration-enabled\":true}", "addresses");
	addresses_refused("{\"addresses\":{},\"migration-enabled\":true}", "addresses");
	addresses_refused("{\"addresses\":[{\"priority\":1}],\"migration-enabled\":true}", "addresses[0].address");
	addresses_refused("{\"addresses\":[{\"address\":\"host2.example.com\",\"priority\":1}],\"migration-enabled\":true}",
			  "addresses[0].address");
	addresses_refused("{\"addresses\":[{\"address\":\"10.0.0.1\",\"priority\":\"1\"}],\"migration-enabled\":true}",
			  "addresses[0].priority");
	addresses_refused("{\"addresses\":[{\"address\":\"10.0.0.1\",\"priority\":1002}],\"migration-enabled\":true}",
			  "addresses[0].priority");
	addresses_refused("{\"addresses\":[]}", "migration-enabled");
	addresses_refused("{\"addresses\":[],\"migration-enabled\":\"yes\"}", "migration-enabled");
	addresses_refused("{\"addresses\":[],\"migration-enabled\":true,\"encryption-required\":1}",
			  "encryption-required");
	/* the destination's clock, to relate the two hosts' times */
	j = load("{\"addresses\":[],\"migration-enabled\":true,\"clock-ms\":1717171717123}");
	assert_int_equal(peer_read_addresses_reply(j, &a, err, sizeof(err)), 0);
	assert_int_equal(a.clock_ms, 1717171717123LL);
	json_decref(j);
	addresses_refused("{\"addresses\":[],\"migration-enabled\":true,\"clock-ms\":0}", "clock-ms");
	addresses_refused("{\"addresses\":[],\"migration-enabled\":true,\"clock-ms\":\"now\"}", "clock-ms");
	addresses_refused("{\"addresses\":[],\"migration-enabled\":true,\"clock-ms\":1e12}", "clock-ms");
	addresses_refused("{\"addresses\":[],\"migration-enabled\":true,\"clock-ms\":253402300800001}", "clock-ms");
}

static void test_finish_reply(void **state)
{
	static const char *const bad[] = {
		"{\"resumed-ms\":0}", "{\"resumed-ms\":-5}", "{\"resumed-ms\":\"1\"}", "{\"resumed-ms\":1.5}",
		"{\"resumed-ms\":253402300800001}",
	};
	char err[512];
	int64_t t = -1;
	json_t *j = load("{\"name\":\"web1\",\"resumed-ms\":1717171717999}");

	(void)state;
	assert_int_equal(peer_read_finish_reply(j, &t, err, sizeof(err)), 0);
	assert_int_equal(t, 1717171717999LL);
	json_decref(j);
	/* an older destination does not say: no pause measured */
	j = load("{\"name\":\"web1\"}");
	assert_int_equal(peer_read_finish_reply(j, &t, err, sizeof(err)), 0);
	assert_int_equal(t, 0);
	json_decref(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = load(bad[i]);
		err[0] = '\0';
		if (peer_read_finish_reply(j, &t, err, sizeof(err)) != -EPROTO || !strstr(err, "resumed-ms"))
			fail_msg("%s: expected a refusal naming resumed-ms: %s", bad[i], err);
		json_decref(j);
	}
}

static void test_check_reply(void **state)
{
	static const char *const bad[][2] = {
		{"{\"capabilities\":{}}", "problems"},
		{"{\"problems\":\"none\",\"capabilities\":{}}", "problems"},
		{"{\"problems\":[\"a\",null],\"capabilities\":{}}", "problems[1]"},
		{"{\"problems\":[\"\"],\"capabilities\":{}}", "problems[0]"},
		{"{\"problems\":[]}", "capabilities"},
		{"{\"problems\":[],\"capabilities\":[]}", "capabilities"},
	};
	json_t *j = load("{\"problems\":[\"not enough memory\"],\"capabilities\":{}}"), *problems = NULL;
	char err[512];

	(void)state;
	assert_int_equal(peer_read_check_reply(j, &problems, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(problems), 1);
	json_decref(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = load(bad[i][0]);
		assert_int_equal(peer_read_check_reply(j, &problems, err, sizeof(err)), -EPROTO);
		if (!strstr(err, bad[i][1]))
			fail_msg("%s: %s", bad[i][0], err);
		json_decref(j);
	}
	/* too many, too long */
	j = json_pack("{s:[], s:{}}", "problems", "capabilities");
	for (int i = 0; i <= PEER_PROBLEMS_MAX; i++)
		json_array_append_new(json_object_get(j, "problems"), json_string("x"));
	assert_int_equal(peer_read_check_reply(j, &problems, err, sizeof(err)), -EPROTO);
	json_array_clear(json_object_get(j, "problems"));
	{
		char big[PEER_PROBLEM_LEN_MAX + 2];
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		json_array_append_new(json_object_get(j, "problems"), json_string(big));
	}
	assert_int_equal(peer_read_check_reply(j, &problems, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "problems[0]"));
	json_decref(j);
}

static void test_check_room(void **state)
{
	static const char *const bad[][2] = {
		{"{\"room\":[]}", "room must be an object"},
		{"{\"room\":{\"memory-needed-mib\":1}}", "list of at most"},
		{"{\"room\":{\"disks\":[],\"memory-needed-mib\":-1,\"memory-available-mib\":1,"
		 "\"max-migrations\":1,\"max-storage-migrations\":1}}", "memory-needed-mib"},
		{"{\"room\":{\"disks\":[],\"memory-needed-mib\":1,\"memory-available-mib\":1,"
		 "\"max-migrations\":0,\"max-storage-migrations\":1}}", "max-migrations"},
		{"{\"room\":{\"disks\":[{\"dir\":\"/srv/../etc\",\"needed\":1,\"free\":2}],"
		 "\"memory-needed-mib\":1,\"memory-available-mib\":1,\"max-migrations\":1,"
		 "\"max-storage-migrations\":1}}", "disks[0]"},
		{"{\"room\":{\"disks\":[{\"dir\":\"/srv\",\"needed\":1,\"free\":\"2\"}],"
		 "\"memory-needed-mib\":1,\"memory-available-mib\":1,\"max-migrations\":1,"
		 "\"max-storage-migrations\":1}}", "disks[0]"},
	};
	json_t *j = load("{\"problems\":[],\"capabilities\":{},\"room\":{\"memory-needed-mib\":256,"
			 "\"memory-available-mib\":4000,\"max-migrations\":2,\"max-storage-migrations\":1,"
			 "\"extra\":true,\"disks\":[{\"dir\":\"/srv/vms\",\"needed\":100,\"free\":5000,\"x\":1}]}}");
	json_t *room = NULL;
	char err[512];

	(void)state;
	assert_int_equal(peer_read_check_room(j, &room, err, sizeof(err)), 0);
	assert_non_null(room);
	/* only the named fields come through */
	assert_null(json_object_get(room, "extra"));
	assert_null(json_object_get(json_array_get(json_object_get(room, "disks"), 0), "x"));
	assert_int_equal(json_integer_value(json_object_get(room, "memory-available-mib")), 4000);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(room, "disks"), 0), "free")),
			 5000);
	json_decref(room);
	json_decref(j);
	/* an older destination sends none */
	j = load("{\"problems\":[],\"capabilities\":{}}");
	assert_int_equal(peer_read_check_room(j, &room, err, sizeof(err)), 0);
	assert_null(room);
	json_decref(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = load(bad[i][0]);
		assert_int_equal(peer_read_check_room(j, &room, err, sizeof(err)), -EPROTO);
		if (!strstr(err, bad[i][1]))
			fail_msg("%s: %s", bad[i][0], err);
		json_decref(j);
	}
}

static void test_check_reuse(void **state)
{
	static const char *const bad[] = {
		"{\"reuse\":true}",
		"{\"reuse\":[true]}",           /* one disk short */
		"{\"reuse\":[true,false,true]}", /* one too many */
		"{\"reuse\":[true,null]}",
		"{\"reuse\":[1,0]}",
		"{\"reuse\":[\"true\",false]}",
	};
	json_t *j = load("{\"problems\":[],\"capabilities\":{},\"reuse\":[false,true]}"), *reuse = NULL;
	char err[512];

	(void)state;
	assert_int_equal(peer_read_check_reuse(j, 2, &reuse, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(reuse), 2);
	assert_true(json_is_true(json_array_get(reuse, 1)));
	json_decref(j);
	/* an older destination, or no tokens sent: none */
	j = load("{\"problems\":[],\"capabilities\":{}}");
	assert_int_equal(peer_read_check_reuse(j, 2, &reuse, err, sizeof(err)), 0);
	assert_null(reuse);
	json_decref(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = load(bad[i]);
		err[0] = '\0';
		if (peer_read_check_reuse(j, 2, &reuse, err, sizeof(err)) != -EPROTO || !strstr(err, "reuse must be") ||
		    reuse)
			fail_msg("%s: expected a refusal naming reuse: %s", bad[i], err);
		json_decref(j);
	}
}

static void test_probe(void **state)
{
	static const char *const bad[][2] = {
		{"[]", "arguments"},
		{"{\"milliseconds\":99}", "milliseconds"},
		{"{\"milliseconds\":1001}", "milliseconds"},
		{"{\"milliseconds\":\"500\"}", "milliseconds"},
	};
	struct peer_probe p;
	json_t *j;
	char err[256];

	(void)state;
	assert_int_equal(peer_read_probe(NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(p.milliseconds, PEER_PROBE_MS_MAX);
	j = load("{\"milliseconds\":250,\"more\":1}");
	assert_int_equal(peer_read_probe(j, &p, err, sizeof(err)), 0);
	assert_int_equal(p.milliseconds, 250);
	json_decref(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = load(bad[i][0]);
		assert_int_equal(peer_read_probe(j, &p, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i][1]))
			fail_msg("%s: %s", bad[i][0], err);
		json_decref(j);
	}
}

#define TOKEN "00112233445566778899aabbccddEEFF"

static void test_probe_reply(void **state)
{
	static const char *const bad[][2] = {
		{"{\"token\":\"" TOKEN "\",\"milliseconds\":1000,\"bytes\":1}", "port"},
		{"{\"port\":0,\"token\":\"" TOKEN "\",\"milliseconds\":1000,\"bytes\":1}", "port"},
		{"{\"port\":65536,\"token\":\"" TOKEN "\",\"milliseconds\":1000,\"bytes\":1}", "port"},
		{"{\"port\":5000,\"token\":\"0011\",\"milliseconds\":1000,\"bytes\":1}", "token"},
		{"{\"port\":5000,\"token\":\"" TOKEN "00\",\"milliseconds\":1000,\"bytes\":1}", "token"},
		{"{\"port\":5000,\"token\":\"0011223344556677889900aabbccddxx\",\"milliseconds\":1000,\"bytes\":1}",
		 "token"},
		{"{\"port\":5000,\"token\":\"" TOKEN "\",\"milliseconds\":5000,\"bytes\":1}", "milliseconds"},
		{"{\"port\":5000,\"token\":\"" TOKEN "\",\"milliseconds\":1000,\"bytes\":0}", "bytes"},
		{"{\"port\":5000,\"token\":\"" TOKEN "\",\"milliseconds\":1000,\"bytes\":67108865}", "bytes"},
	};
	static const uint8_t token[PEER_PROBE_TOKEN_LEN] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
							    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
	struct peer_probe_reply p;
	json_t *j;
	char err[256];

	(void)state;
	j = load("{\"port\":40000,\"token\":\"" TOKEN "\",\"milliseconds\":1000,\"bytes\":67108864}");
	assert_int_equal(peer_read_probe_reply(j, &p, err, sizeof(err)), 0);
	assert_int_equal(p.port, 40000);
	assert_memory_equal(p.token, token, sizeof(token));
	assert_int_equal(p.milliseconds, 1000);
	assert_int_equal(p.bytes, PEER_PROBE_BYTES_MAX);
	json_decref(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = load(bad[i][0]);
		assert_int_equal(peer_read_probe_reply(j, &p, err, sizeof(err)), -EPROTO);
		if (!strstr(err, bad[i][1]))
			fail_msg("%s: %s", bad[i][0], err);
		json_decref(j);
	}
}

static void test_probe_result(void **state)
{
	const struct peer_probe_reply asked = {.port = 1, .milliseconds = 500, .bytes = 1000};
	/* 1000 bytes in 1500000 us: both at their limits */
	uint8_t buf[PEER_PROBE_RESULT_LEN] = {0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0, 0x16, 0xe3, 0x60};
	struct peer_probe_result r;
	char err[256];

	(void)state;
	assert_int_equal(peer_read_probe_result(buf, sizeof(buf), &asked, &r, err, sizeof(err)), 0);
	assert_int_equal(r.bytes, 1000);
	assert_int_equal(r.microseconds, 1500000);
	assert_int_equal(peer_read_probe_result(buf, sizeof(buf) - 1, &asked, &r, err, sizeof(err)), -EPROTO);
	buf[7] = 0xe9; /* 1001 bytes */
	assert_int_equal(peer_read_probe_result(buf, sizeof(buf), &asked, &r, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "more bytes"));
	buf[7] = 0xe8;
	buf[15] = 0x61; /* 1 us too late */
	assert_int_equal(peer_read_probe_result(buf, sizeof(buf), &asked, &r, err, sizeof(err)), -EPROTO);
	memset(buf + 8, 0, 8); /* no time at all */
	assert_int_equal(peer_read_probe_result(buf, sizeof(buf), &asked, &r, err, sizeof(err)), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prepare_good),	    cmocka_unit_test(test_prepare_defaults),
		cmocka_unit_test(test_prepare_missing),	    cmocka_unit_test(test_prepare_wrong_type),
		cmocka_unit_test(test_prepare_oversize),    cmocka_unit_test(test_prepare_bad_enum),
		cmocka_unit_test(test_prepare_bad_psk),	    cmocka_unit_test(test_prepare_unclean_paths),
		cmocka_unit_test(test_check),		    cmocka_unit_test(test_name),
		cmocka_unit_test(test_kept_copy),
		cmocka_unit_test(test_addresses_reply),	    cmocka_unit_test(test_check_reply),
		cmocka_unit_test(test_check_room),	    cmocka_unit_test(test_check_reuse),
		cmocka_unit_test(test_probe),		    cmocka_unit_test(test_probe_reply),
		cmocka_unit_test(test_probe_result),
		cmocka_unit_test(test_finish_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
