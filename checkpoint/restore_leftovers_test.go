package checkpoint_test

// A restore killed at any step leaves leftovers that the next restore of
// the same target (or RemoveLeftovers, which baton run calls) removes,
// finishing or undoing the swap so that the target is exactly the old or
// the new checkpoint, never a mix; and nothing but baton's own leftovers
// for that target is removed.

import (
	"bufio"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/file"
)

// TestRestoreKilledChild is no test of its own: TestRestoreKilled runs the
// test binary with it to restore into a target and be killed (SIGKILL) at
// one named step.
func TestRestoreKilledChild(t *testing.T) {
	step := os.Getenv("BATON_TEST_KILL_AT")
	if step == "" {
		t.Skip("run by TestRestoreKilled")
	}
	store, err := file.New(os.Getenv("BATON_TEST_KILL_STORE"))
	if err != nil {
		t.Fatal(err)
	}
	r := openOn(t, store, "", time.Now)
	defer checkpoint.SetRestoreHook(func(s string) {
		if s != step {
			return
		}
		os.Stdout.WriteString("AT " + s + "\n")
		os.Stdin.Read(make([]byte, 1)) // until the parent kills this process
	})()
	_, err = r.Restore(context.Background(), 0, os.Getenv("BATON_TEST_KILL_TARGET"))
	t.Fatalf("the restore did not reach step %s: %v", step, err)
}

// killRestoreAt runs a restore of the newest checkpoint in the file store
// at storeRoot into target in a child process and kills it at step.
func killRestoreAt(t *testing.T, storeRoot, target, step string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestoreKilledChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BATON_TEST_KILL_AT="+step, "BATON_TEST_KILL_STORE="+storeRoot, "BATON_TEST_KILL_TARGET="+target)
	stdout, stderr := startChild(t, cmd)
	var out []string
	reached := false
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		if sc.Text() == "AT "+step {
			reached = true
			break
		}
		out = append(out, sc.Text())
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !reached {
		t.Fatalf("the child restore never reached step %s:\n%s\n%s", step, strings.Join(out, "\n"), stderr.String())
	}
}

// leftoverName matches every name a restore of a target named ckpt makes,
// beside it or inside it.
var leftoverName = regexp.MustCompile(`^(\.ckpt\.baton-restore-[0-9a-f]{16}|ckpt\.baton-old-[0-9a-f]{16}|\.baton-(restore|old|swap)-[0-9a-f]{16})$`)

// leftovers lists the restore leftovers beside and inside target.
func leftovers(t *testing.T, target string) []string {
	t.Helper()
	var found []string
	for _, dir := range []string{filepath.Dir(target), target} {
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			if leftoverName.MatchString(e.Name()) {
				found = append(found, filepath.Join(dir, e.Name()))
			}
		}
	}
	return found
}

// withoutTarget is an fsState of root without the entries under target.
func withoutTarget(state map[string]string, target string) map[string]string {
	out := maps.Clone(state)
	for k := range out {
		if k == target || strings.HasPrefix(k, target+string(filepath.Separator)) {
			delete(out, k)
		}
	}
	return out
}

