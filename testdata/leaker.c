/* leaker: the bundled demo for `heapsift demo`, a small "HTTP service" that
 * leaks the way real services do.  Run it by hand as `leaker [TRUTH_PATH]`:
 * in pause mode (the default) it prints its pid and a hint on stdout, then
 * sleeps forever; with HS_MODE=exit it returns from main at once.  Without a
 * TRUTH_PATH it writes no truth file.
 *
 * What it does:
 *   - loads a config (struct config + its name and route strings), kept in
 *     a global for the whole run                             reachable;
 *   - handles 20 requests ("GET /api/users/17 HTTP/1.1", ...): each parses
 *     into a struct request with a method, a path and up to 3 header
 *     strings; the handler frees everything, except on its error path
 *     (a request for a missing user: requests 3, 7, 11, 15 and 19), which
 *     returns early and forgets the request:
 *         struct request                                      definite
 *         its path and header strings                         indirect;
 *   - fills a response cache (a singly linked list of 12 entries, each with
 *     a key "user:N" and a value string "{\"id\":N,...}"), then "resets"
 *     it by dropping the head pointer without freeing:
 *         the first entry                                     definite
 *         the other 11 entries and all 12 values              indirect;
 *   - keeps a reachable session table with 3 live sessions.
 * Every chunk is cleared before it is freed, so free memory holds no stale
 * pointer.  Counts: definite 5 + 1 = 6; indirect 5 * 4 (path, 3 headers) +
 * 11 + 12 = 43.
 *
 * The file also builds on its own (`cc -O0 -g -o leaker leaker.c`, with no
 * hs_truth.h beside it), so that it can be bundled as it is: the recorder's
 * calls then do nothing and no truth is written. */
#if defined(__has_include)
#if __has_include("hs_truth.h")
#include "hs_truth.h"
#define HS_HAVE_TRUTH 1
#endif
#endif

#ifndef HS_HAVE_TRUTH
#define _GNU_SOURCE 1
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define HS_NOINLINE __attribute__((noinline))
#define HS_BARRIER() __asm__ __volatile__("" ::: "memory")
#define hs_note(...) ((void)0)
#define hs_definite(p, n) ((void)(p), (void)(n))
#define hs_indirect(p, n) ((void)(p), (void)(n))
#define hs_reachable(p) ((void)(p))
static int hs_exit_mode;
static void hs_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(3);
}
static void hs_init_optional(int argc, char **argv, const char *name)
{
	const char *mode = getenv("HS_MODE");
	(void)argc;
	(void)argv;
	(void)name;
	hs_exit_mode = mode && !strcmp(mode, "exit");
}
static void hs_fill(void *p, int byte)
{
	memset(p, byte, malloc_usable_size(p));
}
/* Clear the dead stack below main, so that no stale copy of a leaked
 * pointer keeps it looking reachable, then park or return. */
static HS_NOINLINE void hs_scrub(void)
{
	volatile char b[256 * 1024];
	size_t i;
	for (i = 0; i < sizeof b; i++)
		b[i] = 0;
}
static int hs_finish(void)
{
	hs_scrub();
	if (hs_exit_mode)
		return 0;
	for (;;)
		pause();
}
#endif

#define NREQ 20
#define NCACHE 12
#define MAXHDR 3

struct config {
	char *name;
	int port;
	int workers;
	char *routes[4];
};

struct request {
	int id;
	char method[8];
	char *path;
	char *headers[MAXHDR];
	int nheaders;
	int status;
};

struct cache_entry {
	struct cache_entry *next;
	char key[24];
	char *value;
	size_t len;
};

struct session {
	char token[32];
	int user;
	long last_seen;
};

static struct config *volatile g_config;
static struct cache_entry *volatile g_cache;
static struct session *volatile g_sessions[3];

static HS_NOINLINE void *xalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		hs_fail("malloc(%zu) failed", n);
	hs_fill(p, 0);
	return p;
}

/* Clear a chunk over its usable size, then free it. */
static HS_NOINLINE void release(void *p)
{
	if (!p)
		return;
	hs_fill(p, 0);
	free(p);
}

static HS_NOINLINE char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = (char *)xalloc(n);
	memcpy(d, s, n);
	return d;
}

static HS_NOINLINE void load_config(void)
{
	static const char *routes[4] = {"/api/users", "/api/orders", "/health", "/metrics"};
	struct config *c = (struct config *)xalloc(sizeof *c);
	int i;
	c->name = xstrdup("demo-service");
	c->port = 8080;
	c->workers = 4;
	hs_reachable(c);
	hs_reachable(c->name);
	for (i = 0; i < 4; i++) {
		c->routes[i] = xstrdup(routes[i]);
		hs_reachable(c->routes[i]);
	}
	g_config = c;
	c = 0;
}

