/*
 * ferry-agent: the workload of the ferry test guest.  Runs as PID 1 (exec'd
 * by /init) and writes everything to stdout, which is the serial console.
 *
 *   ferry-agent [--ip ADDR/PREFIX] [--disk DEV] [--dirty MIBPS] [--mem MIB]
 *               [--rate RECPS]
 *
 * Threads:
 *   main    heartbeat: "ferry-heartbeat N" once per second, N = 1, 2, ...
 *   disk    (--disk) numbered, checksummed records on the raw device, see
 *           record.h; each write is followed by fdatasync.
 *   memory  (--dirty > 0) rewrites --mem MiB of pages at --dirty MiB/s,
 *           verifying each page still holds what was last written to it.
 *
 * Also usable on a host for testing: --disk may be a regular file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "record.h"

#define PAGE 4096u
#define NSEC 1000000000LL

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t boot_id;

struct cfg {
	const char *ip;
	const char *disk;
	long dirty;	/* MiB/s */
	long mem;	/* MiB */
	long rate;	/* records/s */
};
static struct cfg cfg = {NULL, NULL, 0, 64, 20};

/* One write() per line so threads never interleave within a line. */
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	pthread_mutex_lock(&out_lock);
	for (int off = 0; off < n;) {
		ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		off += (int)w;
	}
	pthread_mutex_unlock(&out_lock);
}

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static void sleep_until(int64_t t)
{
	struct timespec ts = {(time_t)(t / NSEC), (long)(t % NSEC)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Advance a pacing deadline by step; never try to catch up more than 1 s. */
static int64_t next_deadline(int64_t deadline, int64_t step)
{
	int64_t now = now_ns(CLOCK_MONOTONIC);
	deadline += step;
	if (deadline < now - NSEC)
		deadline = now;
	return deadline;
}

static uint64_t make_boot_id(void)
{
	uint64_t id = 0;
	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != (ssize_t)sizeof(id)) {
		uint64_t st = (uint64_t)now_ns(CLOCK_REALTIME) ^
			      ((uint64_t)now_ns(CLOCK_MONOTONIC) << 17) ^ (uint64_t)getpid();
		unsigned lo, hi;
		__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
		st ^= ((uint64_t)hi << 32) | lo;
		id = ferry_splitmix64(&st);
	}
	return id ? id : 1;
}

/* ------------------------------------------------------------------ disk */

static int open_disk(const char *path, uint64_t *nblocks)
{
	int fd = -1;
	/* the device node may appear a little after the driver loaded */
	for (int i = 0; i < 100; i++) {
		fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
		if (fd < 0 && errno == EINVAL)
			fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			break;
		usleep(100000);
	}
	if (fd < 0) {
		say("ferry-disk ERROR open %s: %s", path, strerror(errno));
		return -1;
	}
	uint64_t bytes = 0;
	struct stat st;
	if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) {
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			bytes = (uint64_t)st.st_size;
		else
			bytes = 0;
	}
	*nblocks = bytes / FERRY_REC_SIZE;
	if (*nblocks == 0) {
		say("ferry-disk ERROR %s: size %" PRIu64 " bytes is smaller than one record", path, bytes);
		close(fd);
		return -1;
	}
	return fd;
}

static void *disk_thread(void *arg)
{
	(void)arg;
	uint64_t nblocks = 0;
	int fd = open_disk(cfg.disk, &nblocks);
	if (fd < 0)
		return NULL;
	unsigned char *rec;
	if (posix_memalign((void **)&rec, PAGE, FERRY_REC_SIZE) != 0) {
		say("ferry-disk ERROR out of memory");
		return NULL;
	}
	say("ferry-disk start dev=%s nblocks=%" PRIu64 " rate=%ld boot_id=%016" PRIx64, cfg.disk,
	    nblocks, cfg.rate, boot_id);
	int64_t step = NSEC / cfg.rate;
	int64_t deadline = now_ns(CLOCK_MONOTONIC);
	uint64_t seq = 1;
	for (;;) {
		ferry_rec_build(rec, boot_id, seq, (uint64_t)now_ns(CLOCK_REALTIME),
				(uint64_t)now_ns(CLOCK_MONOTONIC), nblocks);
		off_t off = (off_t)((seq % nblocks) * FERRY_REC_SIZE);
		ssize_t w = pwrite(fd, rec, FERRY_REC_SIZE, off);
		int err = errno;
		if (w == (ssize_t)FERRY_REC_SIZE && fdatasync(fd) != 0) {
			w = -1;
			err = errno;
		}
		if (w != (ssize_t)FERRY_REC_SIZE) {
			/* retry the same seq: the sequence on disk stays unbroken */
			say("ferry-disk ERROR seq=%" PRIu64 ": %s", seq,
			    w < 0 ? strerror(err) : "short write");
			sleep(1);
			deadline = now_ns(CLOCK_MONOTONIC);
			continue;
		}
		if (seq % 50 == 0)
			say("ferry-disk seq=%" PRIu64, seq);
		seq++;
		deadline = next_deadline(deadline, step);
		sleep_until(deadline);
	}
	return NULL;
}

/* ---------------------------------------------------------------- memory */

/*
 * Page pattern: 16 words spread over the page (every 256 bytes), all derived
 * from (generation, page index, boot id).  Pass g writes generation g into
 * every page in order; before overwriting a page in pass g > 1 the thread
 * checks it still holds generation g-1.
 */
#define MEM_WORDS 16u
#define MEM_STRIDE (PAGE / MEM_WORDS / 8u) /* in uint64_t units */

