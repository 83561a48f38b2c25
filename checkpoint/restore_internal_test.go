package checkpoint

import (
	"bytes"
	"testing"

	"github.com/zeebo/blake3"
)

func TestOrderedHasher(t *testing.T) {
	const chunk, n = 16, 40
	data := make([]byte, chunk*n-5)
	for i := range data {
		data[i] = byte(i * 31)
	}
	want := blake3.Sum256(data)
	cases := []struct {
		name   string
		order  []int
		hashed bool // false: too far out of order, the file must be read back
	}{
		{"in order", seq(0, n), true},
		{"pairs swapped", swapPairs(seq(0, n)), true},
		{"reversed", reverse(seq(0, n)), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newOrderedHasher()
			released := 0
			for _, i := range c.order {
				off, size := chunkSpan(int64(len(data)), chunk, i)
				buf := append([]byte(nil), data[off:off+size]...)
				released += len(o.add(i, &buf, size))
			}
			if released != n {
				t.Errorf("%d of %d buffers released", released, n)
			}
			sum := o.sum(n)
			switch {
			case c.hashed && !bytes.Equal(sum, want[:]):
				t.Fatalf("sum %x, want %x", sum, want)
			case !c.hashed && sum != nil:
				t.Fatalf("sum %x of chunks too far out of order, want nil", sum)
			}
		})
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func reverse(s []int) []int {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
	return s
}

func swapPairs(s []int) []int {
	for i := 0; i+1 < len(s); i += 2 {
		s[i], s[i+1] = s[i+1], s[i]
	}
	return s
}
