/*
 * ferry test guest: on-disk record format, shared by the guest agent
 * (agent.c, writer) and the host-side checker (diskcheck.c, reader).
 *
 * The data disk is a raw ring of 4096-byte blocks, no filesystem.
 * Record number `seq` (1, 2, 3, ...) lives in block (seq % nblocks), where
 * nblocks = device size / 4096.  All integers are little-endian.
 *
 *   offset  size  field
 *        0     8  magic    "FERRYREC"
 *        8     4  version  1
 *       12     4  size     4096
 *       16     8  boot_id  random, chosen when the agent starts
 *       24     8  seq      record number, starts at 1
 *       32     8  time_ns  CLOCK_REALTIME of the write (guest clock)
 *       40     8  mono_ns  CLOCK_MONOTONIC of the write
 *       48     8  nblocks  ring size the writer used
 *       56  4036  payload  pseudo-random words derived from (boot_id, seq)
 *     4092     4  crc32    CRC-32 (IEEE, as zlib) of bytes 0..4091
 */
#ifndef FERRY_RECORD_H
#define FERRY_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define FERRY_REC_SIZE 4096u
#define FERRY_REC_VERSION 1u
#define FERRY_REC_HDR 56u
#define FERRY_REC_CRC_OFF (FERRY_REC_SIZE - 4u)
static const unsigned char FERRY_REC_MAGIC[8] = {'F', 'E', 'R', 'R', 'Y', 'R', 'E', 'C'};

static inline void ferry_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void ferry_put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t ferry_get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint32_t ferry_get32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t ferry_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static inline uint32_t ferry_crc32(const unsigned char *p, size_t n)
{
	static uint32_t table[256];
	static int ready;
	if (!ready) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		ready = 1;
	}
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++)
		c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

/* Fill the payload area of a record from (boot_id, seq). */
static inline void ferry_rec_payload(unsigned char *rec, uint64_t boot_id, uint64_t seq)
{
	uint64_t st = boot_id ^ (seq * 0xD6E8FEB86659FD93ULL);
	for (size_t off = FERRY_REC_HDR; off + 8 <= FERRY_REC_CRC_OFF; off += 8)
		ferry_put64(rec + off, ferry_splitmix64(&st));
	/* 4036 is not a multiple of 8: the last 4 payload bytes */
	size_t tail = FERRY_REC_HDR + ((FERRY_REC_CRC_OFF - FERRY_REC_HDR) / 8) * 8;
	if (tail < FERRY_REC_CRC_OFF)
		ferry_put32(rec + tail, (uint32_t)ferry_splitmix64(&st));
}

/* Build a complete record in rec[FERRY_REC_SIZE]. */
static inline void ferry_rec_build(unsigned char *rec, uint64_t boot_id, uint64_t seq,
				   uint64_t time_ns, uint64_t mono_ns, uint64_t nblocks)
{
	for (int i = 0; i < 8; i++)
		rec[i] = FERRY_REC_MAGIC[i];
	ferry_put32(rec + 8, FERRY_REC_VERSION);
	ferry_put32(rec + 12, FERRY_REC_SIZE);
	ferry_put64(rec + 16, boot_id);
	ferry_put64(rec + 24, seq);
	ferry_put64(rec + 32, time_ns);
	ferry_put64(rec + 40, mono_ns);
	ferry_put64(rec + 48, nblocks);
	ferry_rec_payload(rec, boot_id, seq);
	ferry_put32(rec + FERRY_REC_CRC_OFF, ferry_crc32(rec, FERRY_REC_CRC_OFF));
}

#endif
