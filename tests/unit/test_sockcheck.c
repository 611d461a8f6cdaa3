/*
 * test_sockcheck.c - sockcheck.c through sockcheck.h: /proc/net/tcp lines
 * parsed (made here in the kernel's format, and read live), the overlap
 * rule across wildcards and families, and on loopback sockets of this
 * process: the probe refusing an address a listener holds (as another
 * gateway's SO_REUSEPORT socket would) but not one whose listener is gone
 * while its connections drain, the holder named as this very process, and
 * sockcheck_free()/sockcheck_alone() over a parsed config.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "sockcheck.h"

/* The kernel's "%08X" of each 32-bit word of a's bytes, in host order. */
static void
words(char *out, const void *a, size_t n)
{
	uint32_t w;
	size_t i;

	for (i = 0; i < n / 4; i++) {
		memcpy(&w, (const uint8_t *)a + 4 * i, sizeof(w));
		(void)snprintf(out + 8 * i, 9, "%08X", w);
	}
}

/* A /proc/net/tcp line for a socket at addr:port in state st. */
static void
line_for(char *out, size_t cap, int family, const char *addr, unsigned port,
	 unsigned st, unsigned uid, unsigned long long inode)
{
	uint8_t a[16], zero[16] = {0};
	char local[33], remote[33];
	size_t n = family == AF_INET ? 4 : 16;

	assert_int_equal(inet_pton(family, addr, a), 1);
	words(local, a, n);
	words(remote, zero, n);
	snprintf(out, cap,
		 "  12: %s:%04X %s:0000 %02X 00000000:00000000 00:00000000 "
		 "00000000 %5u        0 %llu 1 0000000000000000 100 0 0 10 0",
		 local, port, remote, st, uid, inode);
}

static int
parse(const char *s, struct sockcheck_entry *e)
{
	memset(e, 0x5a, sizeof(*e));
	return sockcheck_parse_line(s, strlen(s), e);
}

static void
test_parse_lines(void **state)
{
	struct sockcheck_entry e;
	uint8_t want[16];
	char line[256];

	line_for(line, sizeof(line), AF_INET, "127.0.0.1", 8080, 0x0A, 1000,
		 123456789);
	assert_int_equal(parse(line, &e), 0);
	assert_int_equal(e.se_family, AF_INET);
	inet_pton(AF_INET, "127.0.0.1", want);
	assert_memory_equal(e.se_addr, want, 4);
	assert_int_equal(e.se_port, 8080);
	assert_int_equal(e.se_state, SOCKCHECK_LISTEN);
	assert_int_equal(e.se_uid, 1000);
	assert_int_equal(e.se_inode, 123456789);

	line_for(line, sizeof(line), AF_INET6, "2001:db8::7", 443, 0x01, 0,
		 18446744073709551615ull);
	assert_int_equal(parse(line, &e), 0);
	assert_int_equal(e.se_family, AF_INET6);
	inet_pton(AF_INET6, "2001:db8::7", want);
	assert_memory_equal(e.se_addr, want, 16);
	assert_int_equal(e.se_port, 443);
	assert_int_equal(e.se_state, 1);
	assert_true(e.se_inode == UINT64_MAX);

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* As a little-endian kernel prints them (lowercase hex too). */
	assert_int_equal(
	    parse("   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 "
		  "00:00000000 00000000     0        0 40123 1 "
		  "ffff8a8b5c2e0000 100 0 0 10 0",
		  &e),
	    0);
	inet_pton(AF_INET, "127.0.0.1", want);
	assert_memory_equal(e.se_addr, want, 4);
	assert_int_equal(e.se_port, 8080);
	assert_int_equal(e.se_inode, 40123);
	assert_int_equal(
	    parse("   3: 00000000000000000000000001000000:0050 "
		  "00000000000000000000000000000000:0000 0a "
		  "00000000:00000000 00:00000000 00000000  1000 0 777 1",
		  &e),
	    0);
	inet_pton(AF_INET6, "::1", want);
	assert_memory_equal(e.se_addr, want, 16);
	assert_int_equal(e.se_port, 80);
	assert_int_equal(e.se_state, SOCKCHECK_LISTEN);
	assert_int_equal(e.se_uid, 1000);
#endif
	/* only the fields up to the inode are needed */
	assert_int_equal(
	    parse("0: 0100007F:1F90 00000000:0000 0A x y z 0 0 5", &e), 0);
	assert_int_equal(e.se_inode, 5);
}

