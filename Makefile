# The two commands (see README.md):
#   make run    install what is missing, build Release, start the server with
#               the bundled model
#   make test   install what is missing, build, run every test through ctest
# and a few more for developers: make build, make bench, make format, make clean.

PRESET ?= release
BUILD_DIR := build/$(PRESET)
JOBS ?= 2
RUN_ARGS ?=

.PHONY: run test build deps bench format check-format clean

deps:
	@deploy/install-deps.sh

build: deps
	cmake --preset $(PRESET)
	cmake --build --preset $(PRESET) -j$(JOBS)

test: build
	ctest --preset $(PRESET) -j$(JOBS)

run: build
	$(BUILD_DIR)/model/rnn-eval $(RUN_ARGS)

bench: build
	$(BUILD_DIR)/tests/bench/model_bench --benchmark_repetitions=3 \
	  --benchmark_report_aggregates_only=true

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

check-format:
	git ls-files '*.cc' '*.h' | xargs clang-format --dry-run -Werror

clean:
	rm -rf build
