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
	// keyless: an encrypted run verified without its key (verifySealed);
	// Repair refuses it, as it would have to seal what it uploads.
	keyless bool
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
//
// Without the key, an encrypted run is verified (not deep) from the clear
// part of its envelopes: each chunk an envelope lists is checked for
// presence and its sealed length (see verifySealed). Deep needs the key.
func (r *Repo) Verify(ctx context.Context, seqs []int64, deep bool) (*VerifyReport, error) {
	if r.key == nil {
		l, _, err := r.readLatest(ctx)
		if err != nil {
			return nil, err
		}
		if err := r.checkKey(l.Encryption); err != nil {
			if deep {
				return nil, fmt.Errorf("verify --deep opens every chunk, which needs the run's key: %w", err)
			}
			return r.verifySealed(ctx, l, seqs)
		}
	}
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
	buffers := sync.Pool{New: func() any { b := newFrame(biggest); return &b }}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for _, h := range hashes {
		g.Go(func() error {
			buf := buffers.Get().(*[]byte)
			defer buffers.Put(buf)
			d, err := r.checkChunk(gctx, h, *buf, want[h])
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

// checkChunk downloads chunk hash, n bytes long, into frame (see newFrame)
// and returns its damage, or nil if it is intact. An encrypted chunk that
// opens is also checked against its keyed hash, which a restore leaves to
// the authentication (see fetchChunk).
func (r *Repo) checkChunk(ctx context.Context, hash string, frame []byte, n int64) (*DamagedChunkError, error) {
	data, err := r.fetchChunk(ctx, hash, frame, n)
	if err == nil && r.key != nil && r.chunkName(data) != hash {
		err = damagedChunk(hash, ChunkWrongContent, r.storedLen(n), r.storedLen(n))
	}
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
	if report.keyless {
		return nil, nil, fmt.Errorf("run %s is encrypted: repair seals what it uploads and needs the run's key (--encryption-key or BATON_ENCRYPTION_KEY)", r.opts.Run)
	}
	done := map[string]bool{}
	var frame []byte
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
			if int64(len(frame)) < frameHead+n+16 {
				frame = newFrame(n)
			}
			data := frameData(frame, n)
			ok, err := readChunkFrom(filepath.Join(dir, filepath.FromSlash(f.Path)), f.Size, off, data, func(b []byte) bool { return r.chunkName(b) == hash })
			if err != nil {
				return repaired, unrepaired, err
			}
			if !ok {
				continue
			}
			_, err = r.store.Put(ctx, chunkKey(hash), storage.BytesPayload(r.sealFrame(hash, frame, n)), storage.PutOptions{})
			if err != nil {
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

// verifySealed is Verify without the key, of an encrypted run whose
// latest.json is l: it reads the envelopes of seqs (the latest checkpoint if
// none), never opening them, and checks that every chunk their clear part
// lists is stored with the sealed length listed. A damaged chunk's
// Checkpoints are the verified ones and those of the chain from latest.json
// (down to a gap left by retention) whose envelopes list it; its Uses are
// empty, the files being sealed. The clear part is authenticated only by a
// reader with the key (openEnvelope), so this checks what the envelopes say,
// as a keyless GC does.
func (r *Repo) verifySealed(ctx context.Context, l Latest, seqs []int64) (*VerifyReport, error) {
	rep := &VerifyReport{keyless: true}
	if len(seqs) == 0 {
		seqs = []int64{l.Seq}
	}
	seqs = slices.Compact(slices.Sorted(slices.Values(seqs)))
	envelopes := map[int64]*envelope{}
	read := func(seq int64) (*envelope, error) {
		if e := envelopes[seq]; e != nil {
			return e, nil
		}
		e, err := r.readEnvelope(ctx, seq)
		if err != nil {
			return nil, err
		}
		if e.Cipher != CipherName || e.KeyID != l.Encryption.KeyID {
			return nil, fmt.Errorf("%w: run %s checkpoint %d (%s) is sealed with %s key %s, the run's is %s key %s", ErrBadManifest,
				r.opts.Run, seq, manifestKey(r.opts.Run, seq), e.Cipher, e.KeyID, l.Encryption.Cipher, l.Encryption.KeyID)
		}
		envelopes[seq] = e
		return e, nil
	}
	// The chain from latest.json, to a gap: published checkpoints.
	var chain []int64
	for seq := l.Seq; seq > 0; {
		e, err := read(seq)
		if errors.Is(err, storage.ErrNotFound) && seq != l.Seq {
			break // deleted by retention
		}
		if err != nil {
			return nil, err
		}
		chain = append(chain, seq)
		seq = e.Parent
	}
	for _, seq := range seqs {
		if envelopes[seq] == nil {
			if err := r.checkPublished(ctx, l, seq); err != nil {
				return nil, err
			}
		}
		if _, err := read(seq); err != nil {
			return nil, err
		}
	}
	rep.Seqs = seqs

	want := map[string]int64{} // sealed lengths
	var order []string
	for _, seq := range seqs {
		for _, c := range envelopes[seq].Chunks {
			if size, ok := want[c.Name]; ok {
				if size != c.Size {
					return nil, fmt.Errorf("%w: run %s: chunk %s is listed with %d bytes and with %d", ErrBadManifest, r.opts.Run, c.Name, size, c.Size)
				}
				continue
			}
			want[c.Name] = c.Size
			order = append(order, c.Name)
			rep.Bytes += c.Size - sealOverhead
		}
	}
	rep.Chunks = len(order)
	stored, err := r.listChunkSizes(ctx)
	if err != nil {
		return nil, err
	}
	byHash := map[string]*DamagedChunk{}
	for _, h := range order {
		size, ok := stored[h]
		switch {
		case !ok:
			byHash[h] = &DamagedChunk{Err: damagedChunk(h, ChunkMissing, 0, want[h])}
		case size != want[h]:
			byHash[h] = &DamagedChunk{Err: damagedChunk(h, ChunkWrongSize, size, want[h])}
		}
	}
	if len(byHash) == 0 {
		return rep, nil
	}
	all := slices.Compact(slices.Sorted(slices.Values(append(chain, seqs...))))
	for _, seq := range all {
		for _, c := range envelopes[seq].Chunks {
			if d := byHash[c.Name]; d != nil {
				d.Checkpoints = append(d.Checkpoints, seq)
			}
		}
	}
	for _, d := range byHash {
		rep.Damaged = append(rep.Damaged, *d)
	}
	slices.SortFunc(rep.Damaged, func(a, b DamagedChunk) int {
		return cmp.Or(cmp.Compare(a.Checkpoints[0], b.Checkpoints[0]), cmp.Compare(a.Err.Hash, b.Err.Hash))
	})
	return rep, nil
}
