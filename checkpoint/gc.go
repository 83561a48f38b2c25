package checkpoint

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/batonrun/baton/sync/storage"
)

// DefaultGCGrace is how old an unreferenced chunk, or an unpublished
// manifest, must be before GC deletes it. Safety does not depend on it: a
// commit in flight learns from gc.json whether a GC ran while it did, and
// then checks and re-sends its chunks before it publishes (see GC). The
// grace only spares such a commit the work of sending again what a GC took.
const DefaultGCGrace = 6 * time.Hour

func pinKey(run string, seq int64) string { return fmt.Sprintf("%spins/%012d", runPrefix(run), seq) }

// Summary is one checkpoint as List shows it.
type Summary struct {
	Seq       int64     `json:"seq"`
	CreatedAt time.Time `json:"created_at"`
	Host      string    `json:"host"`
	Platform  string    `json:"platform"`
	Epoch     int64     `json:"epoch"`
	Files     int       `json:"files"`
	Size      int64     `json:"size"`
	NewBytes  int64     `json:"new_bytes"`
	Latest    bool      `json:"latest"`
	Pinned    bool      `json:"pinned"`
}

// List returns the run's published checkpoints, oldest first: the chain
// from the one latest.json names back through each one's parent (see
// checkPublished), and the pinned ones older than where retention cut it.
// Manifests the chain steps over or written after latest.json (a commit
// that crashed or lost its lease before publishing, or one in flight) are
// not checkpoints. It costs a listing of the manifests and one request per
// thousand checkpoints (the index, see addToIndex), plus a header read for
// each checkpoint the index lacks.
func (r *Repo) List(ctx context.Context) ([]Summary, error) {
	return r.list(ctx, true)
}

// Published returns the numbers of the run's published checkpoints, oldest
// first, as List does. It needs no key: an encrypted run's chain is walked
// through the clear part of its envelopes.
func (r *Repo) Published(ctx context.Context) ([]int64, error) {
	list, err := r.list(ctx, false)
	seqs := make([]int64, len(list))
	for i, s := range list {
		seqs[i] = s.Seq
	}
	return seqs, err
}

// list is List; with needKey false, the summaries of an encrypted run read
// without its key hold only what an envelope's clear part says.
func (r *Repo) list(ctx context.Context, needKey bool) ([]Summary, error) {
	latest, _, err := r.readLatest(ctx)
	if errors.Is(err, ErrNoCheckpoint) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := r.checkKey(latest.Encryption); err != nil && needKey {
		return nil, err
	}
	listed, err := r.listManifests(ctx)
	if err != nil {
		return nil, err
	}
	exists := map[int64]bool{}
	for _, o := range listed {
		exists[o.seq] = true
	}
	if !exists[latest.Seq] {
		return nil, fmt.Errorf("%w: latest.json of run %s names checkpoint %d, whose manifest is missing", ErrDamaged, r.opts.Run, latest.Seq)
	}
	idx, err := r.indexed(ctx, exists)
	if err != nil {
		return nil, err
	}
	header := func(seq int64) (*Manifest, error) {
		if e, ok := idx[seq]; ok {
			return e.header(), nil
		}
		return r.fetchManifest(ctx, seq, true)
	}
	pins, err := r.pins(ctx)
	if err != nil {
		return nil, err
	}
	var chain []*Manifest
	for seq := latest.Seq; seq > 0 && exists[seq]; {
		h, err := header(seq)
		if errors.Is(err, storage.ErrNotFound) {
			break // deleted since the listing (retention)
		}
		if err != nil {
			return nil, err
		}
		chain = append(chain, h)
		seq = h.Parent
	}
	end := chain[len(chain)-1].Parent // retention deleted this link, if it is not 0
	var out []Summary
	for _, o := range listed {
		if o.seq < end {
			h, err := header(o.seq)
			if err != nil {
				return nil, err
			}
			out = append(out, summary(h, latest, pins))
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		out = append(out, summary(chain[i], latest, pins))
	}
	return out, nil
}

func summary(h *Manifest, latest Latest, pins map[int64]bool) Summary {
	return Summary{
		Seq: h.Seq, CreatedAt: h.CreatedAt, Host: h.Host, Platform: h.Platform, Epoch: h.Epoch,
		Files: h.FileCount, Size: h.Size, NewBytes: h.NewBytes, Latest: h.Seq == latest.Seq, Pinned: pins[h.Seq],
	}
}

func (r *Repo) pins(ctx context.Context) (map[int64]bool, error) {
	pins := map[int64]bool{}
	prefix := runPrefix(r.opts.Run) + "pins/"
	err := r.store.List(ctx, prefix, func(o storage.ObjectInfo) error {
		var seq int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(o.Key, prefix), "%d", &seq); err == nil {
			pins[seq] = true
		}
		return nil
	})
	return pins, err
}

