/*
 * overload.c - refusing connections without spinning or staying silent.
 */
#include "overload.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

const char overload_busy[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; "
    "charset=utf-8\r\nContent-Length: 35\r\nConnection: close\r\n"
    "\r\n503 Service Unavailable (too busy)\n";
const size_t overload_busy_len = sizeof(overload_busy) - 1;

int
overload_spare_open(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

bool
overload_out_of_fds(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS ||
	       err == ENOMEM;
}

unsigned
overload_shed(int lfd, int *spare, unsigned max)
{
	char sink[512];
	unsigned n = 0;

	while (n < max && *spare != -1) {
		struct sockaddr_storage peer;
		socklen_t peerlen = sizeof(peer);
		int fd;

		close(*spare);
		fd = accept4(lfd, (struct sockaddr *)&peer, &peerlen,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			/* A fresh socket's buffer takes the answer whole;
			 * what the client sent first is read so that the
			 * close sends a FIN, not a reset, when it can. */
			while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
				;
			(void)send(fd, overload_busy, overload_busy_len,
				   MSG_DONTWAIT | MSG_NOSIGNAL);
			shutdown(fd, SHUT_WR);
			close(fd);
			n++;
		}
		*spare = overload_spare_open();
		if (fd == -1)
			break; /* none pending, or no descriptor even now */
	}
	return n;
}

bool
overload_note_due(struct overload_note *note, uint64_t n, uint64_t now_ms,
		  uint64_t every_ms, uint64_t *count)
{
	note->count += n;
	if (note->last_ms != 0 && now_ms - note->last_ms < every_ms)
		return false;
	*count = note->count;
	note->count = 0;
	note->last_ms = now_ms;
	return true;
}
