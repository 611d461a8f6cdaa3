/*
 * passwd.c - `portcullis passwd`: the contract is in passwd.h, the forms
 * in usage() below.
 *
 * A file is read whole and parsed with htpasswd_parse(), the gateway's own
 * parser, so a file accepted here loads in a realm (as its only file), and
 * a password found right here is one the gateway's verifier accepts (the
 * same pwhash_verify()). A change (-D, -f) never edits a file in place:
 * the new bytes go to a temporary file in the same directory, which takes
 * the old one's mode (and owner, as root), is synced and renamed over it,
 * so the gateway's watcher sees either the old file or the new one, never
 * a half-written one. Every byte but the user's line is copied as it was.
 * A symbolic link is refused rather than followed or replaced: renaming
 * over it would turn it into a file, and following it would replace a
 * file the user did not name.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "htpasswd.h"
#include "passwd.h"
#include "pwhash.h"

#define PASSWD_FILE_MAX (16u << 20) /* the gateway's own limit (auth.c) */
#define PASSWD_PW_MAX 1024	    /* a password line, with its end */
#define PASSWD_DEFAULT_COST 10

/* Exit statuses, for scripts (passwd.h). */
enum {
	PASSWD_OK = 0,
	PASSWD_FAILED = 1,
	PASSWD_USAGE = 2,
	PASSWD_NO = 3,
};

/* One htpasswd file as read. */
struct passwd_file {
	const char *pf_path;
	char *pf_buf; /* the file's bytes, NUL-terminated */
	size_t pf_len;
	struct stat pf_st;
	struct htpasswd pf_users;
	bool pf_missing; /* no such file yet (-f makes it) */
};