static void
test_parse_refusals(void **state)
{
	static const char header[] = "  sl  local_address rem_address   st "
				     "tx_queue rx_queue tr tm->when retrnsmt "
				     "  uid  timeout inode";
	/* a remote of the other family */
	static const char other_family_remote[] =
	    "0: 0100007F:1F90 00000000000000000000000000000000:0000 0A x y z 0 "
	    "0 5";
	/* an IPv6 remote one digit short */
	static const char short_v6_remote[] =
	    "0: 00000000000000000000000001000000:0050 "
	    "0000000000000000000000000000000:0000 0A x y z 0 0 5";
	static const char *const bad[] = {
	    "",
	    "   ",
	    header,
	    "0 0100007F:1F90 00000000:0000 0A x y z 0 0 5",  /* "0" */
	    ":  0100007F:1F90 00000000:0000 0A x y z 0 0 5", /* ":" */
	    "0: 0100007F1F90 00000000:0000 0A x y z 0 0 5",
	    "0: 0100007F:1F9 00000000:0000 0A x y z 0 0 5",
	    "0: 0100007G:1F90 00000000:0000 0A x y z 0 0 5",
	    "0: 0100007F:1F90 00000000:000 0A x y z 0 0 5",
	    other_family_remote,
	    "0: 0100007F:1F90 00000000:0000 A x y z 0 0 5",
	    "0: 0100007F:1F90 00000000:0000 0AA x y z 0 0 5",
	    "0: 0100007F:1F90 00000000:0000 0A x y z 0 0",    /* no inode */
	    "0: 0100007F:1F90 00000000:0000 0A x y z -1 0 5", /* uid */
	    "0: 0100007F:1F90 00000000:0000 0A x y z 4294967296 0 5",
	    "0: 0100007F:1F90 00000000:0000 0A x y z 0 0 5x",
	    "0: 0100007F:1F90 00000000:0000 0A x y z 0 0 18446744073709551616",
	    short_v6_remote,
	};
	struct sockcheck_entry e;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &e) != -1)
			print_message("accepted: %s\n", bad[i]);
		assert_int_equal(parse(bad[i], &e), -1);
	}
	/* the length is the caller's: the line's bytes beyond it are not
	 * read */
	assert_int_equal(
	    sockcheck_parse_line("0: 0100007F:1F90 00000000:0000 0A x y z 0 0 "
				 "5",
				 40, &e),
	    -1);
}

static struct sockaddr_storage ss;

static const struct sockaddr *
sa(int family, const char *addr, unsigned port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, addr, &sin->sin_addr), 1);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, addr, &sin6->sin6_addr),
				 1);
	}
	return (const struct sockaddr *)&ss;
}

static struct sockcheck_entry
entry(int family, const char *addr, unsigned port)
{
	struct sockcheck_entry e;
	char line[256];

	line_for(line, sizeof(line), family, addr, port, 0x0A, 0, 1);
	assert_int_equal(parse(line, &e), 0);
	return e;
}

static void
test_overlaps(void **state)
{
	struct sockcheck_entry lo = entry(AF_INET, "127.0.0.1", 8080);
	struct sockcheck_entry any4 = entry(AF_INET, "0.0.0.0", 8080);
	struct sockcheck_entry lo6 = entry(AF_INET6, "::1", 8080);
	struct sockcheck_entry any6 = entry(AF_INET6, "::", 8080);
	struct sockcheck_entry mapped =
	    entry(AF_INET6, "::ffff:127.0.0.1", 8080);

	/* same family: the same address, or a wildcard on either side */
	assert_true(
	    sockcheck_overlaps(&lo, sa(AF_INET, "127.0.0.1", 8080), false));
	assert_false(
	    sockcheck_overlaps(&lo, sa(AF_INET, "127.0.0.1", 8081), false));
	assert_false(
	    sockcheck_overlaps(&lo, sa(AF_INET, "127.0.0.2", 8080), false));
	assert_true(
	    sockcheck_overlaps(&lo, sa(AF_INET, "0.0.0.0", 8080), false));
	assert_true(
	    sockcheck_overlaps(&any4, sa(AF_INET, "127.0.0.2", 8080), false));
	assert_true(sockcheck_overlaps(&lo6, sa(AF_INET6, "::1", 8080), false));
	assert_true(sockcheck_overlaps(&lo6, sa(AF_INET6, "::", 8080), false));
	assert_false(
	    sockcheck_overlaps(&lo6, sa(AF_INET6, "::2", 8080), false));
	assert_true(
	    sockcheck_overlaps(&any6, sa(AF_INET6, "::1", 8080), false));

	/* across families only with dual_stack */
	assert_false(
	    sockcheck_overlaps(&any6, sa(AF_INET, "127.0.0.1", 8080), false));
	assert_true(
	    sockcheck_overlaps(&any6, sa(AF_INET, "127.0.0.1", 8080), true));
	assert_true(sockcheck_overlaps(&any4, sa(AF_INET6, "::", 8080), true));
	assert_false(
	    sockcheck_overlaps(&any4, sa(AF_INET6, "::1", 8080), true));
	assert_false(
	    sockcheck_overlaps(&lo6, sa(AF_INET, "0.0.0.0", 8080), true));
	assert_true(
	    sockcheck_overlaps(&mapped, sa(AF_INET, "127.0.0.1", 8080), true));
	assert_true(
	    sockcheck_overlaps(&mapped, sa(AF_INET, "0.0.0.0", 8080), true));
	assert_false(
	    sockcheck_overlaps(&mapped, sa(AF_INET, "127.0.0.2", 8080), true));
	assert_true(sockcheck_overlaps(
	    &lo, sa(AF_INET6, "::ffff:127.0.0.1", 8080), true));
	assert_false(sockcheck_overlaps(
	    &lo, sa(AF_INET6, "::ffff:127.0.0.1", 8081), true));
}

