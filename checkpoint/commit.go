package checkpoint

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonrun/baton/internal/progress"
	"github.com/batonrun/baton/sync/storage"
	"golang.org/x/sync/errgroup"
	"lukechampine.com/blake3"
)

// racyWindow is how close to a scan a file's mtime may be before the file
// counts as possibly changed within one timestamp tick.
const racyWindow = time.Second

// readers is how many files a commit reads and hashes at once; the upload
// workers (Options.Workers) send what they find missing.
const readers = 4

// Commit publishes the checkpoint directory dir as the run's next
// checkpoint, in this order and only in this order:
//
//  1. scan dir and note the size and mtime of every regular file;
//  2. hash the files that changed since the parent checkpoint (the one
//     latest.json names) and upload the chunks the store lacks;
//  3. stat every file again: if one changed while it was read, drop the
//     commit with ErrDirChanged (the trainer was still writing);
//  4. write manifests/<seq>.json, create-only; if a GC ran since step 2
//     (gc.json says), wait for it to end and send again any chunk of the
//     manifest the store lacks (see GC);
//  5. move latest.json to it, only if latest.json's ETag is still the one
//     read at the start, carrying the lease's epoch.
//
// A chunk counts as present only when the store holds it with its length.
// A reader only follows latest.json, so it never sees a half-uploaded
// checkpoint. A commit of a directory with nothing new uploads nothing but a
// manifest. If latest.json moved on at a higher epoch, the lease was taken
// over: Commit fails with ErrLeaseLost and the lease is marked lost.
func (r *Repo) Commit(ctx context.Context, lease *Lease, dir string, meta map[string]string) (*Manifest, error) {
	if lease == nil || lease.repo != r {
		return nil, errors.New("checkpoint: commit needs this repository's lease")
	}
	if lease.Lost() {
		return nil, fmt.Errorf("%w (run %s)", ErrLeaseLost, r.opts.Run)
	}
	if !r.opts.Now().Before(lease.Record().ExpiresAt) {
		if err := lease.Renew(ctx); err != nil {
			return nil, err
		}
	}
	epoch := lease.Epoch()
	latest, latestETag, err := r.readPointer(ctx)
	if err != nil {
		return nil, err
	}
	if latest.Epoch > epoch {
		return nil, lease.markLost(latest.Epoch)
	}
	if latest.Seq > 0 {
		// A run is encrypted from its first checkpoint, with one key, or
		// never.
		if err := r.checkKey(latest.Encryption); err != nil {
			return nil, fmt.Errorf("checkpoint: commit refused: %w", err)
		}
	}
	if latest.Seq == math.MaxInt64 {
		return nil, fmt.Errorf("checkpoint: run %s: latest.json names checkpoint %d, the last number there is; refusing to commit", r.opts.Run, latest.Seq)
	}
	var parent *Manifest
	if latest.Seq > 0 {
		if parent, err = r.fetchManifest(ctx, latest.Seq, false); err != nil {
			r.log.Warn("commit: cannot read the parent checkpoint; every file will be read again", "seq", latest.Seq, "err", err)
			parent = nil
		}
	}

	// 1. Scan.
	scannedAt := time.Now() // the file system's clock, not the injected one
	files, err := scanDir(dir, r.opts.Exclude)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrEmpty, dir)
	}
	if err := checkLimits(files, r.opts.ChunkSize); err != nil {
		return nil, err
	}
	// 2. Hash and upload. What GC was doing is read before the chunks are
	// listed (see GC).
	gcBefore, _, err := readGCRecord(ctx, r.store)
	if err != nil {
		return nil, err
	}
	present := r.newChunkSet(parent)
	m := &Manifest{
		Version:   FormatVersion,
		Run:       r.opts.Run,
		Parent:    latest.Seq,
		Epoch:     epoch,
		Host:      r.opts.Holder.Host,
		Platform:  r.opts.Holder.Platform,
		Hash:      HashName,
		ChunkSize: r.opts.ChunkSize,
		Files:     make([]File, len(files)),
		Meta:      meta,
		ScannedAt: scannedAt.UTC(),
	}
	tr := r.opts.Progress.Start("committing " + dir + " as the next checkpoint of run " + r.opts.Run)
	newBytes, err := r.hashAndUpload(ctx, dir, files, parent, present, m, tr)
	tr.End(err)
	if err != nil {
		return nil, err
	}
	m.NewBytes = newBytes
	m.FileCount = len(m.Files)
	for _, f := range m.Files {
		m.Size += f.Size
	}
	// 3. Re-check.
	for _, f := range files {
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f.rel)))
		if err != nil || fi.Size() != f.size || !fi.ModTime().Equal(f.mtime) {
			return nil, fmt.Errorf("%w: %s", ErrDirChanged, f.rel)
		}
	}
	// 4. Manifest, create-only, under the next free sequence number.
	m.Seq, err = r.nextSeq(ctx, latest.Seq)
	if err != nil {
		return nil, err
	}
	m.CreatedAt = r.opts.Now().UTC()
	if err := m.validate(r.opts.Run, m.Seq); err != nil {
		return nil, fmt.Errorf("checkpoint: refusing to write a manifest that breaks the format: %w", err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if r.key != nil {
		if body, err = r.sealManifest(m, body); err != nil {
			return nil, err
		}
	}
	info, err := r.writeManifest(ctx, lease, m.Seq, body)
	if err != nil {
		return nil, err
	}
	// 4b. If a GC ran since the chunks were listed, it may have deleted
	// some this commit counted on: wait for it to end, then make sure every
	// chunk is there. A GC that starts from now on sees the manifest.
	gcAfter, _, err := readGCRecord(ctx, r.store)
	if err != nil {
		return nil, err
	}
	if gcAfter.Generation != gcBefore.Generation || gcBefore.Running {
		if err := r.recheckAfterGC(ctx, dir, m, info); err != nil {
			return nil, err
		}
	}
	// 5. Publish.
	next := Latest{Seq: m.Seq, Epoch: epoch, ManifestETag: info.ETag, UpdatedAt: m.CreatedAt, Holder: r.opts.Holder.ID, Encryption: r.key.marker()}
	opts := storage.PutOptions{IfMatch: latestETag}
	if latestETag == "" {
		opts = storage.PutOptions{IfAbsent: true}
	}
	_, err = r.putJSON(ctx, latestKey(r.opts.Run), next, opts)
	if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
		// Our own write may have landed with its response lost.
		if cur, _, rerr := r.readPointer(ctx); rerr == nil && cur.Seq == next.Seq && cur.ManifestETag == next.ManifestETag {
			r.addToIndex(ctx, m)
			return m, nil
		}
		return nil, r.lostOrRaced(ctx, lease, "latest.json moved meanwhile (a gc that deleted this unpublished commit rewrites it)")
	}
	if err != nil {
		return nil, fmt.Errorf("publishing checkpoint %d: %w", m.Seq, err)
	}
	r.addToIndex(ctx, m)
	return m, nil
}

