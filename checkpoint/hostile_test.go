package checkpoint_test

// Manifests and pointers are untrusted input: a restore of a hostile one is
// refused with an error wrapping ErrBadManifest, before anything is written,
// and leaves the target, its parent and everything around them as they were.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/storage"
)

// hostileSetup is a store with one good checkpoint (seq 1: notes.txt and
// a four-chunk weights.bin) and a directory tree to restore into: root/work
// is the target's parent and holds a symbolic link x -> root/outside2;
// root/work/ckpt is the target, holding old.txt and a link x ->
// root/outside; root/outside and root/outside2 are empty directories.
type hostileSetup struct {
	store   storage.Store
	repo    *checkpoint.Repo
	good    *checkpoint.Manifest
	root    string
	target  string
	outside string
}

func newHostileSetup(t *testing.T) *hostileSetup {
	t.Helper()
	ctx := t.Context()
	store := newStore(t)
	repo, lease := acquireOn(t, store, "a", newSyncClock().now)
	h := &hostileSetup{store: store, repo: repo, root: t.TempDir()}
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"notes.txt": []byte("hello\n"), "weights.bin": content(200_000, 5)})
	var err error
	if h.good, err = h.repo.Commit(ctx, lease, src, nil); err != nil {
		t.Fatal(err)
	}
	if len(h.good.Files) != 2 || h.good.Files[0].Path != "notes.txt" || len(h.good.Files[1].Chunks) != 4 {
		t.Fatalf("unexpected good manifest: %+v", h.good.Files)
	}
	h.outside = filepath.Join(h.root, "outside")
	work := filepath.Join(h.root, "work")
	h.target = filepath.Join(work, "ckpt")
	for _, d := range []string{h.outside, filepath.Join(h.root, "outside2"), h.target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeTree(t, h.target, map[string][]byte{"old.txt": []byte("precious")})
	if err := os.Symlink(h.outside, filepath.Join(h.target, "x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(h.root, "outside2"), filepath.Join(work, "x")); err != nil {
		t.Fatal(err)
	}
	return h
}

// goodCopy is a deep copy of the good manifest, renumbered as seq.
func (h *hostileSetup) goodCopy(t *testing.T, seq int64) *checkpoint.Manifest {
	t.Helper()
	b, err := json.Marshal(h.good)
	if err != nil {
		t.Fatal(err)
	}
	var m checkpoint.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m.Seq = seq
	return &m
}

func (h *hostileSetup) put(t *testing.T, key string, b []byte) {
	t.Helper()
	if _, err := h.store.Put(context.Background(), key, storage.BytesPayload(b), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const hostileSeq = 2

func TestHostileManifests(t *testing.T) {
	h := newHostileSetup(t)
	outsideAbs := filepath.Join(h.outside, "pwned")
	hash := func(c byte) string { return strings.Repeat(string(c), 64) }
	// copyOfFirst adds a copy of the first file (notes.txt) at path, its
	// size added to the total.
	copyOfFirst := func(path string) func(m *checkpoint.Manifest) {
		return func(m *checkpoint.Manifest) {
			f := m.Files[0]
			f.Path = path
			m.Files = append(m.Files, f)
			m.Size += f.Size
		}
	}
	cases := []struct {
		name string
		// edit changes a copy of the good manifest (as seq 2).
		edit func(m *checkpoint.Manifest)
		// raw, if set, is the manifest instead.
		raw func() []byte
		// latest, if set, is latest.json instead of one naming seq 2.
		latest string
		// want is a piece of the error message.
		want string
		// once: restore only once (the case is slow to parse).
		once bool
	}{
		// Paths.
		{name: "absolute path", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = outsideAbs }, want: "not a clean relative path"},
		{name: "dot-dot", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = "../pwned" }, want: "not a clean relative path"},
		{name: "dot-dot further in", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = "a/../../x" }, want: "not a clean relative path"},
		{name: "dot-dot out of the parent too", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = "../../outside/pwned" }, want: "not a clean relative path"},
		{name: "dot-dot that stays inside", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = "a/../notes.txt" }, want: "not a clean relative path"},
		{name: "dot segment", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = "./notes.txt" }, want: "not a clean relative path"},
		{name: "lone dot", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = "." }, want: "not a clean relative path"},
		{name: "empty segment", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = "a//b" }, want: "not a clean relative path"},
		{name: "trailing slash", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = "notes/" }, want: "not a clean relative path"},
		{name: "empty path", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = "" }, want: "not a clean relative path"},
		{name: "NUL byte", edit: func(m *checkpoint.Manifest) { m.Files[0].Path = "notes\x00.txt" }, want: "not a clean relative path"},
		{name: "file that is also a directory", edit: copyOfFirst("notes.txt/inner"), want: "is a file and also the directory"},
		{name: "file that is also a deeper directory", edit: copyOfFirst("notes.txt/a/b/c"), want: "is a file and also the directory"},
		{name: "file listed twice", edit: copyOfFirst("notes.txt"), want: "listed twice"},

		// Sizes and counts.
		{name: "absurd file size", edit: func(m *checkpoint.Manifest) {
			m.Files[1].Size = checkpoint.MaxFileSize + 1
			m.Size = m.Files[0].Size + m.Files[1].Size
		}, want: "size"},
		{name: "negative file size", edit: func(m *checkpoint.Manifest) {
			m.Files[0].Size = -1
			m.Size = m.Files[1].Size - 1
		}, want: "size"},
		{name: "files beyond the total cap", edit: func(m *checkpoint.Manifest) {
			// Five files of the largest size, in 1 GiB chunks: each is
			// valid, together they pass MaxTotalSize.
			m.ChunkSize = checkpoint.MaxChunkSize
			chunks := make([]string, checkpoint.MaxFileSize/checkpoint.MaxChunkSize)
			for i := range chunks {
				chunks[i] = hash('a')
			}
			m.Files, m.Size = nil, 0
			for i := range 5 {
				m.Files = append(m.Files, checkpoint.File{Path: fmt.Sprintf("big-%d", i), Size: checkpoint.MaxFileSize, Mode: 0o644, Hash: hash('b'), Chunks: chunks})
				m.Size += checkpoint.MaxFileSize
			}
		}, want: "add up to more than"},
		{name: "sizes that do not add up", edit: func(m *checkpoint.Manifest) { m.Size++ }, want: "add up to"},
		{name: "too few chunks", edit: func(m *checkpoint.Manifest) { m.Files[1].Chunks = m.Files[1].Chunks[:3] }, want: "chunks for"},
		{name: "too many chunks", edit: func(m *checkpoint.Manifest) { m.Files[0].Chunks = append(m.Files[0].Chunks, m.Files[1].Chunks[0]) }, want: "chunks for"},
		{name: "empty file with a chunk", edit: func(m *checkpoint.Manifest) {
			m.Files = append(m.Files, checkpoint.File{Path: "zero", Mode: 0o644, Hash: m.Files[0].Hash, Chunks: []string{m.Files[0].Chunks[0]}})
		}, want: "chunks for"},
		{name: "chunk size zero", edit: func(m *checkpoint.Manifest) { m.ChunkSize = 0 }, want: "chunk size"},
		{name: "chunk size one byte", edit: func(m *checkpoint.Manifest) { m.ChunkSize = 1 }, want: "chunk size"},
		{name: "chunk size beyond the cap", edit: func(m *checkpoint.Manifest) { m.ChunkSize = checkpoint.MaxChunkSize + 1 }, want: "chunk size"},
		{name: "too many files", raw: func() []byte {
			// MaxFiles+1 empty entries: the count is refused before any
			// entry is looked at.
			var b bytes.Buffer
			fmt.Fprintf(&b, `{"version":1,"run":%q,"seq":%d,"epoch":1,"hash":%q,"chunk_size":65536,"files":[`, testRun, hostileSeq, checkpoint.HashName)
			b.WriteString(strings.Repeat("{},", checkpoint.MaxFiles))
			b.WriteString("{}]}")
			return b.Bytes()
		}, want: fmt.Sprintf("more than %d files", checkpoint.MaxFiles), once: true},
		{name: "meta too big", edit: func(m *checkpoint.Manifest) {
			m.Meta = map[string]string{"junk": strings.Repeat("j", checkpoint.MaxMetaBytes)}
		}, want: "meta"},

		// Hashes.
		{name: "file hash too short", edit: func(m *checkpoint.Manifest) { m.Files[0].Hash = m.Files[0].Hash[:63] }, want: "bad hash"},
		{name: "file hash in upper case", edit: func(m *checkpoint.Manifest) { m.Files[0].Hash = strings.ToUpper(m.Files[0].Hash) }, want: "bad hash"},
		{name: "file hash not hex", edit: func(m *checkpoint.Manifest) { m.Files[0].Hash = hash('z') }, want: "bad hash"},
		{name: "file hash missing", edit: func(m *checkpoint.Manifest) { m.Files[0].Hash = "" }, want: "bad hash"},
		{name: "chunk hash that climbs out of the store", edit: func(m *checkpoint.Manifest) {
			m.Files[0].Chunks[0] = "../../runs/" + testRun + "/latest.json" + strings.Repeat("0", 64-len("../../runs/"+testRun+"/latest.json"))
		}, want: "bad chunk hash"},
		{name: "chunk hash too long", edit: func(m *checkpoint.Manifest) { m.Files[1].Chunks[2] += "00" }, want: "bad chunk hash"},
		{name: "chunk hash empty", edit: func(m *checkpoint.Manifest) { m.Files[1].Chunks[2] = "" }, want: "bad chunk hash"},
		{name: "other hash algorithm", edit: func(m *checkpoint.Manifest) { m.Hash = "sha256" }, want: "hash"},

		// Identity and format.
		{name: "version 99", edit: func(m *checkpoint.Manifest) { m.Version = 99 }, want: "format version 99"},
		{name: "version 0", edit: func(m *checkpoint.Manifest) { m.Version = 0 }, want: "format version 0"},
		{name: "another run's manifest", edit: func(m *checkpoint.Manifest) { m.Run = "other-run" }, want: "other-run"},
		{name: "another seq's manifest", edit: func(m *checkpoint.Manifest) { m.Seq = 7 }, want: "checkpoint 7"},
		{name: "setuid mode", edit: func(m *checkpoint.Manifest) { m.Files[0].Mode = fs.ModeSetuid | 0o755 }, want: "mode"},
		{name: "symlink mode", edit: func(m *checkpoint.Manifest) { m.Files[0].Mode = fs.ModeSymlink | 0o777 }, want: "mode"},
		{name: "directory mode", edit: func(m *checkpoint.Manifest) { m.Files[0].Mode = fs.ModeDir | 0o755 }, want: "mode"},
		{name: "not JSON", raw: func() []byte { return []byte("{not json") }, want: "invalid"},
		{name: "JSON of the wrong shape", raw: func() []byte { return []byte(`{"version":"1","files":{}}`) }, want: "invalid"},
		{name: "JSON null", raw: func() []byte { return []byte("null") }, want: "invalid manifest"},

		// The pointer.
		{name: "negative seq in latest.json", latest: `{"seq":-1,"epoch":1}`, want: "latest.json"},
		{name: "epoch 0 in latest.json", latest: fmt.Sprintf(`{"seq":%d,"epoch":0}`, hostileSeq), want: "latest.json"},
		{name: "latest.json not JSON", latest: "seq=2", want: "latest.json"},
		{name: "latest.json with a string seq", latest: `{"seq":"2","epoch":1}`, want: "latest.json"},
		{name: "latest.json too big", latest: fmt.Sprintf(`{"seq":%d,"epoch":1,"holder":"%s"}`, hostileSeq, strings.Repeat("h", 70<<10)), want: "latest.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			var manifest []byte
			switch {
			case tc.raw != nil:
				manifest = tc.raw()
			case tc.edit != nil:
				m := h.goodCopy(t, hostileSeq)
				tc.edit(m)
				manifest = mustJSON(t, m)
			default:
				manifest = mustJSON(t, h.goodCopy(t, hostileSeq))
			}
			h.put(t, manifestKey(hostileSeq), manifest)
			latest := []byte(tc.latest)
			if tc.latest == "" {
				latest = mustJSON(t, checkpoint.Latest{Seq: hostileSeq, Epoch: 1})
			}
			h.put(t, latestKey(), latest)

			before := fsState(t, h.root)
			restores := []struct {
				what string
				seq  int64
			}{{"restore of latest", 0}}
			if tc.latest == "" && !tc.once {
				restores = append(restores, struct {
					what string
					seq  int64
				}{"restore of checkpoint 2", hostileSeq})
			}
			for _, r := range restores {
				m, err := h.repo.Restore(ctx, r.seq, h.target)
				if !errors.Is(err, checkpoint.ErrBadManifest) {
					t.Fatalf("%s: checkpoint %d, err %v; want ErrBadManifest", r.what, seqOf(m), err)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: error %q does not say %q", r.what, err, tc.want)
				}
				sameState(t, "the tree around the target after a refused "+r.what, fsState(t, h.root), before)
			}
			if tc.latest == "" && !tc.once {
				if _, err := h.repo.Manifest(ctx, hostileSeq); !errors.Is(err, checkpoint.ErrBadManifest) {
					t.Fatalf("Manifest(%d): %v; want ErrBadManifest", hostileSeq, err)
				}
			}
		})
	}

	// The setup is sound: the same steps with the good manifest restore.
	h.put(t, manifestKey(hostileSeq), mustJSON(t, h.goodCopy(t, hostileSeq)))
	h.put(t, latestKey(), mustJSON(t, checkpoint.Latest{Seq: hostileSeq, Epoch: 1}))
	if m, err := h.repo.Restore(t.Context(), 0, h.target); err != nil || m.Seq != hostileSeq {
		t.Fatalf("restore of the good manifest: %v", err)
	}
}

