// Package manifestmem measures the peak memory of baton's checkpoint
// commands on big manifests. It is a package of its own so that its test
// process stays small: Linux carries a parent's peak RSS into a child it
// vforks (as os/exec does) until the child execs, and wait4 reports the
// larger, so a test process grown by other tests would measure itself.
package manifestmem

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/buildflags"
)

// maxRSS is the peak resident memory that ls, show and gc may reach on
// any manifest, accepted or refused (issue 10 item 10).
const maxRSS = 256 << 20

// TestManifestMemory runs the real binary's ls, show and gc on manifests at
// and past the format's limits, written straight into a file store, and
// checks each one's peak RSS. The manifests are 40 to 115 MB: a reader that
// held one whole, or its entries as they come without limits, would pass
// the bound.
func TestManifestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes manifests of 100 MB; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "baton")
	if err := buildflags.Build(bin); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		// write writes the manifest's JSON.
		write func(w io.Writer)
		// refused is what a refusal says; "" means accepted.
		refused string
	}{
		{"largest accepted", func(w io.Writer) {
			// MaxFiles files of 4 chunks each: MaxChunks chunks in all.
			const per = checkpoint.MaxChunks / checkpoint.MaxFiles
			fmt.Fprintf(w, `{"version":1,"run":"r","seq":1,"parent":0,"epoch":1,"hash":%q,"chunk_size":65536,"file_count":%d,"size":%d,"new_bytes":0,"files":[`,
				checkpoint.HashName, checkpoint.MaxFiles, checkpoint.MaxFiles*per*65536)
			for i := range checkpoint.MaxFiles {
				if i > 0 {
					io.WriteString(w, ",")
				}
				fmt.Fprintf(w, `{"path":"dir/f%07d","size":%d,"mode":420,"mtime":"2026-11-29T00:00:00Z","hash":%q,"chunks":[`, i, per*65536, fakeHash(-i-1))
				for j := range per {
					if j > 0 {
						io.WriteString(w, ",")
					}
					fmt.Fprintf(w, "%q", fakeHash(i*per+j))
				}
				io.WriteString(w, "]}")
			}
			io.WriteString(w, "]}")
		}, ""},
		{"one file of 1.5 M chunks", func(w io.Writer) {
			const n = 3 << 19
			fmt.Fprintf(w, `{"version":1,"run":"r","seq":1,"epoch":1,"hash":%q,"chunk_size":65536,"files":[{"path":"a","size":%d,"mode":420,"hash":%q,"chunks":[`,
				checkpoint.HashName, n*65536, fakeHash(0))
			for i := range n {
				if i > 0 {
					io.WriteString(w, ",")
				}
				fmt.Fprintf(w, "%q", fakeHash(i))
			}
			io.WriteString(w, "]}]}")
		}, fmt.Sprintf("more than %d chunks", checkpoint.MaxChunks)},
		{"300,000 empty files", func(w io.Writer) {
			fmt.Fprintf(w, `{"version":1,"run":"r","seq":1,"epoch":1,"hash":%q,"chunk_size":65536,"files":[`, checkpoint.HashName)
			for i := range 300_000 {
				if i > 0 {
					io.WriteString(w, ",")
				}
				fmt.Fprintf(w, `{"path":"f%08d","size":0,"mode":420,"mtime":"2026-11-29T00:00:00Z","hash":%q,"chunks":[]}`, i, fakeHash(0))
			}
			io.WriteString(w, "]}")
		}, fmt.Sprintf("more than %d files", checkpoint.MaxFiles)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "runs", "r", "manifests")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(filepath.Join(dir, "000000000001.json"))
			if err != nil {
				t.Fatal(err)
			}
			w := bufio.NewWriterSize(f, 1<<20)
			tc.write(w)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := os.WriteFile(filepath.Join(root, "runs", "r", "latest.json"), []byte(`{"seq":1,"epoch":1}`), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"ls", "show", "gc"} {
				c := exec.Command(bin, "checkpoint", cmd, "--store", "file://"+root, "--run", "r")
				var stderr strings.Builder
				c.Stdout, c.Stderr = io.Discard, &stderr
				err := c.Run()
				rss := c.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
				t.Logf("%s: peak RSS %d MiB, %s", cmd, rss>>20, strings.TrimSpace(stderr.String()))
				if rss > maxRSS {
					t.Errorf("%s: peak RSS %d MiB, more than %d", cmd, rss>>20, maxRSS>>20)
				}
				switch {
				case tc.refused == "" && err != nil:
					t.Errorf("%s of an accepted manifest: %v\n%s", cmd, err, stderr.String())
				case tc.refused != "" && (err == nil || !strings.Contains(stderr.String(), tc.refused)):
					t.Errorf("%s: %v, stderr %q, want a refusal saying %q", cmd, err, stderr.String(), tc.refused)
				}
			}
		})
	}
}

// fakeHash is a valid chunk or file hash, distinct for each i.
func fakeHash(i int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%d", i))
	return hex.EncodeToString(sum[:])
}
