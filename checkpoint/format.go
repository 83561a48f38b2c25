// Package checkpoint is the checkpoint repository: a run's checkpoint
// directory committed to a storage.Store as content-addressed chunks and one
// manifest per commit, published by moving a pointer with a conditional
// write, under a lease that fences off hosts that lost the run. It knows
// nothing of processes or platforms. docs/checkpoint-format.md is the spec of
// what it writes.
package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/batonrun/baton/sync/storage"
)

// FormatVersion is the manifest format this package writes and the newest
// it reads.
const FormatVersion = 1

// HashName names the chunk and file hash: BLAKE3 with 256-bit output, hex
// encoded. BenchmarkHash compares it with SHA-256: 3.6 GB/s against 1.7 GB/s
// on one core of the project's machine.
const HashName = "blake3-256"

// Limits on what a manifest may describe; a manifest beyond them is refused,
// by a reader as it streams in, and by a committer before it writes one.
// MaxFiles and MaxChunks bound what a reader holds of one manifest (about
// 40 MiB of entries and 80 MiB of chunk hashes) whatever else it says.
const (
	MaxFiles     = 1 << 18 // files in one checkpoint (262,144)
	MaxChunks    = 1 << 20 // chunk references in one checkpoint: 4 TiB of 4 MiB chunks
	MaxFileSize  = 1 << 42 // 4 TiB
	MaxTotalSize = 1 << 44 // 16 TiB in one checkpoint
	MaxChunkSize = 1 << 30 // 1 GiB
	MinChunkSize = 64 << 10
	MaxMetaBytes = 64 << 10
)

// Keys of the remote layout, relative to the store's prefix.
func chunkKey(hash string) string { return "chunks/" + hash[:2] + "/" + hash }

// parseChunkKey returns the hash a chunk key names, if it is one.
func parseChunkKey(key string) (string, bool) {
	hash := path.Base(key)
	return hash, validHash(hash) && key == chunkKey(hash)
}

func runPrefix(run string) string      { return "runs/" + run + "/" }
func leaseKey(run string) string       { return runPrefix(run) + "lease.json" }
func latestKey(run string) string      { return runPrefix(run) + "latest.json" }
func manifestPrefix(run string) string { return runPrefix(run) + "manifests/" }
func manifestKey(run string, seq int64) string {
	return fmt.Sprintf("%s%012d.json", manifestPrefix(run), seq)
}

// Manifest describes one committed checkpoint: every file of the directory
// with its ordered chunks.
type Manifest struct {
	Version   int       `json:"version"`
	Run       string    `json:"run"`
	Seq       int64     `json:"seq"`
	Parent    int64     `json:"parent"` // seq of the checkpoint this one followed; 0 for the first
	Epoch     int64     `json:"epoch"`  // lease epoch of the committer
	CreatedAt time.Time `json:"created_at"`
	// ScannedAt is when the committer scanned the directory, by the host's
	// clock: a file whose mtime is not well before it may have changed
	// within the same timestamp tick, so the next commit reads it again.
	ScannedAt time.Time `json:"scanned_at"`
	Host      string    `json:"host"`
	Platform  string    `json:"platform"`
	Hash      string    `json:"hash"`       // HashName
	ChunkSize int64     `json:"chunk_size"` // every chunk but a file's last has exactly this size
	// FileCount is len(Files); a reader that wants the header alone (baton
	// checkpoint ls) stops before Files. FileCount, Size and NewBytes come
	// before Files in what this baton writes.
	FileCount int `json:"file_count"`
	// Size is the sum of the files' sizes; NewBytes what this commit
	// uploaded in chunks the store lacked.
	Size     int64             `json:"size"`
	NewBytes int64             `json:"new_bytes"`
	Meta     map[string]string `json:"meta,omitempty"`
	Files    []File            `json:"files"`
}

// File is one regular file of a checkpoint.
type File struct {
	Path   string      `json:"path"` // slash-separated, relative to the checkpoint directory
	Size   int64       `json:"size"`
	Mode   fs.FileMode `json:"mode"` // permission bits only
	MTime  time.Time   `json:"mtime"`
	Hash   string      `json:"hash"`   // of the whole content
	Chunks []string    `json:"chunks"` // hashes, in order
}

// Latest is the pointer that names the newest committed manifest. Readers
// follow it and nothing else.
type Latest struct {
	Seq   int64 `json:"seq"`
	Epoch int64 `json:"epoch"`
	// ManifestETag is the ETag of manifests/<seq>.json when it was written.
	ManifestETag string    `json:"manifest_etag"`
	UpdatedAt    time.Time `json:"updated_at"`
	Holder       string    `json:"holder"`
	// Encryption marks an encrypted run (nil: a plain one).
	Encryption *Encryption `json:"encryption,omitempty"`
}