static uint64_t page_word(uint64_t gen, uint64_t idx, unsigned k)
{
	uint64_t st = boot_id ^ (gen * 0x9E3779B97F4A7C15ULL) ^ (idx << 20) ^ k;
	return ferry_splitmix64(&st);
}

static void page_write(uint64_t *p, uint64_t gen, uint64_t idx)
{
	p[0] = gen;
	p[1] = idx;
	for (unsigned k = 1; k < MEM_WORDS; k++)
		p[k * MEM_STRIDE] = page_word(gen, idx, k);
	p[PAGE / 8 - 1] = page_word(gen, idx, 0);
}

static int page_ok(const uint64_t *p, uint64_t gen, uint64_t idx)
{
	if (p[0] != gen || p[1] != idx || p[PAGE / 8 - 1] != page_word(gen, idx, 0))
		return 0;
	for (unsigned k = 1; k < MEM_WORDS; k++)
		if (p[k * MEM_STRIDE] != page_word(gen, idx, k))
			return 0;
	return 1;
}

static void *memory_thread(void *arg)
{
	(void)arg;
	size_t npages = (size_t)cfg.mem * (1024 * 1024 / PAGE);
	unsigned char *mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED) {
		say("ferry-memory ERROR cannot allocate %ld MiB: %s", cfg.mem, strerror(errno));
		return NULL;
	}
	say("ferry-memory start mem=%ldMiB dirty=%ldMiB/s pages=%zu", cfg.mem, cfg.dirty, npages);

	const int64_t tick = NSEC / 100; /* 10 ms */
	const double pages_per_tick = (double)cfg.dirty * (1024.0 * 1024.0 / PAGE) / 100.0;
	double budget = 0;
	uint64_t gen = 1, passes = 0, bad_pass = 0, bad_total = 0;
	size_t idx = 0;
	int64_t last_report = now_ns(CLOCK_MONOTONIC);
	int64_t deadline = last_report;

	for (;;) {
		budget += pages_per_tick;
		while (budget >= 1.0) {
			budget -= 1.0;
			uint64_t *p = (uint64_t *)(mem + idx * PAGE);
			if (gen > 1 && !page_ok(p, gen - 1, idx)) {
				bad_pass++;
				bad_total++;
				if (bad_pass <= 10)
					say("ferry-memory CORRUPT page=%zu pass=%" PRIu64
					    " expected_gen=%" PRIu64 " found_gen=%" PRIu64
					    " found_page=%" PRIu64,
					    idx, gen, gen - 1, p[0], p[1]);
			}
			page_write(p, gen, idx);
			if (++idx == npages) {
				idx = 0;
				passes++;
				gen++;
				int64_t now = now_ns(CLOCK_MONOTONIC);
				if (bad_pass > 10)
					say("ferry-memory CORRUPT pass=%" PRIu64 " bad_pages=%" PRIu64,
					    passes, bad_pass);
				if (passes == 1 || now - last_report >= 10 * NSEC) {
					if (bad_total == 0)
						say("ferry-memory ok passes=%" PRIu64, passes);
					else
						say("ferry-memory CORRUPT-SEEN passes=%" PRIu64
						    " bad_pages_total=%" PRIu64, passes, bad_total);
					last_report = now;
				}
				bad_pass = 0;
			}
		}
		deadline = next_deadline(deadline, tick);
		sleep_until(deadline);
	}
	return NULL;
}

/* ------------------------------------------------------------------ main */

static long num_arg(const char *opt, const char *v)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 0) {
		say("ferry-agent: bad value for %s: '%s' (ignored)", opt, v);
		return -1;
	}
	return n;
}

static void start_thread(void *(*fn)(void *), const char *what)
{
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&t, &a, fn, NULL);
	if (e)
		say("ferry-agent: cannot start %s thread: %s", what, strerror(e));
	pthread_attr_destroy(&a);
}

static void read_first_line(const char *path, char *buf, size_t n)
{
	buf[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(buf, (int)n, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		long n;
		if (!v) {
			say("ferry-agent: option %s needs a value", o);
			break;
		}
		i++;
		if (!strcmp(o, "--ip"))
			cfg.ip = v;
		else if (!strcmp(o, "--disk"))
			cfg.disk = *v && strcmp(v, "none") ? v : NULL;
		else if (!strcmp(o, "--dirty")) {
			if ((n = num_arg(o, v)) >= 0)
				cfg.dirty = n;
		} else if (!strcmp(o, "--mem")) {
			if ((n = num_arg(o, v)) > 0)
				cfg.mem = n;
		} else if (!strcmp(o, "--rate")) {
			if ((n = num_arg(o, v)) >= 0)
				cfg.rate = n;
		} else
			say("ferry-agent: unknown option %s (ignored)", o);
	}
	if (cfg.rate > 100000)
		cfg.rate = 100000;

	boot_id = make_boot_id();
	char cs[64];
	read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", cs,
			sizeof(cs));
	say("ferry-guest: ready ip=%s disk=%s rate=%ld dirty=%ld mem=%ld boot_id=%016" PRIx64
	    " clocksource=%s",
	    cfg.ip ? cfg.ip : "none", cfg.disk ? cfg.disk : "none",
	    cfg.disk ? cfg.rate : 0, cfg.dirty, cfg.mem, boot_id, cs[0] ? cs : "unknown");

	if (cfg.disk && cfg.rate > 0)
		start_thread(disk_thread, "disk");
	if (cfg.dirty > 0)
		start_thread(memory_thread, "memory");

	uint64_t beat = 0;
	int64_t deadline = now_ns(CLOCK_MONOTONIC);
	for (;;) {
		say("ferry-heartbeat %" PRIu64, ++beat);
		deadline = next_deadline(deadline, NSEC);
		sleep_until(deadline);
	}
}
