package checkpoint_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/storage"
)

// verifySetup is a run of two checkpoints in 64 KiB chunks:
//
//	1: model.bin (v1: chunks A0 A1 A2 A3 A4, A4 short), notes.txt (N)
//	2: model.bin (v2: chunk 1 rewritten: A0 B1 A2 A3 A4), notes.txt (N)
//
// and the directories each was committed from.
type verifySetup struct {
	store         storage.Store
	repo          *checkpoint.Repo
	m1, m2        *checkpoint.Manifest
	v1, v2        map[string][]byte
	dir1, dir2    string
	a0, b1, a4, n string
}

func newVerifySetup(t *testing.T, s storage.Store) *verifySetup {
	t.Helper()
	ctx := t.Context()
	repo, lease := acquireOn(t, s, "a", newSyncClock().now)
	h := &verifySetup{store: s, repo: repo}
	model := content(300_000, 1)
	h.v1 = map[string][]byte{"model.bin": model, "notes.txt": []byte("hello\n")}
	model2 := bytes.Clone(model)
	copy(model2[64<<10:], content(64<<10, 2))
	h.v2 = map[string][]byte{"model.bin": model2, "notes.txt": []byte("hello\n")}
	h.dir1, h.dir2 = t.TempDir(), t.TempDir()
	writeTree(t, h.dir1, h.v1)
	writeTree(t, h.dir2, h.v2)
	var err error
	if h.m1, err = h.repo.Commit(ctx, lease, h.dir1, nil); err != nil {
		t.Fatal(err)
	}
	if h.m2, err = h.repo.Commit(ctx, lease, h.dir2, nil); err != nil {
		t.Fatal(err)
	}
	c1, c2 := h.m1.Files[0].Chunks, h.m2.Files[0].Chunks
	if len(c1) != 5 || c1[0] != c2[0] || c1[1] == c2[1] || c1[4] != c2[4] || h.m2.Files[1].Path != "notes.txt" {
		t.Fatalf("unexpected manifests: %v, %v", c1, c2)
	}
	h.a0, h.b1, h.a4, h.n = c1[0], c2[1], c1[4], h.m2.Files[1].Chunks[0]
	return h
}

// objKey is the store key of chunk hash.
func objKey(hash string) string { return "chunks/" + hash[:2] + "/" + hash }

