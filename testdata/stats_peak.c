/* stats_peak: heap statistics against glibc's own numbers (glibc 2.36).
 *
 * A service-like heap after a peak: most of what was allocated has been
 * freed, but survivors spread through the peak keep the memory from going
 * back to the system (a "second-order leak": fragmentation and untrimmed
 * free space).  Four arenas, five threads:
 *   main arena: the tcache struct, the malloc_info FILE, the four other
 *       threads' DTVs, and a peak of NPEAK chunks (60% 16-128 bytes, 30%
 *       129-900, 10% 1024-16383): every 7th survives (reachable from
 *       .bss), those with i % 97 == 13 are leaked (definite), the rest are
 *       freed in a shuffled order (7 per size to the tcache, small ones then
 *       to the fastbins, the rest coalesce in the unsorted bin or into
 *       top; a free that merges 64 KiB or more consolidates the fastbins);
 *       then a malloc(1000) sorts the unsorted bin into the small and
 *       large bins and leaves its split remainder in the unsorted bin, and
 *       a third of the small chunks (<= 120 bytes), held back, are freed
 *       last, into the full tcache bins and so to the fastbins, and the
 *       first freed chunk over 1100 bytes, held back too, goes to the
 *       unsorted bin at the very end.
 *   two worker arenas (threads W0, W1, parked): the same on NWORK chunks,
 *       every 5th kept, i % 101 == 7 leaked.
 *   an idle thread that never mallocs (attached to no arena).
 *   an arena whose only thread (X) kept 10 chunks, freed 50 and exited:
 *       its tcache went back to the arena, attached_threads is 0.
 *   three mmapped chunks: malloc(300 KiB), calloc(256 KiB) and
 *       memalign(65536, 200000) (its header moved into the mapping).
 * mallopt: M_TRIM_THRESHOLD 1 GiB (free never trims by itself),
 * M_MMAP_THRESHOLD 128 KiB (no dynamic threshold), M_ARENA_MAX 8.
 * For the address-space summary it also holds a memfd, a POSIX shm object,
 * a SysV shm segment and a shared anonymous map (each mapped one page), a
 * data file mapped at offset 0, a pipe, a socket pair and an eventfd.
 *
 * Counts: definite 62 (main) + 2 * 15 (workers) = 92.  Possible allowed:
 * the four threads' DTVs.
 *
 * Before writing the truth it records glibc's own numbers, with nothing
 * allocated or freed in between (mallinfo2 is taken before and after
 * malloc_info and must not change):
 *   TRUTH.stats.json        mallinfo2() and, per arena, the chunks and
 *                           bytes the program itself holds there and the
 *                           threads attached;
 *   TRUTH.malloc_info.xml   malloc_info(0);
 * and on SIGUSR1 (taken by the main thread only) it calls malloc_trim(0):
 *   TRUTH.trim.json         mallinfo2().arena and keepcost before and
 *                           after, and the resident bytes (mincore) of
 *                           [heap] and of the arena heaps before and after
 *                           (every page is read before the first count, so
 *                           that every page that malloc_trim releases
 *                           counts).
 * The notes carry "stats-files=TRUTH". */
#include "hs_truth.h"
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define NPEAK 6000
#define NWORK 1500
#define NWORKERS 2
#define NEXIT_KEEP 10
#define HEAP_MAX (64UL << 20)
#define PAGE 4096UL

struct own {
	uint64_t heap;   /* heap base (0 for the main arena) */
	uint64_t chunks; /* in-use chunks the program holds there */
	uint64_t bytes;  /* their chunk sizes */
	int threads;     /* threads attached */
};

