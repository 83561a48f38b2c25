package checkpoint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/batonrun/baton/sync/storage"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// VerifyReport is what Verify found: the checkpoints it checked and every
// damaged chunk they reference.
type VerifyReport struct {
	// Seqs are the checkpoints verified, ascending.
	Seqs []int64
	// Deep says whether every chunk was downloaded and hashed, rather than
	// only its presence and length checked.
	Deep bool
	// Chunks and Bytes count the distinct chunks the verified checkpoints
	// reference, and their length.
	Chunks int
	Bytes  int64
	// Damaged lists the damaged chunks, ordered by the first file that
	// uses them (checkpoint, path, offset). Empty when all is well.
	Damaged []DamagedChunk

	// manifests holds every manifest read, by seq, for Repair.
	manifests map[int64]*Manifest
}

// DamagedChunk is one damaged chunk and what it breaks.
type DamagedChunk struct {
	// Err says which chunk and what is wrong with it.
	Err *DamagedChunkError
	// Checkpoints are the published checkpoints of the run that reference
	// the chunk, ascending: none of them restores until it is repaired.
	// They include checkpoints that were not asked to be verified.
	Checkpoints []int64
	// Uses are the files (and chunk indexes) that hold the chunk, in the
	// checkpoints of Checkpoints.
	Uses []ChunkUse
}

// ChunkUse is one place a chunk appears: chunk Index of file Path in
// checkpoint Seq.
type ChunkUse struct {
	Seq   int64
	Path  string
	Index int
}

// Paths returns the distinct paths of the files that use the chunk, sorted.
func (d DamagedChunk) Paths() []string {
	var paths []string
	for _, u := range d.Uses {
		paths = append(paths, u.Path)
	}
	slices.Sort(paths)
	return slices.Compact(paths)
}

// Affected returns every checkpoint that a damaged chunk of the report
// breaks, ascending.
func (v *VerifyReport) Affected() []int64 {
	var seqs []int64
	for _, d := range v.Damaged {
		seqs = append(seqs, d.Checkpoints...)
	}
	slices.Sort(seqs)
	return slices.Compact(seqs)
}

// Verify checks that every chunk that checkpoints seqs reference is in the
// store with its length; with deep, it also downloads every distinct chunk
// once and checks its content against its name. An empty seqs means the
// checkpoint latest.json names. Verify lists the store's chunks once.
//
// Damage is not an error: it is in the report, each damaged chunk with the
// published checkpoints (verified or not) and files that use it. The error
// is for what kept Verify from finishing: a manifest that cannot be read
// (ErrNoCheckpoint, ErrBadManifest, a missing seq) or a failing store.
func (r *Repo) Verify(ctx context.Context, seqs []int64, deep bool) (*VerifyReport, error) {
	rep := &VerifyReport{Deep: deep, manifests: map[int64]*Manifest{}}
	if len(seqs) == 0 {
		m, err := r.Manifest(ctx, 0)
		if err != nil {
			return nil, err
		}
		rep.manifests[m.Seq] = m
		seqs = []int64{m.Seq}
	}
	seqs = slices.Compact(slices.Sorted(slices.Values(seqs)))
	var published map[int64]bool // the chain, walked once for many checkpoints
	if len(seqs) > 1 {
		list, err := r.List(ctx)
		if err != nil {
			return nil, err
		}
		published = map[int64]bool{}
		for _, s := range list {
			published[s.Seq] = true
		}
	}
	for _, seq := range seqs {
		if rep.manifests[seq] != nil {
			continue
		}
		var m *Manifest
		var err error
		if published[seq] {
			m, err = r.fetchManifest(ctx, seq, false)
		} else {
			m, err = r.Manifest(ctx, seq) // one checkpoint, or one List did not show: says why
		}
		if err != nil {
			return nil, err
		}
		rep.manifests[seq] = m
	}
	rep.Seqs = seqs

	// Each distinct chunk once, with its length.
	want := map[string]int64{}
	var order []string
	for _, seq := range seqs {
		m := rep.manifests[seq]
		for _, f := range m.Files {
			for i, h := range f.Chunks {
				if _, ok := want[h]; ok {
					continue
				}
				_, n := chunkSpan(f.Size, m.ChunkSize, i)
				want[h] = n
				order = append(order, h)
				rep.Bytes += n
			}
		}
	}
	rep.Chunks = len(order)

	stored, err := r.listChunkSizes(ctx)
	if err != nil {
		return nil, err
	}
	damaged := map[string]*DamagedChunkError{}
	var intact []string
	for _, h := range order {
		size, ok := stored[h]
		switch {
		case !ok:
			damaged[h] = damagedChunk(h, ChunkMissing, 0, want[h])
		case size != r.storedLen(want[h]):
			damaged[h] = damagedChunk(h, ChunkWrongSize, size, r.storedLen(want[h]))
		default:
			intact = append(intact, h)
		}
	}
	if deep {
		found, err := r.hashChunks(ctx, intact, want)
		if err != nil {
			return nil, err
		}
		for h, d := range found {
			damaged[h] = d
		}
	}
	if len(damaged) == 0 {
		return rep, nil
	}
	if err := r.findUses(ctx, rep, damaged); err != nil {
		return nil, err
	}
	return rep, nil
}