// TestLatestNamesMissingManifest: a pointer to a manifest that is not there
// is an error that says so, and writes nothing.
func TestLatestNamesMissingManifest(t *testing.T) {
	h := newHostileSetup(t)
	h.put(t, latestKey(), mustJSON(t, checkpoint.Latest{Seq: 99, Epoch: 1}))
	before := fsState(t, h.root)
	_, err := h.repo.Restore(t.Context(), 0, h.target)
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "99") {
		t.Fatalf("restore: %v; want a not-found error naming checkpoint 99", err)
	}
	sameState(t, "the tree around the target", fsState(t, h.root), before)
}

// TestRestoreThroughSymlinks: a manifest path whose first component is the
// name of a symbolic link in the target (x -> outside) and in its parent
// (x -> outside2) is a valid path; the restore creates a real directory x
// in the fresh target and writes nothing through either link.
func TestRestoreThroughSymlinks(t *testing.T) {
	h := newHostileSetup(t)
	m := h.goodCopy(t, hostileSeq)
	m.Files[0].Path = "x/pwned"
	m.Files[1].Path = "x/y/pwned.bin"
	h.put(t, manifestKey(hostileSeq), mustJSON(t, m))
	h.put(t, latestKey(), mustJSON(t, checkpoint.Latest{Seq: hostileSeq, Epoch: 1}))

	outside := fsState(t, filepath.Join(h.root, "outside"))
	outside2 := fsState(t, filepath.Join(h.root, "outside2"))
	if _, err := h.repo.Restore(t.Context(), 0, h.target); err != nil {
		t.Fatalf("restore: %v", err)
	}
	sameState(t, "root/outside", fsState(t, filepath.Join(h.root, "outside")), outside)
	sameState(t, "root/outside2", fsState(t, filepath.Join(h.root, "outside2")), outside2)
	if target, err := os.Readlink(filepath.Join(h.root, "work", "x")); err != nil || target != filepath.Join(h.root, "outside2") {
		t.Fatalf("the parent's link: %q, %v", target, err)
	}
	if fi, err := os.Lstat(filepath.Join(h.target, "x")); err != nil || !fi.IsDir() {
		t.Fatalf("target/x is not a real directory: %v, %v", fi, err)
	}
	want := map[string][]byte{"x/pwned": []byte("hello\n"), "x/y/pwned.bin": content(200_000, 5)}
	if d := diffTrees(readTree(t, h.target), want); d != "" {
		t.Fatalf("restored tree: %s", d)
	}
	// Nothing but the target changed in its parent.
	entries, err := os.ReadDir(filepath.Join(h.root, "work"))
	if err != nil || len(entries) != 2 {
		t.Fatalf("the parent holds %v (%v), want ckpt and x only", entries, err)
	}
}
