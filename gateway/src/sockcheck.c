/*
 * sockcheck.c - refusing to start beside another listener on our
 * addresses; the contracts and the reasons are in sockcheck.h.
 *
 * /proc/net/tcp prints each socket's local address as the 32-bit words of
 * its in-memory (network order) bytes, each formatted as a host-order
 * number: copying the parsed words back to memory in host order gives the
 * address bytes again, whatever the host's byte order.
 */
#include "sockcheck.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define PROC_NET_TCP "/proc/net/tcp"
#define PROC_NET_TCP6 "/proc/net/tcp6"
#define PROBE_INTERVAL_MS 50
#define V4_HEX 8  /* "0100007F" */
#define V6_HEX 32 /* four words of 8 */
#define PORT_HEX 4

/* The next space-separated token of [*s, end): 0 with t and n, or -1. */
static int
token(const char **s, const char *end, const char **t, size_t *n)
{
	const char *p = *s;

	while (p < end && *p == ' ')
		p++;
	if (p == end)
		return -1;
	*t = p;
	while (p < end && *p != ' ')
		p++;
	*n = (size_t)(p - *t);
	*s = p;
	return 0;
}

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Exactly n (1..8) hex digits at t. */
static int
hex32(const char *t, size_t n, uint32_t *v)
{
	uint32_t x = 0;
	size_t i;
	int d;

	if (n == 0 || n > 8)
		return -1;
	for (i = 0; i < n; i++) {
		if ((d = hex_digit(t[i])) == -1)
			return -1;
		x = x << 4 | (uint32_t)d;
	}
	*v = x;
	return 0;
}

/* A decimal of 1..20 digits at t, at most max. */
static int
decimal(const char *t, size_t n, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	if (n == 0 || n > 20)
		return -1;
	for (i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return -1;
		if (x > (max - (uint64_t)(t[i] - '0')) / 10)
			return -1;
		x = x * 10 + (uint64_t)(t[i] - '0');
	}
	*v = x;
	return 0;
}

/* "WORDS:PORT" with 1 or 4 words; the family follows from the length. */
static int
address(const char *t, size_t n, int *family, uint8_t addr[16], uint16_t *port)
{
	size_t words, i;
	uint32_t w, p;

	if (n == V4_HEX + 1 + PORT_HEX)
		*family = AF_INET;
	else if (n == V6_HEX + 1 + PORT_HEX)
		*family = AF_INET6;
	else
		return -1;
	words = (n - 1 - PORT_HEX) / V4_HEX;
	if (t[words * V4_HEX] != ':')
		return -1;
	memset(addr, 0, 16);
	for (i = 0; i < words; i++) {
		if (hex32(t + i * V4_HEX, V4_HEX, &w) == -1)
			return -1;
		memcpy(addr + 4 * i, &w, sizeof(w));
	}
	if (hex32(t + words * V4_HEX + 1, PORT_HEX, &p) == -1)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

int
sockcheck_parse_line(const char *s, size_t len, struct sockcheck_entry *e)
{
	const char *end = s + len, *t;
	uint8_t raddr[16];
	uint16_t rport;
	uint64_t v;
	uint32_t st;
	size_t n, i;
	int rfamily;

	/* "N:" -- the header's "sl" is not one */
	if (token(&s, end, &t, &n) == -1 || n < 2 || t[n - 1] != ':' ||
	    decimal(t, n - 1, UINT64_MAX, &v) == -1)
		return -1;
	if (token(&s, end, &t, &n) == -1 ||
	    address(t, n, &e->se_family, e->se_addr, &e->se_port) == -1)
		return -1;
	if (token(&s, end, &t, &n) == -1 ||
	    address(t, n, &rfamily, raddr, &rport) == -1 ||
	    rfamily != e->se_family)
		return -1;
	if (token(&s, end, &t, &n) == -1 || n != 2 || hex32(t, n, &st) == -1)
		return -1;
	e->se_state = st;
	/* queues, timer, retransmits: present, not read */
	for (i = 0; i < 3; i++)
		if (token(&s, end, &t, &n) == -1)
			return -1;
	if (token(&s, end, &t, &n) == -1 || decimal(t, n, UINT32_MAX, &v) == -1)
		return -1;
	e->se_uid = (uint32_t)v;
	if (token(&s, end, &t, &n) == -1 || decimal(t, n, UINT64_MAX, &v) == -1)
		return -1;
	if (token(&s, end, &t, &n) == -1 || decimal(t, n, UINT64_MAX, &v) == -1)
		return -1;
	e->se_inode = v;
	return 0;
}

static bool
all_zero(const uint8_t *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] != 0)
			return false;
	return true;
}

