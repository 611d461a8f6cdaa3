/*
 * conn.c - edge-triggered buffered sockets.
 *
 * State kept across edges: c_readable says the socket may still hold bytes
 * (we stopped reading before EAGAIN: disabled, or the input was full);
 * c_writable says the last write did not hit EAGAIN. An edge only sets the
 * flag; work is done while the flag holds. A short read ends reading until
 * the next edge, except after EPOLLRDHUP (EV_CLOSED): data and FIN can
 * arrive in one edge, and no edge would follow to report the FIN.
 */
#include "conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Reads reserve this much: libevent rounds a chain up to a power of two
 * with its header inside, so 16 KiB less a little is one 16 KiB chain,
 * where 64 KiB would have been a 128 KiB one (half of it idle in a
 * stalled download). */
#define CONN_READ_SIZE (16 * 1024 - 256)
#define CONN_MAX_ROUNDS 16    /* reads per handler call before yielding */
#define CONN_TLS_RECORD 16384 /* a full TLS record of plaintext */

struct conn {
	int c_fd;
	struct event *c_ev;
	struct event *c_timer;
	struct evbuffer *c_in;
	struct evbuffer *c_out;
	conn_read_cb c_rd;
	conn_drain_cb c_dr;
	conn_event_cb c_evcb;
	void *c_arg;
	size_t c_read_high;
	size_t c_drain_low;
	uint64_t c_timeout_ms;
	uint64_t c_progress;  /* conn_now_ms() of the last progress */
	int c_err;	      /* errno of a failure not yet reported */
	int c_depth;	      /* nesting of our handler */
	bool c_reading;	      /* reading enabled by the owner */
	bool c_readable;      /* the socket may hold unread bytes */
	bool c_writable;      /* the last write did not hit EAGAIN */
	bool c_connecting;    /* connect() in progress */
	bool c_connected_due; /* CONN_CONNECTED not yet reported */
	bool c_rdhup;	      /* the peer shut its side (EPOLLRDHUP) */
	bool c_eof;	      /* read returned 0 */
	bool c_eof_due;	      /* CONN_EOF not yet reported */
	bool c_drain_wanted;
	bool c_dead; /* freed inside a callback: free on the way out */
	SSL *c_ssl;  /* NULL: plain TCP */
	bool c_handshaking;
	bool c_handshake_due; /* CONN_HANDSHAKE not yet reported */
	char c_tls_err[128];  /* why the handshake failed; "" if it did not */
};

static void conn_handler(evutil_socket_t fd, short what, void *arg);
static bool conn_want_read(struct conn *c);
static void conn_timer(evutil_socket_t fd, short what, void *arg);

static struct conn *
conn_make(struct event_base *base, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->c_fd = fd;
	c->c_in = evbuffer_new();
	c->c_out = evbuffer_new();
	c->c_ev = event_new(base, fd,
			    EV_READ | EV_WRITE | EV_CLOSED | EV_PERSIST | EV_ET,
			    conn_handler, c);
	c->c_timer = evtimer_new(base, conn_timer, c);
	if (c->c_in == NULL || c->c_out == NULL || c->c_ev == NULL ||
	    c->c_timer == NULL || event_add(c->c_ev, NULL) == -1)
		goto fail;
	return c;
fail:
	if (c->c_in != NULL)
		evbuffer_free(c->c_in);
	if (c->c_out != NULL)
		evbuffer_free(c->c_out);
	if (c->c_ev != NULL)
		event_free(c->c_ev);
	if (c->c_timer != NULL)
		event_free(c->c_timer);
	free(c);
	return NULL;
}

struct conn *
conn_accepted(struct event_base *base, int fd)
{
	struct conn *c;

	if (evutil_make_socket_nonblocking(fd) == -1)
		return NULL;
	if ((c = conn_make(base, fd)) == NULL)
		return NULL;
	c->c_writable = true;
	return c;
}

struct conn *
conn_accepted_tls(struct event_base *base, int fd, SSL *ssl)
{
	struct conn *c;

	if ((c = conn_accepted(base, fd)) == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		conn_free(c); /* closes fd: the caller must not */
		return NULL;
	}
	SSL_set_accept_state(ssl);
	c->c_ssl = ssl;
	c->c_handshaking = true;
	return c;
}

bool
conn_tls_handshaking(struct conn *c)
{
	return c->c_handshaking;
}

