/* libFuzzer target: the MS-PAC logon information parser (group SIDs). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pac.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **sids = NULL, out[PAC_SID_STR_MAX];
	size_t n = 0;

	if (pac_logon_group_sids(data, size, &sids, &n) == 0) {
		/* what the parser writes must read back as a SID, unchanged */
		for (size_t i = 0; i < n; i++)
			if (sid_normalize(sids[i], out, sizeof(out)) != 0 || strcmp(out, sids[i]) != 0)
				__builtin_trap();
		pac_sids_free(sids, n);
	}
	return 0;
}
