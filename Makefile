# The two commands (see README.md):
#   make run    install what is missing, build Release, start rnn-server with
#               the bundled model on the default ports
#   make test   install what is missing, build, run every test through ctest
# and some for developers:
#   make build           configure and build (PRESET=release|debug|asan|tsan)
#   make sanitizers      ThreadSanitizer and AddressSanitizer runs of the
#                        batcher and model tests
#   make thread-safety   clang -Wthread-safety -Werror build of the libraries
#                        that hold locks (batching, metrics) and their tests
#   make bench           model benchmark (docs/benchmarks.md)
#   make bench-serving   serving benchmarks: in-process client and h2load
#   make loadtest        rnn-loadgen sweep against a fresh server; reports in
#                        build/loadtest/ (LOADTEST_ARGS='--rate=...' to change)
#   make check-container podman: build the image and prove it, bring the
#                        compose stack up, scale out by DNS (deploy/)
#   make format / check-format / clean

PRESET ?= release
BUILD_DIR := build/$(PRESET)
JOBS ?= 2
RUN_ARGS ?=
LOADTEST_ARGS ?=
PYTHON := /usr/bin/python3

.PHONY: run test build deps sanitizers thread-safety bench bench-serving loadtest check-container format check-format clean

deps:
	@deploy/install-deps.sh

build: deps
	cmake --preset $(PRESET)
	cmake --build --preset $(PRESET) -j$(JOBS)

test: build
	ctest --preset $(PRESET) -j$(JOBS)

run: build
	$(BUILD_DIR)/server/rnn-server $(RUN_ARGS)

# The sanitizer builds cover the code without gRPC (batcher, metrics, model
# loader, rnn-loadgen's core), which builds in a minute or two; gRPC's generated code would take
# many more.
sanitizers: deps
	cmake --preset tsan
	cmake --build --preset tsan -j$(JOBS) --target rnn_batching_test rnn_metrics_test rnn_loadgen_core_test
	ctest --preset tsan -R 'Batch|Metrics[.]'
	ctest --preset tsan -L loadgen_core
	cmake --preset asan
	cmake --build --preset asan -j$(JOBS) --target rnn_batching_test rnn_metrics_test rnn_model_test rnn_loadgen_core_test
	ctest --preset asan -R 'Batch|Metrics[.]|Safetensors|RnnWeights|RnnModel|Golden|Agreement'
	ctest --preset asan -L loadgen_core

# The annotations (server/batching/mutex.h) are checked by clang only; GCC
# ignores them.
thread-safety: deps
	cmake --preset thread-safety
	cmake --build --preset thread-safety -j$(JOBS) --target rnn_batching_test rnn_metrics_test

bench: build
	$(BUILD_DIR)/tests/bench/model_bench --benchmark_repetitions=3 \
	  --benchmark_enable_random_interleaving=true \
	  --benchmark_report_aggregates_only=true

bench-serving: build
	$(BUILD_DIR)/tests/bench/serving_bench
	$(PYTHON) tests/bench/h2load_bench.py $(BUILD_DIR)/server/rnn-server

loadtest: build
	$(PYTHON) tests/bench/loadtest.py $(BUILD_DIR) build/loadtest $(LOADTEST_ARGS)

# Real containers with podman (deploy/setup-podman.sh makes the machine
# ready: podman, runc, a local Debian base image). Needs root.
check-container: build
	deploy/setup-podman.sh
	$(PYTHON) deploy/check-container.py $(BUILD_DIR)
	$(PYTHON) deploy/check-compose.py $(BUILD_DIR)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

check-format:
	git ls-files '*.cc' '*.h' | xargs clang-format --dry-run -Werror

clean:
	rm -rf build
