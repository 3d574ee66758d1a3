/* anonroot: heap chunks whose only references live in anonymous mappings
 * that are not malloc's (a program's own mmap'd tables, arenas, caches).
 * Any readable mapping of the process is a root, so:
 *   A1: only pointer at offset 0 of a 1-page MAP_PRIVATE|MAP_ANONYMOUS map
 *                                                               reachable
 *   A2: only pointer 5 MiB + 8 into an 8 MiB private anonymous map
 *                                                               reachable
 *   A3: only pointer in the last word of a MAP_SHARED|MAP_ANONYMOUS map
 *       (shown in /proc/PID/maps as "/dev/zero (deleted)")      reachable
 *   A4: only pointer in a private anonymous page made read-only with
 *       mprotect after the pointer was written (a table sealed after
 *       start-up): the program can still read it               reachable
 *       (valgrind scans writable memory only and calls A4 definitely lost)
 *   A5: only pointer in a private anonymous map that was moved by mremap
 *                                                               reachable
 *   A6: only pointer in A1 (a chain rooted in an anonymous map)
 *                                                               reachable
 *   P1: only reference is A2's map holding P1+24                possible
 *   L1, L2: leaked (definite), L1 holds a pointer into the shared map
 *       (pointing out of the heap changes nothing)
 * None of the maps starts with anything that looks like an mmapped chunk
 * header.  Counts: definite 2, possible 1. */
#include "hs_truth.h"

#define MIB (1024 * 1024)

static HS_NOINLINE void *xalloc(size_t n, int fill)
{
	void *p = malloc(n);
	if (!p)
		hs_fail("malloc failed");
	hs_fill(p, fill);
	return p;
}

static HS_NOINLINE void *map(size_t n, int flags)
{
	void *m = mmap(0, n, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		hs_fail("mmap(%zu) failed", n);
	return m;
}

static HS_NOINLINE void build(void)
{
	long page = sysconf(_SC_PAGESIZE);
	char *m1 = (char *)map((size_t)page, MAP_PRIVATE);
	char *m2 = (char *)map(8 * MIB, MAP_PRIVATE);
	char *m3 = (char *)map(64 * 1024, MAP_SHARED);
	char *m4 = (char *)map((size_t)page, MAP_PRIVATE);
	char *m5 = (char *)map(2 * (size_t)page, MAP_PRIVATE);
	void *a1 = xalloc(40, 0x41), *a2 = xalloc(48, 0x42), *a3 = xalloc(56, 0x43);
	void *a4 = xalloc(64, 0x44), *a5 = xalloc(72, 0x45), *a6 = xalloc(80, 0x46);
	char *p1 = (char *)xalloc(96, 0x47);
	void **l1 = (void **)xalloc(32, 0), *l2 = xalloc(100, 0x48);
	char *moved;

	*(void **)m1 = a1;
	*(void **)(m2 + 5 * MIB + 8) = a2;
	*(void **)(m2 + 7 * MIB) = p1 + 24;
	*(void **)(m3 + 64 * 1024 - 8) = a3;
	*(void **)(m4 + 128) = a4;
	if (mprotect(m4, (size_t)page, PROT_READ))
		hs_fail("mprotect failed");
	*(void **)(m5 + 16) = a5;
	/* Grow it where it cannot grow in place: m5's second page is
	 * unmapped first, then a third page is mapped in the gap, so mremap
	 * must move it. */
	if (munmap(m5 + page, (size_t)page))
		hs_fail("munmap failed");
	if (mmap(m5 + page, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		hs_fail("mmap fixed failed");
	moved = (char *)mremap(m5, (size_t)page, 4 * (size_t)page, MREMAP_MAYMOVE);
	if (moved == MAP_FAILED)
		hs_fail("mremap failed");
	if (moved == m5)
		hs_note("WARNING: mremap did not move the mapping.");
	*(void **)((char *)a1 + 8) = a6;
	l1[1] = m3 + 100;

	hs_reachable(a1);
	hs_reachable(a2);
	hs_reachable(a3);
	hs_reachable(a4);
	hs_reachable(a5);
	hs_reachable(a6);
	hs_possible(p1, 96);
	hs_definite(l1, 32);
	hs_definite(l2, 100);
	m1 = m2 = m3 = m4 = m5 = moved = p1 = 0;
	a1 = a2 = a3 = a4 = a5 = a6 = l2 = 0;
	l1 = 0;
	HS_BARRIER();
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "anonroot");
	hs_note("Reachable only from anonymous mappings: A1 (private page, offset 0), A2 (8 MiB private map, +5 MiB+8), A3 (MAP_SHARED anonymous, last word), A4 (private page made read-only), A5 (private map moved by mremap), A6 (held by A1). Possible: P1 (8 MiB map holds P1+24). Definite: L1 (points into the shared map), L2.");
	build();
	return hs_finish();
}
