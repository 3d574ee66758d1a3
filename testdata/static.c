/* static: a statically linked program.  glibc's malloc state (main_arena,
 * mp_) lives in the executable's own .data, its TLS variables (tcache,
 * thread_arena) are at constant offsets in the executable's static TLS
 * block (no libc.so, no GOT slots, no version banner), and the thread's
 * chunks sit in a heap of their own.
 * hs-build: -static
 *   main thread:
 *     20 x malloc(48), nothing points to them                      definite
 *     a 4-node list of 64-byte nodes, head unreferenced      definite + 3 indirect
 *     3 x malloc(40) freed to the tcache, each holding the only pointer to
 *       a 32-byte target                            freed; targets definite
 *     2 x malloc(2000) freed between guards (unsorted bin), each holding
 *       the only pointer to a 32-byte target        freed; targets definite
 *     a 300000-byte mmapped chunk, unreferenced                     definite
 *     a 200000-byte mmapped chunk in a global                       reachable
 *     a 100-byte chunk in a global, another in a .bss array         reachable
 *   thread W (its own arena, in a heap of its own):
 *     2 x malloc(56), nothing points to them                        definite
 *     a 120-byte chunk in a __thread variable (static TLS)          reachable
 *     a 88-byte chunk on its live stack                             reachable
 *     4 x malloc(72) freed to its tcache                            freed
 *     its DTV (calloc'd; the TCB points 16 bytes into it)    possible_allowed
 *   glibc's own: the dynamic-loader code linked into a static executable
 *   keeps a few malloc'd tables in the executable's RELRO (the start of its
 *   data segment, made read-only after startup): those chunks are found
 *   at run time and recorded reachable (the RELRO is a root), and the
 *   notes list them, bit-inverted, as "relro ~0x...".
 * Counts: definite 20 + 1 + 3 + 2 + 1 + 2 = 29, indirect 3, freed 9. */
#include "hs_truth.h"
#include <pthread.h>

#if defined(__GLIBC__) && __GLIBC__ == 2 && __GLIBC_MINOR__ < 35
/* gcc 12's libgcc_eh.a, which a static link pulls in, calls
 * _dl_find_object (glibc 2.35+). On an older glibc this stub makes the
 * unwinder find nothing; nothing here unwinds. A newer libc.a's own
 * definition wins over this weak one. */
struct dl_find_object;
__attribute__((weak)) int _dl_find_object(void *pc, struct dl_find_object *result)
{
	(void)pc;
	(void)result;
	return -1;
}
#endif

static void *volatile g_keep;
static void *volatile g_bss[4];
static void *volatile g_big;
static void *volatile g_guard[3];
static __thread void *volatile t_slot;
static volatile int g_ready;
static uint64_t g_target_inv[5];

static void *unv(uint64_t inv) { return (void *)(uintptr_t)~inv; }

static HS_NOINLINE void *xalloc(size_t n, int fill)
{
	void *p = malloc(n);
	if (!p)
		hs_fail("malloc(%zu) failed", n);
	hs_fill(p, fill);
	return p;
}

static HS_NOINLINE void leak(size_t n, int fill)
{
	void *p = xalloc(n, fill);
	hs_definite(p, n);
	p = 0;
	HS_BARRIER();
}

/* A freed holder of n bytes whose user data keeps target i (at 16). */
static HS_NOINLINE void *holder(size_t n, int i)
{
	void **h = (void **)xalloc(n, 0);
	h[2] = unv(g_target_inv[i]);
	hs_freed(h);
	return h;
}

static HS_NOINLINE void start_worker(void);

static HS_NOINLINE void build_main(void)
{
	void **node, **next = 0, *h[5];
	int i;
	for (i = 0; i < 20; i++)
		leak(48, 0x41 + i);
	for (i = 0; i < 4; i++) { /* built tail first: node 3 is the head */
		node = (void **)xalloc(64, 0x61);
		node[1] = next;
		if (i == 3)
			hs_definite(node, 64);
		else
			hs_indirect(node, 64);
		next = node;
	}
	node = next = 0;
	for (i = 0; i < 5; i++) {
		void *t = xalloc(32, 0x70 + i);
		hs_definite(t, 32);
		g_target_inv[i] = ~(uint64_t)(uintptr_t)t;
		t = 0;
	}
	for (i = 0; i < 3; i++)
		h[i] = holder(40, i);
	g_guard[0] = xalloc(24, 0);
	h[3] = holder(2000, 3);
	g_guard[1] = xalloc(24, 0);
	h[4] = holder(2000, 4);
	g_guard[2] = xalloc(24, 0);
	for (i = 0; i < 3; i++)
		hs_reachable(g_guard[i]);
	leak(300000, 0x6d);
	g_big = xalloc(200000, 0x6e);
	hs_reachable(g_big);
	if (!hs_running_on_valgrind() && !hs_is_mmapped(g_big))
		hs_fail("static: the 200000-byte chunk is not mmapped");
	g_keep = xalloc(100, 0x6b);
	hs_reachable(g_keep);
	g_bss[2] = xalloc(100, 0x6c);
	hs_reachable(g_bss[2]);
	/* Free last (after the thread's start, whose DTV is calloc'd here):
	 * a later malloc could take a free chunk back. */
	start_worker();
	for (i = 0; i < 5; i++)
		free(h[i]); /* 3 to the tcache, 2 to the unsorted bin */
	memset(h, 0, sizeof h);
	memset(g_target_inv, 0, sizeof g_target_inv);
}

