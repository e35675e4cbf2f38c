# tests/fuzz/fuzz.mk -- libFuzzer harnesses for the parsers of common/,
# included at the end of the top Makefile. They need clang with libFuzzer.
#
#   make fuzz-build              build them into build/fuzz/
#   make fuzz                    build, then run each for FUZZ_SECONDS
#                                seconds (default 20)
#   make fuzz FUZZ_OPTIONAL=1    the same, but with no clang or no libFuzzer
#                                it says so and succeeds instead of failing
#   make -k fuzz                 run every harness even after one fails
#
# Each harness keeps what it finds in a working corpus of its own,
# build/fuzz/corpus/<harness>, and reads the seeds in tests/fuzz/corpus/
# as well. A crash, a sanitizer report, a leak or an input that takes more
# than 10 s fails the run; the input is saved as
# build/fuzz/crashes/<harness>-crash-<sha1> (or -timeout-, -leak-), and
#     build/fuzz/<harness> build/fuzz/crashes/<file>
# runs it again. The whole output of a run is in build/fuzz/<harness>.log.
#
# Everything, common/ included, is compiled again under build/fuzz/obj, so
# that instrumented objects never mix with the other builds.

# The top Makefile may include this file and be given it with -f as well.
ifndef FUZZ_MAKEFILES
FUZZ_MAKEFILES := $(sort $(firstword $(MAKEFILE_LIST)) \
	$(lastword $(MAKEFILE_LIST)))

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 20
FUZZ_DIR := build/fuzz
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
# The suite's warnings (the top Makefile's WARNINGS and WERROR) and the
# user's CFLAGS, as for every other build.
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 $(FUZZ_SAN) -Icommon -MMD -MP \
	$(WARNINGS) $(WERROR) $(CFLAGS)

FUZZ_HARNESSES := fuzz_readline fuzz_readline_tinybuf fuzz_conn fuzz_number \
	fuzz_net
FUZZ_BINS := $(addprefix $(FUZZ_DIR)/,$(FUZZ_HARNESSES))
FUZZ_COMMON_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(wildcard common/*.c))

.PHONY: fuzz-build fuzz fuzz-run
fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

# The readline harness, built a second time with a 7-byte line buffer (and
# io.c with it), as the unit tests are: short inputs then cross refills.
$(FUZZ_DIR)/obj/tiny/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DREADLINE_BUFSIZE=7 -c -o $@ $<

$(FUZZ_DIR)/fuzz_readline: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_readline.o \
	$(FUZZ_COMMON_OBJ)
$(FUZZ_DIR)/fuzz_readline_tinybuf: \
	$(FUZZ_DIR)/obj/tiny/tests/fuzz/fuzz_readline.o \
	$(FUZZ_DIR)/obj/tiny/common/io.o $(filter-out %/io.o,$(FUZZ_COMMON_OBJ))
$(FUZZ_DIR)/fuzz_conn: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_conn.o \
	$(FUZZ_COMMON_OBJ)
$(FUZZ_DIR)/fuzz_number: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_number.o \
	$(FUZZ_COMMON_OBJ)
$(FUZZ_DIR)/fuzz_net: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_net.o $(FUZZ_COMMON_OBJ)

$(FUZZ_BINS):
	$(FUZZ_CC) $(FUZZ_SAN) $(LDFLAGS) -o $@ $^

# What each harness reads besides its working corpus, and its own flags:
# inputs long enough to cross READLINE_BUFSIZE for readline, and 256 steps
# of two bytes and a header byte for conn.
FUZZ_SEEDS_fuzz_readline := tests/fuzz/corpus/fuzz_readline
FUZZ_SEEDS_fuzz_readline_tinybuf := tests/fuzz/corpus/fuzz_readline
FUZZ_SEEDS_fuzz_conn := tests/fuzz/corpus/fuzz_conn
FUZZ_SEEDS_fuzz_number := tests/fuzz/corpus/fuzz_number
FUZZ_SEEDS_fuzz_net := tests/fuzz/corpus/fuzz_net
FUZZ_ARGS_fuzz_readline := -max_len=16384
FUZZ_ARGS_fuzz_conn := -max_len=513

# Can FUZZ_CC build and link a fuzz target? Tried before anything is built,
# so that a missing clang or libFuzzer is one clear message.
FUZZ_PROBE = mkdir -p $(FUZZ_DIR) && \
	printf '%s\n' 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);' \
	'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)' \
	'{ return d == 0 && n > 0; }' | \
	$(FUZZ_CC) $(FUZZ_SAN) -x c -o $(FUZZ_DIR)/probe - \
	>$(FUZZ_DIR)/probe.log 2>&1

fuzz:
	@if ! { $(FUZZ_PROBE); }; then \
	    echo "fuzz: '$(FUZZ_CC)' cannot link a program with libFuzzer," \
	        "ASan and UBSan (see $(FUZZ_DIR)/probe.log): install clang" \
	        "(Debian: apt-get install clang) or set FUZZ_CC."; \
	    if [ "$(FUZZ_OPTIONAL)" = 1 ]; then \
	        echo "fuzz: skipped (FUZZ_OPTIONAL=1)"; exit 0; \
	    fi; \
	    exit 1; \
	fi; \
	$(MAKE) --no-print-directory $(addprefix -f ,$(FUZZ_MAKEFILES)) fuzz-run

FUZZ_RUNS := $(addprefix fuzz-run-,$(FUZZ_HARNESSES))
.PHONY: $(FUZZ_RUNS)
fuzz-run: $(FUZZ_RUNS)

# The report in a failed run's log: from the first line that says what
# went wrong, without ASan's map of shadow bytes; the log's end if none.
FUZZ_REPORT = sed -n '/check failed\|ERROR: \|runtime error:/,$$p' $(1) | \
	sed '/^Shadow bytes around/,/^==[0-9]*==ABORTING/d' | head -n 60 | \
	grep . || tail -n 40 $(1)

# One harness: libFuzzer's output goes to its log; the summary is printed,
# and on failure the report. Every harness is built before any runs, so
# that a build error comes first.
$(FUZZ_RUNS): fuzz-run-%: $(FUZZ_BINS)
	@mkdir -p $(FUZZ_DIR)/corpus/$* $(FUZZ_DIR)/crashes
	@echo "fuzz: $* for $(FUZZ_SECONDS) s"
	@if ! $(FUZZ_DIR)/$* -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crashes/$*- \
	        $(FUZZ_ARGS_$*) $(FUZZ_DIR)/corpus/$* $(FUZZ_SEEDS_$*) \
	        >$(FUZZ_DIR)/$*.log 2>&1; then \
	    $(call FUZZ_REPORT,$(FUZZ_DIR)/$*.log); \
	    echo "fuzz: $* FAILED; the input is in $(FUZZ_DIR)/crashes/," \
	        "the whole output in $(FUZZ_DIR)/$*.log"; \
	    exit 1; \
	fi
	@awk -v h=$* '/^#[0-9]+[ \t]+DONE/ { sub(/^#[0-9]+[ \t]+DONE[ \t]+/, ""); \
	        done = $$0 } /^Done [0-9]+ runs/ { runs = $$2 } \
	    END { print "fuzz: " h " passed: " runs " runs, " done }' \
	    $(FUZZ_DIR)/$*.log

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
endif