static void *g_keep[NPEAK / 7 + 1];
static void *g_free[NPEAK];
static void *volatile g_sorter;
static void *g_wkeep[NWORKERS][NWORK / 5 + 1];
static void *g_wfree[NWORKERS][NWORK];
static void *volatile g_wsorter[NWORKERS];
static void *volatile g_xkeep[NEXIT_KEEP];
static void *volatile g_big[3];
static struct own g_own[2 + NWORKERS];
static uint64_t g_dtv_bytes;
static volatile int g_ready;
static FILE *g_info;
static char g_info_buf[1 << 18];
static char g_out[1 << 14];
static int g_keep_fds[8];

/* The chunk size of p (0 under valgrind, whose heap is not glibc's). */
static size_t csize(const void *p)
{
	return hs_running_on_valgrind() ? 0 : hs_chunk_size(p);
}

static HS_NOINLINE void *xalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		hs_fail("malloc(%zu) failed", n);
	hs_fill(p, 0x5c);
	return p;
}

static size_t peak_size(uint64_t *seed, int big_max)
{
	uint64_t r = hs_rand(seed);
	switch (r % 20) {
	case 0: case 1: case 2: case 3: case 4: case 5:
	case 6: case 7: case 8: case 9: case 10: case 11:
		return 16 + (size_t)(r >> 8) % 113;
	case 12: case 13: case 14: case 15: case 16: case 17:
		return 129 + (size_t)(r >> 8) % 772;
	default:
		return 1024 + (size_t)(r >> 8) % (size_t)(big_max - 1023);
	}
}

