/* Remote ferryd over TCP with Kerberos: not built yet in this version. */
#include <errno.h>

#include "cli.h"

int remote_connect(struct cli *cli)
{
	print_error("unavailable", "remote hosts (-H) need Kerberos support, which this build lacks",
		    "run ferry on the host itself");
	return -ENOTSUP;
}

void remote_close(struct cli *cli) { (void)cli; }
