// Package gpu samples NVIDIA GPU telemetry through NVML, watches the driver's
// XID and ECC events, judges GPU health, and exports the newest readings to
// Prometheus under dcgm-exporter's metric names.
//
// NVML is reached through github.com/NVIDIA/go-nvml behind its nvml.Interface:
// [New] returns the host's library, and tests hand [Open] go-nvml's own mock
// (github.com/NVIDIA/go-nvml/pkg/nvml/mock). On a host without the NVIDIA driver
// [Open] returns an error that matches [ErrNoDriver]; callers say so once and
// carry on without GPU telemetry.
//
// A [Sampler] runs its rounds on the goroutine that calls [Sampler.Run], never on
// the caller's supervision path. Most of a round's cost is GetPcieThroughput,
// which samples for about 20 ms (DESIGN.md measured 24–28 ms for a round of
// nine queries on an H100), so the slow queries run only every
// Options.SlowEvery rounds; [Sampler.SampleCost] reports what a round took.
// [Sampler.Latest] and the Prometheus collector read the newest published round
// and never wait for an NVML call in flight.
//
// # Building
//
// go-nvml needs cgo (with CGO_ENABLED=0 it does not compile). It opens libnvidia-ml.so.1 with dlopen when Init is called
// and links its calls to the NVML symbols as undefined references
// (-Wl,--unresolved-symbols=ignore-in-object-files). A binary bound with
// BIND_NOW (a toolchain that defaults to -z now, or an explicit -z now) fails at
// startup with "symbol lookup error: undefined symbol: nvml..." (exit status
// 127) on every host, with or without a driver. Link with lazy binding (the
// external linker's -z lazy), as go-nvml's maintainers advise; a #cgo line
// may not set it, so it goes into go build's -ldflags. Build with
//
//	make build                # or scripts/build.sh OUTPUT
//
// which take it, and cgo's flags, from internal/buildflags/flags.env, the one
// place that holds them (the tests that build baton use package buildflags).
// Its CGO_CFLAGS only quiets the C compiler's warnings about NVML functions
// that NVML 13 marks deprecated. Setting LD_BIND_NOW=1 in the environment
// defeats lazy binding and makes the binary fail at startup the same way.
package gpu

import "github.com/NVIDIA/go-nvml/pkg/nvml"

// New returns the host's NVML library (libnvidia-ml.so.1, loaded when [Open]
// calls Init). It needs cgo; see the package documentation for how to link.
func New() nvml.Interface { return nvml.New() }
