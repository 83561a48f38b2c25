package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bsync "github.com/batonrun/baton/sync"
)

// DefaultGCGrace is how old an unreferenced chunk must be before GC deletes
// it. A commit in flight uploads its chunks before it writes its manifest,
// and re-sends any chunk it reuses that is older than half of this, so a
// commit that takes less than half the grace period is safe from a
// concurrent GC.
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

// List returns the run's published checkpoints, oldest first: those up to
// the one latest.json names. Manifests written after it (a commit that
// crashed before publishing, or one in flight) are not checkpoints.
func (r *Repo) List(ctx context.Context) ([]Summary, error) {
	latest, _, err := r.readLatest(ctx)
	if errors.Is(err, ErrNoCheckpoint) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seqs, err := r.manifestSeqs(ctx)
	if err != nil {
		return nil, err
	}
	pins, err := r.pins(ctx)
	if err != nil {
		return nil, err
	}
	var out []Summary
	for _, seq := range seqs {
		if seq > latest.Seq {
			continue
		}
		m, err := r.Manifest(ctx, seq)
		if err != nil {
			return nil, err
		}
		out = append(out, Summary{
			Seq: m.Seq, CreatedAt: m.CreatedAt, Host: m.Host, Platform: m.Platform, Epoch: m.Epoch,
			Files: len(m.Files), Size: m.Size, NewBytes: m.NewBytes, Latest: seq == latest.Seq, Pinned: pins[seq],
		})
	}
	return out, nil
}

func (r *Repo) manifestSeqs(ctx context.Context) ([]int64, error) {
	var seqs []int64
	err := r.retry.Do(ctx, func(ctx context.Context) error {
		seqs = seqs[:0]
		return r.store.List(ctx, manifestPrefix(r.opts.Run), func(o bsync.ObjectInfo) error {
			if seq, ok := parseManifestKey(r.opts.Run, o.Key); ok {
				seqs = append(seqs, seq)
			}
			return nil
		})
	})
	slices.Sort(seqs)
	return seqs, err
}

func (r *Repo) pins(ctx context.Context) (map[int64]bool, error) {
	pins := map[int64]bool{}
	prefix := runPrefix(r.opts.Run) + "pins/"
	err := r.retry.Do(ctx, func(ctx context.Context) error {
		return r.store.List(ctx, prefix, func(o bsync.ObjectInfo) error {
			var seq int64
			if _, err := fmt.Sscanf(strings.TrimPrefix(o.Key, prefix), "%d", &seq); err == nil {
				pins[seq] = true
			}
			return nil
		})
	})
	return pins, err
}

// Pin keeps checkpoint seq through retention until Unpin.
func (r *Repo) Pin(ctx context.Context, seq int64) error {
	if _, err := r.Manifest(ctx, seq); err != nil {
		return err
	}
	return r.retry.Do(ctx, func(ctx context.Context) error {
		_, err := r.store.Put(ctx, pinKey(r.opts.Run, seq), bsync.BytesPayload(nil), bsync.PutOptions{})
		return err
	})
}

// Unpin lets retention remove checkpoint seq again.
func (r *Repo) Unpin(ctx context.Context, seq int64) error {
	return r.retry.Do(ctx, func(ctx context.Context) error { return r.store.Delete(ctx, pinKey(r.opts.Run, seq)) })
}

