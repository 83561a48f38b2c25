package units

import (
	"math"
	"testing"
)

func TestBytes(t *testing.T) {
	cases := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{16 << 20, "16.0 MiB"}, {3 << 30, "3.0 GiB"}, {3435973837, "3.2 GiB"}, {5 << 40, "5.0 TiB"}, {math.MaxInt64, "8.0 EiB"},
	}
	for _, c := range cases {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestExactBytes(t *testing.T) {
	cases := []struct {
		n    int64
		want string
	}{
		{0, "0"}, {1000, "1000"}, {1024, "1KiB"}, {512 << 10, "512KiB"}, {16 << 20, "16MiB"}, {1536 << 20, "1536MiB"}, {2 << 30, "2GiB"},
	}
	for _, c := range cases {
		got := ExactBytes(c.n)
		if got != c.want {
			t.Errorf("ExactBytes(%d) = %q, want %q", c.n, got, c.want)
		}
		if back, err := ParseBytes(got); err != nil || back != c.n {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", got, back, err, c.n)
		}
	}
}

func TestParseBytes(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"16MiB", 16 << 20, true}, {"16M", 16 << 20, true}, {" 4 KiB ", 4 << 10, true}, {"1G", 1 << 30, true},
		{"100B", 100, true}, {"1048576", 1 << 20, true},
		{"", 0, false}, {"-1", 0, false}, {"1.5GiB", 0, false}, {"lots", 0, false}, {"9000000000G", 0, false},
	}
	for _, c := range cases {
		got, err := ParseBytes(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestPlural(t *testing.T) {
	cases := []struct {
		n    int64
		noun string
		want string
	}{
		{0, "file", "0 files"}, {1, "file", "1 file"}, {2, "file", "2 files"},
		{1, "checkpoint", "1 checkpoint"}, {12, "checkpoint", "12 checkpoints"}, {-1, "chunk", "-1 chunks"},
	}
	for _, c := range cases {
		if got := Plural(c.n, c.noun); got != c.want {
			t.Errorf("Plural(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
	if got := Plural(uint32(1), "GPU"); got != "1 GPU" {
		t.Errorf("Plural(uint32(1), GPU) = %q", got)
	}
	if got := Plural(len([]int{1, 2}), "manifest"); got != "2 manifests" {
		t.Errorf("Plural(int 2, manifest) = %q", got)
	}
}
