/*
 * conn.h - a non-blocking stream socket with an input and an output
 * evbuffer, driven by one edge-triggered event registered once.
 *
 * Why not bufferevent_socket: in libevent 2.1 it reads at most 4096 bytes
 * per call (EVBUFFER_MAX_READ) after a FIONREAD ioctl, and it adds and
 * deletes its write event around every write: 258 reads and ~260 epoll_ctl
 * calls per 1 MiB response, measured. A conn reads up to 64 KiB per call
 * into reserved buffer space, writes as soon as it is asked to, and touches
 * epoll only when it is made and freed.
 *
 * Callbacks run only from the conn's own event handler, never from inside
 * a conn_* call, so the caller's code is never re-entered. conn_free() is
 * safe inside a callback (the free is deferred until the handler returns).
 */
#ifndef PORTCULLIS_CONN_H
#define PORTCULLIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct conn;
struct event_base;
struct evbuffer;
struct ssl_st;

/* Events reported to the event callback. */
#define CONN_EOF                                                               \
	0x01		    /* the peer closed its side; reported after the    \
			       read callback saw the last bytes */
#define CONN_ERROR 0x02	    /* read/write/connect or TLS handshake failed */
#define CONN_TIMEOUT 0x04   /* no progress for the timeout (see conn_timeout) */
#define CONN_CONNECTED 0x08 /* an outgoing connect finished */
#define CONN_HANDSHAKE 0x10 /* the TLS handshake finished (server side) */

/* New input arrived (reading is enabled). */
typedef void (*conn_read_cb)(struct conn *c, void *arg);
/* The output drained to the mark set by conn_notify_drain(). */
typedef void (*conn_drain_cb)(struct conn *c, void *arg);
/* One of the CONN_* events above. */
typedef void (*conn_event_cb)(struct conn *c, int what, void *arg);

/* Wraps an accepted socket (made non-blocking here). NULL: out of memory;
 * the fd is then left open for the caller. */
struct conn *conn_accepted(struct event_base *base, int fd);

/*
 * Wraps an accepted socket that speaks TLS; takes ownership of `ssl` (a
 * server SSL not yet bound to a socket). The handshake runs first and is
 * reported with CONN_HANDSHAKE, or with CONN_ERROR and conn_tls_error()
 * saying why. NULL: out of memory (fd left open, ssl freed).
 */
struct conn *conn_accepted_tls(struct event_base *base, int fd,
			       struct ssl_st *ssl);

/* TLS: whether the handshake is still going on (it stays true when the
 * handshake failed), why TLS failed during or after the handshake (NULL if
 * it did not), and the protocol ("TLSv1.3"; NULL without TLS). */
bool conn_tls_handshaking(struct conn *c);
const char *conn_tls_error(struct conn *c);
const char *conn_tls_version(struct conn *c);

/* Ends our side of the stream: close_notify first on TLS, then a TCP FIN.
 * Reading goes on (for a lingering close). */
void conn_shutdown_write(struct conn *c);

/*
 * Starts a connection to sa. Returns a conn that reports CONN_CONNECTED or
 * CONN_ERROR later, or NULL with errno set (e.g. ECONNREFUSED at once).
 * Output written before the connect finishes is sent after it.
 */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa,
			  socklen_t len);

/* Closes the socket and frees the conn (later, if inside its callback). */
void conn_free(struct conn *c);

/* Sets the callbacks and their argument; NULL callbacks are skipped. */
void conn_setcb(struct conn *c, conn_read_cb rd, conn_drain_cb dr,
		conn_event_cb ev, void *arg);

struct evbuffer *conn_in(struct conn *c);
struct evbuffer *conn_out(struct conn *c);

/* Enables or disables reading. Enabling (also when already on) picks up
 * bytes that arrived while reading was off or the input was full. */
void conn_read(struct conn *c, bool on);

/* Reading pauses while the input holds `high` bytes or more (0: no limit);
 * after taking input, the owner resumes it with conn_read(c, true). */
void conn_read_limit(struct conn *c, size_t high);

/* Writes as much of the output as the socket takes now; the rest goes as
 * the socket drains. Errors are reported later through the event
 * callback. */
void conn_flush(struct conn *c);

/* Asks for one drain callback when the output holds `low` bytes or fewer
 * (checked after every write, and right away). */
void conn_notify_drain(struct conn *c, size_t low);

/*
 * CONN_TIMEOUT after `ms` without progress (a read while reading is on, a
 * write while output is pending, a finished connect); 0 turns it off. The
 * clock restarts on progress and whenever this is called.
 */
void conn_timeout(struct conn *c, uint64_t ms);

/* Milliseconds of a coarse monotonic clock (vDSO, no lock): cheap enough
 * to read on every request for idle bookkeeping. */
uint64_t conn_now_ms(void);

#endif