const char *
conn_tls_error(struct conn *c)
{
	return c->c_tls_err[0] != '\0' ? c->c_tls_err : NULL;
}

const char *
conn_tls_version(struct conn *c)
{
	return c->c_ssl != NULL ? SSL_get_version(c->c_ssl) : NULL;
}

void
conn_shutdown_write(struct conn *c)
{
	if (c->c_ssl != NULL && !c->c_handshaking)
		SSL_shutdown(c->c_ssl); /* sends close_notify; no waiting */
	shutdown(c->c_fd, SHUT_WR);
}

/* Keeps OpenSSL's reason for a failure, and clears its error queue (it is
 * per thread: a leftover would be blamed on the next connection). */
static void
tls_fail(struct conn *c, int ssl_err)
{
	unsigned long e = ERR_peek_last_error();
	const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (why == NULL)
		why = ssl_err == SSL_ERROR_SYSCALL ? "connection closed"
						   : "protocol error";
	snprintf(c->c_tls_err, sizeof(c->c_tls_err), "%s", why);
	ERR_clear_error();
	c->c_err = EPROTO;
}

/* One handshake step; the edges drive it on. */
static void
tls_handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->c_ssl), e;

	if (r == 1) {
		c->c_handshaking = false;
		c->c_handshake_due = true;
		return;
	}
	e = SSL_get_error(c->c_ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		c->c_readable = false;
	else if (e == SSL_ERROR_WANT_WRITE)
		c->c_writable = false;
	else
		tls_fail(c, e);
}

struct conn *
conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t len)
{
	struct conn *c;
	int fd, one = 1, saved;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd == -1)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, sa, len) == -1 && errno != EINPROGRESS) {
		saved = errno;
		close(fd);
		errno = saved;
		return NULL;
	}
	if ((c = conn_make(base, fd)) == NULL) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	/* Even an immediate success is reported from the handler. */
	c->c_connecting = true;
	return c;
}

static void
conn_destroy(struct conn *c)
{
	if (c->c_ssl != NULL) {
		if (!c->c_handshaking && c->c_err == 0)
			SSL_shutdown(c->c_ssl);
		SSL_free(c->c_ssl);
		ERR_clear_error();
	}
	event_free(c->c_ev);
	event_free(c->c_timer);
	evbuffer_free(c->c_in);
	evbuffer_free(c->c_out);
	close(c->c_fd);
	free(c);
}

void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->c_depth > 0) {
		c->c_dead = true;
		c->c_rd = NULL;
		c->c_dr = NULL;
		c->c_evcb = NULL;
		return;
	}
	conn_destroy(c);
}

void
conn_setcb(struct conn *c, conn_read_cb rd, conn_drain_cb dr, conn_event_cb ev,
	   void *arg)
{
	c->c_rd = rd;
	c->c_dr = dr;
	c->c_evcb = ev;
	c->c_arg = arg;
}

struct evbuffer *
conn_in(struct conn *c)
{
	return c->c_in;
}

struct evbuffer *
conn_out(struct conn *c)
{
	return c->c_out;
}

/* Runs the handler on the next loop turn (callbacks never run nested);
 * EV_TIMEOUT marks a wake-up that is not a socket edge. */
static void
conn_wake(struct conn *c)
{
	event_active(c->c_ev, EV_TIMEOUT, 0);
}

static bool
conn_input_full(struct conn *c)
{
	return c->c_read_high > 0 &&
	       evbuffer_get_length(c->c_in) >= c->c_read_high;
}

static bool
conn_want_read(struct conn *c)
{
	return c->c_reading && c->c_readable && !c->c_eof && c->c_err == 0 &&
	       !c->c_connecting && !c->c_handshaking && !conn_input_full(c);
}

static void
timer_arm(struct conn *c, uint64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(c->c_timer, &tv);
}

/*
 * Progress restarts the idle clock. The timer itself is not moved on every
 * read (a heap operation each time); it fires at the old deadline, sees the
 * recorded progress and re-arms for what is left.
 */
static void
timer_restart(struct conn *c)
{
	if (c->c_timeout_ms == 0)
		return;
	c->c_progress = conn_now_ms();
	if (!evtimer_pending(c->c_timer, NULL))
		timer_arm(c, c->c_timeout_ms);
}

uint64_t
conn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
idle_ms(struct conn *c)
{
	uint64_t now = conn_now_ms();

	return now > c->c_progress ? now - c->c_progress : 0;
}

