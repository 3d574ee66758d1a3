/* leaker: heapsift's bundled demo, a tiny "web service" with three leaks.
 *
 *   - every failed request leaks its struct request and its header line
 *     (an error path that forgets to free);
 *   - a session cache drops its list head on reset, losing every node
 *     (the head is definitely lost, the other nodes indirectly);
 *   - a C-style "object" with a function-pointer table is leaked.
 *
 * Its configuration and its live sessions stay reachable. It prints
 * "ready PID" once its heap is built, then waits to be analyzed (or exits
 * with HEAPSIFT_DEMO_EXIT=1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct request {
	int id;
	int status;
	char *line;     /* "GET /api/users/17 HTTP/1.1" */
	char method[8];
	long started_ns;
};

struct session {
	struct session *next;
	char user[24];
	long expires;
};

struct handler_ops {
	int (*open)(void *);
	int (*close)(void *);
};

struct config {
	char *listen;
	char *root;
	int workers;
};

static struct config *g_config;
static struct session *g_live;

static int op_open(void *p) { return p != 0; }
static int op_close(void *p) { return p == 0; }
static const struct handler_ops g_ops = {op_open, op_close};

static int handle(int id)
{
	struct request *r = calloc(1, sizeof *r);
	char buf[64];
	r->id = id;
	snprintf(buf, sizeof buf, "GET /api/users/%d HTTP/1.1", id);
	r->line = strdup(buf);
	strcpy(r->method, "GET");
	r->status = (id % 5 == 0) ? 500 : 200;
	if (r->status != 200)
		return -1; /* the leak: r and r->line are never freed */
	free(r->line);
	free(r);
	return 0;
}

static struct session *new_session(const char *user, int i)
{
	struct session *s = calloc(1, sizeof *s);
	snprintf(s->user, sizeof s->user, "%s-%d", user, i);
	s->expires = 1700000000L + i;
	return s;
}

/* A cache whose head is dropped on reset: every node is lost. */
static __attribute__((noinline)) void fill_and_reset_cache(void)
{
	struct session *cache = 0;
	int i;
	for (i = 0; i < 30; i++) {
		struct session *s = new_session("cached", i);
		s->next = cache;
		cache = s;
	}
	cache = 0; /* the bug: "reset" without freeing */
}

static __attribute__((noinline)) void open_live_sessions(void)
{
	int i;
	for (i = 0; i < 5; i++) {
		struct session *s = new_session("live", i);
		s->next = g_live;
		g_live = s;
	}
}

static __attribute__((noinline)) void register_handler(void)
{
	const struct handler_ops **obj = malloc(64);
	memset(obj, 0, 64);
	*obj = &g_ops; /* an object whose first word points at its ops table */
}

/* Overwrite the dead stack below main's frame, as a busy program would. */
static __attribute__((noinline)) void scrub(void)
{
	volatile char pad[16384];
	memset((char *)pad, 0, sizeof pad);
}

int main(void)
{
	int i;

	g_config = calloc(1, sizeof *g_config);
	g_config->listen = strdup("0.0.0.0:8080");
	g_config->root = strdup("/srv/www");
	g_config->workers = 4;

	for (i = 1; i <= 200; i++)
		handle(i);
	fill_and_reset_cache();
	open_live_sessions();
	register_handler();
	scrub();

	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (getenv("HEAPSIFT_DEMO_EXIT"))
		return 0;
	for (;;)
		pause();
}
