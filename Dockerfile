# Builds the baton binary and ships it alone in a tiny final stage that other
# images copy from:
#
#   COPY --from=baton /baton /usr/local/bin/baton
#
# The base images are build arguments so the images can be built from a local
# mirror or a locally made Debian base where public registries are out of
# reach.
ARG GO_IMAGE=golang:1.26-bookworm
ARG FINAL_IMAGE=scratch

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# cgo is on for go-nvml (GPU telemetry); -z lazy lets baton start on hosts
# without the NVIDIA driver, as go-nvml's maintainers advise.
RUN CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -extldflags=-Wl,-z,lazy" \
    -o /baton ./cmd/baton

# The binary links glibc dynamically: copy it into an image that has one.
FROM ${FINAL_IMAGE}
COPY --from=build /baton /baton
