package storage

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is the longest key S3 accepts, in bytes.
const MaxKeyLen = 1024

// CheckKey returns an error wrapping ErrInvalid unless key is a valid object
// key: non-empty, valid UTF-8, at most MaxKeyLen bytes, no leading "/", no
// empty, "." or ".." segments, no NUL byte. Such a key maps to a relative
// path that stays inside any directory it is joined to.
func CheckKey(key string) error {
	bad := func(why string) error {
		return &Error{Op: "check key", Key: key, Kind: ErrInvalid, Err: fmt.Errorf("%s", why)}
	}
	switch {
	case key == "":
		return bad("empty key")
	case len(key) > MaxKeyLen:
		return bad("longer than 1024 bytes")
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	case strings.ContainsRune(key, 0):
		return bad("contains a NUL byte")
	case strings.HasPrefix(key, "/"):
		return bad("absolute")
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return bad("empty path segment")
		case ".", "..":
			return bad("contains a " + seg + " segment")
		}
	}
	return nil
}
