/* graph: leaked object graphs, where "definite" is a choice of
 * representative per strongly connected component.
 *   1. a leaked singly linked list of 20 nodes      head definite, 19 indirect
 *   2. a 2-cycle A <-> B                             cycle_any_of
 *   3. a 6-node ring                                 cycle_any_of
 *   4. a self-loop                                   cycle_any_of (alone)
 *   5. a definite node T pointing into a 4-ring      T definite, ring indirect
 *   6. a leaked binary tree of 15 nodes              root definite, 14 indirect
 *   7. two definite nodes D1, D2 sharing a child S   D1, D2 definite, S indirect
 *   8. a 3-ring R1 pointing to a 3-ring R2, which
 *      points on to a 2-node chain                   R1 cycle_any_of; R2 and
 *                                                     the chain indirect
 *   9. a leaked doubly linked list of 8 nodes        cycle_any_of (one SCC)
 *  10. a leaked node pointing to a reachable node    definite; the target stays
 *                                                     reachable
 *  11. a 5-node ring hanging from a global           reachable
 *  12. a parent P with an embedded list head (at offset 16) of an intrusive
 *      circular list of 3 children: the children point to P's start never,
 *      only to P+16, and P points to their starts.  As with std::map in the
 *      acceptance cpp case, the strongly connected component's entry is the
 *      chunk no other leaked chunk points to the start of    P definite,
 *                                                             children indirect
 * Within a cycle all members have the same size.  Counts: definite 1+1+1+2+1
 * +1 = 7, cycles 5 (2+6+1+3+8 = 20 members), indirect 19+4+14+1+5+3 = 46. */
#include "hs_truth.h"

struct gnode {
	struct gnode *next;
	struct gnode *prev;
	struct gnode *left;
	struct gnode *right;
	uint64_t id;
};

struct link {
	struct link *next;
	struct link *prev;
};

struct parent {
	uint64_t id;
	uint64_t flags;
	struct link children; /* list head at offset 16 */
};

struct child {
	struct link node; /* at offset 0 */
	uint64_t id;
};

static struct gnode *volatile g_ring;
static struct gnode *volatile g_target;

static HS_NOINLINE struct gnode *alloc_node(size_t size, uint64_t id)
{
	struct gnode *n = (struct gnode *)malloc(size);
	if (!n)
		hs_fail("malloc failed");
	hs_fill(n, 0);
	n->id = id;
	return n;
}

enum rec { R_CYCLE, R_INDIRECT, R_REACHABLE };

/* A ring of n nodes of `size` bytes, recorded as `how`. */
static HS_NOINLINE struct gnode *ring(int n, size_t size, uint64_t id0, enum rec how, int group)
{
	struct gnode *first = 0, *prev = 0, *c = 0;
	int i;
	for (i = 0; i < n; i++) {
		c = alloc_node(size, id0 + (uint64_t)i);
		if (prev)
			prev->next = c;
		else
			first = c;
		prev = c;
		if (how == R_CYCLE)
			hs_cycle(c, size, group);
		else if (how == R_INDIRECT)
			hs_indirect(c, size);
		else
			hs_reachable(c);
	}
	c->next = first;
	c = prev = 0;
	return first;
}

/* A complete binary tree of the given depth; every node indirect. */
static HS_NOINLINE struct gnode *tree(int depth, uint64_t id)
{
	struct gnode *n;
	if (depth == 0)
		return 0;
	n = alloc_node(48, id);
	n->left = tree(depth - 1, 2 * id);
	n->right = tree(depth - 1, 2 * id + 1);
	hs_indirect(n, 48);
	return n;
}

static HS_NOINLINE void build_list(void)
{
	struct gnode *tail = 0, *n;
	int i;
	for (i = 0; i < 20; i++) {
		n = alloc_node(40, 1000 + (uint64_t)i);
		if (tail)
			tail->next = n;
		tail = n;
		if (i == 0)
			hs_definite(n, 40);
		else
			hs_indirect(n, 40);
	}
	tail = n = 0;
	HS_BARRIER();
}

