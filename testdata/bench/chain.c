/* chain: a linked list of N 48-byte nodes (argv[1], default 1000000) rooted
 * in a global, linked in one of three orders (argv[2]): "forward" (each
 * node points to the one allocated after it), "backward" (to the one
 * allocated before it, as a list grown at its head is) or "random" (a
 * shuffled order: every link jumps across the heap). Marking must follow
 * the list one link at a time. It leaks nothing; prints "ready PID" and
 * waits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct node {
	struct node *next;
	long payload[5];
};

static struct node *volatile g_head;

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoull(argv[1], 0, 0) : 1000000, i;
	const char *order = argc > 2 ? argv[2] : "forward";
	unsigned long long s = 0x9e3779b97f4a7c15ULL;
	/* The index lives in mmap'd memory, unmapped before parking, so it is
	 * never a root. */
	struct node **all = mmap(0, n * sizeof *all, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (n < 1 || all == MAP_FAILED)
		return 1;
	for (i = 0; i < n; i++) {
		all[i] = malloc(sizeof **all);
		if (!all[i])
			return 1;
		memset(all[i], 0, sizeof **all);
	}
	if (!strcmp(order, "backward")) {
		for (i = 0; i < n / 2; i++) {
			struct node *t = all[i];
			all[i] = all[n - 1 - i];
			all[n - 1 - i] = t;
		}
	} else if (!strcmp(order, "random")) {
		for (i = n - 1; i > 0; i--) {
			size_t j;
			struct node *t;
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			j = s % (i + 1);
			t = all[i];
			all[i] = all[j];
			all[j] = t;
		}
	}
	for (i = 0; i + 1 < n; i++)
		all[i]->next = all[i + 1];
	g_head = all[0];
	munmap(all, n * sizeof *all);
	all = 0;
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
