package checkpoint_test

// Two hosts on one run: exactly one holds the lease, the other cannot
// commit; after expiry the other takes over and the first is fenced off,
// including a commit of the first that was in flight during the takeover.

import (
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/faults"
	"github.com/batonrun/baton/sync/storage"
)

// hostDir writes a checkpoint directory whose content is particular to
// the test, host and step (so that a store shared by several tests holds
// none of its chunks), and returns it with its content.
func hostDir(t *testing.T, host uint64, step uint64) (string, map[string][]byte) {
	t.Helper()
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	salt := h.Sum64()
	files := map[string][]byte{
		"model.bin":  content(5*64<<10+17, salt, host, step, 1),
		"optim.bin":  content(100_000, salt, host, step, 2),
		"step.txt":   []byte{byte('0' + host), byte('0' + step)},
		"empty.file": {},
	}
	dir := t.TempDir()
	writeTree(t, dir, files)
	return dir, files
}

func TestLeaseRaceExactlyOneWins(t *testing.T) {
	cases := []struct {
		name string
		// expired: a third host held the lease and let it expire, after
		// committing once.
		expired bool
		// barrier: both hosts have read the lease before either writes it,
		// so both conditional writes race on the same state.
		barrier bool
	}{
		{"no lease, free race", false, false},
		{"no lease, both saw it absent", false, true},
		{"expired lease, free race", true, false},
		{"expired lease, both saw it expired", true, true},
	}
	eachStore(t, func(t *testing.T, inner storage.Store) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				for round := range 10 {
					clearRuns(t, inner)
					testLeaseRace(t, inner, round, tc.expired, tc.barrier)
				}
			})
		}
	})
}

// testLeaseRace races two hosts for the lease of a fresh run (or one whose
// lease expired) and checks that exactly one wins.
func testLeaseRace(t *testing.T, inner storage.Store, round int, expired, barrier bool) {
	ctx := t.Context()
	clk := newSyncClock()
	var prevEpoch int64
	if expired {
		c := openOn(t, inner, "c", clk.now)
		lc, err := c.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dir, _ := hostDir(t, 3, 1)
		if _, err := c.Commit(ctx, lc, dir, nil); err != nil {
			t.Fatal(err)
		}
		prevEpoch = lc.Epoch()
		clk.advance(2 * time.Minute)
	}
	var arrived sync.WaitGroup
	arrived.Add(2)
	// Each host has its own faults wrapper (and lock), so that one
	// can wait in its hook for the other.
	wrap := func() storage.Store {
		if !barrier {
			return inner
		}
		var once sync.Once
		return faults.Wrap(inner, hook(faults.OpPut, func(key string) {
			if key == leaseKey() {
				once.Do(func() { arrived.Done(); arrived.Wait() })
			}
		}))
	}
	hosts := []*checkpoint.Repo{openOn(t, wrap(), "a", clk.now), openOn(t, wrap(), "b", clk.now)}
	leases := make([]*checkpoint.Lease, 2)
	errs := make([]error, 2)
	start := make(chan struct{})
	var done sync.WaitGroup
	for i, h := range hosts {
		done.Go(func() {
			<-start
			leases[i], errs[i] = h.Acquire(ctx)
		})
	}
	close(start)
	done.Wait()

	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won == -1:
			won = i
		case err == nil:
			t.Fatalf("round %d: both hosts hold the lease (epochs %d and %d)", round, leases[0].Epoch(), leases[1].Epoch())
		case !errors.Is(err, checkpoint.ErrLeaseHeld):
			t.Fatalf("round %d: host %d: %v, want ErrLeaseHeld", round, i, err)
		}
	}
	if won == -1 {
		t.Fatalf("round %d: nobody got the lease: %v", round, errs)
	}
	rec, _ := readLease(t, inner)
	winner := []string{"a", "b"}[won]
	if rec.Holder != winner || rec.Epoch != prevEpoch+1 || leases[won].Epoch() != rec.Epoch {
		t.Fatalf("round %d: lease.json %+v; winner %s with epoch %d, want epoch %d", round, rec, winner, leases[won].Epoch(), prevEpoch+1)
	}
	if l, ok := readLatest(t, inner); expired && (!ok || l.Epoch != rec.Epoch) {
		t.Fatalf("round %d: latest.json %+v not fenced at epoch %d", round, l, rec.Epoch)
	}

	// The loser has no lease of its own: a commit with the
	// winner's lease is refused and moves nothing.
	latest0, etag0 := rawObject(t, inner, latestKey())
	loser := hosts[1-won]
	dir, _ := hostDir(t, uint64(1-won), 9)
	if _, err := loser.Commit(ctx, leases[won], dir, nil); err == nil {
		t.Fatalf("round %d: the loser committed with the winner's lease", round)
	}
	if _, err := loser.Commit(ctx, nil, dir, nil); err == nil {
		t.Fatalf("round %d: the loser committed without a lease", round)
	}
	if latest, etag := rawObject(t, inner, latestKey()); !bytes.Equal(latest, latest0) || etag != etag0 {
		t.Fatalf("round %d: latest.json moved: %s", round, latest)
	}
	if round > 0 {
		return
	}
	// The winner commits.
	dir, want := hostDir(t, uint64(won), 1)
	if _, err := hosts[won].Commit(ctx, leases[won], dir, nil); err != nil {
		t.Fatalf("round %d: the winner's commit: %v", round, err)
	}
	dst := filepath.Join(t.TempDir(), "r")
	if _, err := hosts[1-won].Restore(ctx, 0, dst); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(readTree(t, dst), want); d != "" {
		t.Fatalf("round %d: restore: %s", round, d)
	}
}

