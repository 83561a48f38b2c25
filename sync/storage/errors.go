package storage

import (
	"errors"
	"fmt"
	"strconv"
)

// The kinds of storage error. Every error from a Store wraps exactly one of
// them (or one of the refined kinds below, which wraps one of them); test
// with errors.Is.
var (
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("not found")
	// ErrPreconditionFailed: a conditional Put lost (the object exists, or its
	// ETag no longer matches).
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrTransient: the request may succeed if sent again (throttling, server
	// errors, a connection cut mid-transfer).
	ErrTransient = errors.New("transient error")
	// ErrUnreachable: the endpoint could not be reached at all (refused,
	// unresolvable, timed out). Worth a few retries, not many.
	ErrUnreachable = errors.New("endpoint unreachable")
	// ErrAuth: the credentials were rejected (unknown key, bad signature,
	// expired token) or none could be found.
	ErrAuth = errors.New("credentials rejected")
	// ErrPermission: the credentials are valid but not allowed to do this.
	ErrPermission = errors.New("permission denied")
	// ErrNoBucket: the bucket (or the file store's root) does not exist.
	ErrNoBucket = errors.New("bucket does not exist")
	// ErrInvalid: the request itself is wrong (a bad key, a bad part); sending
	// it again will not help.
	ErrInvalid = errors.New("invalid request")
	// ErrIO: the storage itself failed for good (a full disk, an I/O error).
	ErrIO = errors.New("storage I/O error")
)

// Refined kinds: a cause of a kind above that its own words tell better.
// errors.Is holds for the refined kind and for the kind it refines, so code
// that knows only the kinds above treats it as that one; Error prints the
// refined words.
var (
	// ErrWrongRegion: the request was signed for another region than the
	// bucket's or the server's. It is an ErrInvalid: sending it again will
	// not help.
	ErrWrongRegion error = &refined{"wrong region", ErrInvalid}
	// ErrTLSMismatch: an https:// endpoint answered in plain HTTP, or an
	// http:// one in TLS. It is an ErrInvalid.
	ErrTLSMismatch error = &refined{"TLS mismatch", ErrInvalid}
)

// refined is a kind that refines another.
type refined struct {
	words string
	kind  error
}

func (r *refined) Error() string { return r.words }
func (r *refined) Unwrap() error { return r.kind }

// Error is a storage error: the operation, the key and its kind.
type Error struct {
	// Op is the operation: "put", "get", "stat", "list", "delete", "upload".
	Op string
	// Key is the object key or list prefix involved, if any.
	Key string
	// Kind is one of the sentinel errors of this package.
	Kind error
	// Err is the underlying error from the driver or provider, if any.
	Err error
}

// Errorf returns an *Error of the given kind whose underlying error is made
// from format and args.
func Errorf(op, key string, kind error, format string, args ...any) *Error {
	return &Error{Op: op, Key: key, Kind: kind, Err: fmt.Errorf(format, args...)}
}

func (e *Error) Error() string {
	s := e.Op
	if e.Key != "" {
		s += " " + strconv.Quote(e.Key)
	}
	s += ": " + e.Kind.Error()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns both the kind and the underlying error, so errors.Is works
// with the sentinels and errors.As with provider error types.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// IsRetryable reports whether sending the same request again may succeed.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrTransient) || errors.Is(err, ErrUnreachable)
}
