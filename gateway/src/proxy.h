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
