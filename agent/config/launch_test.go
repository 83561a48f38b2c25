package config

import (
	"slices"
	"strings"
	"testing"
)

// TestLaunchSpec loads a run.yaml with a launch: mapping: baton watch reads
// the spec and the run's settings, baton run the same file without a
// complaint, and a bad spec key is named as written.
func TestLaunchSpec(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"run.yaml": `store: s3://bucket/p
run_id: r1
checkpoint_interval: 15m
encryption_key: "` + strings.Repeat("A", 43) + `="
command: [python, train.py, "--lr", "3e-4,1e-4"]
launch:
  provider: [vast, runpod]
  gpu: [RTX 4090]
  image: me/trainer:1
  max_price_per_hour: 0.8
  budget: $40
  env: [AWS_ACCESS_KEY_ID, HF_TOKEN]
`,
		"bad.yaml":  "store: s3://bucket/p\nrun_id: r1\ncommand: [x]\nlaunch:\n  provider: aws\n",
		"typo.yaml": "store: s3://bucket/p\nrun_id: r1\nlaunch:\n  gpus: [H100]\n",
	}
	var w Watch
	if _, err := LoadInto(&w, []string{"--config", "run.yaml"}, nil, readMap(files)); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&w); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.Command, []string{"python", "train.py", "--lr", "3e-4,1e-4"}) || !slices.Equal(w.Provider, []string{"vast", "runpod"}) ||
		w.MaxPrice != 0.8 || w.Budget != 40 || w.GPUCount != 1 || w.Image != "me/trainer:1" || w.Store != "s3://bucket/p" {
		t.Fatalf("watch settings: %+v", w.LaunchSpec)
	}
	env := HostEnv(&w.Config)
	for _, want := range []string{"BATON_STORE=s3://bucket/p", "BATON_RUN_ID=r1", "BATON_CHECKPOINT_INTERVAL=15m0s", "BATON_ENCRYPTION_KEY=" + strings.Repeat("A", 43) + "="} {
		if !slices.Contains(env, want) {
			t.Errorf("HostEnv lacks %s: %q", want, env)
		}
	}
	var run Config
	if _, err := LoadInto(&run, []string{"--config", "run.yaml"}, nil, readMap(files)); err != nil {
		t.Fatalf("baton run on the same file: %v", err)
	}

	var bad Watch
	if _, err := LoadInto(&bad, []string{"--config", "bad.yaml"}, nil, readMap(files)); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&bad); err == nil || !strings.Contains(err.Error(), `bad.yaml:5: launch.provider[0]: "aws": want runpod, vast or local`) {
		t.Errorf("bad provider: %v", err)
	}
	if _, err := LoadInto(&bad, []string{"--config", "typo.yaml"}, nil, readMap(files)); err == nil || !strings.Contains(err.Error(), "typo.yaml:4: launch.gpus: unknown key") {
		t.Errorf("unknown spec key: %v", err)
	}
}
