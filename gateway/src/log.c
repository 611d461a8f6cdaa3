/*
 * log.c - single-producer/single-consumer rings, one per serving thread,
 * drained by one writer thread. A record is a 4-byte header (length and
 * target) followed by the bytes, padded to 4.
 *
 * No thread ever blocks on a log sink. The writer writes without waiting
 * (pipes and terminals are opened again non-blocking through /proc, or
 * polled and written PIPE_BUF at a time; sockets get MSG_DONTWAIT); what a
 * sink does not take now waits in that sink's own buffer, so a stdout
 * nobody reads holds up neither the error log nor the gateway, and lines
 * that fit nowhere are dropped and counted. Threads without a ring (main,
 * verifiers, the writer itself) write to the sinks themselves, under the
 * sinks' mutex and the same way, so their lines keep their order and
 * never wait; only before the writer starts and after it stops may such a
 * write wait, a bounded time, since nobody else would finish it.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_MAX_RINGS 512
#define LOG_LINE_MAX 8192
#define SINK_PENDING (64 * 1024) /* bytes a sink may owe */
#define DIRECT_WAIT_MS 1000	 /* a direct write waits this long, once */
#define STOP_WAIT_MS 1000	 /* log_stop() gives owed bytes this long */

struct log_ring {
	char *buf;
	size_t size;	       /* power of two */
	_Atomic uint64_t head; /* written by the producer */
	_Atomic uint64_t tail; /* written by the writer thread */
	_Atomic uint64_t dropped;
};

static _Thread_local struct log_ring *log_mine;
static struct log_ring *log_rings[LOG_MAX_RINGS];
static _Atomic size_t log_nrings;
static _Atomic int log_level_max = LOG_INFO;
static _Atomic bool log_running;
static pthread_t log_thread;
static pthread_mutex_t log_attach_mtx = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_names[] = {"error", "warn", "info", "debug"};

/* Where access lines go: stdout, or a file (log_access_open). Records name
 * their target, not a descriptor, so that the file can be swapped under
 * them; only the writer thread writes to it once it runs. */
enum { TARGET_ACCESS = 1, TARGET_ERROR = 2 };
static _Atomic int log_access_fd = STDOUT_FILENO;
static pthread_mutex_t log_path_mtx = PTHREAD_MUTEX_INITIALIZER;
static char *log_access_path; /* under log_path_mtx; NULL: stdout */
static _Atomic bool log_reopen_asked;

static int
target_fd(int target)
{
	return target == TARGET_ACCESS ? atomic_load(&log_access_fd)
				       : STDERR_FILENO;
}

/* How a sink is written without waiting. */
enum sink_kind {
	SINK_FILE,   /* a regular file: write() returns */
	SINK_STREAM, /* pipe, FIFO, terminal: non-blocking, or polled */
	SINK_SOCKET, /* send() with MSG_DONTWAIT (journald's stdout) */
};

/* Where one target's bytes go, and what it owes. */
struct sink {
	int of;	 /* the descriptor it was made for; -1: none */
	int fd;	 /* the one written: of, or own */
	int own; /* a non-blocking reopen of `of`, or -1 */
	enum sink_kind kind;
	bool stalled; /* a direct write gave up: do not wait again */
	size_t plen;
	char pend[SINK_PENDING]; /* bytes taken, not yet written */
};

/* Indexed by target; under log_sink_mtx, which the writer holds while it
 * writes and direct writers hold while they do. */
static struct sink log_sinks[3] = {
    {.of = -1, .own = -1}, {.of = -1, .own = -1}, {.of = -1, .own = -1}};
static pthread_mutex_t log_sink_mtx = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t log_sink_dropped;

void
log_set_level(enum log_level level)
{
	atomic_store(&log_level_max, (int)level);
}

/* Lines in n bytes (for counting what is dropped). */
static uint64_t
lines_in(const char *p, size_t n)
{
	uint64_t k = 0;
	size_t i;

	for (i = 0; i < n; i++)
		k += p[i] == '\n';
	return k > 0 ? k : 1;
}

/* The target's sink, made ready for its current descriptor. */
static struct sink *
sink_of(int target)
{
	struct sink *s = &log_sinks[target];
	int fd = target_fd(target);
	struct stat st;
	char path[64];

	if (s->of == fd)
		return s;
	if (s->own != -1)
		close(s->own);
	s->of = s->fd = fd;
	s->own = -1;
	s->kind = SINK_FILE;
	s->stalled = false;
	if (fstat(fd, &st) == -1)
		return s;
	if (S_ISSOCK(st.st_mode)) {
		s->kind = SINK_SOCKET;
	} else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		/* A new open file description of the same pipe or terminal:
		 * O_NONBLOCK on it changes nothing for whoever shares fd. */
		s->kind = SINK_STREAM;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		s->own =
		    open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (s->own != -1)
			s->fd = s->own;
	}
	return s;
}

