package directio

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestWriteAt writes the pieces of a file in parallel, in every mix of
// aligned and unaligned buffers, offsets and lengths, and reads back the
// file: its bytes are the pieces', whichever way each went.
func TestWriteAt(t *testing.T) {
	t.Parallel()
	type piece struct{ off, n, skew int }
	cases := []struct {
		name   string
		size   int
		pieces []piece
	}{
		{"empty", 0, nil},
		{"one short block", 100, []piece{{0, 100, 0}}},
		{"one block", Align, []piece{{0, Align, 0}}},
		{"block and a byte", Align + 1, []piece{{0, Align + 1, 0}}},
		{"chunks with a tail", 3*64<<10 + 777, []piece{{0, 64 << 10, 0}, {64 << 10, 64 << 10, 0}, {128 << 10, 64<<10 + 777, 0}}},
		{"unaligned buffer", 2 * Align, []piece{{0, 2 * Align, 1}}},
		{"unaligned offset", 3 * Align, []piece{{0, 10, 0}, {10, 3*Align - 10, 0}}},
		{"aligned after unaligned", 4 * Align, []piece{{0, Align - 1, 0}, {Align - 1, 1, 0}, {Align, 3 * Align, 0}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			want := make([]byte, c.size)
			for i := range want {
				want[i] = byte(rand.IntN(256))
			}
			path := filepath.Join(t.TempDir(), "f")
			f, err := OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("direct: %v", f.Direct())
			if err := f.Truncate(int64(c.size)); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for _, p := range c.pieces {
				buf := Buffer(p.n + p.skew)[p.skew:]
				copy(buf, want[p.off:p.off+p.n])
				wg.Go(func() {
					if n, err := f.WriteAt(buf, int64(p.off)); n != p.n || err != nil {
						t.Errorf("WriteAt(%d bytes at %d) = %d, %v", p.n, p.off, n, err)
					}
				})
			}
			wg.Wait()
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read back %d bytes that differ from the %d written", len(got), len(want))
			}
		})
	}
}

func TestCreateExclusive(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("OpenFile(O_EXCL) over an existing file: %v, want ErrExist", err)
	}
}

func TestBuffer(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, Align, 4 << 20} {
		b := Buffer(n)
		if len(b) != n || cap(b) != n || !Aligned(b) {
			t.Errorf("Buffer(%d): len %d cap %d aligned %v", n, len(b), cap(b), Aligned(b))
		}
	}
}

// TestDirectSkipsPageCache checks that whole blocks written direct are not
// left in the page cache (mincore of a mapping of the file), and that the
// tail of a write is.
func TestDirectSkipsPageCache(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "f")
	f, err := OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !f.Direct() {
		t.Logf("%s takes no O_DIRECT: every write is buffered, nothing to check", filepath.Dir(path))
		return
	}
	const blocks = 64
	buf := Buffer(blocks*Align + 10)
	if _, err := f.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, len(buf), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	pages := (len(buf) + os.Getpagesize() - 1) / os.Getpagesize()
	vec := make([]byte, pages)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	cached := 0
	for _, v := range vec[:blocks*Align/os.Getpagesize()] {
		cached += int(v & 1)
	}
	if cached != 0 {
		t.Errorf("%d of the %d pages written direct are in the page cache", cached, blocks*Align/os.Getpagesize())
	}
	if vec[pages-1]&1 == 0 {
		t.Errorf("the tail, written buffered, is not in the page cache")
	}
}

// TestNoDirectOnTmpfs: a file on tmpfs (no disk to go around) is written
// through the page cache, even where tmpfs takes O_DIRECT (Linux 6.6+).
func TestNoDirectOnTmpfs(t *testing.T) {
	t.Parallel()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || uint32(st.Type) != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "directio-test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	f, err := OpenFile(filepath.Join(dir, "f"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Direct() {
		t.Error("a file on tmpfs writes direct")
	}
}