static HS_NOINLINE struct request *parse_request(int id, int user)
{
	static const char *agents[3] = {"curl/7.88.1", "Mozilla/5.0 (X11; Linux x86_64)", "python-requests/2.28"};
	struct request *r = (struct request *)xalloc(sizeof *r);
	char buf[128];
	int i;
	r->id = id;
	memcpy(r->method, "GET", 4);
	snprintf(buf, sizeof buf, "GET /api/users/%d HTTP/1.1", user);
	r->path = xstrdup(buf);
	snprintf(buf, sizeof buf, "Host: demo.example.com:%d", g_config->port);
	r->headers[0] = xstrdup(buf);
	snprintf(buf, sizeof buf, "User-Agent: %s", agents[id % 3]);
	r->headers[1] = xstrdup(buf);
	snprintf(buf, sizeof buf, "X-Request-Id: req-%04d", id);
	r->headers[2] = xstrdup(buf);
	r->nheaders = MAXHDR;
	for (i = 0; i < (int)sizeof buf; i++)
		buf[i] = 0;
	return r;
}

static HS_NOINLINE void free_request(struct request *r)
{
	int i;
	release(r->path);
	for (i = 0; i < r->nheaders; i++)
		release(r->headers[i]);
	release(r);
}

/* Users 1..15 exist; requests 3, 7, 11, ... ask for user 100+id, which does
 * not. */
static HS_NOINLINE int handle(int id)
{
	int user = id % 4 == 3 ? 100 + id : 1 + id % 15;
	struct request *r = parse_request(id, user);
	int i;
	if (user > 15) {
		/* BUG: the error path forgets to free the request. */
		r->status = 404;
		hs_definite(r, sizeof *r);
		hs_indirect(r->path, strlen(r->path) + 1);
		for (i = 0; i < r->nheaders; i++)
			hs_indirect(r->headers[i], strlen(r->headers[i]) + 1);
		r = 0;
		return 404;
	}
	r->status = 200;
	free_request(r);
	r = 0;
	return 200;
}

static HS_NOINLINE void fill_cache(void)
{
	struct cache_entry *head = 0, *e;
	char buf[128];
	int i;
	for (i = NCACHE - 1; i >= 0; i--) {
		e = (struct cache_entry *)xalloc(sizeof *e);
		snprintf(e->key, sizeof e->key, "user:%d", i + 1);
		snprintf(buf, sizeof buf, "{\"id\":%d,\"name\":\"user%d\",\"plan\":\"%s\"}", i + 1, i + 1,
			 i % 3 ? "free" : "pro");
		e->value = xstrdup(buf);
		e->len = strlen(buf);
		e->next = head;
		head = e;
		if (i == 0)
			hs_definite(e, sizeof *e);
		else
			hs_indirect(e, sizeof *e);
		hs_indirect(e->value, e->len + 1);
	}
	g_cache = head;
	head = e = 0;
	/* BUG: "reset" drops the list instead of freeing it. */
	g_cache = 0;
}

static HS_NOINLINE void open_sessions(void)
{
	int i;
	for (i = 0; i < 3; i++) {
		struct session *s = (struct session *)xalloc(sizeof *s);
		snprintf(s->token, sizeof s->token, "tok-%08x", 0x1234abcdU + (unsigned)i);
		s->user = i + 1;
		s->last_seen = 1700000000L + i;
		g_sessions[i] = s;
		hs_reachable(s);
	}
}

int main(int argc, char **argv)
{
	int i, errors = 0;
	hs_init_optional(argc, argv, "leaker");
	hs_note("Demo service. Definite: 5 struct request (404 error path) and the head of a dropped 12-entry cache list. Indirect: each leaked request's path and 3 header strings, the other 11 cache entries and all 12 cache values. Reachable: the config with its strings, 3 sessions.");
	load_config();
	for (i = 0; i < NREQ; i++)
		errors += handle(i) == 404;
	fill_cache();
	open_sessions();
	if (!hs_exit_mode) {
		printf("leaker: pid %d, %d of %d requests failed; parked.\n"
		       "leaker: inspect it with: heapsift leaks %d\n",
		       (int)getpid(), errors, NREQ, (int)getpid());
		fflush(stdout);
	}
	return hs_finish();
}
