/*
 * log.h - error log (stderr) and the output path of the access log
 * (stdout or a file), without a blocking write on any event loop.
 *
 * Each thread that serves traffic owns a ring (log_ring_attach); records go
 * into it and one writer thread drains every ring to the file descriptors.
 * A full ring drops the record and counts it: logging never stalls a
 * request. Threads without a ring (main, before start) write directly.
 */
#ifndef PORTCULLIS_LOG_H
#define PORTCULLIS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the most verbose level written; default LOG_INFO. */
void log_set_level(enum log_level level);

/* The program name that starts every error log line ("portcullis" unless
 * set; the cost exporter sets its own). Call before any thread logs. */
void log_set_program(const char *name);

/* Daemons: every error log line from now on starts with its time, RFC 3339
 * in UTC with milliseconds ("2026-12-07T18:40:01.123Z "). Off by default,
 * so that command-line output (-t, passwd) reads as plain messages. */
void log_set_timestamps(bool on);

/* Error log line on stderr: "[TIME ]PROGRAM: LEVEL: message". */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A line about one request: "request ID: " follows the level, so that the
 * access log's request_id finds it (id NULL or empty: none). */
void log_req(enum log_level level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)

/* Writes one line (no newline in `line`) to the access log (stdout, or
 * the file of log_access_open), through the ring. */
void log_access(const char *line, size_t len);

/*
 * Before log_start(): sends the access log to the file at `path`, opened
 * for appending (made 0640 when missing), or to stdout for NULL. 0, or -1
 * with the reason in why[len].
 */
int log_access_open(const char *path, char *why, size_t len);

/*
 * While running (SIGUSR1, or a reload naming another file): the writer
 * thread opens `path` (NULL: stdout) soon after, writing every line queued
 * before to the old one; when it cannot, it logs why and keeps the old.
 */
void log_access_reopen(const char *path);

/*
 * Gives the calling thread a ring of `size` bytes; from then on its log
 * lines are queued, not written. Returns 0 or -1 (no memory).
 */
int log_ring_attach(size_t size);

/* Starts the writer thread (0 or -1); log_stop() drains and joins it. */
int log_start(void);
void log_stop(void);

/* Records dropped because a ring was full, all threads. */
uint64_t log_dropped(void);

#endif
