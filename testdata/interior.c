/* interior: chunks held only through interior pointers ("possible"), how
 * possibility propagates, and interior pointers between leaked chunks.
 *   P1 (100): a global holds P1+50                            possible
 *   P2 (64):  a reachable chunk R holds P2+8                  possible
 *   P3 (100): a global holds P3+99 (last requested byte)      possible
 *   P4 (40):  only P1 (possible) points to its start          possible
 *   P5 (40):  only P4 (possible) points to its start          possible
 *   P6 (56):  only P4 (possible) holds P6+24                  possible
 *   P7 (200): a global holds P7+120, and a leaked chunk L7 points to its
 *             start: a root's interior pointer beats a leaked chunk's start
 *             pointer                                         possible
 *   Q1 (48):  a global holds Q1+16, and reachable R points to its start
 *                                                             reachable
 *   Q2 (48):  P1 (possible) points to its start, and reachable R holds
 *             Q2+40                                           possible
 *   L7 (32):  leaked, nothing points to it                    definite
 *   L1 (80):  leaked, holds L2+16                             definite
 *   L2 (72):  only L1 points into it (interior)               indirect
 *   L3 (64):  leaked, holds L4+63 (L4's last requested byte)  definite
 *   L4 (64):  only L3 points into it                          indirect
 *   L5 (24):  leaked, allocated last, so the top chunk starts right after
 *             it: its header is L5+16, inside L5's requested 24 bytes, and
 *             main_arena.top (in libc's data) points there.  That is the
 *             allocator's own bookkeeping, not a reference      definite
 * Counts: possible 8, definite 4, indirect 2.  Every chunk is filled with
 * byte patterns that match none of valgrind's interior-pointer heuristics,
 * so valgrind agrees with these verdicts. */
#include "hs_truth.h"

static char *volatile g_mid;   /* P1+50 */
static char *volatile g_last;  /* P3+99 */
static char *volatile g_p7;    /* P7+120 */
static char *volatile g_q1;    /* Q1+16 */
static void **volatile g_holder; /* R */

static HS_NOINLINE void *xalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		hs_fail("malloc failed");
	hs_fill(p, 0x11);
	return p;
}

static HS_NOINLINE void build_possible(void)
{
	char *p1 = (char *)xalloc(100);
	char *p2 = (char *)xalloc(64);
	char *p3 = (char *)xalloc(100);
	char *p4 = (char *)xalloc(40);
	char *p5 = (char *)xalloc(40);
	char *p6 = (char *)xalloc(56);
	char *p7 = (char *)xalloc(200);
	char *q1 = (char *)xalloc(48);
	char *q2 = (char *)xalloc(48);
	char *l7 = (char *)xalloc(32);
	void **r = (void **)xalloc(64);

	memset(r, 0, malloc_usable_size(r));
	*(void **)(p1 + 8) = p4;  /* P1 -> P4 (start) */
	*(void **)(p1 + 16) = q2; /* P1 -> Q2 (start) */
	*(void **)(p4 + 8) = p5;  /* P4 -> P5 (start) */
	*(void **)(p4 + 16) = p6 + 24;
	*(void **)(l7 + 8) = p7;  /* leaked L7 -> P7 (start) */
	r[1] = p2 + 8;
	r[2] = q1;
	r[3] = q2 + 40;
	g_mid = p1 + 50;
	g_last = p3 + 99;
	g_p7 = p7 + 120;
	g_q1 = q1 + 16;
	g_holder = r;

	hs_possible(p1, 100);
	hs_possible(p2, 64);
	hs_possible(p3, 100);
	hs_possible(p4, 40);
	hs_possible(p5, 40);
	hs_possible(p6, 56);
	hs_possible(p7, 200);
	hs_possible(q2, 48);
	hs_reachable(q1);
	hs_reachable(r);
	hs_definite(l7, 32);
	p1 = p2 = p3 = p4 = p5 = p6 = p7 = q1 = q2 = l7 = 0;
	r = 0;
	HS_BARRIER();
}

static HS_NOINLINE void build_leaked(void)
{
	char *l1 = (char *)xalloc(80);
	char *l2 = (char *)xalloc(72);
	char *l3 = (char *)xalloc(64);
	char *l4 = (char *)xalloc(64);
	*(void **)(l1 + 8) = l2 + 16;
	*(void **)(l3 + 24) = l4 + 63;
	hs_definite(l1, 80);
	hs_indirect(l2, 72);
	hs_definite(l3, 64);
	hs_indirect(l4, 64);
	l1 = l2 = l3 = l4 = 0;
	HS_BARRIER();
}

/* The last allocation: the top chunk's header follows it. */
static HS_NOINLINE void build_last(void)
{
	char *l5 = (char *)xalloc(24);
	uint64_t lo, hi;
	hs_definite(l5, 24);
	if (!hs_running_on_valgrind() && hs_find_heap(&lo, &hi) &&
	    (uint64_t)(uintptr_t)l5 + 16 + hs_chunk_size(l5 + 16 + 16) != hi)
		hs_fail("interior: L5 is not the last chunk before top");
	l5 = 0;
	HS_BARRIER();
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "interior");
	hs_note("Possible: P1 (global->+50), P2 (reachable R->+8), P3 (global->+99), P4 (start from possible P1), P5 (start from possible P4), P6 (+24 from possible P4), P7 (global->+120 beats leaked L7's start pointer), Q2 (start from possible P1, +40 from R). Reachable: Q1 (global->+16 and R->start), R. Definite L7, L1, L3; indirect L2 (L1 holds L2+16), L4 (L3 holds L4+63). Definite L5 (24 bytes), the last chunk before top: main_arena.top points to L5+16, inside its requested size.");
	build_possible();
	build_leaked();
	build_last();
	return hs_finish();
}
