/* freed: free chunks in every kind of glibc free list (main arena, glibc
 * 2.36, one thread), each still holding the only pointer to a 32-byte
 * "target" chunk.  Free memory is not part of the object graph, so those
 * targets are definite, and no free chunk may ever be reported.
 * Each holder stores its target at offsets 16, 40 (if it fits) and 56 (if it
 * fits), past the words the allocator reuses (tcache next/key, fd/bk; a
 * large-bin chunk's fd_nextsize at 16 is overwritten, 40 and 56 survive).
 *   A: 5 x malloc(40)     -> tcache (chunk 0x30)
 *   B: 9 x malloc(72)     -> 7 in the tcache (0x50), 2 in the fastbin (0x50)
 *   C: 9 x malloc(300)    -> 7 in the tcache (0x140), 2 in the small bin
 *   D: malloc(1100), malloc(1300) -> large bins (0x450, 0x520)
 *   H: malloc(2600), freed, then malloc(1000) takes its first 0x3f0 bytes
 *      (reachable R, at H's address); the free remainder (0x640, the
 *      arena's last_remainder, then a large bin) keeps H's pointers at
 *      offsets 1500 and 2500; the remainder's user address is in freed
 *   E: 2 x malloc(2000)   -> unsorted bin
 *   F: 2 adjacent malloc(1200), freed in order -> one merged unsorted chunk
 *      (F2's data now in its middle)
 *   G: malloc(2000) carved from top after the sorter, freed -> merged into top
 *   X: malloc(88) -> tcache (0x60); its target is also held by a leaked
 *      chunk LH, so that target is indirect
 * Free chunks listed in freed: 5+9+9+2+1+2+2+1+1 = 32 (H's own address is
 * R's).  Targets: 31 definite, 1 indirect.  Also definite: LH, and LD, a
 * leaked chunk holding a dangling pointer to a free A chunk.  Globals hold a
 * dangling pointer to a free B chunk and an interior pointer into a free
 * large-bin chunk.  Guards (24 bytes, reachable) keep free chunks from
 * coalescing where that is not wanted; a reachable 5000-byte "sorter"
 * malloc moves the unsorted chunks into their bins before the fastbin frees
 * (a large request consolidates the fastbins).  The layout is checked at run
 * time: the program fails rather than write a false truth.
 * Counts: definite 33, indirect 1, freed 32. */
#include "hs_truth.h"

#define NT 32
#define TSIZE 32

enum { A0 = 0, B0 = 5, C0 = 14, D0 = 23, H0 = 25, E0 = 26, F0 = 28, G0 = 30, X0 = 31 };

static void *volatile g_guard[64];
static int g_nguard;
static void *volatile g_sorter;
static void *volatile g_split;     /* R: the front of H */
static void *volatile g_dangling;  /* a free B chunk */
static char *volatile g_dangling_mid; /* into a free large-bin D chunk */

static uint64_t g_holder_inv[NT]; /* ~pointer, never a pointer */
static uint64_t g_target_inv[NT];

static void *unv(uint64_t inv) { return (void *)(uintptr_t)~inv; }
static uint64_t inv(void *p) { return ~(uint64_t)(uintptr_t)p; }

static HS_NOINLINE void *xalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		hs_fail("malloc failed");
	hs_fill(p, 0);
	return p;
}

static HS_NOINLINE void guard(void)
{
	void *g = xalloc(24);
	g_guard[g_nguard++] = g;
	hs_reachable(g);
	g = 0;
}

/* Allocate holder i of n bytes holding target i; record it as freed unless
 * it is H (whose address malloc hands out again). */
static HS_NOINLINE void hold(int i, size_t n)
{
	char *h = (char *)xalloc(n);
	void *t = unv(g_target_inv[i]);
	if (i == H0) {
		*(void **)(h + 1500) = t;
		*(void **)(h + 2500) = t;
	} else {
		*(void **)(h + 16) = t;
		if (n >= 48)
			*(void **)(h + 40) = t;
		if (n >= 64)
			*(void **)(h + 56) = t;
		hs_freed(h);
	}
	g_holder_inv[i] = inv(h);
	h = 0;
	t = 0;
}

static HS_NOINLINE void release(int i)
{
	free(unv(g_holder_inv[i]));
}

