/* baseline: leaks controlled from the environment, for the CI baseline
 * tests.
 *   HS_LEAK_WIDGETS=N  leaks N 48-byte "widget-<i>" strings (default 3)
 *   HS_LEAK_GADGET=1   also leaks one 200-byte "gadget" record
 * Every leak is definite; a 64-byte "config" string stays reachable. */
#include "hs_truth.h"

static char *volatile g_config;

static HS_NOINLINE void leak_widgets(uint64_t n)
{
	uint64_t i;
	for (i = 0; i < n; i++) {
		char *w = (char *)malloc(48);
		if (!w)
			hs_fail("malloc failed");
		memset(w, 0, malloc_usable_size(w));
		snprintf(w, 48, "widget-%llu", (unsigned long long)i);
		hs_definite(w, 48);
		w = 0;
	}
}

static HS_NOINLINE void leak_gadget(void)
{
	char *g = (char *)malloc(200);
	if (!g)
		hs_fail("malloc failed");
	memset(g, 0, malloc_usable_size(g));
	strcpy(g, "gadget record");
	hs_definite(g, 200);
	g = 0;
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "baseline");
	hs_note("HS_LEAK_WIDGETS 48-byte widget strings and, with HS_LEAK_GADGET=1, a 200-byte gadget: all definite; a config string reachable.");
	g_config = (char *)malloc(64);
	if (!g_config)
		hs_fail("malloc failed");
	memset(g_config, 0, malloc_usable_size(g_config));
	strcpy(g_config, "listen=0.0.0.0:8080");
	hs_reachable(g_config);
	leak_widgets(hs_env_u64("HS_LEAK_WIDGETS", 3));
	if (hs_env_u64("HS_LEAK_GADGET", 0))
		leak_gadget();
	return hs_finish();
}
