package launch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/fakeclock"
	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/storage"
)

// fakeProvider is a provider of machines that exist only in memory.
type fakeProvider struct {
	mu        sync.Mutex
	offers    []Offer
	createErr []error // the errors of the next creates, in order; nil: success
	exists    bool    // a failed create left its machine all the same
	machines  map[string]Machine
	creates   int
	stopped   []string
	destroyed []string
}

func newFake(offers ...Offer) *fakeProvider {
	if len(offers) == 0 {
		offers = []Offer{{Provider: "fake", ID: "o1", Machine: "m1", GPU: "RTX 4090", GPUCount: 1, PricePerHour: 0.5}}
	}
	return &fakeProvider{offers: offers, machines: map[string]Machine{}}
}

func (f *fakeProvider) Name() string { return "fake" }

func (f *fakeProvider) Offers(context.Context, Request) ([]Offer, error) { return f.offers, nil }

func (f *fakeProvider) Create(_ context.Context, o Offer, h Host) (Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates++
	var err error
	if len(f.createErr) > 0 {
		err, f.createErr = f.createErr[0], f.createErr[1:]
	}
	m := Machine{Provider: "fake", ID: fmt.Sprintf("i%d", f.creates), Label: h.Label, Machine: o.Machine, State: StateRunning, PricePerHour: o.PricePerHour}
	if err == nil || f.exists {
		f.machines[m.ID] = m
	}
	if err != nil {
		return Machine{}, err
	}
	return m, nil
}

func (f *fakeProvider) Find(_ context.Context, label string) ([]Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Machine
	for _, m := range f.machines {
		if m.Label == label {
			out = append(out, m)
		}
	}
	return out, nil
}

func (f *fakeProvider) Status(_ context.Context, id string) (Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.machines[id]
	if !ok {
		return Machine{}, ErrNotFound
	}
	return m, nil
}

func (f *fakeProvider) set(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.machines[id]
	m.State = state
	f.machines[id] = m
}

func (f *fakeProvider) Stop(_ context.Context, id string) error {
	f.set(id, StateStopped)
	f.stopped = append(f.stopped, id)
	return nil
}

func (f *fakeProvider) Destroy(_ context.Context, id string) error {
	f.set(id, StateGone)
	f.destroyed = append(f.destroyed, id)
	return nil
}

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// rig is one run in a file store, watched with a fake clock.
type rig struct {
	t     *testing.T
	store storage.Store
	clock *fakeclock.Clock
	fake  *fakeProvider
}

func newRig(t *testing.T, fake *fakeProvider) *rig {
	s, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, store: s, clock: fakeclock.New(t0), fake: fake}
}

// watcher returns a watcher of the run named id.
func (r *rig) watcher(id string) *Watcher {
	l := &Launcher{Providers: []Provider{r.fake}, Store: r.store, Run: "r", Config: &config.Config{},
		Spec:   config.LaunchSpec{Command: []string{"python3", "train.py"}, GPUCount: 1, Disk: 50 << 30},
		Getenv: func(string) string { return "" }, Now: r.clock.Now, ID: id,
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Sleep: func(context.Context, time.Duration) error { return nil }}
	return &Watcher{Launcher: l, BootTimeout: 10 * time.Minute, Interval: time.Second, MaxFailures: 3, OnSuperseded: "none"}
}

