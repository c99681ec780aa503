/* The prediction's learned rates on disk (learned_store.h). */
#include "learned_store.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* A rate or a time: a finite number, not negative, below a sane bound */
static bool number_ok(const json_t *v, double max)
{
	double x = json_number_value(v);

	return json_is_number(v) && isfinite(x) && x >= 0 && x <= max;
}

static void file_path(const struct ferryd *d, char *out, size_t len)
{
	snprintf(out, len, "%s/learned.json", d->state_dir);
}

void learned_load(struct ferryd *d)
{
	char path[PATH_MAX + 16];
	json_t *all, *e;
	size_t i, n = 0;

	file_path(d, path, sizeof(path));
	if (!(all = json_load_file(path, 0, NULL)))
		return;
	json_array_foreach(all, i, e) {
		const char *dest = json_string_value(json_object_get(e, "dest"));
		const char *kind = json_string_value(json_object_get(e, "kind"));
		if (n >= ARRAY_SIZE(d->learned))
			break;
		if (!dest || !kind || !*dest || strlen(dest) >= sizeof(d->learned[n].dest) ||
		    !*kind || strlen(kind) >= sizeof(d->learned[n].kind) ||
		    !number_ok(json_object_get(e, "stream-bytes-per-second"), 1e13) ||
		    json_number_value(json_object_get(e, "stream-bytes-per-second")) <= 0 ||
		    !number_ok(json_object_get(e, "probe-bytes-per-second"), 1e13) ||
		    !number_ok(json_object_get(e, "switchover-ms"), 3600e3)) {
			log_warn("%s: entry %zu is not a learned rate: left out", path, i);
			continue;
		}
		snprintf(d->learned[n].dest, sizeof(d->learned[n].dest), "%s", dest);
		snprintf(d->learned[n].kind, sizeof(d->learned[n].kind), "%s", kind);
		d->learned[n].l = (struct predict_learned){
			.stream_bps = json_number_value(json_object_get(e, "stream-bytes-per-second")),
			.probe_bps = json_number_value(json_object_get(e, "probe-bytes-per-second")),
			.switchover_ms = json_number_value(json_object_get(e, "switchover-ms")),
		};
		n++;
	}
	json_decref(all);
}

void learned_save(struct ferryd *d)
{
	char path[PATH_MAX + 16];
	json_t *all = json_array();
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(d->learned); i++)
		if (d->learned[i].dest[0])
			json_array_append_new(all, json_pack("{s:s, s:s, s:f, s:f, s:f}", "dest", d->learned[i].dest,
							     "kind", d->learned[i].kind, "stream-bytes-per-second",
							     d->learned[i].l.stream_bps, "probe-bytes-per-second",
							     d->learned[i].l.probe_bps, "switchover-ms",
							     d->learned[i].l.switchover_ms));
	file_path(d, path, sizeof(path));
	if ((r = write_json_atomic(path, all, JSON_INDENT(2), 0600)) < 0)
		log_warn("cannot save what moves taught the prediction to %s: %s", path, strerror(-r));
	json_decref(all);
}
