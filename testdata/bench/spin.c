/* spin: a CPU-bound program for the run-overhead benchmark
 * (bench/run_test.go). It does a fixed amount of work, argv[1] units
 * (default 60: about 1 s of CPU, built -O0 on a 2020s x86-64 core), so
 * that any slowdown under a tracer shows in its run time:
 *   - 10 rounds; in each, the main thread and 3 new threads (created and
 *     joined every round) churn through malloc/free of pseudo-random sizes
 *     (16 B to 4 KiB, now and then 256 KiB: mmapped chunks) and hash what
 *     they wrote; the main thread does 70% of the work, so one core is
 *     busy most of the time;
 *   - an interval timer sends SIGALRM every 20 ms, and the main thread
 *     raises SIGUSR1 once a round: signals, which a tracer sees;
 * It frees everything (it leaks nothing) and prints the hash, so that the
 * work cannot be optimized away. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define SLOTS 64
#define ROUNDS 10

static volatile sig_atomic_t g_alarms, g_usr1;

static void on_alarm(int sig) { (void)sig; g_alarms++; }
static void on_usr1(int sig) { (void)sig; g_usr1++; }

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* work does n units: each unit allocates, fills, hashes and frees about
 * 20000 chunks. */
static uint64_t work(uint64_t n, uint64_t seed)
{
	unsigned char *slot[SLOTS] = {0};
	size_t len[SLOTS] = {0};
	uint64_t h = 1469598103934665603ULL, s = seed | 1;
	uint64_t i, steps = n * 20000;
	for (i = 0; i < steps; i++) {
		uint64_t r = rnd(&s);
		int k = (int)(r % SLOTS);
		size_t j;
		if (slot[k]) {
			for (j = 0; j < len[k]; j += 8)
				h = (h ^ slot[k][j]) * 1099511628211ULL;
			free(slot[k]);
		}
		len[k] = (r >> 8) % 1000 == 0 ? 256 << 10 : 16 + (r >> 16) % 4080;
		slot[k] = malloc(len[k]);
		if (!slot[k]) {
			fprintf(stderr, "malloc failed\n");
			exit(2);
		}
		memset(slot[k], (int)r, len[k] < 256 ? len[k] : 256);
		slot[k][len[k] - 1] = (unsigned char)r;
	}
	for (i = 0; i < SLOTS; i++)
		free(slot[i]);
	return h;
}

struct job {
	uint64_t units, seed, hash;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	j->hash = work(j->units, j->seed);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t units = argc > 1 ? strtoull(argv[1], 0, 10) : 60;
	uint64_t per_round = units / ROUNDS, h = 0;
	struct itimerval it = {{0, 20000}, {0, 20000}};
	struct sigaction sa;
	int round, t;

	memset(&sa, 0, sizeof sa);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, 0);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, 0);
	setitimer(ITIMER_REAL, &it, 0);

	for (round = 0; round < ROUNDS; round++) {
		pthread_t th[3];
		struct job jobs[3];
		for (t = 0; t < 3; t++) {
			jobs[t].units = per_round / 10;
			jobs[t].seed = (uint64_t)round * 31 + (uint64_t)t + 7;
			if (pthread_create(&th[t], 0, worker, &jobs[t])) {
				fprintf(stderr, "pthread_create failed\n");
				return 2;
			}
		}
		h ^= work(per_round - 3 * (per_round / 10), (uint64_t)round + 1);
		raise(SIGUSR1);
		for (t = 0; t < 3; t++) {
			pthread_join(th[t], 0);
			h ^= jobs[t].hash;
		}
	}
	it.it_value.tv_usec = it.it_interval.tv_usec = 0;
	setitimer(ITIMER_REAL, &it, 0);
	printf("hash %016llx alarms %d usr1 %d\n", (unsigned long long)h, (int)g_alarms, (int)g_usr1);
	return 0;
}