/* Writes what the sink takes now: the bytes written, 0 when it takes
 * none now, -1 when it never will (closed, an error). */
static ssize_t
sink_try(struct sink *s, const char *p, size_t n)
{
	struct pollfd pfd = {s->fd, POLLOUT, 0};
	ssize_t w;

	switch (s->kind) {
	case SINK_SOCKET:
		w = send(s->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	case SINK_STREAM:
		if (s->own == -1) {
			/* Blocking, so polled: POLLOUT on a pipe means room
			 * for PIPE_BUF bytes, which then never block. */
			if (poll(&pfd, 1, 0) != 1)
				return 0;
			if (pfd.revents & (POLLERR | POLLNVAL))
				return -1;
			if (n > PIPE_BUF)
				n = PIPE_BUF;
		}
		w = write(s->fd, p, n);
		break;
	default:
		w = write(s->fd, p, n);
		break;
	}
	if (w >= 0)
		return w;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0
									 : -1;
}

/* Writes what is owed, as far as the sink takes it now. */
static void
sink_flush(struct sink *s)
{
	size_t done = 0;
	ssize_t w = 0;

	while (done < s->plen &&
	       (w = sink_try(s, s->pend + done, s->plen - done)) > 0)
		done += (size_t)w;
	if (w < 0) {
		/* The sink is gone: what it owed is lost. */
		atomic_fetch_add(&log_sink_dropped,
				 lines_in(s->pend + done, s->plen - done));
		done = s->plen;
	}
	memmove(s->pend, s->pend + done, s->plen - done);
	s->plen -= done;
}

/* One whole line to the sink, now or owed; false when it was dropped. */
static bool
sink_put(struct sink *s, const char *p, size_t n)
{
	size_t done = 0;
	ssize_t w = 0;

	sink_flush(s);
	if (s->plen == 0)
		while (done < n && (w = sink_try(s, p + done, n - done)) > 0)
			done += (size_t)w;
	if (w < 0 || n - done > sizeof(s->pend) - s->plen) {
		atomic_fetch_add(&log_sink_dropped, 1);
		return false;
	}
	/* The rest waits; a line begun is always finished. */
	memcpy(s->pend + s->plen, p + done, n - done);
	s->plen += n - done;
	return true;
}

static uint64_t now_ms(void);

/* Waits until the sink takes bytes or ms pass; false on timeout. */
static bool
sink_wait(struct sink *s, int ms)
{
	struct pollfd pfd = {s->fd, POLLOUT, 0};

	return poll(&pfd, 1, ms) == 1;
}

/* Gives what the sink owes until `deadline` (CLOCK_MONOTONIC ms). */
static void
sink_settle(struct sink *s, uint64_t deadline)
{
	while (s->plen > 0) {
		uint64_t now;

		sink_flush(s);
		now = now_ms();
		if (s->plen == 0 || now >= deadline ||
		    !sink_wait(s, (int)(deadline - now)))
			break;
	}
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * A line of a thread with no ring, written now as far as the sink takes
 * it; the rest is owed. With no writer running to pay what is owed, it
 * waits DIRECT_WAIT_MS at most, and once a sink made it give up, not
 * again until the sink takes bytes.
 */
static void
direct_put(int target, const char *p, size_t n)
{
	struct sink *s;

	pthread_mutex_lock(&log_sink_mtx);
	s = sink_of(target);
	sink_put(s, p, n);
	if (s->plen == 0)
		s->stalled = false;
	else if (!s->stalled && !atomic_load(&log_running)) {
		sink_settle(s, now_ms() + DIRECT_WAIT_MS);
		s->stalled = s->plen > 0;
	}
	pthread_mutex_unlock(&log_sink_mtx);
}

/* Copies len bytes into the ring at logical offset off, wrapping. */
static void
ring_copy_in(struct log_ring *r, uint64_t off, const void *src, size_t len)
{
	size_t at = (size_t)(off & (r->size - 1));
	size_t first = r->size - at < len ? r->size - at : len;

	memcpy(r->buf + at, src, first);
	memcpy(r->buf, (const char *)src + first, len - first);
}

static int
ring_put(struct log_ring *r, int fd, const char *line, size_t len)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	size_t need = 4 + ((len + 3) & ~(size_t)3);
	uint32_t hdr = (uint32_t)len | ((uint32_t)fd << 24);

	if (len >= (1u << 24) || need > r->size - (size_t)(head - tail)) {
		atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
		return -1;
	}
	ring_copy_in(r, head, &hdr, 4);
	ring_copy_in(r, head + 4, line, len);
	atomic_store_explicit(&r->head, head + need, memory_order_release);
	return 0;
}

static void
emit(int target, const char *line, size_t len)
{
	if (log_mine != NULL && atomic_load(&log_running)) {
		ring_put(log_mine, target, line, len);
		return;
	}
	direct_put(target, line, len);
}

static const char *log_program = "portcullis";
static _Atomic bool log_stamps;

void
log_set_timestamps(bool on)
{
	atomic_store(&log_stamps, on);
}

/* "2026-12-07T18:40:01.123Z " into buf (at least 26 bytes); its length. */
static int
log_stamp(char *buf, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (gmtime_r(&ts.tv_sec, &tm) == NULL ||
	    (n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm)) == 0)
		return 0;
	return (int)n +
	       snprintf(buf + n, cap - n, ".%03ldZ ", ts.tv_nsec / 1000000);
}