func TestRestoreKilled(t *testing.T) {
	// oldTree is what the target holds before: the user's files, some of
	// them named like baton's leftovers inside a target, but not exactly.
	oldTree := map[string][]byte{
		"old.txt": []byte("precious"), "sub/keep.bin": content(70_000, 3), "model.bin": content(1000, 4),
		".baton-swap-notes":                []byte("my notes, not a journal"),
		".baton-old-notes/x":               []byte("x"),
		".baton-restore-0123456789abcde/y": []byte("15 hex digits"),
		".baton-old-0123456789ABCDEF/z":    []byte("upper case"),
	}
	// lookalikes are beside the target: names like its leftovers, or those
	// of targets ckpt.b and xckpt. They must all survive.
	lookalikes := map[string][]byte{
		".ckpt.baton-restore-notes/a":              []byte("a"),
		"ckpt.baton-old-backup/b":                  []byte("b"),
		"ckpt.b.baton-old-0123456789abcdef/c":      []byte("c"),
		".ckpt.b.baton-restore-0123456789abcdef/d": []byte("d"),
		"ckpt.baton-old-0123456789ABCDEF/e":        []byte("e"),
		"ckpt.baton-old-0123456789abcdef0/f":       []byte("f"),
		"xckpt.baton-old-0123456789abcdef/g":       []byte("g"),
		"ckpt.baton-old-0123456789abcdeg":          []byte("not hex"),
		".ckpt.baton-restore-0123456789abcdef":     []byte("a file, not a staging directory"),
	}
	ctx := t.Context()
	storeRoot := t.TempDir()
	store, err := file.New(storeRoot)
	if err != nil {
		t.Fatal(err)
	}
	w, lease := acquireOn(t, store, "a", newSyncClock().now)
	newSrc := commitTree(t, w, lease, map[string][]byte{
		"model.bin": content(5*64<<10+123, 1), "optim/state.pt": content(200_000, 2), "empty": nil,
		"tok/a.json": content(300, 5), "tok/b.json": content(400, 6),
	})
	oldRef := t.TempDir()
	writeTree(t, oldRef, oldTree)

	// want: what the target holds after RemoveLeftovers alone, the old or
	// the new checkpoint: a kill before the swap's point of no return is
	// rolled back, one after it forward.
	type kill struct{ step, want string }
	modes := []struct {
		mode  string
		kills []kill
	}{
		{"beside", []kill{{"staging", "old"}, {"file", "old"}, {"staged", "old"}, {"aside", "new"}, {"swapped", "new"}}},
		{"mount point", []kill{
			{"staging", "old"}, {"file", "old"}, {"staged", "old"}, {"aside-1", "old"}, {"aside", "old"},
			{"journal-created", "old"}, {"journal", "new"}, {"up-1", "new"}, {"up", "new"}, {"old-removed", "new"},
		}},
	}
	for _, mode := range modes {
		for _, k := range mode.kills {
			for _, next := range []string{"RemoveLeftovers", "Restore"} {
				t.Run(mode.mode+"/"+k.step+"/"+next, func(t *testing.T) {
					root := t.TempDir()
					target := filepath.Join(root, "ckpt")
					if err := os.Mkdir(target, 0o755); err != nil {
						t.Fatal(err)
					}
					if mode.mode == "mount point" {
						mountTmpfs(t, target, 64<<20)
					}
					writeTree(t, target, oldTree)
					writeTree(t, root, lookalikes)
					around := withoutTarget(fsState(t, root), "ckpt")
					lookalike := leftovers(t, target) // named like leftovers, but a file: the user's

					killRestoreAt(t, storeRoot, target, k.step)
					if len(leftovers(t, target)) == len(lookalike) {
						t.Fatalf("a restore killed at %s left nothing to clean", k.step)
					}
					want := oldRef
					switch {
					case next == "Restore":
						if _, err := w.Restore(ctx, 0, target); err != nil {
							t.Fatalf("the next restore: %v", err)
						}
						want = newSrc
					default:
						if err := checkpoint.RemoveLeftovers(target); err != nil {
							t.Fatalf("RemoveLeftovers: %v", err)
						}
						if k.want == "new" {
							want = newSrc
						}
					}
					sameState(t, "the target", fsState(t, target), fsState(t, want))
					if l := leftovers(t, target); !slices.Equal(l, lookalike) {
						t.Fatalf("leftovers remain: %q (%q are the user's)", l, lookalike)
					}
					sameState(t, "the target's parent", withoutTarget(fsState(t, root), "ckpt"), around)
				})
			}
		}
	}
}

