// forktarget is a long-running process for the fork snapshot tests. Its
// main thread makes one kind of call in a loop and checks every result,
// so that a snapshot that disturbs the call shows.
//
// Options (any order):
//   mode=M    the main thread's loop, M one of:
//               nanosleep  3 ms sleeps, each checked to last 3 ms
//               read       blocking 1-byte reads from a pipe fed every 2 ms
//               futex      FUTEX_WAIT without timeout, woken every 2 ms
//               futexto    FUTEX_WAIT with a 1 s timeout, woken every 2 ms
//               epoll      epoll_wait (1 s timeout) on that pipe
//               ppoll      ppoll (1 s timeout, SIGUSR1 blocked) on that pipe
//               busy       increments a counter in user code
//   seccomp   once its threads run, a seccomp filter (all threads) makes
//             clone, fork, vfork and clone3 fail with EPERM
//
// It always has a SIGCHLD handler that counts, a thread that calls
// waitpid(-1, WNOHANG) every millisecond and counts the children it sees,
// a 2-page MADV_DONTFORK mapping filled with 0x11 and a 2-page
// MADV_WIPEONFORK mapping filled with 0x22.
//
// It prints "ready key=value..." with the addresses of its data, then
// answers each "stats" line on stdin with
// "iters=N eintr=N bad=N short=N sigchld=N children=N lasterr=N"; EOF exits.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef AUDIT_ARCH_X86_64
#define AUDIT_ARCH_X86_64 0xc000003e
#endif

volatile unsigned long iters, eintr, bad, shorts, sigchld, children, counter;
volatile long lasterr;
static volatile uint32_t futex_word;
static int pipefd[2];

static void on_sigchld(int sig) {
	(void)sig;
	sigchld++;
}

static void fail(long err) {
	bad++;
	lasterr = err;
}

static long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

// feeder writes one byte (a sequence number) to the pipe and wakes the
// futex every 2 ms.
static void *feeder(void *arg) {
	(void)arg;
	unsigned char seq = 0;
	for (;;) {
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, 0);
		if (write(pipefd[1], &seq, 1) == 1)
			seq++;
		__atomic_add_fetch(&futex_word, 1, __ATOMIC_SEQ_CST);
		syscall(SYS_futex, &futex_word, FUTEX_WAKE, 1, 0, 0, 0);
	}
	return 0;
}

// waiter counts children that waitpid(-1) reports: there must be none.
static void *waiter(void *arg) {
	(void)arg;
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p > 0)
			children++;
		else if (p < 0 && errno != ECHILD)
			fail(errno);
		usleep(1000);
	}
	return 0;
}

static void *stats(void *arg) {
	(void)arg;
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		if (!strncmp(line, "stats", 5)) {
			printf("iters=%lu eintr=%lu bad=%lu short=%lu sigchld=%lu children=%lu lasterr=%ld\n",
			       iters, eintr, bad, shorts, sigchld, children, lasterr);
			fflush(stdout);
		}
	}
	exit(0);
	return 0;
}

static void start(void *(*fn)(void *)) {
	pthread_t t;
	if (pthread_create(&t, 0, fn, 0) != 0) {
		perror("pthread_create");
		exit(2);
	}
}

static void forbid_clone(void) {
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 4, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fork, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_vfork, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 435 /* clone3 */, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	struct sock_fprog prog = {sizeof f / sizeof f[0], f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) {
		perror("seccomp");
		exit(2);
	}
}

static unsigned char expect_seq;

static void got_byte(void) {
	unsigned char b;
	ssize_t n = read(pipefd[0], &b, 1);
	if (n != 1) {
		if (n < 0 && errno == EINTR)
			eintr++;
		else
			fail(n < 0 ? errno : -1000);
		return;
	}
	if (b != expect_seq)
		fail(-2000 - b);
	expect_seq = b + 1;
}

int main(int argc, char **argv) {
	const char *mode = "nanosleep";
	int sec = 0;
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "mode=", 5))
			mode = argv[i] + 5;
		else if (!strcmp(argv[i], "seccomp"))
			sec = 1;
	}
	struct sigaction sa = {0};
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, 0);

	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *dontfork = mmap(0, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *wipe = mmap(0, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(dontfork, 0x11, 2 * pg);
	memset(wipe, 0x22, 2 * pg);
	if (madvise(dontfork, 2 * pg, MADV_DONTFORK) != 0 || madvise(wipe, 2 * pg, MADV_WIPEONFORK) != 0) {
		perror("madvise");
		exit(2);
	}

	if (pipe(pipefd) != 0 || fcntl(pipefd[1], F_SETFL, O_NONBLOCK) != 0) {
		perror("pipe");
		exit(2);
	}
	start(feeder);
	start(waiter);
	start(stats);
	if (sec)
		forbid_clone();

	printf("ready pid=%d iters=%p dontfork=%p wipe=%p page=%ld counter=%p\n", getpid(), (void *)&iters,
	       (void *)dontfork, (void *)wipe, pg, (void *)&counter);
	fflush(stdout);

	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN};
	epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev);
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);

	if (!strcmp(mode, "nanosleep")) {
		for (;; iters++) {
			struct timespec ts = {0, 3000000};
			long t0 = now_ns();
			int r = nanosleep(&ts, 0);
			long dt = now_ns() - t0;
			if (r != 0) {
				if (errno == EINTR)
					eintr++;
				else
					fail(errno);
			} else if (dt < 3000000) {
				shorts++;
			}
		}
	} else if (!strcmp(mode, "read")) {
		for (;; iters++)
			got_byte();
	} else if (!strcmp(mode, "futex") || !strcmp(mode, "futexto")) {
		int to = !strcmp(mode, "futexto");
		for (;; iters++) {
			uint32_t seen = futex_word;
			struct timespec ts = {1, 0};
			long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT, seen, to ? &ts : 0, 0, 0);
			if (r != 0 && errno == EINTR)
				eintr++;
			else if (r != 0 && errno != EAGAIN)
				fail(errno);
		}
	} else if (!strcmp(mode, "epoll")) {
		for (;; iters++) {
			struct epoll_event out;
			int n = epoll_wait(ep, &out, 1, 1000);
			if (n == 1)
				got_byte();
			else if (n < 0 && errno == EINTR)
				eintr++;
			else
				fail(n < 0 ? errno : -3000);
		}
	} else if (!strcmp(mode, "ppoll")) {
		for (;; iters++) {
			struct pollfd pfd = {pipefd[0], POLLIN, 0};
			struct timespec ts = {1, 0};
			int n = ppoll(&pfd, 1, &ts, &usr1);
			if (n == 1)
				got_byte();
			else if (n < 0 && errno == EINTR)
				eintr++;
			else
				fail(n < 0 ? errno : -4000);
		}
	} else if (!strcmp(mode, "busy")) {
		for (;;) {
			counter++;
			if ((counter & 0xfffff) == 0)
				iters++;
		}
	}
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
