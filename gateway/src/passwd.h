/*
 * passwd.h - `portcullis passwd`: makes htpasswd lines and checks, deletes
 * or sets one user's line in an htpasswd file, as Apache's htpasswd does.
 */
#ifndef PORTCULLIS_PASSWD_H
#define PORTCULLIS_PASSWD_H

/*
 * Runs `portcullis passwd ...` with argv[0] the program and argv[1]
 * "passwd". Returns the exit status: 0 done (or the password is right), 1
 * failed (a file that cannot be read, parsed or replaced), 2 usage, 3 the
 * password is wrong or the user is not in the file.
 */
int passwd_main(int argc, char **argv);

#endif
