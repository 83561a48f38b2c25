package agent

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/platform"
	"github.com/batonrun/baton/checkpoint"
)

// TestNotifyHelpers: each helper sends its event with the run's fields, the
// checkpoint and the exit status it stands for; without --notify they do
// nothing.
func TestNotifyHelpers(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev map[string]any
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Errorf("not JSON: %s", b)
		}
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	defer srv.Close()
	a := &agent{cfg: config.Config{RunID: "r1", Notify: []string{srv.URL + "/hook"}}, log: slog.New(slog.DiscardHandler),
		desc: platform.Description{Platform: "vast", InstanceID: "4242", Host: "h"}, dir: "/ckpt"}
	a.lastSeq.Store(7)
	a.openNotifier()
	a.notifyStarted(7)
	a.notifyCommitted(&checkpoint.Manifest{Seq: 8, Size: 3 << 30, NewBytes: 1 << 20}, "interval")
	a.notifyGaveUp(giveUp{code: ExitHung, reason: "hung for 30m"})
	a.notifyLost(checkpoint.ErrLeaseLost)
	a.notifyFinalCommitFailed()
	a.notifyFinished(ExitFinalCommitFailed, errors.New("boom"))
	a.closeNotifier()
	want := []struct {
		event   string
		seq     float64
		status  any
		message string
	}{
		{"run_started", 7, nil, "resumed from checkpoint 7"},
		{"checkpoint_committed", 8, nil, "checkpoint 8 committed (interval): 0 files, 3.0 GiB, 1.0 MiB new"},
		{"host_given_up", 7, 78.0, "host given up: hung for 30m"},
		{"lease_lost", 7, 76.0, "another host took the run over: the trainer is stopped and nothing more is committed from this one"},
		{"final_commit_failed", 7, 74.0, "final commit failed: what the trainer saved after checkpoint 7 is only in /ckpt on this host; no exit action"},
		{"run_finished", 7, 74.0, "exit status 74: the final commit failed: boom"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		ev := got[i]
		if ev["event"] != w.event || ev["seq"] != w.seq || ev["status"] != w.status || ev["message"] != w.message ||
			ev["run"] != "r1" || ev["platform"] != "vast" || ev["instance"] != "4242" || ev["host"] != "h" {
			t.Errorf("event %d: %v, want %+v", i, ev, w)
		}
	}

	off := &agent{cfg: config.Config{RunID: "r1"}, log: slog.New(slog.DiscardHandler)}
	off.openNotifier()
	off.notifyStarted(0)
	off.notifyFinished(0, nil)
	off.closeNotifier()
	if off.notifier != nil {
		t.Fatal("a notifier without --notify")
	}
}
