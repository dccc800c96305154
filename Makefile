# cfx: counterfactual explanations for image classifiers. Plain GNU make.
#   make            build build/libcfx.a and build/cfx
#   make test       install missing Debian packages, build, check the layers, run every test
#   make mpi        build/cfx-mpi, the CLI for mpirun (Open MPI)
#   make demo       install missing Debian packages, build, run the demo on built-in data
#   make bench      benchmarks against PyTorch (never part of the tests)
#   make asan       tests under AddressSanitizer and UBSan
#   make memcheck   tests under valgrind
#   make fuzz       every libFuzzer target of fuzz/ for FUZZ_SECONDS each (clang, ASan + UBSan)
#   make install    PREFIX=/usr/local

PREFIX    ?= /usr/local
BUILD     ?= build
CC        ?= cc
OPT       ?= -O3 -fno-math-errno -fno-trapping-math
PKGS      := openblas libcjson libprotobuf-c
PKGS      += zlib lapacke libcurl
# -Wno-missing-field-initializers: op tables (cfx_op_def) leave trailing optional fields out.
CFLAGS    += -std=c11 $(OPT) -g -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wno-unused-parameter -Wno-missing-field-initializers -fopenmp -MMD -MP \
             -D_GNU_SOURCE -Iinclude -Isrc -I$(BUILD)/gen
CFLAGS    += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl, OpenBLAS and LAPACKE give headers only: src/explain/http.c and src/engine/blas.c open
# them with dlopen when first needed, so that a process does not pay for loading them at start.
DLOPENED  := libcurl openblas lapacke
LDLIBS    += $(shell pkg-config --libs $(filter-out $(DLOPENED),$(PKGS)) 2>/dev/null) -ldnnl -lm \
             -lpthread

