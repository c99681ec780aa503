/* The systemd journal's native protocol, when ferry is built with
 * libsystemd. Kept apart from log.h: <syslog.h>, which sd-journal.h
 * includes, defines LOG_ERR and friends as macros. */
#pragma once
#include <stdint.h>

/* Sends one entry: MESSAGE, PRIORITY (syslog's 0..7), SYSLOG_IDENTIFIER,
 * and FERRY_JOB (when job > 0), FERRY_VM, FERRY_PEER, FERRY_PHASE (when
 * given and not empty). 0, or -errno; -ENOSYS when built without libsystemd. */
int journal_send(int priority, const char *ident, const char *message, uint64_t job, const char *vm,
		 const char *peer, const char *phase);
