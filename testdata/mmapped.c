/* mmapped: chunks above the mmap threshold (each its own mmap) and aligned
 * allocations, in the heap and mmapped.
 * Leaked (definite):
 *   L1 malloc(1 MiB): holds, 512 KiB in, the only pointer to S1 (40 bytes,
 *      indirect);
 *   L2 malloc(1 MiB): holds the only pointer to M2, a 2 MiB mmapped chunk
 *      (indirect);
 *   L3 calloc(1, 2 MiB);
 *   heap: memalign(64, 100), posix_memalign(256, 500), aligned_alloc(4096,
 *      4096), valloc(100);
 *   mmapped and aligned, so the real chunk header is not at the start of
 *   the mapping (a stale header stays there, describing a chunk whose user
 *   pointer malloc never returned):
 *      memalign(65536, 300000), which holds the only pointer to S4 (48 bytes,
 *      indirect); aligned_alloc(4096, 1 MiB); posix_memalign(128, 200000).
 * Reachable: R1, R2 malloc(1 MiB) in globals, R1 holding the only pointer to
 *   S2; memalign(64, 100), posix_memalign(256, 500), aligned_alloc(4096,
 *   4096) in globals; memalign(65536, 300000) in a global, holding the only
 *   pointer to S3.
 * Possible: a 1 MiB chunk held only by a global pointing 500000 bytes into
 *   it; a memalign(64, 200) chunk held only by a global pointing 100 bytes
 *   into it.
 * Counts: definite 10, indirect 3, possible 2.  No mmapped chunk is freed:
 * that would raise glibc's dynamic mmap threshold. */
#include "hs_truth.h"

#define MIB (1024 * 1024)

static void *volatile g_big[2];
static void *volatile g_aligned[4];
static char *volatile g_mid_big;
static char *volatile g_mid_aligned;

static HS_NOINLINE char *big(size_t n, int fill)
{
	char *p = (char *)malloc(n);
	if (!p)
		hs_fail("malloc(%zu) failed", n);
	if (!hs_running_on_valgrind() && !hs_is_mmapped(p))
		hs_fail("malloc(%zu) is not mmapped", n);
	memset(p, fill, malloc_usable_size(p));
	return p;
}

static HS_NOINLINE void *small(size_t n, int fill)
{
	void *p = malloc(n);
	if (!p)
		hs_fail("malloc failed");
	hs_fill(p, fill);
	return p;
}

/* An aligned allocation by one of glibc's four entry points. */
static HS_NOINLINE char *aligned(int how, size_t align, size_t n, int want_mmapped)
{
	void *p = 0;
	switch (how) {
	case 0:
		p = memalign(align, n);
		break;
	case 1:
		if (posix_memalign(&p, align, n))
			p = 0;
		break;
	case 2:
		p = aligned_alloc(align, n);
		break;
	default:
		p = valloc(n);
		break;
	}
	if (!p)
		hs_fail("aligned allocation (%d, %zu, %zu) failed", how, align, n);
	if ((uintptr_t)p % align)
		hs_fail("misaligned allocation");
	if (!hs_running_on_valgrind()) {
		if (hs_is_mmapped(p) != want_mmapped)
			hs_fail("aligned allocation (%zu, %zu): mmapped is %d", align, n, hs_is_mmapped(p));
		if (want_mmapped && ((size_t *)p)[-2] == 0)
			hs_fail("aligned mmapped chunk has its header at the mapping start");
	}
	hs_fill(p, 0x61 + how);
	return (char *)p;
}

static HS_NOINLINE void build_mmapped(void)
{
	char *l1 = big(MIB, 0x71), *l2 = big(MIB, 0x72), *l3, *m2 = big(2 * MIB, 0x73);
	char *r1 = big(MIB, 0x74), *r2 = big(MIB, 0x75), *pm = big(MIB, 0x76);
	void *s1 = small(40, 0x77), *s2 = small(48, 0x78);
	l3 = (char *)calloc(1, 2 * MIB);
	if (!l3 || (!hs_running_on_valgrind() && !hs_is_mmapped(l3)))
		hs_fail("calloc(2 MiB) failed or is not mmapped");
	*(void **)(l1 + 512 * 1024) = s1;
	*(void **)(l2 + 4096 + 8) = m2;
	*(void **)(r1 + 700 * 1024 + 8) = s2;
	g_big[0] = r1;
	g_big[1] = r2;
	g_mid_big = pm + 500000;
	hs_definite(l1, MIB);
	hs_definite(l2, MIB);
	hs_definite(l3, 2 * MIB);
	hs_indirect(s1, 40);
	hs_indirect(m2, 2 * MIB);
	hs_reachable(r1);
	hs_reachable(r2);
	hs_reachable(s2);
	hs_possible(pm, MIB);
	l1 = l2 = l3 = m2 = r1 = r2 = pm = 0;
	s1 = s2 = 0;
	HS_BARRIER();
}

static HS_NOINLINE void build_aligned(void)
{
	char *p, *q;
	int how;
	static const size_t al[] = {64, 256, 4096};
	static const size_t sz[] = {100, 500, 4096};
	for (how = 0; how < 3; how++) {
		p = aligned(how, al[how], sz[how], 0);
		hs_definite(p, sz[how]);
		p = aligned(how, al[how], sz[how], 0);
		g_aligned[how] = p;
		hs_reachable(p);
	}
	p = aligned(3, 4096, 100, 0);
	hs_definite(p, 100);
	p = aligned(0, 64, 200, 0);
	g_mid_aligned = p + 100;
	hs_possible(p, 200);

	p = aligned(0, 65536, 300000, 1);
	q = (char *)small(48, 0x79);
	*(void **)(p + 200000) = q;
	hs_definite(p, 300000);
	hs_indirect(q, 48);
	p = aligned(0, 65536, 300000, 1);
	q = (char *)small(56, 0x7a);
	*(void **)(p + 100000 + 8) = q;
	g_aligned[3] = p;
	hs_reachable(p);
	hs_reachable(q);
	p = aligned(2, 4096, MIB, 1);
	hs_definite(p, MIB);
	p = aligned(1, 128, 200000, 1);
	hs_definite(p, 200000);
	p = q = 0;
	HS_BARRIER();
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "mmapped");
	hs_note("Definite: 1 MiB L1 (holds the only pointer to 40-byte S1, indirect), 1 MiB L2 (holds the only pointer to 2 MiB M2, indirect), calloc 2 MiB L3, heap memalign(64,100)/posix_memalign(256,500)/aligned_alloc(4096,4096)/valloc(100), mmapped memalign(65536,300000) (holds the only pointer to 48-byte S4, indirect), aligned_alloc(4096,1 MiB), posix_memalign(128,200000). Reachable: two 1 MiB chunks (one holds the only pointer to S2), the three heap aligned kinds, an mmapped memalign(65536,300000) holding the only pointer to S3. Possible: a 1 MiB chunk (global -> +500000), a memalign(64,200) chunk (global -> +100).");
	build_mmapped();
	build_aligned();
	return hs_finish();
}
