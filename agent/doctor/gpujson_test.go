package doctor

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestGPUFactsJSONKeepsSchema1: the GPU facts, built on the telemetry's own
// gpu.Reading and gpu.Problem, still carry every key schema 1 documents
// (docs/doctor.md) with its meaning, and read back.
func TestGPUFactsJSONKeepsSchema1(t *testing.T) {
	o := baseOptions(t, nil)
	o.OpenGPUs = openMock(newH100s(gpuState{}, gpuState{eccUncorrected: 3}))
	r := Run(t.Context(), o)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		GPU struct {
			Devices []map[string]json.RawMessage `json:"devices"`
		} `json:"gpu"`
	}
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil || len(raw.GPU.Devices) != 2 {
		t.Fatalf("%v: %s", err, buf.String())
	}
	dev := raw.GPU.Devices[1]
	cases := []struct{ key, want string }{
		{"index", "1"}, {"mem_total_bytes", ""}, {"uuid", ""}, {"name", `"NVIDIA H100 80GB HBM3"`}, {"pci_bus_id", ""},
		{"mem_used_bytes", ""}, {"util_gpu_pct", ""}, {"temp_c", ""}, {"power_w", ""},
		{"ecc_volatile_uncorrected", "3"}, {"problems", ""},
	}
	for _, c := range cases {
		v, ok := dev[c.key]
		if !ok {
			t.Errorf("device 1 has no %q: %s", c.key, buf.String())
		} else if c.want != "" && string(v) != c.want {
			t.Errorf("device 1 %q = %s, want %s", c.key, v, c.want)
		}
	}
	var problems []struct {
		Kind  string `json:"kind"`
		Fatal bool   `json:"fatal"`
	}
	if err := json.Unmarshal(dev["problems"], &problems); err != nil || len(problems) != 1 || problems[0].Kind != "ecc_uncorrectable" || !problems[0].Fatal {
		t.Fatalf("problems %s (%v)", dev["problems"], err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if d := back.GPU.Devices[1]; d.Index != 1 || d.Reading == nil || d.ECCVolatileUncorrected == nil || *d.ECCVolatileUncorrected != 3 {
		t.Fatalf("read back %+v", d)
	}
}
