# The suite's Makefile. Every folder named NN-name is a lesson: its server.c
# and client.c become NN-name/server and NN-name/client, linked with common/
# and with any other .c file in the folder. A new lesson needs no edit here.
#
#   make               build every lesson
#   make test          build, then run every test (tests/run)
#   make doc-test      run the marked blocks of the lab sheets and check
#                      what they say you will see: scripts/doc-test
#   make check         the same tests against ASan+UBSan builds, TSan
#                      builds of the lessons that start threads, and a
#                      smaller run under valgrind (make valgrind);
#                      make check-unit: the common/ unit tests alone
#   make tour          build, run every lesson, print one row each
#   make netlab        (root) a lesson's server and client in two network
#                      namespaces, tcpdump between them: scripts/netlab -h;
#                      NETLAB_ARGS="-s reset 02-fork-server" picks the run
#   make bench         every model under the same load: bench/results/
#   make trace LESSON=NN-name   the server under strace while a few clients
#                      talk, drawn thread by thread: build/trace/NN-name/
#                      (scripts/trace -h)
#   make format        reformat with .clang-format; make format-check checks
#   make lint          clang-tidy (.clang-tidy) and cppcheck: scripts/lint
#   make fuzz          libFuzzer over common/'s parsers, FUZZ_SECONDS each
#   make grade LESSON=NN-name DIR=path
#                      grade a student's folder against that lesson's tests
#                      and rubric (ASAN=1: under ASan+UBSan; ONLY=echo,stop:
#                      those rubric lines only): scripts/grade
#   make handout       handout/NN-name/, a student's starting point for
#                      each lesson: scripts/handout
#   make clean         remove everything built
#
# CFLAGS=... adds to the required flags below, it never replaces them.

CC ?= cc
.DEFAULT_GOAL := all
# ONLY="04-select 05-poll" builds just those lessons (with the tests'
# programs), while another lesson is half-written.
LESSONS := $(or $(ONLY),$(patsubst %/,%,$(sort $(wildcard [0-9][0-9]-*/))))

WARNINGS := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2 -Wvla -Wwrite-strings -Wundef \
	-Wpointer-arith -Wimplicit-fallthrough
WERROR ?= -Werror
REQUIRED_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARNINGS) $(WERROR) \
	-Icommon -MMD -MP
ALL_CFLAGS = $(REQUIRED_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)
LDLIBS += -pthread

# Where a build goes. The plain build puts the programs in the lesson
# folders; sanitizer builds mirror the tree under build/<name>/.
BIN_DIR ?= .
OBJ_DIR ?= build/obj

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(OBJ_DIR)/%.o)
obj = $(patsubst %.c,$(OBJ_DIR)/%.o,$(1))

