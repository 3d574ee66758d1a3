// target is a long-running process for the Attach tests.
//
// Options (any order):
//   spin=N       N threads incrementing `counter` in a loop
//   churn=N      N threads creating and joining short-lived threads
//   r12          a thread spinning with known values in r12 and xmm5
//   raiser       a thread raising SIGUSR2 at itself in a loop
//   sigfile=P    SIGUSR1 appends "U" to file P
//   exit-main    the main thread exits (pthread_exit) once ready
//
// It prints one line "ready key=value..." with the addresses of its data,
// then reads commands from stdin: "stop-raiser" stops the raiser and
// prints "sent=N handled=N"; EOF exits.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

char secret[64] = "heapsift-secret-0123456789";
volatile unsigned long counter, created, sent, handled, usr1;
volatile int stop_raiser;
static int sigfd = -1;

static void on_usr1(int sig) {
	(void)sig;
	usr1++;
	if (sigfd >= 0)
		write(sigfd, "U", 1);
}

static void on_usr2(int sig) {
	(void)sig;
	handled++;
}

static void *spinner(void *arg) {
	(void)arg;
	for (;;)
		counter++;
	return 0;
}

static void *shortlived(void *arg) {
	(void)arg;
	created++;
	return 0;
}

static void *churner(void *arg) {
	(void)arg;
	for (;;) {
		pthread_t t;
		if (pthread_create(&t, 0, shortlived, 0) == 0)
			pthread_join(t, 0);
	}
	return 0;
}

static volatile int r12ready;

static void *r12loop(void *arg) {
	(void)arg;
	uint64_t v = 0x1122334455667788ULL, w = 0x0badc0ffee0ddf00ULL;
	// r12ready is set once the registers hold their values.
	__asm__ volatile("movq %1, %%r12\n\t"
			 "movq %2, %%xmm5\n\t"
			 "movl $1, %0\n"
			 "1:\tpause\n\t"
			 "jmp 1b"
			 : "=m"(r12ready)
			 : "r"(v), "r"(w)
			 : "r12", "xmm5");
	return 0;
}

static void *raiser(void *arg) {
	(void)arg;
	while (!stop_raiser) {
		sent++;
		raise(SIGUSR2);
	}
	return 0;
}

static void start(void *(*fn)(void *), pthread_t *t) {
	pthread_t tmp;
	if (pthread_create(t ? t : &tmp, 0, fn, 0) != 0) {
		perror("pthread_create");
		exit(2);
	}
}

int main(int argc, char **argv) {
	int nspin = 0, nchurn = 0, r12 = 0, raise_ = 0, exitmain = 0;
	pthread_t raiser_t;
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "spin=", 5))
			nspin = atoi(argv[i] + 5);
		else if (!strncmp(argv[i], "churn=", 6))
			nchurn = atoi(argv[i] + 6);
		else if (!strcmp(argv[i], "r12"))
			r12 = 1;
		else if (!strcmp(argv[i], "raiser"))
			raise_ = 1;
		else if (!strncmp(argv[i], "sigfile=", 8))
			sigfd = open(argv[i] + 8, O_WRONLY | O_APPEND | O_CREAT, 0600);
		else if (!strcmp(argv[i], "exit-main"))
			exitmain = 1;
	}
	struct sigaction sa = {0};
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, 0);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, 0);

	size_t heaplen = 1 << 20;
	unsigned char *heap = malloc(heaplen);
	for (size_t i = 0; i < heaplen; i++)
		heap[i] = (unsigned char)(i * 7 + i / 4096);
	// Three pages: readable, PROT_NONE, readable.
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *guard = mmap(0, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(guard, 0x5a, 3 * pg);
	mprotect(guard + pg, pg, PROT_NONE);

	for (int i = 0; i < nspin; i++)
		start(spinner, 0);
	for (int i = 0; i < nchurn; i++)
		start(churner, 0);
	if (r12) {
		start(r12loop, 0);
		while (!r12ready)
			usleep(100);
	}
	if (raise_)
		start(raiser, &raiser_t);

	printf("ready pid=%d secret=%p heap=%p heaplen=%zu guard=%p page=%ld counter=%p created=%p usr1=%p\n",
	       getpid(), (void *)secret, (void *)heap, heaplen, (void *)guard, pg,
	       (void *)&counter, (void *)&created, (void *)&usr1);
	fflush(stdout);
	if (exitmain)
		pthread_exit(0);

	char line[128];
	while (fgets(line, sizeof line, stdin)) {
		if (!strncmp(line, "stop-raiser", 11) && raise_) {
			stop_raiser = 1;
			pthread_join(raiser_t, 0);
			printf("sent=%lu handled=%lu\n", sent, handled);
			fflush(stdout);
		}
	}
	return 0;
}
