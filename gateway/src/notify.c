/*
 * notify.c - sd_notify(3) messages for a Type=notify unit; the contracts
 * are in notify.h.
 */
#include "notify.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"

#define STATUS_LEN 256

static struct event *notify_watchdog;
static bool (*notify_alive)(void *arg);
static void *notify_alive_arg;
static bool notify_warned;

/* Sends `msg` to $NOTIFY_SOCKET; a failure is logged the first time. */
static void
notify_send(const char *msg)
{
	int rc = sd_notify(0, msg);

	if (rc < 0 && !notify_warned) {
		notify_warned = true;
		log_warn("sd_notify: cannot tell systemd \"%.*s\": %s",
			 (int)strcspn(msg, "\n"), msg, strerror(-rc));
	}
}

void
notify_ready(unsigned nworkers, size_t nlisteners)
{
	char msg[STATUS_LEN + 32];

	snprintf(msg, sizeof(msg),
		 "READY=1\nSTATUS=Serving: %u worker(s), %zu listener(s)",
		 nworkers, nlisteners);
	notify_send(msg);
}

void
notify_reloading(void)
{
	struct timespec now;
	char msg[128];

	if (clock_gettime(CLOCK_MONOTONIC, &now) == -1)
		return;
	snprintf(msg, sizeof(msg),
		 "RELOADING=1\nSTATUS=Reloading the config\n"
		 "MONOTONIC_USEC=%llu",
		 (unsigned long long)now.tv_sec * 1000000ULL +
		     (unsigned long long)now.tv_nsec / 1000ULL);
	notify_send(msg);
}

void
notify_reload_done(bool ok)
{
	notify_send(ok ? "READY=1\nSTATUS=Serving: config reloaded"
		       : "READY=1\nSTATUS=Serving the previous config: the "
			 "reload was refused (see the log)");
}

void
notify_stopping(uint64_t drain_ms)
{
	char msg[128];

	/* A second on top, for the exit after the drain. */
	snprintf(msg, sizeof(msg),
		 "STOPPING=1\nSTATUS=Draining in-flight requests\n"
		 "EXTEND_TIMEOUT_USEC=%llu",
		 (unsigned long long)(drain_ms + 1000) * 1000ULL);
	notify_send(msg);
}

static void
notify_watchdog_ping(evutil_socket_t fd, short what, void *arg)
{
	if (notify_alive(notify_alive_arg))
		notify_send("WATCHDOG=1");
}

int
notify_watchdog_start(struct event_base *base, bool (*alive)(void *arg),
		      void *arg)
{
	uint64_t usec = 0;
	struct timeval half;
	int rc = sd_watchdog_enabled(0, &usec);

	if (rc < 0) {
		log_warn("sd_watchdog_enabled: %s; no watchdog pings",
			 strerror(-rc));
		return 0;
	}
	if (rc == 0 || usec == 0)
		return 0;
	notify_alive = alive;
	notify_alive_arg = arg;
	usec /= 2;
	half.tv_sec = (time_t)(usec / 1000000);
	half.tv_usec = (suseconds_t)(usec % 1000000);
	notify_watchdog =
	    event_new(base, -1, EV_PERSIST, notify_watchdog_ping, NULL);
	if (notify_watchdog == NULL ||
	    evtimer_add(notify_watchdog, &half) == -1) {
		log_error("cannot set up the systemd watchdog timer");
		notify_watchdog_stop();
		return -1;
	}
	notify_send("WATCHDOG=1");
	return 0;
}

void
notify_watchdog_stop(void)
{
	if (notify_watchdog != NULL)
		event_free(notify_watchdog);
	notify_watchdog = NULL;
}