// TestTakeoverFencesFormerHolder: host a holds the run; its lease expires
// (a Vast instance outbid, say) and b takes over; a wakes up and tries to
// go on. Whether a's clock says its lease expired (it renews first, and
// fails) or lags so that a believes it still holds the lease, a must not
// move latest.json again, and learns at once that it lost the run.
func TestTakeoverFencesFormerHolder(t *testing.T) {
	cases := []struct {
		name string
		// aCommitted: a committed before it lost the lease.
		aCommitted bool
		// aClockLags: a's clock stays where it was, so a believes its lease
		// is still valid and does not renew before committing.
		aClockLags bool
	}{
		{"a committed, a's clock runs", true, false},
		{"a committed, a's clock lags", true, true},
		{"nothing committed, a's clock runs", false, false},
		{"nothing committed, a's clock lags", false, true},
	}
	eachStore(t, func(t *testing.T, s storage.Store) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				clearRuns(t, s)
				ctx := t.Context()
				clkA, clkB := newSyncClock(), newSyncClock()
				a, b := openOn(t, s, "a", clkA.now), openOn(t, s, "b", clkB.now)
				la, err := a.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.Acquire(ctx); !errors.Is(err, checkpoint.ErrLeaseHeld) {
					t.Fatalf("b acquired a's valid lease: %v", err)
				}
				var aSeq int64
				if tc.aCommitted {
					dir, _ := hostDir(t, 0, 1)
					m, err := a.Commit(ctx, la, dir, nil)
					if err != nil {
						t.Fatal(err)
					}
					aSeq = m.Seq
				}

				clkB.advance(2 * time.Minute)
				if !tc.aClockLags {
					clkA.advance(2 * time.Minute)
				}
				lb, err := b.Acquire(ctx)
				if err != nil {
					t.Fatalf("takeover after expiry: %v", err)
				}
				if lb.Epoch() != la.Epoch()+1 {
					t.Fatalf("takeover at epoch %d, want %d", lb.Epoch(), la.Epoch()+1)
				}
				latest0, etag0 := rawObject(t, s, latestKey())

				// a tries to commit: refused, and a knows it lost the lease.
				dir, _ := hostDir(t, 0, 2)
				if m, err := a.Commit(ctx, la, dir, nil); !errors.Is(err, checkpoint.ErrLeaseLost) || !la.Lost() {
					t.Fatalf("the former holder's commit after the takeover: published checkpoint %d, err %v (lost: %v); want ErrLeaseLost", seqOf(m), err, la.Lost())
				}
				if latest, etag := rawObject(t, s, latestKey()); !bytes.Equal(latest, latest0) || etag != etag0 {
					t.Fatalf("the former holder moved latest.json to %s", latest)
				}
				if err := la.Renew(ctx); !errors.Is(err, checkpoint.ErrLeaseLost) {
					t.Fatalf("the former holder's renewal: %v", err)
				}
				if _, err := a.Acquire(ctx); !errors.Is(err, checkpoint.ErrLeaseHeld) {
					t.Fatalf("the former holder took the lease back: %v", err)
				}

				// b commits; a, still trying, moves nothing.
				dir, want := hostDir(t, 1, 1)
				mb, err := b.Commit(ctx, lb, dir, nil)
				if err != nil {
					t.Fatalf("the new holder's commit: %v", err)
				}
				if mb.Seq <= aSeq || mb.Epoch != lb.Epoch() || mb.Parent != aSeq {
					t.Fatalf("the new holder's commit: seq %d epoch %d parent %d", mb.Seq, mb.Epoch, mb.Parent)
				}
				dir, _ = hostDir(t, 0, 3)
				if _, err := a.Commit(ctx, la, dir, nil); !errors.Is(err, checkpoint.ErrLeaseLost) {
					t.Fatalf("the former holder's second commit: %v", err)
				}
				l, ok := readLatest(t, s)
				if !ok || l.Seq != mb.Seq || l.Epoch != lb.Epoch() || l.Holder != "b" {
					t.Fatalf("latest.json %+v, want b's checkpoint %d at epoch %d", l, mb.Seq, lb.Epoch())
				}
				dst := filepath.Join(t.TempDir(), "r")
				if m, err := a.Restore(ctx, 0, dst); err != nil || m.Seq != mb.Seq {
					t.Fatalf("restore: %v", err)
				}
				if d := diffTrees(readTree(t, dst), want); d != "" {
					t.Fatalf("restore: %s", d)
				}
				list, err := b.List(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range list {
					if c.Epoch == la.Epoch() && c.Seq != aSeq {
						t.Fatalf("a checkpoint of the former holder besides %d was published: %+v", aSeq, list)
					}
				}
			})
		}
	})
}

