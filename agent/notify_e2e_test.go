package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
)

// webhook is a local server that records the events baton posts to it.
type webhook struct {
	srv *httptest.Server
	mu  sync.Mutex
	raw []string
	got []map[string]any
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		err := json.Unmarshal(body, &ev)
		w.mu.Lock()
		w.raw = append(w.raw, string(body))
		if err == nil && r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/json" {
			w.got = append(w.got, ev)
		}
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// take returns the events received so far and forgets them.
func (w *webhook) take() ([]map[string]any, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	got, raw := w.got, strings.Join(w.raw, "\n")
	w.got, w.raw = nil, nil
	return got, raw
}

// TestNotifyWebhook: a run with BATON_NOTIFY posts run_started (fresh),
// checkpoint_committed and run_finished to a local webhook before baton
// exits, with the run's fields; the same run on again posts run_started
// resumed from the last checkpoint. No secret (a secret variable's value,
// the webhook's token) is in a payload, nor the token in baton's log.
func TestNotifyWebhook(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	hook := newWebhook(t)
	const token = "T0KEN-e2e-0123456789abcdef"
	const awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	dir := t.TempDir()
	store := "file://" + filepath.Join(dir, "store")
	h := host{env: baseEnv("RUNPOD_POD_ID=podnotify", "AWS_SECRET_ACCESS_KEY="+awsSecret,
		"BATON_COMMIT_CMD="+bin+" checkpoint commit", "BATON_NOTIFY="+hook.srv.URL+"/hooks/"+token)}
	run := func(steps string) ([]map[string]any, string, string, time.Time, time.Time) {
		t.Helper()
		start := time.Now().UTC().Add(-time.Second)
		code, _, stderr := runToEnd(t, bin, h, "--store", store, "--run", "notified", "--checkpoint-dir", filepath.Join(dir, "ckpt"),
			"--checkpoint-interval", "0", "--log-format", "json", "--",
			"python3", trainer, "--steps", steps, "--step-seconds", "0", "--save-every", "10", "--notify")
		if code != 0 {
			t.Fatalf("baton run: exit %d\n%s", code, stderr)
		}
		got, raw := hook.take() // baton delivered them before it exited
		return got, raw, stderr, start, time.Now().UTC().Add(time.Second)
	}
	check := func(what string, got []map[string]any, start, end time.Time, wantStartSeq float64, wantStart string) {
		t.Helper()
		var names []string
		for _, ev := range got {
			names = append(names, ev["event"].(string))
		}
		if len(got) < 3 || names[0] != "run_started" || names[1] != "checkpoint_committed" || names[len(names)-1] != "run_finished" {
			t.Fatalf("%s: events %v, want run_started, checkpoint_committed, …, run_finished", what, names)
		}
		latest := summaries(t, bin, h.env, store, "notified")
		last := float64(latest[len(latest)-1].Seq)
		for i, ev := range got {
			for _, k := range []string{"event", "run", "seq", "platform", "instance", "host", "time", "message"} {
				if _, ok := ev[k]; !ok {
					t.Errorf("%s: event %d lacks %s: %v", what, i, k, ev)
				}
			}
			if ev["run"] != "notified" || ev["platform"] != "runpod" || ev["instance"] != "podnotify" || ev["host"] == "" || ev["message"] == "" {
				t.Errorf("%s: event %d: %v", what, i, ev)
			}
			at, err := time.Parse(time.RFC3339Nano, ev["time"].(string))
			if err != nil || at.Before(start) || at.After(end) {
				t.Errorf("%s: event %d at %v (%v), not during the run", what, i, ev["time"], err)
			}
			_, hasStatus := ev["status"]
			if hasStatus != (ev["event"] == "run_finished") {
				t.Errorf("%s: event %d: status %v", what, i, ev["status"])
			}
		}
		if s := got[0]; s["seq"] != wantStartSeq || !strings.Contains(s["message"].(string), wantStart) {
			t.Errorf("%s: run_started %v, want seq %v and %q", what, s, wantStartSeq, wantStart)
		}
		if c := got[1]; c["seq"].(float64) < 1 || !strings.Contains(c["message"].(string), "committed") {
			t.Errorf("%s: checkpoint_committed %v", what, c)
		}
		if f := got[len(got)-1]; f["status"] != 0.0 || f["seq"] != last {
			t.Errorf("%s: run_finished %v, want status 0 and seq %v", what, f, last)
		}
	}

	got, raw, stderr, start, end := run("20")
	check("fresh", got, start, end, 0, "starting fresh")
	first := summaries(t, bin, h.env, store, "notified")
	resumeFrom := float64(first[len(first)-1].Seq)
	got2, raw2, stderr2, start, end := run("30")
	check("resumed", got2, start, end, resumeFrom, "resumed from checkpoint")

	for _, secret := range []string{token, awsSecret} {
		if strings.Contains(raw+raw2, secret) {
			t.Errorf("a payload holds %q", secret)
		}
		if strings.Contains(stderr+stderr2, secret) {
			t.Errorf("baton's log holds %q", secret)
		}
	}
	if !strings.Contains(stderr, hook.srv.URL+"/...") {
		t.Errorf("baton's log does not name the webhook by its host:\n%s", stderr)
	}
}

// TestNotifyLeaseLost: another host takes the run over (its lease.json
// written straight into the store): the webhook gets lease_lost and
// run_finished, both with status 76.
func TestNotifyLeaseLost(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	hook := newWebhook(t)
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	s := startRun(t, bin, host{env: baseEnv("RUNPOD_POD_ID=first", "BATON_NOTIFY="+hook.srv.URL)}, "--store", "file://"+storeDir,
		"--run", "taken", "--checkpoint-dir", filepath.Join(dir, "ckpt"), "--checkpoint-interval", "0", "--lease-duration", "10s", "--",
		"python3", trainer, "--steps", "100000", "--step-seconds", "0.01")
	s.waitFor(t, "step 5", func(l string) bool { return strings.HasPrefix(l, "step=5 ") })
	takeLease(t, filepath.Join(storeDir, "runs", "taken", "lease.json"))
	if code, _ := s.wait(t); code != 76 {
		t.Fatalf("exit %d after the lease was taken over, want 76\n%s", code, s.stderr)
	}
	got, _ := hook.take()
	var names []string
	for _, ev := range got {
		names = append(names, fmt.Sprint(ev["event"], "/", ev["status"]))
	}
	if want := []string{"run_started/<nil>", "lease_lost/76", "run_finished/76"}; !slices.Equal(names, want) {
		t.Fatalf("events %v, want %v", names, want)
	}
}

// takeLease rewrites a run's lease.json as another host's, with a new
// inode so that the holder's ETag no longer matches.
func takeLease(t *testing.T, leasePath string) {
	t.Helper()
	raw, err := os.ReadFile(leasePath)
	if err != nil {
		t.Fatal(err)
	}
	var rec checkpoint.LeaseRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	rec.Holder, rec.Host, rec.Epoch, rec.ExpiresAt = "vast:other", "other", rec.Epoch+1, time.Now().Add(time.Hour)
	taken, _ := json.Marshal(rec)
	tmp := leasePath + ".new"
	if err := os.WriteFile(tmp, taken, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, leasePath); err != nil {
		t.Fatal(err)
	}
}
