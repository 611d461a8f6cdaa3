/*
 * proxy.h - a client connection (session) and the request pipeline: read
 * a head, route it, forward it upstream, stream both bodies with
 * backpressure, answer, log, then the next request on the connection.
 */
#ifndef PORTCULLIS_PROXY_H
#define PORTCULLIS_PROXY_H

#include <event2/util.h>
#include <sys/socket.h>

struct worker;
struct session;

/*
 * An upstream's response head may take up to 64 KiB, however many fields
 * that makes (a byte limit, like the request side's max_header_size, not a
 * field count): the shortest field line, "a:" CRLF, takes 4 bytes, so each
 * worker keeps room for that many parsed fields (512 KiB).
 */
#define PROXY_MAX_RESPONSE_HEAD (64 * 1024)
#define PROXY_MAX_RESPONSE_FIELDS (PROXY_MAX_RESPONSE_HEAD / 4)

/* Takes an accepted socket on listener `lidx`: 0, or -1 (out of memory)
 * after closing it. */
int proxy_accept(struct worker *w, unsigned lidx, evutil_socket_t fd,
		 const struct sockaddr *peer, socklen_t peerlen);

/* Asks every session of the worker to end: idle ones now, the others
 * after their current response. */
void proxy_drain_all(struct worker *w);

/* Answers an over-limit connection with 503 without making a session. */
void proxy_refuse(struct worker *w, evutil_socket_t fd);

#endif
