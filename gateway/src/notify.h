/*
 * notify.h - telling systemd where the daemon is in its life (a unit with
 * Type=notify, sd_notify(3)): ready, reloading, stopping, and alive (the
 * watchdog). Main thread only.
 *
 * Every call is a no-op when $NOTIFY_SOCKET is unset, that is whenever the
 * gateway was not started by systemd as a notify service (a shell, a
 * container, the tests). A notification is one non-blocking datagram, so
 * it may be sent from the main event loop; a failed send is logged once
 * and never stops the gateway.
 */
#ifndef PORTCULLIS_NOTIFY_H
#define PORTCULLIS_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* READY=1: every listener is bound and the workers run. */
void notify_ready(unsigned nworkers, size_t nlisteners);

/* RELOADING=1 with MONOTONIC_USEC (systemd 253+ wants it for
 * Type=notify-reload; older versions ignore it): a SIGHUP is handled. */
void notify_reloading(void);

/* READY=1 after a reload, successful (`ok`) or not: a refused config
 * keeps the running one serving. STATUS= says which. */
void notify_reload_done(bool ok);

/* STOPPING=1, and EXTEND_TIMEOUT_USEC so that systemd's stop timeout
 * covers a drain of up to `drain_ms`. */
void notify_stopping(uint64_t drain_ms);

/*
 * When systemd asks for a watchdog (sd_watchdog_enabled(3): WATCHDOG_USEC
 * set, WATCHDOG_PID unset or ours), adds a timer on `base` that, at half
 * the interval, asks alive(arg) and sends WATCHDOG=1 only when it says
 * true: so the ping proves the main loop turns and whatever alive()
 * checks (main.c: every worker's loop). 0 (also when no watchdog is asked
 * for), or -1 after logging why.
 */
int notify_watchdog_start(struct event_base *base, bool (*alive)(void *arg),
			  void *arg);

/* Removes the watchdog timer, if any. */
void notify_watchdog_stop(void);

#endif
