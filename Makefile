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

BUILD ?= build
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc)

.PHONY: all deps build run test unit fuzz integration sanitize bench format lint analyze clean

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