void
log_set_program(const char *name)
{
	log_program = name;
}

static void log_vmsg(enum log_level level, const char *id, const char *fmt,
		     va_list ap) __attribute__((format(printf, 3, 0)));

static void
log_vmsg(enum log_level level, const char *id, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n, m;

	n = atomic_load(&log_stamps) ? log_stamp(line, 40) : 0;
	n += snprintf(line + n, sizeof(line) - (size_t)n,
		      "%s: %s: ", log_program, log_names[level]);
	if (id != NULL && id[0] != '\0')
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      "request %.128s: ", id);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	emit(TARGET_ERROR, line, (size_t)n);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if ((int)level > atomic_load(&log_level_max))
		return;
	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}

void
log_req(enum log_level level, const char *id, const char *fmt, ...)
{
	va_list ap;

	if ((int)level > atomic_load(&log_level_max))
		return;
	va_start(ap, fmt);
	log_vmsg(level, id, fmt, ap);
	va_end(ap);
}

void
log_access(const char *line, size_t len)
{
	char buf[LOG_LINE_MAX];

	if (len > sizeof(buf) - 1)
		len = sizeof(buf) - 1;
	memcpy(buf, line, len);
	buf[len] = '\n';
	emit(TARGET_ACCESS, buf, len + 1);
}

int
log_ring_attach(size_t size)
{
	struct log_ring *r;
	size_t sz = 4096;

	while (sz < size)
		sz <<= 1;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	if ((r->buf = malloc(sz)) == NULL) {
		free(r);
		return -1;
	}
	r->size = sz;
	pthread_mutex_lock(&log_attach_mtx);
	if (atomic_load(&log_nrings) == LOG_MAX_RINGS) {
		pthread_mutex_unlock(&log_attach_mtx);
		free(r->buf);
		free(r);
		return -1;
	}
	log_rings[atomic_load(&log_nrings)] = r;
	atomic_fetch_add(&log_nrings, 1);
	pthread_mutex_unlock(&log_attach_mtx);
	log_mine = r;
	return 0;
}

/* Drains one ring; returns true if it wrote anything. */
static bool
ring_drain(struct log_ring *r)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	char line[LOG_LINE_MAX + 8];
	bool any = false;

	while (tail != head) {
		uint32_t hdr;
		size_t at = (size_t)(tail & (r->size - 1)), len, first;

		first = r->size - at < 4 ? r->size - at : 4;
		memcpy(&hdr, r->buf + at, first);
		memcpy((char *)&hdr + first, r->buf, 4 - first);
		len = hdr & 0xffffff;
		at = (size_t)((tail + 4) & (r->size - 1));
		first = r->size - at < len ? r->size - at : len;
		memcpy(line, r->buf + at, first);
		memcpy(line + first, r->buf, len - first);
		sink_put(sink_of((int)(hdr >> 24)), line, len);
		tail += 4 + ((len + 3) & ~(size_t)3);
		any = true;
	}
	atomic_store_explicit(&r->tail, tail, memory_order_release);
	return any;
}