/* Shuffle n pointers in place (Fisher-Yates, deterministic). */
static void shuffle(void **a, size_t n, uint64_t *seed)
{
	size_t i;
	for (i = n; i > 1; i--) {
		size_t j = (size_t)(hs_rand(seed) % i);
		void *t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

/* Allocate n chunks; keep every keep-th in keep[], leak those with
 * i % leak_mod == leak_at, free the rest in a shuffled order, then sort the
 * unsorted bin with a malloc(1000).  Accounts the chunks held in *o. */
static HS_NOINLINE void peak(int n, int keep_every, int leak_mod, int leak_at, int big_max,
			     uint64_t seed, void **keep, void **tofree, void *volatile *sorter, struct own *o)
{
	int i, nkeep = 0, nfree = 0, nlate = 0;
	void *p, *last = 0;
	for (i = 0; i < n; i++) {
		size_t sz = peak_size(&seed, big_max);
		p = xalloc(sz);
		if (i % leak_mod == leak_at) {
			hs_definite(p, sz);
			o->chunks++;
			o->bytes += csize(p);
		} else if (i % keep_every == 0) {
			keep[nkeep++] = p;
			o->chunks++;
			o->bytes += csize(p);
		} else if (sz > 1100 && !last) {
			last = p; /* freed at the very end */
		} else if (sz <= 120 && i % 3 == 1) {
			tofree[n - 1 - nlate++] = p; /* freed last */
		} else {
			tofree[nfree++] = p;
		}
		p = 0;
	}
	shuffle(tofree, (size_t)nfree, &seed);
	for (i = 0; i < nfree; i++) {
		free(tofree[i]);
		tofree[i] = 0;
	}
	p = xalloc(1000);
	*sorter = p;
	o->chunks++;
	o->bytes += csize(p);
	p = 0;
	/* Small frees after the last consolidation: the fastbins stay full. */
	for (i = n - nlate; i < n; i++) {
		free(tofree[i]);
		tofree[i] = 0;
	}
	free(last); /* too big for the tcache: the unsorted bin */
	last = 0;
	HS_BARRIER();
}

/* The chunk size of the calling thread's DTV (calloc'd in the main arena
 * by pthread_create), which glibc holds only through dtv-16. */
static HS_NOINLINE void note_dtv(void)
{
	uint64_t dtv;
	__asm__ __volatile__("mov %%fs:8, %0" : "=r"(dtv));
	__atomic_add_fetch(&g_dtv_bytes, csize((void *)(uintptr_t)(dtv - 16)), __ATOMIC_SEQ_CST);
	dtv = 0;
	hs_note_dtv();
}

static HS_NOINLINE void park_helper(void)
{
	hs_scrub_stack(128 * 1024);
	hs_clear_regs();
	__atomic_add_fetch(&g_ready, 1, __ATOMIC_SEQ_CST);
	hs_park();
}

static void *idle_thread(void *arg)
{
	(void)arg;
	note_dtv();
	park_helper();
	return 0;
}

static void *worker_thread(void *arg)
{
	int w = (int)(intptr_t)arg;
	struct own *o = &g_own[2 + w];
	note_dtv();
	peak(NWORK, 5, 101, 7, 8192, 0x5eed0000u + (uint64_t)w, g_wkeep[w], g_wfree[w], &g_wsorter[w], o);
	o->heap = (uint64_t)(uintptr_t)g_wsorter[w] & ~(HEAP_MAX - 1);
	o->threads = 1;
	park_helper();
	return 0;
}

static void *exit_thread(void *arg)
{
	void *tmp[50];
	int i;
	struct own *o = &g_own[1];
	(void)arg;
	note_dtv();
	for (i = 0; i < NEXIT_KEEP; i++) {
		g_xkeep[i] = xalloc(200);
		o->chunks++;
		o->bytes += csize(g_xkeep[i]);
	}
	o->heap = (uint64_t)(uintptr_t)g_xkeep[0] & ~(HEAP_MAX - 1);
	o->threads = 0;
	for (i = 0; i < 50; i++)
		tmp[i] = xalloc(i < 30 ? 40 : 300);
	for (i = 0; i < 50; i++)
		free(tmp[i]);
	memset(tmp, 0, sizeof tmp);
	hs_scrub_stack(64 * 1024);
	return 0;
}

/* The resident bytes of [lo, hi), after reading every page of it first if
 * touch is set. */
static uint64_t resident(uint64_t lo, uint64_t hi, int touch)
{
	static unsigned char vec[4096];
	uint64_t a, n = 0;
	size_t i;
	for (a = lo; touch && a < hi; a += PAGE)
		(void)*(volatile char *)(uintptr_t)a;
	for (a = lo; a < hi;) {
		uint64_t len = hi - a;
		if (len > sizeof vec * PAGE)
			len = sizeof vec * PAGE;
		if (mincore((void *)(uintptr_t)a, len, vec) != 0)
			hs_fail("mincore: %s", strerror(errno));
		for (i = 0; i < len / PAGE; i++)
			n += vec[i] & 1;
		a += len;
	}
	return n * PAGE;
}

/* The resident bytes of [heap] and of every arena heap. */
static uint64_t heap_resident(int touch)
{
	uint64_t lo, hi, total = 0;
	int i;
	if (!hs_find_heap(&lo, &hi))
		hs_fail("no [heap]");
	total += resident(lo, hi, touch);
	for (i = 1; i < 2 + NWORKERS; i++) {
		if (!hs_find_mapping(g_own[i].heap, &lo, &hi, 0, 0) || lo != g_own[i].heap)
			hs_fail("arena heap %#lx is not mapped", (unsigned long)g_own[i].heap);
		total += resident(lo, hi, touch);
	}
	return total;
}

static void write_file(const char *suffix, const char *data, size_t n)
{
	char path[4200], tmp[4210];
	int fd;
	snprintf(path, sizeof path, "%s%s", hs_path, suffix);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data, n) != (ssize_t)n || close(fd) != 0 || rename(tmp, path) != 0)
		hs_fail("writing %s: %s", path, strerror(errno));
}

static void on_usr1(int sig)
{
	struct mallinfo2 a, b;
	uint64_t ra, rb;
	int n;
	(void)sig;
	a = mallinfo2();
	ra = heap_resident(1);
	malloc_trim(0);
	b = mallinfo2();
	rb = heap_resident(0);
	n = snprintf(g_out, sizeof g_out,
		     "{\"arena_before\": %zu, \"arena_after\": %zu, \"keepcost_before\": %zu, \"keepcost_after\": %zu,"
		     " \"resident_before\": %lu, \"resident_after\": %lu}\n",
		     a.arena, b.arena, a.keepcost, b.keepcost, (unsigned long)ra, (unsigned long)rb);
	if (!hs_no_truth)
		write_file(".trim.json", g_out, (size_t)n);
}

