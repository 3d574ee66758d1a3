/* threadheaps: T threads (argv[1], default 4) each build a linked list of
 * N nodes (argv[2], default 300000) of 32..128 bytes in their own malloc
 * arena, each node pointing to the one allocated before it, rooted in a
 * global array; then they park. The heap is several segments (the main
 * heap and one heap per thread arena), each big enough to be walked in
 * parts. It leaks nothing; prints "ready PID" once every list is built. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXT 64

struct node {
	struct node *prev;
	long payload[2];
};

static struct node *volatile g_heads[MAXT];
static long g_nodes;
static pthread_barrier_t g_built;

static void *build(void *arg)
{
	long t = (long)arg, i;
	struct node *h = 0;
	for (i = 0; i < g_nodes; i++) {
		struct node *x = malloc(sizeof *x + (i % 7) * 16);
		if (!x)
			exit(1);
		memset(x, 0x5a, sizeof *x);
		x->prev = h;
		h = x;
	}
	g_heads[t] = h;
	h = 0;
	pthread_barrier_wait(&g_built);
	for (;;)
		pause();
	return 0;
}

int main(int argc, char **argv)
{
	long t, threads = argc > 1 ? atol(argv[1]) : 4;
	pthread_t th[MAXT];
	g_nodes = argc > 2 ? atol(argv[2]) : 300000;
	if (threads < 1 || threads > MAXT)
		threads = 4;
	pthread_barrier_init(&g_built, 0, threads + 1);
	for (t = 0; t < threads; t++)
		if (pthread_create(&th[t], 0, build, (void *)t))
			return 1;
	pthread_barrier_wait(&g_built);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