/* Part of a file's new contents. */
struct piece {
	const char *pc_p;
	size_t pc_n;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, after "portcullis passwd: ". */
static void
say(const char *fmt, ...)
{
	va_list ap;

	fputs("portcullis passwd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
usage(void)
{
	fputs("usage: portcullis passwd [-C COST] USER\n"
	      "       portcullis passwd -v FILE [-P] USER\n"
	      "       portcullis passwd -D FILE [-P] USER\n"
	      "       portcullis passwd -f FILE [-P] [-C COST] USER\n"
	      "Without a FILE, prints USER's htpasswd line (bcrypt). -v checks "
	      "USER's\n"
	      "password in FILE, -D deletes USER's line, -f adds USER or "
	      "changes the\n"
	      "password. The password is read from stdin (on a terminal, "
	      "unechoed and\n"
	      "twice, but once for -v).\n"
	      "  -C COST  bcrypt cost, 4 to 17 (default 10)\n"
	      "  -P       FILE may hold plain-text passwords (a realm with "
	      "allow_plaintext)\n"
	      "Exit: 0 done or the password is right, 1 failed, 2 usage, "
	      "3 the password is\n"
	      "wrong or USER is not in FILE.\n",
	      stderr);
}

/* A name a file can hold (htpasswd.h): 1 to HTPASSWD_USER_MAX bytes, no
 * ':' or control character, no space at either end. */
static bool
user_ok(const char *user)
{
	size_t n = strlen(user), i;

	if (n == 0 || n > HTPASSWD_USER_MAX || user[0] == ' ' ||
	    user[n - 1] == ' ')
		return false;
	for (i = 0; i < n; i++)
		if (user[i] == ':' || (unsigned char)user[i] < 0x20 ||
		    user[i] == 0x7f)
			return false;
	return true;
}

/* Reads one line of at most cap - 1 bytes from stdin, without its end;
 * with a terminal, asks without echo, twice when `confirm`. 0 or -1. */
static int
read_password(char *buf, size_t cap, size_t *len, bool confirm)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	char again[PASSWD_PW_MAX];
	size_t n;
	int rc = -1;

	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		fputs("Password: ", stderr);
	}
	if (fgets(buf, (int)cap, stdin) == NULL) {
		say("no password on stdin");
		goto done;
	}
	n = strlen(buf);
	if (n == cap - 1 && buf[n - 1] != '\n') {
		say("password too long");
		goto done;
	}
	/* Only the line's end goes: "\n" or "\r\n". */
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	*len = n;
	if (tty && confirm) {
		fputs("\nAgain: ", stderr);
		if (fgets(again, sizeof(again), stdin) == NULL)
			goto done;
		again[strcspn(again, "\r\n")] = '\0';
		if (strcmp(buf, again) != 0) {
			fputs("\n", stderr);
			say("passwords differ");
			goto done;
		}
	}
	if (tty)
		fputs("\n", stderr);
	rc = 0;
done:
	OPENSSL_cleanse(again, sizeof(again));
	if (tty)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return rc;
}

/* Reads a password to store, refusing one basic auth cannot send. 0 or -1
 * with the reason on stderr. */
static int
read_new_password(char *pw, size_t cap, size_t *len)
{
	const char *p;

	if (read_password(pw, cap, len, true) == -1)
		return -1;
	if (*len == 0) {
		say("empty password refused");
		return -1;
	}
	for (p = pw; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			break;
	if (*p != '\0' || strlen(pw) != *len) {
		/* RFC 7617 section 2: basic auth cannot carry them. */
		say("the password has a control character; basic auth "
		    "cannot send it");
		return -1;
	}
	return 0;
}

static void
file_free(struct passwd_file *pf)
{
	htpasswd_free(&pf->pf_users);
	if (pf->pf_buf != NULL)
		OPENSSL_cleanse(pf->pf_buf, pf->pf_len);
	free(pf->pf_buf);
	pf->pf_buf = NULL;
}

/* Says why `path` cannot be opened for a change: a symbolic link gets its
 * own message (the file header says why it is refused). */
static void
say_open_failed(const char *path, int err, bool change)
{
	struct stat st;
	char *target;

	if (!change || err != ELOOP || lstat(path, &st) == -1 ||
	    !S_ISLNK(st.st_mode)) {
		say("%s: %s", path, strerror(err));
		return;
	}
	target = realpath(path, NULL);
	say("%s is a symbolic link; -D and -f replace only a regular file: "
	    "name the file it points to%s%s%s",
	    path, target != NULL ? " (" : "", target != NULL ? target : "",
	    target != NULL ? ")" : "");
	free(target);
}

/*
 * Reads and parses `path` into *pf. With `change`, a symbolic link is
 * refused (O_NOFOLLOW); with `may_miss`, a file that does not exist reads
 * as empty, with pf_missing set. 0, or -1 with the reason on stderr (a
 * parse error names the line) and *pf empty.
 */
static int
file_load(struct passwd_file *pf, const char *path, bool allow_plain,
	  bool change, bool may_miss)
{
	struct htpasswd users, plain;
	struct stat st;
	char err[256], *buf = NULL;
	ssize_t got;
	size_t have = 0;
	int fd;

	memset(pf, 0, sizeof(*pf));
	pf->pf_path = path;
	fd = open(path, O_RDONLY | O_CLOEXEC | (change ? O_NOFOLLOW : 0));
	if (fd == -1 && errno == ENOENT && may_miss) {
		if ((pf->pf_buf = calloc(1, 1)) == NULL) {
			say("%s: out of memory", path);
			return -1;
		}
		pf->pf_missing = true;
		return 0;
	}
	if (fd == -1) {
		say_open_failed(path, errno, change);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		say("%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		say("%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size > (off_t)PASSWD_FILE_MAX) {
		say("%s: larger than %u MiB", path, PASSWD_FILE_MAX >> 20);
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		say("%s: out of memory", path);
		goto fail;
	}
	while (have < (size_t)st.st_size) {
		got = read(fd, buf + have, (size_t)st.st_size - have);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			say("%s: %s", path, strerror(errno));
			goto fail;
		}
		if (got == 0)
			break;
		have += (size_t)got;
	}
	buf[have] = '\0';
	if (htpasswd_parse(buf, have, allow_plain, &users, err, sizeof(err)) ==
	    -1) {
		say("%s: %s", path, err);
		/* Only plain text in the way: say how to take it. */
		if (!allow_plain &&
		    htpasswd_parse(buf, have, true, &plain, NULL, 0) == 0) {
			htpasswd_free(&plain);
			say("with -P, %s is read as a realm with "
			    "allow_plaintext reads it",
			    path);
		}
		goto fail;
	}
	close(fd);
	pf->pf_buf = buf;
	pf->pf_len = have;
	pf->pf_st = st;
	pf->pf_users = users;
	return 0;
fail:
	close(fd);
	if (buf != NULL)
		OPENSSL_cleanse(buf, have);
	free(buf);
	return -1;
}

/*
 * Where 1-based line `line` of buf[0..len) is, as htpasswd_parse() counts
 * lines: it starts at *start, its text ends at *stop (before "\n" or
 * "\r\n") and the line with its end at *end. 0, or -1 when buf has fewer
 * lines.
 */
static int
line_span(const char *buf, size_t len, unsigned line, size_t *start,
	  size_t *stop, size_t *end)
{
	const char *s = buf, *e = buf + len, *nl;
	unsigned i;

	for (i = 1;; i++) {
		if (s >= e)
			return -1;
		nl = memchr(s, '\n', (size_t)(e - s));
		if (i == line)
			break;
		if (nl == NULL)
			return -1;
		s = nl + 1;
	}
	*start = (size_t)(s - buf);
	*stop = nl != NULL ? (size_t)(nl - buf) : len;
	*end = nl != NULL ? *stop + 1 : len;
	if (*stop > *start && buf[*stop - 1] == '\r')
		(*stop)--;
	return 0;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Whether `now` is still the file that was read: same inode, size and
 * modification time. */
static bool
same_file(const struct stat *now, const struct stat *then)
{
	return now->st_dev == then->st_dev && now->st_ino == then->st_ino &&
	       now->st_size == then->st_size &&
	       now->st_mtim.tv_sec == then->st_mtim.tv_sec &&
	       now->st_mtim.tv_nsec == then->st_mtim.tv_nsec;
}

/*
 * Replaces pf's file with the concatenation of pieces[0..n): a temporary
 * file beside it (mkstemp) gets the bytes, the old file's mode (and owner
 * when running as root), an fsync, and is renamed over it; then the
 * directory is synced. A missing file is made with mkstemp's mode, 0600,
 * and linked into place, which fails if one appeared meanwhile. The new
 * bytes must parse as the old ones did. A file changed since it was read
 * is left alone. 0, or -1 with the reason on stderr and no temporary file
 * left behind.
 */
static int
file_replace(const struct passwd_file *pf, const struct piece *pieces, size_t n,
	     bool allow_plain)
{
	const char *path = pf->pf_path;
	struct htpasswd check;
	struct stat now;
	char tmp[PATH_MAX], err[256], *all = NULL, *dir = NULL;
	size_t i, len = 0;
	int fd = -1, dfd = -1, closed, rc = -1;
	bool made = false;

	for (i = 0; i < n; i++)
		len += pieces[i].pc_n;
	if ((all = malloc(len + 1)) == NULL) {
		say("%s: out of memory", path);
		goto done;
	}
	for (len = 0, i = 0; i < n; i++) {
		if (pieces[i].pc_n > 0)
			memcpy(all + len, pieces[i].pc_p, pieces[i].pc_n);
		len += pieces[i].pc_n;
	}
	/* What the gateway will read must load. */
	if (htpasswd_parse(all, len, allow_plain, &check, err, sizeof(err)) ==
	    -1) {
		say("%s: the new contents would not load (%s); left as it is",
		    path, err);
		goto done;
	}
	htpasswd_free(&check);
	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
		say("%s: name too long", path);
		goto done;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		say("%s: cannot create a temporary file beside it: %s", path,
		    strerror(errno));
		goto done;
	}
	made = true;
	if (write_all(fd, all, len) == -1 ||
	    (!pf->pf_missing && geteuid() == 0 &&
	     fchown(fd, pf->pf_st.st_uid, pf->pf_st.st_gid) == -1) ||
	    (!pf->pf_missing && fchmod(fd, pf->pf_st.st_mode & 07777) == -1) ||
	    fsync(fd) == -1) {
		say("%s: %s: %s", path, tmp, strerror(errno));
		goto done;
	}
	closed = close(fd);
	fd = -1;
	if (closed == -1) {
		say("%s: %s: %s", path, tmp, strerror(errno));
		goto done;
	}
	if (pf->pf_missing) {
		/* made stays true: the temporary name goes at the end. */
		if (link(tmp, path) == -1) {
			say("%s: cannot make it: %s", path, strerror(errno));
			goto done;
		}
	} else {
		/* Renaming over a file changed since it was read would lose
		 * that change; a window remains, as with htpasswd, but a
		 * short one. */
		if (lstat(path, &now) == -1 || !same_file(&now, &pf->pf_st)) {
			say("%s changed while it was being edited; left as it "
			    "is now",
			    path);
			goto done;
		}
		if (rename(tmp, path) == -1) {
			say("%s: cannot replace it: %s", path, strerror(errno));
			goto done;
		}
		made = false;
	}
	if ((dir = strdup(path)) == NULL ||
	    (dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
		-1 ||
	    fsync(dfd) == -1) {
		say("%s: replaced, but its directory cannot be synced: %s",
		    path, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (fd != -1)
		close(fd);
	if (made)
		unlink(tmp);
	if (dfd != -1)
		close(dfd);
	if (all != NULL)
		OPENSSL_cleanse(all, len);
	free(all);
	free(dir);
	return rc;
}

/* Without a file: prints "USER:$2y$..." for htpasswd. */
static int
cmd_print(const char *user, unsigned cost)
{
	char pw[PASSWD_PW_MAX], hash[PWHASH_MAX];
	size_t len = 0;
	int rc = PASSWD_USAGE;

	if (read_new_password(pw, sizeof(pw), &len) == -1)
		goto done;
	if (pwhash_make_bcrypt(pw, len, cost, hash, sizeof(hash)) == -1) {
		say("cannot make a bcrypt hash");
		rc = PASSWD_FAILED;
		goto done;
	}
	printf("%s:%s\n", user, hash);
	rc = fflush(stdout) == 0 ? PASSWD_OK : PASSWD_FAILED;
done:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(hash, sizeof(hash));
	return rc;
}

/* -v: checks the password on stdin against USER's entry, as the gateway
 * does (pwhash_verify: a constant-time comparison). */
static int
cmd_verify(const char *path, const char *user, bool allow_plain)
{
	const struct htpasswd_entry *e;
	struct pwhash_scratch *sc = NULL;
	struct passwd_file pf;
	char pw[PASSWD_PW_MAX];
	size_t len = 0;
	int rc = PASSWD_FAILED;

	if (file_load(&pf, path, allow_plain, false, false) == -1)
		return PASSWD_FAILED;
	if ((e = htpasswd_find(&pf.pf_users, user, strlen(user))) == NULL) {
		say("no user %s in %s", user, path);
		rc = PASSWD_NO;
		goto done;
	}
	if (read_password(pw, sizeof(pw), &len, false) == -1) {
		rc = PASSWD_USAGE;
		goto done;
	}
	if ((sc = pwhash_scratch_new()) == NULL) {
		say("out of memory");
		goto done;
	}
	if (pwhash_verify(e->hash, e->kind, pw, len, sc)) {
		say("password for %s is correct", user);
		rc = PASSWD_OK;
	} else {
		say("password for %s is wrong", user);
		rc = PASSWD_NO;
	}
done:
	OPENSSL_cleanse(pw, sizeof(pw));
	pwhash_scratch_free(sc);
	file_free(&pf);
	return rc;
}

/* -D: removes USER's line, its end included. */
static int
cmd_delete(const char *path, const char *user, bool allow_plain)
{
	const struct htpasswd_entry *e;
	struct passwd_file pf;
	struct piece pieces[2];
	size_t start, stop, end;
	int rc = PASSWD_FAILED;

	if (file_load(&pf, path, allow_plain, true, false) == -1)
		return PASSWD_FAILED;
	if ((e = htpasswd_find(&pf.pf_users, user, strlen(user))) == NULL) {
		say("no user %s in %s", user, path);
		rc = PASSWD_NO;
		goto done;
	}
	if (line_span(pf.pf_buf, pf.pf_len, e->line, &start, &stop, &end) ==
	    -1) {
		say("%s: line %u not found", path, e->line);
		goto done;
	}
	pieces[0] = (struct piece){pf.pf_buf, start};
	pieces[1] = (struct piece){pf.pf_buf + end, pf.pf_len - end};
	if (file_replace(&pf, pieces, 2, allow_plain) == -1)
		goto done;
	say("deleted %s from %s", user, path);
	rc = PASSWD_OK;
done:
	file_free(&pf);
	return rc;
}

/* -f: replaces the hash in USER's line (its end kept), or adds a line for
 * USER at the end, ending as the file's first line does. */
static int
cmd_set(const char *path, const char *user, unsigned cost, bool allow_plain)
{
	const struct htpasswd_entry *e;
	struct passwd_file pf;
	struct piece pieces[6];
	const char *eol = "\n", *nl;
	char pw[PASSWD_PW_MAX], hash[PWHASH_MAX];
	size_t len = 0, ulen = strlen(user), start, stop, end, n = 0;
	int rc = PASSWD_FAILED;

	hash[0] = '\0';
	if (file_load(&pf, path, allow_plain, true, true) == -1)
		return PASSWD_FAILED;
	if (read_new_password(pw, sizeof(pw), &len) == -1) {
		rc = PASSWD_USAGE;
		goto done;
	}
	if (pwhash_make_bcrypt(pw, len, cost, hash, sizeof(hash)) == -1) {
		say("cannot make a bcrypt hash");
		goto done;
	}
	e = htpasswd_find(&pf.pf_users, user, ulen);
	if (e != NULL) {
		if (line_span(pf.pf_buf, pf.pf_len, e->line, &start, &stop,
			      &end) == -1) {
			say("%s: line %u not found", path, e->line);
			goto done;
		}
		pieces[n++] = (struct piece){pf.pf_buf, start + ulen + 1};
		pieces[n++] = (struct piece){hash, strlen(hash)};
		pieces[n++] =
		    (struct piece){pf.pf_buf + stop, pf.pf_len - stop};
	} else {
		nl = pf.pf_len > 0 ? memchr(pf.pf_buf, '\n', pf.pf_len) : NULL;
		if (nl != NULL && nl > pf.pf_buf && nl[-1] == '\r')
			eol = "\r\n";
		pieces[n++] = (struct piece){pf.pf_buf, pf.pf_len};
		if (pf.pf_len > 0 && pf.pf_buf[pf.pf_len - 1] != '\n')
			pieces[n++] = (struct piece){eol, strlen(eol)};
		pieces[n++] = (struct piece){user, ulen};
		pieces[n++] = (struct piece){":", 1};
		pieces[n++] = (struct piece){hash, strlen(hash)};
		pieces[n++] = (struct piece){eol, strlen(eol)};
	}
	if (file_replace(&pf, pieces, n, allow_plain) == -1)
		goto done;
	if (e != NULL)
		say("changed the password of %s in %s", user, path);
	else if (pf.pf_missing)
		say("made %s with %s (mode 0600)", path, user);
	else
		say("added %s to %s", user, path);
	rc = PASSWD_OK;
done:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(hash, sizeof(hash));
	file_free(&pf);
	return rc;
}

int
passwd_main(int argc, char **argv)
{
	const char *path = NULL, *user;
	unsigned long cost = PASSWD_DEFAULT_COST;
	bool allow_plain = false, costed = false;
	char *end;
	int opt, mode = 0;

	optind = 2;
	while ((opt = getopt(argc, argv, "C:D:f:Pv:")) != -1) {
		switch (opt) {
		case 'C':
			errno = 0;
			cost = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' ||
			    cost < PWHASH_BCRYPT_MIN_COST ||
			    cost > PWHASH_BCRYPT_MAX_COST) {
				say("-C must be %d to %d",
				    PWHASH_BCRYPT_MIN_COST,
				    PWHASH_BCRYPT_MAX_COST);
				return PASSWD_USAGE;
			}
			costed = true;
			break;
		case 'D':
		case 'f':
		case 'v':
			if (mode != 0) {
				say("one of -v, -D, -f at a time");
				return PASSWD_USAGE;
			}
			mode = opt;
			path = optarg;
			break;
		case 'P':
			allow_plain = true;
			break;
		default:
			usage();
			return PASSWD_USAGE;
		}
	}
	if (mode == 0 && allow_plain) {
		say("-P goes with -v, -D or -f");
		return PASSWD_USAGE;
	}
	if ((mode == 'v' || mode == 'D') && costed) {
		say("-C goes with printing a line or -f");
		return PASSWD_USAGE;
	}
	if (optind != argc - 1) {
		usage();
		return PASSWD_USAGE;
	}
	user = argv[optind];
	if (!user_ok(user)) {
		say("a user name is 1 to %d bytes without ':', control "
		    "characters, or a space at either end",
		    HTPASSWD_USER_MAX);
		return PASSWD_USAGE;
	}
	switch (mode) {
	case 'v':
		return cmd_verify(path, user, allow_plain);
	case 'D':
		return cmd_delete(path, user, allow_plain);
	case 'f':
		return cmd_set(path, user, (unsigned)cost, allow_plain);
	default:
		return cmd_print(user, (unsigned)cost);
	}
}