// TestInFlightCommitFencedByTakeover: a had read latest.json and was
// uploading chunks when b took the run over; a's commit must be refused,
// and latest.json must name b's world.
func TestInFlightCommitFencedByTakeover(t *testing.T) {
	cases := []struct {
		name       string
		aCommitted bool // a committed once before the one in flight
		bCommits   bool // b commits during a's commit, not only takes over
	}{
		{"a committed before, b takes over", true, false},
		{"a committed before, b takes over and commits", true, true},
		{"first commit, b takes over and commits", false, true},
		{"first commit, b only takes over", false, false},
	}
	eachStore(t, func(t *testing.T, inner storage.Store) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				clearRuns(t, inner)
				ctx := t.Context()
				clk := newSyncClock()
				b := openOn(t, inner, "b", clk.now)
				var (
					lb        *checkpoint.Lease
					mb        *checkpoint.Manifest
					bWant     map[string][]byte
					hookErr   error
					takenOver bool
					once      sync.Once
				)
				bDir, bFiles := hostDir(t, 1, 1)
				takeover := func() {
					// a's lease has expired by now (a is slow, or was suspended).
					clk.advance(2 * time.Minute)
					takenOver = true
					if lb, hookErr = b.Acquire(ctx); hookErr != nil {
						return
					}
					if tc.bCommits {
						mb, hookErr = b.Commit(ctx, lb, bDir, nil)
						bWant = bFiles
					}
				}
				// a's store: b takes over when a uploads its first chunk (the
				// hook runs with a's faults lock held; b uses the inner store).
				armed := false
				sa := faults.Wrap(inner, hook(faults.OpPut, func(key string) {
					if armed && len(key) > 7 && key[:7] == "chunks/" {
						once.Do(takeover)
					}
				}))
				a := openOn(t, sa, "a", clk.now)
				la, err := a.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var aSeq int64
				if tc.aCommitted {
					dir, files := hostDir(t, 0, 1)
					m, err := a.Commit(ctx, la, dir, nil)
					if err != nil {
						t.Fatal(err)
					}
					aSeq, bWant = m.Seq, files
				}
				armed = true
				dir, _ := hostDir(t, 0, 2)
				m, err := a.Commit(ctx, la, dir, nil)
				if !takenOver {
					t.Fatal("the hook never ran: a uploaded no chunk")
				}
				if hookErr != nil {
					t.Fatalf("b, during a's commit: %v", hookErr)
				}
				if !errors.Is(err, checkpoint.ErrLeaseLost) || !la.Lost() {
					l, _ := readLatest(t, inner)
					t.Fatalf("a's in-flight commit: seq %v, %v (lost %v); want ErrLeaseLost. latest.json now %+v",
						m, err, la.Lost(), l)
				}

				// latest.json names b's world: b's commit, or a's last one
				// fenced at b's epoch, or nothing.
				l, ok := readLatest(t, inner)
				switch {
				case tc.bCommits:
					if !ok || l.Seq != mb.Seq || l.Epoch != lb.Epoch() || l.Holder != "b" {
						t.Fatalf("latest.json %+v, want b's checkpoint %d at epoch %d", l, mb.Seq, lb.Epoch())
					}
				case tc.aCommitted:
					if !ok || l.Seq != aSeq || l.Epoch != lb.Epoch() {
						t.Fatalf("latest.json %+v, want a's checkpoint %d fenced at epoch %d", l, aSeq, lb.Epoch())
					}
				default:
					// No checkpoint yet: b's takeover left a pointer to
					// checkpoint 0 at its epoch, which fenced a off.
					if !ok || l.Seq != 0 || l.Epoch != lb.Epoch() {
						t.Fatalf("latest.json %+v, want checkpoint 0 fenced at epoch %d", l, lb.Epoch())
					}
				}
				dst := filepath.Join(t.TempDir(), "r")
				_, err = b.Restore(ctx, 0, dst)
				if bWant == nil {
					if !errors.Is(err, checkpoint.ErrNoCheckpoint) {
						t.Fatalf("restore: %v, want ErrNoCheckpoint", err)
					}
				} else {
					if err != nil {
						t.Fatal(err)
					}
					if d := diffTrees(readTree(t, dst), bWant); d != "" {
						t.Fatalf("restore: %s", d)
					}
				}

				// b goes on committing over whatever a left behind.
				dir, want := hostDir(t, 1, 2)
				m2, err := b.Commit(ctx, lb, dir, nil)
				if err != nil {
					t.Fatalf("b's next commit: %v", err)
				}
				if l, _ := readLatest(t, inner); l.Seq != m2.Seq || l.Epoch != lb.Epoch() {
					t.Fatalf("latest.json %+v after b's commit %d", l, m2.Seq)
				}
				if _, err := b.Restore(ctx, 0, dst); err != nil {
					t.Fatal(err)
				}
				if d := diffTrees(readTree(t, dst), want); d != "" {
					t.Fatalf("restore: %s", d)
				}
			})
		}
	})
}

