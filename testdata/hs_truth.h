/*
 * hs_truth.h - ground-truth recorder shared by the heapsift test fixtures.
 *
 * This is a copy of ../shared/acceptance/cases/hs_truth.h (same JSON truth
 * format, same honesty rules) with a few additions, all marked "heapsift
 * testdata extension" below:
 *   - a truth path of "-" (or none, via hs_init_optional) writes no file;
 *   - hs_read_file, hs_find_mapping and hs_exe_sibling, malloc-free helpers
 *     for /proc/self/maps and for companion libraries (hs-lib:);
 *   - hs_chunk_size and hs_is_mmapped, which read a chunk's size field;
 *   - hs_note_dtv_once, for threads that are joined (their DTVs stay in
 *     glibc's stack cache) or that reuse a cached stack.
 *
 * A corpus program builds a heap state, records what every interesting chunk
 * is (leaked definite / leaked indirect / member of an unreferenced cycle /
 * possibly lost / reachable / freed), then calls hs_finish(), which writes
 * the TRUTH file atomically (TRUTH.tmp, then rename) and either parks the
 * process forever (HS_MODE=pause, the default) or returns so that main can
 * return and the process exits (HS_MODE=exit).
 *
 * The recorder must never itself keep a chunk alive, so it stores every
 * address bit-inverted (~p) in private anonymous mmap memory (never in the
 * heap), formats the JSON digit by digit from the inverted value (so the real
 * pointer value is never materialised again), and unmaps all of its memory
 * before the process parks.  hs_finish() also zeroes a large area of dead
 * stack below the caller and clears the vector registers, so that no stale
 * copy of a leaked pointer survives in a dead frame or a register.
 *
 * Nothing here calls malloc: after the heap state is built, the allocator's
 * free lists must stay exactly as the program left them.
 *
 * Header-only, C and C++.  Everything is static.
 */
#ifndef HS_TRUTH_H
#define HS_TRUTH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define HS_NOINLINE __attribute__((noinline))
#define HS_UNUSED __attribute__((unused))
#define HS_BARRIER() __asm__ __volatile__("" ::: "memory")

enum {
	HS_K_DEFINITE = 1,   /* leaked, nothing points to it */
	HS_K_INDIRECT = 2,   /* leaked, only leaked chunks point to it */
	HS_K_CYCLE = 3,      /* leaked member of an unreferenced cycle */
	HS_K_POSSIBLE = 4,   /* only reachable through interior pointers */
	HS_K_REACHABLE = 5,  /* must never be reported */
	HS_K_POSSIBLE_OK = 6,/* may be reported as possible, or not at all */
	HS_K_FREED = 7       /* freed chunk, must never be reported */
};

struct hs_entry {
	uint64_t inv;   /* ~address */
	uint64_t size;  /* requested size in bytes (0 when unknown) */
	uint32_t kind;
	uint32_t group; /* cycle group for HS_K_CYCLE */
};

static struct hs_entry *hs_tab;
static size_t hs_n, hs_cap;
static volatile int hs_lock_word;
static int hs_ncycles;
static int hs_exit_mode;
static int hs_no_truth; /* heapsift testdata extension: truth path "-" */
static size_t hs_finish_scrub = 256 * 1024; /* bytes of dead stack hs_finish() zeroes */
static char hs_path[4096];
static char hs_tmp_path[4200];
static char hs_case[64];
static char hs_notes[8192];
static size_t hs_notes_len;

static HS_UNUSED void hs_fail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (write(2, "corpus: ", 8) < 0 || write(2, buf, (size_t)n) < 0) {
		/* nothing more we can do */
	}
	_exit(3);
}

static void hs_lock(void)
{
	while (__sync_lock_test_and_set(&hs_lock_word, 1))
		sched_yield();
}

static void hs_unlock(void)
{
	__sync_lock_release(&hs_lock_word);
}

