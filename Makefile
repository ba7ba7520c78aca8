# unetvae — build and test.  `make test` is the test command (README); CI also runs `make test-asan`,
# `make check-cuda-build` and `make test-cuda-emu`. The CPU targets never call nvcc; only cuda,
# test-cuda and check-cuda-build do (test-cuda-emu runs the kernels on the CPU with the C++ compiler).
CC      ?= cc
NVCC    ?= nvcc
# NVCCFLAGS: e.g. -arch=sm_90, machine code for the GPU at hand (bench/gpu_check.sh sets it)
NVCCFLAGS ?=
CFLAGS  ?= -O2 -g
WARN     = -std=c99 -Wall -Wextra -pedantic
OMP     ?= -fopenmp
LDLIBS   = -lm
BUILD    = build

TEST_SRC = tests/test_main.c tests/test_core.c tests/test_grad.c tests/test_optim.c \
           tests/test_ckpt.c tests/test_parity.c tests/test_data.c tests/test_pets.c tests/test_image.c \
           tests/test_unet.c tests/test_cvae.c tests/test_resume.c \
           tests/test_hostile.c
DEPS     = unetvae.h tests/test.h

.PHONY: all test test-examples test-demo demo test-asan check-header clean fuzz fuzz-smoke fuzz-corpus cuda test-cuda check-cuda-build test-cuda-selfcheck test-cuda-emu bench bench-cuda bench-torch bench-vs-torch bench-cuda-vs-torch experiments-unet experiments-cvae