// lease writes lease.json: holder at epoch until expires.
func (r *rig) lease(holder string, epoch int64, expires time.Time) {
	b, _ := json.Marshal(checkpoint.LeaseRecord{Holder: holder, Epoch: epoch, ExpiresAt: expires})
	if _, err := r.store.Put(context.Background(), "runs/r/lease.json", storage.BytesPayload(b), storage.PutOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) step(w *Watcher) Report {
	r.t.Helper()
	rep, err := w.Step(context.Background())
	if err != nil {
		r.t.Fatalf("step: %v", err)
	}
	return rep
}

func (r *rig) claims() []Claim {
	cs, err := Claims(context.Background(), r.store, "r")
	if err != nil {
		r.t.Fatal(err)
	}
	return cs
}

func TestTwoWatchersOneLaunch(t *testing.T) {
	t.Parallel()
	r := newRig(t, newFake())
	r.lease("runpod:old/1", 4, t0.Add(-time.Minute))
	ws := []*Watcher{r.watcher("w1"), r.watcher("w2"), r.watcher("w3")}
	var wg sync.WaitGroup
	reports := make([]Report, len(ws))
	for i, w := range ws {
		wg.Go(func() { reports[i] = r.step(w) })
	}
	wg.Wait()
	launched := 0
	for _, rep := range reports {
		if rep.Outcome == Launched {
			launched++
		}
	}
	if launched != 1 || r.fake.creates != 1 {
		t.Fatalf("%d watchers launched, %d creates; want exactly 1: %+v", launched, r.fake.creates, reports)
	}
	cs := r.claims()
	if len(cs) != 1 || cs[0].Epoch != 4 || cs[0].Attempt != 1 || cs[0].Label != "baton-r-4-1" || cs[0].Instance != "i1" || cs[0].PricePerHour != 0.5 {
		t.Fatalf("claims = %+v", cs)
	}
	// The next looks find the launch starting, and launch nothing.
	r.clock.Advance(time.Minute)
	for _, w := range ws {
		if rep := r.step(w); rep.Outcome != Waiting {
			t.Errorf("next step: %v, want waiting", rep.Outcome)
		}
	}
	if r.fake.creates != 1 {
		t.Errorf("creates = %d", r.fake.creates)
	}
}

func TestStepOutcomes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(r *rig)
		want  Outcome
		wantN int // creates
	}{
		{"no lease yet: launch", func(r *rig) {}, Launched, 1},
		{"live lease: nothing", func(r *rig) { r.lease("vast:9/a", 2, t0.Add(time.Minute)) }, Alive, 0},
		{"lapsed lease: launch", func(r *rig) { r.lease("vast:9/a", 2, t0.Add(-time.Second)) }, Launched, 1},
		{"released lease: launch", func(r *rig) { r.lease("vast:9/a", 2, time.Time{}) }, Launched, 1},
		{"done: nothing", func(r *rig) {
			r.lease("vast:9/a", 2, time.Time{})
			WriteDone(context.Background(), r.store, "r", Done{Holder: "vast:9/a", Seq: 7})
		}, Finished, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, newFake())
			tc.setup(r)
			if rep := r.step(r.watcher("w")); rep.Outcome != tc.want || r.fake.creates != tc.wantN {
				t.Fatalf("outcome %v with %d creates, want %v with %d (%s)", rep.Outcome, r.fake.creates, tc.want, tc.wantN, rep.Message)
			}
		})
	}
}

func TestBackoffAfterFailedLaunches(t *testing.T) {
	t.Parallel()
	fake := newFake()
	refused := errors.New("HTTP 400: no such image")
	fake.createErr = []error{refused, refused, refused}
	r := newRig(t, fake)
	w := r.watcher("w")
	if rep := r.step(w); rep.Outcome != Waiting || rep.Claim == nil || rep.Claim.Error == "" {
		t.Fatalf("first launch: %+v", rep)
	}
	r.clock.Advance(10 * time.Second)
	if rep := r.step(w); rep.Outcome != Waiting || fake.creates != 1 {
		t.Fatalf("within the backoff: %v, %d creates", rep.Outcome, fake.creates)
	}
	r.clock.Advance(21 * time.Second) // 31 s: past 30 s
	r.step(w)
	if fake.creates != 2 {
		t.Fatalf("after the backoff: %d creates, want 2", fake.creates)
	}
	r.clock.Advance(59 * time.Second) // the second backoff is 60 s
	r.step(w)
	if fake.creates != 2 {
		t.Fatalf("within the second backoff: %d creates", fake.creates)
	}
	r.clock.Advance(2 * time.Second)
	r.step(w)
	if cs := r.claims(); fake.creates != 3 || len(cs) != 3 || cs[2].Attempt != 3 {
		t.Fatalf("third launch: %d creates, claims %+v", fake.creates, cs)
	}
	r.clock.Advance(time.Hour)
	if _, err := w.Step(context.Background()); !errors.Is(err, ErrGaveUp) {
		t.Fatalf("after 3 failures: %v, want ErrGaveUp", err)
	}
}

