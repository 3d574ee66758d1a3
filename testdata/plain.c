/* plain: plain leaks of many sizes, built for the grouping tests.
 *
 * Leaked (all definite, nothing points to any of them):
 *   - 100 x struct record (64 bytes): byte-identical contents (magic
 *     "RECORD01", kind "connection", the same flags, and the same pointer
 *     to a static descriptor in .data), so they share size and content
 *     fingerprint, even before any masking;
 *   - 50 x 32-byte strings "session-N" (N = 0..49), NUL-padded;
 *   - 3 x 4096-byte buffers filled with 'B';
 *   - one each of malloc(1), malloc(24), malloc(40), malloc(1000),
 *     malloc(65536) and malloc(100000) (below the mmap threshold: heap
 *     chunks), calloc(10, 30), and a block realloc'd from 16 to 5000 bytes
 *     (realloc moves it: the new address is the leak, the old one is free).
 *   Total: 100 + 50 + 3 + 8 = 161 definite, 0 indirect, 0 possible.
 * Reachable (never reported):
 *   - 10 records, 5 session strings and one 4096-byte buffer in .bss globals;
 *   - a chunk held only by an initialised .data global;
 *   - a chunk held only by a function-static pointer;
 *   - a chain global -> A -> B -> C (B and C held only by heap chunks). */
#include "hs_truth.h"

#define NREC 100
#define NSESS 50
#define NBUF 3
#define KEEP_REC 10
#define KEEP_SESS 5

struct record_desc {
	const char *name;
	int version;
};

struct record {
	char magic[8];
	char kind[16];
	uint64_t flags;
	const struct record_desc *desc; /* same non-heap pointer in every record */
	uint32_t refs;
	uint32_t state;
	char pad[16];
};

static const struct record_desc g_desc = {"connection", 1};

static struct record *volatile g_records[KEEP_REC];
static char *volatile g_sessions[KEEP_SESS];
static char *volatile g_buffer;
static void *volatile g_data_root = (void *)&g_desc; /* .data, overwritten below */
static void *volatile g_chain;

static HS_NOINLINE void *xalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		hs_fail("malloc(%zu) failed", n);
	hs_fill(p, 0);
	return p;
}

static HS_NOINLINE struct record *new_record(void)
{
	struct record *r = (struct record *)xalloc(sizeof *r);
	memcpy(r->magic, "RECORD01", 8);
	strcpy(r->kind, "connection");
	r->flags = 0x0000000100000003ULL;
	r->desc = &g_desc;
	r->refs = 1;
	r->state = 2;
	return r;
}

static HS_NOINLINE char *new_session(int i)
{
	char *s = (char *)xalloc(32);
	snprintf(s, 32, "session-%d", i);
	return s;
}

static HS_NOINLINE void leak_records(void)
{
	int i;
	for (i = 0; i < NREC + KEEP_REC; i++) {
		struct record *r = new_record();
		if (i < NREC) {
			hs_definite(r, sizeof *r);
		} else {
			g_records[i - NREC] = r;
			hs_reachable(r);
		}
		r = 0;
	}
}

static HS_NOINLINE void leak_sessions(void)
{
	int i;
	for (i = 0; i < NSESS + KEEP_SESS; i++) {
		char *s = new_session(i);
		if (i < NSESS) {
			hs_definite(s, 32);
		} else {
			g_sessions[i - NSESS] = s;
			hs_reachable(s);
		}
		s = 0;
	}
}

static HS_NOINLINE void leak_buffers(void)
{
	int i;
	for (i = 0; i <= NBUF; i++) {
		char *b = (char *)xalloc(4096);
		memset(b, 'B', 4096);
		if (i < NBUF) {
			hs_definite(b, 4096);
		} else {
			g_buffer = b;
			hs_reachable(b);
		}
		b = 0;
	}
}

static HS_NOINLINE void leak_sizes(void)
{
	static const size_t sizes[] = {1, 24, 40, 1000, 65536, 100000};
	size_t i;
	char *p, *q;
	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		p = (char *)xalloc(sizes[i]);
		memset(p, 'a' + (int)i, sizes[i]);
		if (!hs_running_on_valgrind() && hs_is_mmapped(p))
			hs_fail("malloc(%zu) was mmapped", sizes[i]);
		hs_definite(p, sizes[i]);
	}
	p = (char *)xalloc(16);
	memcpy(p, "realloc-me", 11);
	q = (char *)calloc(10, 30); /* right after p: realloc cannot grow p in place */
	if (!q)
		hs_fail("calloc failed");
	hs_fill(q, 0);
	hs_definite(q, 300);
	/* realloc moves the block and frees the 16-byte one (not recorded: a
	 * later malloc may take it back). */
	q = (char *)realloc(p, 5000);
	if (!q || q == p)
		hs_fail("realloc failed or did not move");
	p = q;
	q = 0;
	memset(p + 11, 'r', 5000 - 11);
	hs_definite(p, 5000);
	p = 0;
	HS_BARRIER();
}

static HS_NOINLINE void keep_roots(void)
{
	static void *volatile s_static_root;
	void **a, **b, *c;
	void *d = xalloc(48);
	g_data_root = d;
	hs_reachable(d);
	d = xalloc(56);
	s_static_root = d;
	hs_reachable(d);
	a = (void **)xalloc(24);
	b = (void **)xalloc(24);
	c = xalloc(24);
	a[0] = b;
	b[0] = c;
	g_chain = a;
	hs_reachable(a);
	hs_reachable(b);
	hs_reachable(c);
	a = b = 0;
	c = d = 0;
	(void)s_static_root;
	HS_BARRIER();
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "plain");
	hs_note("161 definite: 100 identical 64-byte records, 50 32-byte 'session-N' strings, 3 4096-byte 'B' buffers, malloc(1/24/40/1000/65536/100000), calloc(10,30), realloc(16->5000). Reachable: 10 records, 5 sessions, 1 buffer in globals; one chunk from a .data global, one from a function static; chain global->A->B->C.");
	leak_records();
	leak_sessions();
	leak_buffers();
	leak_sizes();
	keep_roots();
	return hs_finish();
}
