# portcullis - thin wrapper over CMake and the test scripts.
#   make run    install what running needs and is missing (scripts/deps.sh
#               run), build, run the gateway in front of Prometheus and
#               Alertmanager on loopback
#   make test   everything: unit, fuzz replay and a short fuzz run,
#               every build type, static analysis, integration, and all
#               of it again under ASan+UBSan
#   make analyze  cppcheck and clang-tidy (scripts/analyze.sh)
#   make bench  portcullis beside nginx and HAProxy (bench/README.md)
#   make deps   install every Debian package the project needs (run, test
#               and bench; make test and make bench install their own)
#   make install  the binaries, man pages, systemd unit, logrotate and
#               sysusers snippets and an example config under
#               $(DESTDIR)$(PREFIX) (docs/INSTALL.md); make uninstall

BUILD ?= build
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc)

.PHONY: all deps build run test unit fuzz integration sanitize bench format lint analyze clean \
	install install-binaries uninstall

# Install layout (docs/INSTALL.md). The daemon goes to sbin, where Debian
# puts daemons with a section 8 page; the cost exporter to bin, like
# Debian's Prometheus exporters. PREFIX=/usr is a package's layout: config
# in /etc, the unit in /lib/systemd/system (Debian 12).
PREFIX ?= /usr/local
DESTDIR ?=
bindir ?= $(PREFIX)/bin
sbindir ?= $(PREFIX)/sbin
mandir ?= $(PREFIX)/share/man
docdir ?= $(PREFIX)/share/doc/portcullis
sysusersdir ?= $(PREFIX)/lib/sysusers.d
ifeq ($(PREFIX),/usr)
sysconfdir ?= /etc
unitdir ?= /lib/systemd/system
else
sysconfdir ?= $(PREFIX)/etc
unitdir ?= $(PREFIX)/lib/systemd/system
endif
CONFIG_FILE = $(sysconfdir)/portcullis/portcullis.json

all: build

deps:
	@scripts/deps.sh all

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run:
	@scripts/deps.sh run
	@$(MAKE) build
	@scripts/run-local.sh

test:
	@scripts/deps.sh test
	@tests/run-all.sh

unit: build
	@cd $(BUILD) && ctest --output-on-failure

bench:
	@scripts/deps.sh bench
	@$(MAKE) build
	@bench/run.sh

format:
	@clang-format -i gateway/src/*.[ch] cost-exporter/src/*.[ch] gateway/fuzz/*.c \
		tests/unit/*.c

lint:
	@clang-format --dry-run --Werror gateway/src/*.[ch] cost-exporter/src/*.[ch] \
		gateway/fuzz/*.c tests/unit/*.c

analyze:
	@scripts/analyze.sh

clean:
	rm -rf build build-asan build-fuzz build-release build-minsizerel \
		build-debug build-analyze

# The binaries of $(BUILD), built first. A new tree is configured as
# `make build` does; an existing one keeps its build type (an ASan tree
# stays one). Nothing is stripped: build IDs and debug info stay.
install-binaries:
	@[ -f $(BUILD)/CMakeCache.txt ] || \
		cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target portcullis portcullis-cost-exporter

# An existing config is never replaced: the example is then only in docdir.
install: install-binaries
	install -D -m 0755 $(BUILD)/bin/portcullis $(DESTDIR)$(sbindir)/portcullis
	install -D -m 0755 $(BUILD)/bin/portcullis-cost-exporter \
		$(DESTDIR)$(bindir)/portcullis-cost-exporter
	install -D -m 0644 docs/man/portcullis.8 $(DESTDIR)$(mandir)/man8/portcullis.8
	install -D -m 0644 docs/man/portcullis.json.5 \
		$(DESTDIR)$(mandir)/man5/portcullis.json.5
	install -d -m 0755 $(DESTDIR)$(unitdir)
	sed -e 's|@sbindir@|$(sbindir)|g' -e 's|@sysconfdir@|$(sysconfdir)|g' \
		packaging/systemd/portcullis.service.in \
		>$(DESTDIR)$(unitdir)/portcullis.service
	chmod 0644 $(DESTDIR)$(unitdir)/portcullis.service
	install -D -m 0644 packaging/sysusers/portcullis.conf \
		$(DESTDIR)$(sysusersdir)/portcullis.conf
	install -D -m 0644 packaging/logrotate/portcullis \
		$(DESTDIR)$(sysconfdir)/logrotate.d/portcullis
	install -D -m 0644 gateway/portcullis.example.json \
		$(DESTDIR)$(docdir)/portcullis.example.json
	install -d -m 0755 $(DESTDIR)$(sysconfdir)/portcullis
	@if [ -e $(DESTDIR)$(CONFIG_FILE) ]; then \
		echo "install: $(DESTDIR)$(CONFIG_FILE) exists: kept;" \
			"the example is $(DESTDIR)$(docdir)/portcullis.example.json"; \
	else \
		echo "install -m 0644 gateway/portcullis.example.json $(DESTDIR)$(CONFIG_FILE)"; \
		install -m 0644 gateway/portcullis.example.json $(DESTDIR)$(CONFIG_FILE); \
	fi

# Everything install put there but the config (and its directory).
uninstall:
	rm -f $(DESTDIR)$(sbindir)/portcullis \
		$(DESTDIR)$(bindir)/portcullis-cost-exporter \
		$(DESTDIR)$(mandir)/man8/portcullis.8 \
		$(DESTDIR)$(mandir)/man5/portcullis.json.5 \
		$(DESTDIR)$(unitdir)/portcullis.service \
		$(DESTDIR)$(sysusersdir)/portcullis.conf \
		$(DESTDIR)$(sysconfdir)/logrotate.d/portcullis \
		$(DESTDIR)$(docdir)/portcullis.example.json
	rmdir $(DESTDIR)$(docdir) 2>/dev/null || true
	@[ ! -e $(DESTDIR)$(CONFIG_FILE) ] || \
		echo "uninstall: $(DESTDIR)$(CONFIG_FILE) kept"