LIB_SRC   := $(sort $(wildcard src/*.c src/*/*.c src/*/*/*.c))
CLI_SRC   := $(sort $(wildcard cli/*.c))
TEST_SRC  := $(sort $(wildcard tests/*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps layers test demo bench asan memcheck fuzz clean install format mpi

all: $(BUILD)/cfx $(BUILD)/cfx_tests

deps:
	@scripts/deps.sh build data

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# ONNX's schema (src/engine/onnx/onnx.proto) compiles to C with protoc-c at build time; the
# ONNX modules include the generated header and wait for it, so a fresh clone builds with -j.
ONNX_DIR  := src/engine/onnx
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: $(ONNX_DIR)/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=$(ONNX_DIR) --c_out=$(BUILD)/gen $<
$(BUILD)/gen/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c
	$(CC) $(CFLAGS) -Wno-pedantic -c $< -o $@
$(filter $(BUILD)/$(ONNX_DIR)/%,$(LIB_OBJ)): $(BUILD)/gen/onnx.pb-c.h

# The usage example is kept once, as the indented lines of include/cfx.h's opening comment;
# tests/test_example.c includes them from here, so editing the example changes the test.
$(BUILD)/gen/header_example.inc: include/cfx.h
	@mkdir -p $(BUILD)/gen
	awk 'NR > 1 && /\*\//{exit} sub(/^ \*     /, "") {print "#line " NR " \"" FILENAME "\""; print}' \
	    $< > $@.tmp && test -s $@.tmp && mv $@.tmp $@
$(BUILD)/tests/test_example.o: $(BUILD)/gen/header_example.inc

$(BUILD)/libcfx.a: $(LIB_OBJ) $(BUILD)/gen/onnx.pb-c.o
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/cfx: $(CLI_OBJ) $(BUILD)/libcfx.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/cfx_tests: $(TEST_OBJ) $(BUILD)/libcfx.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libcfx.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# The layer check: an #include or a linked symbol that points up the folder order of
# scripts/layers.py fails, naming the edge.
layers: all
	/usr/bin/python3 scripts/layers.py --objects $(BUILD)

# The tests run single-threaded (timing-free, deterministic); CFX_TEST_ARGS picks suites.
test:
	@scripts/deps.sh test
	$(MAKE) layers $(BUILD)/cfx-mpi
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BUILD)/cfx_tests $(CFX_TEST_ARGS)

# The MPI build (issue 23): cli/ again with mpicc and -DCFX_MPI, into $(BUILD)/mpi/, linked to
# the same libcfx.a; cli/mpi.c holds everything that differs.
MPICC     ?= mpicc
MPI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/mpi/%.o)
mpi:
	@scripts/deps.sh mpi
	$(MAKE) $(BUILD)/cfx-mpi

$(BUILD)/mpi/%.o: %.c
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS) -DCFX_MPI -c $< -o $@

$(BUILD)/cfx-mpi: $(MPI_OBJ) $(BUILD)/libcfx.a
	$(MPICC) $(CFLAGS) $^ -o $@ $(LDLIBS)

demo:
	@scripts/deps.sh build data
	$(MAKE) $(BUILD)/cfx
	scripts/demo.sh $(BUILD)/cfx

bench:
	@scripts/deps.sh bench
	$(MAKE) $(BENCH_BIN) $(BUILD)/cfx
	scripts/bench.sh $(BUILD)

asan:
	@scripts/deps.sh test
	$(MAKE) BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" build-asan/cfx_tests build-asan/cfx
	ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 CFX_TEST_FAST=1 \
	    build-asan/cfx_tests $(CFX_TEST_ARGS)

# Each test in its own valgrind, MEMCHECK_JOBS at a time (scripts/memcheck.sh); logs in
# $(BUILD)/memcheck/.
MEMCHECK_JOBS ?= 2
memcheck: all
	@scripts/deps.sh test
	scripts/memcheck.sh $(BUILD) $(MEMCHECK_JOBS) $(CFX_TEST_ARGS)

# Fuzzing (README "Fuzzing"): the library built by clang with libFuzzer's coverage and the
# sanitizers into build-fuzz/, one program per parser, seeds written by cfx itself
# (fuzz/seeds.sh), then each target for FUZZ_SECONDS; any crash, leak or UB fails the run.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(sort $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c)))
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=undefined
fuzz:
	@scripts/deps.sh fuzz
	$(MAKE) $(BUILD)/cfx
	$(MAKE) BUILD=build-fuzz CC=clang-14 \
	    OPT="-O1 -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	    $(FUZZ_TARGETS:%=build-fuzz/fuzz/%)
	fuzz/seeds.sh $(BUILD)/cfx build-fuzz
	fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

$(BUILD)/fuzz/%: fuzz/fuzz_%.c fuzz/fuzz.h $(BUILD)/libcfx.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $< $(BUILD)/libcfx.a -o $@ $(LDLIBS)

install: $(BUILD)/cfx $(BUILD)/libcfx.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BUILD)/cfx $(DESTDIR)$(PREFIX)/bin/cfx
	install -m 644 $(BUILD)/libcfx.a $(DESTDIR)$(PREFIX)/lib/libcfx.a
	install -m 644 include/cfx.h $(DESTDIR)$(PREFIX)/include/cfx.h
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig
	printf 'prefix=%s\nincludedir=$${prefix}/include\nlibdir=$${prefix}/lib\n\nName: cfx\nDescription: counterfactual explanations for image classifiers\nVersion: %s\nCflags: -I$${includedir}\nLibs: -L$${libdir} -lcfx -fopenmp\nLibs.private: %s\n' \
	    '$(PREFIX)' "$$(sed -n 's/^#define CFX_VERSION "\(.*\)"/\1/p' include/cfx.h)" '$(LDLIBS)' \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/cfx.pc

format:
	clang-format -i include/*.h $(shell find src -name '*.[ch]') cli/*.c cli/*.h tests/*.c tests/*.h bench/*.c fuzz/*.c fuzz/*.h

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/gen/onnx.pb-c.d $(MPI_OBJ:.o=.d)
-include $(wildcard $(BUILD)/fuzz/*.d)