/* Every ring to the sinks, and what the sinks owe, without waiting. */
static void
drain_all(void)
{
	size_t i, n = atomic_load(&log_nrings);

	pthread_mutex_lock(&log_sink_mtx);
	for (i = 0; i < n; i++)
		ring_drain(log_rings[i]);
	sink_flush(sink_of(TARGET_ACCESS));
	sink_flush(sink_of(TARGET_ERROR));
	pthread_mutex_unlock(&log_sink_mtx);
}

static int
open_append(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
		    0640);
}

int
log_access_open(const char *path, char *why, size_t len)
{
	char *copy = NULL;
	int fd = STDOUT_FILENO, old;

	if (path != NULL) {
		if ((copy = strdup(path)) == NULL) {
			snprintf(why, len, "out of memory");
			return -1;
		}
		if ((fd = open_append(path)) == -1) {
			snprintf(why, len, "cannot open %s: %s", path,
				 strerror(errno));
			free(copy);
			return -1;
		}
	}
	pthread_mutex_lock(&log_path_mtx);
	free(log_access_path);
	log_access_path = copy;
	pthread_mutex_unlock(&log_path_mtx);
	old = atomic_exchange(&log_access_fd, fd);
	if (old != STDOUT_FILENO)
		close(old);
	return 0;
}

void
log_access_reopen(const char *path)
{
	char *copy = path != NULL ? strdup(path) : NULL;

	if (path != NULL && copy == NULL) {
		log_error("access log: out of memory; still writing to the "
			  "old file");
		return;
	}
	pthread_mutex_lock(&log_path_mtx);
	free(log_access_path);
	log_access_path = copy;
	pthread_mutex_unlock(&log_path_mtx);
	atomic_store(&log_reopen_asked, true);
}

/* The writer thread: opens the access log's file again (after rotation),
 * or another one (a reload changed it); the old one stays on failure. */
static void
reopen_access(void)
{
	char path[4096];
	bool to_file;
	int fd = STDOUT_FILENO, old;

	pthread_mutex_lock(&log_path_mtx);
	to_file = log_access_path != NULL;
	if (to_file)
		snprintf(path, sizeof(path), "%s", log_access_path);
	pthread_mutex_unlock(&log_path_mtx);
	if (to_file && (fd = open_append(path)) == -1) {
		log_error("access log: cannot open %s: %s; still writing to "
			  "the old file",
			  path, strerror(errno));
		return;
	}
	old = atomic_exchange(&log_access_fd, fd);
	if (old != STDOUT_FILENO)
		close(old);
	log_info("access log: writing to %s", to_file ? path : "stdout");
}

static void *
log_main(void *arg)
{
	const struct timespec nap = {0, 20 * 1000 * 1000};

	pthread_setname_np(pthread_self(), "pc-log");
	while (atomic_load(&log_running)) {
		drain_all();
		if (atomic_exchange(&log_reopen_asked, false)) {
			drain_all(); /* lines of before go to the old file */
			reopen_access();
		}
		nanosleep(&nap, NULL);
	}
	drain_all();
	return NULL;
}

int
log_start(void)
{
	atomic_store(&log_running, true);
	if (pthread_create(&log_thread, NULL, log_main, NULL) != 0) {
		atomic_store(&log_running, false);
		return -1;
	}
	return 0;
}

void
log_stop(void)
{
	uint64_t deadline;
	int t;

	if (!atomic_exchange(&log_running, false))
		return;
	/* The writer never waits on a sink, so this join is prompt. */
	pthread_join(log_thread, NULL);
	drain_all();
	if (atomic_exchange(&log_reopen_asked, false))
		reopen_access();
	/* What the sinks still owe gets STOP_WAIT_MS in all, then is
	 * dropped and counted: a sink nobody reads cannot hold the exit. */
	deadline = now_ms() + STOP_WAIT_MS;
	pthread_mutex_lock(&log_sink_mtx);
	for (t = TARGET_ACCESS; t <= TARGET_ERROR; t++) {
		struct sink *s = sink_of(t);

		sink_settle(s, deadline);
		if (s->plen > 0) {
			atomic_fetch_add(&log_sink_dropped,
					 lines_in(s->pend, s->plen));
			s->plen = 0;
			s->stalled = true;
		}
	}
	pthread_mutex_unlock(&log_sink_mtx);
}

uint64_t
log_dropped(void)
{
	size_t i, n = atomic_load(&log_nrings);
	uint64_t sum = 0;

	for (i = 0; i < n; i++)
		sum += atomic_load_explicit(&log_rings[i]->dropped,
					    memory_order_relaxed);
	return sum + atomic_load(&log_sink_dropped);
}