/* Sleep with a live frame that holds a pointer. */
static HS_NOINLINE void park_holding(void *volatile *slot)
{
	(void)slot;
	hs_scrub_stack(64 * 1024);
	hs_clear_regs();
	__atomic_add_fetch(&g_ready, 1, __ATOMIC_SEQ_CST);
	hs_park();
}

static void *worker(void *arg)
{
	void *volatile onstack;
	void *q[4];
	int k;
	(void)arg;
	hs_note_dtv();
	leak(56, 0x57);
	leak(56, 0x58);
	t_slot = xalloc(120, 0x54);
	hs_reachable(t_slot);
	onstack = xalloc(88, 0x53);
	hs_reachable(onstack);
	for (k = 0; k < 4; k++)
		q[k] = xalloc(72, 0);
	for (k = 0; k < 4; k++) {
		hs_freed(q[k]);
		free(q[k]); /* its tcache */
	}
	memset(q, 0, sizeof q);
	park_holding(&onstack);
	return 0;
}

/* Record the chunks that the executable's RELRO points to (see above). */
static HS_NOINLINE void relro_chunks(void)
{
	static char maps[1 << 16], exe[4096];
	uint64_t plo = 0, phi = 0, hlo, hhi, seen[16];
	int nseen = 0, i, prev_ro = 0;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *line, *nl;
	if (n <= 0 || hs_read_file("/proc/self/maps", maps, sizeof maps) < 0 || !hs_find_heap(&hlo, &hhi))
		hs_fail("static: cannot read /proc/self");
	exe[n] = 0;
	for (line = maps; *line; line = nl + 1) {
		unsigned long lo, hi;
		char perms[8];
		int pos = 0, mine;
		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &pos) < 3)
			break;
		mine = pos > 0 && !strcmp(line + pos, exe);
		if (mine && perms[1] == 'w' && prev_ro && phi == lo) {
			uint64_t w;
			for (w = plo; w + 8 <= phi; w += 8) {
				uint64_t v = *(uint64_t *)(uintptr_t)w, sz;
				if (v < hlo + 16 || v >= hhi || v % 16)
					continue;
				sz = ((uint64_t *)(uintptr_t)v)[-1];
				if (sz & 2 || (sz & ~7UL) < 32 || v - 16 + (sz & ~7UL) > hhi)
					continue;
				for (i = 0; i < nseen && seen[i] != ~v; i++)
					;
				if (i < nseen || nseen == 16)
					continue;
				seen[nseen++] = ~v;
				hs_reachable((void *)(uintptr_t)v);
				hs_note("relro ~%#lx", (unsigned long)~v);
				v = 0;
			}
		}
		prev_ro = mine && !strcmp(perms, "r--p");
		plo = lo;
		phi = hi;
		if (!nl)
			break;
	}
	memset(seen, 0, sizeof seen);
}

static HS_NOINLINE void start_worker(void)
{
	pthread_t t;
	if (pthread_create(&t, 0, worker, 0))
		hs_fail("pthread_create failed");
	hs_wait_count(&g_ready, 1);
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "static");
	hs_note("A static executable: glibc's malloc state is in the executable, its tcache pointers at constant TLS offsets. Main: 29 definite in all (20 x 48 bytes, a list head, 5 targets of freed holders in the tcache and the unsorted bin, a 300000-byte mmapped chunk), 3 indirect list nodes, reachable chunks in globals (one mmapped). Thread W, in its own arena: 2 definite, a chunk in a __thread variable and one on its stack (reachable), 4 frees to its tcache, its DTV (possible_allowed).");
	build_main();
	relro_chunks();
	return hs_finish();
}
