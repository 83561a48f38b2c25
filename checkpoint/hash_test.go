package checkpoint_test

import (
	"crypto/sha256"
	"testing"

	"lukechampine.com/blake3"
)

// BenchmarkHash compares the two candidate chunk hashes on one 4 MiB chunk:
//
//	go test -run - -bench Hash ./checkpoint/
//
// On the project's 2-core AMD EPYC (SHA-NI and AVX-512) on 2026-11-26:
// BLAKE3 3575 MB/s, SHA-256 1689 MB/s (2.1x). baton uses BLAKE3.
func BenchmarkHash(b *testing.B) {
	chunk := make([]byte, 4<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	cases := []struct {
		name string
		sum  func([]byte)
	}{
		{"blake3-256", func(p []byte) { blake3.Sum256(p) }},
		{"sha-256", func(p []byte) { sha256.Sum256(p) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				c.sum(chunk)
			}
		})
	}
}
