/* threads: roots in other threads, and one arena per thread.
 * hs-lib: hs_tlslib.c
 *
 * Helper threads (all parked until the process ends; each thread's DTV,
 * calloc'd by pthread_create and held by its TCB only through dtv-16, is in
 * possible_allowed):
 *   R:  keeps the only pointers to 4 chunks in rbx, r14, r15 and r10, in a
 *       raw pause() syscall loop written in asm (no memory copy)  reachable
 *   S:  keeps the only pointer to a chunk in a local of its thread function,
 *       3 frames above the frame it sleeps in                     reachable
 *   T:  keeps the only pointer to a chunk in its own copy of the
 *       executable's __thread variable (static TLS)                reachable
 *   U:  keeps the only pointer to a chunk in its copy of a __thread
 *       variable of a dlopen'd library (dynamic TLS: a block glibc mallocs
 *       and holds only from the DTV); block and chunk are held only through
 *       the DTV                                           possible_allowed
 *   A0..A7: each mallocs in its own arena (mallopt(M_ARENA_MAX) makes that
 *       independent of the core count; the program checks in /proc/self/maps
 *       that each thread's chunks are in a distinct 64 MiB-aligned heap
 *       outside [heap]) and
 *         - leaks 4 chunks                                          definite
 *         - leaks a holder with the only pointer to a main-arena
 *           chunk M_i (holder definite, M_i indirect: a cross-arena edge)
 *         - keeps 3 chunks and 2 guards in globals                 reachable
 *         - frees 5 x 72-byte chunks (its tcache), on odd i also 9 x 56-byte
 *           chunks (7 to its tcache, 2 to its fastbin), and one 3000-byte
 *           chunk between the guards (its unsorted bin)                freed
 * The main thread keeps the only pointer to a chunk in its own copy of the
 * __thread variable, and another in its copy of the library's __thread
 * variable (its block hangs from the main thread's DTV, which ld.so
 * allocated outside the heap, so both are reachable), and leaks one chunk.
 * Each of R, S, T and U also leaks one chunk.
 * Counts: definite 5 + 8*5 = 45, indirect 8, freed 4*6 + 4*15 = 84. */
#include "hs_truth.h"
#include <dlfcn.h>
#include <pthread.h>

#define NARENA 8
#define NHELPERS (4 + NARENA)
#define HEAP_MAX (64UL << 20)

static volatile int g_ready;
static __thread void *volatile t_slot;
static void (*g_lib_set)(void *);
static size_t g_lib_modid;
static void *volatile g_lib;

static uint64_t g_main_inv[NARENA];  /* ~M_i, handed to arena thread i */
static uint64_t g_chunk_inv[NARENA]; /* ~(a leaked chunk of thread i) */
static void *volatile g_keep[NARENA][3];
static void *volatile g_guard[NARENA][2];

static HS_NOINLINE void *xalloc(size_t n, int fill)
{
	void *p = malloc(n);
	if (!p)
		hs_fail("malloc(%zu) failed", n);
	hs_fill(p, fill);
	return p;
}

static HS_NOINLINE void leak_one(size_t n)
{
	void *p = xalloc(n, 0x3c);
	hs_definite(p, n);
	p = 0;
	HS_BARRIER();
}

static HS_NOINLINE uint64_t alloc_reachable_inv(size_t n)
{
	void *p = xalloc(n, 0x5a);
	uint64_t inv;
	hs_reachable(p);
	inv = ~(uint64_t)(uintptr_t)p;
	p = 0;
	HS_BARRIER();
	return inv;
}

/* Park this helper thread for good, with no stale pointer left behind. */
static HS_NOINLINE void helper_park(void)
{
	hs_scrub_stack(128 * 1024);
	hs_clear_regs();
	__atomic_add_fetch(&g_ready, 1, __ATOMIC_SEQ_CST);
	hs_park();
}