static HS_NOINLINE void hs_rec(const void *p, size_t size, unsigned kind, unsigned group)
{
	uint64_t inv = ~(uint64_t)(uintptr_t)p;
	p = 0;
	HS_BARRIER();
	if (inv == ~(uint64_t)0)
		hs_fail("%s: recording a NULL pointer (kind %u)", hs_case, kind);
	hs_lock();
	if (hs_n == hs_cap) {
		size_t ncap = hs_cap ? hs_cap * 2 : 4096;
		void *nt;
		if (hs_tab)
			nt = mremap(hs_tab, hs_cap * sizeof *hs_tab, ncap * sizeof *hs_tab, MREMAP_MAYMOVE);
		else
			nt = mmap(0, ncap * sizeof *hs_tab, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (nt == MAP_FAILED)
			hs_fail("recorder: out of memory");
		hs_tab = (struct hs_entry *)nt;
		hs_cap = ncap;
	}
	hs_tab[hs_n].inv = inv;
	hs_tab[hs_n].size = size;
	hs_tab[hs_n].kind = kind;
	hs_tab[hs_n].group = group;
	hs_n++;
	hs_unlock();
	inv = 0;
	HS_BARRIER();
}

/* Public recording API. Sizes are the requested sizes (used for the byte
 * totals that the valgrind cross-check compares). */
static HS_UNUSED void hs_definite(const void *p, size_t size) { hs_rec(p, size, HS_K_DEFINITE, 0); }
static HS_UNUSED void hs_indirect(const void *p, size_t size) { hs_rec(p, size, HS_K_INDIRECT, 0); }
static HS_UNUSED void hs_possible(const void *p, size_t size) { hs_rec(p, size, HS_K_POSSIBLE, 0); }
static HS_UNUSED void hs_reachable(const void *p) { hs_rec(p, 0, HS_K_REACHABLE, 0); }
static HS_UNUSED void hs_possible_ok(const void *p) { hs_rec(p, 0, HS_K_POSSIBLE_OK, 0); }
static HS_UNUSED void hs_freed(const void *p) { hs_rec(p, 0, HS_K_FREED, 0); }
static HS_UNUSED int hs_new_cycle(void)
{
	int g;
	hs_lock();
	g = ++hs_ncycles;
	hs_unlock();
	return g;
}
static HS_UNUSED void hs_cycle(const void *p, size_t size, int group) { hs_rec(p, size, HS_K_CYCLE, (unsigned)group); }

/* Append free text to the "notes" field. */
static HS_UNUSED void hs_note(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf)
		n = (int)sizeof buf - 1;
	hs_lock();
	if (hs_notes_len && hs_notes_len + 1 < sizeof hs_notes)
		hs_notes[hs_notes_len++] = ' ';
	if (hs_notes_len + (size_t)n < sizeof hs_notes) {
		memcpy(hs_notes + hs_notes_len, buf, (size_t)n);
		hs_notes_len += (size_t)n;
	}
	hs_unlock();
}

/* Zero `n` bytes of stack below the caller's frame (dead frames of the
 * functions it called before).  Use a size well below the thread's stack. */
static HS_UNUSED HS_NOINLINE void hs_scrub_stack(size_t n)
{
	volatile uint64_t *b = (volatile uint64_t *)__builtin_alloca(n);
	size_t i;
	for (i = 0; i < n / 8; i++)
		b[i] = 0;
	HS_BARRIER();
}

/* Clear the caller-saved general registers and the vector registers, so
 * that no stale copy of a pointer survives in a register of a thread that is
 * about to park.  glibc's string functions use xmm/ymm and, on AVX-512
 * machines, ymm16-31. */