// Pin keeps checkpoint seq through retention until Unpin.
func (r *Repo) Pin(ctx context.Context, seq int64) error {
	if _, err := r.Manifest(ctx, seq); err != nil {
		return err
	}
	_, err := r.store.Put(ctx, pinKey(r.opts.Run, seq), storage.BytesPayload(nil), storage.PutOptions{})
	return err
}

// Unpin lets retention remove checkpoint seq again.
func (r *Repo) Unpin(ctx context.Context, seq int64) error {
	return r.store.Delete(ctx, pinKey(r.opts.Run, seq))
}

// Retain deletes the manifests of all but the newest keep published
// checkpoints, sparing pinned ones, and those of unpublished commits: the
// ones the chain of published checkpoints stepped over (they can never be
// published), and those above latest.json older than grace (see
// dropUnpublished). It returns the sequence numbers it deleted. The chunks
// go later, with GC.
func (r *Repo) Retain(ctx context.Context, keep int, grace time.Duration) ([]int64, error) {
	if keep < 1 {
		return nil, errors.New("retention must keep at least one checkpoint")
	}
	latest, latestETag, err := r.readLatest(ctx)
	if errors.Is(err, ErrNoCheckpoint) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pins, err := r.pins(ctx)
	if err != nil {
		return nil, err
	}
	listed, err := r.listManifests(ctx)
	if err != nil {
		return nil, err
	}
	kept, err := r.publishedChain(ctx, latest, keep)
	if err != nil {
		return nil, err
	}
	onChain := map[int64]bool{}
	for _, h := range kept {
		onChain[h.Seq] = true
	}
	oldestKept := kept[len(kept)-1].Seq
	var doomed, stale []int64
	cutoff := r.opts.Now().Add(-grace)
	for _, o := range listed {
		switch {
		case o.seq > latest.Seq:
			if o.modified.Before(cutoff) {
				stale = append(stale, o.seq) // never published, and too old to be in flight
			}
		case onChain[o.seq], pins[o.seq] && o.seq < oldestKept:
		default:
			// Older than the kept ones, or stepped over by the chain.
			doomed = append(doomed, o.seq)
		}
	}
	for _, seq := range doomed {
		if err := r.deleteManifest(ctx, seq); err != nil {
			return nil, err
		}
	}
	dropped, err := r.dropUnpublished(ctx, latest, latestETag, stale)
	return slices.Sorted(slices.Values(append(doomed, dropped...))), err
}

// listedManifest is one manifest key of a run.
type listedManifest struct {
	seq      int64
	modified time.Time
}

// listManifests lists the run's manifests, oldest number first.
func (r *Repo) listManifests(ctx context.Context) ([]listedManifest, error) {
	var out []listedManifest
	err := r.store.List(ctx, manifestPrefix(r.opts.Run), func(o storage.ObjectInfo) error {
		if seq, ok := parseManifestKey(r.opts.Run, o.Key); ok {
			out = append(out, listedManifest{seq, o.LastModified})
		}
		return nil
	})
	slices.SortFunc(out, func(a, b listedManifest) int { return cmp.Compare(a.seq, b.seq) })
	return out, err
}

// publishedChain returns the headers of the published checkpoints, newest
// first, following Parent from the one latest.json names: at most limit of
// them (0: all). The walk ends at the first checkpoint, or where retention
// deleted a link. A latest.json that names a missing manifest is an error.
func (r *Repo) publishedChain(ctx context.Context, l Latest, limit int) ([]*Manifest, error) {
	var chain []*Manifest
	for seq := l.Seq; seq > 0 && (limit == 0 || len(chain) < limit); {
		h, err := r.fetchManifest(ctx, seq, true)
		if errors.Is(err, storage.ErrNotFound) && seq != l.Seq {
			break
		}
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("%w: latest.json of run %s names checkpoint %d, whose manifest is missing", ErrDamaged, r.opts.Run, seq)
		}
		if err != nil {
			return nil, err
		}
		chain = append(chain, h)
		seq = h.Parent
	}
	return chain, nil
}

func (r *Repo) deleteManifest(ctx context.Context, seq int64) error {
	return r.store.Delete(ctx, manifestKey(r.opts.Run, seq))
}