PROGRAMS :=
define lesson_rules
$(1)_SHARED := $$(filter-out $(1)/server.c $(1)/client.c,$$(wildcard $(1)/*.c))
$(BIN_DIR)/$(1)/server: $$(call obj,$(1)/server.c $$($(1)_SHARED) $$($(1)_BORROWS)) $$(COMMON_OBJ)
$(BIN_DIR)/$(1)/client: $$(call obj,$(1)/client.c $$($(1)_SHARED)) $$(COMMON_OBJ)
PROGRAMS += $(BIN_DIR)/$(1)/server $(BIN_DIR)/$(1)/client
endef
# Each lesson stands alone, with one exception: the servers of 08 and 10
# are built on 07's reactor and connection layer, unchanged, so that their
# server.c holds only what the lesson adds (08's queues and workers, 10's
# loops, one per thread; see their lab sheets). They link 07's reactor.c,
# demux_*.c and tcp.c, and see their headers.
08-half-sync-half-async_BORROWS := $(filter-out %/server.c %/client.c,\
	$(wildcard 07-reactor/*.c))
$(OBJ_DIR)/08-half-sync-half-async/server.o: ALL_CFLAGS += -I07-reactor
10-reactor-per-thread_BORROWS := $(filter-out %/server.c %/client.c,\
	$(wildcard 07-reactor/*.c))
$(OBJ_DIR)/10-reactor-per-thread/server.o: ALL_CFLAGS += -I07-reactor
$(foreach l,$(LESSONS),$(eval $(call lesson_rules,$(l))))

# Test programs: the common/ unit tests, built twice -- the second time
# with a 7-byte line buffer so that short inputs reach readline's edges --
# the misbehaving peer the bats tests drive, and the misbehaving server
# that proves echo-bench notices.
UNIT_TESTS := $(BIN_DIR)/build/unit/test_common \
	$(BIN_DIR)/build/unit/test_common_tinybuf
TOOLS := $(BIN_DIR)/build/tools/peer $(BIN_DIR)/build/tools/bad-echo
# A library the tests preload into a server to refuse it io_uring (its
# syscall() fails io_uring_setup with EPERM, as a seccomp filter would):
# tests/tools/no-uring.c. Built without the sanitizers, whose runtimes the
# server brings.
PRELOADS := $(BIN_DIR)/build/tools/no-uring.so
# The benchmark: the load generator, and the chart drawer of bench/run;
# the timeline drawer of scripts/trace (make trace).
BENCH := $(BIN_DIR)/bench/echo-bench $(BIN_DIR)/bench/chart \
	$(BIN_DIR)/bench/timeline

.PHONY: all test check check-unit valgrind tour bench lint format format-check clean test-programs
all: $(PROGRAMS) $(BENCH)
test-programs: $(PROGRAMS) $(UNIT_TESTS) $(TOOLS) $(PRELOADS) $(BENCH)

$(PROGRAMS) $(TOOLS) $(BENCH):
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(OBJ_DIR)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BIN_DIR)/build/unit/test_common: $(OBJ_DIR)/tests/unit/test_common.o \
		$(COMMON_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# The tiny-buffer build compiles io.c and the test again with the flag.
$(OBJ_DIR)/tiny/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DREADLINE_BUFSIZE=7 -c -o $@ $<
$(BIN_DIR)/build/unit/test_common_tinybuf: $(OBJ_DIR)/tiny/tests/unit/test_common.o \
		$(OBJ_DIR)/tiny/common/io.o $(filter-out %/io.o,$(COMMON_OBJ))
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN_DIR)/build/tools/no-uring.so: tests/tools/no-uring.c
	@mkdir -p $(@D)
	$(CC) $(filter-out -MMD -MP,$(REQUIRED_CFLAGS)) $(CFLAGS) -fPIC -shared \
		-o $@ $< -ldl

$(BIN_DIR)/build/tools/peer: $(OBJ_DIR)/tests/tools/peer.o $(COMMON_OBJ)
$(BIN_DIR)/build/tools/bad-echo: $(OBJ_DIR)/tests/tools/bad-echo.o $(COMMON_OBJ)
$(BIN_DIR)/bench/echo-bench: $(OBJ_DIR)/bench/echo-bench.o $(COMMON_OBJ)
$(BIN_DIR)/bench/chart: $(OBJ_DIR)/bench/chart.o $(OBJ_DIR)/bench/svg.o $(COMMON_OBJ)
$(BIN_DIR)/bench/chart: LDLIBS += -lm
$(BIN_DIR)/bench/timeline: $(OBJ_DIR)/bench/timeline.o $(OBJ_DIR)/bench/svg.o $(COMMON_OBJ)
$(BIN_DIR)/bench/timeline: LDLIBS += -lm

test: test-programs
	tests/run

# The lab sheets' marked blocks (tests/README.md); make test runs them too.
.PHONY: doc-test
doc-test: test-programs
	BIN_DIR=$(BIN_DIR) scripts/doc-test

# Sanitizer builds go to their own trees so that they never mix objects
# with the plain build. TSan runs only the lessons that start threads.
# clang is preferred: its UBSan writes reports to the log files that
# tests/run collects, where gcc's combined runtime writes them to stderr.
SAN_CC ?= $(if $(shell command -v clang),clang,$(CC))
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer \
	-include tests/tsan-epoll.h
TSAN_LESSONS = $(sort $(patsubst %/,%,$(dir $(shell grep -l pthread_create \
	$(addsuffix /*.c,$(LESSONS)) 2>/dev/null))))

# The common/ unit tests alone under ASan+UBSan: a minute, for CI, where
# the whole check would not fit (.ci/run).
check-unit:
	$(MAKE) --no-print-directory CC=$(SAN_CC) BIN_DIR=build/asan \
		OBJ_DIR=build/asan/obj SAN_FLAGS="$(ASAN_FLAGS)" \
		build/asan/build/unit/test_common \
		build/asan/build/unit/test_common_tinybuf
	BIN_DIR=build/asan SANITIZER=asan LESSONS=none tests/run

check:
	$(MAKE) --no-print-directory CC=$(SAN_CC) BIN_DIR=build/asan \
		OBJ_DIR=build/asan/obj SAN_FLAGS="$(ASAN_FLAGS)" test-programs
	BIN_DIR=build/asan SANITIZER=asan tests/run
ifneq ($(strip $(TSAN_LESSONS)),)
	$(MAKE) --no-print-directory CC=$(SAN_CC) BIN_DIR=build/tsan \
		OBJ_DIR=build/tsan/obj SAN_FLAGS="$(TSAN_FLAGS)" test-programs
	BIN_DIR=build/tsan SANITIZER=tsan LESSONS="$(TSAN_LESSONS)" \
		NO_UNIT=1 tests/run
else
	@echo "check: no lesson starts threads yet; TSan has nothing to run"
endif
ifneq ($(shell command -v valgrind),)
	$(MAKE) --no-print-directory valgrind
else
	@echo "check: valgrind is not installed; memcheck skipped"
endif

# A smaller run with every server under valgrind's memcheck (tests/run).
valgrind: test-programs
	SANITIZER=valgrind tests/run

tour: all
	scripts/tour

# Two hosts on one machine, and the packets between them (root).
.PHONY: netlab
netlab: all $(TOOLS)
	BIN_DIR=$(BIN_DIR) scripts/netlab $(NETLAB_ARGS)

# The comparison of every model, each beside the bare loop
# (bench/README.md): under 10 minutes on 2 cores; FULL=1 runs the whole
# matrix (10 000 connections, 4 KiB, churn, bulk; about an hour).
bench: all
	FULL=$(FULL) bench/run

# Who blocks where, thread by thread: scripts/trace.
.PHONY: trace
trace: all
	BIN_DIR=$(BIN_DIR) scripts/trace $(LESSON)

lint:
	scripts/lint

FORMAT_FILES = $(wildcard common/*.[ch] */*.c [0-9][0-9]-*/*.h tests/*/*.c bench/*.[ch])
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build handout $(addsuffix /server,$(LESSONS)) $(addsuffix /client,$(LESSONS)) \
		$(BENCH)

# Grading (scripts/grade): the student's folder is built by the script,
# with the flags and borrowed files these print, against common/.
.PHONY: grade handout print-cflags print-asan-cflags print-san-cc print-borrows
grade: test-programs
	scripts/grade $(if $(ASAN),-a) $(if $(ONLY),-l "$(ONLY)") -- "$(LESSON)" "$(DIR)"
handout:
	scripts/handout
print-cflags:
	@echo $(filter-out -MMD -MP -Icommon,$(REQUIRED_CFLAGS) $(CFLAGS))
print-asan-cflags:
	@echo $(filter-out -MMD -MP -Icommon,$(REQUIRED_CFLAGS) $(ASAN_FLAGS) $(CFLAGS))
print-san-cc:
	@echo $(SAN_CC)
# print-borrows LESSON=NN-name: the files of another lesson its server
# links (08's are 07's reactor).
print-borrows:
	@echo $($(LESSON)_BORROWS)

-include $(shell find $(OBJ_DIR) -name '*.d' 2>/dev/null)

# libFuzzer harnesses of common/: make fuzz, make fuzz-build (tests/fuzz/fuzz.mk).
include tests/fuzz/fuzz.mk
