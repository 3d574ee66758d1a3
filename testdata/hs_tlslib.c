/* hs_tlslib: companion library of threads.c (see its hs-lib: line), loaded
 * with dlopen.  Its TLS is general-dynamic, so glibc allocates each
 * thread's block lazily with malloc, at the thread's first access. */
#include <stddef.h>

__thread void *hs_lib_slot;

/* Store p in the calling thread's copy of hs_lib_slot. */
void hs_lib_set(void *p)
{
	hs_lib_slot = p;
}