/* A socket bound as a worker's listener is: SO_REUSEADDR, SO_REUSEPORT;
 * listening unless !listen_too. Port 0 picks one; *addr gets it. */
static int
listener(int family, const char *host, unsigned port, bool listen_too,
	 struct sockaddr_storage *addr, socklen_t *len)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	assert_true(fd != -1);
	assert_int_equal(
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
	*len = family == AF_INET ? sizeof(struct sockaddr_in)
				 : sizeof(struct sockaddr_in6);
	memcpy(addr, sa(family, host, port), *len);
	assert_int_equal(bind(fd, (struct sockaddr *)addr, *len), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)addr, len), 0);
	if (listen_too)
		assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static unsigned
port_of(const struct sockaddr_storage *a)
{
	return ntohs(((const struct sockaddr_in *)a)->sin_port);
}

static void
test_probe_and_holder(void **state)
{
	struct sockaddr_storage a, b;
	struct sockcheck_holder h;
	socklen_t alen, blen;
	uint64_t inode;
	unsigned port;
	int fd, fd2, pipefd[2];

	fd = listener(AF_INET, "127.0.0.1", 0, true, &a, &alen);
	port = port_of(&a);
	assert_int_equal(sockcheck_inode(fd, &inode), 0);

	/* the kernel refuses a bind without SO_REUSEPORT: it is taken */
	errno = 0;
	assert_int_equal(sockcheck_probe((struct sockaddr *)&a, alen), -1);
	assert_int_equal(errno, EADDRINUSE);
	assert_int_equal(sockcheck_probe(sa(AF_INET, "0.0.0.0", port),
					 sizeof(struct sockaddr_in)),
			 -1);
	assert_int_equal(errno, EADDRINUSE);
	/* while a second SO_REUSEPORT listener gets in: the silent share
	 * the check is there to prevent */
	fd2 = listener(AF_INET, "127.0.0.1", port, true, &b, &blen);
	close(fd2);

	/* the holder is this process, found through /proc */
	assert_int_equal(
	    sockcheck_find((struct sockaddr *)&a, NULL, 0, false, &h), 1);
	assert_true(h.sh_inode == inode);
	assert_int_equal(h.sh_uid, getuid());
	assert_int_equal(h.sh_pid, getpid());
	assert_string_equal(h.sh_comm, "test_sockcheck");
	assert_int_equal(
	    sockcheck_find(sa(AF_INET, "0.0.0.0", port), NULL, 0, false, &h),
	    1);
	assert_int_equal(h.sh_pid, getpid());
	/* ... unless it is one of ours */
	assert_int_equal(
	    sockcheck_find((struct sockaddr *)&a, &inode, 1, false, &h), 0);
	assert_int_equal(
	    sockcheck_find(sa(AF_INET, "127.0.0.2", port), NULL, 0, true, &h),
	    0);

	close(fd);
	assert_int_equal(sockcheck_probe((struct sockaddr *)&a, alen), 0);
	assert_int_equal(
	    sockcheck_find((struct sockaddr *)&a, NULL, 0, true, &h), 0);

	/* a socket that is bound but does not listen is no holder */
	fd = listener(AF_INET, "127.0.0.1", 0, false, &a, &alen);
	assert_int_equal(sockcheck_probe((struct sockaddr *)&a, alen), 0);
	close(fd);

	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(sockcheck_inode(pipefd[0], &inode), -1);
	assert_int_equal(errno, ENOTSOCK);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* The listener closed, its accepted connection still open: what a gateway
 * draining after SIGTERM leaves. The address is free for the next one. */
static void
test_probe_after_drain(void **state)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int fd, c, s;

	fd = listener(AF_INET, "127.0.0.1", 0, true, &a, &alen);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&a, alen), 0);
	s = accept(fd, NULL, NULL);
	assert_true(s != -1);
	assert_int_equal(sockcheck_probe((struct sockaddr *)&a, alen), -1);
	close(fd);
	assert_int_equal(sockcheck_probe((struct sockaddr *)&a, alen), 0);
	close(s);
	close(c);
}

