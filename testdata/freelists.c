/* freelists: free chunks in every free list that the running glibc has,
 * each still holding the only pointer to a 32-byte "target" chunk, on any
 * glibc from 2.27 to 2.44.  It adapts to the version it runs on (read with
 * gnu_get_libc_version, which does not malloc):
 *   - the tcache holds 7 chunks per bin, 16 from glibc 2.43 on;
 *   - a chunk that misses the tcache goes to a fastbin up to glibc 2.42,
 *     and from 2.43 on (no fastbins) to the unsorted bin;
 *   - mallinfo2 does not exist before 2.33: mallinfo is used.
 * freed.c holds the same idea, written for glibc 2.36 exactly.  With N the
 * tcache count:
 *   A: 3 x malloc(40)     -> tcache (chunk 0x30)
 *   B: N+2 x malloc(72)   -> N in the tcache (0x50), 2 in the fastbin
 *      (2.43+: the unsorted bin), each between guards
 *   C: N+2 x malloc(300)  -> N in the tcache (0x140), 2 in the small bin
 *   D: malloc(1100), malloc(1300) -> large bins (0x450, 0x520)
 *   E: 2 x malloc(2000)   -> unsorted bin
 *   F: 2 adjacent malloc(1200), freed in order -> one merged unsorted chunk
 *   G: malloc(2000) carved from top after the sorter, freed -> into top
 *   X: malloc(88) -> tcache (0x60); its target is also held by a leaked
 *      chunk LH, so that target is indirect
 * Holders store their target at offsets 16, 40 and 56 where they fit, past
 * the words the allocator reuses.  Also definite: LH, and LD, a leaked
 * chunk holding a dangling pointer to a free A chunk.  Globals hold a
 * dangling pointer to a free B chunk and an interior pointer into a free
 * large-bin chunk.  Guards (24 bytes) and the sorter (5000 bytes, which
 * moves the unsorted chunks into their bins) are reachable.  The layout is
 * checked at run time (tcache membership by each chunk's tcache key word,
 * the fastbin by mallinfo): the program fails rather than write a false
 * truth.
 * Counts with N = 7 (glibc <= 2.42): definite 30, indirect 1, freed 29.
 * With N = 16 (2.43+): definite 48, indirect 1, freed 47. */
#include "hs_truth.h"

#include <gnu/libc-version.h>

#define NMAX 64
#define TSIZE 32

static int g_count;                /* the tcache's chunks per bin */
static int g_fastbins;             /* whether this glibc has fastbins */
static int g_keyed;                /* whether cached chunks carry a key (2.29+) */
static int A0, B0, C0, D0, E0, F0, G0, X0, NT;

static void *volatile g_guard[NMAX];
static int g_nguard;
static void *volatile g_sorter;
static void *volatile g_dangling;      /* a free B chunk */
static char *volatile g_dangling_mid;  /* into a free large-bin D chunk */

static uint64_t g_holder_inv[NMAX]; /* ~pointer, never a pointer */
static uint64_t g_target_inv[NMAX];

static void *unv(uint64_t inv) { return (void *)(uintptr_t)~inv; }
static uint64_t inv(void *p) { return ~(uint64_t)(uintptr_t)p; }

static HS_NOINLINE void check(int ok, const char *what)
{
	if (!ok)
		hs_fail("freelists: layout assumption broken: %s", what);
}

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
	check(g_nguard < NMAX, "too many guards");
	g_guard[g_nguard++] = g;
	hs_reachable(g);
	g = 0;
}

