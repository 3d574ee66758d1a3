/* cowparent: a process whose heap is shared copy-on-write with a child it
 * forked (a pre-fork server's master). It mallocs and fills 16 MiB, forks
 * a child that only sleeps, and prints "ready buf=ADDR len=N child=PID". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	size_t n = 16 << 20;
	char *buf = malloc(n);
	pid_t child;
	if (!buf)
		return 1;
	memset(buf, 0x5a, n);
	child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		for (;;)
			pause();
	}
	printf("ready buf=%#lx len=%#zx child=%d\n", (unsigned long)buf, n, (int)child);
	fflush(stdout);
	for (;;)
		pause();
}