// lostOrRaced explains a lost conditional write: a higher epoch in
// latest.json means the lease was taken over.
func (r *Repo) lostOrRaced(ctx context.Context, lease *Lease, what string) error {
	cur, _, err := r.readPointer(ctx)
	if err == nil && cur.Epoch > lease.Epoch() {
		return lease.markLost(cur.Epoch)
	}
	return fmt.Errorf("checkpoint: commit refused, %s; is another committer running without the lease?", what)
}

// nextSeq is the first number above latest's seq under which no manifest
// is stored (a commit that crashed between its manifest and latest.json
// leaves one behind, never published).
func (r *Repo) nextSeq(ctx context.Context, latest int64) (int64, error) {
	// Probed upwards from latest+1 with a Stat each, not found by listing
	// every manifest of the run: a commit's cost must not grow with the
	// run's checkpoints. Manifests above latest.json are rare (a commit
	// that crashed or was fenced), so this is one Stat almost always.
	for seq := latest + 1; ; seq++ {
		if seq <= 0 || seq == math.MaxInt64 {
			return 0, fmt.Errorf("checkpoint: run %s has manifests up to number %d, the last number there is; refusing to commit", r.opts.Run, seq-1)
		}
		_, err := r.store.Stat(ctx, manifestKey(r.opts.Run, seq))
		if errors.Is(err, storage.ErrNotFound) {
			return seq, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// writeManifest writes body as manifests/<seq>.json, create-only. If the
// create fails its condition, the object there may be this very write whose
// response was lost (a proxy cut it, a retry sent it again): it is read
// back, and if it holds exactly body it is this commit's.
func (r *Repo) writeManifest(ctx context.Context, lease *Lease, seq int64, body []byte) (storage.ObjectInfo, error) {
	key := manifestKey(r.opts.Run, seq)
	info, err := r.store.Put(ctx, key, storage.BytesPayload(body), storage.PutOptions{IfAbsent: true})
	if errors.Is(err, storage.ErrPreconditionFailed) {
		var stored []byte
		rerr := func() error {
			rc, got, err := r.store.Get(ctx, key, 0, -1)
			if err != nil {
				return err
			}
			defer rc.Close()
			if got.Size != int64(len(body)) {
				return nil
			}
			info = got
			stored, err = io.ReadAll(rc)
			return err
		}()
		if rerr == nil && bytes.Equal(stored, body) {
			return info, nil
		}
		return storage.ObjectInfo{}, r.lostOrRaced(ctx, lease, "manifest "+strconv.FormatInt(seq, 10)+" appeared meanwhile")
	}
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("writing manifest %d: %w", seq, err)
	}
	return info, nil
}

// recheckAfterGC runs when a GC ran, or was running, while the commit
// listed and uploaded its chunks: it waits until no GC runs, checks that
// the manifest written (as info) is still there, and sends again every
// chunk of m that the store lacks or holds with the wrong length, reading
// it from dir (ErrDirChanged if the file no longer holds it).
func (r *Repo) recheckAfterGC(ctx context.Context, dir string, m *Manifest, info storage.ObjectInfo) error {
	if err := r.waitForGC(ctx); err != nil {
		return err
	}
	cur, err := r.store.Stat(ctx, manifestKey(r.opts.Run, m.Seq))
	if errors.Is(err, storage.ErrNotFound) || err == nil && cur.ETag != info.ETag {
		return fmt.Errorf("checkpoint: manifest %d was deleted by a gc while the commit ran; try again", m.Seq)
	}
	if err != nil {
		return err
	}
	// Every chunk of the manifest is looked at again (one Stat each, in
	// parallel): the GC may have taken any that no manifest referenced.
	missing, err := r.missingChunks(ctx, m)
	if err != nil {
		return err
	}
	resent := 0
	for _, f := range m.Files {
		n, err := r.resendFile(ctx, dir, f, m.ChunkSize, missing)
		if err != nil {
			return err
		}
		resent += n
	}
	if resent > 0 {
		r.log.Warn("commit: a gc ran meanwhile and deleted chunks this commit counted on; sent them again", "seq", m.Seq, "chunks", resent)
	}
	return nil
}

// gcPoll is how often a commit looks at gc.json while it waits for a GC.
const gcPoll = time.Second

// waitForGC returns once gc.json shows no GC that may still delete.
func (r *Repo) waitForGC(ctx context.Context) error {
	logged := false
	for {
		rec, _, err := readGCRecord(ctx, r.store)
		if err != nil {
			return err
		}
		if !rec.active(r.opts.Now()) {
			return nil
		}
		if !logged {
			r.log.Info("commit: waiting for a gc of the store to end before publishing", "gc", rec.Holder, "until", rec.Until)
			logged = true
		}
		t := time.NewTimer(gcPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// missingChunks returns the chunks of m that the store lacks or holds with
// the wrong length.
func (r *Repo) missingChunks(ctx context.Context, m *Manifest) (map[string]bool, error) {
	var mu sync.Mutex
	missing := map[string]bool{}
	seen := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for _, f := range m.Files {
		for i, h := range f.Chunks {
			if seen[h] {
				continue
			}
			seen[h] = true
			_, n := chunkSpan(f.Size, m.ChunkSize, i)
			g.Go(func() error {
				ok, err := r.chunkStored(gctx, h, n)
				if err == nil && !ok {
					mu.Lock()
					missing[h] = true
					mu.Unlock()
				}
				return err
			})
		}
	}
	return missing, g.Wait()
}

// chunkStored reports whether the store holds chunk h with its length n.
func (r *Repo) chunkStored(ctx context.Context, h string, n int64) (bool, error) {
	info, err := r.store.Stat(ctx, chunkKey(h))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking for chunk %s: %w", h, err)
	}
	return info.Size == r.storedLen(n), nil
}

// resendFile uploads the chunks of f in missing, read from dir, once each;
// it returns how many it sent.
func (r *Repo) resendFile(ctx context.Context, dir string, f File, chunkSize int64, missing map[string]bool) (int, error) {
	need := false
	for _, h := range f.Chunks {
		need = need || missing[h]
	}
	if !need {
		return 0, nil
	}
	fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(f.Path)))
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrDirChanged, f.Path, err)
	}
	defer fh.Close()
	sent := 0
	frame := newFrame(chunkSize)
	for i, h := range f.Chunks {
		off, n := chunkSpan(f.Size, chunkSize, i)
		if !missing[h] {
			continue
		}
		delete(missing, h) // once
		data := frameData(frame, n)
		if _, err := fh.ReadAt(data, off); err != nil {
			return sent, fmt.Errorf("%w: %s: %v", ErrDirChanged, f.Path, err)
		}
		if r.chunkName(data) != h {
			return sent, fmt.Errorf("%w: %s", ErrDirChanged, f.Path)
		}
		_, err := r.store.Put(ctx, chunkKey(h), storage.BytesPayload(r.sealFrame(h, frame, n)), storage.PutOptions{})
		if err != nil {
			return sent, fmt.Errorf("uploading a chunk of %s: %w", f.Path, err)
		}
		sent++
	}
	return sent, nil
}