func TestBudget(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		budget  float64
		price   float64 // of the offers; the first host is up two hours
		gaveUp  bool
		creates int
	}{
		{"under budget", 10, 2, false, 2},
		{"spent", 10, 5, true, 1},
		{"an hour more would pass it", 10, 4.5, true, 1},
		{"no budget", 0, 100, false, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(Offer{Provider: "fake", ID: "o", Machine: "m1", PricePerHour: tc.price}, Offer{Provider: "fake", ID: "o2", Machine: "m2", PricePerHour: tc.price})
			r := newRig(t, fake)
			w := r.watcher("w")
			w.Budget = tc.budget
			var told []string
			w.Notify = func(msg string) { told = append(told, msg) }
			w.Once = true
			r.step(w) // the first host
			r.lease("fake:i1/x", 1, t0.Add(2*time.Hour))
			r.clock.Advance(time.Hour)
			r.step(w) // it took the lease
			r.clock.Advance(time.Hour + time.Minute)
			_, err := w.Run(context.Background()) // its lease lapsed
			if errors.Is(err, ErrGaveUp) != tc.gaveUp || fake.creates != tc.creates {
				t.Fatalf("err %v, %d creates; want gave up %v, %d creates", err, fake.creates, tc.gaveUp, tc.creates)
			}
			if tc.gaveUp && len(told) != 1 {
				t.Errorf("notifications: %q", told)
			}
		})
	}
}

func TestBadMachinesAvoided(t *testing.T) {
	t.Parallel()
	offers := []Offer{
		{Provider: "fake", ID: "cheap", Machine: "m1", PricePerHour: 0.3},
		{Provider: "fake", ID: "mid", Machine: "m2", PricePerHour: 0.4},
		{Provider: "fake", ID: "dear", Machine: "m3", PricePerHour: 0.9},
	}
	r := newRig(t, newFake(offers...))
	w := r.watcher("w")
	r.step(w) // i1 on m1, which never takes the lease
	r.clock.Advance(11 * time.Minute)
	r.step(w) // boot timeout: i2, not on m1
	cs := r.claims()
	if len(cs) != 2 || cs[1].Machine != "m2" || cs[1].Attempt != 2 {
		t.Fatalf("after a boot timeout on m1: %+v", cs)
	}
	// i2 takes the lease, gives its machine up for bad health, and its
	// lease lapses: the next launch avoids m1 (failed) and m2 (bad).
	r.lease("fake:i2/n", 1, r.clock.Now().Add(time.Minute))
	r.step(w)
	repo, _ := checkpoint.Open(r.store, checkpoint.Options{Run: "r"})
	if err := repo.RecordBadHost(context.Background(), checkpoint.BadHost{Platform: "vast", Machine: "gpus GPU-1", Holder: "fake:i2/n", Status: 77}); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(2 * time.Minute)
	r.step(w)
	cs = r.claims()
	if len(cs) != 3 || cs[2].Machine != "m3" {
		t.Fatalf("after m2 went bad: %+v", cs)
	}
}

