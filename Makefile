# berth: make build | make demo | make test
GO ?= go
BIN := bin

.PHONY: build images demo test check bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/berth-agent ./cmd/berth-agent
	$(GO) build -trimpath -o $(BIN)/berth ./cmd/berth

# Base images for the demo and the tests, made locally (no registry needed).
images:
	scripts/test-images.sh all

# Build, make sure a base image exists, then drive one sandbox end to end.
demo: build images
	scripts/demo.sh

# The whole test suite against the real Docker engine; CI runs exactly this.
# One package at a time: the packages share one engine and two cores, and
# timing-sensitive real-engine tests (pids limits, reconciler, bursts) are
# not made to race each other's load.
test: images check
	$(GO) test -count=1 -p 1 ./...

check:
	@test -z "$$(gofmt -l cmd internal)" || { echo "gofmt needed:"; gofmt -l cmd internal; exit 1; }
	$(GO) vet ./...

bench: build images
	bin/berth bench --scenario all

clean:
	rm -rf $(BIN)