func parseManifestKey(run, key string) (int64, bool) {
	name, ok := strings.CutPrefix(key, manifestPrefix(run))
	if !ok {
		return 0, false
	}
	name, ok = strings.CutSuffix(name, ".json")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseInt(name, 10, 64)
	return seq, err == nil && seq > 0
}

// ReservedPrefix starts the names, at the top of a checkpoint directory,
// that are baton's and never part of a checkpoint: StateFile, a fork set
// aside (ForkPrefix), a restore's staging and journal inside a mount point.
const ReservedPrefix = ".baton-"

// StateFile is the name, at the top of a checkpoint directory, of baton's
// record of what the directory holds (see agent).
const StateFile = ReservedPrefix + "state.json"

// ForkPrefix starts the name of a directory that baton run made inside a
// checkpoint directory that is a mount point, to set aside work the store
// lacks before restoring a newer checkpoint over it. A restore keeps it.
const ForkPrefix = ReservedPrefix + "fork-"

// DefaultExclude are the globs of files that trainers write under a
// temporary name and rename when done (PyTorch's and Hugging Face's
// "tmp-checkpoint-N" directories, "*.tmp", "*.partial"): a commit leaves
// them out instead of failing because they changed while it read them.
var DefaultExclude = []string{"*.tmp", "*.partial", "tmp-checkpoint-*"}

