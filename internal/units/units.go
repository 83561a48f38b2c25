// Package units writes and reads sizes in bytes, the one home of baton's
// byte formatting: Bytes for people (1.5 GiB, rounded), ExactBytes and
// ParseBytes for settings (16MiB, read back exactly); and Plural, "1 file"
// but "2 files", for counts in messages.
package units

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Bytes writes n for people, rounded to a tenth of the largest binary unit
// it reaches: 0 B, 1023 B, 1.5 KiB, 3.2 GiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// unit is a suffix and the bytes it stands for.
type unit struct {
	suffix string
	mult   int64
}

// exactUnits are the units ExactBytes writes, largest first; ParseBytes
// reads the short ones too.
var (
	exactUnits = []unit{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	parseUnits = append(exactUnits[:len(exactUnits):len(exactUnits)], unit{"G", 1 << 30}, unit{"M", 1 << 20}, unit{"K", 1 << 10}, unit{"B", 1})
)

// ExactBytes writes n with the largest binary unit that divides it (16MiB,
// 512KiB, 1GiB, 1000), so that ParseBytes reads it back.
func ExactBytes(n int64) string {
	for _, u := range exactUnits {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// ErrNotASize is ParseBytes' error.
var ErrNotASize = errors.New("not a size (want e.g. 16MiB, 512KiB, 1GiB or a number of bytes)")

// ParseBytes reads a size written as ExactBytes writes it, or with the
// short units K, M, G or B; it refuses a negative size and one that
// overflows int64.
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range parseUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/mult {
		return 0, ErrNotASize
	}
	return n * mult, nil
}

// Plural writes n and noun, with an s when n is not 1: "1 file", "0 files",
// "3 checkpoints". noun is a regular English noun in the singular.
func Plural[N ~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
