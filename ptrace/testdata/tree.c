// tree is run by the StartTree tests: argv[1] selects what it does. Every
// process writes "tree-marker-<its role>" into a global before it exits,
// so that a test can tell which memory it froze.
//
//   exit N ROLE      set the marker to ROLE, exit with code N
//   fork N           fork N children (child i: marker child-i, exit 10+i),
//                    wait for them, exit 0
//   parallel         fork 2 children that exit only once both have started
//                    (exit 21 and 22), wait for them, exit 0
//   vfork PROG       vfork; the child execs "PROG exit 31 vforked"; a second
//                    vfork child calls _exit(32) without exec; exit 0
//   orphan           fork a child that forks a grandchild and exits 41 at
//                    once; the grandchild (reparented) sleeps 100 ms and
//                    exits 42; exit 0 right after the child is reaped
//   clone            clone(2) children without CLONE_THREAD: one with
//                    SIGCHLD (exit 51), one with no exit signal (exit 52,
//                    waited for with __WALL); exit 0
//   chain PROG N     exec "PROG chain PROG N-1" until N is 0, then exit 60
//   threads          fork a child with 3 extra threads that calls exit(71);
//                    exit 0
//   churn N          create and join N threads that return at once; exit 0
//   sleepchild       fork a child that prints "sleeper PID" and sleeps
//                    forever; exit 0 (for Close and EXITKILL)
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char marker[64] = "tree-marker-parent";

static void role(const char *r) { snprintf(marker, sizeof marker, "tree-marker-%s", r); }

static void reap_all(void) {
	while (waitpid(-1, 0, __WALL) > 0)
		;
}

static char stack[2][64 << 10];

static int cloned(void *arg) {
	role(arg);
	return strcmp(arg, "clone-sigchld") == 0 ? 51 : 52;
}

static void *nothing(void *arg) { return arg; }

static void *spin(void *arg) {
	(void)arg;
	for (;;)
		pause();
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	if (!strcmp(mode, "exit") && argc > 3) {
		role(argv[3]);
		return atoi(argv[2]);
	}
	if (!strcmp(mode, "fork") && argc > 2) {
		int n = atoi(argv[2]);
		for (int i = 0; i < n; i++) {
			if (fork() == 0) {
				char r[32];
				snprintf(r, sizeof r, "child-%d", i);
				role(r);
				_exit(10 + i);
			}
		}
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "parallel")) {
		int p[2][2];
		if (pipe(p[0]) != 0 || pipe(p[1]) != 0)
			return 2;
		for (int i = 0; i < 2; i++) {
			if (fork() == 0) {
				// Tell the sibling we started, wait until it
				// has too: both run at the same time.
				char c = 'x';
				role(i ? "par-1" : "par-0");
				if (write(p[i][1], &c, 1) != 1 || read(p[1 - i][0], &c, 1) != 1)
					_exit(2);
				exit(21 + i);
			}
		}
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "vfork") && argc > 2) {
		pid_t pid = vfork();
		if (pid == 0) {
			execl(argv[2], argv[2], "exit", "31", "vforked", (char *)0);
			_exit(2);
		}
		if (vfork() == 0)
			_exit(32);
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "orphan")) {
		if (fork() == 0) {
			if (fork() == 0) {
				role("grandchild");
				usleep(100000);
				exit(42);
			}
			role("middle");
			_exit(41);
		}
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "clone")) {
		if (clone(cloned, stack[0] + sizeof stack[0], SIGCHLD, "clone-sigchld") < 0)
			return 2;
		if (clone(cloned, stack[1] + sizeof stack[1], 0, "clone-nosig") < 0)
			return 2;
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "chain") && argc > 3) {
		int n = atoi(argv[3]);
		if (n == 0) {
			role("chain-end");
			return 60;
		}
		char next[16];
		snprintf(next, sizeof next, "%d", n - 1);
		execl(argv[2], argv[2], "chain", argv[2], next, (char *)0);
		return 2;
	}
	if (!strcmp(mode, "threads")) {
		if (fork() == 0) {
			role("threaded");
			for (int i = 0; i < 3; i++) {
				pthread_t t;
				pthread_create(&t, 0, spin, 0);
			}
			usleep(10000);
			exit(71);
		}
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "churn") && argc > 2) {
		int n = atoi(argv[2]);
		for (int i = 0; i < n; i++) {
			pthread_t t;
			if (pthread_create(&t, 0, nothing, 0) != 0 || pthread_join(t, 0) != 0)
				return 2;
		}
		return 0;
	}
	if (!strcmp(mode, "sleepchild")) {
		if (fork() == 0) {
			role("sleeper");
			printf("sleeper %d\n", (int)getpid());
			fflush(stdout);
			for (;;)
				pause();
		}
		return 0;
	}
	return 2;
}