// seqOf is m's seq, or 0 for no manifest.
func seqOf(m *checkpoint.Manifest) int64 {
	if m == nil {
		return 0
	}
	return m.Seq
}

// blockingStore holds the writes of one key, once armed, until release is
// closed or the write's context ends; entered is closed when the first one
// arrives. It counts the writes of the key in flight at once.
type blockingStore struct {
	storage.Store
	key      string
	armed    atomic.Bool
	once     sync.Once
	entered  chan struct{}
	release  chan struct{}
	inFlight atomic.Int32
	most     atomic.Int32
}

func newBlockingStore(s storage.Store, key string) *blockingStore {
	return &blockingStore{Store: s, key: key, entered: make(chan struct{}), release: make(chan struct{})}
}

func (b *blockingStore) Put(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if key == b.key && b.armed.Load() {
		n := b.inFlight.Add(1)
		defer b.inFlight.Add(-1)
		for m := b.most.Load(); n > m && !b.most.CompareAndSwap(m, n); m = b.most.Load() {
		}
		b.once.Do(func() { close(b.entered) })
		select {
		case <-b.release:
		case <-ctx.Done():
			return storage.ObjectInfo{}, ctx.Err()
		}
	}
	return b.Store.Put(ctx, key, p, opts)
}

// TestKeepAliveLostLease: a renewal that finds the lease taken over ends
// KeepAlive's context with ErrLeaseLost, and stop returns it.
func TestKeepAliveLostLease(t *testing.T) {
	s := newStore(t)
	clk := newSyncClock()
	old, err := openOn(t, s, "old", clk.now).Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute) // the one-minute lease expired
	if _, err := openOn(t, s, "new", clk.now).Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, stop := old.KeepAlive(t.Context(), time.Millisecond)
	<-ctx.Done()
	if cause := context.Cause(ctx); !errors.Is(cause, checkpoint.ErrLeaseLost) {
		t.Fatalf("KeepAlive's context ended with %v, want ErrLeaseLost", cause)
	}
	if err := stop(); !errors.Is(err, checkpoint.ErrLeaseLost) || !old.Lost() {
		t.Fatalf("stop: %v, lost %v; want ErrLeaseLost", err, old.Lost())
	}
	if err := stop(); !errors.Is(err, checkpoint.ErrLeaseLost) {
		t.Fatalf("stop again: %v", err)
	}
}

