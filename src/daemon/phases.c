/* The phase machine (phases.h). */
#include "phases.h"

static bool skipped(const struct phase_row *row, const struct phase_hooks *h, void *ctx)
{
	return h && h->skip && h->skip(ctx, row);
}

void phases_undo(const struct phase_row *rows, size_t upto, const struct phase_hooks *h, void *ctx)
{
	for (size_t i = upto + 1; i-- > 0;)
		if (rows[i].stop && !skipped(&rows[i], h, ctx))
			rows[i].stop(ctx);
	for (size_t i = upto + 1; i-- > 0;)
		if (rows[i].undo && !skipped(&rows[i], h, ctx))
			rows[i].undo(ctx);
}

int phases_run(const struct phase_row *rows, size_t n, const struct phase_hooks *h, void *ctx, size_t *ret_failed)
{
	int r = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (skipped(&rows[i], h, ctx))
			continue;
		if (h && h->enter && (r = h->enter(ctx, &rows[i])) < 0)
			break;
		if ((r = rows[i].run(ctx)) < 0)
			break;
	}
	if (r == 0)
		return 0;
	if (ret_failed)
		*ret_failed = i;
	phases_undo(rows, i, h, ctx);
	return r;
}

int phases_index(const struct phase_row *rows, size_t n, int id)
{
	for (size_t i = 0; i < n; i++)
		if (rows[i].id == id)
			return (int)i;
	return -1;
}
