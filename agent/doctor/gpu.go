package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/batonrun/baton/agent/platform"
	"github.com/batonrun/baton/agent/telemetry/gpu"
)

// GPUs is what doctor needs of the GPU telemetry: what NVML found when it
// was opened, and one sample of every GPU. A *gpu.Sampler is one; if it is
// also an io.Closer, doctor closes it when done.
type GPUs interface {
	Info() gpu.Info
	SampleOnce(ctx context.Context) []gpu.Reading
}

// GPUFacts is what NVML reported.
type GPUFacts struct {
	// Driver is the NVIDIA driver's version, e.g. "550.54.15".
	Driver string `json:"driver"`
	// CUDA is the newest CUDA version the driver supports, e.g. "12.4".
	CUDA string `json:"cuda"`
	// NVML is NVML's version.
	NVML string `json:"nvml"`
	// Devices are the GPUs, by NVML index.
	Devices []GPUDevice `json:"devices"`
}

// GPUDevice is one GPU as NVML found it, with the one sample of it and
// what gpu.Check judged of that sample. The sample is the telemetry's own
// gpu.Reading: in JSON its fields stand beside the GPU's identity, and a
// reading the GPU does not support is absent, as is the whole sample when
// none came in time.
type GPUDevice struct {
	// Index is the GPU's NVML index, as in the check's name gpu.N.
	Index int `json:"index"`
	// UUID, Name and PCIBusID identify the GPU as nvidia-smi does.
	UUID     string `json:"uuid"`
	Name     string `json:"name"`
	PCIBusID string `json:"pci_bus_id"`
	// MemTotalBytes is the GPU's memory.
	MemTotalBytes uint64 `json:"mem_total_bytes"`
	// Reading is the sample (memory in use, utilisation, temperature,
	// power, ECC errors, the row remapper's state...); nil when none came.
	*gpu.Reading
	// Problems are what gpu.Check found; empty when healthy.
	Problems []gpu.Problem `json:"problems"`
	// SampleErrors are the queries of the sample that failed, as
	// "query: error" (the sample's Errors, under the name schema 1 gave
	// them).
	SampleErrors []string `json:"sample_errors,omitempty"`
}

// checkGPUs opens NVML, samples every GPU once and judges each. The first
// check ("gpu") says what NVML found; one check per GPU ("gpu.N") says how
// it is. With no driver the first check warns, unless RequireGPU makes it
// required. An unhealthy GPU fails its check, which is required when
// RequireGPU is set or baton run's --gpu-check is on (it would refuse the
// GPU).
func checkGPUs(ctx context.Context, o Options, desc platform.Description) ([]Check, *GPUFacts) {
	ctx, cancel := context.WithTimeout(ctx, gpuTimeout)
	defer cancel()
	summary := Check{Name: "gpu", Required: o.RequireGPU, Status: OK}
	// bad is the summary when NVML gives no GPU: a warning, or a failure when
	// a GPU is required.
	bad := func(reason, hint string) []Check {
		summary.Status, summary.Reason, summary.Hint = Warn, reason, hint
		if o.RequireGPU {
			summary.Status = Fail
			if hint == noDriverHint {
				summary.Hint = "--require-gpu: start the container with its GPUs and the NVIDIA runtime (docker run --gpus all)"
			}
		}
		if missing := desc.GPUCount > 0 && o.Config.GPUCheck; missing {
			// baton run refuses such a host (77): say so.
			summary.Status, summary.Required = Fail, true
			summary.Reason += fmt.Sprintf("; the platform promised %s", plural(desc.GPUCount, "GPU"))
			summary.Hint = "baton run refuses to train here (exit 77): the GPUs went missing (a restarted RunPod pod can come up with none: " +
				"stop it and start it again, or move the run); --gpu-check=false runs anyway"
		}
		return []Check{summary}
	}
	if o.OpenGPUs == nil {
		return bad("no NVIDIA driver: GPU telemetry off", noDriverHint), nil
	}
	g, err := openGPUs(ctx, o.OpenGPUs)
	switch {
	case errors.Is(err, gpu.ErrNoDriver):
		return bad("no NVIDIA driver: GPU telemetry off", noDriverHint), nil
	case err != nil:
		return bad("NVML: "+oneLine(err.Error()), "check the driver (nvidia-smi) and that the container sees it"), nil
	}
	if c, ok := g.(io.Closer); ok {
		defer c.Close()
	}
	info := g.Info()
	facts := &GPUFacts{Driver: info.Driver, CUDA: info.CUDA, NVML: info.NVML, Devices: []GPUDevice{}}
	if len(info.Devices) == 0 {
		return bad(fmt.Sprintf("driver %s but no GPU visible", orUnknownVersion(info.Driver)),
			"start the container with the GPUs (--gpus all, or the platform's GPU count)"), facts
	}
	readings := g.SampleOnce(ctx)
	byIndex := map[int]gpu.Reading{}
	for _, r := range readings {
		byIndex[r.Index] = r
	}
	summary.Reason = fmt.Sprintf("%s, driver %s, CUDA %s", gpuNames(info.Devices), orUnknownVersion(info.Driver), orUnknownVersion(info.CUDA))
	if desc.GPUCount > 0 && desc.GPUCount != len(info.Devices) {
		summary.Status = Warn
		summary.Reason += fmt.Sprintf("; the platform says %s", plural(desc.GPUCount, "GPU"))
		summary.Hint = "NVML sees another number of GPUs than the platform gave: check NVIDIA_VISIBLE_DEVICES and the template's GPU count"
		if len(info.Devices) < desc.GPUCount && o.Config.GPUCheck {
			summary.Status, summary.Required = Fail, true
			summary.Hint = "baton run refuses to train on fewer GPUs than the platform promised (exit 77); --gpu-check=false runs anyway"
		}
	}
	if readings == nil {
		summary.Status = Warn
		summary.Reason += fmt.Sprintf("; no sample within %s", gpuTimeout)
		summary.Hint = "NVML answers slowly or not at all: check nvidia-smi"
	}
	checks := []Check{summary}
	var unhealthy []string
	for _, d := range info.Devices {
		r, sampled := byIndex[d.Index]
		c, dev := checkDevice(o, d, r, sampled && readings != nil)
		checks = append(checks, c)
		facts.Devices = append(facts.Devices, dev)
		if c.Status == Fail {
			unhealthy = append(unhealthy, c.Name)
		}
	}
	if len(unhealthy) > 0 {
		checks[0].Reason += "; unhealthy: " + strings.Join(unhealthy, ", ")
	}
	return checks, facts
}

