/* pause: measures, from the inside, how long it is stopped. For the fork
 * snapshot benchmark (ptrace's BenchmarkForkPause).
 *
 *   pause STATSFILE [MIB [write]]
 *
 * It first allocates MIB MiB of heap (default 256) in chunks of
 * pseudo-random sizes 16..512 bytes, every byte written (so that a fork
 * has real page tables to copy), keeping every chunk reachable from a
 * table, and prints "ready PID" on stdout. Then it spins: each iteration
 * reads CLOCK_MONOTONIC (the vdso: no system call) and records the largest
 * gap between two successive iterations in struct stats at the start of
 * STATSFILE, which it maps MAP_SHARED (the file is created or extended to
 * one page). A reader bumps `reset` to start a new measurement; the
 * program acknowledges by copying it to `seen` and zeroing max_gap_ns
 * and the counters. With "write", each iteration also writes one byte to
 * the next chunk in turn, so that pages a fork shared get copied when
 * written (copy-on-write faults show in the gaps and the iteration rate).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct stats {
	volatile uint64_t reset;      /* bumped by the reader */
	volatile uint64_t seen;       /* the last reset acknowledged */
	volatile uint64_t max_gap_ns; /* the largest gap since then */
	volatile uint64_t iters;      /* iterations since then */
	volatile uint64_t gaps_1ms;   /* gaps of 1 ms or more since then */
	volatile uint64_t heap_bytes; /* bytes allocated (malloc'd sizes) */
	volatile uint64_t chunks;     /* chunks allocated */
};

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static unsigned char **g_chunks; /* the root of every chunk */

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: pause STATSFILE [MIB [write]]\n");
		return 2;
	}
	uint64_t mib = argc > 2 ? strtoull(argv[2], 0, 10) : 256;
	int write_mode = argc > 3 && !strcmp(argv[3], "write");

	int fd = open(argv[1], O_RDWR | O_CREAT, 0600);
	if (fd < 0 || ftruncate(fd, 4096) != 0) {
		perror(argv[1]);
		return 1;
	}
	struct stats *st = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (st == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	close(fd);

	/* Average chunk: 264 bytes of request, about 272 with the header. */
	uint64_t want = mib << 20, bytes = 0;
	size_t cap = want / 200 + 16, n = 0;
	g_chunks = malloc(cap * sizeof *g_chunks);
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	while (bytes < want && n < cap) {
		size_t size = 16 + rnd(&seed) % 497;
		unsigned char *c = malloc(size);
		if (!c) {
			perror("malloc");
			return 1;
		}
		memset(c, (int)(n & 0xff), size);
		g_chunks[n++] = c;
		bytes += size;
	}
	st->heap_bytes = bytes;
	st->chunks = n;
	printf("ready %d\n", getpid());
	fflush(stdout);

	/* ~0: the first iteration acknowledges whatever reset holds. */
	uint64_t seen = ~0ULL, max = 0, prev = now_ns(), it = 0, big = 0;
	size_t w = 0;
	for (;;) {
		uint64_t t = now_ns();
		uint64_t r = st->reset;
		if (r != seen) {
			seen = r;
			max = big = it = 0;
			st->max_gap_ns = 0;
			st->gaps_1ms = 0;
			st->iters = 0;
			st->seen = r;
			prev = t;
		}
		uint64_t gap = t - prev;
		if (gap > max) {
			max = gap;
			st->max_gap_ns = max;
		}
		if (gap >= 1000000)
			st->gaps_1ms = ++big;
		prev = t;
		st->iters = ++it;
		if (write_mode) {
			g_chunks[w][0]++;
			if (++w == n)
				w = 0;
		}
	}
}