static HS_UNUSED HS_NOINLINE void hs_clear_regs(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) {
		__asm__ __volatile__(
			"vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\t"
			"vpxord %%zmm18, %%zmm18, %%zmm18\n\tvpxord %%zmm19, %%zmm19, %%zmm19\n\t"
			"vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
			"vpxord %%zmm22, %%zmm22, %%zmm22\n\tvpxord %%zmm23, %%zmm23, %%zmm23\n\t"
			"vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
			"vpxord %%zmm26, %%zmm26, %%zmm26\n\tvpxord %%zmm27, %%zmm27, %%zmm27\n\t"
			"vpxord %%zmm28, %%zmm28, %%zmm28\n\tvpxord %%zmm29, %%zmm29, %%zmm29\n\t"
			"vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31\n\t"
			::: "memory");
	}
	if (__builtin_cpu_supports("avx")) {
		__asm__ __volatile__("vzeroall" ::: "memory");
	} else {
		__asm__ __volatile__(
			"pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\t"
			"pxor %%xmm3, %%xmm3\n\tpxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\t"
			"pxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\tpxor %%xmm8, %%xmm8\n\t"
			"pxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
			"pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\t"
			"pxor %%xmm15, %%xmm15\n\t" ::: "memory");
	}
	__asm__ __volatile__(
		"xor %%eax, %%eax\n\txor %%ecx, %%ecx\n\txor %%edx, %%edx\n\t"
		"xor %%esi, %%esi\n\txor %%edi, %%edi\n\txor %%r8d, %%r8d\n\t"
		"xor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\txor %%r11d, %%r11d\n\t"
		::: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory");
}

/* Fill the whole usable area of a chunk (not just the requested size) so
 * that no stale pointer from earlier, freed use of that memory survives in
 * a chunk whose classification the truth depends on. */
static HS_UNUSED void hs_fill(void *p, int byte)
{
	memset(p, byte, malloc_usable_size(p));
}

/* The calling thread's DTV (dynamic thread vector) is a calloc'd chunk that
 * glibc references only through an interior pointer (tcb->dtv == chunk+16).
 * A valgrind-like classifier calls it "possibly lost"; a glibc-aware one
 * calls it reachable.  Either is accepted. */
static HS_UNUSED HS_NOINLINE void hs_note_dtv(void)
{
	uint64_t dtv;
	__asm__ __volatile__("mov %%fs:8, %0" : "=r"(dtv));
	if (dtv)
		hs_rec((const void *)(uintptr_t)(dtv - 16), 0, HS_K_POSSIBLE_OK, 0);
	dtv = 0;
	HS_BARRIER();
}

static HS_UNUSED int hs_running_on_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");
	return p && strstr(p, "vgpreload") != 0;
}

/* glibc's dynamic linker keeps some of its malloc'd tables only through
 * aligned interior pointers: _dl_find_object's mapping segments (allocated
 * by dlopen) are rounded up to their alignment inside the chunk, so whether
 * ld.so holds the chunk's start or an interior address depends on where
 * malloc placed it.  A valgrind-like classifier calls those "possibly lost"
 * when the pointer is interior.  This walks the main arena's [heap] chunk by
 * chunk (single-threaded use only; no malloc), finds every chunk that a
 * word of ld.so's writable data points into (not at its start), and lists
 * it in possible_allowed.  Under valgrind the heap is not glibc's, so
 * nothing is found there.  Returns the number of chunks listed. */
