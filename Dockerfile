# Builds the baton binary and ships it alone in a tiny final stage that other
# images copy from:
#
#   docker build -t baton --build-arg VERSION=$(git describe --always --dirty) .
#   # in another Dockerfile:
#   COPY --from=baton /baton /usr/local/bin/baton
#
# The binary is linked with cgo against glibc (go-nvml, the GPU library,
# needs cgo and the dynamic loader), so the image it is copied into needs
# glibc 2.34 or newer: Debian 12, Ubuntu 22.04, RHEL 9 and the CUDA and
# PyTorch images built on them. It does not run on Alpine (musl) nor on
# Ubuntu 20.04 (glibc 2.31). A static build (-extldflags '-static ...') was
# tried and rejected: it links, but go-nvml resolves the NVML functions
# through the dynamic linker at run time, and a static binary crashes
# (SIGSEGV at address 0 in nvmlInit_v2) on the first call on a host that has
# the NVIDIA driver, i.e. on every GPU host.
#
# The base images are build arguments so that the image can be built from a
# local mirror or a locally made base where public registries are out of
# reach (baton's own tests build it on a debootstrapped Debian).
ARG GO_IMAGE=golang:1.26-bookworm
ARG FINAL_IMAGE=scratch

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# scripts/build.sh builds with the settings every build needs
# (internal/buildflags/flags.env: cgo, NVML's symbols bound on first use, so
# baton starts on hosts without the NVIDIA driver, as go-nvml's maintainers
# advise). The version is stamped into main.version (cmd/baton/version.go);
# the build context holds no .git (.dockerignore), hence -buildvcs=false.
RUN GOFLAGS="-trimpath -buildvcs=false" scripts/build.sh /baton -s -w -X main.version=${VERSION} \
 && /baton version

# Only the binary: this stage is meant for COPY --from, not to be run.
FROM ${FINAL_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="baton" \
      org.opencontainers.image.description="baton binary, for COPY --from=baton /baton /usr/local/bin/baton (needs glibc >= 2.34)" \
      org.opencontainers.image.source="https://github.com/batonrun/baton" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /baton /baton