// TestKeepAliveStuckRenewal holds a renewal inside its write: Epoch, Lost
// and Record answer meanwhile; Release waits for the renewal instead of
// writing beside it; once released the lease is renewed no more, and stop
// ends a stuck renewal.
func TestKeepAliveStuckRenewal(t *testing.T) {
	s := newBlockingStore(newStore(t), leaseKey())
	clk := newSyncClock()
	lease, err := openOn(t, s, "h1", clk.now).Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.armed.Store(true)
	ctx, stop := lease.KeepAlive(t.Context(), time.Millisecond)
	<-s.entered // a renewal is inside its write, holding it
	if lease.Epoch() != 1 || lease.Lost() || lease.Record().Holder != "h1" {
		t.Fatalf("epoch %d, lost %v, record %+v while a renewal is stuck", lease.Epoch(), lease.Lost(), lease.Record())
	}
	released := make(chan error)
	go func() { released <- lease.Release(context.WithoutCancel(ctx)) }()
	close(s.release)
	if err := <-released; err != nil {
		t.Fatalf("release: %v", err)
	}
	if n := s.most.Load(); n != 1 {
		t.Fatalf("%d writes of lease.json at once, want 1", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if rec, _ := readLease(t, s.Store); !rec.ExpiresAt.IsZero() || !lease.Record().ExpiresAt.IsZero() {
		t.Fatalf("lease.json expires at %v after release (the lease says %v): a renewal came after it", rec.ExpiresAt, lease.Record().ExpiresAt)
	}

	// stop cancels a renewal stuck in its write.
	s2 := newBlockingStore(newStore(t), leaseKey())
	lease2, err := openOn(t, s2, "h2", clk.now).Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s2.armed.Store(true)
	_, stop2 := lease2.KeepAlive(t.Context(), time.Millisecond)
	<-s2.entered
	if err := stop2(); err != nil || lease2.Lost() {
		t.Fatalf("stop during a stuck renewal: %v, lost %v", err, lease2.Lost())
	}
}

// TestOneIdentityTwoProcesses: two processes with one holder ID (two
// `baton checkpoint commit` of one host share HOST/cli): the second retakes
// the lease at a new epoch, and the first's next renewal and commit find it
// lost, rather than taking lease.json for their own earlier write.
func TestOneIdentityTwoProcesses(t *testing.T) {
	s := newStore(t)
	clock := newSyncClock()
	first, lease1 := acquireOn(t, s, "same", clock.now)
	_, lease2 := acquireOn(t, s, "same", clock.now)
	if lease2.Epoch() != lease1.Epoch()+1 {
		t.Fatalf("epochs %d then %d, want the second one higher by one", lease1.Epoch(), lease2.Epoch())
	}
	if err := lease1.Renew(t.Context()); !errors.Is(err, checkpoint.ErrLeaseLost) {
		t.Errorf("the first process's renewal: %v, want ErrLeaseLost", err)
	}
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"model.pt": content(1000, 1)})
	if _, err := first.Commit(t.Context(), lease1, src, nil); !errors.Is(err, checkpoint.ErrLeaseLost) {
		t.Errorf("the first process's commit: %v, want ErrLeaseLost", err)
	}
	if err := lease2.Renew(t.Context()); err != nil {
		t.Errorf("the second process's renewal: %v", err)
	}
}