static HS_UNUSED HS_NOINLINE int hs_allow_ldso_interior(void)
{
	static char maps[1 << 16];
	static uint64_t rw_lo[32], rw_hi[32];
	uint64_t heap_lo = 0, heap_hi = 0, *starts, c;
	size_t nstarts = 0, capstarts, i, k, nrw = 0, off = 0;
	ssize_t r;
	int fd, found = 0;
	char *line;

	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (off < sizeof maps - 1 && (r = read(fd, maps + off, sizeof maps - 1 - off)) > 0)
		off += (size_t)r;
	close(fd);
	maps[off] = 0;
	for (line = maps; *line;) {
		char *nl = strchr(line, '\n');
		unsigned long lo, hi;
		char perms[8];
		if (nl)
			*nl = 0;
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) {
			if (strstr(line, "[heap]")) {
				heap_lo = lo;
				heap_hi = hi;
			} else if (perms[1] == 'w' && strstr(line, "ld-linux") && nrw < 32) {
				rw_lo[nrw] = lo;
				rw_hi[nrw] = hi;
				nrw++;
			}
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	if (!heap_lo || !nrw || hs_running_on_valgrind())
		return 0;
	capstarts = (size_t)(heap_hi - heap_lo) / 32 + 1;
	starts = (uint64_t *)mmap(0, capstarts * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (starts == MAP_FAILED)
		return 0;
	/* chunk headers: chunk at c, size word at c+8, user data at c+16 */
	for (c = heap_lo; c + 32 <= heap_hi && nstarts < capstarts;) {
		uint64_t sz = *(uint64_t *)(uintptr_t)(c + 8) & ~(uint64_t)7;
		if (sz < 32 || c + sz > heap_hi)
			break;
		starts[nstarts++] = c;
		c += sz;
	}
	for (k = 0; k < nrw; k++) {
		uint64_t w;
		for (w = rw_lo[k]; w + 8 <= rw_hi[k]; w += 8) {
			uint64_t v = *(uint64_t *)(uintptr_t)w;
			size_t lo = 0, hi = nstarts;
			uint64_t ch, user, end;
			if (v < heap_lo || v >= heap_hi)
				continue;
			while (hi - lo > 1) { /* last chunk start <= v - 16 */
				size_t mid = (lo + hi) / 2;
				if (starts[mid] + 16 <= v)
					lo = mid;
				else
					hi = mid;
			}
			if (!nstarts || starts[lo] + 16 > v)
				continue;
			ch = starts[lo];
			user = ch + 16;
			end = (lo + 1 < nstarts ? starts[lo + 1] : heap_hi) + 8;
			if (v == user || v >= end)
				continue;
			/* skip the top chunk and anything already listed */
			if (lo + 1 == nstarts)
				continue;
			for (i = 0; i < hs_n; i++)
				if (hs_tab[i].inv == ~user)
					break;
			if (i < hs_n)
				continue;
			hs_rec((const void *)(uintptr_t)user, 0, HS_K_POSSIBLE_OK, 0);
			found++;
		}
	}
	munmap(starts, capstarts * 8);
	if (found)
		hs_note("%d chunk(s) held by ld.so only through aligned interior pointers listed in possible_allowed.", found);
	return found;
}

/* Spin-wait (without malloc) until *ctr reaches n. */
static HS_UNUSED void hs_wait_count(volatile int *ctr, int n)
{
	struct timespec ts = {0, 1000000};
	int loops = 0;
	while (__atomic_load_n(ctr, __ATOMIC_SEQ_CST) < n) {
		nanosleep(&ts, 0);
		if (++loops > 120000)
			hs_fail("%s: timed out waiting for helper threads", hs_case);
	}
}

/* Park the calling thread forever (helper threads, and main in pause mode). */
static HS_UNUSED void hs_park(void)
{
	for (;;)
		pause();
}

static HS_UNUSED uint64_t hs_env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;
	if (!s || !*s)
		return def;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		hs_fail("bad value for %s: %s", name, s);
	return (uint64_t)v;
}

/* heapsift testdata extension: like hs_init, but a missing TRUTH_PATH (or
 * "-") only disables the truth file, so that a program can also be run by
 * hand (the bundled demo). */
static HS_UNUSED void hs_init_optional(int argc, char **argv, const char *case_name)
{
	const char *mode = getenv("HS_MODE");
	const char *path = argc >= 2 && argv[1][0] ? argv[1] : "-";
	size_t n;
	if (argc > 2) {
		fprintf(stderr, "usage: %s [TRUTH_PATH]   (env HS_MODE=pause|exit)\n", argv[0]);
		exit(2);
	}
	n = strlen(path);
	if (n >= sizeof hs_path - 8)
		hs_fail("truth path too long");
	memcpy(hs_path, path, n + 1);
	memcpy(hs_tmp_path, path, n);
	memcpy(hs_tmp_path + n, ".tmp", 5);
	hs_no_truth = !strcmp(path, "-");
	n = strlen(case_name);
	if (n >= sizeof hs_case)
		n = sizeof hs_case - 1;
	memcpy(hs_case, case_name, n);
	hs_case[n] = 0;
	if (!mode || !*mode || !strcmp(mode, "pause"))
		hs_exit_mode = 0;
	else if (!strcmp(mode, "exit"))
		hs_exit_mode = 1;
	else
		hs_fail("HS_MODE must be pause or exit, not %s", mode);
}

static HS_UNUSED void hs_init(int argc, char **argv, const char *case_name)
{
	if (argc != 2 || !argv[1][0]) {
		fprintf(stderr, "usage: %s TRUTH_PATH   (env HS_MODE=pause|exit)\n", argv[0]);
		exit(2);
	}
	hs_init_optional(argc, argv, case_name);
}

/* ---- JSON output (no malloc; all buffers are mmap'd and unmapped) ---- */

struct hs_out {
	char *p;
	size_t n, cap;
};

static void hs_put(struct hs_out *o, const char *s, size_t n)
{
	if (o->n + n > o->cap)
		hs_fail("truth buffer overflow");
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

static void hs_puts(struct hs_out *o, const char *s) { hs_put(o, s, strlen(s)); }

static void hs_putu(struct hs_out *o, uint64_t v)
{
	char b[24];
	int i = 24;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	hs_put(o, b + i, (size_t)(24 - i));
}

/* Print the address whose bit-inverse is `inv`, as 0x-prefixed lowercase
 * hex, without ever computing the address itself. */
static void hs_put_inv_addr(struct hs_out *o, uint64_t inv)
{
	static const char digits[] = "0123456789abcdef";
	char b[24];
	int n = 0, started = 0, sh;
	b[n++] = '"';
	b[n++] = '0';
	b[n++] = 'x';
	for (sh = 60; sh >= 0; sh -= 4) {
		unsigned d = 15u - (unsigned)((inv >> sh) & 15u);
		if (!d && !started && sh)
			continue;
		started = 1;
		b[n++] = digits[d];
	}
	b[n++] = '"';
	hs_put(o, b, (size_t)n);
}

static void hs_put_str(struct hs_out *o, const char *s)
{
	hs_put(o, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			hs_put(o, e, 2);
		} else if (c < 0x20) {
			hs_put(o, " ", 1);
		} else {
			hs_put(o, (const char *)&c, 1);
		}
	}
	hs_put(o, "\"", 1);
}

static int hs_is_leaked(uint32_t k) { return k == HS_K_DEFINITE || k == HS_K_INDIRECT || k == HS_K_CYCLE; }

static void hs_put_list(struct hs_out *o, const char *name, int (*pred)(const struct hs_entry *))
{
	size_t i;
	int first = 1;
	hs_puts(o, ",\n \"");
	hs_puts(o, name);
	hs_puts(o, "\": [");
	for (i = 0; i < hs_n; i++) {
		if (!pred(&hs_tab[i]))
			continue;
		if (!first)
			hs_puts(o, ", ");
		first = 0;
		hs_put_inv_addr(o, hs_tab[i].inv);
	}
	hs_puts(o, "]");
}

static int hs_p_leaked(const struct hs_entry *e) { return hs_is_leaked(e->kind); }
static int hs_p_definite(const struct hs_entry *e) { return e->kind == HS_K_DEFINITE; }
static int hs_p_indirect(const struct hs_entry *e) { return e->kind == HS_K_INDIRECT; }
static int hs_p_possible(const struct hs_entry *e) { return e->kind == HS_K_POSSIBLE; }
static int hs_p_reachable(const struct hs_entry *e) { return e->kind == HS_K_REACHABLE; }
static int hs_p_possible_ok(const struct hs_entry *e) { return e->kind == HS_K_POSSIBLE_OK; }
static int hs_p_freed(const struct hs_entry *e) { return e->kind == HS_K_FREED; }

/* In-place heapsort of the table by descending inv, i.e. ascending address
 * (no qsort: it may call malloc). */
static void hs_sift(struct hs_entry *a, size_t start, size_t end)
{
	size_t root = start;
	while (2 * root + 1 < end) {
		size_t child = 2 * root + 1;
		if (child + 1 < end && a[child].inv > a[child + 1].inv)
			child++;
		if (a[root].inv > a[child].inv) {
			struct hs_entry t = a[root];
			a[root] = a[child];
			a[child] = t;
			root = child;
		} else {
			return;
		}
	}
}

static void hs_sort(struct hs_entry *a, size_t n)
{
	size_t i;
	if (n < 2)
		return;
	for (i = n / 2; i-- > 0;)
		hs_sift(a, i, n);
	for (i = n - 1; i > 0; i--) {
		struct hs_entry t = a[0];
		a[0] = a[i];
		a[i] = t;
		hs_sift(a, 0, i);
	}
}

static HS_NOINLINE void hs_write_truth(void)
{
	struct hs_out o;
	size_t i, cap;
	uint64_t leaked = 0, leaked_b = 0, def = 0, def_b = 0, ind = 0, ind_b = 0;
	uint64_t cyc_members = 0, cyc_b = 0, poss = 0, poss_b = 0, reach = 0, freed = 0, pok = 0;
	int g, fd;
	const char *p;
	size_t left;

	hs_lock();
	/* Sort by address so that the output is deterministic, and reject an
	 * address recorded twice: that is a bug in the corpus program. */
	hs_sort(hs_tab, hs_n);
	for (i = 1; i < hs_n; i++)
		if (hs_tab[i].inv == hs_tab[i - 1].inv)
			hs_fail("%s: an address was recorded twice (kinds %u and %u)", hs_case,
				hs_tab[i - 1].kind, hs_tab[i].kind);

	cap = hs_n * 160 + sizeof hs_notes * 2 + 65536 + (size_t)hs_ncycles * 32;
	cap = (cap + 4095) & ~(size_t)4095;
	o.p = (char *)mmap(0, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (o.p == MAP_FAILED)
		hs_fail("truth: mmap failed");
	o.n = 0;
	o.cap = cap;

	for (i = 0; i < hs_n; i++) {
		const struct hs_entry *e = &hs_tab[i];
		switch (e->kind) {
		case HS_K_DEFINITE: def++; def_b += e->size; leaked++; leaked_b += e->size; break;
		case HS_K_INDIRECT: ind++; ind_b += e->size; leaked++; leaked_b += e->size; break;
		case HS_K_CYCLE: cyc_members++; cyc_b += e->size; leaked++; leaked_b += e->size; break;
		case HS_K_POSSIBLE: poss++; poss_b += e->size; break;
		case HS_K_REACHABLE: reach++; break;
		case HS_K_POSSIBLE_OK: pok++; break;
		case HS_K_FREED: freed++; break;
		}
	}

	hs_puts(&o, "{\"case\": ");
	hs_put_str(&o, hs_case);
	hs_puts(&o, ",\n \"pid\": ");
	hs_putu(&o, (uint64_t)getpid());
	hs_puts(&o, ",\n \"mode\": ");
	hs_put_str(&o, hs_exit_mode ? "exit" : "pause");
	hs_put_list(&o, "leaked", hs_p_leaked);
	hs_put_list(&o, "definite", hs_p_definite);
	hs_put_list(&o, "indirect", hs_p_indirect);
	hs_put_list(&o, "possible", hs_p_possible);
	hs_put_list(&o, "reachable", hs_p_reachable);
	hs_put_list(&o, "possible_allowed", hs_p_possible_ok);
	hs_put_list(&o, "freed", hs_p_freed);
	hs_puts(&o, ",\n \"cycle_any_of\": [");
	for (g = 1; g <= hs_ncycles; g++) {
		int first = 1;
		if (g > 1)
			hs_puts(&o, ", ");
		hs_puts(&o, "[");
		for (i = 0; i < hs_n; i++) {
			if (hs_tab[i].kind != HS_K_CYCLE || hs_tab[i].group != (uint32_t)g)
				continue;
			if (!first)
				hs_puts(&o, ", ");
			first = 0;
			hs_put_inv_addr(&o, hs_tab[i].inv);
		}
		hs_puts(&o, "]");
	}
	hs_puts(&o, "]");
	/* Requested sizes of the leaked and possible chunks. */
	hs_puts(&o, ",\n \"sizes\": {");
	{
		int first = 1;
		for (i = 0; i < hs_n; i++) {
			const struct hs_entry *e = &hs_tab[i];
			if (!hs_is_leaked(e->kind) && e->kind != HS_K_POSSIBLE)
				continue;
			if (!first)
				hs_puts(&o, ", ");
			first = 0;
			hs_put_inv_addr(&o, e->inv);
			hs_puts(&o, ": ");
			hs_putu(&o, e->size);
		}
	}
	hs_puts(&o, "}");
	hs_puts(&o, ",\n \"stats\": {\"leaked\": ");
	hs_putu(&o, leaked);
	hs_puts(&o, ", \"leaked_bytes\": ");
	hs_putu(&o, leaked_b);
	hs_puts(&o, ", \"definite\": ");
	hs_putu(&o, def);
	hs_puts(&o, ", \"definite_bytes\": ");
	hs_putu(&o, def_b);
	hs_puts(&o, ", \"indirect\": ");
	hs_putu(&o, ind);
	hs_puts(&o, ", \"indirect_bytes\": ");
	hs_putu(&o, ind_b);
	hs_puts(&o, ", \"cycles\": ");
	hs_putu(&o, (uint64_t)hs_ncycles);
	hs_puts(&o, ", \"cycle_members\": ");
	hs_putu(&o, cyc_members);
	hs_puts(&o, ", \"cycle_bytes\": ");
	hs_putu(&o, cyc_b);
	hs_puts(&o, ", \"possible\": ");
	hs_putu(&o, poss);
	hs_puts(&o, ", \"possible_bytes\": ");
	hs_putu(&o, poss_b);
	hs_puts(&o, ", \"possible_allowed\": ");
	hs_putu(&o, pok);
	hs_puts(&o, ", \"reachable_sample\": ");
	hs_putu(&o, reach);
	hs_puts(&o, ", \"freed\": ");
	hs_putu(&o, freed);
	hs_puts(&o, "}");
	hs_puts(&o, ",\n \"notes\": ");
	hs_notes[hs_notes_len < sizeof hs_notes ? hs_notes_len : sizeof hs_notes - 1] = 0;
	hs_put_str(&o, hs_notes);
	hs_puts(&o, "}\n");

	if (hs_no_truth)
		goto done;
	fd = open(hs_tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		hs_fail("cannot create %s: %s", hs_tmp_path, strerror(errno));
	p = o.p;
	left = o.n;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			hs_fail("write %s: %s", hs_tmp_path, strerror(errno));
		}
		p += w;
		left -= (size_t)w;
	}
	if (close(fd) < 0)
		hs_fail("close %s: %s", hs_tmp_path, strerror(errno));
	if (rename(hs_tmp_path, hs_path) < 0)
		hs_fail("rename %s: %s", hs_tmp_path, strerror(errno));

done:
	munmap(o.p, cap);
	if (hs_tab)
		munmap(hs_tab, hs_cap * sizeof *hs_tab);
	hs_tab = 0;
	hs_n = hs_cap = 0;
	hs_unlock();
}

/* Write TRUTH and then behave according to HS_MODE.  Call it as the last
 * statement of main: `return hs_finish();`.  In pause mode it never
 * returns; in exit mode it returns 0 and main's return ends the process. */
static HS_UNUSED HS_NOINLINE int hs_finish(void)
{
	hs_scrub_stack(hs_finish_scrub);
	hs_clear_regs();
	hs_write_truth();
	hs_scrub_stack(hs_finish_scrub);
	hs_clear_regs();
	if (hs_exit_mode)
		return 0;
	hs_park();
	return 0;
}

/* Small deterministic PRNG (xorshift64*). */
static HS_UNUSED uint64_t hs_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* ---- heapsift testdata extensions (no malloc in any of them) ---- */

/* Read up to cap-1 bytes of a (proc) file into buf and NUL-terminate it.
 * Returns the number of bytes read, or -1. */
static HS_UNUSED ssize_t hs_read_file(const char *path, char *buf, size_t cap)
{
	size_t off = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || cap == 0)
		return -1;
	while (off < cap - 1 && (r = read(fd, buf + off, cap - 1 - off)) > 0)
		off += (size_t)r;
	close(fd);
	buf[off] = 0;
	return (ssize_t)off;
}

