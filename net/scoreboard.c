/* scoreboard.c: the listening pool's shared table of workers (scoreboard.h). */
#define _GNU_SOURCE
#include "net/scoreboard.h"

#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

struct slot {
	pid_t pid;
	enum slot_state state;
	char peer[SCOREBOARD_PEER_MAX];
};

struct scoreboard {
	pthread_mutex_t lock;
	size_t size;		/* of the mapping */
	unsigned nslots;
	unsigned used;		/* slots ever taken: the ones to look at */
	struct slot slot[];
};

struct scoreboard *scoreboard_new(unsigned nslots)
{
	size_t size = sizeof(struct scoreboard) + (size_t)nslots * sizeof(struct slot);
	struct scoreboard *sb = mmap(NULL, size, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pthread_mutexattr_t attr;
	int rc;

	if (sb == MAP_FAILED)
		return NULL;
	sb->size = size;
	sb->nslots = nslots;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	rc = pthread_mutex_init(&sb->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (rc != 0) {
		munmap(sb, size);
		errno = rc;
		return NULL;
	}
	return sb;		/* the mapping is zeroed: every slot SLOT_EMPTY */
}

void scoreboard_free(struct scoreboard *sb)
{
	pthread_mutex_destroy(&sb->lock);
	munmap(sb, sb->size);
}

/* A worker killed while it held the lock left only its own slot half
   written, and the master clears that slot when it reaps the worker. */
static void lock(struct scoreboard *sb)
{
	if (pthread_mutex_lock(&sb->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&sb->lock);
}

static void unlock(struct scoreboard *sb)
{
	pthread_mutex_unlock(&sb->lock);
}

static int is_available(enum slot_state s)
{
	return s == SLOT_STARTING || s == SLOT_IDLE || s == SLOT_ENDING;
}

static void count(const struct scoreboard *sb, struct scoreboard_counts *c)
{
	memset(c, 0, sizeof *c);
	for (unsigned i = 0; i < sb->used; i++) {
		enum slot_state s = sb->slot[i].state;

		c->workers += s != SLOT_EMPTY && s != SLOT_EXITING;
		c->available += is_available(s);
		c->idle += s == SLOT_IDLE || s == SLOT_ENDING;
		c->busy += s == SLOT_BUSY;
	}
}

void scoreboard_count(struct scoreboard *sb, struct scoreboard_counts *c)
{
	lock(sb);
	count(sb, c);
	unlock(sb);
}

int scoreboard_add(struct scoreboard *sb)
{
	int found = -1;

	lock(sb);
	for (unsigned i = 0; i < sb->nslots && found < 0; i++) {
		if (sb->slot[i].state == SLOT_EMPTY) {
			sb->slot[i] = (struct slot){ .state = SLOT_STARTING };
			found = (int)i;
			if (i >= sb->used)
				sb->used = i + 1;
		}
	}
	unlock(sb);
	return found;
}

void scoreboard_set_pid(struct scoreboard *sb, int slot, pid_t pid)
{
	lock(sb);
	sb->slot[slot].pid = pid;
	unlock(sb);
}

int scoreboard_remove(struct scoreboard *sb, pid_t pid, enum slot_state *was)
{
	int found = -1;

	lock(sb);
	for (unsigned i = 0; i < sb->used && found < 0; i++) {
		if (sb->slot[i].state != SLOT_EMPTY && sb->slot[i].pid == pid) {
			*was = sb->slot[i].state;
			sb->slot[i] = (struct slot){ .state = SLOT_EMPTY };
			found = (int)i;
		}
	}
	unlock(sb);
	return found;
}

int scoreboard_begin(struct scoreboard *sb, int slot, const char *peer, unsigned max_per_peer,
		     int *last)
{
	struct scoreboard_counts c;
	unsigned same = 0;

	lock(sb);
	for (unsigned i = 0; i < sb->used; i++)
		same += sb->slot[i].state == SLOT_BUSY &&
			strncmp(sb->slot[i].peer, peer, SCOREBOARD_PEER_MAX) == 0;
	if (same >= max_per_peer) {
		unlock(sb);
		return -1;
	}
	snprintf(sb->slot[slot].peer, SCOREBOARD_PEER_MAX, "%s", peer);
	sb->slot[slot].state = SLOT_BUSY;
	count(sb, &c);
	unlock(sb);
	*last = c.available == 0;
	return 0;
}

int scoreboard_set(struct scoreboard *sb, int slot, enum slot_state state)
{
	struct scoreboard_counts c;
	int was, now;

	lock(sb);
	count(sb, &c);
	was = is_available(sb->slot[slot].state);
	now = is_available(state);
	if (state == SLOT_EMPTY)
		sb->slot[slot] = (struct slot){ .state = SLOT_EMPTY };
	else
		sb->slot[slot].state = state;
	unlock(sb);
	return was != now && c.available - (unsigned)was == 0;	/* no other was available */
}

int scoreboard_leave_if_spare(struct scoreboard *sb, int slot)
{
	struct scoreboard_counts c;
	int leave;

	lock(sb);
	count(sb, &c);
	leave = c.available > 1;
	if (leave)
		sb->slot[slot].state = SLOT_EXITING;
	unlock(sb);
	return leave;
}

void scoreboard_kill(struct scoreboard *sb, int sig)
{
	lock(sb);
	for (unsigned i = 0; i < sb->used; i++)
		if (sb->slot[i].state != SLOT_EMPTY && sb->slot[i].pid > 0)
			kill(sb->slot[i].pid, sig);
	unlock(sb);
}
