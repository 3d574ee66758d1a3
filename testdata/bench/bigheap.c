/* bigheap: a large heap for benchmarks. Builds a binary tree of N nodes
 * (argv[1], default 1000000) of pseudo-random sizes 16..512 bytes, rooted in
 * a global: 16 + 496*u^S for u uniform in [0, 1), S (argv[3], 1..6, default
 * 1: uniform) skewing them towards small sizes. Then it detaches K subtrees
 * (argv[2], default 64): each detached
 * subtree root is definitely lost, its descendants indirectly lost. Prints
 * "ready PID LEAKED_CHUNKS LEAKED_BYTES" (bytes as malloc_usable_size
 * counts them) and waits, or exits when HS_MODE=exit. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct node {
	struct node *child[2];
};

static struct node *volatile g_root;

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* request returns a size of 16..512 bytes: 16 + x^skew / 496^(skew-1)
 * for x uniform in 0..496 (benchtable computes the same average). */
static size_t request(uint64_t *seed, size_t skew)
{
	uint64_t x = rnd(seed) % 497, v = x;
	size_t i;
	for (i = 1; i < skew; i++)
		v = v * x / 496;
	return 16 + v;
}

/* count walks a subtree with an explicit stack in mmap'd memory. */
static void count(struct node *n, size_t *chunks, size_t *bytes, struct node **stack)
{
	size_t sp = 0;
	stack[sp++] = n;
	while (sp) {
		struct node *c = stack[--sp];
		*chunks += 1;
		*bytes += malloc_usable_size(c);
		if (c->child[0])
			stack[sp++] = c->child[0];
		if (c->child[1])
			stack[sp++] = c->child[1];
	}
}

/* detach cuts k subtrees rooted at distinct nodes deeper than the root's
 * children, skipping nodes inside subtrees already detached. It runs in its
 * own frame so that no pointer to a detached node stays in main's. */
static __attribute__((noinline)) void detach(struct node **all, struct node **stack, size_t n, size_t k,
					     uint64_t *seed, size_t *leaked, size_t *leaked_bytes)
{
	size_t i;
	for (i = 0; i < k; i++) {
		size_t j = 3 + rnd(seed) % (n - 3), p = (j - 1) / 2, a = j;
		int gone = 0;
		if (all[p]->child[(j - 1) % 2] != all[j])
			continue;
		while (a) { /* an ancestor already detached? */
			size_t pa = (a - 1) / 2;
			if (all[pa]->child[(a - 1) % 2] != all[a]) {
				gone = 1;
				break;
			}
			a = pa;
		}
		if (gone)
			continue;
		all[p]->child[(j - 1) % 2] = 0;
		count(all[j], leaked, leaked_bytes, stack);
	}
}

/* scrub overwrites the dead stack below main's frame. */
static __attribute__((noinline)) void scrub(void)
{
	volatile char pad[65536];
	memset((char *)pad, 0, sizeof pad);
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoull(argv[1], 0, 0) : 1000000;
	size_t k = argc > 2 ? strtoull(argv[2], 0, 0) : 64;
	size_t skew = argc > 3 ? strtoull(argv[3], 0, 0) : 1;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	struct node **all, **stack;
	size_t i, leaked = 0, leaked_bytes = 0;
	const char *mode = getenv("HS_MODE");

	if (n < 2)
		n = 2;
	if (skew < 1 || skew > 6)
		skew = 1;
	/* The index lives in mmap'd memory, unmapped before parking, so it is
	 * never a root. */
	all = mmap(0, n * sizeof *all, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	stack = mmap(0, n * sizeof *stack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (all == MAP_FAILED || stack == MAP_FAILED)
		return 1;
	for (i = 0; i < n; i++) {
		size_t sz = request(&seed, skew);
		all[i] = malloc(sz);
		if (!all[i])
			return 1;
		memset(all[i], 0x5a, sz);
		all[i]->child[0] = all[i]->child[1] = 0;
	}
	for (i = 1; i < n; i++)
		all[(i - 1) / 2]->child[(i - 1) % 2] = all[i];
	g_root = all[0];
	detach(all, stack, n, k, &seed, &leaked, &leaked_bytes);
	munmap(all, n * sizeof *all);
	munmap(stack, n * sizeof *stack);
	all = stack = 0;
	scrub();
	printf("ready %d %zu %zu\n", (int)getpid(), leaked, leaked_bytes);
	fflush(stdout);
	if (mode && !strcmp(mode, "exit"))
		return 0;
	for (;;)
		pause();
}