// Retain deletes the manifests of all but the newest keep published
// checkpoints, sparing pinned ones, and those of unpublished commits older
// than the grace period. It returns the sequence numbers it deleted. The
// chunks go later, with GC.
func (r *Repo) Retain(ctx context.Context, keep int, grace time.Duration) ([]int64, error) {
	if keep < 1 {
		return nil, errors.New("retention must keep at least one checkpoint")
	}
	latest, _, err := r.readLatest(ctx)
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
	var published []int64
	stale := map[int64]bool{}
	cutoff := r.opts.Now().Add(-grace)
	err = r.retry.Do(ctx, func(ctx context.Context) error {
		published = published[:0]
		return r.store.List(ctx, manifestPrefix(r.opts.Run), func(o bsync.ObjectInfo) error {
			seq, ok := parseManifestKey(r.opts.Run, o.Key)
			switch {
			case !ok:
			case seq <= latest.Seq:
				published = append(published, seq)
			case o.LastModified.Before(cutoff):
				stale[seq] = true // never published, and too old to be in flight
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(published)
	var doomed []int64
	for i, seq := range published {
		if i < len(published)-keep && !pins[seq] && seq != latest.Seq {
			doomed = append(doomed, seq)
		}
	}
	for seq := range stale {
		doomed = append(doomed, seq)
	}
	slices.Sort(doomed)
	for _, seq := range doomed {
		err := r.retry.Do(ctx, func(ctx context.Context) error { return r.store.Delete(ctx, manifestKey(r.opts.Run, seq)) })
		if err != nil {
			return nil, err
		}
	}
	return doomed, nil
}

// GCStats counts what GC found and did.
type GCStats struct {
	Manifests     int
	Chunks        int
	Deleted       int
	DeletedBytes  int64
	KeptYoung     int // unreferenced, but younger than the grace period
	ReferencedNow int
}

// GC deletes the chunks of store that no manifest of any run references and
// that are older than grace: mark over every manifest of every run, then
// sweep. If any manifest cannot be read, it deletes nothing.
func GC(ctx context.Context, store bsync.Store, grace time.Duration, now time.Time, retry bsync.Retry) (GCStats, error) {
	var stats GCStats
	marked := map[string]bool{}
	var manifests []string
	err := retry.Do(ctx, func(ctx context.Context) error {
		manifests = manifests[:0]
		return store.List(ctx, "runs/", func(o bsync.ObjectInfo) error {
			if strings.Contains(o.Key, "/manifests/") && strings.HasSuffix(o.Key, ".json") {
				manifests = append(manifests, o.Key)
			}
			return nil
		})
	})
	if err != nil {
		return stats, err
	}
	for _, key := range manifests {
		run, rest, _ := strings.Cut(strings.TrimPrefix(key, "runs/"), "/")
		seq, ok := parseManifestKey(run, "runs/"+run+"/"+rest)
		if !ok {
			return stats, fmt.Errorf("gc: unexpected manifest key %q; deleting nothing", key)
		}
		repo := &Repo{store: store, opts: Options{Run: run}, retry: retry}
		m, err := repo.Manifest(ctx, seq)
		if err != nil {
			return stats, fmt.Errorf("gc: %w; deleting nothing", err)
		}
		for _, f := range m.Files {
			for _, c := range f.Chunks {
				marked[c] = true
			}
		}
		stats.Manifests++
	}
	cutoff := now.Add(-grace)
	var doomed []bsync.ObjectInfo
	err = retry.Do(ctx, func(ctx context.Context) error {
		doomed, stats.Chunks, stats.KeptYoung, stats.ReferencedNow = doomed[:0], 0, 0, 0
		return store.List(ctx, "chunks/", func(o bsync.ObjectInfo) error {
			hash, ok := parseChunkKey(o.Key)
			if !ok {
				return nil // not ours: leave it alone
			}
			stats.Chunks++
			switch {
			case marked[hash]:
				stats.ReferencedNow++
			case o.LastModified.After(cutoff):
				stats.KeptYoung++
			default:
				doomed = append(doomed, o)
			}
			return nil
		})
	})
	if err != nil {
		return stats, err
	}
	for _, o := range doomed {
		if err := retry.Do(ctx, func(ctx context.Context) error { return store.Delete(ctx, o.Key) }); err != nil {
			return stats, err
		}
		stats.Deleted++
		stats.DeletedBytes += o.Size
	}
	return stats, nil
}