// DirDigest sums up what the checkpoint directory dir holds, as a commit
// would see it (the same files left out): each file's path, size, mode and
// mtime. It equals Manifest.Digest of a checkpoint of dir, or restored into
// it, as long as no file was written since. files is how many files it
// holds.
func DirDigest(dir string, exclude []string) (digest string, files int, err error) {
	scanned, err := scanDir(dir, exclude)
	if err != nil {
		return "", 0, err
	}
	h := blake3.New(32, nil)
	for _, f := range scanned {
		digestLine(h, f.rel, f.size, f.mode, f.mtime)
	}
	return hex.EncodeToString(h.Sum(nil)), len(scanned), nil
}

// Digest sums up the files of m as DirDigest does for a directory.
func (m *Manifest) Digest() string {
	h := blake3.New(32, nil)
	for _, f := range m.Files {
		digestLine(h, f.Path, f.Size, f.Mode, f.MTime)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func digestLine(w io.Writer, path string, size int64, mode fs.FileMode, mtime time.Time) {
	fmt.Fprintf(w, "%q %d %o %d\n", path, size, mode.Perm(), mtime.UnixNano())
}

// Excluded reports whether a file or directory called name matches one of
// the globs (path.Match syntax, on the name alone). A directory that
// matches is left out with everything in it.
func Excluded(name string, globs []string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// checkLimits refuses a directory whose manifest would break the format's
// limits, before anything is read or sent.
func checkLimits(files []scanned, chunkSize int64) error {
	if len(files) > MaxFiles {
		return fmt.Errorf("checkpoint: the directory holds %d files, more than a checkpoint may (%d)", len(files), MaxFiles)
	}
	chunks := int64(0)
	for _, f := range files {
		chunks += (f.size + chunkSize - 1) / chunkSize
	}
	if chunks > MaxChunks {
		return fmt.Errorf("checkpoint: the directory makes %d chunks of %d bytes, more than a checkpoint may (%d); use a larger chunk size", chunks, chunkSize, MaxChunks)
	}
	return nil
}

// chunkSet says which chunks a commit need not upload: those of the parent
// checkpoint (published, so every one of them was stored whole when it was
// committed, and a GC keeps them while the parent is referenced), and those
// this commit found stored with their length or claimed already. No listing
// of the store: a commit's requests grow with what it writes, not with what
// the store holds.
type chunkSet struct {
	mu sync.Mutex
	m  map[string]int64 // chunk -> its length, known present or claimed
}

func (r *Repo) newChunkSet(parent *Manifest) *chunkSet {
	set := &chunkSet{m: map[string]int64{}}
	if parent != nil {
		for _, f := range parent.Files {
			for i, h := range f.Chunks {
				_, n := chunkSpan(f.Size, parent.ChunkSize, i)
				set.m[h] = n
			}
		}
	}
	return set
}

// claim reports whether this reader is the first to see chunk h of length
// n, and records it: the first one looks for it in the store (chunkStored)
// and uploads it unless it is there whole.
func (s *chunkSet) claim(h string, n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if size, ok := s.m[h]; ok && size == n {
		return false
	}
	s.m[h] = n
	return true
}

type scanned struct {
	rel   string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

// scanDir lists the regular files under dir, sorted by path, leaving out
// baton's own entries (ReservedPrefix) and every file or directory whose
// name matches an exclude glob. Symbolic links and special files are not part of a checkpoint.
func scanDir(dir string, exclude []string) ([]scanned, error) {
	var files []scanned
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil // removed while the walk ran (a temporary file renamed away)
			}
			return err
		}
		top := p != dir && filepath.Dir(p) == dir
		if p != dir && Excluded(d.Name(), exclude) || top && strings.HasPrefix(d.Name(), ReservedPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := storage.CheckKey(rel); err != nil {
			return fmt.Errorf("%s cannot be part of a checkpoint: %w", p, err)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, scanned{rel: rel, size: fi.Size(), mode: fi.Mode().Perm(), mtime: fi.ModTime()})
		return nil
	})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %v", ErrDirChanged, err)
		}
		return nil, fmt.Errorf("scanning %s: %w", dir, err)
	}
	slices.SortFunc(files, func(a, b scanned) int { return strings.Compare(a.rel, b.rel) })
	return files, nil
}