// listChunkSizes lists chunks/ once: the length of every chunk object.
func (r *Repo) listChunkSizes(ctx context.Context) (map[string]int64, error) {
	sizes := map[string]int64{}
	err := r.store.List(ctx, "chunks/", func(o storage.ObjectInfo) error {
		if hash, ok := parseChunkKey(o.Key); ok {
			sizes[hash] = o.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing chunks: %w", err)
	}
	return sizes, nil
}

// hashChunks downloads each of hashes (with its length in want) once, on at
// most Workers at a time, and returns those whose object is not what its
// name says. A chunk that vanished since the listing is missing.
func (r *Repo) hashChunks(ctx context.Context, hashes []string, want map[string]int64) (map[string]*DamagedChunkError, error) {
	var (
		mu      sync.Mutex
		damaged = map[string]*DamagedChunkError{}
	)
	var biggest int64
	for _, h := range hashes {
		biggest = max(biggest, want[h])
	}
	buffers := sync.Pool{New: func() any { b := make([]byte, biggest); return &b }}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for _, h := range hashes {
		g.Go(func() error {
			buf := buffers.Get().(*[]byte)
			defer buffers.Put(buf)
			d, err := r.checkChunk(gctx, h, (*buf)[:want[h]])
			if err != nil {
				return fmt.Errorf("reading chunk %s: %w", h, err)
			}
			if d != nil {
				mu.Lock()
				damaged[h] = d
				mu.Unlock()
			}
			return nil
		})
	}
	return damaged, g.Wait()
}

// checkChunk downloads chunk hash into data, which has the chunk's length,
// and returns its damage, or nil if it is intact.
func (r *Repo) checkChunk(ctx context.Context, hash string, data []byte) (*DamagedChunkError, error) {
	err := r.fetchChunk(ctx, hash, data)
	if d, ok := errors.AsType[*DamagedChunkError](err); ok {
		return d, nil
	}
	return nil, err
}

// findUses fills rep.Damaged: every damaged chunk with the published
// checkpoints and files that reference it. Besides the verified
// checkpoints, it reads every other published one.
func (r *Repo) findUses(ctx context.Context, rep *VerifyReport, damaged map[string]*DamagedChunkError) error {
	list, err := r.List(ctx)
	if err != nil {
		return fmt.Errorf("finding the checkpoints the damage affects: %w", err)
	}
	byHash := map[string]*DamagedChunk{}
	for h, e := range damaged {
		byHash[h] = &DamagedChunk{Err: e}
	}
	seqs := rep.Seqs
	for _, s := range list {
		seqs = append(seqs, s.Seq)
	}
	seqs = slices.Compact(slices.Sorted(slices.Values(seqs)))
	for _, seq := range seqs {
		m := rep.manifests[seq]
		if m == nil {
			// Published (from List or checked by Manifest): read it
			// without walking the chain again for each one.
			if m, err = r.fetchManifest(ctx, seq, false); err != nil {
				return fmt.Errorf("finding the checkpoints the damage affects: %w", err)
			}
			rep.manifests[seq] = m
		}
		for _, f := range m.Files {
			for i, h := range f.Chunks {
				d := byHash[h]
				if d == nil {
					continue
				}
				d.Uses = append(d.Uses, ChunkUse{Seq: seq, Path: f.Path, Index: i})
				if n := len(d.Checkpoints); n == 0 || d.Checkpoints[n-1] != seq {
					d.Checkpoints = append(d.Checkpoints, seq)
				}
			}
		}
	}
	for _, d := range byHash {
		rep.Damaged = append(rep.Damaged, *d)
	}
	slices.SortFunc(rep.Damaged, func(a, b DamagedChunk) int {
		ua, ub := a.Uses[0], b.Uses[0]
		return cmp.Or(cmp.Compare(ua.Seq, ub.Seq), cmp.Compare(ua.Path, ub.Path), cmp.Compare(ua.Index, ub.Index),
			cmp.Compare(a.Err.Hash, b.Err.Hash))
	})
	return nil
}

// Repair uploads the damaged chunks of report again from dir, a local copy
// of a checkpoint directory: for every file of an affected checkpoint that
// holds a damaged chunk, if dir has a regular file at its path with its
// size, the file's bytes at that chunk's offset are read and hashed, and
// uploaded under the chunk's key if they hash to its name. Chunks are named
// by their content, so overwriting a damaged object is safe; a file that
// has changed since simply does not hash right and is not used.
//
// It returns the hashes of the chunks it uploaded and of those it found no
// intact copy of, in the report's order. The caller verifies again to see
// the store's state.
func (r *Repo) Repair(ctx context.Context, report *VerifyReport, dir string) (repaired, unrepaired []string, err error) {
	done := map[string]bool{}
	var buf []byte
	for _, d := range report.Damaged {
		hash := d.Err.Hash
		if done[hash] {
			continue
		}
		for _, u := range d.Uses {
			m := report.manifests[u.Seq]
			if m == nil {
				if m, err = r.fetchManifest(ctx, u.Seq, false); err != nil { // a checkpoint the report found published
					return repaired, unrepaired, err
				}
				if report.manifests == nil {
					report.manifests = map[int64]*Manifest{}
				}
				report.manifests[u.Seq] = m
			}
			f, ok := findFile(m, u.Path)
			if !ok || u.Index >= len(f.Chunks) || f.Chunks[u.Index] != hash {
				continue
			}
			off, n := chunkSpan(f.Size, m.ChunkSize, u.Index)
			if int64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			data := buf[:n]
			ok, err := readChunkFrom(filepath.Join(dir, filepath.FromSlash(f.Path)), f.Size, off, data, func(b []byte) bool { return r.chunkName(b) == hash })
			if err != nil {
				return repaired, unrepaired, err
			}
			if !ok {
				continue
			}
			if _, err := r.store.Put(ctx, chunkKey(hash), r.chunkPayload(hash, data), storage.PutOptions{}); err != nil {
				return repaired, unrepaired, fmt.Errorf("uploading chunk %s from %s: %w", hash, f.Path, err)
			}
			r.log.Info("repaired a chunk", "chunk", hash, "from", f.Path, "offset", off)
			done[hash] = true
			break
		}
		if done[hash] {
			repaired = append(repaired, hash)
		} else {
			unrepaired = append(unrepaired, hash)
		}
	}
	return repaired, unrepaired, nil
}

// findFile returns the entry of m for path.
func findFile(m *Manifest, path string) (File, bool) {
	i, ok := slices.BinarySearchFunc(m.Files, path, func(f File, p string) int { return cmp.Compare(f.Path, p) })
	if ok {
		return m.Files[i], true
	}
	for _, f := range m.Files { // a manifest not sorted by path
		if f.Path == path {
			return f, true
		}
	}
	return File{}, false
}

// readChunkFrom reads len(data) bytes at off of the regular file at p into
// data and reports whether they hash to their name (named). A file that is missing, not
// regular, or not size bytes long is no source: false, and no error.
func readChunkFrom(p string, size, off int64, data []byte, named func([]byte) bool) (bool, error) {
	// O_NONBLOCK: a FIFO under the path must not hang the repair.
	fh, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("repair: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return false, fmt.Errorf("repair: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != size {
		return false, nil
	}
	if _, err := fh.ReadAt(data, off); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil // it shrank
		}
		return false, fmt.Errorf("repair: reading %s: %w", p, err)
	}
	return named(data), nil
}