// gpuTimeout is GPUTimeout; tests shorten it.
var gpuTimeout = GPUTimeout

const noDriverHint = "fine on a machine without a GPU; on a GPU machine, run the container with the NVIDIA runtime (docker run --gpus all)"

// openGPUs calls open under ctx: NVML's Init may hang on a wedged driver.
// What a late open returns is closed.
func openGPUs(ctx context.Context, open func(context.Context) (GPUs, error)) (GPUs, error) {
	type result struct {
		g   GPUs
		err error
	}
	done := make(chan result, 1)
	go func() {
		g, err := open(ctx)
		done <- result{g, err}
	}()
	select {
	case r := <-done:
		return r.g, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil {
				if c, ok := r.g.(io.Closer); ok {
					c.Close()
				}
			}
		}()
		return nil, fmt.Errorf("no answer within %s: %w", gpuTimeout, ctx.Err())
	}
}

// checkDevice judges one GPU from its reading.
func checkDevice(o Options, d gpu.Device, r gpu.Reading, sampled bool) (Check, GPUDevice) {
	dev := GPUDevice{Index: d.Index, UUID: d.UUID, Name: d.Name, PCIBusID: d.PCIBusID, MemTotalBytes: d.MemTotal, Problems: []gpu.Problem{}}
	c := Check{Name: fmt.Sprintf("gpu.%d", d.Index), Status: OK, Required: o.RequireGPU || o.Config.GPUCheck}
	name := d.Name
	if name == "" {
		name = "GPU " + d.UUID
	}
	if !sampled {
		c.Status, c.Reason = Warn, name+": no reading"
		c.Hint = "NVML did not answer for this GPU in time: check nvidia-smi"
		return c, dev
	}
	dev.Reading, dev.SampleErrors = &r, r.Errors
	var fatal, other []string
	for _, p := range gpu.Check(r) {
		dev.Problems = append(dev.Problems, p)
		if p.Fatal {
			fatal = append(fatal, p.Detail)
		} else {
			other = append(other, p.Detail)
		}
	}
	switch {
	case len(fatal) > 0:
		c.Status = Fail
		c.Reason = name + ": " + strings.Join(fatal, "; ")
		c.Hint = "this GPU needs a reset: baton run refuses it (exit 77 with --gpu-check); move the run to another host"
	case len(other) > 0:
		c.Status = Warn
		c.Reason = name + ": " + strings.Join(other, "; ")
		c.Hint = "the GPU runs slower than it should (cooling or power): training goes on, but slowly"
	default:
		c.Reason = name + ": " + deviceSummary(d, r) + ", healthy"
	}
	return c, dev
}

// deviceSummary writes the readings of a healthy GPU: memory, temperature,
// power, utilisation; what the GPU does not report is left out.
func deviceSummary(d gpu.Device, r gpu.Reading) string {
	var parts []string
	if r.MemUsed != nil && d.MemTotal > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d MiB used", *r.MemUsed>>20, d.MemTotal>>20))
	} else if d.MemTotal > 0 {
		parts = append(parts, fmt.Sprintf("%d MiB", d.MemTotal>>20))
	}
	if r.TempC != nil {
		parts = append(parts, fmt.Sprintf("%d°C", *r.TempC))
	}
	if r.PowerW != nil {
		parts = append(parts, fmt.Sprintf("%.0f W", *r.PowerW))
	}
	if r.UtilGPU != nil {
		parts = append(parts, fmt.Sprintf("%d%% busy", *r.UtilGPU))
	}
	if len(parts) == 0 {
		return "no readings"
	}
	return strings.Join(parts, ", ")
}

// gpuNames writes the GPUs' models: "8 x NVIDIA H100 80GB HBM3", or each
// model's count when they differ.
func gpuNames(devs []gpu.Device) string {
	var order []string
	count := map[string]int{}
	for _, d := range devs {
		name := d.Name
		if name == "" {
			name = "unknown GPU"
		}
		if count[name] == 0 {
			order = append(order, name)
		}
		count[name]++
	}
	parts := make([]string, len(order))
	for i, n := range order {
		parts[i] = fmt.Sprintf("%d x %s", count[n], n)
	}
	return strings.Join(parts, " + ")
}

func orUnknownVersion(v string) string {
	if v == "" {
		return "(version unknown)"
	}
	return v
}