/* Find the mapping of /proc/self/maps that contains addr.  Stores its
 * bounds and returns 1, or returns 0.  If name is not NULL, it receives the
 * mapping's path field ("" for an anonymous mapping), truncated to namecap. */
static HS_UNUSED HS_NOINLINE int hs_find_mapping(uint64_t addr, uint64_t *lo, uint64_t *hi, char *name, size_t namecap)
{
	static char maps[1 << 17];
	char *line, *nl;
	if (hs_read_file("/proc/self/maps", maps, sizeof maps) < 0)
		return 0;
	for (line = maps; *line; line = nl + 1) {
		unsigned long l, h;
		int pos = 0;
		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &l, &h, &pos) >= 2 && addr >= l && addr < h) {
			*lo = l;
			*hi = h;
			if (name && namecap) {
				size_t n = pos ? strlen(line + pos) : 0;
				if (n >= namecap)
					n = namecap - 1;
				memcpy(name, line + pos, n);
				name[n] = 0;
			}
			return 1;
		}
		if (!nl)
			break;
	}
	return 0;
}

/* Find the main arena's [heap] mapping.  Returns 1 and its bounds, or 0. */
static HS_UNUSED HS_NOINLINE int hs_find_heap(uint64_t *lo, uint64_t *hi)
{
	static char maps[1 << 17];
	char *line, *nl;
	if (hs_read_file("/proc/self/maps", maps, sizeof maps) < 0)
		return 0;
	for (line = maps; *line; line = nl + 1) {
		unsigned long l, h;
		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (strstr(line, "[heap]") && sscanf(line, "%lx-%lx", &l, &h) == 2) {
			*lo = l;
			*hi = h;
			return 1;
		}
		if (!nl)
			break;
	}
	return 0;
}