static void
test_probe_ipv6(void **state)
{
	struct sockaddr_storage a;
	struct sockcheck_holder h;
	socklen_t alen;
	int fd, probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (probe == -1 || bind(probe, sa(AF_INET6, "::1", 0),
				sizeof(struct sockaddr_in6)) == -1) {
		if (probe != -1)
			close(probe);
		skip(); /* no IPv6 loopback here */
		return;
	}
	close(probe);
	/* an IPv4 listener blocks a dual-stack IPv6 wildcard */
	fd = listener(AF_INET, "0.0.0.0", 0, true, &a, &alen);
	assert_int_equal(sockcheck_probe(sa(AF_INET6, "::", port_of(&a)),
					 sizeof(struct sockaddr_in6)),
			 -1);
	assert_int_equal(errno, EADDRINUSE);
	assert_int_equal(
	    sockcheck_find(sa(AF_INET6, "::", port_of(&a)), NULL, 0, false, &h),
	    0);
	assert_int_equal(
	    sockcheck_find(sa(AF_INET6, "::", port_of(&a)), NULL, 0, true, &h),
	    1);
	assert_int_equal(h.sh_pid, getpid());
	close(fd);
}

static struct config *
config_on(unsigned port, unsigned admin)
{
	static struct config_errors err;
	struct config *c;
	char json[512];

	snprintf(json, sizeof(json),
		 "{\"admin\": {\"listen\": \"127.0.0.1:%u\"}, \"upstreams\": "
		 "{\"u\": {\"servers\": [\"127.0.0.1:9\"]}}, \"listeners\": "
		 "[{\"listen\": \"127.0.0.1:%u\", \"routes\": [{\"name\": "
		 "\"u\", \"path\": \"/\", \"upstream\": \"u\"}]}]}",
		 admin, port);
	c = config_parse(json, strlen(json), &err);
	if (c == NULL)
		fail_msg("%s", err.msg[0]);
	return c;
}

static void
test_free_and_alone(void **state)
{
	struct sockaddr_storage a, b;
	socklen_t alen, blen;
	struct config *c;
	uint64_t inode;
	unsigned busy, spare;
	int fd, fd2;

	fd = listener(AF_INET, "127.0.0.1", 0, true, &a, &alen);
	busy = port_of(&a);
	fd2 = listener(AF_INET, "127.0.0.1", 0, false, &b, &blen);
	spare = port_of(&b);
	close(fd2); /* free again, for as long as the test needs it */

	c = config_on(busy, spare);
	assert_int_equal(sockcheck_free(c, 0), -1);
	/* with a grace, probed again until it runs out: still taken */
	assert_int_equal(sockcheck_free(c, 120), -1);
	/* after the bind: ours, or somebody else's */
	assert_int_equal(sockcheck_alone(c, NULL, 0), -1);
	assert_int_equal(sockcheck_inode(fd, &inode), 0);
	assert_int_equal(sockcheck_alone(c, &inode, 1), 0);
	config_unref(c);

	/* the admin listener is checked the same way */
	c = config_on(spare, busy);
	assert_int_equal(sockcheck_free(c, 0), -1);
	assert_int_equal(sockcheck_alone(c, NULL, 0), 0);
	config_unref(c);

	close(fd);
	c = config_on(busy, spare);
	assert_int_equal(sockcheck_free(c, 0), 0);
	assert_int_equal(sockcheck_alone(c, NULL, 0), 0);
	config_unref(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_lines),
	    cmocka_unit_test(test_parse_refusals),
	    cmocka_unit_test(test_overlaps),
	    cmocka_unit_test(test_probe_and_holder),
	    cmocka_unit_test(test_probe_after_drain),
	    cmocka_unit_test(test_probe_ipv6),
	    cmocka_unit_test(test_free_and_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
