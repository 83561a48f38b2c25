package agent_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/file/filetest"
)

// TestMissingGPUsRefusedBeforeTheLease: a platform that promised a GPU
// (RUNPOD_GPU_COUNT) on a host with no driver (this machine) gets exit 77
// before any lease is taken; --gpu-check=false runs anyway.
func TestMissingGPUsRefusedBeforeTheLease(t *testing.T) {
	l := newLifecycle(t, false)
	h := l.host("RUNPOD_POD_ID=zero", "RUNPOD_GPU_COUNT=1")
	code, lines, stderr := runToEnd(t, l.bin, h, l.args(h, 5)...)
	if code != 77 || len(lines) != 0 || !strings.Contains(stderr, "the platform promised 1 GPU, but no NVIDIA driver") {
		t.Fatalf("exit %d, %d trainer lines, want 77 and none:\n%s", code, len(lines), stderr)
	}
	storeDir := strings.TrimPrefix(l.store, "file://")
	if _, err := os.Stat(filepath.Join(storeDir, "runs", "life", "lease.json")); !os.IsNotExist(err) {
		t.Fatalf("a lease was taken (%v)", err)
	}
	if first, _ := l.train(h, 5, "--gpu-check=false"); first != "starting fresh" {
		t.Fatalf("with --gpu-check=false: %q", first)
	}
}

// TestBadHostRefused: a machine the run gave up before (recorded in the
// store) is refused at once with 77; baton checkpoint hosts lists it, and
// once forgotten the machine trains again.
func TestBadHostRefused(t *testing.T) {
	l := newLifecycle(t, false)
	storeDir := strings.TrimPrefix(l.store, "file://")
	repo, err := checkpoint.Open(filetest.Open(t, storeDir), checkpoint.Options{Run: "life"})
	if err != nil {
		t.Fatal(err)
	}
	bad := checkpoint.BadHost{Platform: "runpod", Machine: "host server-9", Reason: "GPU GPU-1: XID 79", Status: 77, At: time.Now()}
	if err := repo.RecordBadHost(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	h := l.host("RUNPOD_POD_ID=p1", "RUNPOD_POD_HOSTNAME=server-9")
	code, lines, stderr := runToEnd(t, l.bin, h, l.args(h, 5)...)
	id := checkpoint.BadHostID("runpod", "host server-9")
	if code != 77 || len(lines) != 0 || !strings.Contains(stderr, "was given up for run life") || !strings.Contains(stderr, id) {
		t.Fatalf("exit %d, %d trainer lines, want 77 naming the record %s:\n%s", code, len(lines), id, stderr)
	}
	other := l.host("RUNPOD_POD_ID=p2", "RUNPOD_POD_HOSTNAME=server-10")
	if first, _ := l.train(other, 5); first != "starting fresh" {
		t.Fatalf("another server: %q", first)
	}
	hosts := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(l.bin, append([]string{"checkpoint", "hosts", "--store", l.store, "--run", "life"}, args...)...)
		cmd.Env = baseEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("checkpoint hosts %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := hosts(); !strings.Contains(out, id) || !strings.Contains(out, "XID 79") {
		t.Fatalf("checkpoint hosts does not list the bad machine:\n%s", out)
	}
	hosts("--forget", id)
	if first, _ := l.train(h, 10); first != "resumed from step=5" {
		t.Fatalf("after --forget: %q", first)
	}
}

// TestOnSuperseded: a host that finds the run held past --lease-wait exits
// 75 and, with --on-superseded stop, stops its pod through RunPod's API
// (a local stand-in); a second baton run of the same directory on the same
// machine exits 75 too, but must not stop the pod the first one trains on.
func TestOnSuperseded(t *testing.T) {
	var mu sync.Mutex
	var requests []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		requests = append(requests, r.Method+" "+r.URL.Path+" "+strings.TrimSpace(string(body)))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"x","desiredStatus":"EXITED"}`))
	}))
	defer api.Close()
	l := newLifecycle(t, false)
	a := l.host("RUNPOD_POD_ID=pa")
	sa := startRun(t, l.bin, a, l.args(a, 100000)...)
	sa.waitFor(t, "A's start", func(s string) bool { return s == "starting fresh" })

	onSuperseded := []string{"--lease-wait", "0", "--on-superseded", "stop", "--runpod-api-url", api.URL}
	same := host{dir: a.dir, env: append(baseEnv("RUNPOD_POD_ID=pa"), "RUNPOD_API_KEY=rpa_test")}
	if code, _, stderr := runToEnd(t, l.bin, same, append(onSuperseded, l.args(same, 10)...)...); code != 75 {
		t.Fatalf("a second baton of the same directory: exit %d:\n%s", code, stderr)
	}
	mu.Lock()
	if len(requests) != 0 {
		t.Fatalf("the second baton of the same machine called the API: %q", requests)
	}
	mu.Unlock()

	b := l.host("RUNPOD_POD_ID=pb", "RUNPOD_API_KEY=rpa_test")
	code, lines, stderr := runToEnd(t, l.bin, b, append(onSuperseded, l.args(b, 10)...)...)
	if code != 75 || len(lines) != 0 {
		t.Fatalf("exit %d with %d trainer lines, want 75:\n%s", code, len(lines), stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := `POST /pods/pb/action {"action":"stop"}`; len(requests) != 1 || requests[0] != want {
		t.Fatalf("API requests %q, want [%s]", requests, want)
	}
}
