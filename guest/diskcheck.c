/*
 * diskcheck: host-side checker for the ferry test guest's data disk.
 *
 *   diskcheck IMAGE [--json] [--format FMT] [--boot-id HEX] [--force-share]
 *
 * IMAGE is read as raw.  A qcow2 image is detected by its magic and
 * converted first with `qemu-img convert -O raw` into a temporary file
 * (also done for any --format other than raw). --force-share reads an image
 * a QEMU still holds open (qemu-img -U): only consistent while that VM is
 * suspended (ferry vm suspend), which writes out QEMU's caches.  Record format: record.h.
 *
 * Passes (exit 0) when the valid records of one boot form an unbroken
 * sequence ending at the newest record:  seq first..last, where
 * first = 1, or last-nblocks+1 once the ring has wrapped, every record in
 * its own block (seq % nblocks) with a good CRC and payload, and no damaged
 * record anywhere on the disk.  Otherwise it names the first problem (exit 1).
 * Exit 2: usage or I/O error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "record.h"

enum { S_EMPTY = 0, S_VALID = 1, S_BAD = 2 };

struct slot {
	uint64_t boot;
	uint64_t seq;
	uint64_t nblocks;
	uint8_t state;
	const char *why; /* for S_BAD */
};

static int json;
static int force_share;
static char errbuf[1024];

