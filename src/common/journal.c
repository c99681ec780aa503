#include "journal.h"

#include <errno.h>

#include "config.h"

#if HAVE_LIBSYSTEMD
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
/* the journal's own CODE_FILE/CODE_LINE would always name this file */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

/* One "NAME=value" field; fields without a value are left out. */
static int add_field(struct iovec *iov, int *n, const char *name, const char *value)
{
	char *s;

	if (!value || !*value)
		return 0;
	if (asprintf(&s, "%s=%s", name, value) < 0)
		return -ENOMEM;
	iov[*n] = (struct iovec){.iov_base = s, .iov_len = strlen(s)};
	(*n)++;
	return 0;
}

int journal_send(int priority, const char *ident, const char *message, uint64_t job, const char *vm,
		 const char *peer, const char *phase)
{
	struct iovec iov[7];
	char prio[16], jobid[24];
	int n = 0, r;

	snprintf(prio, sizeof(prio), "%d", priority);
	snprintf(jobid, sizeof(jobid), "%llu", (unsigned long long)job);
	if ((r = add_field(iov, &n, "MESSAGE", message)) < 0 || (r = add_field(iov, &n, "PRIORITY", prio)) < 0 ||
	    (r = add_field(iov, &n, "SYSLOG_IDENTIFIER", ident)) < 0 ||
	    (r = add_field(iov, &n, "FERRY_JOB", job ? jobid : NULL)) < 0 ||
	    (r = add_field(iov, &n, "FERRY_VM", vm)) < 0 || (r = add_field(iov, &n, "FERRY_PEER", peer)) < 0 ||
	    (r = add_field(iov, &n, "FERRY_PHASE", phase)) < 0)
		goto out;
	r = sd_journal_sendv(iov, n);
out:
	for (int i = 0; i < n; i++)
		free(iov[i].iov_base);
	return r;
}
#else
int journal_send(int priority, const char *ident, const char *message, uint64_t job, const char *vm,
		 const char *peer, const char *phase)
{
	return -ENOSYS;
}
#endif
