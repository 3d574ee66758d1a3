/* deadstack: the dead part of a thread's stack is no root.
 *
 * Below a thread's stack pointer (and its 128-byte red zone) lies memory the
 * thread no longer uses: stale copies of pointers from returned calls. Like
 * valgrind, heapsift does not scan it. That must hold also where glibc 2.42+
 * guards thread stacks with MADV_GUARD_INSTALL (Linux 6.13+): the guard page
 * no longer splits the mapping, so the stacks of all threads merge into one
 * mapping, and the dead part of one thread's stack lies between the live
 * parts of others.
 *
 * Helper threads D0..D3 (all parked until the process ends; each thread's
 * DTV, calloc'd by pthread_create, is in possible_allowed):
 *   each leaves the only pointer to a chunk in a frame 8 KiB below the
 *     frame it parks in (dead stack)                               definite
 *   each keeps the only pointer to a chunk in a local of the frame it
 *     parks in (live stack)                                       reachable
 * Counts: definite 4, reachable 4. */
#include "hs_truth.h"
#include <pthread.h>

#define NTHREADS 4

static volatile int g_ready;

static HS_NOINLINE void *xalloc(size_t n, int fill)
{
	void *p = malloc(n);
	if (!p)
		hs_fail("malloc(%zu) failed", n);
	hs_fill(p, fill);
	return p;
}

/* Leave the only pointer to a fresh chunk in a deep frame, then return:
 * the copy stays behind in dead stack. */
static HS_NOINLINE void leave_stale(size_t n)
{
	volatile uint64_t frame[256];
	void *p = xalloc(n, 0x5d);
	hs_definite(p, n);
	frame[0] = frame[255] = (uint64_t)(uintptr_t)p;
	frame[128] = frame[0];
	p = 0;
	HS_BARRIER();
}

/* Call leave_stale 8 KiB below the caller, far below anything the parked
 * thread's live frames will ever occupy (they might otherwise keep a stale
 * copy in a padding slot, which is live memory to any conservative scan). */
static HS_NOINLINE void leave_stale_deep(size_t n)
{
	volatile char pad[8192];
	pad[0] = 1;
	leave_stale(n);
	pad[8191] = pad[0];
}

/* The live frame a thread parks in holds a pointer. */
static void *dead_thread(void *arg)
{
	size_t i = (size_t)(uintptr_t)arg;
	void *volatile keep;
	hs_note_dtv();
	/* Deeper than anything below: the stale copies are out of reach. */
	hs_scrub_stack(16 * 1024);
	keep = xalloc(64 + 16 * i, 0x4b);
	hs_reachable(keep);
	leave_stale_deep(200 + 8 * i);
	hs_clear_regs();
	__atomic_add_fetch(&g_ready, 1, __ATOMIC_SEQ_CST);
	hs_park();
	(void)keep;
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t th[NTHREADS];
	size_t i;
	hs_init(argc, argv, "deadstack");
	for (i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], 0, dead_thread, (void *)(uintptr_t)i))
			hs_fail("pthread_create failed");
	hs_wait_count(&g_ready, NTHREADS);
	return hs_finish();
}