func (h *verifySetup) put(t *testing.T, hash string, b []byte) {
	t.Helper()
	if _, err := h.store.Put(context.Background(), objKey(hash), storage.BytesPayload(b), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// dirWith writes files into a fresh directory, edited by edit.
func dirWith(t *testing.T, files map[string][]byte, edit func(map[string][]byte)) string {
	t.Helper()
	cp := map[string][]byte{}
	for k, v := range files {
		cp[k] = bytes.Clone(v)
	}
	if edit != nil {
		edit(cp)
	}
	dir := t.TempDir()
	writeTree(t, dir, cp)
	return dir
}

func TestVerifyAndRepair(t *testing.T) { eachStore(t, testVerifyAndRepair) }

func testVerifyAndRepair(t *testing.T, s storage.Store) {
	h := newVerifySetup(t, s)
	ctx := t.Context()

	for _, deep := range []bool{false, true} {
		for _, seqs := range [][]int64{nil, {1}, {1, 2}} {
			rep, err := h.repo.Verify(ctx, seqs, deep)
			if err != nil || len(rep.Damaged) != 0 || rep.Deep != deep {
				t.Fatalf("verify %v (deep %v) of an intact store: %+v, %v", seqs, deep, rep, err)
			}
			if wantChunks := map[int]int{0: 6, 1: 6, 2: 7}[len(seqs)]; rep.Chunks != wantChunks {
				t.Errorf("verify %v: %d chunks, want %d", seqs, rep.Chunks, wantChunks)
			}
		}
	}

	flip := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/2] ^= 0xff; return b }
	model1, model2 := h.v1["model.bin"], h.v2["model.bin"]
	// replaced and deleted make a case's plant: chunk hash, whose intact
	// bytes are good, is stored as bad, or deleted.
	replaced := func(hash string, good, bad []byte) func(t *testing.T) (string, []byte) {
		return func(t *testing.T) (string, []byte) {
			h.put(t, hash, bad)
			return hash, good
		}
	}
	deleted := func(hash string, good []byte) func(t *testing.T) (string, []byte) {
		return func(t *testing.T) (string, []byte) {
			if err := h.store.Delete(ctx, objKey(hash)); err != nil {
				t.Fatal(err)
			}
			return hash, good
		}
	}
	cases := []struct {
		name string
		// plant damages the store; returns the damaged chunk's hash and its
		// intact bytes.
		plant func(t *testing.T) (hash string, good []byte)
		seqs  []int64
		deep  bool
		// damage and the stored size wanted; shallowClean: only --deep
		// finds it.
		damage       checkpoint.Damage
		size         int64
		shallowClean bool
		checkpoints  []int64
		paths        []string
		// repairFrom is the local directory a repair reads; repaired says
		// whether it can repair the chunk.
		repairFrom func(t *testing.T) string
		repaired   bool
	}{
		{
			name:   "short object of a shared chunk, found verifying the latest",
			plant:  replaced(h.a0, model1[:64<<10], model1[:1000]),
			damage: checkpoint.ChunkWrongSize, size: 1000, checkpoints: []int64{1, 2}, paths: []string{"model.bin"},
			repairFrom: func(t *testing.T) string { return h.dir2 }, repaired: true,
		},
		{
			name:   "longer object, found verifying all",
			plant:  replaced(h.a0, model1[:64<<10], append(bytes.Clone(model1[:64<<10]), "more"...)),
			seqs:   []int64{1, 2},
			damage: checkpoint.ChunkWrongSize, size: 64<<10 + 4, checkpoints: []int64{1, 2}, paths: []string{"model.bin"},
			repairFrom: func(t *testing.T) string { return h.dir1 }, repaired: true,
		},
		{
			name:   "deleted chunk of the latest only; an older checkpoint's copy cannot repair it",
			plant:  deleted(h.b1, model2[64<<10:128<<10]),
			damage: checkpoint.ChunkMissing, checkpoints: []int64{2}, paths: []string{"model.bin"},
			repairFrom: func(t *testing.T) string { return h.dir1 }, repaired: false,
		},
		{
			name:   "deleted chunk of the latest only, repaired from its own copy",
			plant:  deleted(h.b1, model2[64<<10:128<<10]),
			seqs:   []int64{2},
			damage: checkpoint.ChunkMissing, checkpoints: []int64{2}, paths: []string{"model.bin"},
			repairFrom: func(t *testing.T) string { return h.dir2 }, repaired: true,
		},
		{
			name:   "same-size chunk with flipped bytes: only deep finds it; a modified copy does not repair it",
			plant:  replaced(h.a4, model1[4*64<<10:], flip(model1[4*64<<10:])),
			deep:   true,
			damage: checkpoint.ChunkWrongContent, size: 300_000 - 4*64<<10, shallowClean: true,
			checkpoints: []int64{1, 2}, paths: []string{"model.bin"},
			// The copy's model differs in its last byte: in the damaged chunk.
			repairFrom: func(t *testing.T) string {
				return dirWith(t, h.v2, func(f map[string][]byte) { f["model.bin"][len(f["model.bin"])-1] ^= 1 })
			},
			repaired: false,
		},
		{
			name:  "same-size chunk with flipped bytes, repaired from an intact copy",
			plant: replaced(h.a4, model1[4*64<<10:], flip(model1[4*64<<10:])),
			seqs:  []int64{1}, deep: true,
			damage: checkpoint.ChunkWrongContent, size: 300_000 - 4*64<<10, shallowClean: true,
			checkpoints: []int64{1, 2}, paths: []string{"model.bin"},
			repairFrom: func(t *testing.T) string { return h.dir2 }, repaired: true,
		},
		{
			name:   "missing small file chunk; a copy whose file has another size does not repair it",
			plant:  deleted(h.n, []byte("hello\n")),
			damage: checkpoint.ChunkMissing, checkpoints: []int64{1, 2}, paths: []string{"notes.txt"},
			repairFrom: func(t *testing.T) string {
				return dirWith(t, h.v2, func(f map[string][]byte) { f["notes.txt"] = []byte("hello!\n") })
			},
			repaired: false,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hash, good := tc.plant(t)
			t.Cleanup(func() { h.put(t, hash, good) })
			if tc.shallowClean {
				rep, err := h.repo.Verify(ctx, tc.seqs, false)
				if err != nil || len(rep.Damaged) != 0 {
					t.Fatalf("a shallow verify found %+v, %v; the damage keeps the chunk's size", rep, err)
				}
			}
			rep, err := h.repo.Verify(ctx, tc.seqs, tc.deep)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Damaged) != 1 {
				t.Fatalf("%d damaged chunks, want 1: %+v", len(rep.Damaged), rep.Damaged)
			}
			d := rep.Damaged[0]
			if !errors.Is(d.Err, checkpoint.ErrDamaged) || d.Err.Hash != hash || d.Err.Key != objKey(hash) || d.Err.Damage != tc.damage {
				t.Errorf("damage %+v, want %q of chunk %s", d.Err, tc.damage, hash)
			}
			if tc.damage == checkpoint.ChunkWrongSize && (d.Err.Size != tc.size || d.Err.Want != int64(len(good))) {
				t.Errorf("sizes %d of %d, want %d of %d", d.Err.Size, d.Err.Want, tc.size, len(good))
			}
			if !slices.Equal(d.Checkpoints, tc.checkpoints) || !slices.Equal(rep.Affected(), tc.checkpoints) || !slices.Equal(d.Paths(), tc.paths) {
				t.Errorf("affects checkpoints %v (report: %v) and files %v, want %v and %v", d.Checkpoints, rep.Affected(), d.Paths(), tc.checkpoints, tc.paths)
			}

			repaired, unrepaired, err := h.repo.Repair(ctx, rep, tc.repairFrom(t))
			if err != nil {
				t.Fatal(err)
			}
			if tc.repaired && (!slices.Equal(repaired, []string{hash}) || len(unrepaired) != 0) ||
				!tc.repaired && (len(repaired) != 0 || !slices.Equal(unrepaired, []string{hash})) {
				t.Fatalf("repair: repaired %v, unrepaired %v; want the chunk repaired: %v", repaired, unrepaired, tc.repaired)
			}
			again, err := h.repo.Verify(ctx, []int64{1, 2}, true)
			if err != nil {
				t.Fatal(err)
			}
			if clean := len(again.Damaged) == 0; clean != tc.repaired {
				t.Fatalf("after the repair, a deep verify of all found %+v", again.Damaged)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		if _, err := h.repo.Verify(ctx, []int64{9}, false); err == nil {
			t.Error("verify of a checkpoint that does not exist: no error")
		}
		other, err := checkpoint.Open(s, checkpoint.Options{Run: "other", Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Verify(ctx, nil, false); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
			t.Errorf("verify of a run with no checkpoint: %v, want ErrNoCheckpoint", err)
		}
	})
}