// dropUnpublished deletes unpublished manifests numbered above latest.json's
// seq. A commit that wrote one may still be in flight (paused, say), and it
// publishes with a write conditional on latest.json's ETag: so latest.json
// is first rewritten with its content unchanged but for UpdatedAt, which
// gives it a new ETag and makes that publish fail. If latest.json moved
// meanwhile, nothing is deleted (the next GC will see). It returns the
// numbers it deleted.
func (r *Repo) dropUnpublished(ctx context.Context, latest Latest, etag string, seqs []int64) ([]int64, error) {
	if len(seqs) == 0 || etag == "" {
		return nil, nil
	}
	touched := latest
	touched.UpdatedAt = r.opts.Now().UTC()
	if touched.UpdatedAt.Equal(latest.UpdatedAt) {
		touched.UpdatedAt = touched.UpdatedAt.Add(time.Nanosecond)
	}
	_, err := r.putJSON(ctx, latestKey(r.opts.Run), touched, storage.PutOptions{IfMatch: etag})
	if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: fencing unpublished manifests off latest.json: %w", r.opts.Run, err)
	}
	for _, seq := range seqs {
		if err := r.deleteManifest(ctx, seq); err != nil {
			return nil, err
		}
	}
	return seqs, nil
}

// GCStats counts what GC found and did.
type GCStats struct {
	Manifests     int
	Chunks        int
	Deleted       int
	DeletedBytes  int64
	KeptYoung     int // unreferenced, but younger than the grace period
	ReferencedNow int
	// Unpublished lists the unpublished manifests GC deleted, as
	// "run/seq".
	Unpublished []string
}

