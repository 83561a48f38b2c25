# One way to build, test and measure baton. The settings every build needs
# (cgo, NVML bound lazily) live in internal/buildflags/flags.env only; these
# targets go through the scripts that read it, which also run without make
# (the README's commands and CI call scripts/test.sh directly).
#
#   make build                  bin/baton (VERSION=v1.2.3 stamps its version)
#   make test                   the whole suite: scripts/test.sh (ARGS go to go test)
#   make images                 docker build of the root Dockerfile, images/pytorch and images/slim
#   make bench                  the benchmarks against a local versitygw (BENCH=sync runs one)
#   make release VERSION=1.2.3  dist/: the linux/amd64 and linux/arm64 archives, install.sh,
#                               SHA256SUMS (scripts/release.sh; docs/release.md)

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BENCH ?= checkpoint sync scale manyfiles overhead cpu-steal
DOCKER ?= docker
# images/slim's base (empty: its default, a CUDA image); any with glibc >= 2.34.
SLIM_BASE ?=

.PHONY: build test images bench release

build:
	scripts/build.sh bin/baton -X main.version=$(VERSION)

test:
	scripts/test.sh $(ARGS)

images:
	$(DOCKER) build -t baton --build-arg VERSION=$(VERSION) .
	$(DOCKER) build -t baton-pytorch -f images/pytorch/Dockerfile .
	$(DOCKER) build -t baton-slim -f images/slim/Dockerfile $(if $(SLIM_BASE),--build-arg BASE_IMAGE=$(SLIM_BASE)) .

bench:
	set -e; for b in $(BENCH); do scripts/bench-$$b.sh; done

release:
	scripts/release.sh $(VERSION) dist