/* Build the path of a file that sits next to the running executable (a
 * companion library named by an hs-lib: line is built as lib<stem>.so in the
 * executable's directory).  Fails the case when the path does not fit. */
static HS_UNUSED void hs_exe_sibling(const char *file, char *out, size_t cap)
{
	ssize_t n = readlink("/proc/self/exe", out, cap - 1);
	char *slash;
	if (n <= 0)
		hs_fail("readlink /proc/self/exe failed");
	out[n] = 0;
	slash = strrchr(out, '/');
	if (!slash || (size_t)(slash - out) + 2 + strlen(file) > cap)
		hs_fail("executable path too long");
	memcpy(slash + 1, file, strlen(file) + 1);
}

/* Like hs_note_dtv, but records nothing when the DTV is already listed.  A
 * joined thread's DTV is not freed: it stays with the thread's stack in
 * glibc's stack cache (held only by the TCB there, through dtv-16), and a
 * later thread that reuses that stack reuses the DTV too.  Call it in every
 * thread that may be joined, and in any thread created after a join. */
static HS_UNUSED HS_NOINLINE void hs_note_dtv_once(void)
{
	uint64_t dtv, inv;
	size_t i;
	int found = 0;
	__asm__ __volatile__("mov %%fs:8, %0" : "=r"(dtv));
	if (!dtv)
		return;
	inv = ~(dtv - 16);
	hs_lock();
	for (i = 0; i < hs_n; i++)
		if (hs_tab[i].inv == inv)
			found = 1;
	hs_unlock();
	if (!found)
		hs_rec((const void *)(uintptr_t)(dtv - 16), 0, HS_K_POSSIBLE_OK, 0);
	dtv = inv = 0;
	HS_BARRIER();
}

/* The chunk size (flags masked off) of the chunk whose user pointer is p. */
static HS_UNUSED size_t hs_chunk_size(const void *p)
{
	return ((const size_t *)p)[-1] & ~(size_t)7;
}

/* Whether the chunk whose user pointer is p was mmapped (IS_MMAPPED). */
static HS_UNUSED int hs_is_mmapped(const void *p)
{
	return (((const size_t *)p)[-1] & 2) != 0;
}

#endif /* HS_TRUTH_H */
