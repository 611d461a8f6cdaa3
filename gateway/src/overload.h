/*
 * overload.h - what a listener does when it cannot take a connection in:
 * over max_connections, or out of file descriptors (EMFILE, ENFILE).
 *
 * Out of descriptors, accept() fails and the connection stays in the
 * backlog, so a level-triggered listener would spin on it. The listener is
 * paused instead, and a spare descriptor kept for the purpose is closed so
 * that pending connections can be accepted one at a time, answered 503 and
 * closed: clients get an answer rather than a hang. Log lines about it
 * come once per interval with a count, never one per connection.
 */
#ifndef PORTCULLIS_OVERLOAD_H
#define PORTCULLIS_OVERLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The answer to a connection refused for want of room. */
extern const char overload_busy[];
extern const size_t overload_busy_len;

/* A spare descriptor (/dev/null), or -1. */
int overload_spare_open(void);

/* Whether accept() failed for want of descriptors (errno). */
bool overload_out_of_fds(int err);

/*
 * Out of descriptors: accepts up to `max` pending connections on the
 * listening socket `lfd` with the spare (*spare closed first, opened again
 * after each), answers each with overload_busy and closes it. Returns how
 * many were answered; *spare is -1 afterwards only when it could not be
 * opened again.
 */
unsigned overload_shed(int lfd, int *spare, unsigned max);

/* Counts what happened since the last line: log when due says so. */
struct overload_note {
	uint64_t count;	  /* since the last line */
	uint64_t last_ms; /* when it was written; 0: never */
};

/*
 * Adds n to the note; true when a line is due (none in the last
 * `every_ms`), with *count set to what the line reports and the note
 * restarted.
 */
bool overload_note_due(struct overload_note *note, uint64_t n, uint64_t now_ms,
		       uint64_t every_ms, uint64_t *count);

#endif
