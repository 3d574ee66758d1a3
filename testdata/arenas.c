/* arenas: the arenas of threads that exited, and arenas reused by later
 * threads. Written to give exact verdicts under any malloc tunable
 * (MALLOC_ARENA_MAX, tcache_count, mxfast, mmap_threshold, MALLOC_PERTURB_,
 * trim thresholds): it records what each chunk is and never assumes which
 * free list a chunk lands in.
 *
 * Round 1: 6 threads, started together and joined. Each
 *   leaks 3 chunks (40, 200, 1000 bytes)                             definite
 *   leaks a holder with the only pointer to a target       definite + indirect
 *   keeps 2 chunks in globals                                        reachable
 *   frees 12 chunks (24..1500 bytes) between kept guards
 *     (not recorded: round 2 may get them back; those that stay free
 *     must not be reported at all)
 * then exits: its tcache goes back to its arena's bins (and the tcache
 * struct is freed), its arena to glibc's list of free arenas.
 * Round 2: 4 threads, which take over the free arenas of round 1, do the same
 * (their 12 frees recorded: freed) and park (their tcaches stay).
 * Round 2 frees only once all its threads are done allocating, and nothing
 * allocates after that, so no recorded free chunk is handed out again.
 * Main leaks 2 chunks, first.
 * Every thread's DTV (calloc'd by pthread_create; joined threads' ones stay
 * in glibc's stack cache) is possible_allowed.
 * Counts: definite (3 + 1) * 10 + 2 = 42, indirect 10, freed 12 * 4 = 48. */
#include "hs_truth.h"
#include <pthread.h>

#define ROUND1 6
#define ROUND2 4
#define NFREE 12

static void *volatile g_keep[ROUND1 + ROUND2][2];
static void *volatile g_guard[ROUND1 + ROUND2][NFREE + 1];
static volatile int g_ready;
static volatile int g_allocated; /* round 2 threads done allocating */

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

static HS_NOINLINE void leak_pair(size_t n)
{
	void **h = (void **)xalloc(n, 0x48);
	void *t = xalloc(48, 0x54);
	h[2] = t;
	hs_definite(h, n);
	hs_indirect(t, 48);
	h = 0;
	t = 0;
	HS_BARRIER();
}

/* Thread i's work. Only round 2 records its frees: round 2 may be handed
 * round 1's free memory again, and a round 1 chunk that stays free is
 * still checked (it must not be reported at all). */
static HS_NOINLINE void work(int i, int record_frees)
{
	static const size_t sizes[NFREE] = {24, 40, 56, 72, 100, 120, 160, 200, 400, 600, 1000, 1500};
	void *f[NFREE];
	int k;
	leak(40, 0x61);
	leak(200, 0x62);
	leak(1000, 0x63);
	leak_pair(64 + 8 * i);
	for (k = 0; k < 2; k++) {
		g_keep[i][k] = xalloc(88 + 32 * k, 0x6b);
		hs_reachable(g_keep[i][k]);
	}
	g_guard[i][0] = xalloc(24, 0x67);
	hs_reachable(g_guard[i][0]);
	for (k = 0; k < NFREE; k++) {
		f[k] = xalloc(sizes[k], 0x66);
		g_guard[i][k + 1] = xalloc(24, 0x67);
		hs_reachable(g_guard[i][k + 1]);
	}
	if (record_frees) {
		/* Nothing frees until every recorded chunk is allocated: in a
		 * shared arena (MALLOC_ARENA_MAX) a freed chunk would otherwise
		 * be handed to another thread again. */
		__atomic_add_fetch(&g_allocated, 1, __ATOMIC_SEQ_CST);
		hs_wait_count(&g_allocated, ROUND2);
	}
	for (k = 0; k < NFREE; k++) {
		if (record_frees)
			hs_freed(f[k]);
		free(f[k]);
	}
	memset(f, 0, sizeof f);
	hs_note_dtv_once();
}

static void *round1(void *arg)
{
	work((int)(intptr_t)arg, 0);
	hs_scrub_stack(64 * 1024);
	hs_clear_regs();
	return 0;
}

/* Park for good in a raw pause() loop with every general register but rsp
 * and rbp cleared: libc's pause() would spill the callee-saved registers,
 * which may hold stale copies of pointers from work(), into its live frame. */
static HS_NOINLINE void park_clean(void)
{
	hs_scrub_stack(64 * 1024);
	hs_clear_regs();
	__asm__ __volatile__(
		"xor %%ebx, %%ebx\n\txor %%r12d, %%r12d\n\txor %%r13d, %%r13d\n\t"
		"xor %%r14d, %%r14d\n\txor %%r15d, %%r15d\n\txor %%eax, %%eax\n\t"
		"xor %%ecx, %%ecx\n\txor %%edx, %%edx\n\txor %%esi, %%esi\n\t"
		"xor %%edi, %%edi\n\txor %%r8d, %%r8d\n\txor %%r9d, %%r9d\n\t"
		"xor %%r10d, %%r10d\n\txor %%r11d, %%r11d\n\t"
		"lock incl %[ready]\n\t"
		"1:\n\t"
		"mov $34, %%eax\n\t" /* SYS_pause */
		"syscall\n\t"
		"jmp 1b\n\t"
		: [ready] "+m"(g_ready)
		:
		: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory");
}

static void *round2(void *arg)
{
	work((int)(intptr_t)arg, 1);
	park_clean();
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t t[ROUND1 + ROUND2];
	pthread_attr_t attr;
	int i;
	hs_init(argc, argv, "arenas");
	/* Small stacks, so that glibc's stack cache (40 MiB) keeps every
	 * joined thread's stack, and with it the DTV recorded for it. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	leak(56, 0x6d);
	leak(3000, 0x6d);
	for (i = 0; i < ROUND1; i++)
		if (pthread_create(&t[i], &attr, round1, (void *)(intptr_t)i))
			hs_fail("pthread_create failed");
	for (i = 0; i < ROUND1; i++)
		if (pthread_join(t[i], 0))
			hs_fail("pthread_join failed");
	for (i = ROUND1; i < ROUND1 + ROUND2; i++)
		if (pthread_create(&t[i], &attr, round2, (void *)(intptr_t)i))
			hs_fail("pthread_create failed");
	hs_wait_count(&g_ready, ROUND2);
	pthread_attr_destroy(&attr);
	memset(t, 0, sizeof t);
	return hs_finish();
}