// hashAndUpload fills m.Files: unchanged files from the parent whose chunks
// are all in the store intact, the others read, hashed and their missing or
// torn chunks uploaded, counted on tr. It returns the bytes uploaded.
func (r *Repo) hashAndUpload(ctx context.Context, dir string, files []scanned, parent *Manifest, present *chunkSet, m *Manifest, tr *progress.Transfer) (int64, error) {
	// A parent entry is reused only if its mtime was well before the
	// parent's scan: a file written within a timestamp tick of the scan
	// could be rewritten with the same size and mtime ("racily clean", as
	// git calls it), so it is read again.
	previous := map[string]File{}
	if parent != nil && parent.ChunkSize == r.opts.ChunkSize {
		settled := parent.ScannedAt.Add(-racyWindow)
		for _, f := range parent.Files {
			if f.MTime.Before(settled) {
				previous[f.Path] = f
			}
		}
	}
	reused := func(f scanned) (File, bool) {
		p, ok := previous[f.rel]
		return p, ok && p.Size == f.size && p.Mode == f.mode && p.MTime.Equal(f.mtime)
	}
	var readFiles, readBytes int64
	for _, f := range files {
		if _, ok := reused(f); !ok {
			readFiles, readBytes = readFiles+1, readBytes+f.size
		}
	}
	tr.Plan(readFiles, readBytes)
	var uploaded atomic.Int64
	buffers := sync.Pool{New: func() any { b := newFrame(r.opts.ChunkSize); return &b }}
	uploads, uctx := errgroup.WithContext(ctx)
	uploads.SetLimit(r.opts.Workers)
	reads, rctx := errgroup.WithContext(uctx)
	reads.SetLimit(readers)
	for i, f := range files {
		if p, ok := reused(f); ok {
			m.Files[i] = p
			continue
		}
		reads.Go(func() error {
			entry, err := r.readFile(rctx, filepath.Join(dir, filepath.FromSlash(f.rel)), f, func(hash string, chunk *[]byte, n int) {
				if !present.claim(hash, int64(n)) {
					buffers.Put(chunk)
					tr.Add(0, int64(n))
					return
				}
				uploads.Go(func() error {
					defer buffers.Put(chunk)
					// A chunk is present only whole: a server may keep a
					// partial object under the final name when its client
					// died mid-PUT (a torn chunk); that one is sent again.
					if ok, err := r.chunkStored(uctx, hash, int64(n)); err != nil || ok {
						tr.Add(0, int64(n))
						return err
					}
					object := r.sealFrame(hash, *chunk, int64(n))
					_, err := r.store.Put(uctx, chunkKey(hash), storage.BytesPayload(object), storage.PutOptions{})
					if err != nil {
						return fmt.Errorf("uploading a chunk of %s: %w", f.rel, err)
					}
					uploaded.Add(int64(n))
					tr.Add(0, int64(n))
					return nil
				})
			}, &buffers)
			m.Files[i] = entry
			if err == nil {
				tr.Add(1, 0)
			}
			return err
		})
	}
	err := reads.Wait()
	if uerr := uploads.Wait(); err == nil {
		err = uerr
	}
	return uploaded.Load(), err
}