static void *reg_thread(void *arg)
{
	uint64_t a, b, c, d;
	(void)arg;
	hs_note_dtv();
	a = alloc_reachable_inv(72);
	b = alloc_reachable_inv(88);
	c = alloc_reachable_inv(104);
	d = alloc_reachable_inv(120);
	leak_one(136);
	hs_scrub_stack(128 * 1024);
	hs_clear_regs();
	/* Load the real pointers only now, into registers, wipe the inverted
	 * copies, and never return.  syscall preserves all but rax, rcx, r11. */
	__asm__ __volatile__(
		"mov %[a], %%rbx\n\tnot %%rbx\n\tmovq $0, %[a]\n\t"
		"mov %[b], %%r14\n\tnot %%r14\n\tmovq $0, %[b]\n\t"
		"mov %[c], %%r15\n\tnot %%r15\n\tmovq $0, %[c]\n\t"
		"mov %[d], %%r10\n\tnot %%r10\n\tmovq $0, %[d]\n\t"
		"xor %%eax, %%eax\n\txor %%ecx, %%ecx\n\txor %%edx, %%edx\n\t"
		"xor %%esi, %%esi\n\txor %%edi, %%edi\n\txor %%r8d, %%r8d\n\t"
		"xor %%r9d, %%r9d\n\txor %%r11d, %%r11d\n\t"
		"lock incl %[ready]\n\t"
		"1:\n\t"
		"mov $34, %%eax\n\t" /* SYS_pause */
		"syscall\n\t"
		"jmp 1b\n\t"
		: [ready] "+m"(g_ready), [a] "+m"(a), [b] "+m"(b), [c] "+m"(c), [d] "+m"(d)
		:
		: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r14", "r15", "memory");
	return 0;
}

/* Sleep `depth` frames below the caller. */
static HS_NOINLINE void sleep_deep(int depth)
{
	volatile char pad[64];
	pad[0] = (char)depth;
	if (depth > 0) {
		sleep_deep(depth - 1);
		return;
	}
	__atomic_add_fetch(&g_ready, 1, __ATOMIC_SEQ_CST);
	hs_park();
	(void)pad[0];
}

static void *stack_thread(void *arg)
{
	void *volatile keep;
	(void)arg;
	hs_note_dtv();
	keep = xalloc(96, 0x6b);
	hs_reachable(keep);
	leak_one(152);
	hs_scrub_stack(128 * 1024);
	hs_clear_regs();
	sleep_deep(3);
	(void)keep;
	return 0;
}

static void *tls_thread(void *arg)
{
	void *p;
	(void)arg;
	hs_note_dtv();
	p = xalloc(112, 0x7c);
	t_slot = p;
	hs_reachable(p);
	p = 0;
	leak_one(168);
	helper_park();
	return 0;
}

/* The malloc'd block of the library's TLS for the calling thread (the DTV
 * entry's to_free), or NULL when the library got static TLS. */
static HS_NOINLINE void *lib_tls_block(void)
{
	uint64_t dtv;
	__asm__ __volatile__("mov %%fs:8, %0" : "=r"(dtv));
	return ((void **)(uintptr_t)(dtv + 16 * g_lib_modid))[1];
}

static HS_NOINLINE int dtv_in_heap(void)
{
	uint64_t dtv, lo, hi;
	__asm__ __volatile__("mov %%fs:8, %0" : "=r"(dtv));
	if (!hs_find_heap(&lo, &hi))
		return 0;
	return dtv >= lo && dtv < hi;
}

static void *libtls_thread(void *arg)
{
	void *p, *block;
	(void)arg;
	p = xalloc(128, 0x4d);
	g_lib_set(p);
	block = lib_tls_block();
	if (block) {
		hs_possible_ok(block);
		hs_possible_ok(p);
	} else {
		hs_reachable(p);
		hs_note("U: the library's TLS got static TLS, so U's chunk is reachable.");
	}
	p = block = 0;
	hs_note_dtv(); /* after the access, which may have grown the DTV */
	leak_one(184);
	helper_park();
	return 0;
}

static void *arena_thread(void *arg)
{
	int i = (int)(intptr_t)arg, k;
	void *p, *q[5], *r[9];
	void **h;
	hs_note_dtv();
	for (k = 0; k < 4; k++) {
		p = xalloc(24 + 16 * (size_t)k, 0x20 + i);
		hs_definite(p, 24 + 16 * (size_t)k);
		if (k == 0)
			g_chunk_inv[i] = ~(uint64_t)(uintptr_t)p;
	}
	h = (void **)xalloc(40, 0);
	h[2] = (void *)(uintptr_t)~g_main_inv[i];
	hs_definite(h, 40);
	h = 0;
	for (k = 0; k < 3; k++) {
		p = xalloc(64, 0x30 + i);
		g_keep[i][k] = p;
		hs_reachable(p);
	}
	/* Allocate everything first, then free: a malloc after the frees could
	 * take a freed chunk back (or, for a large request, consolidate the
	 * fastbins and carve a later chunk out of them). */
	for (k = 0; k < 5; k++)
		q[k] = xalloc(72, 0);
	for (k = 0; k < 9 && i % 2; k++)
		r[k] = xalloc(56, 0);
	g_guard[i][0] = xalloc(24, 0);
	hs_reachable(g_guard[i][0]);
	p = xalloc(3000, 0);
	g_guard[i][1] = xalloc(24, 0);
	hs_reachable(g_guard[i][1]);
	hs_freed(p);
	free(p); /* unsorted bin: both neighbours are in use */
	for (k = 0; k < 5; k++) {
		hs_freed(q[k]);
		free(q[k]); /* tcache */
	}
	for (k = 0; k < 9 && i % 2; k++) {
		hs_freed(r[k]);
		free(r[k]); /* 7 to the tcache, then 2 to the fastbin */
	}
	p = 0;
	memset(q, 0, sizeof q);
	memset(r, 0, sizeof r);
	helper_park();
	return 0;
}

/* Check that every arena thread's chunks are in its own non-main heap. */
static HS_NOINLINE void check_arenas(void)
{
	uint64_t hlo, hhi, lo, hi, base[NARENA];
	char name[64];
	int i, j;
	if (hs_running_on_valgrind())
		return;
	if (!hs_find_heap(&hlo, &hhi))
		hs_fail("threads: no [heap] mapping");
	for (i = 0; i < NARENA; i++) {
		uint64_t c = ~g_chunk_inv[i];
		base[i] = c & ~(HEAP_MAX - 1);
		if (c >= hlo && c < hhi)
			hs_fail("threads: arena thread %d allocated in the main arena", i);
		if (!hs_find_mapping(c, &lo, &hi, name, sizeof name) || lo != base[i] || name[0])
			hs_fail("threads: arena thread %d's chunk is not in a 64 MiB-aligned anonymous heap", i);
		for (j = 0; j < i; j++)
			if (base[j] == base[i])
				hs_fail("threads: arena threads %d and %d share a heap", j, i);
		c = 0;
		g_chunk_inv[i] = 0;
	}
	memset(base, 0, sizeof base);
	hs_note("Checked: the 8 arena threads allocate in 8 distinct non-main heaps.");
}

static HS_NOINLINE void load_lib(void)
{
	char path[4096];
	hs_exe_sibling("libhs_tlslib.so", path, sizeof path);
	g_lib = dlopen(path, RTLD_NOW);
	if (!g_lib)
		hs_fail("dlopen %s: %s", path, dlerror());
	*(void **)&g_lib_set = dlsym(g_lib, "hs_lib_set");
	if (!g_lib_set)
		hs_fail("dlsym hs_lib_set: %s", dlerror());
	if (dlinfo(g_lib, RTLD_DI_TLS_MODID, &g_lib_modid) != 0 || !g_lib_modid)
		hs_fail("dlinfo RTLD_DI_TLS_MODID: %s", dlerror());
}

static HS_NOINLINE void main_tls(void)
{
	void *p = xalloc(200, 0x2e), *block;
	t_slot = p;
	hs_reachable(p);
	p = xalloc(216, 0x2f);
	g_lib_set(p);
	block = lib_tls_block();
	if (dtv_in_heap()) {
		hs_possible_ok(p);
		if (block)
			hs_possible_ok(block);
		hs_note("The main thread's DTV is in the heap: its library TLS chunks are possible_allowed.");
	} else {
		hs_reachable(p);
		if (block)
			hs_reachable(block);
	}
	p = block = 0;
	HS_BARRIER();
}

static HS_NOINLINE void start_threads(void)
{
	pthread_t t;
	int i;
	for (i = 0; i < NARENA; i++) {
		void *m = xalloc(48, 0x4e);
		hs_indirect(m, 48);
		g_main_inv[i] = ~(uint64_t)(uintptr_t)m;
		m = 0;
	}
	if (pthread_create(&t, 0, reg_thread, 0) || pthread_create(&t, 0, stack_thread, 0) ||
	    pthread_create(&t, 0, tls_thread, 0) || pthread_create(&t, 0, libtls_thread, 0))
		hs_fail("pthread_create failed");
	for (i = 0; i < NARENA; i++)
		if (pthread_create(&t, 0, arena_thread, (void *)(intptr_t)i))
			hs_fail("pthread_create failed");
	hs_wait_count(&g_ready, NHELPERS);
	memset(g_main_inv, 0, sizeof g_main_inv);
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "threads");
	if (!mallopt(M_ARENA_MAX, 64))
		hs_fail("mallopt(M_ARENA_MAX) failed");
	hs_note("Reachable only from: registers rbx/r14/r15/r10 of a thread in a raw pause loop (4); a live frame 3 frames up another thread's stack; another thread's and the main thread's static __thread variable; the main thread's dynamic TLS of a dlopen'd library. possible_allowed: thread DTVs, and thread U's library TLS block and the chunk it holds. 8 arena threads, each in its own heap: 4 definite + a definite holder of a main-arena chunk (indirect), 3 kept + 2 guards reachable, tcache/fastbin/unsorted frees listed in freed. One definite leak in main and in each of R, S, T, U.");
	load_lib();
	main_tls();
	start_threads();
	check_arenas();
	leak_one(248);
	hs_allow_ldso_interior();
	return hs_finish();
}