void
conn_read(struct conn *c, bool on)
{
	c->c_reading = on;
	if (on && conn_want_read(c))
		conn_wake(c);
}

void
conn_read_limit(struct conn *c, size_t high)
{
	c->c_read_high = high;
	if (conn_want_read(c))
		conn_wake(c);
}

void
conn_timeout(struct conn *c, uint64_t ms)
{
	c->c_timeout_ms = ms;
	evtimer_del(c->c_timer);
	if (ms > 0) {
		c->c_progress = conn_now_ms();
		timer_arm(c, ms);
	}
}

/* Reads until EAGAIN, EOF, an error or a full input; returns bytes read. */
static size_t
conn_fill(struct conn *c)
{
	struct evbuffer_iovec v[2];
	size_t total = 0;
	int rounds = 0;

	while (conn_want_read(c) && rounds++ < CONN_MAX_ROUNDS) {
		int n = evbuffer_reserve_space(c->c_in, CONN_READ_SIZE, v, 2);
		size_t want = 0, got, left;
		struct iovec iov[2];
		ssize_t r;
		int i;

		if (n < 1) {
			c->c_err = ENOMEM;
			break;
		}
		if (c->c_ssl != NULL) {
			size_t got_tls = 0;
			int rc = SSL_read_ex(c->c_ssl, v[0].iov_base,
					     v[0].iov_len, &got_tls);

			if (rc != 1) {
				int e = SSL_get_error(c->c_ssl, rc);

				evbuffer_commit_space(c->c_in, v, 0);
				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE) {
					c->c_readable = false;
				} else if (e == SSL_ERROR_ZERO_RETURN ||
					   (e == SSL_ERROR_SYSCALL &&
					    ERR_peek_error() == 0)) {
					/* close_notify, or a plain FIN */
					ERR_clear_error();
					c->c_eof = true;
					c->c_eof_due = true;
				} else {
					tls_fail(c, e);
				}
				break;
			}
			v[0].iov_len = got_tls;
			evbuffer_commit_space(c->c_in, v, 1);
			total += got_tls;
			/* OpenSSL may hold decrypted bytes the socket no
			 * longer shows: read until it says WANT_READ. */
			continue;
		}
		for (i = 0; i < n; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
			want += v[i].iov_len;
		}
		r = readv(c->c_fd, iov, n);
		if (r == -1) {
			evbuffer_commit_space(c->c_in, v, 0);
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				c->c_readable = false;
			else
				c->c_err = errno;
			break;
		}
		if (r == 0) {
			evbuffer_commit_space(c->c_in, v, 0);
			c->c_eof = true;
			c->c_eof_due = true;
			break;
		}
		got = (size_t)r;
		for (i = 0, left = got; i < n; i++) {
			size_t take = left < v[i].iov_len ? left : v[i].iov_len;

			v[i].iov_len = take;
			left -= take;
		}
		evbuffer_commit_space(c->c_in, v, n);
		total += got;
		/* A short read emptied the socket and the next edge says more;
		 * not so after the peer's FIN, which came with this edge. */
		if (got < want && !c->c_rdhup)
			c->c_readable = false;
	}
	return total;
}

/* Writes until the output is empty or EAGAIN; returns bytes written. */
static size_t
conn_drain_out(struct conn *c)
{
	size_t total = 0;

	while (c->c_writable && !c->c_connecting && !c->c_handshaking &&
	       c->c_err == 0 && evbuffer_get_length(c->c_out) > 0) {
		int r;

		if (c->c_ssl != NULL) {
			size_t len = evbuffer_get_length(c->c_out), done = 0;
			unsigned char *p;
			int rc;

			/* Whole records: a small first chain would make a
			 * small record; join up to one record's worth. */
			if (len > CONN_TLS_RECORD)
				len = CONN_TLS_RECORD;
			p = evbuffer_pullup(c->c_out, (ev_ssize_t)len);
			rc = SSL_write_ex(c->c_ssl, p, len, &done);
			if (rc != 1) {
				int e = SSL_get_error(c->c_ssl, rc);

				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ)
					c->c_writable = false;
				else
					tls_fail(c, e);
				break;
			}
			evbuffer_drain(c->c_out, done);
			total += done;
			continue;
		}
		r = evbuffer_write(c->c_out, c->c_fd);

		if (r == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				c->c_writable = false;
			else
				c->c_err = errno;
			break;
		}
		total += (size_t)r;
	}
	return total;
}