/* ::ffff:a.b.c.d */
static bool
v4_mapped(const uint8_t *a)
{
	static const uint8_t prefix[12] = {0, 0, 0, 0, 0,    0,
					   0, 0, 0, 0, 0xff, 0xff};

	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

bool
sockcheck_overlaps(const struct sockcheck_entry *e, const struct sockaddr *sa,
		   bool dual_stack)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	const uint8_t *a, *v4, *v6;
	uint16_t port;
	size_t n;

	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&sin->sin_addr;
		port = ntohs(sin->sin_port);
		n = 4;
	} else if (sa->sa_family == AF_INET6) {
		a = sin6->sin6_addr.s6_addr;
		port = ntohs(sin6->sin6_port);
		n = 16;
	} else {
		return false;
	}
	if (e->se_port != port)
		return false;
	if (e->se_family == sa->sa_family)
		return all_zero(a, n) || all_zero(e->se_addr, n) ||
		       memcmp(a, e->se_addr, n) == 0;
	if (!dual_stack)
		return false;
	v6 = n == 16 ? a : e->se_addr;
	v4 = n == 16 ? e->se_addr : a;
	if (all_zero(v6, 16))
		return true;
	return v4_mapped(v6) && (all_zero(v4, 4) || all_zero(v6 + 12, 4) ||
				 memcmp(v6 + 12, v4, 4) == 0);
}

int
sockcheck_probe(const struct sockaddr *sa, socklen_t salen)
{
	int fd, one = 1, rc = 0, saved;

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, sa, salen) == -1)
		rc = -1;
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
sockcheck_inode(int fd, uint64_t *inode)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return -1;
	if (!S_ISSOCK(st.st_mode)) {
		errno = ENOTSOCK;
		return -1;
	}
	*inode = (uint64_t)st.st_ino;
	return 0;
}

static bool
is_own(uint64_t inode, const uint64_t *own, size_t nown)
{
	size_t i;

	for (i = 0; i < nown; i++)
		if (own[i] == inode)
			return true;
	return false;
}

static bool
all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Does process `pid` (a /proc entry) hold socket:[inode] among its fds? */
static bool
holds(const char *pid, const char *want, size_t wantlen)
{
	char path[32], link[64];
	struct dirent *f;
	bool found = false;
	ssize_t n;
	DIR *fds;

	snprintf(path, sizeof(path), "/proc/%.10s/fd", pid);
	if ((fds = opendir(path)) == NULL)
		return false; /* gone, or not ours to look at */
	while (!found && (f = readdir(fds)) != NULL) {
		if (!all_digits(f->d_name))
			continue;
		n = readlinkat(dirfd(fds), f->d_name, link, sizeof(link));
		found =
		    n == (ssize_t)wantlen && memcmp(link, want, wantlen) == 0;
	}
	closedir(fds);
	return found;
}

/* Fills h->sh_pid and sh_comm from the first process holding the socket,
 * if /proc lets us see it. */
static void
name_holder(struct sockcheck_holder *h)
{
	char want[48], path[32];
	struct dirent *p;
	size_t wantlen, n;
	DIR *proc;
	FILE *f;

	h->sh_pid = 0;
	snprintf(h->sh_comm, sizeof(h->sh_comm), "?");
	wantlen = (size_t)snprintf(want, sizeof(want), "socket:[%llu]",
				   (unsigned long long)h->sh_inode);
	if ((proc = opendir("/proc")) == NULL)
		return;
	while ((p = readdir(proc)) != NULL) {
		if (!all_digits(p->d_name) || strlen(p->d_name) > 10 ||
		    !holds(p->d_name, want, wantlen))
			continue;
		h->sh_pid = (pid_t)strtol(p->d_name, NULL, 10); /* digits */
		snprintf(path, sizeof(path), "/proc/%.10s/comm", p->d_name);
		if ((f = fopen(path, "re")) != NULL) {
			if (fgets(h->sh_comm, sizeof(h->sh_comm), f) != NULL) {
				n = strcspn(h->sh_comm, "\n");
				h->sh_comm[n] = '\0';
			}
			(void)fclose(f); /* read only: nothing to lose */
		}
		break;
	}
	closedir(proc);
}