func TestSupersededMachines(t *testing.T) {
	t.Parallel()
	cases := []struct {
		action               string
		stopped, destroyed   []string
		endedFirst, endedNew bool
	}{
		{"none", nil, nil, false, false},
		{"stop", []string{"i1"}, nil, true, false},
		{"terminate", nil, []string{"i1"}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.action, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, newFake(Offer{Provider: "fake", ID: "o1", Machine: "m1", PricePerHour: 0.5}, Offer{Provider: "fake", ID: "o2", Machine: "m2", PricePerHour: 0.6}))
			w := r.watcher("w")
			w.OnSuperseded = tc.action
			r.step(w) // i1, claim 0-1
			r.lease("fake:i1/a", 1, r.clock.Now().Add(time.Minute))
			r.step(w)
			r.clock.Advance(2 * time.Minute) // i1 stalls: its lease lapses, but the machine runs on
			r.step(w)                        // i2, claim 1-1
			r.lease("fake:i2/b", 2, r.clock.Now().Add(time.Minute))
			r.step(w) // i1 is superseded
			if !slices.Equal(r.fake.stopped, tc.stopped) || !slices.Equal(r.fake.destroyed, tc.destroyed) {
				t.Fatalf("stopped %v, destroyed %v; want %v, %v", r.fake.stopped, r.fake.destroyed, tc.stopped, tc.destroyed)
			}
			cs := r.claims()
			if len(cs) != 2 || !cs[0].EndedAt.IsZero() != tc.endedFirst || !cs[1].EndedAt.IsZero() != tc.endedNew {
				t.Fatalf("claims %+v", cs)
			}
			if cs[1].Holder != "fake:i2/b" {
				t.Errorf("the new host's claim does not name its holder: %+v", cs[1])
			}
		})
	}
}

func TestLostCreateIsAdoptedNotRepeated(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		exists  bool
		outcome Outcome
	}{
		{"the machine exists", true, Launched},
		{"it does not", false, Waiting},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake()
			fake.createErr = []error{fmt.Errorf("HTTP 502: %w", ErrUncertain)}
			fake.exists = tc.exists
			r := newRig(t, fake)
			rep := r.step(r.watcher("w"))
			if rep.Outcome != tc.outcome || fake.creates != 1 {
				t.Fatalf("%v with %d creates, want %v with 1", rep.Outcome, fake.creates, tc.outcome)
			}
			if cs := r.claims(); tc.exists && cs[0].Instance != "i1" {
				t.Errorf("claim %+v, want the adopted machine", cs[0])
			}
		})
	}
}

func TestChoose(t *testing.T) {
	t.Parallel()
	offers := []Offer{
		{Provider: "vast", ID: "v1", Machine: "9", PricePerHour: 0.40},
		{Provider: "runpod", ID: "r1", PricePerHour: 0.40},
		{Provider: "vast", ID: "v2", Machine: "7", PricePerHour: 0.35},
	}
	cases := []struct {
		name  string
		req   Request
		order []string
		want  string
	}{
		{"cheapest", Request{}, []string{"runpod", "vast"}, "v2"},
		{"avoided machine", Request{Avoid: map[string]bool{"7": true}}, []string{"runpod", "vast"}, "r1"},
		{"tie goes to the first provider", Request{Avoid: map[string]bool{"7": true}}, []string{"vast", "runpod"}, "v1"},
		{"price bound", Request{MaxPrice: 0.3}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Choose(offers, tc.req, tc.order)
			if tc.want == "" {
				if !errors.Is(err, ErrNoOffer) {
					t.Fatalf("got %v, %v; want ErrNoOffer", got, err)
				}
				return
			}
			if err != nil || got.ID != tc.want {
				t.Fatalf("got %v, %v; want %s", got.ID, err, tc.want)
			}
		})
	}
}

func TestMatchGPU(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		wants []string
		ok    bool
	}{
		{"NVIDIA GeForce RTX 4090", []string{"RTX 4090"}, true},
		{"RTX 4090", []string{"rtx4090"}, true},
		{"NVIDIA H100 80GB HBM3", []string{"H100"}, false},
		{"H100 NVL", []string{"H100 SXM", "H100 NVL"}, true},
		{"A100", nil, true},
	}
	for _, tc := range cases {
		if got := MatchGPU(tc.name, tc.wants); got != tc.ok {
			t.Errorf("MatchGPU(%q, %q) = %v", tc.name, tc.wants, got)
		}
	}
}
