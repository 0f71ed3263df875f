# LoRA Studio: `make run` sets up and opens the studio, `make test` sets up and runs every test.
# Both install the Debian/Ubuntu packages they need (as root, or through sudo when it is available).

SHELL := /bin/bash
BIN := build/lorastudio
GO ?= go

BUILD_PKGS := gcc pkg-config libopenblas-dev libgl1-mesa-dev xorg-dev
TEST_PKGS := $(BUILD_PKGS) xvfb imagemagick x11-utils
# Packages whose code runs goroutines; they also run under the race detector.
RACE_PKGS := ./dataset/... ./tagger/... ./trainer/... ./ui/...

.PHONY: run test build deps test-deps vet unit race smoke bench bench-run clean

run: deps build
	./$(BIN)

build:
	@mkdir -p build
	$(GO) build -o $(BIN) .

deps:
	@scripts/ensure-packages.sh $(BUILD_PKGS)

test-deps:
	@scripts/ensure-packages.sh $(TEST_PKGS)

test: test-deps vet unit race smoke

vet:
	$(GO) vet ./...

unit:
	$(GO) test -timeout 20m ./...

race:
	$(GO) test -race -timeout 20m $(RACE_PKGS)

smoke: build
	scripts/gui-smoke.sh $(BIN)
	scripts/gui-train-smoke.sh $(BIN)

# The studio sets up OpenBLAS itself (nn.EnsureBLAS); test binaries do not, so
# bench gives them the settings the studio reports running with.
bench: build
	./$(BIN) bench
	env $$(./$(BIN) bench --env 2>/dev/null) \
		$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

# bench-run times a whole headless run (model load, caching, steps, 512 px
# previews) on a full-size random model and reports its peak memory.
bench-run: build
	scripts/bench-run.sh $(BIN) $${RES:-256} $${STEPS:-4}

clean:
	rm -rf build artifacts