/*
 * One pass over a /proc/net file: for each sa[i] not found yet, the first
 * foreign listener overlapping it goes into h[i] (inode and uid) and
 * found[i] is set. 0, or -1 if the file cannot be read.
 */
static int
scan(const char *file, const struct sockaddr *const *sa, size_t nsa,
     const uint64_t *own, size_t nown, bool dual_stack,
     struct sockcheck_holder *h, bool *found)
{
	struct sockcheck_entry e;
	char *line = NULL;
	size_t cap = 0, i;
	ssize_t n;
	FILE *f;

	if ((f = fopen(file, "re")) == NULL)
		return -1;
	while ((n = getline(&line, &cap, f)) != -1) {
		if (n > 0 && line[n - 1] == '\n')
			n--;
		if (sockcheck_parse_line(line, (size_t)n, &e) == -1 ||
		    e.se_state != SOCKCHECK_LISTEN || e.se_inode == 0 ||
		    is_own(e.se_inode, own, nown))
			continue;
		for (i = 0; i < nsa; i++) {
			if (found[i] ||
			    !sockcheck_overlaps(&e, sa[i], dual_stack))
				continue;
			h[i].sh_inode = e.se_inode;
			h[i].sh_uid = e.se_uid;
			found[i] = true;
		}
	}
	free(line);
	(void)fclose(f); /* read only: nothing to lose */
	return 0;
}

/* scan() of both files, then the holders named: the count found, or -1
 * if neither file can be read. */
static int
find_all(const struct sockaddr *const *sa, size_t nsa, const uint64_t *own,
	 size_t nown, bool dual_stack, struct sockcheck_holder *h, bool *found)
{
	size_t i;
	int v4, v6, n = 0;

	memset(h, 0, nsa * sizeof(*h));
	memset(found, 0, nsa * sizeof(*found));
	v4 = scan(PROC_NET_TCP, sa, nsa, own, nown, dual_stack, h, found);
	/* tcp6 is missing when the kernel has no IPv6 */
	v6 = scan(PROC_NET_TCP6, sa, nsa, own, nown, dual_stack, h, found);
	if (v4 == -1 && v6 == -1)
		return -1;
	for (i = 0; i < nsa; i++)
		if (found[i]) {
			name_holder(&h[i]);
			n++;
		}
	return n;
}

int
sockcheck_find(const struct sockaddr *sa, const uint64_t *own, size_t nown,
	       bool dual_stack, struct sockcheck_holder *h)
{
	bool found;
	int n = find_all(&sa, 1, own, nown, dual_stack, h, &found);

	return n == -1 ? -1 : n > 0;
}

/* A holder for a message: "pid 42 (nginx)". */
static void
holder_text(const struct sockcheck_holder *h, char *buf, size_t len)
{
	if (h->sh_pid != 0)
		snprintf(buf, len, "pid %ld (%s)", (long)h->sh_pid, h->sh_comm);
	else
		snprintf(buf, len,
			 "a process of uid %u that this user cannot see",
			 (unsigned)h->sh_uid);
}

/* Who holds a listener on sa (the same family first, then across), for
 * a message; NULL when /proc does not show one. */
static const char *
describe(const struct sockaddr *sa, char *buf, size_t len)
{
	struct sockcheck_holder h;

	if (sockcheck_find(sa, NULL, 0, false, &h) != 1 &&
	    sockcheck_find(sa, NULL, 0, true, &h) != 1)
		return NULL;
	holder_text(&h, buf, len);
	return buf;
}