// TestRemoveLeftoversNames: which names beside and inside a target are
// baton's leftovers, and what becomes of them.
func TestRemoveLeftoversNames(t *testing.T) {
	const hexA, hexB = "0123456789abcdef", "fedcba9876543210"
	journal := "baton restore swap\nstaging .baton-restore-" + hexA + "\nold .baton-old-" + hexA + "\n"
	cases := []struct {
		name string
		// before and after: paths under the parent of the target "ckpt",
		// with their content ("/" at the end: an empty directory).
		before, after map[string]string
		// links: symbolic links to make, name -> target.
		links map[string]string
	}{
		{name: "staging directories beside, new and legacy", before: map[string]string{
			"ckpt/f": "1", ".ckpt.baton-restore-" + hexA + "/x": "2", ".ckpt.baton-restore-123456789/x": "3",
		}, after: map[string]string{"ckpt/f": "1"}},
		{name: "old directories beside, new and legacy", before: map[string]string{
			"ckpt/f": "1", "ckpt.baton-old-" + hexA + "/x": "2", "ckpt.baton-old-1b4dbbaa/x": "3",
		}, after: map[string]string{"ckpt/f": "1"}},
		{name: "an old link beside: the link goes, what it points to stays", before: map[string]string{
			"ckpt/f": "1", "real/x": "2",
		}, links: map[string]string{"ckpt.baton-old-" + hexA: "real"}, after: map[string]string{"ckpt/f": "1", "real/x": "2"}},
		{name: "killed between the two renames: the staging directory becomes the target", before: map[string]string{
			".ckpt.baton-restore-" + hexA + "/new": "n", "ckpt.baton-old-" + hexA + "/old": "o",
		}, after: map[string]string{"ckpt/new": "n"}},
		{name: "target missing, suffixes differ: nothing is complete", before: map[string]string{
			".ckpt.baton-restore-" + hexA + "/new": "n", "ckpt.baton-old-" + hexB + "/old": "o",
		}, after: map[string]string{}},
		{name: "target missing, an old directory alone", before: map[string]string{
			"ckpt.baton-old-" + hexA + "/old": "o",
		}, after: map[string]string{}},
		{name: "other targets and lookalikes", before: map[string]string{
			"ckpt/f": "1", "ckpt.b.baton-old-" + hexA + "/x": "2", ".ckpt.b.baton-restore-" + hexA + "/x": "3",
			"ckpt.baton-old-backup/x": "4", ".ckpt.baton-restore-notes/x": "5", "ckpt.baton-old-" + strings.ToUpper(hexA) + "/x": "6",
			"ckpt.baton-old-" + hexA + "0/x": "7", ".ckpt.baton-restore-" + hexA: "a file", "ckpt.baton-old-0123456/x": "8",
			"a.ckpt.baton-old-" + hexA + "/x": "9", ".ckpt.baton-restore-12345678901/x": "11 digits",
		}},
		{name: "inside, a valid journal: rolled forward", before: map[string]string{
			"ckpt/new1": "n1", "ckpt/.baton-restore-" + hexA + "/new2": "n2", "ckpt/.baton-old-" + hexA + "/old": "o",
			"ckpt/.baton-swap-" + hexA: journal,
		}, after: map[string]string{"ckpt/new1": "n1", "ckpt/new2": "n2"}},
		{name: "inside, a journal cut short: rolled back", before: map[string]string{
			"ckpt/old1": "o1", "ckpt/.baton-restore-" + hexA + "/new": "n", "ckpt/.baton-old-" + hexA + "/old2": "o2",
			"ckpt/.baton-swap-" + hexA: journal[:20],
		}, after: map[string]string{"ckpt/old1": "o1", "ckpt/old2": "o2"}},
		{name: "inside, no journal: rolled back", before: map[string]string{
			"ckpt/old1": "o1", "ckpt/.baton-restore-" + hexA + "/new": "n", "ckpt/.baton-old-" + hexA + "/old2": "o2",
		}, after: map[string]string{"ckpt/old1": "o1", "ckpt/old2": "o2"}},
		{name: "inside, a file named like a journal that is not one", before: map[string]string{
			"ckpt/.baton-swap-" + hexA: "my notes", "ckpt/.baton-swap-" + hexB: journal + "more",
			"ckpt/.baton-restore-" + hexA: "a file", "ckpt/.baton-old-x/y": "z", "ckpt/.baton-swap-0123": "short",
		}},
		{name: "inside a link to a directory: not looked into", before: map[string]string{
			"real/.baton-restore-" + hexA + "/x": "1",
		}, links: map[string]string{"ckpt": "real"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tc.before)
			for name, to := range tc.links {
				if err := os.Symlink(filepath.Join(root, to), filepath.Join(root, name)); err != nil {
					t.Fatal(err)
				}
			}
			want := fsState(t, root)
			if tc.after != nil {
				ref := t.TempDir()
				writeTree(t, ref, tc.after)
				for name, to := range tc.links {
					if _, ok := tc.after[name]; !ok && !strings.HasPrefix(name, "ckpt.baton-old-") {
						os.Symlink(filepath.Join(root, to), filepath.Join(ref, name))
					}
				}
				want = fsState(t, ref)
			}
			if err := checkpoint.RemoveLeftovers(filepath.Join(root, "ckpt")); err != nil {
				t.Fatal(err)
			}
			sameState(t, "the target and its parent", fsState(t, root), want)
		})
	}
}