static HS_NOINLINE void start_threads(void)
{
	pthread_t t;
	sigset_t set, old;
	int i;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, &old); /* inherited: only main takes it */
	if (pthread_create(&t, 0, idle_thread, 0))
		hs_fail("pthread_create failed");
	for (i = 0; i < NWORKERS; i++)
		if (pthread_create(&t, 0, worker_thread, (void *)(intptr_t)i))
			hs_fail("pthread_create failed");
	hs_wait_count(&g_ready, 1 + NWORKERS);
	if (pthread_create(&t, 0, exit_thread, 0) || pthread_join(t, 0))
		hs_fail("exit thread failed");
	pthread_sigmask(SIG_SETMASK, &old, 0);
	if (hs_running_on_valgrind())
		return;
	for (i = 1; i < 2 + NWORKERS; i++) {
		uint64_t lo, hi;
		if (hs_find_heap(&lo, &hi) && g_own[i].heap >= lo && g_own[i].heap < hi)
			hs_fail("thread %d allocated in the main arena", i);
		if (!g_own[i].heap)
			hs_fail("thread %d has no heap", i);
	}
	if (g_own[1].heap == g_own[2].heap || g_own[1].heap == g_own[3].heap || g_own[2].heap == g_own[3].heap)
		hs_fail("two threads share an arena");
}

