/* scoreboard.h: what each worker of the listening pool is doing, kept in
   memory the master and its workers share, under one process-shared robust
   mutex (a worker killed while holding it costs nothing). The master adds
   and removes workers; a worker marks itself idle, busy with a peer, or
   ending. From it come the caps: sessions at once, and per peer. */
#ifndef MYSMTP_SCOREBOARD_H
#define MYSMTP_SCOREBOARD_H

#include <sys/types.h>

#define SCOREBOARD_PEER_MAX 64	/* a peer's key (peer_key): an IPv6 prefix, its length and scope fit */

enum slot_state {
	SLOT_EMPTY,		/* no worker */
	SLOT_STARTING,		/* forked, not yet accepting */
	SLOT_IDLE,		/* waiting to accept */
	SLOT_BUSY,		/* serving a session from peer */
	SLOT_ENDING,		/* its session is over: it accepts again soon */
	SLOT_EXITING,		/* leaving: serves nothing more */
};

struct scoreboard;

/* Counts, at one instant: workers that count against the cap (all but the
   exiting ones), those that can take a connection now or soon (starting,
   idle, ending), those of them up and accepting (idle, ending), and those
   serving a session. */
struct scoreboard_counts {
	unsigned workers, available, idle, busy;
};

/* A scoreboard of nslots slots in fresh shared memory, or NULL (errno). */
struct scoreboard *scoreboard_new(unsigned nslots);
void scoreboard_free(struct scoreboard *sb);

void scoreboard_count(struct scoreboard *sb, struct scoreboard_counts *c);
/* Master: a slot for a worker about to be forked (SLOT_STARTING): its
   index, or -1 when every slot is taken. */
int scoreboard_add(struct scoreboard *sb);
void scoreboard_set_pid(struct scoreboard *sb, int slot, pid_t pid);
/* Master: send sig to every worker. */
void scoreboard_kill(struct scoreboard *sb, int sig);
/* Master: the worker pid is gone: the slot it held (now empty) and the
   state it was in, or -1 when it had given its slot up. */
int scoreboard_remove(struct scoreboard *sb, pid_t pid, enum slot_state *was);

/* Worker: take a session from peer (its key), unless max_per_peer sessions from it
   are running already: 0 (now busy) or -1 (still idle). *last is set to
   1 when no other worker is left available. */
int scoreboard_begin(struct scoreboard *sb, int slot, const char *peer, unsigned max_per_peer,
		     int *last);
/* Worker: go to state; 1 when that makes the first available worker (or,
   for SLOT_EXITING, leaves none), so the master should look again. A worker
   about to exit gives its slot up (SLOT_EMPTY), so that a worker slow to
   exit holds no room a new one needs; it touches the slot no more. */
int scoreboard_set(struct scoreboard *sb, int slot, enum slot_state state);
/* Worker, idle for long: 1 (and the slot is exiting) when another worker
   is available to take its place, else 0. */
int scoreboard_leave_if_spare(struct scoreboard *sb, int slot);

#endif