static void usage(void)
{
	fprintf(stderr,
		"usage: diskcheck IMAGE [--json] [--format raw|qcow2|FMT] [--boot-id HEX] [--force-share]\n"
		"  Verifies the ferry guest's record ring on a data disk image.\n"
		"  Non-raw images are converted with qemu-img into a temporary file.\n");
	exit(2);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static char tmpraw[4096];

static void cleanup(void)
{
	if (tmpraw[0])
		unlink(tmpraw);
}

/* I/O or usage trouble: exit 2 (still JSON when asked). */
static void die(const char *fmt, ...)
{
	char m[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	if (json) {
		printf("{\"ok\": false, \"records\": 0, \"first\": null, \"last\": null, \"error\": ");
		json_str(m);
		printf("}\n");
	} else {
		fprintf(stderr, "diskcheck: %s\n", m);
	}
	cleanup();
	exit(2);
}

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
}

static const char *convert(const char *image, const char *fmt)
{
	const char *dir = getenv("TMPDIR");
	snprintf(tmpraw, sizeof(tmpraw), "%s/diskcheck-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(tmpraw);
	if (fd < 0) {
		tmpraw[0] = 0;
		die("cannot create temporary file: %s", strerror(errno));
	}
	close(fd);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);
		if (nul >= 0)
			dup2(nul, STDOUT_FILENO);
		if (force_share)
			execlp("qemu-img", "qemu-img", "convert", "-U", "-f", fmt, "-O", "raw", image, tmpraw,
			       (char *)NULL);
		else
			execlp("qemu-img", "qemu-img", "convert", "-f", fmt, "-O", "raw", image, tmpraw,
			       (char *)NULL);
		fprintf(stderr, "diskcheck: cannot run qemu-img: %s\n", strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("qemu-img convert -f %s -O raw %s failed", fmt, image);
	return tmpraw;
}

static void classify(const unsigned char *b, struct slot *s)
{
	s->state = S_EMPTY;
	if (memcmp(b, FERRY_REC_MAGIC, 8) != 0)
		return;
	s->state = S_BAD;
	s->boot = ferry_get64(b + 16);
	s->seq = ferry_get64(b + 24);
	s->nblocks = ferry_get64(b + 48);
	if (ferry_get32(b + 8) != FERRY_REC_VERSION || ferry_get32(b + 12) != FERRY_REC_SIZE) {
		s->why = "unknown version or size";
		return;
	}
	if (ferry_get32(b + FERRY_REC_CRC_OFF) != ferry_crc32(b, FERRY_REC_CRC_OFF)) {
		s->why = "CRC mismatch";
		return;
	}
	static unsigned char want[FERRY_REC_SIZE];
	ferry_rec_payload(want, s->boot, s->seq);
	if (memcmp(want + FERRY_REC_HDR, b + FERRY_REC_HDR, FERRY_REC_CRC_OFF - FERRY_REC_HDR)) {
		s->why = "payload does not match its seq";
		return;
	}
	if (s->seq == 0) {
		s->why = "seq 0";
		return;
	}
	s->state = S_VALID;
}

static void describe(const struct slot *s, uint64_t boot, char *buf, size_t n)
{
	if (s->state == S_EMPTY)
		snprintf(buf, n, "empty");
	else if (s->state == S_BAD)
		snprintf(buf, n, "damaged record (%s)", s->why);
	else if (s->boot != boot)
		snprintf(buf, n, "seq %" PRIu64 " of boot %016" PRIx64, s->seq, s->boot);
	else
		snprintf(buf, n, "seq %" PRIu64, s->seq);
}

int main(int argc, char **argv)
{
	const char *image = NULL, *format = NULL;
	uint64_t want_boot = 0;
	int have_boot = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--force-share"))
			force_share = 1;
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--format") && i + 1 < argc)
			format = argv[++i];
		else if (!strncmp(argv[i], "--format=", 9))
			format = argv[i] + 9;
		else if (!strcmp(argv[i], "--boot-id") && i + 1 < argc) {
			want_boot = strtoull(argv[++i], NULL, 16);
			have_boot = 1;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			usage();
		else if (argv[i][0] == '-' || image)
			usage();
		else
			image = argv[i];
	}
	if (!image)
		usage();

	int fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot open %s: %s", image, strerror(errno));
	if (!format) {
		unsigned char m[4] = {0};
		if (pread(fd, m, 4, 0) == 4 && !memcmp(m, "QFI\xfb", 4))
			format = "qcow2";
		else
			format = "raw";
	}
	if (strcmp(format, "raw") != 0) {
		close(fd);
		fd = open(convert(image, format), O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die("cannot open converted image: %s", strerror(errno));
	}
	struct stat st;
	if (fstat(fd, &st) != 0)
		die("stat: %s", strerror(errno));
	uint64_t nblocks = (uint64_t)st.st_size / FERRY_REC_SIZE;
	if (S_ISBLK(st.st_mode))
		die("%s is a block device; give an image file", image);
	struct slot *slots = calloc(nblocks ? nblocks : 1, sizeof(*slots));
	if (!slots)
		die("out of memory for %" PRIu64 " blocks", nblocks);

	/* pass 1: classify every block */
	const size_t chunk = 256;
	unsigned char *buf = malloc(chunk * FERRY_REC_SIZE);
	if (!buf)
		die("out of memory");
	uint64_t nvalid = 0, nbad = 0, first_bad = 0;
	uint64_t boots[8];
	size_t nboots = 0, nboots_all = 0;
	for (uint64_t blk = 0; blk < nblocks; blk += chunk) {
		size_t cnt = (size_t)(nblocks - blk < chunk ? nblocks - blk : chunk);
		size_t len = cnt * FERRY_REC_SIZE, got = 0;
		while (got < len) {
			ssize_t r = pread(fd, buf + got, len - got,
					  (off_t)(blk * FERRY_REC_SIZE + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				die("read %s: %s", image, r < 0 ? strerror(errno) : "unexpected end");
			got += (size_t)r;
		}
		for (size_t i = 0; i < cnt; i++) {
			struct slot *s = &slots[blk + i];
			classify(buf + i * FERRY_REC_SIZE, s);
			if (s->state == S_BAD && nbad++ == 0)
				first_bad = blk + i;
			if (s->state != S_VALID)
				continue;
			nvalid++;
			size_t k;
			for (k = 0; k < nboots && boots[k] != s->boot; k++)
				;
			if (k == nboots) {
				nboots_all++;
				if (nboots < 8)
					boots[nboots++] = s->boot;
			}
		}
	}
	free(buf);
	close(fd);

	/* pass 2: pick the boot and check its sequence */
	uint64_t boot = 0, first = 0, last = 0, records = 0;
	int wrapped = 0;
	errbuf[0] = 0;
	if (nblocks == 0)
		fail("no records (image smaller than one block)");
	else if (nvalid == 0 && nbad == 0)
		fail("no records");
	else if (nvalid == 0)
		fail("no valid records; %" PRIu64 " damaged, first at block %" PRIu64 " (%s)", nbad,
		     first_bad, slots[first_bad].why);
	else if (!have_boot && nboots_all > 1) {
		char list[200] = "";
		for (size_t k = 0; k < nboots && strlen(list) < 150; k++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%016" PRIx64,
				 k ? ", " : "", boots[k]);
		fail("records of %zu boots on the disk (%s): the guest restarted; choose one with "
		     "--boot-id", nboots_all, list);
	} else {
		boot = have_boot ? want_boot : boots[0];
		for (uint64_t b = 0; b < nblocks; b++) {
			const struct slot *s = &slots[b];
			if (s->state != S_VALID || s->boot != boot)
				continue;
			if (s->seq % nblocks != b || s->nblocks != nblocks) {
				fail("record seq %" PRIu64 " is in block %" PRIu64 ", expected block %"
				     PRIu64 " (writer ring size %" PRIu64 ", image has %" PRIu64
				     " blocks)", s->seq, b, s->seq % nblocks, s->nblocks, nblocks);
				break;
			}
			if (s->seq > last)
				last = s->seq;
		}
		if (!errbuf[0] && last == 0)
			fail("no records of boot %016" PRIx64, boot);
		if (!errbuf[0]) {
			wrapped = last >= nblocks;
			first = wrapped ? last - nblocks + 1 : 1;
			for (uint64_t q = first; q <= last; q++) {
				const struct slot *s = &slots[q % nblocks];
				if (s->state == S_VALID && s->boot == boot && s->seq == q)
					continue;
				char d[128];
				describe(s, boot, d, sizeof(d));
				fail("gap: seq %" PRIu64 " missing (block %" PRIu64 " holds %s); "
				     "records %" PRIu64 "..%" PRIu64 " intact, newest is %" PRIu64,
				     q, q % nblocks, d, first, q - 1, last);
				break;
			}
		}
		if (!errbuf[0] && nbad)
			fail("damaged record in block %" PRIu64 " (%s, claims seq %" PRIu64
			     "); %" PRIu64 " damaged block(s) in all", first_bad,
			     slots[first_bad].why, slots[first_bad].seq, nbad);
		if (!errbuf[0])
			records = last - first + 1;
	}
	free(slots);
	cleanup();

	int ok = !errbuf[0];
	if (json) {
		printf("{\"ok\": %s, \"records\": %" PRIu64 ", ", ok ? "true" : "false", records);
		if (ok)
			printf("\"first\": %" PRIu64 ", \"last\": %" PRIu64 ", ", first, last);
		else
			printf("\"first\": null, \"last\": null, ");
		if (boot)
			printf("\"boot_id\": \"%016" PRIx64 "\", ", boot);
		else
			printf("\"boot_id\": null, ");
		printf("\"nblocks\": %" PRIu64 ", \"wrapped\": %s, \"error\": ", nblocks,
		       wrapped ? "true" : "false");
		if (ok)
			printf("null");
		else
			json_str(errbuf);
		printf("}\n");
	} else if (ok) {
		printf("ok records=%" PRIu64 " first=%" PRIu64 " last=%" PRIu64 "\n", records, first,
		       last);
	} else {
		printf("FAIL %s\n", errbuf);
	}
	return ok ? 0 : 1;
}
