package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/storage"
)

// showManifest returns checkpoint seq (0: the latest) as show --json prints it.
func showManifest(t *testing.T, environ map[string]string, seq string) checkpoint.Manifest {
	t.Helper()
	args := []string{"checkpoint", "show", "--json"}
	if seq != "" {
		args = append(args, seq)
	}
	var m checkpoint.Manifest
	if err := json.Unmarshal([]byte(mustRun(t, environ, args...)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// verifyStore is where a verify test's chunks live and how to damage them.
type verifyStore struct {
	environ map[string]string
	// put replaces the object under key with data; del deletes it.
	put func(t *testing.T, key string, data []byte)
	del func(t *testing.T, key string)
}

func chunkObject(hash string) string { return "chunks/" + hash[:2] + "/" + hash }

// TestCheckpointVerify damages the chunks of a run of two checkpoints in a
// file store (by writing its files) and in versitygw (through S3), and checks
// what verify prints, its exit status, and that --repair from an intact copy
// repairs and from a modified one does not.
func TestCheckpointVerify(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		testCheckpointVerify(t, verifyStore{
			environ: checkpointEnv("file://"+dir, "run-v"),
			put: func(t *testing.T, key string, data []byte) {
				if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(key)), data, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			del: func(t *testing.T, key string) {
				if err := os.Remove(filepath.Join(dir, filepath.FromSlash(key))); err != nil {
					t.Fatal(err)
				}
			},
		})
	})
	t.Run("versitygw", func(t *testing.T) {
		srv := s3test.Start(t, s3test.Versitygw)
		bucket := srv.NewBucket(t)
		environ := checkpointEnv("s3://"+bucket+"/ckpt?endpoint="+srv.Endpoint, "run-v")
		for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_REGION": srv.Region} {
			environ[k] = v
		}
		store, err := s3aws.New(t.Context(), srv.Config(bucket, "ckpt"))
		if err != nil {
			t.Fatal(err)
		}
		testCheckpointVerify(t, verifyStore{
			environ: environ,
			put: func(t *testing.T, key string, data []byte) {
				if _, err := store.Put(context.Background(), key, storage.BytesPayload(data), storage.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			del: func(t *testing.T, key string) {
				if err := store.Delete(context.Background(), key); err != nil {
					t.Fatal(err)
				}
			},
		})
	})
}

func testCheckpointVerify(t *testing.T, s verifyStore) {
	environ := s.environ
	const chunk = "--chunk-size=64KiB"
	src := t.TempDir()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	model := randomData(1, 300_000) // chunks 0-3 of 64 KiB, chunk 4 short
	writeTree(t, src, map[string][]byte{"model.safetensors": model, "notes.txt": []byte("hello\n")}, t0)
	mustRun(t, environ, "checkpoint", "commit", chunk, src)
	v1 := t.TempDir()
	writeTree(t, v1, map[string][]byte{"model.safetensors": model, "notes.txt": []byte("hello\n")}, t0)
	model2 := bytes.Clone(model)
	copy(model2[64<<10:], randomData(2, 1000)) // chunk 1 changes
	writeTree(t, src, map[string][]byte{"model.safetensors": model2}, t0.Add(time.Hour))
	mustRun(t, environ, "checkpoint", "commit", chunk, src)
	m1, m2 := showManifest(t, environ, "1"), showManifest(t, environ, "")
	a0, b1, a4 := m1.Files[0].Chunks[0], m2.Files[0].Chunks[1], m1.Files[0].Chunks[4]
	if m2.Seq != 2 || m2.Files[0].Chunks[0] != a0 || m1.Files[0].Chunks[1] == b1 {
		t.Fatalf("unexpected manifests: %+v, %+v", m1, m2)
	}

	// modified is the latest checkpoint's directory with every chunk of the
	// model changed: no repair source.
	modified := t.TempDir()
	writeTree(t, modified, map[string][]byte{"model.safetensors": randomData(3, 300_000), "notes.txt": []byte("hello\n")}, t0)

	clean := regexp.MustCompile(`^checkpoint 2: all 6 chunks \(293\.0 KiB\) present with the right size\n$`)
	if out := mustRun(t, environ, "checkpoint", "verify"); !clean.MatchString(out) {
		t.Fatalf("verify of an intact run printed %q", out)
	}
	if out := mustRun(t, environ, "checkpoint", "verify", "--all", "--deep"); !strings.HasPrefix(out, "checkpoints 1, 2: all 7 chunks") || !strings.Contains(out, "intact (downloaded and hashed)") {
		t.Fatalf("verify --all --deep of an intact run printed %q", out)
	}

	flipped := bytes.Clone(model[4*64<<10:])
	flipped[10] ^= 0xff
	cases := []struct {
		name   string
		damage func(t *testing.T)
		undo   func(t *testing.T)
		args   []string
		// row is a regexp the damage table's row must match; summary the
		// last line.
		row, summary string
		// shallowClean: a verify without --deep finds nothing.
		shallowClean bool
	}{
		{
			name:    "short chunk shared by both checkpoints",
			damage:  func(t *testing.T) { s.put(t, chunkObject(a0), model[:1000]) },
			undo:    func(t *testing.T) { s.put(t, chunkObject(a0), model[:64<<10]) },
			row:     `^` + a0 + ` +wrong size: 1000 bytes, want 65536 +1, 2 +model\.safetensors$`,
			summary: "checkpoint 2: 1 damaged chunk of 6 (1 wrong size); checkpoints affected: 1, 2",
		},
		{
			name:    "deleted chunk of checkpoint 2 only",
			damage:  func(t *testing.T) { s.del(t, chunkObject(b1)) },
			undo:    func(t *testing.T) { s.put(t, chunkObject(b1), model2[64<<10:128<<10]) },
			args:    []string{"--all"},
			row:     `^` + b1 + ` +missing +2 +model\.safetensors$`,
			summary: "checkpoints 1, 2: 1 damaged chunk of 7 (1 missing); checkpoints affected: 2",
		},
		{
			name:         "same-size chunk with flipped bytes",
			damage:       func(t *testing.T) { s.put(t, chunkObject(a4), flipped) },
			undo:         func(t *testing.T) { s.put(t, chunkObject(a4), model[4*64<<10:]) },
			args:         []string{"--seq", "1", "--deep"},
			row:          `^` + a4 + ` +content does not match its hash +1, 2 +model\.safetensors$`,
			summary:      "checkpoint 1: 1 damaged chunk of 6 (1 content does not match its hash); checkpoints affected: 1, 2",
			shallowClean: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.damage(t)
			t.Cleanup(func() { tc.undo(t) })
			if tc.shallowClean {
				shallow := slicesWithout(tc.args, "--deep")
				if out := mustRun(t, environ, append([]string{"checkpoint", "verify"}, shallow...)...); !strings.Contains(out, "present with the right size") {
					t.Fatalf("a verify without --deep printed %q", out)
				}
			}
			args := append([]string{"checkpoint", "verify"}, tc.args...)
			r := runBaton(t, environ, args...)
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if r.code != exitFailure || r.stderr != "" || len(lines) != 3 ||
				!strings.HasPrefix(lines[0], "CHUNK ") || !regexp.MustCompile(tc.row).MatchString(lines[1]) || lines[2] != tc.summary {
				t.Fatalf("verify %v: exit %d, want 1\nstdout:\n%s\nstderr:\n%s\nwant the row to match %s and the summary %q", tc.args, r.code, r.stdout, r.stderr, tc.row, tc.summary)
			}

			r = runBaton(t, environ, append(args, "--repair", modified)...)
			if r.code != exitFailure || !strings.Contains(r.stdout, "uploaded 0 of 1 damaged chunks again; no intact copy of 1: ") ||
				strings.Count(r.stdout, tc.summary) != 2 {
				t.Fatalf("verify --repair from a modified copy: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
			}
			from := src
			if strings.Contains(tc.summary, "checkpoints affected: 1,") {
				from = v1 // either copy holds the chunk; take the older
			}
			r = runBaton(t, environ, append(args, "--repair", from)...)
			if r.code != exitOK || !strings.Contains(r.stdout, "uploaded 1 of 1 damaged chunks again\nverifying again...\n") ||
				!strings.HasSuffix(r.stdout, "present with the right size\n") && !strings.HasSuffix(r.stdout, "intact (downloaded and hashed)\n") {
				t.Fatalf("verify --repair from an intact copy: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
			}
			if out := mustRun(t, environ, "checkpoint", "verify", "--all", "--deep"); !strings.Contains(out, "intact") {
				t.Fatalf("after the repair, verify --all --deep printed %q", out)
			}
			dst := filepath.Join(t.TempDir(), "restored")
			mustRun(t, environ, "checkpoint", "restore", "--seq", "1", dst)
			sameTree(t, dst, v1)
		})
	}

	for _, args := range [][]string{{"--seq", "1", "--all"}, {"--seq", "-1"}, {"extra"}, {"--repair", filepath.Join(src, "nope")}} {
		if r := runBaton(t, environ, append([]string{"checkpoint", "verify"}, args...)...); r.code != exitUsage {
			t.Errorf("verify %v: exit %d, want %d (%s)", args, r.code, exitUsage, r.stderr)
		}
	}
	if r := runBaton(t, environ, "checkpoint", "verify", "--seq", "9"); r.code != exitFailure || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("verify of a checkpoint that does not exist: %+v", r)
	}
}

// slicesWithout returns s without the elements equal to x.
func slicesWithout(s []string, x string) []string {
	var out []string
	for _, v := range s {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

// TestCheckpointShowEscapes commits files whose names hold an escape
// sequence, a newline and a tab, with a platform and meta values that do
// too: show, ls and verify must print them escaped, never raw.
func TestCheckpointShowEscapes(t *testing.T) {
	storeDir := t.TempDir()
	environ := checkpointEnv("file://"+storeDir, "run-esc")
	src := t.TempDir()
	evil := "red\x1b[31mname\nsecond\tline"
	writeTree(t, src, map[string][]byte{evil: []byte("x"), "plain.txt": []byte("y"), "\u202egnp.exe": []byte("z")}, time.Now())
	mustRun(t, environ, "checkpoint", "commit", "--platform", "vast\x1b]0;title\x07", "--meta", "step=1\r\n\x1b[2J", src)

	show := mustRun(t, environ, "checkpoint", "show")
	ls := mustRun(t, environ, "checkpoint", "ls")
	m := showManifest(t, environ, "")
	store := filepath.Join(storeDir, "chunks")
	for _, f := range m.Files {
		if f.Path == evil {
			// A missing chunk puts the path in verify's table too.
			h := f.Chunks[0]
			if err := os.Remove(filepath.Join(store, h[:2], h)); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := runBaton(t, environ, "checkpoint", "verify")
	if r.code != exitFailure {
		t.Fatalf("verify: %+v", r)
	}
	for name, out := range map[string]string{"show": show, "ls": ls, "verify": r.stdout} {
		if i := strings.IndexFunc(out, func(r rune) bool { return r < ' ' && r != '\n' || r == 0x7f || r == '\u202e' }); i >= 0 {
			t.Errorf("%s printed a control character raw (%q):\n%q", name, out[i], out)
		}
	}
	for _, want := range []string{`"red\x1b[31mname\nsecond\tline"`, `"\u202egnp.exe"`, `"vast\x1b]0;title\a"`, `step="1\r\n\x1b[2J"`, "\nplain.txt "} {
		if !strings.Contains(show, want) {
			t.Errorf("show does not print %s:\n%s", want, show)
		}
	}
	if !strings.Contains(ls, `"vast\x1b]0;title\a"`) {
		t.Errorf("ls does not print the platform escaped:\n%s", ls)
	}
	if !strings.Contains(r.stdout, `"red\x1b[31mname\nsecond\tline"`) {
		t.Errorf("verify does not print the path escaped:\n%s", r.stdout)
	}
}

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"model.safetensors": "model.safetensors",
		"dir/ünïcode 名前":    "dir/ünïcode 名前",
		`back\slash`:        `back\slash`,
		"":                  "",
		"esc\x1b[0m":        `"esc\x1b[0m"`,
		"new\nline":         `"new\nline"`,
		"del\x7f":           `"del\x7f"`,
		"c1\u009b31m":       `"c1\u009b31m"`,
		"bidi\u202e":        `"bidi\u202e"`,
		"bad\xffutf8":       `"bad\xffutf8"`,
		`"quoted"`:          `"\"quoted\""`,
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %s, want %s", in, got, want)
		}
	}
}
