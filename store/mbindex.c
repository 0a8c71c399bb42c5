/* mbindex.c: the index beside each mbox. Layout: a 64-octet header (magic,
   message count, mbox octets covered, mbox inode, the three UID counters,
   check), then 32 octets per message (its offset, UID, RETR size, and a
   check mixing them and its position). Only a deletion fsyncs it: every use
   checks it against the mbox, and each entry is checked when read, so a
   lost, torn or damaged index is rebuilt and loses no message. */
#define _GNU_SOURCE
#include "store/mbindex.h"
#include "net/io.h"
#include "store/mboxscan.h"
#include "store/record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "MYSMTPX3"	/* X3: RETR sizes without our bookkeeping lines */
#define MAGIC_BEFORE "MYSMTPX2"	/* rebuilt, keeping its counters and UIDs */
#define HEADER_SIZE 64
#define ENTRY_SIZE 32
#define READ_MAX 256		/* entries read at once */

struct header {
	char magic[8];
	uint64_t count, covered, inode, next_uid, last_uid, next_foreign, check;
};

struct entry {
	uint64_t offset, uid, octets, check;
};

/* splitmix64's finaliser: any changed bit changes about half the output. */
static uint64_t mix(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t header_check(const struct header *hd)
{
	return mix(hd->count ^ mix(hd->covered ^ mix(hd->inode ^ mix(hd->next_uid ^
		   mix(hd->last_uid ^ mix(hd->next_foreign))))));
}

static uint64_t entry_check(uint64_t position, const struct mbentry *m)
{
	return mix(m->offset ^ mix(m->uid ^ mix(m->octets ^ mix(position + 0x9e3779b97f4a7c15ULL))));
}

static int read_header(const struct mbindex *ix, struct header *hd)
{
	return pread_full(ix->fd, hd, sizeof *hd, 0);
}

/* Read entries first .. first + n - 1 (n <= READ_MAX), checking each:
   -ESTALE when one is damaged or out of order. */
static int read_entries(const struct mbindex *ix, uint64_t first, struct mbentry *out, size_t n)
{
	struct entry e[READ_MAX];
	int rc = pread_full(ix->fd, e, n * ENTRY_SIZE, HEADER_SIZE + first * ENTRY_SIZE);

	if (rc < 0)
		return rc == -ENODATA ? -ESTALE : rc;
	for (size_t i = 0; i < n; i++) {
		out[i] = (struct mbentry){ e[i].offset, e[i].uid, e[i].octets };
		if (e[i].check != entry_check(first + i, &out[i]) ||
		    e[i].offset >= ix->covered || (i > 0 && e[i].offset <= out[i - 1].offset))
			return -ESTALE;
	}
	return 0;
}

/* The UID counters of a whole header, even one of an index that no longer
   fits its mbox; a fresh start without one. */
static void take_counters(struct mbindex *ix, const struct header *hd, int whole)
{
	ix->next_uid = whole && hd->next_uid > 0 ? hd->next_uid : 1;
	ix->next_foreign = whole && hd->next_foreign > 0 ? hd->next_foreign : 1;
	ix->last_uid = whole ? hd->last_uid : 0;
}

/* Does the index, as its header says, end where a message can start in
   the mbox of size octets, after a last entry that starts one? 1; else 0
   or -errno, with the index taken to cover nothing. */
static int ends_fit(struct mbindex *ix, int mbox_fd, uint64_t size)
{
	struct mbentry last;
	int rc = 0;

	if (ix->count > 0 && (rc = read_entries(ix, ix->count - 1, &last, 1)) == 0 &&
	    !mbox_boundary_at(mbox_fd, last.offset, ix->covered))
		rc = -ESTALE;
	if (rc == 0 && !mbox_boundary_at(mbox_fd, ix->covered, size))
		rc = -ESTALE;
	if (rc < 0)
		ix->count = ix->covered = 0;
	return rc == -ESTALE ? 0 : rc < 0 ? rc : 1;
}

/* Was the index, as its header says, made for this mbox, and is it whole in
   its file? */
static int header_fits(const struct mbindex *ix, const struct header *hd,
		       const struct stat *mst, const struct stat *ist)
{
	return hd->inode == ix->inode && hd->covered <= (uint64_t)mst->st_size &&
	       hd->count <= ((uint64_t)ist->st_size - HEADER_SIZE) / ENTRY_SIZE &&
	       (uint64_t)ist->st_size == HEADER_SIZE + hd->count * ENTRY_SIZE;
}

int mbindex_check(struct mbindex *ix, int mbox_fd)
{
	struct stat mst, ist;
	struct header hd;
	int rc, whole;

	ix->usable = ix->former = 0;
	ix->count = ix->covered = 0;
	take_counters(ix, &hd, 0);
	if (fstat(mbox_fd, &mst) < 0 || fstat(ix->fd, &ist) < 0)
		return -errno;
	ix->inode = (uint64_t)mst.st_ino;
	rc = read_header(ix, &hd);
	if (rc == -ENODATA && ist.st_size == 0) {
		ix->usable = 1;		/* a new index: it covers nothing yet */
		return mst.st_size == 0;
	}
	if (rc < 0)
		return rc == -ENODATA ? 0 : rc;
	whole = (memcmp(hd.magic, MAGIC, 8) == 0 || memcmp(hd.magic, MAGIC_BEFORE, 8) == 0) &&
		hd.check == header_check(&hd);
	take_counters(ix, &hd, whole);
	if (!whole || !header_fits(ix, &hd, &mst, &ist))
		return 0;
	if (memcmp(hd.magic, MAGIC, 8) != 0) {
		ix->former = 1;		/* its sizes are of then: rebuilt */
		return 0;
	}
	ix->count = hd.count;
	ix->covered = hd.covered;
	if ((rc = ends_fit(ix, mbox_fd, (uint64_t)mst.st_size)) <= 0)
		return rc;
	ix->usable = 1;
	return hd.covered == (uint64_t)mst.st_size;
}

static int write_header(struct mbindex *ix)
{
	struct header hd = { .count = ix->count, .covered = ix->covered, .inode = ix->inode,
			     .next_uid = ix->next_uid, .last_uid = ix->last_uid,
			     .next_foreign = ix->next_foreign };

	memcpy(hd.magic, MAGIC, 8);
	hd.check = header_check(&hd);
	return pwrite_full(ix->fd, &hd, sizeof hd, 0);
}

/* Append entries m[0 .. n - 1] (n <= READ_MAX). */
static int write_entries(struct mbindex *ix, const struct mbentry *m, size_t n)
{
	struct entry e[READ_MAX];
	int rc;

	for (size_t i = 0; i < n; i++)
		e[i] = (struct entry){ m[i].offset, m[i].uid, m[i].octets,
				       entry_check(ix->count + i, &m[i]) };
	rc = pwrite_full(ix->fd, e, n * ENTRY_SIZE, HEADER_SIZE + ix->count * ENTRY_SIZE);
	if (rc == 0)
		ix->count += n;
	return rc;
}

/* Cut a torn last message off the mbox, durably. */
static int cut_torn_tail(int mbox_fd, uint64_t at)
{
	if (ftruncate(mbox_fd, (off_t)at) < 0 || fdatasync(mbox_fd) < 0)
		return -errno;
	return 0;
}

/* The UID of a message found in the mbox: its record's, when that goes on
   from the ones before; else one of the index's own. */
static void give_uid(struct mbindex *ix, struct mbentry *m, uint64_t record_uid)
{
	if (record_uid > ix->last_uid && record_uid < MBINDEX_FOREIGN) {
		m->uid = ix->last_uid = record_uid;
		if (record_uid >= ix->next_uid)
			ix->next_uid = record_uid + 1;
	} else {
		m->uid = MBINDEX_FOREIGN | ix->next_foreign++;
	}
}

/* The entries of an index of the former format being rebuilt, in order of
   offset: their UIDs are kept. */
struct former {
	struct mbentry *e;
	uint64_t n, next;	/* entries, and the first not yet passed */
};

/* The former index's entries (mbindex_check found it fits the mbox), read
   while its file is still whole; none when one is damaged. 0 or -errno. */
static int read_former(const struct mbindex *ix, struct former *f)
{
	struct mbindex old = *ix;
	struct header hd;
	int rc;

	*f = (struct former){ 0 };
	if (!ix->former || (rc = read_header(ix, &hd)) < 0 || hd.count == 0)
		return 0;
	old.count = hd.count;
	old.covered = hd.covered;
	if (!(f->e = malloc(hd.count * sizeof *f->e)))
		return -ENOMEM;
	rc = mbindex_entries(&old, 0, f->e, hd.count);
	if (rc == 0)
		f->n = hd.count;
	return rc == -ESTALE ? 0 : rc;
}

/* The UID the former index gave another program's message at m's offset,
   if it had one there: 1 with m->uid, else 0. Ours are known by their
   records. */
static int former_uid(struct mbindex *ix, struct former *f, struct mbentry *m)
{
	uint64_t n;

	while (f->next < f->n && f->e[f->next].offset < m->offset)
		f->next++;
	if (f->next == f->n || f->e[f->next].offset != m->offset ||
	    !(f->e[f->next].uid & MBINDEX_FOREIGN))
		return 0;
	m->uid = f->e[f->next++].uid;
	n = m->uid & ~MBINDEX_FOREIGN;
	if (n >= ix->next_foreign)
		ix->next_foreign = n + 1;
	return 1;
}

/* The entry of the message [start, end). */
static int make_entry(struct mbindex *ix, int mbox_fd, uint64_t start, uint64_t end,
		      struct former *f, struct mbentry *m)
{
	struct record_span r;
	int rc = record_span(mbox_fd, start, end, &r);

	if (rc == 0)
		rc = record_octets(mbox_fd, &r, &m->octets);
	if (rc < 0)
		return rc;
	m->offset = start;
	if (!former_uid(ix, f, m))
		give_uid(ix, m, r.uid);
	return 0;
}

/* Index the messages from ix->covered to the end of the mbox (size
   octets), cutting a torn last one off: 0 with *stop where the scan
   ended, or -errno. */
static int index_from(struct mbindex *ix, int mbox_fd, uint64_t size, struct former *f,
		      uint64_t *stop)
{
	struct mbentry batch[READ_MAX];
	uint64_t pos, end;
	size_t n = 0;
	int rc;

	for (pos = ix->covered; pos < size; pos = end) {
		rc = mbox_message_end(mbox_fd, pos, size, &end);
		if (rc < 0)
			return rc;
		if (rc == MBOX_TORN) {
			if ((rc = cut_torn_tail(mbox_fd, pos)) < 0)
				return rc;
			break;
		}
		if (rc == MBOX_SKIP)
			continue;
		if ((rc = make_entry(ix, mbox_fd, pos, end, f, &batch[n++])) < 0)
			return rc;
		if (n == READ_MAX) {
			if ((rc = write_entries(ix, batch, n)) < 0)
				return rc;
			n = 0;
		}
	}
	*stop = pos;
	return n > 0 ? write_entries(ix, batch, n) : 0;
}

/* Index the mbox from where the index ends (from its start when it must be
   made anew), and write the header. */
static int index_rest(struct mbindex *ix, int mbox_fd, int rebuild, struct former *f)
{
	uint64_t stop;
	struct stat st;
	int rc;

	if (rebuild || !ix->usable) {
		if (ftruncate(ix->fd, 0) < 0)
			return -errno;
		ix->count = ix->covered = ix->last_uid = 0;
	}
	if (fstat(mbox_fd, &st) < 0)
		return -errno;
	if ((rc = index_from(ix, mbox_fd, (uint64_t)st.st_size, f, &stop)) < 0)
		return rc;
	ix->covered = stop;
	ix->usable = 1;
	return write_header(ix);
}

int mbindex_refresh(struct mbindex *ix, int mbox_fd, int rebuild)
{
	struct former f;
	int rc = mbindex_check(ix, mbox_fd);

	if (rc < 0 || (rc == 1 && !rebuild))
		return rc < 0 ? rc : 0;
	if ((rc = read_former(ix, &f)) == 0)
		rc = index_rest(ix, mbox_fd, rebuild, &f);
	free(f.e);
	return rc;
}

int mbindex_entries(const struct mbindex *ix, uint64_t first, struct mbentry *e, size_t n)
{
	for (size_t done = 0; done < n;) {
		size_t k = n - done < READ_MAX ? n - done : READ_MAX;
		int rc = read_entries(ix, first + done, e + done, k);

		if (rc < 0)
			return rc;
		if (done > 0 && e[done].offset <= e[done - 1].offset)
			return -ESTALE;
		done += k;
	}
	return 0;
}

int mbindex_read(const struct mbindex *ix, uint64_t first, uint64_t *offsets, size_t n)
{
	struct mbentry e[READ_MAX];

	for (size_t done = 0; done < n;) {
		size_t k = n - done < READ_MAX ? n - done : READ_MAX;
		int rc = mbindex_entries(ix, first + done, e, k);

		if (rc < 0)
			return rc;
		if (done > 0 && e[0].offset <= offsets[done - 1])
			return -ESTALE;
		for (size_t i = 0; i < k; i++)
			offsets[done + i] = e[i].offset;
		done += k;
	}
	return 0;
}

int mbindex_locate(const struct mbindex *ix, uint64_t id, uint64_t *start, uint64_t *end)
{
	uint64_t pair[2];
	int rc;

	if (id < 1 || id > ix->count)
		return -ENOENT;
	if (id == ix->count) {
		rc = mbindex_read(ix, id - 1, pair, 1);
		pair[1] = ix->covered;
	} else {
		rc = mbindex_read(ix, id - 1, pair, 2);
	}
	*start = pair[0];
	*end = pair[1];
	return rc;
}

void mbindex_start(struct mbindex *nx, int fd, uint64_t inode, const struct mbindex *old)
{
	*nx = (struct mbindex){ .fd = fd, .inode = inode, .next_uid = old->next_uid,
				.last_uid = old->last_uid, .next_foreign = old->next_foreign,
				.usable = 1 };
}

int mbindex_add(struct mbindex *nx, const struct mbentry *e, size_t n)
{
	for (size_t done = 0; done < n;) {
		size_t k = n - done < READ_MAX ? n - done : READ_MAX;
		int rc = write_entries(nx, e + done, k);

		if (rc < 0)
			return rc;
		done += k;
	}
	return 0;
}

int mbindex_finish(struct mbindex *nx, uint64_t covered)
{
	nx->covered = covered;
	return write_header(nx);
}