static HS_NOINLINE void build_cycles(void)
{
	struct gnode *a, *b, *t;
	int g;

	g = hs_new_cycle(); /* 2-cycle */
	a = alloc_node(48, 1);
	b = alloc_node(48, 2);
	a->next = b;
	b->next = a;
	hs_cycle(a, 48, g);
	hs_cycle(b, 48, g);

	g = hs_new_cycle(); /* 6-ring */
	(void)ring(6, 64, 10, R_CYCLE, g);

	g = hs_new_cycle(); /* self-loop */
	a = alloc_node(40, 20);
	a->next = a;
	hs_cycle(a, 40, g);

	t = alloc_node(40, 30); /* T -> 4-ring */
	t->next = ring(4, 56, 31, R_INDIRECT, 0);
	hs_definite(t, 40);
	a = b = t = 0;
	HS_BARRIER();
}

static HS_NOINLINE void build_shapes(void)
{
	struct gnode *root, *d1, *d2, *s, *r1, *r2, *c1, *c2, *prev = 0, *n;
	int g, i;

	root = alloc_node(48, 1); /* tree: root + 14 */
	root->left = tree(3, 2);
	root->right = tree(3, 3);
	hs_definite(root, 48);

	d1 = alloc_node(40, 100); /* shared child */
	d2 = alloc_node(40, 101);
	s = alloc_node(40, 102);
	d1->next = s;
	d2->next = s;
	hs_definite(d1, 40);
	hs_definite(d2, 40);
	hs_indirect(s, 40);

	g = hs_new_cycle(); /* ring R1 -> ring R2 -> chain */
	r1 = ring(3, 72, 200, R_CYCLE, g);
	r2 = ring(3, 80, 210, R_INDIRECT, 0);
	c1 = alloc_node(40, 220);
	c2 = alloc_node(40, 221);
	r1->left = r2;
	r2->next->left = c1;
	c1->next = c2;
	hs_indirect(c1, 40);
	hs_indirect(c2, 40);

	g = hs_new_cycle(); /* doubly linked list */
	for (i = 0; i < 8; i++) {
		n = alloc_node(40, 300 + (uint64_t)i);
		n->prev = prev;
		if (prev)
			prev->next = n;
		prev = n;
		hs_cycle(n, 40, g);
	}

	g_target = alloc_node(40, 400); /* leaked -> reachable */
	hs_reachable(g_target);
	n = alloc_node(40, 401);
	n->next = g_target;
	hs_definite(n, 40);

	g_ring = ring(5, 40, 500, R_REACHABLE, 0);

	root = d1 = d2 = s = r1 = r2 = c1 = c2 = prev = n = 0;
	HS_BARRIER();
}

static HS_NOINLINE void build_intrusive(void)
{
	struct parent *p = (struct parent *)malloc(sizeof *p);
	struct child *c;
	int i;
	if (!p)
		hs_fail("malloc failed");
	hs_fill(p, 0);
	p->id = 600;
	p->children.next = p->children.prev = &p->children;
	hs_definite(p, sizeof *p);
	for (i = 0; i < 3; i++) {
		c = (struct child *)malloc(sizeof *c);
		if (!c)
			hs_fail("malloc failed");
		hs_fill(c, 0);
		c->id = 601 + (uint64_t)i;
		c->node.prev = p->children.prev; /* append */
		c->node.next = &p->children;
		p->children.prev->next = &c->node;
		p->children.prev = &c->node;
		hs_indirect(c, sizeof *c);
	}
	p = 0;
	c = 0;
	HS_BARRIER();
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "graph");
	hs_note("Leaked 20-node list (head definite); 2-cycle, 6-ring, self-loop, 3-ring R1 -> 3-ring R2 -> 2-chain, 8-node doubly linked list (cycle_any_of; R2 and chain indirect); definite T -> 4-ring (indirect); 15-node tree (root definite); D1, D2 -> shared S (indirect); leaked node -> reachable node; 5-ring from a global (reachable); parent P (definite) whose 3 children (indirect) point back only to P+16, its embedded list head.");
	build_list();
	build_cycles();
	build_shapes();
	build_intrusive();
	return hs_finish();
}
