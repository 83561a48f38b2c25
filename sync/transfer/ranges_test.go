package transfer

import "testing"

// TestRanges: a download's ranges cover the object once, in order, start at
// multiples of 1 MiB (aligned writes), are no smaller than the part size
// (but the last) and no larger than MaxRangeSize, and are as few as keep
// every worker busy.
func TestRanges(t *testing.T) {
	t.Parallel()
	const MiB = 1 << 20
	cases := []struct {
		name          string
		workers       int
		partSize      int64
		size          int64
		want, longest int64
	}{
		{"empty", 16, 16 * MiB, 0, 0, 0},
		{"one small range", 16, 16 * MiB, 3 * MiB, 1, 3 * MiB},
		{"part size floor", 16, 16 * MiB, 100 * MiB, 7, 16 * MiB},
		{"one range per worker", 16, 16 * MiB, 1 << 30, 16, 64 * MiB},
		{"odd size", 16, 16 * MiB, 1<<30 + 12345, 16, 65 * MiB},
		{"capped", 16, 16 * MiB, 64 << 30, 256, MaxRangeSize},
		{"part size above the cap", 4, 512 * MiB, 4 << 30, 8, 512 * MiB},
		{"unaligned part size", 2, 5_000_000, 8 * MiB, 2, 5 * MiB},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := New(Options{Workers: c.workers, PartSize: c.partSize})
			spans := e.ranges(c.size)
			if int64(len(spans)) != c.want {
				t.Fatalf("%d ranges, want %d", len(spans), c.want)
			}
			var off, longest int64
			for i, s := range spans {
				if s.num != i+1 || s.off != off || s.off%MiB != 0 || s.n <= 0 {
					t.Fatalf("range %d: %+v after %d bytes", i, s, off)
				}
				if i < len(spans)-1 && s.n < e.partSize {
					t.Errorf("range %d of %d bytes, less than the part size", i, s.n)
				}
				off += s.n
				longest = max(longest, s.n)
			}
			if off != c.size || longest != c.longest {
				t.Errorf("ranges cover %d bytes, longest %d; want %d, %d", off, longest, c.size, c.longest)
			}
		})
	}
}
