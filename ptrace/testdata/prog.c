// prog is run by the Runner tests: argv[1] selects what it does.
//
//   exit N        exit with code N
//   sigself       raise SIGUSR1 at itself; exit 7 if the handler ran, else 1
//   crash         a second thread crashes with SIGSEGV, r12 = 0xdead0000c0de
//   mtexit N      N threads spin with r12 = 0xfeed0000+i; main exits with 3
//   idleexit N    N threads sleep in pause(); main exits with 3
//   stopself      raise SIGSTOP; exit 5 once continued
//   exec ARGS...  start threads, then execv(ARGS)
//   thread-exec ARGS...  like exec, but from a second thread
//   threadexit    threads come and go (pthread_exit), then exit 4
//   mainexit      the main thread exits; the last thread exits with 6
//   hello         write "hello" to stdout; exit 0
//   sleep         sleep forever
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

char marker[32] = "prog-marker-42";
static volatile int handled, running;

static void on_usr1(int sig) {
	(void)sig;
	handled = 1;
}

static void *spin_r12(void *arg) {
	uint64_t v = 0xfeed0000ULL + (uintptr_t)arg;
	// running counts the threads whose r12 holds its value.
	__asm__ volatile("movq %1, %%r12\n\t"
			 "lock incl %0\n"
			 "1:\tpause\n\t"
			 "jmp 1b"
			 : "+m"(running)
			 : "r"(v)
			 : "r12");
	return 0;
}

static void *crasher(void *arg) {
	(void)arg;
	uint64_t v = 0xdead0000c0deULL;
	__asm__ volatile("movq %0, %%r12\n\t"
			 "movq $0, %%rax\n\t"
			 "movl $1, (%%rax)"
			 :
			 : "r"(v)
			 : "r12", "rax", "memory");
	return 0;
}

static void *idle(void *arg) {
	(void)arg;
	for (;;)
		pause();
	return 0;
}

static void *shortlived(void *arg) {
	(void)arg;
	pthread_exit(0);
}

static void *last(void *arg) {
	(void)arg;
	usleep(50000);
	exit(6);
}

static char **exec_argv;

static void *execer(void *arg) {
	(void)arg;
	usleep(10000);
	execv(exec_argv[0], exec_argv);
	perror("execv");
	exit(2);
}

static void spawn(void *(*fn)(void *), void *arg) {
	pthread_t t;
	if (pthread_create(&t, 0, fn, arg) != 0) {
		perror("pthread_create");
		exit(2);
	}
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	if (!strcmp(mode, "exit") && argc > 2)
		return atoi(argv[2]);
	if (!strcmp(mode, "sigself")) {
		struct sigaction sa = {0};
		sa.sa_handler = on_usr1;
		sigaction(SIGUSR1, &sa, 0);
		raise(SIGUSR1);
		return handled ? 7 : 1;
	}
	if (!strcmp(mode, "crash")) {
		struct rlimit rl = {0, 0};
		setrlimit(RLIMIT_CORE, &rl);
		spawn(idle, 0);
		spawn(crasher, 0);
		for (;;)
			pause();
	}
	if (!strcmp(mode, "mtexit") && argc > 2) {
		int n = atoi(argv[2]);
		for (int i = 0; i < n; i++)
			spawn(spin_r12, (void *)(uintptr_t)i);
		while (running < n)
			usleep(1000);
		exit(3);
	}
	if (!strcmp(mode, "idleexit") && argc > 2) {
		int n = atoi(argv[2]);
		for (int i = 0; i < n; i++)
			spawn(idle, 0);
		usleep(5000);
		exit(3);
	}
	if (!strcmp(mode, "stopself")) {
		printf("stopping\n");
		fflush(stdout);
		raise(SIGSTOP);
		printf("continued\n");
		return 5;
	}
	if (!strcmp(mode, "exec") && argc > 2) {
		for (int i = 0; i < 3; i++)
			spawn(idle, 0);
		usleep(10000);
		execv(argv[2], argv + 2);
		perror("execv");
		return 2;
	}
	if (!strcmp(mode, "thread-exec") && argc > 2) {
		exec_argv = argv + 2;
		for (int i = 0; i < 3; i++)
			spawn(idle, 0);
		spawn(execer, 0);
		for (;;)
			pause();
	}
	if (!strcmp(mode, "threadexit")) {
		for (int round = 0; round < 20; round++) {
			pthread_t t[4];
			for (int i = 0; i < 4; i++)
				pthread_create(&t[i], 0, shortlived, 0);
			for (int i = 0; i < 4; i++)
				pthread_join(t[i], 0);
		}
		spawn(spin_r12, (void *)(uintptr_t)9);
		while (running < 1)
			usleep(1000);
		return 4;
	}
	if (!strcmp(mode, "mainexit")) {
		spawn(last, 0);
		pthread_exit(0);
	}
	if (!strcmp(mode, "hello")) {
		printf("hello\n");
		return 0;
	}
	if (!strcmp(mode, "sleep")) {
		for (;;)
			pause();
	}
	return 2;
}
