# Entry points: make build | run | test | bench. See README.md.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
REL_BUILD ?= build-release

.PHONY: build build-asan build-release run test test-normal test-asan fuzz-smoke fuzz bench clean
FUZZ_SECONDS ?= 12

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# -O3 without debug info: it warns where -O2 does not (-Werror); built, not tested
build-release:
	cmake -S . -B $(REL_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(REL_BUILD) -j $(JOBS)

build-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGX_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	$(BUILD)/gexecd

test-normal: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

# Every libFuzzer target for a short fixed time (scripts/fuzz for long runs).
fuzz-smoke:
	./scripts/fuzz $(FUZZ_SECONDS)

fuzz:
	./scripts/fuzz 600

# The whole suite: normal build, sanitizers, then a short fuzzing pass.
test: test-normal test-asan build-release fuzz-smoke

# The C benchmarks, then the HTTP service benchmark (bench/http/run.sh).
bench: build
	@for b in $(BUILD)/bench_*; do [ -x "$$b" ] && "$$b" || exit 1; done
	@bench/http/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(REL_BUILD)
