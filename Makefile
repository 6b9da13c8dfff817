# mnemo: make build | test | bench | run | fuzz | lint
GO          ?= go
BIN         ?= bin/mnemo
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Packages whose tests run under the race detector (they use goroutines).
RACE_PKGS   ?= ./kernels/... ./backend/... ./kvcache/... ./runtime/... ./bench/... ./cmd/...
# Packages whose tests run once per SIMD tier.
TIER_PKGS   ?= ./kernels/... ./backend/cpu/...
TIERS       ?= $(shell $(GO) run ./kernels/internal/tiers 2>/dev/null || echo generic)
FUZZTIME    ?= 20000x
BENCHTIME   ?= 1x

.PHONY: all build test check lint unit race tiers crossbuild bench run fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mnemo

# What CI runs (.ci/run): static checks, the unit tests (race detector on
# concurrent packages), the kernel tests once per SIMD tier, and the builds
# that keep the pure-Go paths compiling.
test: check unit race tiers crossbuild

check: lint

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags noasm ./...
	$(STATICCHECK) ./...
	$(GO) mod tidy -diff

unit:
	$(GO) test -count=1 ./...

race:
	$(GO) test -race -count=1 -short $(RACE_PKGS)

tiers:
	@for t in $(TIERS); do \
	  echo "== MNEMO_KERNELS=$$t"; \
	  MNEMO_KERNELS=$$t $(GO) test -count=1 $(TIER_PKGS) || exit 1; \
	done
	$(GO) test -count=1 -tags noasm $(TIER_PKGS)

crossbuild:
	GOARCH=arm64 $(GO) build ./...
	GOAMD64=v3 $(GO) build ./...
	CGO_ENABLED=0 $(GO) build ./...

# Go benchmarks (benchstat format). BENCH selects, BENCHTIME sets the budget.
BENCH ?= .
bench:
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchtime=$(BENCHTIME) ./...

# The main job on the embedded default: a small synthetic Llama-shaped model
# (random weights, written once by mnemo's own GGUF writer), a short
# generation and the model benchmark on it.
SYNTH ?= .cache/synthetic-small.gguf
run: build
	@mkdir -p $(dir $(SYNTH))
	@[ -f $(SYNTH) ] || ./$(BIN) synth -o $(SYNTH) --size small
	./$(BIN) run $(SYNTH) --prompt "Once upon a time" -n 48 --seed 1
	./$(BIN) bench model $(SYNTH) -p 128 -n 32 --reps 2

# Every fuzz target for a fixed budget each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin

# neff: compile the NKI kernels (kernels/nki) into a NEFF directory with a
# manifest for the neuron backend. Needs the Neuron SDK (>= 2.28) on a
# Trainium host; elsewhere it says so and stops without writing anything.
NEFF_DIR    ?= neff
NEFF_FLAGS  ?= --target trn2
.PHONY: neff
neff:
	@command -v python3 >/dev/null || { echo "make neff: skipped (no python3; needs the Neuron SDK)"; exit 0; }; \
	  cd kernels/nki && python3 build.py --out $(abspath $(NEFF_DIR)) $(NEFF_FLAGS); \
	  s=$$?; if [ $$s -eq 3 ]; then echo "make neff: skipped (no Neuron SDK)"; exit 0; fi; exit $$s
