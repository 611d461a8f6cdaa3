/*
 * sockcheck.h - refusing to start beside another process that listens on
 * one of our addresses.
 *
 * Each worker binds its own SO_REUSEPORT socket per listener, and the
 * kernel lets any process of the same user do the same: a second gateway
 * started with the same listeners would bind them too and take a share of
 * the connections without a word. So, on the main thread at start-up:
 *
 *  - before anything is bound, every listener's and the admin listener's
 *    address is bound once more on a probe socket *without* SO_REUSEPORT
 *    (SO_REUSEADDR only, never listening): the kernel answers EADDRINUSE
 *    exactly when some socket already listens on an overlapping address
 *    (the same one, a wildcard, IPv6 dual-stack), whoever owns it, and
 *    the gateway refuses to start having bound nothing. Sockets that only
 *    remain from a process that stopped listening (connections still
 *    draining, TIME_WAIT) do not count, as for the real bind;
 *  - after the workers have bound, /proc/net/tcp and tcp6 are read for a
 *    listener on the same address that is not one of ours: one that came
 *    between the probe and the bind (two gateways started at once);
 *  - the process holding a conflicting listener is named from
 *    /proc/PID/fd (best effort: silent where /proc does not let us see).
 *
 * The parser of /proc/net/tcp lines and the overlap rule are pure.
 */
#ifndef PORTCULLIS_SOCKCHECK_H
#define PORTCULLIS_SOCKCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config.h"

#define SOCKCHECK_LISTEN 0x0A	/* TCP_LISTEN, the "st" of a listener */
#define SOCKCHECK_GRACE_MS 1000 /* how long a holder may take to go */

/* One line of /proc/net/tcp or /proc/net/tcp6. */
struct sockcheck_entry {
	int se_family;	     /* AF_INET or AF_INET6 */
	uint8_t se_addr[16]; /* local address, network order; 4 for IPv4 */
	uint16_t se_port;    /* local port */
	unsigned se_state;   /* TCP state; SOCKCHECK_LISTEN for a listener */
	uint32_t se_uid;
	uint64_t se_inode; /* 0 for sockets no process holds (TIME_WAIT) */
};

/* Who holds a listening socket, as far as /proc tells. */
struct sockcheck_holder {
	uint64_t sh_inode;
	uint32_t sh_uid;
	pid_t sh_pid; /* 0 when no process of ours can see it */
	char sh_comm[17];
};

/*
 * Parses one line of /proc/net/tcp or tcp6, s[0..len) without its newline:
 * "sl: local remote st queues timers retransmits uid timeout inode ...",
 * addresses as the kernel prints them (each 32-bit word in hex in host
 * order, then ':' and the port in hex). 0 with *e, or -1 for the header
 * line and anything malformed. Pure.
 */
int sockcheck_parse_line(const char *s, size_t len, struct sockcheck_entry *e);

/*
 * Whether a socket bound at e's address and port overlaps a listener at
 * sa: the same port and the same address, or either of them the wildcard
 * of the family. With dual_stack, also across families: an IPv6 wildcard
 * or an IPv4-mapped address against IPv4 (what a socket without
 * IPV6_V6ONLY takes). Pure.
 */
bool sockcheck_overlaps(const struct sockcheck_entry *e,
			const struct sockaddr *sa, bool dual_stack);

/*
 * Binds a probe socket to sa the way a listener would but without
 * SO_REUSEPORT, and closes it: 0 when nobody listens there, or -1 with
 * errno (EADDRINUSE: a socket listens on an overlapping address).
 */
int sockcheck_probe(const struct sockaddr *sa, socklen_t salen);

/*
 * Finds a listening socket overlapping sa (sockcheck_overlaps) whose inode
 * is not in own[0..nown), and who holds it. 1 with *h, 0 if there is none,
 * -1 if /proc/net/tcp cannot be read.
 */
int sockcheck_find(const struct sockaddr *sa, const uint64_t *own, size_t nown,
		   bool dual_stack, struct sockcheck_holder *h);

/* The socket inode of fd; 0 or -1. */
int sockcheck_inode(int fd, uint64_t *inode);

/*
 * Main thread, before anything is bound: probes every listener and the
 * admin listener of cfg. A holder gets up to grace_ms to close (a gateway
 * draining after SIGTERM does so at once); then -1 after logging each
 * address in use, with its JSON path and its holder, e.g.
 * `listeners[0].listen: cannot listen on 127.0.0.1:8080: Address already
 * in use: pid 4242 (portcullis) listens there; not starting beside it`.
 * 0 when every address is free.
 */
int sockcheck_free(const struct config *cfg, unsigned grace_ms);

/*
 * Main thread, after the workers have bound and before they run: -1 after
 * logging it when another process listens on one of cfg's listener
 * addresses as well (same family; own[0..nown): the inodes of our
 * sockets), else 0 (also when /proc/net cannot be read). Reads each
 * /proc/net file once for all listeners.
 */
int sockcheck_alone(const struct config *cfg, const uint64_t *own, size_t nown);

#endif