// LeaseRecord is the content of lease.json: who may commit to the run now.
type LeaseRecord struct {
	Holder    string    `json:"holder"`
	Epoch     int64     `json:"epoch"`
	ExpiresAt time.Time `json:"expires_at"`
	Platform  string    `json:"platform"`
	Host      string    `json:"host"`
	// Encryption marks an encrypted run (nil: a plain one).
	Encryption *Encryption `json:"encryption,omitempty"`
}

// ErrBadManifest is wrapped by every error about a manifest or pointer that
// breaks the format: they are untrusted input.
var ErrBadManifest = errors.New("invalid manifest")

// CheckRunID returns an error unless id can name a run: 1 to 128 letters,
// digits, dots, dashes and underscores, not starting with a dot.
func CheckRunID(id string) error {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return fmt.Errorf("run id %q: want 1 to 128 characters of [A-Za-z0-9._-], not starting with a dot", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("run id %q: character %q not allowed (want [A-Za-z0-9._-])", id, r)
		}
	}
	return nil
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validate checks everything a restore relies on: version, identity, sane
// sizes and counts, paths that stay inside the target directory, and chunk
// lists that add up to the file sizes.
func (m *Manifest) validate(run string, seq int64) error {
	if len(m.Files) > MaxFiles {
		return fmt.Errorf("%d files, more than %d", len(m.Files), MaxFiles)
	}
	if m.FileCount != len(m.Files) {
		return fmt.Errorf("file_count is %d, the manifest lists %d files", m.FileCount, len(m.Files))
	}
	if err := m.validateHeader(run, seq); err != nil {
		return err
	}
	c := newEntryChecker(m)
	for _, f := range m.Files {
		if err := c.add(f); err != nil {
			return err
		}
	}
	return c.finish()
}

// entryChecker checks a manifest's files one at a time, so that a reader
// can check a manifest it does not hold whole.
type entryChecker struct {
	m      *Manifest
	seen   map[string]bool
	total  int64
	chunks int
}

func newEntryChecker(m *Manifest) *entryChecker {
	return &entryChecker{m: m, seen: make(map[string]bool, len(m.Files))}
}

// add checks one file, and that it adds to no limit and repeats no path.
func (c *entryChecker) add(f File) error {
	if c.chunks += len(f.Chunks); c.chunks > MaxChunks {
		return fmt.Errorf("more than %d chunks in the checkpoint", MaxChunks)
	}
	if err := storage.CheckKey(f.Path); err != nil || path.Clean(f.Path) != f.Path {
		return fmt.Errorf("file path %q is not a clean relative path", f.Path)
	}
	if c.seen[f.Path] {
		return fmt.Errorf("file %q listed twice", f.Path)
	}
	c.seen[f.Path] = true
	if f.Size < 0 || f.Size > MaxFileSize {
		return fmt.Errorf("file %q: size %d outside [0, %d]", f.Path, f.Size, int64(MaxFileSize))
	}
	if c.total += f.Size; c.total > MaxTotalSize {
		return fmt.Errorf("files add up to more than %d bytes", int64(MaxTotalSize))
	}
	if f.Mode&^fs.ModePerm != 0 {
		return fmt.Errorf("file %q: mode %v is not plain permission bits", f.Path, f.Mode)
	}
	if want := (f.Size + c.m.ChunkSize - 1) / c.m.ChunkSize; int64(len(f.Chunks)) != want {
		return fmt.Errorf("file %q: %d chunks for %d bytes of %d-byte chunks, want %d", f.Path, len(f.Chunks), f.Size, c.m.ChunkSize, want)
	}
	if !validHash(f.Hash) {
		return fmt.Errorf("file %q: bad hash %q", f.Path, f.Hash)
	}
	for _, h := range f.Chunks {
		if !validHash(h) {
			return fmt.Errorf("file %q: bad chunk hash %q", f.Path, h)
		}
	}
	return nil
}

// finish checks what needs every file: that no path is both a file and a
// directory of another, and the total size.
func (c *entryChecker) finish() error {
	var metaBytes int
	for k, v := range c.m.Meta {
		metaBytes += len(k) + len(v)
	}
	if metaBytes > MaxMetaBytes {
		return fmt.Errorf("meta of %d bytes, more than %d", metaBytes, MaxMetaBytes)
	}
	for p := range c.seen {
		for dir := path.Dir(p); dir != "." && dir != "/"; dir = path.Dir(dir) {
			if c.seen[dir] {
				return fmt.Errorf("%q is a file and also the directory of %q", dir, p)
			}
		}
	}
	if c.total != c.m.Size {
		return fmt.Errorf("files add up to %d bytes, manifest says %d", c.total, c.m.Size)
	}
	return nil
}

// chunkSpan returns the offset and length of chunk i of a file of size.
func chunkSpan(size, chunkSize int64, i int) (off, n int64) {
	off = int64(i) * chunkSize
	return off, min(chunkSize, size-off)
}
