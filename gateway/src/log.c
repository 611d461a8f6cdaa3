/*
 * log.c - single-producer/single-consumer rings, one per serving thread,
 * drained by one writer thread. A record is a 4-byte header (length and
 * target fd) followed by the bytes, padded to 4.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_MAX_RINGS 512
#define LOG_LINE_MAX 8192

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

void
log_set_level(enum log_level level)
{
	atomic_store(&log_level_max, (int)level);
}

static void
log_write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report it */
		}
		p += n;
		len -= (size_t)n;
	}
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
	log_write_all(target_fd(target), line, len);
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
		log_write_all(target_fd((int)(hdr >> 24)), line, len);
		tail += 4 + ((len + 3) & ~(size_t)3);
		any = true;
	}
	atomic_store_explicit(&r->tail, tail, memory_order_release);
	return any;
}

static void
drain_all(void)
{
	size_t i, n = atomic_load(&log_nrings);

	for (i = 0; i < n; i++)
		ring_drain(log_rings[i]);
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
	if (!atomic_exchange(&log_running, false))
		return;
	pthread_join(log_thread, NULL);
	drain_all();
	if (atomic_exchange(&log_reopen_asked, false))
		reopen_access();
}

uint64_t
log_dropped(void)
{
	size_t i, n = atomic_load(&log_nrings);
	uint64_t sum = 0;

	for (i = 0; i < n; i++)
		sum += atomic_load_explicit(&log_rings[i]->dropped,
					    memory_order_relaxed);
	return sum;
}