// readFile reads the file at p chunk by chunk, hashing each chunk and the
// whole, and hands every chunk to send (which owns the buffer from then on).
func (r *Repo) readFile(ctx context.Context, p string, f scanned, send func(hash string, chunk *[]byte, n int), buffers *sync.Pool) (File, error) {
	entry := File{Path: f.rel, Size: f.size, Mode: f.mode, MTime: f.mtime}
	fh, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return entry, fmt.Errorf("%w: %s", ErrDirChanged, f.rel)
		}
		return entry, err
	}
	defer fh.Close()
	whole := blake3.New(32, nil)
	for off := int64(0); off < f.size; off += r.opts.ChunkSize {
		if err := ctx.Err(); err != nil {
			return entry, err
		}
		want := min(r.opts.ChunkSize, f.size-off)
		buf := buffers.Get().(*[]byte)
		data := frameData(*buf, want)
		n, err := io.ReadFull(fh, data)
		if err != nil {
			buffers.Put(buf)
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return entry, fmt.Errorf("%w: %s shrank while it was read", ErrDirChanged, f.rel)
			}
			return entry, fmt.Errorf("reading %s: %w", f.rel, err)
		}
		whole.Write(data)
		h := r.chunkName(data)
		entry.Chunks = append(entry.Chunks, h)
		send(h, buf, n)
	}
	entry.Hash = hex.EncodeToString(whole.Sum(nil))
	if entry.Chunks == nil {
		entry.Chunks = []string{}
	}
	return entry, nil
}