/* One address the gateway will listen on. */
struct target {
	char t_path[48]; /* "listeners[N].listen" */
	const char *t_listen;
	const struct sockaddr *t_sa;
	socklen_t t_salen;
	int t_errno; /* of the last probe; 0 when free */
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Probes every target; the count still in use by someone else. */
static size_t
probe_all(struct target *t, size_t n)
{
	size_t i, busy = 0;

	for (i = 0; i < n; i++) {
		t[i].t_errno = 0;
		if (sockcheck_probe(t[i].t_sa, t[i].t_salen) == -1)
			t[i].t_errno = errno;
		if (t[i].t_errno == EADDRINUSE)
			busy++;
	}
	return busy;
}

int
sockcheck_free(const struct config *cfg, unsigned grace_ms)
{
	struct timespec pause = {0, PROBE_INTERVAL_MS * 1000000L};
	uint64_t deadline = now_ms() + grace_ms;
	size_t i, n = 0, bad = 0;
	struct target *t;
	char who[96];

	if ((t = calloc(cfg->nlisteners + 1, sizeof(*t))) == NULL) {
		log_error("out of memory checking the listeners");
		return -1;
	}
	for (i = 0; i < cfg->nlisteners; i++, n++) {
		snprintf(t[n].t_path, sizeof(t[n].t_path),
			 "listeners[%zu].listen", i);
		t[n].t_listen = cfg->listeners[i].listen;
		t[n].t_sa = (const struct sockaddr *)&cfg->listeners[i].addr;
		t[n].t_salen = cfg->listeners[i].addrlen;
	}
	if (cfg->admin_addrlen > 0) {
		snprintf(t[n].t_path, sizeof(t[n].t_path), "admin.listen");
		t[n].t_listen = cfg->admin_listen;
		t[n].t_sa = (const struct sockaddr *)&cfg->admin_addr;
		t[n].t_salen = cfg->admin_addrlen;
		n++;
	}
	/* A gateway draining after SIGTERM closes its listeners at once;
	 * one started right after it need not lose that race. */
	while (probe_all(t, n) > 0 && now_ms() < deadline)
		nanosleep(&pause, NULL);
	for (i = 0; i < n; i++) {
		if (t[i].t_errno == 0)
			continue;
		bad++;
		if (t[i].t_errno != EADDRINUSE) {
			log_error("%s: cannot listen on %s: %s", t[i].t_path,
				  t[i].t_listen, strerror(t[i].t_errno));
		} else if (describe(t[i].t_sa, who, sizeof(who)) != NULL) {
			log_error("%s: cannot listen on %s: %s: %s listens "
				  "there; not starting beside it",
				  t[i].t_path, t[i].t_listen,
				  strerror(t[i].t_errno), who);
		} else {
			log_error("%s: cannot listen on %s: %s; not starting "
				  "beside it",
				  t[i].t_path, t[i].t_listen,
				  strerror(t[i].t_errno));
		}
	}
	free(t);
	return bad > 0 ? -1 : 0;
}

int
sockcheck_alone(const struct config *cfg, const uint64_t *own, size_t nown)
{
	const struct sockaddr **sa;
	struct sockcheck_holder *h;
	bool *found;
	char who[96];
	size_t i, n = cfg->nlisteners;
	int rc = -1;

	/* NOLINTNEXTLINE(bugprone-sizeof-expression): array of pointers */
	sa = calloc(n, sizeof(*sa));
	h = calloc(n, sizeof(*h));
	found = calloc(n, sizeof(*found));
	if (sa == NULL || h == NULL || found == NULL) {
		log_error("out of memory checking the listeners");
		goto done;
	}
	for (i = 0; i < n; i++)
		sa[i] = (const struct sockaddr *)&cfg->listeners[i].addr;
	/* One read of /proc/net for every listener: it can be long. */
	if (find_all(sa, n, own, nown, false, h, found) <= 0) {
		rc = 0; /* none, or no /proc to tell */
		goto done;
	}
	for (i = 0; i < n; i++) {
		if (!found[i])
			continue;
		holder_text(&h[i], who, sizeof(who));
		log_error("listeners[%zu].listen: %s: %s listens there too "
			  "(it started beside us); not starting",
			  i, cfg->listeners[i].listen, who);
	}
done:
	free(sa);
	free(h);
	free(found);
	return rc;
}