// GCOptions configure GC. The zero value of a field means its default.
type GCOptions struct {
	// Grace: an unreferenced chunk or an unpublished manifest younger than
	// this is kept (0 keeps nothing back; see DefaultGCGrace).
	Grace time.Duration
	// Holder names who collects, in gc.json (default "gc").
	Holder string
	// Retry is the retry policy of every storage request (default
	// storage.DefaultRetry()); GC wraps the store in it once
	// (storage.WithRetry).
	Retry *storage.Retry
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// GC deletes the chunks of store that no manifest of any run references and
// that are older than the grace, and the unpublished manifests older than
// it. It marks over every manifest of every run, then sweeps; if any
// manifest cannot be read, it deletes nothing.
//
// A commit in flight has uploaded chunks no manifest references yet, and
// counts on chunks it listed at its start. GC does not rely on the grace
// for that: it announces itself in gc.json (a new generation, running,
// renewed while it runs) before it marks, and a commit reads gc.json before
// it lists the chunks and again after it wrote its manifest. If a GC ran or
// runs in between, the commit waits for it to end, then checks that every
// chunk of its manifest is stored with its length, sends again what is not,
// and only then publishes. A GC that starts after the manifest was written
// marks it. Two GCs do not run at once: the second is refused with
// ErrGCRunning until the first ends or stops renewing.
func GC(ctx context.Context, store storage.Store, opts GCOptions) (GCStats, error) {
	g, err := startGC(ctx, store, opts)
	if err != nil {
		return GCStats{}, err
	}
	stats, err := g.run(ctx)
	if ferr := g.finish(); err == nil {
		err = ferr
	}
	return stats, err
}

// collector is one GC between its start and its finish.
type collector struct {
	store storage.Store // retries every request
	opts  GCOptions
	log   *slog.Logger
	state *gcState
	stop  context.CancelCauseFunc
	done  chan struct{}
}

func startGC(ctx context.Context, store storage.Store, opts GCOptions) (*collector, error) {
	if opts.Grace < 0 {
		return nil, fmt.Errorf("gc: grace %s is negative", opts.Grace)
	}
	if opts.Holder == "" {
		opts.Holder = "gc"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &collector{store: retrying(store, opts.Retry), opts: opts, log: opts.Logger}
	if g.log == nil {
		g.log = slog.Default()
	}
	st, err := beginGC(ctx, g.store, opts.Holder, opts.Now)
	if err != nil {
		return nil, err
	}
	g.state = st
	return g, nil
}

// run marks and sweeps, renewing gc.json meanwhile; it stops at once if a
// renewal fails.
func (g *collector) run(ctx context.Context) (GCStats, error) {
	ctx, g.stop = context.WithCancelCause(ctx)
	g.done = make(chan struct{})
	go g.state.keepAlive(ctx, g.done, g.stop)
	defer func() { g.stop(nil); <-g.done }()

	var stats GCStats
	marked := chunkMarks{}
	runs, err := g.manifestsByRun(ctx)
	if err != nil {
		return stats, err
	}
	cutoff := g.opts.Now().Add(-g.opts.Grace)
	for _, run := range slices.Sorted(maps.Keys(runs)) {
		dropped, n, err := g.markRun(ctx, run, runs[run], cutoff, marked)
		if err != nil {
			return stats, fmt.Errorf("gc: %w; deleting no chunk", err)
		}
		stats.Manifests += n
		stats.Unpublished = append(stats.Unpublished, dropped...)
	}
	var doomed []storage.ObjectInfo
	err = g.store.List(ctx, "chunks/", func(o storage.ObjectInfo) error {
		hash, ok := parseChunkKey(o.Key)
		if !ok {
			return nil // not ours: leave it alone
		}
		stats.Chunks++
		switch {
		case marked.has(hash):
			stats.ReferencedNow++
		case o.LastModified.After(cutoff):
			stats.KeptYoung++
		default:
			doomed = append(doomed, o)
		}
		return nil
	})
	if err != nil {
		return stats, err
	}
	for _, o := range doomed {
		if err := g.state.check(ctx); err != nil {
			return stats, err
		}
		if err := g.store.Delete(ctx, o.Key); err != nil {
			return stats, err
		}
		stats.Deleted++
		stats.DeletedBytes += o.Size
	}
	return stats, nil
}

// manifestsByRun lists every run's manifests.
func (g *collector) manifestsByRun(ctx context.Context) (map[string][]listedManifest, error) {
	runs := map[string][]listedManifest{}
	err := g.store.List(ctx, "runs/", func(o storage.ObjectInfo) error {
		if !strings.Contains(o.Key, "/manifests/") || !strings.HasSuffix(o.Key, ".json") {
			return nil
		}
		run, _, _ := strings.Cut(strings.TrimPrefix(o.Key, "runs/"), "/")
		seq, ok := parseManifestKey(run, o.Key)
		if CheckRunID(run) != nil || !ok {
			return fmt.Errorf("gc: unexpected manifest key %q; deleting nothing", o.Key)
		}
		runs[run] = append(runs[run], listedManifest{seq, o.LastModified})
		return nil
	})
	return runs, err
}

// markRun deletes the run's unpublished manifests older than cutoff and
// marks the chunks of the others. It returns what it deleted and how many
// manifests it marked.
func (g *collector) markRun(ctx context.Context, run string, listed []listedManifest, cutoff time.Time, marked chunkMarks) ([]string, int, error) {
	r := &Repo{store: g.store, opts: Options{Run: run, Now: g.opts.Now}, log: g.log}
	latest, latestETag, err := r.readPointer(ctx)
	if err != nil {
		return nil, 0, err
	}
	var stale []int64
	for _, o := range listed {
		if o.seq > latest.Seq && o.modified.Before(cutoff) {
			stale = append(stale, o.seq)
		}
	}
	if err := g.state.check(ctx); err != nil {
		return nil, 0, err
	}
	// Deleted only after latest.json was rewritten (see dropUnpublished);
	// if it moved meanwhile, nothing is, and they are marked below.
	dropped, err := r.dropUnpublished(ctx, latest, latestETag, stale)
	if err != nil {
		return nil, 0, err
	}
	parents := map[int64]int64{}
	n := 0
	for _, o := range listed {
		if slices.Contains(dropped, o.seq) {
			continue
		}
		// Streamed: GC holds the marks, never a whole manifest.
		m, err := r.walkManifest(ctx, o.seq, func(f File) error {
			for _, c := range f.Chunks {
				marked.add(c)
			}
			return nil
		})
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since the listing (retention)
		}
		if ke, ok := errors.AsType[*KeyError](err); ok && ke.env != nil {
			// A sealed manifest, and GC holds no key: its clear list
			// names every chunk it references (see "Encryption").
			for _, c := range ke.env.Chunks {
				marked.add(c.Name)
			}
			m, err = ke.env.header(), nil
		}
		if err != nil {
			return nil, 0, err
		}
		parents[m.Seq] = m.Parent
		n++
	}
	// Manifests the chain of published checkpoints steps over can never be
	// published; their chunks stay marked until the next GC.
	onChain := map[int64]bool{}
	end := latest.Seq
	for seq := latest.Seq; seq > 0; {
		parent, ok := parents[seq]
		if !ok {
			break
		}
		onChain[seq] = true
		seq, end = parent, parent
	}
	for _, o := range listed {
		if o.seq < latest.Seq && o.seq > end && !onChain[o.seq] && o.modified.Before(cutoff) {
			if err := r.deleteManifest(ctx, o.seq); err != nil {
				return nil, 0, err
			}
			dropped = append(dropped, o.seq)
		}
	}
	names := make([]string, len(dropped))
	for i, seq := range dropped {
		names[i] = fmt.Sprintf("%s/%d", run, seq)
	}
	return names, n, nil
}

// chunkMarks is a set of chunk hashes, held as 32 bytes each rather than
// 64 hex characters.
type chunkMarks map[[32]byte]struct{}

// add marks hash, a valid hex hash.
func (c chunkMarks) add(hash string) {
	var k [32]byte
	hex.Decode(k[:], []byte(hash))
	c[k] = struct{}{}
}

// has reports whether hash is marked.
func (c chunkMarks) has(hash string) bool {
	var k [32]byte
	hex.Decode(k[:], []byte(hash))
	_, ok := c[k]
	return ok
}

// finish marks the GC ended in gc.json.
func (g *collector) finish() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return g.state.end(ctx)
}
