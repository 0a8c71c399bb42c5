/* bench/appends.c: what the disk allows, the limit no mode of mysmtpd can
   pass: C threads, each appending 1 KiB records to a file of its own under
   an fcntl lock and calling fdatasync after each, as a delivery does,
   until N appends in all are done.
     appends DIR C N      prints "appends=N seconds=S rate=R" */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECORD 1024

struct writer {
	int dir;
	unsigned id;
	unsigned long n;	/* appends to do */
	int failed;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int append_one(int fd, const char *record)
{
	struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct flock unlock = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

	if (fcntl(fd, F_OFD_SETLKW, &lock) < 0 || write(fd, record, RECORD) != RECORD ||
	    fdatasync(fd) < 0)
		return -1;
	return fcntl(fd, F_OFD_SETLK, &unlock);
}

static void *run(void *arg)
{
	struct writer *w = arg;
	char name[32], record[RECORD];
	int fd;

	memset(record, 'x', sizeof record);
	record[RECORD - 1] = '\n';
	snprintf(name, sizeof name, "appends-%u.txt", w->id);
	fd = openat(w->dir, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		w->failed = errno;
		return NULL;
	}
	for (unsigned long i = 0; i < w->n && !w->failed; i++)
		if (append_one(fd, record) < 0)
			w->failed = errno;
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned c = argc == 4 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;
	unsigned long n = argc == 4 ? strtoul(argv[3], NULL, 10) : 0;
	int dir = argc == 4 ? open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	struct writer *w;
	pthread_t *t;
	double t0, dt;

	if (dir < 0 || c < 1 || c > 1024 || n < c) {
		fprintf(stderr, "usage: appends DIR C N (C writers, N appends in all)\n");
		return 2;
	}
	w = calloc(c, sizeof *w);
	t = calloc(c, sizeof *t);
	if (!w || !t)
		return 1;
	t0 = now();
	for (unsigned i = 0; i < c; i++) {
		w[i] = (struct writer){ .dir = dir, .id = i, .n = n / c + (i < n % c) };
		if (pthread_create(&t[i], NULL, run, &w[i]) != 0)
			return 1;
	}
	for (unsigned i = 0; i < c; i++)
		pthread_join(t[i], NULL);
	dt = now() - t0;
	for (unsigned i = 0; i < c; i++) {
		if (w[i].failed) {
			fprintf(stderr, "appends: %s\n", strerror(w[i].failed));
			return 1;
		}
	}
	printf("appends=%lu seconds=%.3f rate=%.1f\n", n, dt, (double)n / dt);
	return 0;
}