/* Allocate holder i of n bytes holding target i, recorded as freed. */
static HS_NOINLINE void hold(int i, size_t n)
{
	char *h = (char *)xalloc(n);
	void *t = unv(g_target_inv[i]);
	*(void **)(h + 16) = t;
	if (n >= 48)
		*(void **)(h + 40) = t;
	if (n >= 64)
		*(void **)(h + 56) = t;
	hs_freed(h);
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

/* How many of holders [from, from+n) carry the tcache's key in their
 * second word (2.29+: the chunks that are in a tcache), given one holder
 * known to be in it. */
static HS_NOINLINE int in_tcache(int from, int n, int known)
{
	uint64_t key = ((uint64_t *)unv(g_holder_inv[known]))[1];
	int i, k = 0;
	for (i = from; i < from + n; i++)
		if (((uint64_t *)unv(g_holder_inv[i]))[1] == key)
			k++;
	return key ? k : -1;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static HS_NOINLINE size_t fastbin_chunks(void)
{
	struct mallinfo mi = mallinfo(); /* mallinfo2 is 2.33+ */
	return (size_t)mi.smblks;
}
#pragma GCC diagnostic pop

static HS_NOINLINE void setup(void)
{
	int minor = 0;
	if (sscanf(gnu_get_libc_version(), "2.%d", &minor) != 1 || minor < 27)
		hs_fail("freelists: needs glibc 2.27 or newer, not %s", gnu_get_libc_version());
	g_count = minor >= 43 ? 16 : 7;
	g_fastbins = minor < 43;
	g_keyed = minor >= 29;
	A0 = 0;
	B0 = A0 + 3;
	C0 = B0 + g_count + 2;
	D0 = C0 + g_count + 2;
	E0 = D0 + 2;
	F0 = E0 + 2;
	G0 = F0 + 2;
	X0 = G0 + 1;
	NT = X0 + 1;
	check(NT <= NMAX, "too many holders");
	/* Make this thread's tcache now (2.43+ creates it at the first
	 * free, earlier versions at the first malloc), so that it is not
	 * carved out of the layout below.  The next 24-byte malloc (a guard)
	 * takes the freed chunk back. */
	free(malloc(24));
}

static HS_NOINLINE void build(void)
{
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
	guard();
	for (i = B0; i < C0; i++) {
		hold(i, 72);
		guard();
	}
	for (i = C0; i < D0; i++) {
		hold(i, 300);
		guard();
	}
	hold(D0, 1100);
	guard();
	hold(D0 + 1, 1300);
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

	for (i = C0; i < D0; i++)   /* N to the tcache, 2 unsorted */
		release(i);
	release(D0);                /* unsorted */
	release(D0 + 1);
	release(X0);                /* tcache */
	g_sorter = xalloc(5000);    /* C's pair to the small bin, D's to the large bins */
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
	for (i = B0; i < C0; i++)   /* N to the tcache, 2 to the fastbin or unsorted */
		release(i);

	if (!hs_running_on_valgrind()) {
		check(!g_keyed || in_tcache(B0, g_count + 2, B0) == g_count, "B: not N chunks in the tcache");
		check(!g_keyed || in_tcache(C0, g_count + 2, C0) == g_count, "C: not N chunks in the tcache");
		check(fastbin_chunks() == (g_fastbins ? 2u : 0u), "the fastbins do not hold B's last two chunks");
	}
	g_dangling = unv(g_holder_inv[B0]);
	g_dangling_mid = (char *)unv(g_holder_inv[D0]) + 100;
	for (i = 0; i < NT; i++)
		g_holder_inv[i] = g_target_inv[i] = 0;
	HS_BARRIER();
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "freelists");
	setup();
	hs_note("Free chunks in the tcache (0x30 x3; 0x50 x N; 0x140 x N; 0x60 x1), the fastbin (0x50 x2; the unsorted bin from 2.43 on), the small bin (0x140 x2), the large bins (0x450, 0x520), the unsorted bin (x2, and a merged pair), and top, with N the tcache count (7, or 16 from 2.43 on), each hold the only pointer to a 32-byte target (definite), except the 0x60 one, whose target a leaked chunk also holds (indirect). Definite LH (that holder) and LD (holds a dangling pointer to a free chunk). Globals: a dangling pointer to a free chunk, an interior pointer into a free large-bin chunk. Guards and the sorter are reachable.");
	build();
	return hs_finish();
}