static HS_NOINLINE void *map_shared(int fd)
{
	void *p = mmap(0, PAGE, PROT_READ | PROT_WRITE, fd < 0 ? MAP_SHARED | MAP_ANONYMOUS : MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		hs_fail("mmap: %s", strerror(errno));
	memset(p, 0x11, PAGE);
	return p;
}

/* Shared memory of every kind, a data file, and descriptors of every kind. */
static HS_NOINLINE void make_mappings(void)
{
	char name[64], path[4200];
	int fd, sv[2], pfd[2], id;
	void *p;
	fd = memfd_create("hs-stats", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, PAGE) != 0)
		hs_fail("memfd: %s", strerror(errno));
	map_shared(fd);
	g_keep_fds[0] = fd;
	snprintf(name, sizeof name, "/hs-stats-%d", (int)getpid());
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, PAGE) != 0)
		hs_fail("shm_open: %s", strerror(errno));
	map_shared(fd);
	close(fd);
	shm_unlink(name);
	id = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
	if (id < 0)
		hs_fail("shmget: %s", strerror(errno));
	p = shmat(id, 0, 0);
	shmctl(id, IPC_RMID, 0);
	if (p == (void *)-1)
		hs_fail("shmat: %s", strerror(errno));
	memset(p, 0x22, PAGE);
	map_shared(-1);
	snprintf(path, sizeof path, "%s.data", hs_no_truth ? "/tmp/hs-stats" : hs_path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 2 * PAGE) != 0)
		hs_fail("data file: %s", strerror(errno));
	if (mmap(0, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED)
		hs_fail("mmap data file: %s", strerror(errno));
	g_keep_fds[1] = fd;
	if (pipe(pfd) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		hs_fail("pipe/socketpair: %s", strerror(errno));
	g_keep_fds[2] = pfd[0];
	g_keep_fds[3] = pfd[1];
	g_keep_fds[4] = sv[0];
	g_keep_fds[5] = sv[1];
	g_keep_fds[6] = eventfd(0, EFD_CLOEXEC);
	if (g_keep_fds[6] < 0)
		hs_fail("eventfd: %s", strerror(errno));
}

static HS_NOINLINE void big_chunks(void)
{
	g_big[0] = xalloc(300 * 1024);
	g_big[1] = calloc(1, 256 * 1024);
	g_big[2] = memalign(65536, 200000);
	if (!g_big[1] || !g_big[2])
		hs_fail("calloc/memalign failed");
	hs_fill(g_big[2], 0x33);
	if (!hs_running_on_valgrind() && (!hs_is_mmapped(g_big[0]) || !hs_is_mmapped(g_big[1]) || !hs_is_mmapped(g_big[2])))
		hs_fail("a big chunk is not mmapped");
}

static HS_NOINLINE void record(void)
{
	struct mallinfo2 a, b;
	size_t n = 0;
	int i;
	a = mallinfo2();
	if (malloc_info(0, g_info) != 0 || fflush(g_info) != 0)
		hs_fail("malloc_info: %s", strerror(errno));
	b = mallinfo2();
	if (memcmp(&a, &b, sizeof a) != 0)
		hs_fail("malloc_info changed the heap");
	/* The main arena also holds the FILE and the other threads' DTVs. */
	g_own[0].chunks += 1 + 4;
	g_own[0].bytes += csize(g_info) + g_dtv_bytes;
	g_own[0].threads = 1;
	n += (size_t)snprintf(g_out + n, sizeof g_out - n,
			      "{\"mallinfo2\": {\"arena\": %zu, \"ordblks\": %zu, \"smblks\": %zu, \"hblks\": %zu,"
			      " \"hblkhd\": %zu, \"usmblks\": %zu, \"fsmblks\": %zu, \"uordblks\": %zu,"
			      " \"fordblks\": %zu, \"keepcost\": %zu},\n \"arenas\": [",
			      a.arena, a.ordblks, a.smblks, a.hblks, a.hblkhd, a.usmblks, a.fsmblks, a.uordblks,
			      a.fordblks, a.keepcost);
	for (i = 0; i < 2 + NWORKERS; i++)
		n += (size_t)snprintf(g_out + n, sizeof g_out - n,
				      "%s{\"heap\": \"%#lx\", \"in_use_chunks\": %lu, \"in_use_bytes\": %lu, \"threads\": %d}",
				      i ? ", " : "", (unsigned long)g_own[i].heap, (unsigned long)g_own[i].chunks,
				      (unsigned long)g_own[i].bytes, g_own[i].threads);
	n += (size_t)snprintf(g_out + n, sizeof g_out - n, "]}\n");
	if (n >= sizeof g_out)
		hs_fail("stats output too long");
	if (!hs_no_truth)
		write_file(".stats.json", g_out, n);
}

int main(int argc, char **argv)
{
	char path[4200];
	struct sigaction sa;
	hs_init(argc, argv, "stats_peak");
	if (!mallopt(M_ARENA_MAX, 8) || !mallopt(M_TRIM_THRESHOLD, 1 << 30) || !mallopt(M_MMAP_THRESHOLD, 128 * 1024))
		hs_fail("mallopt failed");
	snprintf(path, sizeof path, "%s.malloc_info.xml", hs_no_truth ? "/tmp/hs-stats" : hs_path);
	g_info = fopen(path, "we");
	if (!g_info || setvbuf(g_info, g_info_buf, _IOFBF, sizeof g_info_buf) != 0)
		hs_fail("fopen %s: %s", path, strerror(errno));
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, 0) != 0)
		hs_fail("sigaction: %s", strerror(errno));
	make_mappings();
	start_threads();
	big_chunks(); /* first: a large request consolidates the fastbins */
	peak(NPEAK, 7, 97, 13, 16384, 0x5eedbeefu, g_keep, g_free, &g_sorter, &g_own[0]);
	record();
	hs_note("Peak then free in the main arena and two worker arenas (survivors reachable from .bss, every 97th/101st chunk leaked), an idle thread, an exited thread's arena, three mmapped chunks, shared memory of every kind. stats-files=%s", hs_path);
	return hs_finish();
}
