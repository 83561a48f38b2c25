package checkpoint_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/storage"
)

// marker is a string each test checkpoint holds in a file's content, a
// path and its meta, that no store object of an encrypted run may hold.
const marker = "BATON-PLAINTEXT-MARKER-7f3a"

func testKey(t testing.TB, b byte) *checkpoint.Key {
	t.Helper()
	k, err := checkpoint.ParseKey(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openKeyed opens run in s with key (nil: a plain run) for holder ("" for
// a reader), as openOn does.
func openKeyed(t testing.TB, s storage.Store, run, holder string, key *checkpoint.Key) *checkpoint.Repo {
	t.Helper()
	return openWith(t, s, holder, func(o *checkpoint.Options) { o.Run, o.Key = run, key })
}

// markedTree is a checkpoint whose content, paths and meta hold marker.
func markedTree() map[string][]byte {
	model := content(300<<10, 1)
	copy(model[70000:], marker) // inside the second chunk
	return map[string][]byte{
		"model.safetensors":       model,
		"optim/" + marker + ".pt": append([]byte(marker+" "), content(100<<10, 2)...),
		"small.json":              []byte(`{"note": "` + marker + `"}`),
	}
}

func commitKeyed(t testing.TB, r *checkpoint.Repo, files map[string][]byte) (*checkpoint.Manifest, string) {
	t.Helper()
	lease, err := r.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(t.Context())
	src := t.TempDir()
	writeTree(t, src, files)
	m, err := r.Commit(t.Context(), lease, src, map[string]string{"note": marker})
	if err != nil {
		t.Fatal(err)
	}
	return m, src
}

// TestEncryptedStoreHoldsNoPlaintext is the test: a store written
// with a key holds no plaintext of a checkpoint's marker string, in any
// object, and restores only with the key.
func TestEncryptedStoreHoldsNoPlaintext(t *testing.T) {
	eachStore(t, func(t *testing.T, s storage.Store) {
		key := testKey(t, 1)
		files := markedTree()
		commitKeyed(t, openKeyed(t, s, testRun, "a", key), files)

		keys := listKeys(t, s, "")
		if len(keys) < 5 {
			t.Fatalf("store holds only %v", keys)
		}
		for _, k := range keys {
			if strings.Contains(k, marker) {
				t.Errorf("object key %s holds the marker", k)
			}
			b, _ := rawObject(t, s, k)
			if bytes.Contains(b, []byte(marker)) {
				t.Errorf("object %s holds the marker in the clear", k)
			}
		}
		l, _ := readLatest(t, s)
		lease, _ := readLease(t, s)
		if l.Encryption == nil || l.Encryption.KeyID != key.ID() || lease.Encryption == nil || lease.Encryption.KeyID != key.ID() {
			t.Errorf("latest.json %+v and lease.json %+v do not mark the run encrypted with key %s", l.Encryption, lease.Encryption, key.ID())
		}

		dir := filepath.Join(t.TempDir(), "ckpt")
		m, err := openKeyed(t, s, testRun, "", key).Restore(t.Context(), 0, dir)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffTrees(readTree(t, dir), files); d != "" {
			t.Fatalf("restored tree differs: %s", d)
		}
		if m.Meta["note"] != marker {
			t.Errorf("meta %v", m.Meta)
		}
	})
}

func TestEncryptedRunNeedsItsKey(t *testing.T) {
	s := newStore(t)
	commitKeyed(t, openKeyed(t, s, testRun, "a", testKey(t, 1)), markedTree())
	dir := filepath.Join(t.TempDir(), "ckpt")

	_, err := openKeyed(t, s, testRun, "", nil).Restore(t.Context(), 0, dir)
	if want := "run run-1 is encrypted: pass its key (--encryption-key or BATON_ENCRYPTION_KEY)"; err == nil || err.Error() != want || !errors.Is(err, checkpoint.ErrEncrypted) {
		t.Errorf("restore without the key: %v, want %q", err, want)
	}
	if _, err := openKeyed(t, s, testRun, "", nil).List(t.Context()); !errors.Is(err, checkpoint.ErrEncrypted) {
		t.Errorf("ls without the key: %v", err)
	}
	wrong := testKey(t, 2)
	_, err = openKeyed(t, s, testRun, "", wrong).Restore(t.Context(), 0, dir)
	if err == nil || !strings.HasPrefix(err.Error(), "the key does not fit run run-1 (") || strings.Contains(err.Error(), "\n") || !errors.Is(err, checkpoint.ErrWrongKey) {
		t.Errorf("restore with a wrong key: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore left %s: %v", dir, err)
	}
	// A commit without the key, or with another, is refused too.
	r := openKeyed(t, s, testRun, "b", nil)
	lease, err := r.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"x": []byte("x")})
	if _, err := r.Commit(t.Context(), lease, src, nil); !errors.Is(err, checkpoint.ErrEncrypted) {
		t.Errorf("commit without the key into an encrypted run: %v", err)
	}
	// And a key on a plain run.
	plain := openKeyed(t, s, "plain", "a", nil)
	commitKeyed(t, plain, map[string][]byte{"x": []byte("x")})
	if _, err := openKeyed(t, s, "plain", "", testKey(t, 1)).Restore(t.Context(), 0, dir); err == nil || !strings.Contains(err.Error(), "is not encrypted") {
		t.Errorf("restore of a plain run with a key: %v", err)
	}
}

func TestEncryptedTamperedObjectsAreRefused(t *testing.T) {
	key := testKey(t, 1)
	t.Run("chunk", func(t *testing.T) {
		s := newStore(t)
		m, _ := commitKeyed(t, openKeyed(t, s, testRun, "a", key), markedTree())
		h := m.Files[0].Chunks[0]
		ck := "chunks/" + h[:2] + "/" + h
		b, _ := rawObject(t, s, ck)
		b[len(b)/2] ^= 1
		if _, err := s.Put(t.Context(), ck, storage.BytesPayload(b), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := openKeyed(t, s, testRun, "", key).Restore(t.Context(), 0, filepath.Join(t.TempDir(), "ckpt"))
		de, ok := errors.AsType[*checkpoint.DamagedChunkError](err)
		if !ok || de.Hash != h || de.Damage != checkpoint.ChunkNotAuthentic || !strings.Contains(err.Error(), ck) {
			t.Fatalf("restore of a tampered chunk: %v", err)
		}
		rep, err := openKeyed(t, s, testRun, "", key).Verify(t.Context(), nil, true)
		if err != nil || len(rep.Damaged) != 1 || rep.Damaged[0].Err.Hash != h {
			t.Fatalf("verify --deep of a tampered chunk: %+v, %v", rep, err)
		}
		// The same chunk sealed for another name (another chunk's object
		// put in its place) is refused too: the name is authenticated.
		other := m.Files[0].Chunks[1]
		ob, _ := rawObject(t, s, "chunks/"+other[:2]+"/"+other)
		if _, err := s.Put(t.Context(), ck, storage.BytesPayload(ob), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := openKeyed(t, s, testRun, "", key).Restore(t.Context(), 0, filepath.Join(t.TempDir(), "ckpt")); !errors.Is(err, checkpoint.ErrDamaged) || !strings.Contains(err.Error(), h) {
			t.Fatalf("restore of a swapped chunk: %v", err)
		}
		// Content sealed under a name that is not its keyed hash (only a
		// writer with the key can make one: a bug, not an attacker) opens,
		// so restore relies on the writers; verify --deep hashes it.
		plain := bytes.Clone(markedTree()["model.safetensors"][:len(b)-28])
		plain[0] ^= 1
		if _, err := s.Put(t.Context(), ck, storage.BytesPayload(checkpoint.SealChunk(key, h, plain)), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		rep, err = openKeyed(t, s, testRun, "", key).Verify(t.Context(), nil, true)
		if err != nil || len(rep.Damaged) != 1 || rep.Damaged[0].Err.Hash != h || rep.Damaged[0].Err.Damage != checkpoint.ChunkWrongContent {
			t.Fatalf("verify --deep of a chunk sealed under another content's name: %+v, %v", rep, err)
		}
	})
	for name, tamper := range map[string]func(map[string]any){
		"sealed": func(e map[string]any) {
			b, _ := base64.StdEncoding.DecodeString(e["sealed"].(string))
			b[len(b)/2] ^= 1
			e["sealed"] = base64.StdEncoding.EncodeToString(b)
		},
		"clear chunk list": func(e map[string]any) { e["chunks"] = e["chunks"].([]any)[1:] },
		"clear parent":     func(e map[string]any) { e["epoch"] = 7 },
	} {
		t.Run("manifest "+name, func(t *testing.T) {
			s := newStore(t)
			commitKeyed(t, openKeyed(t, s, testRun, "a", key), markedTree())
			b, _ := rawObject(t, s, manifestKey(1))
			var e map[string]any
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatal(err)
			}
			tamper(e)
			nb, _ := json.Marshal(orderedEnvelope(e))
			if _, err := s.Put(t.Context(), manifestKey(1), storage.BytesPayload(nb), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			_, err := openKeyed(t, s, testRun, "", key).Restore(t.Context(), 0, filepath.Join(t.TempDir(), "ckpt"))
			if !errors.Is(err, checkpoint.ErrBadManifest) || !strings.Contains(err.Error(), manifestKey(1)) || !strings.Contains(err.Error(), "tampered") {
				t.Fatalf("restore of a tampered manifest: %v", err)
			}
		})
	}
}

// orderedEnvelope writes e back with "envelope" first, as a reader expects.
func orderedEnvelope(e map[string]any) json.RawMessage {
	first, _ := json.Marshal(e["envelope"])
	delete(e, "envelope")
	rest, _ := json.Marshal(e)
	return json.RawMessage(append([]byte(`{"envelope":`+string(first)+`,`), rest[1:]...))
}

// TestKeylessGCKeepsEncryptedChunks: a GC without any key, with grace 0,
// over a store holding an encrypted run and a plain one, deletes the plain
// run's unreferenced chunks and none of the encrypted run's, which still
// restores.
func TestKeylessGCKeepsEncryptedChunks(t *testing.T) {
	s := newStore(t)
	key := testKey(t, 1)
	enc := openKeyed(t, s, testRun, "a", key)
	m1, _ := commitKeyed(t, enc, markedTree())
	tree2 := markedTree()
	tree2["small.json"] = []byte("changed")
	commitKeyed(t, enc, tree2)
	encChunks := map[string]bool{}
	for _, f := range m1.Files {
		for _, h := range f.Chunks {
			encChunks["chunks/"+h[:2]+"/"+h] = true
		}
	}

	plain := openKeyed(t, s, "plain", "a", nil)
	commitKeyed(t, plain, map[string][]byte{"a": content(200<<10, 9)})
	commitKeyed(t, plain, map[string][]byte{"a": content(200<<10, 10)})
	if _, err := plain.Retain(t.Context(), 1, 0); err != nil {
		t.Fatal(err)
	}
	before := listKeys(t, s, "chunks/")

	stats, err := checkpoint.GC(t.Context(), s, checkpoint.GCOptions{Grace: 0, Logger: quiet, Now: func() time.Time { return time.Now().Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Deleted == 0 {
		t.Fatalf("gc deleted nothing (%+v): the plain run's old chunks should have gone", stats)
	}
	after := map[string]bool{}
	for _, k := range listKeys(t, s, "chunks/") {
		after[k] = true
	}
	for _, k := range before {
		if encChunks[k] && !after[k] {
			t.Errorf("keyless gc deleted %s of the encrypted run", k)
		}
	}
	for _, r := range []*checkpoint.Repo{openKeyed(t, s, testRun, "", key), openKeyed(t, s, "plain", "", nil)} {
		if _, err := r.Restore(t.Context(), 0, filepath.Join(t.TempDir(), "ckpt")); err != nil {
			t.Fatalf("restore of %s after gc: %v", r.Run(), err)
		}
	}
	if _, err := openKeyed(t, s, testRun, "", key).Restore(t.Context(), 1, filepath.Join(t.TempDir(), "ckpt")); err != nil {
		t.Fatalf("restore of the encrypted run's first checkpoint after gc: %v", err)
	}
	// Retention with the key, then a keyless GC: the dropped checkpoint's
	// chunks that the kept one lacks go, the kept one still restores.
	if _, err := enc.Retain(t.Context(), 1, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.GC(t.Context(), s, checkpoint.GCOptions{Logger: quiet, Now: func() time.Time { return time.Now().Add(time.Minute) }}); err != nil {
		t.Fatal(err)
	}
	if _, err := openKeyed(t, s, testRun, "", key).Restore(t.Context(), 0, filepath.Join(t.TempDir(), "ckpt")); err != nil {
		t.Fatalf("restore after retention and gc: %v", err)
	}
}

// TestEncryptedDedup: the second commit of an encrypted run uploads only
// the chunks that changed, and verify (lengths, and --deep) passes.
func TestEncryptedDedup(t *testing.T) {
	s := newStore(t)
	r := openKeyed(t, s, testRun, "a", testKey(t, 1))
	tree := markedTree()
	commitKeyed(t, r, tree)
	n1 := len(listKeys(t, s, "chunks/"))
	model := bytes.Clone(tree["model.safetensors"])
	copy(model[200<<10:], content(10, 3)) // one 64 KiB chunk changes
	tree["model.safetensors"] = model
	m, _ := commitKeyed(t, r, tree)
	if m.NewBytes != 64<<10 {
		t.Errorf("second commit uploaded %d bytes, want one chunk of %d", m.NewBytes, 64<<10)
	}
	if n2 := len(listKeys(t, s, "chunks/")); n2 != n1+1 {
		t.Errorf("%d chunks after the second commit, %d after the first", n2, n1)
	}
	for _, deep := range []bool{false, true} {
		rep, err := r.Verify(t.Context(), []int64{1, 2}, deep)
		if err != nil || len(rep.Damaged) != 0 {
			t.Fatalf("verify (deep %v): %+v, %v", deep, rep, err)
		}
	}
	// A torn chunk (of the wrong stored length) is found by the length check.
	h := m.Files[0].Chunks[0]
	if _, err := s.Put(t.Context(), "chunks/"+h[:2]+"/"+h, storage.BytesPayload(make([]byte, 64<<10)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(t.Context(), nil, false)
	if err != nil || len(rep.Damaged) != 1 || rep.Damaged[0].Err.Damage != checkpoint.ChunkWrongSize {
		t.Fatalf("verify of a torn chunk: %+v, %v", rep, err)
	}
}

// TestEncryptedVerifyWithoutKey: verify (not deep) of an encrypted run
// needs no key: it checks every chunk the envelopes list for presence and
// sealed length, and finds a missing and a torn chunk with the checkpoints
// they break, as verify with the key does; --deep without the key is
// refused in one line.
func TestEncryptedVerifyWithoutKey(t *testing.T) {
	s := newStore(t)
	key := testKey(t, 1)
	r := openKeyed(t, s, testRun, "a", key)
	tree := markedTree()
	m1, _ := commitKeyed(t, r, tree)
	model := bytes.Clone(tree["model.safetensors"])
	copy(model[200<<10:], content(10, 3))
	tree["model.safetensors"] = model
	m2, _ := commitKeyed(t, r, tree)
	keyless := openKeyed(t, s, testRun, "", nil)

	keyed, err := r.Verify(t.Context(), []int64{1, 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, seqs := range [][]int64{nil, {1}, {1, 2}} {
		rep, err := keyless.Verify(t.Context(), seqs, false)
		if err != nil || len(rep.Damaged) != 0 || rep.Deep {
			t.Fatalf("keyless verify of %v: %+v, %v", seqs, rep, err)
		}
		want := seqs
		if seqs == nil {
			want = []int64{2}
		}
		if !slices.Equal(rep.Seqs, want) {
			t.Errorf("keyless verify of %v verified %v", seqs, rep.Seqs)
		}
		if len(seqs) == 2 && (rep.Chunks != keyed.Chunks || rep.Bytes != keyed.Bytes) {
			t.Errorf("keyless verify counts %d chunks, %d bytes; with the key %d, %d", rep.Chunks, rep.Bytes, keyed.Chunks, keyed.Bytes)
		}
	}
	if _, err := keyless.Verify(t.Context(), []int64{3}, false); err == nil {
		t.Error("keyless verify of a checkpoint that does not exist passed")
	}
	// verify --all: the published checkpoints, listed without the key,
	// while List (ls) still wants it.
	if seqs, err := keyless.Published(t.Context()); err != nil || !slices.Equal(seqs, []int64{1, 2}) {
		t.Errorf("keyless Published: %v, %v; want [1 2]", seqs, err)
	}
	if _, err := keyless.List(t.Context()); !errors.Is(err, checkpoint.ErrEncrypted) {
		t.Errorf("keyless List: %v, want ErrEncrypted", err)
	}

	// --deep opens every chunk: refused without the key, in one line.
	_, err = keyless.Verify(t.Context(), nil, true)
	if err == nil || !errors.Is(err, checkpoint.ErrEncrypted) || !strings.Contains(err.Error(), "--deep") || strings.Contains(err.Error(), "\n") {
		t.Errorf("keyless verify --deep: %v", err)
	}

	// A chunk both checkpoints share goes missing, the one only the second
	// holds is torn (stored at its plaintext length).
	shared, only2 := m1.Files[0].Chunks[0], ""
	for _, h := range m2.Files[0].Chunks {
		if !slices.Contains(m1.Files[0].Chunks, h) {
			only2 = h
		}
	}
	if m1.Files[0].Path != "model.safetensors" || only2 == "" || !slices.Contains(m2.Files[0].Chunks, shared) {
		t.Fatalf("unexpected manifests: %+v %+v", m1.Files[0], m2.Files[0])
	}
	if err := s.Delete(t.Context(), "chunks/"+shared[:2]+"/"+shared); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "chunks/"+only2[:2]+"/"+only2, storage.BytesPayload(make([]byte, 64<<10)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := keyless.Verify(t.Context(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range rep.Damaged {
		got[d.Err.Hash] = fmt.Sprint(d.Err.Damage, d.Err.Size, d.Err.Want, d.Checkpoints)
	}
	want := map[string]string{
		shared: fmt.Sprint(checkpoint.ChunkMissing, 0, 64<<10+28, []int64{1, 2}),
		only2:  fmt.Sprint(checkpoint.ChunkWrongSize, 64<<10, 64<<10+28, []int64{2}),
	}
	if !maps.Equal(got, want) || !slices.Equal(rep.Affected(), []int64{1, 2}) {
		t.Errorf("keyless verify of a damaged run: %v, want %v", got, want)
	}
	// Repair would have to seal: refused without the key.
	if _, _, err := keyless.Repair(t.Context(), rep, t.TempDir()); err == nil || !strings.Contains(err.Error(), "needs the run's key") {
		t.Errorf("keyless repair: %v", err)
	}
	// With the key, the same damage, and repair from a copy of the second
	// state seals both chunks again: verify --deep is clean and a restore
	// gives the tree back.
	rep, err = r.Verify(t.Context(), nil, false)
	if err != nil || len(rep.Damaged) != 2 {
		t.Fatalf("verify with the key of a damaged run: %+v, %v", rep, err)
	}
	copyDir := t.TempDir()
	writeTree(t, copyDir, tree)
	repaired, unrepaired, err := r.Repair(t.Context(), rep, copyDir)
	if err != nil || len(repaired) != 2 || len(unrepaired) != 0 {
		t.Fatalf("repair with the key: repaired %v, unrepaired %v, %v", repaired, unrepaired, err)
	}
	if rep, err := r.Verify(t.Context(), []int64{1, 2}, true); err != nil || len(rep.Damaged) != 0 {
		t.Errorf("deep verify after the repair: %+v, %v", rep, err)
	}
	dst := filepath.Join(t.TempDir(), "ckpt")
	if _, err := r.Restore(t.Context(), 0, dst); err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, dst); !maps.EqualFunc(got, tree, bytes.Equal) {
		t.Error("the restore after the repair differs from the tree committed")
	}
}

func TestParseKey(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, 32)
	b64 := base64.StdEncoding.EncodeToString(raw)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "raw"), raw, 0o600)
	os.WriteFile(filepath.Join(dir, "b64"), []byte(b64+"\n"), 0o600)
	want, err := checkpoint.ParseKey(b64)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"@" + filepath.Join(dir, "raw"), "@" + filepath.Join(dir, "b64")} {
		k, err := checkpoint.ParseKey(s)
		if err != nil || k.ID() != want.ID() {
			t.Errorf("ParseKey(%s): %v, %v", s, k, err)
		}
	}
	for _, s := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(raw[:31]), "@" + filepath.Join(dir, "none")} {
		if _, err := checkpoint.ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
	if other := testKey(t, 8); other.ID() == want.ID() || len(want.ID()) != 32 {
		t.Errorf("key ids %s and %s", want.ID(), other.ID())
	}
}

// BenchmarkEncryption commits a 256 MiB directory (4 MiB chunks) into a
// fresh file store and restores it, plain and encrypted:
//
//	go test -run - -bench Encryption -benchtime 5x ./checkpoint/
func BenchmarkEncryption(b *testing.B) {
	src, root := b.TempDir(), b.TempDir()
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(src, "part"+string(rune('0'+i))), content(64<<20, uint64(i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, name := range []string{"plain", "encrypted"} {
		var key *checkpoint.Key
		if name == "encrypted" {
			key = testKey(b, 1)
		}
		open := func(s storage.Store) *checkpoint.Repo {
			r, err := checkpoint.Open(s, checkpoint.Options{Run: testRun, Holder: checkpoint.Holder{ID: "a"}, Logger: quiet, Key: key})
			if err != nil {
				b.Fatal(err)
			}
			return r
		}
		var s storage.Store
		b.Run(name+"/commit", func(b *testing.B) {
			b.SetBytes(256 << 20)
			for b.Loop() {
				os.RemoveAll(filepath.Join(root, name))
				var err error
				if s, err = file.New(filepath.Join(root, name)); err != nil {
					b.Fatal(err)
				}
				r := open(s)
				lease, err := r.Acquire(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Commit(b.Context(), lease, src, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/restore", func(b *testing.B) {
			b.SetBytes(256 << 20)
			for b.Loop() {
				if _, err := open(s).Restore(b.Context(), 0, filepath.Join(b.TempDir(), "ckpt")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
