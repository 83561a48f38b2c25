package config

import (
	"testing"
	"time"

	"github.com/batonrun/baton/agent/platform"
)

// TestStopBudget checks the default grace of every platform (half its
// window), that --grace and --stop-window win, and what is left for the
// final commit.
func TestStopBudget(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		args                 []string
		platform             string
		window, grace, final time.Duration
		documented, graceSet bool
	}{
		{name: "docker", platform: platform.Docker, window: 10 * time.Second, grace: 5 * time.Second, final: 5 * time.Second, documented: true},
		{name: "kubernetes", platform: platform.Kubernetes, window: 30 * time.Second, grace: 15 * time.Second, final: 15 * time.Second, documented: true},
		{name: "runpod", platform: platform.RunPod, window: 5 * time.Second, grace: 2500 * time.Millisecond, final: 2500 * time.Millisecond},
		{name: "vast", platform: platform.Vast, window: 10 * time.Second, grace: 5 * time.Second, final: 5 * time.Second},
		{name: "lambda", platform: platform.Lambda, window: 10 * time.Second, grace: 5 * time.Second, final: 5 * time.Second},
		{name: "local", platform: platform.Local, grace: LocalGrace},
		{name: "unknown platform", platform: "mars", window: 10 * time.Second, grace: 5 * time.Second, final: 5 * time.Second},
		{name: "explicit grace wins", args: []string{"--grace=8s"}, platform: platform.Docker,
			window: 10 * time.Second, grace: 8 * time.Second, final: 2 * time.Second, documented: true, graceSet: true},
		{name: "explicit grace on local", args: []string{"--grace=1m"}, platform: platform.Local, grace: time.Minute, graceSet: true},
		{name: "grace beyond the window leaves nothing", args: []string{"--grace=20s"}, platform: platform.Docker,
			window: 10 * time.Second, grace: 20 * time.Second, documented: true, graceSet: true},
		{name: "stop window given", args: []string{"--stop-window=2m"}, platform: platform.Kubernetes,
			window: 2 * time.Minute, grace: time.Minute, final: time.Minute, documented: true},
		{name: "stop window on local", args: []string{"--stop-window=20s"}, platform: platform.Local,
			window: 20 * time.Second, grace: 10 * time.Second, final: 10 * time.Second, documented: true},
		{name: "both given", args: []string{"--stop-window=60s", "--grace=50s"}, platform: platform.RunPod,
			window: time.Minute, grace: 50 * time.Second, final: 10 * time.Second, documented: true, graceSet: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := load(append(requiredArgs(), tc.args...), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			b := c.StopBudget(tc.platform)
			if b.Window != tc.window || b.Grace != tc.grace || b.FinalCommit != tc.final || b.Documented != tc.documented || b.GraceSet != tc.graceSet {
				t.Errorf("StopBudget(%q) = window %v grace %v final %v documented %v grace set %v; want %v %v %v %v %v",
					tc.platform, b.Window, b.Grace, b.FinalCommit, b.Documented, b.GraceSet, tc.window, tc.grace, tc.final, tc.documented, tc.graceSet)
			}
			if b.Source == "" {
				t.Error("no source")
			}
			if b.Grace < MinGrace {
				t.Errorf("grace %v is under the least --grace accepts (%v)", b.Grace, MinGrace)
			}
		})
	}
}

// TestEveryPlatformHasAStopWindow checks that no platform falls through to
// the unknown-platform default by mistake.
func TestEveryPlatformHasAStopWindow(t *testing.T) {
	for _, name := range platform.Platforms() {
		w := PlatformStopWindow(name)
		if w.Platform != name || w.Source == "" {
			t.Errorf("PlatformStopWindow(%q) = %+v", name, w)
		}
		if name != platform.Local && w.Window == 0 {
			t.Errorf("%s: no window", name)
		}
	}
}
