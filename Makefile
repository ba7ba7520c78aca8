# unetvae — build and test.  `make test` is the test command (README); CI also runs `make test-asan`.
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -std=c99 -Wall -Wextra -pedantic
OMP     ?= -fopenmp
LDLIBS   = -lm
BUILD    = build

TEST_SRC = tests/test_main.c tests/test_core.c tests/test_grad.c tests/test_optim.c \
           tests/test_ckpt.c tests/test_parity.c
DEPS     = unetvae.h tests/test.h

.PHONY: all test test-asan check-header clean

EXAMPLES = $(patsubst examples/%.c,$(BUILD)/%,$(wildcard examples/*.c))

all: $(BUILD)/test_unetvae $(EXAMPLES)

$(BUILD)/%: examples/%.c unetvae.h
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $< $(LDLIBS) -o $@

$(BUILD)/test_unetvae: $(TEST_SRC) $(DEPS)
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(TEST_SRC) $(LDLIBS) -o $@

$(BUILD)/test_unetvae_asan: $(TEST_SRC) $(DEPS)
	@mkdir -p $(BUILD)
	$(CC) $(WARN) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	    $(OMP) $(TEST_SRC) $(LDLIBS) -o $@

# The header must compile warning-free as C99 under gcc and clang, and its declarations as C++.
check-header:
	@mkdir -p $(BUILD)
	@printf '#define UNETVAE_IMPLEMENTATION\n#include "../unetvae.h"\n' > $(BUILD)/impl.c
	gcc $(WARN) -Werror -fopenmp -c $(BUILD)/impl.c -o $(BUILD)/impl_gcc.o
	gcc $(WARN) -Werror -c $(BUILD)/impl.c -o $(BUILD)/impl_gcc_noomp.o
	@if command -v clang >/dev/null; then echo "clang $(WARN) -Werror"; clang $(WARN) -Werror -c $(BUILD)/impl.c -o $(BUILD)/impl_clang.o; \
	 else echo "SKIP clang check: clang is not installed"; fi
	g++ -x c++ -Wall -Wextra -Werror -fsyntax-only unetvae.h
	@echo "header checks passed"

test: check-header $(BUILD)/test_unetvae
	OMP_NUM_THREADS=2 ./$(BUILD)/test_unetvae

test-asan: $(BUILD)/test_unetvae_asan
	OMP_NUM_THREADS=2 ./$(BUILD)/test_unetvae_asan

clean:
	rm -rf $(BUILD)