static bool
conn_drain_due(struct conn *c)
{
	return c->c_drain_wanted &&
	       evbuffer_get_length(c->c_out) <= c->c_drain_low;
}

void
conn_flush(struct conn *c)
{
	if (conn_drain_out(c) > 0)
		timer_restart(c);
	if (c->c_err != 0 || conn_drain_due(c))
		conn_wake(c);
}

void
conn_notify_drain(struct conn *c, size_t low)
{
	c->c_drain_wanted = true;
	c->c_drain_low = low;
	if (conn_drain_due(c))
		conn_wake(c);
}

/* Delivers what is due, in order; stops when the conn is freed. */
static void
conn_dispatch(struct conn *c, bool got_input)
{
	if (c->c_handshake_due) {
		c->c_handshake_due = false;
		if (c->c_evcb != NULL)
			c->c_evcb(c, CONN_HANDSHAKE, c->c_arg);
		if (c->c_dead)
			return;
	}
	if (c->c_connected_due) {
		c->c_connected_due = false;
		if (c->c_evcb != NULL)
			c->c_evcb(c, CONN_CONNECTED, c->c_arg);
		if (c->c_dead)
			return;
	}
	if (got_input && c->c_rd != NULL) {
		c->c_rd(c, c->c_arg);
		if (c->c_dead)
			return;
	}
	if (conn_drain_due(c)) {
		c->c_drain_wanted = false;
		if (c->c_dr != NULL)
			c->c_dr(c, c->c_arg);
		if (c->c_dead)
			return;
	}
	if (c->c_err != 0) {
		evtimer_del(c->c_timer);
		if (c->c_evcb != NULL)
			c->c_evcb(c, CONN_ERROR, c->c_arg);
		return;
	}
	if (c->c_eof_due) {
		c->c_eof_due = false;
		if (c->c_evcb != NULL)
			c->c_evcb(c, CONN_EOF, c->c_arg);
	}
}

static void
conn_handler(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	bool input = false;
	int rounds;

	c->c_depth++;
	if (what & EV_WRITE)
		c->c_writable = true;
	if (what & (EV_READ | EV_CLOSED))
		c->c_readable = true;
	if (what & EV_CLOSED)
		c->c_rdhup = true;
	if (c->c_handshaking &&
	    (what & (EV_READ | EV_WRITE | EV_CLOSED | EV_TIMEOUT)))
		tls_handshake(c);
	if (c->c_connecting && (what & EV_WRITE)) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->c_fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err == EINPROGRESS || err == EALREADY)
			err = 0; /* spurious: wait for the real edge */
		else if (err != 0)
			c->c_err = err;
		else {
			c->c_connecting = false;
			c->c_connected_due = true;
		}
	}
	/* Each round reads what the socket has and lets the owner take it;
	 * reading on after the owner drained the input needs no new edge. */
	for (rounds = 0; rounds < CONN_MAX_ROUNDS; rounds++) {
		size_t wrote = conn_drain_out(c), got = conn_fill(c);

		if (wrote > 0 || got > 0 || c->c_connected_due ||
		    c->c_handshake_due)
			timer_restart(c);
		input = got > 0;
		conn_dispatch(c, input);
		if (c->c_dead || c->c_err != 0 || !conn_want_read(c))
			break;
	}
	if (!c->c_dead && rounds == CONN_MAX_ROUNDS && conn_want_read(c))
		conn_wake(c); /* let other connections have a turn */
	c->c_depth--;
	if (c->c_dead && c->c_depth == 0)
		conn_destroy(c);
}

static void
conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t idle = idle_ms(c);

	if (c->c_timeout_ms == 0)
		return;
	/* Progress since the timer was set: wait for the rest. */
	if (idle < c->c_timeout_ms) {
		timer_arm(c, c->c_timeout_ms - idle);
		return;
	}
	/* Time spent with reading off and nothing to send is not idleness. */
	if (!c->c_reading && !c->c_connecting &&
	    evbuffer_get_length(c->c_out) == 0) {
		timer_restart(c);
		return;
	}
	c->c_depth++;
	if (c->c_evcb != NULL)
		c->c_evcb(c, CONN_TIMEOUT, c->c_arg);
	c->c_depth--;
	if (c->c_dead && c->c_depth == 0)
		conn_destroy(c);
}