static HS_NOINLINE void leak_holders(void)
{
	void **lh = (void **)xalloc(24), **ld = (void **)xalloc(24);
	lh[1] = unv(g_target_inv[X0]);
	ld[1] = unv(g_holder_inv[A0]); /* dangling once A0 is freed */
	hs_definite(lh, 24);
	hs_definite(ld, 24);
	lh = ld = 0;
}

static HS_NOINLINE void check(int ok, const char *what)
{
	if (!ok)
		hs_fail("freed: layout assumption broken: %s", what);
}

static HS_NOINLINE void build(void)
{
	char *r, *h;
	int i;
	for (i = 0; i < NT; i++) { /* targets first, from fresh memory */
		void *t = xalloc(TSIZE);
		memset(t, 0x30 + i % 16, TSIZE);
		g_target_inv[i] = inv(t);
		if (i == X0)
			hs_indirect(t, TSIZE);
		else
			hs_definite(t, TSIZE);
		t = 0;
	}
	guard();
	for (i = A0; i < B0; i++)
		hold(i, 40);
	for (i = B0; i < C0; i++)
		hold(i, 72);
	guard();
	for (i = C0; i < D0; i++) {
		hold(i, 300);
		guard();
	}
	hold(D0, 1100);
	guard();
	hold(D0 + 1, 1300);
	guard();
	hold(H0, 2600);
	guard();
	hold(E0, 2000);
	guard();
	hold(E0 + 1, 2000);
	guard();
	hold(F0, 1200); /* F: adjacent pair */
	hold(F0 + 1, 1200);
	guard();
	hold(X0, 88);
	guard();
	leak_holders(); /* before any free: later mallocs could reuse free chunks */

	/* H: the only free chunk, so malloc(1000) splits it. */
	release(H0);
	r = (char *)malloc(1000);
	h = (char *)unv(g_holder_inv[H0]);
	if (!hs_running_on_valgrind()) { /* valgrind does not reuse freed blocks at once */
		check(r == h && hs_chunk_size(r) == 0x3f0, "malloc(1000) did not split H");
		hs_freed(r + 0x3f0); /* the remainder's user address */
	}
	memset(r, 0x52, 1000);
	g_split = r;
	hs_reachable(r);

	for (i = C0; i < D0; i++)   /* 7 to the tcache, 2 unsorted */
		release(i);
	release(D0);                /* unsorted */
	release(D0 + 1);
	release(X0);                /* tcache */
	g_sorter = xalloc(5000);    /* bins C's pair (small), D's and H's remainder (large) */
	hs_reachable(g_sorter);
	check((uintptr_t)g_sorter > (uintptr_t)unv(g_holder_inv[X0]), "the sorter did not come from top");

	hold(G0, 2000);             /* carved from top, right after the sorter */
	check((uintptr_t)unv(g_holder_inv[G0]) > (uintptr_t)g_sorter, "G did not come from top");
	release(G0);                /* merges into top */

	release(E0);                /* unsorted */
	release(E0 + 1);
	release(F0);                /* unsorted, then merged with F0+1 */
	release(F0 + 1);
	for (i = A0; i < B0; i++)   /* tcache */
		release(i);
	for (i = B0; i < C0; i++)   /* 7 to the tcache, 2 to the fastbin */
		release(i);

	if (!hs_running_on_valgrind()) {
		struct mallinfo2 mi = mallinfo2();
		check(mi.smblks == 2 && mi.fsmblks == 2 * 0x50, "the fastbin does not hold two 0x50 chunks");
	}
	g_dangling = unv(g_holder_inv[B0]);
	g_dangling_mid = (char *)unv(g_holder_inv[D0]) + 100;
	for (i = 0; i < NT; i++)
		g_holder_inv[i] = g_target_inv[i] = 0;
	r = h = 0;
	HS_BARRIER();
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "freed");
	hs_note("32 free chunks (tcache 0x30 x5; tcache 0x50 x7 + fastbin 0x50 x2; tcache 0x140 x7 + small bin x2; large bins 0x450, 0x520; the 0x640 remainder of a split chunk; unsorted x2; a merged unsorted pair x2; merged into top x1; tcache 0x60 x1) each hold the only pointer to a 32-byte target (definite), except the tcache 0x60 one, whose target a leaked chunk also holds (indirect). Definite LH (that holder) and LD (holds a dangling pointer to a free chunk). Globals: a dangling pointer to a free chunk, an interior pointer into a free large-bin chunk. Guards, the split front R and the sorter are reachable.");
	build();
	return hs_finish();
}
