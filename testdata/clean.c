/* clean: no leaks at all, while libc allocates for itself:
 *   - stdio: printf (stdout redirected to /dev/null and fully buffered, so
 *     that nothing reaches a tool sharing our stdout in exit mode), fopen/
 *     fgets/fclose, a FILE kept open in a global, snprintf, getline;
 *   - setlocale(LC_ALL, "C.UTF-8") and back to "C", strerror;
 *   - dlopen("libm.so.6") kept open; dlopen/dlclose of libresolv;
 *   - getaddrinfo("localhost") + freeaddrinfo;
 *   - pthreads: 4 threads created and joined (each mallocs and frees in its
 *     own arena; its tcache is freed when it exits, but its stack goes to
 *     glibc's stack cache together with its DTV, which the TCB in the cached
 *     stack holds only through dtv-16: possible_allowed), and a detached
 *     thread still running (parked, on a cached stack whose DTV it reuses;
 *     its own chunk is held by its stack).
 * Everything the program allocates itself is freed or kept in a global.
 * Expected: leaked = [], possible = []; possible_allowed holds the threads'
 * DTVs and any chunk ld.so holds only through an aligned interior
 * pointer (hs_allow_ldso_interior). */
#include "hs_truth.h"
#include <dlfcn.h>
#include <locale.h>
#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>

static void *volatile g_libm;
static FILE *volatile g_file;
static char *volatile g_kept;
static volatile int g_ready;

static HS_NOINLINE void stdio_work(void)
{
	char buf[256], *line = 0;
	size_t cap = 0;
	FILE *f;
	int i;

	if (!freopen("/dev/null", "w", stdout))
		hs_fail("freopen failed");
	setvbuf(stdout, 0, _IOFBF, 1 << 14);
	for (i = 0; i < 100; i++)
		printf("line %d: %s %f\n", i, "clean", i * 1.5);
	fflush(stdout);
	f = fopen("/proc/self/status", "r");
	if (f) {
		while (fgets(buf, sizeof buf, f))
			;
		fclose(f);
	}
	f = fopen("/proc/self/maps", "r");
	if (f) {
		while (getline(&line, &cap, f) > 0)
			;
		fclose(f);
	}
	free(line);
	g_file = fopen("/proc/self/cmdline", "r");
	if (!g_file)
		hs_fail("fopen failed");
	if (!fgets(buf, sizeof buf, g_file))
		hs_note("empty cmdline;");
	snprintf(buf, sizeof buf, "%s-%d", "kept", 42);
	g_kept = strdup(buf);
	hs_reachable(g_kept);
}

static HS_NOINLINE void libc_work(void)
{
	struct addrinfo hints, *res = 0;
	void *h;
	int i;

	if (!setlocale(LC_ALL, "C.UTF-8"))
		hs_note("setlocale(C.UTF-8) failed;");
	for (i = 0; i < 50; i++)
		(void)strerror(i);
	setlocale(LC_ALL, "C");

	g_libm = dlopen("libm.so.6", RTLD_NOW);
	if (!g_libm)
		hs_fail("dlopen libm: %s", dlerror());
	h = dlopen("libresolv.so.2", RTLD_NOW);
	if (h)
		dlclose(h);

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo("localhost", "80", &hints, &res) == 0)
		freeaddrinfo(res);
	else
		hs_note("getaddrinfo(localhost) failed;");
	res = 0;
}

static void *worker(void *arg)
{
	int i;
	size_t n = 16 + (size_t)(intptr_t)arg * 100;
	hs_note_dtv_once();
	for (i = 0; i < 100; i++) {
		void *p = malloc(n + (size_t)i);
		if (!p)
			hs_fail("malloc failed");
		memset(p, i, n);
		free(p);
	}
	return 0;
}

static void *detached(void *arg)
{
	void *volatile mine;
	(void)arg;
	hs_note_dtv_once();
	mine = malloc(64);
	if (!mine)
		hs_fail("malloc failed");
	hs_fill(mine, 0x64);
	hs_reachable(mine);
	hs_scrub_stack(128 * 1024);
	hs_clear_regs();
	__atomic_add_fetch(&g_ready, 1, __ATOMIC_SEQ_CST);
	hs_park();
	(void)mine;
	return 0;
}

static HS_NOINLINE void thread_work(void)
{
	pthread_t t[4], d;
	pthread_attr_t attr;
	int i;
	for (i = 0; i < 4; i++)
		if (pthread_create(&t[i], 0, worker, (void *)(intptr_t)i))
			hs_fail("pthread_create failed");
	for (i = 0; i < 4; i++)
		if (pthread_join(t[i], 0))
			hs_fail("pthread_join failed");
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&d, &attr, detached, 0))
		hs_fail("pthread_create failed");
	pthread_attr_destroy(&attr);
	hs_wait_count(&g_ready, 1);
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "clean");
	hs_note("No leaks: stdio (printf to /dev/null, fopen/fgets/getline, a FILE kept open), setlocale, strerror, dlopen libm kept + libresolv opened and closed, getaddrinfo/freeaddrinfo, 4 joined threads (their DTVs stay in the stack cache: possible_allowed), 1 detached parked thread (DTV possible_allowed). Reachable: a strdup in a global, the detached thread's chunk on its stack.");
	stdio_work();
	libc_work();
	thread_work();
	hs_allow_ldso_interior();
	return hs_finish();
}