EXAMPLES = $(patsubst examples/%.c,$(BUILD)/%,$(wildcard examples/*.c))

all: $(BUILD)/test_unetvae $(EXAMPLES) $(BUILD)/bench $(BUILD)/layers $(BUILD)/peak

$(BUILD)/%: examples/%.c unetvae.h examples/common.h
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

# `make test`: the header checks, the unit suites (again with the arena's unzeroed floats NaN:
# an op output left partly unwritten fails), the examples as a user runs them (resume, NaN guard,
# bad command lines), the data scripts offline, and the demo on its quick setting.
test: check-header $(BUILD)/test_unetvae $(BUILD)/test_oom test-examples test-scripts test-demo
	OMP_NUM_THREADS=2 ./$(BUILD)/test_unetvae
	OMP_NUM_THREADS=2 ./$(BUILD)/test_unetvae --poison
	OMP_NUM_THREADS=2 ./$(BUILD)/test_oom

test-examples: $(BUILD)/unet_pets $(BUILD)/cvae
	bash tests/test_examples.sh $(BUILD)

# The first run (examples/demo.sh): installs what is missing when root, builds, trains the CVAE on
# Fashion-MNIST and a small UNet, prints the pictures and numbers. CUDA=1: on the GPU.
# DEMO_QUICK=1: tiny settings (test-demo runs it so, and checks the pictures).
CUDA       ?= 0
DEMO_QUICK ?= 0
demo:
	CUDA=$(CUDA) DEMO_QUICK=$(DEMO_QUICK) BUILD=$(BUILD) bash examples/demo.sh

test-demo:
	bash tests/test_demo.sh $(BUILD)

test-asan: $(BUILD)/test_unetvae_asan $(BUILD)/test_oom_asan
	OMP_NUM_THREADS=2 ./$(BUILD)/test_unetvae_asan
	OMP_NUM_THREADS=2 ./$(BUILD)/test_oom_asan

# Out of memory: its own program, as it routes the library's allocator through a failing counter.
$(BUILD)/test_oom: tests/test_oom.c unetvae.h
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $< $(LDLIBS) -o $@

$(BUILD)/test_oom_asan: tests/test_oom.c unetvae.h
	@mkdir -p $(BUILD)
	$(CC) $(WARN) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	    $(OMP) $< $(LDLIBS) -o $@

# ---- fuzzing (libFuzzer; fuzz/README.md) ---------------------------------------------------------
# One harness per reader, built with clang -fsanitize=fuzzer,address,undefined into build/fuzz/.
# The image harness gets smaller image limits, so that a tiny header claiming a huge image is
# refused before stb spends seconds decoding it (the same check, at a lower bound).
FUZZ_CC    ?= clang
FUZZ_TIME  ?= 20
FUZZERS     = idx cifar pets_list pets_image ckpt
FUZZ_BINS   = $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZERS))
FUZZ_FLAGS  = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              -fsanitize-recover=shift-exponent '-DFZ_UBSAN_SUPP="$(CURDIR)/fuzz/ubsan.supp"'
FUZZ_IMG    = -DUVAE_MAX_IMAGE_SIDE=2048 '-DUVAE_MAX_IMAGE_PIXELS=((size_t)1 << 18)'
# exit status 0 when $(FUZZ_CC) can build and link a libFuzzer target
FUZZ_PROBE  = mkdir -p $(BUILD)/fuzz && \
	printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > $(BUILD)/fuzz/probe.c && \
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined $(BUILD)/fuzz/probe.c -o $(BUILD)/fuzz/probe >/dev/null 2>&1

fuzz: $(FUZZ_BINS)

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h fuzz/ubsan.supp unetvae.h
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) $(WARN) $(FUZZ_FLAGS) $(if $(filter %pets_image,$@),$(FUZZ_IMG)) $< $(LDLIBS) -o $@

# Each harness for FUZZ_TIME seconds on a copy of its committed seeds (build/fuzz/corpus-NAME;
# fuzz/corpus/ never grows); any crash, leak, UB report or timeout fails. Without clang's
# libFuzzer: a visible SKIP, exit 0.
fuzz-smoke:
	@if ! ( $(FUZZ_PROBE) ); then echo "SKIP fuzz-smoke: $(FUZZ_CC) cannot build libFuzzer targets (install clang and libclang-rt-dev)"; exit 0; fi; \
	$(MAKE) --no-print-directory fuzz || exit 1; \
	for f in $(FUZZERS); do \
	    rm -rf $(BUILD)/fuzz/corpus-$$f $(BUILD)/fuzz/artifacts-$$f; mkdir -p $(BUILD)/fuzz/corpus-$$f $(BUILD)/fuzz/artifacts-$$f; \
	    cp fuzz/corpus/$$f/* $(BUILD)/fuzz/corpus-$$f/; \
	    echo "fuzz-smoke: fuzz_$$f for $(FUZZ_TIME) s"; \
	    ./$(BUILD)/fuzz/fuzz_$$f -max_total_time=$(FUZZ_TIME) -timeout=10 -print_final_stats=1 \
	        -artifact_prefix=$(BUILD)/fuzz/artifacts-$$f/ $(BUILD)/fuzz/corpus-$$f > $(BUILD)/fuzz/log-$$f.txt 2>&1; rc=$$?; \
	    grep -E '^stat::number_of_executed_units|^Done' $(BUILD)/fuzz/log-$$f.txt; \
	    if [ $$rc -ne 0 ]; then tail -n 40 $(BUILD)/fuzz/log-$$f.txt; echo "fuzz-smoke FAILED: fuzz_$$f (exit $$rc; input in $(BUILD)/fuzz/artifacts-$$f/)"; exit 1; fi; \
	done; \
	echo "fuzz-smoke passed: $(FUZZERS)"

# Regenerate the committed seed corpora (deterministic) with the library's and stb's writers.
fuzz-corpus:
	@mkdir -p $(BUILD)
	$(CC) $(WARN) -O1 fuzz/make_corpus.c $(LDLIBS) -o $(BUILD)/make_corpus
	./$(BUILD)/make_corpus fuzz/corpus

# ---- GPU build (nvcc; unetvae_cuda.cu) -------------------------------------------------------
CUDA_EXAMPLES = $(patsubst examples/%.c,$(BUILD)/%_cuda,$(wildcard examples/*.c))

cuda: $(CUDA_EXAMPLES)

$(BUILD)/%_cuda: examples/%.c unetvae.h examples/common.h unetvae_cuda.cu
	@mkdir -p $(BUILD)
	$(NVCC) -O3 $(NVCCFLAGS) -DUNETVAE_CUDA $< unetvae_cuda.cu $(LDLIBS) -o $@

$(BUILD)/test_cuda: tests/test_cuda.c $(DEPS) unetvae_cuda.cu
	@mkdir -p $(BUILD)
	$(NVCC) -O3 $(NVCCFLAGS) -DUNETVAE_CUDA -Xcompiler -fopenmp tests/test_cuda.c unetvae_cuda.cu $(LDLIBS) -o $@

# GPU vs CPU: every op and loss, a training step of each model, GPU training (needs a GPU).
test-cuda: $(BUILD)/test_cuda
	./$(BUILD)/test_cuda

# For CI machines with nvcc and no GPU: the GPU test runner must build, and must then refuse to
# run with exit status 1 and "no CUDA device". On a machine with a GPU it runs the whole suite
# instead, which must pass. Without nvcc: a visible SKIP.
check-cuda-build:
	@if ! command -v $(NVCC) >/dev/null 2>&1; then echo "SKIP check-cuda-build: nvcc not found"; exit 0; fi; \
	$(MAKE) --no-print-directory $(BUILD)/test_cuda || exit 1; \
	out=$$(./$(BUILD)/test_cuda 2>&1); rc=$$?; \
	printf '%s\n' "$$out" | tail -n 5; \
	if [ $$rc -eq 1 ] && printf '%s\n' "$$out" | head -n 1 | grep -q "^no CUDA device"; then \
	    echo "check-cuda-build passed: build/test_cuda built, and refuses to run without a GPU (exit 1)"; \
	elif [ $$rc -eq 0 ]; then \
	    echo "check-cuda-build passed: a CUDA device is present and build/test_cuda passed"; \
	else \
	    echo "check-cuda-build FAILED: want exit 1 and \"no CUDA device\" (no GPU) or exit 0 (GPU), got exit $$rc"; exit 1; \
	fi

clean:
	rm -rf $(BUILD)

# ---- the CUDA kernels on the CPU, under an emulator (tests/cuemu; no GPU, no nvcc) ---------------
# unetvae_cuda.cu with its <<<...>>> launches rewritten by sed, compiled by the C++ compiler against
# tests/cuemu/cuda_runtime.h (CUDA threads as fibers, barriers and shuffles checked, device memory
# in a registry). test-cuda-emu runs the whole GPU suite (tests/test_cuda.c) and the examples'
# --device cuda path (tests/test_cuemu.sh) that way. It checks the kernels' logic, not a GPU:
# no real concurrency, no device rounding, no speed (see the header's comment).
EMU_CXXFLAGS = -std=c++17 -O2 -g -ffp-contract=off -Wall -Wextra -Wno-unknown-pragmas -Wno-unused-parameter
EMU_SED = -e 's/([A-Za-z_][A-Za-z0-9_]*(<[A-Za-z_, ]+>)?)<<<([^>]*)>>>\(/uvae_emu_launch((\1), uvae_emu_cfg(\3), /g' \
          -e 's/extern __shared__ ([a-z_ ]*[a-z_]) ([a-z_]+)\[\];/\1 *\2 = (\1 *)uvae_emu_dyn_shared();/' \
          -e 's/^([ \t]*__shared__ [^;]*[^A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*)(\[[^;]*\]);/\1\2\3; uvae_emu_shared_fresh(\2, sizeof \2);/'

$(BUILD)/unetvae_cuda_emu.cpp: unetvae_cuda.cu
	@mkdir -p $(BUILD)
	sed -E $(EMU_SED) $< > $@
	@if grep -q '<<<\|extern __shared__' $@ || grep '__shared__' $@ | grep -vq uvae_emu_shared_fresh; then \
	    echo "$@: a launch or __shared__ array the sed rules missed"; rm -f $@; exit 1; fi

$(BUILD)/unetvae_cuda_emu.o: $(BUILD)/unetvae_cuda_emu.cpp unetvae.h tests/cuemu/cuda_runtime.h tests/cuemu/mma.h
	$(CXX) $(EMU_CXXFLAGS) -I tests/cuemu -I . -DUNETVAE_CUDA -c $< -o $@

$(BUILD)/cuemu_selftest.cpp: tests/cuemu/selftest.cu
	@mkdir -p $(BUILD)
	sed -E $(EMU_SED) $< > $@

$(BUILD)/cuemu_selftest: $(BUILD)/cuemu_selftest.cpp tests/cuemu/cuda_runtime.h tests/cuemu/mma.h
	$(CXX) $(EMU_CXXFLAGS) -I tests/cuemu $< -o $@

$(BUILD)/test_cuda_emu: tests/test_cuda.c $(DEPS) $(BUILD)/unetvae_cuda_emu.o
	$(CC) $(WARN) $(CFLAGS) $(OMP) -DUNETVAE_CUDA -DUVT_CUEMU -c $< -o $@.o
	$(CXX) $(OMP) $@.o $(BUILD)/unetvae_cuda_emu.o $(LDLIBS) -o $@

$(BUILD)/%_emu: examples/%.c unetvae.h examples/common.h $(BUILD)/unetvae_cuda_emu.o
	$(CC) $(WARN) $(CFLAGS) $(OMP) -DUNETVAE_CUDA -c $< -o $@.o
	$(CXX) $(OMP) $@.o $(BUILD)/unetvae_cuda_emu.o $(LDLIBS) -o $@

test-cuda-emu: $(BUILD)/cuemu_selftest $(BUILD)/test_cuda_emu $(BUILD)/unet_pets_emu $(BUILD)/cvae_emu $(BUILD)/unet_pets $(BUILD)/cvae
	OMP_NUM_THREADS=2 CUEMU_REPORT=1 ./$(BUILD)/test_cuda_emu
	@out=$$(OMP_NUM_THREADS=2 CUEMU_ORDER=reverse ./$(BUILD)/test_cuda_emu 2>&1); rc=$$?; \
	echo "the GPU suite with blocks, and threads between barriers, in reverse order (CUEMU_ORDER=reverse): $$(printf '%s\n' "$$out" | tail -n 1)"; \
	if [ $$rc -ne 0 ]; then printf '%s\n' "$$out" | grep -i 'fail\|kernel' | head -n 20; exit 1; fi
	@out=$$(CUEMU_DEVICES=0 ./$(BUILD)/test_cuda_emu 2>&1); rc=$$?; \
	if [ $$rc -eq 1 ] && printf '%s\n' "$$out" | head -n 1 | grep -q "^no CUDA device"; then echo "no device: '$$out' (exit 1)"; \
	else echo "FAIL: without a device test_cuda_emu should say \"no CUDA device\" and exit 1; exit $$rc: $$out"; exit 1; fi
	bash tests/test_cuemu.sh $(BUILD)

# The GPU suite's own logic, without a GPU: plain cc, both sides on the CPU (UVT_DEVICE=UVAE_CPU).
# Checks the harness and the device plumbing's CPU path; it says nothing about the CUDA kernels.
test-cuda-selfcheck:
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) $(OMP) -DUVT_DEVICE=UVAE_CPU tests/test_cuda.c $(LDLIBS) -o $(BUILD)/test_cuda_selfcheck
	OMP_NUM_THREADS=2 ./$(BUILD)/test_cuda_selfcheck

# ---- benchmarks and experiments (they report numbers; they are not tests) -------------------------
$(BUILD)/bench: bench/bench.c unetvae.h
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $< $(LDLIBS) -o $@

$(BUILD)/bench_cuda: bench/bench.c unetvae.h unetvae_cuda.cu
	@mkdir -p $(BUILD)
	$(NVCC) -O3 $(NVCCFLAGS) -DUNETVAE_CUDA -Xcompiler -fopenmp $< unetvae_cuda.cu $(LDLIBS) -o $@

$(BUILD)/layers: bench/layers.c unetvae.h
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $< $(LDLIBS) -o $@

$(BUILD)/peak: bench/peak.c
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $< -o $@

# the CPU's fp32 FMA peak, then training and inference images/s per model (OMP_NUM_THREADS, default 2)
bench: $(BUILD)/bench $(BUILD)/peak
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} ./$(BUILD)/peak
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} ./$(BUILD)/bench

bench-cuda: $(BUILD)/bench_cuda
	./$(BUILD)/bench_cuda --device cuda

# the four UNet variants with one recipe, and results.md (see bench/experiments_unet.sh for the settings:
# BIN, DATA, OUT, RECIPE, STUP_ARGS, DICE_LOSS, EVAL, TWIN, DEVICE; the defaults are the README's
# recipe, strided + upsample at 150 epochs, and protocol). Meant for the GPU: make experiments-unet
# BIN=build/unet_pets_cuda DEVICE=cuda
experiments-unet: $(BUILD)/unet_pets
	bash bench/experiments_unet.sh

# the CVAE on MNIST and CIFAR-10 with the README's recipes, and results.md (bench/experiments_cvae.sh:
# BIN, MNIST, CIFAR, OUT, MNIST_ARGS, CIFAR_ARGS, ONLY)
experiments-cvae: $(BUILD)/cvae
	bash bench/experiments_cvae.sh

# the same rows in PyTorch (Debian's python3-torch), for the ratios in the README
bench-torch:
	/usr/bin/python3 bench/torch_bench.py --threads $${OMP_NUM_THREADS:-2}

# both, row by row (PyTorch's row, then ours with its ratio, ours / PyTorch img/s), in ROUNDS rounds
# (default 1), then each row's best of each side: bench/vs_torch.sh (ONLY, THREADS, STEPS, OUT)
bench-vs-torch: $(BUILD)/bench
	BENCH=$(BUILD)/bench bash bench/vs_torch.sh

# the same on the GPU against PyTorch fp32 and TF32 (TORCH_PY: a python3 with a CUDA PyTorch; if
# it fails, our rows still run, without the ratios)
TORCH_PY ?= python3
bench-cuda-vs-torch: $(BUILD)/bench_cuda
	-$(TORCH_PY) bench/torch_bench.py --device cuda --tf32 0 > $(BUILD)/torch_bench_fp32.txt
	-$(TORCH_PY) bench/torch_bench.py --device cuda --tf32 1 > $(BUILD)/torch_bench_tf32.txt
	t=; for f in fp32 tf32; do grep -q " batch " $(BUILD)/torch_bench_$$f.txt && t="$$t --torch $(BUILD)/torch_bench_$$f.txt"; done; \
	./$(BUILD)/bench_cuda --device cuda $$t

# ==== data scripts, install, PyTorch interop (issue 8) ==========================================
# make data                  MNIST, CIFAR-10 and Oxford-IIIT Pet into data/ (DATA_DIR=... elsewhere),
#                            downloaded with sha256 checks by data_scripts/get_*.sh
# make test-scripts          offline tests of those scripts and of make install (tests/test_scripts.sh)
# make install PREFIX=DIR    the header and the CUDA companion into DIR/include, the docs into
#                            DIR/share/doc/unetvae (default PREFIX /usr/local; DESTDIR is honoured)
# make uninstall PREFIX=DIR  removes what install put there
# make interop               our checkpoints loaded into PyTorch twins; outputs compared (tools/interop.py)
.PHONY: data test-scripts install uninstall interop

PREFIX  ?= /usr/local
DOCDIR   = $(DESTDIR)$(PREFIX)/share/doc/unetvae

data:
	bash data_scripts/get_mnist.sh
	bash data_scripts/get_cifar10.sh
	bash data_scripts/get_oxford_pets.sh

test-scripts: $(BUILD)/bench
	BUILD=$(BUILD) bash tests/test_scripts.sh

install:
	install -d "$(DESTDIR)$(PREFIX)/include" "$(DOCDIR)/docs/img"
	install -m 644 unetvae.h unetvae_cuda.cu "$(DESTDIR)$(PREFIX)/include/"
	install -m 644 README.md "$(DOCDIR)/"
	$(if $(wildcard docs/*.md),install -m 644 $(wildcard docs/*.md) "$(DOCDIR)/docs/")
	$(if $(wildcard docs/img/*),install -m 644 $(wildcard docs/img/*) "$(DOCDIR)/docs/img/")

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/include/unetvae.h" "$(DESTDIR)$(PREFIX)/include/unetvae_cuda.cu"
	rm -rf "$(DOCDIR)"

$(BUILD)/interop_dump: tools/interop_dump.c unetvae.h
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $< $(LDLIBS) -o $@

# needs Debian's python3-torch (and numpy); without it a SKIP line, not a failure
interop: $(BUILD)/interop_dump
	@if ! /usr/bin/python3 -c "import torch, numpy" >/dev/null 2>&1; then \
	    echo "SKIP interop: /usr/bin/python3 with torch and numpy not found (apt-get install python3-torch)"; \
	else OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} /usr/bin/python3 tools/interop.py --dump ./$(BUILD)/interop_dump; fi
# ==== end of issue 8 block ========================================================================
