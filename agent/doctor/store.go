package doctor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/batonrun/baton/internal/redact"
	"github.com/batonrun/baton/sync/storage"
)

// ProbePrefix is the prefix, under the store's own, of the objects the
// round trip writes; each is deleted before the check ends.
const ProbePrefix = ".baton-doctor/"

// StoreFacts is the round trip through the store.
type StoreFacts struct {
	// URL is the store's URL, credentials removed.
	URL string `json:"url"`
	// Key is the probe object's key under the store's prefix:
	// ".baton-doctor/HOST-RANDOM".
	Key string `json:"key"`
	// Steps are the steps that ran, in order; a step that did not run is
	// absent.
	Steps []StoreStep `json:"steps"`
}

// The steps of the round trip, as StoreStep.Op names them.
const (
	StepOpen     = "open"          // open the store from its URL
	StepPut      = "put_if_absent" // create the probe object, only if absent
	StepPutAgain = "put_if_absent_again"
	StepGet      = "get"    // read it back and compare
	StepList     = "list"   // list its key
	StepDelete   = "delete" // delete it
)

// StoreStep is one step of the round trip.
type StoreStep struct {
	// Op is open, put_if_absent, put_if_absent_again (which must be
	// refused), get, list or delete.
	Op string `json:"op"`
	// Status is ok or fail.
	Status Status `json:"status"`
	// DurationMS is how long the step took, retries included.
	DurationMS float64 `json:"duration_ms"`
	// Kind says what went wrong, for a failed step: credentials, no_bucket,
	// unreachable, timeout, permission, not_found, transient, invalid, io,
	// not_enforced (a second create-only write was accepted), mismatch (the
	// object read back differs), not_listed, other.
	Kind string `json:"kind,omitempty"`
	// Error is the store's error for a failed step.
	Error string `json:"error,omitempty"`
}

// stepTimeout is StoreStepTimeout; tests shorten it.
var stepTimeout = StoreStepTimeout

// DefaultStoreRetry is the retry policy of the round trip: a few quick
// tries, so that one dropped request does not fail the check but a dead
// endpoint fails within a few seconds.
func DefaultStoreRetry() storage.Retry {
	return storage.Retry{Attempts: 3, UnreachableAttempts: 2, Base: 200 * time.Millisecond, Max: time.Second}
}

// checkStore opens the configured store and runs the round trip. With no
// store configured it warns; a store that is set must pass (the check is
// required): baton run could not commit to it otherwise.
func checkStore(ctx context.Context, o Options) (Check, *StoreFacts) {
	url := o.Config.Store
	if url == "" || o.OpenStore == nil {
		return Check{Name: "store", Status: Warn, Reason: "no store set: reachability and writes not checked",
			Hint: "set --store or BATON_STORE (s3://bucket/prefix or file:///path) to check it"}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, StoreTimeout)
	defer cancel()
	retry := o.StoreRetry
	if retry.Attempts == 0 {
		retry = DefaultStoreRetry()
	}
	rt := &roundTrip{retry: retry, now: o.Now, facts: &StoreFacts{URL: o.Redact(redact.URLs(url))}}
	rt.facts.Key = probeKey(o.Host)
	fail := rt.run(ctx, o, url)
	c := Check{Name: "store", Required: true, Status: OK}
	if fail != nil {
		c.Status = Fail
		c.Reason = fmt.Sprintf("%s: %s: %s", rt.facts.URL, fail.Op, o.Redact(kindWords(fail)))
		c.Hint = kindHint(fail.Kind)
		return c, rt.facts
	}
	var times []string
	for _, s := range rt.facts.Steps[1:] {
		times = append(times, fmt.Sprintf("%s %s", stepLabel(s.Op), fmtMillis(s.DurationMS)))
	}
	c.Reason = fmt.Sprintf("%s: writable, create-only writes enforced (%s)", rt.facts.URL, strings.Join(times, ", "))
	return c, rt.facts
}

// roundTrip runs the steps and records them.
type roundTrip struct {
	retry storage.Retry
	now   func() time.Time
	facts *StoreFacts
}

// run runs the round trip and returns its first failed step, or nil.
func (rt *roundTrip) run(ctx context.Context, o Options, url string) *StoreStep {
	var store storage.Store
	if failed := rt.step(ctx, StepOpen, func(ctx context.Context) error {
		var err error
		store, err = o.OpenStore(ctx, url)
		return err
	}); failed != nil {
		return failed
	}
	store = storage.WithRetry(store, rt.retry)
	key := rt.facts.Key
	body := []byte(fmt.Sprintf("baton doctor probe from %s at %s\n", orUnknownHost(o.Host), o.Now().UTC().Format(time.RFC3339Nano)))
	var first *StoreStep
	keep := func(s *StoreStep) {
		if first == nil {
			first = s
		}
	}

	failed := rt.step(ctx, StepPut, func(ctx context.Context) error {
		_, err := store.Put(ctx, key, storage.BytesPayload(body), storage.PutOptions{IfAbsent: true})
		if errors.Is(err, storage.ErrPreconditionFailed) && ours(ctx, store, key, body) {
			return nil // a retry found the object a lost response had written
		}
		return err
	})
	if failed != nil {
		if failed.Kind == "timeout" || failed.Kind == "transient" {
			rt.cleanup(ctx, store, key) // the object may be there
		}
		return failed
	}

	keep(rt.step(ctx, StepPutAgain, func(ctx context.Context) error {
		_, err := store.Put(ctx, key, storage.BytesPayload([]byte("second writer\n")), storage.PutOptions{IfAbsent: true})
		switch {
		case err == nil:
			return errNotEnforced
		case errors.Is(err, storage.ErrPreconditionFailed):
			return nil
		}
		return err
	}))
	keep(rt.step(ctx, StepGet, func(ctx context.Context) error {
		rc, _, err := store.Get(ctx, key, 0, -1)
		if err != nil {
			return err
		}
		defer rc.Close()
		got, err := io.ReadAll(io.LimitReader(rc, int64(len(body))+1))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, body) {
			return fmt.Errorf("%w: read %d bytes back, not the %d written", errMismatch, len(got), len(body))
		}
		return nil
	}))
	keep(rt.step(ctx, StepList, func(ctx context.Context) error {
		found := false
		err := store.List(ctx, key, func(info storage.ObjectInfo) error {
			if info.Key == key {
				found = true
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		if !found {
			return errNotListed
		}
		return nil
	}))
	keep(rt.step(ctx, StepDelete, func(ctx context.Context) error { return store.Delete(ctx, key) }))
	return first
}

// Errors of the round trip's own checks.
var (
	errNotEnforced = errors.New("a second create-only write of the same key succeeded")
	errMismatch    = errors.New("the object read back differs from the one written")
	errNotListed   = errors.New("a listing of the key does not show the object just written")
	errStop        = errors.New("stop listing")
)

// step runs op once under StoreStepTimeout and records it.
func (rt *roundTrip) step(ctx context.Context, op string, f func(context.Context) error) *StoreStep {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	start := rt.now()
	err := f(ctx)
	s := StoreStep{Op: op, Status: OK, DurationMS: millis(rt.now().Sub(start))}
	if err != nil {
		s.Status, s.Kind, s.Error = Fail, kindOf(ctx, err), oneLine(err.Error())
	}
	rt.facts.Steps = append(rt.facts.Steps, s)
	if err != nil {
		return &s
	}
	return nil
}

// cleanup deletes the probe object after a failed write that may have
// reached the store anyway; it records nothing.
func (rt *roundTrip) cleanup(ctx context.Context, store storage.Store, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = store.Delete(ctx, key) // best effort: the check has failed already
}

// ours reports whether the object under key holds body.
func ours(ctx context.Context, store storage.Store, key string, body []byte) bool {
	rc, _, err := store.Get(ctx, key, 0, -1)
	if err != nil {
		return false
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(body))+1))
	return err == nil && bytes.Equal(got, body)
}

// kindOf names the kind of a step's error; ctx is the step's own context,
// whose deadline tells a timeout.
func kindOf(ctx context.Context, err error) string {
	for _, k := range []struct {
		err  error
		kind string
	}{
		{errNotEnforced, "not_enforced"},
		{errMismatch, "mismatch"},
		{errNotListed, "not_listed"},
		{storage.ErrAuth, "credentials"},
		{storage.ErrPermission, "permission"},
		{storage.ErrNoBucket, "no_bucket"},
		{storage.ErrUnreachable, "unreachable"},
		{storage.ErrNotFound, "not_found"},
		{storage.ErrPreconditionFailed, "precondition_failed"},
		{storage.ErrInvalid, "invalid"},
		{storage.ErrIO, "io"},
		{context.DeadlineExceeded, "timeout"},
		{storage.ErrTransient, "transient"},
	} {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	if ctx.Err() != nil {
		return "timeout"
	}
	return "other"
}

// kindWords says in a few words what went wrong in step s.
func kindWords(s *StoreStep) string {
	switch s.Kind {
	case "credentials":
		return "credentials rejected"
	case "permission":
		return "permission denied"
	case "no_bucket":
		return "the bucket does not exist"
	case "unreachable":
		return "endpoint unreachable"
	case "timeout":
		return "endpoint unreachable: no answer within " + fmtMillis(s.DurationMS)
	case "not_enforced":
		return "the store accepted a second create-only write of the same key"
	case "mismatch":
		return "the object read back differs from the one written"
	case "not_listed":
		return "a listing does not show the object just written"
	case "precondition_failed":
		return "the probe key exists already: " + s.Error
	}
	return s.Error
}

// kindHint says what to do about a failure of the given kind.
func kindHint(kind string) string {
	switch kind {
	case "credentials":
		return "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and the profile's keys)"
	case "permission":
		return "allow these credentials to put, get, list and delete objects under the store's prefix"
	case "no_bucket":
		return "create the bucket, or fix its name in the store URL"
	case "unreachable", "timeout":
		return "check the endpoint (?endpoint= in the URL, AWS_ENDPOINT_URL_S3), the region and the network"
	case "not_enforced":
		return "baton's lease and commits need If-None-Match on PUT: use AWS S3, R2, a recent MinIO or versitygw"
	case "mismatch", "not_listed":
		return "the store does not read back what was written: check for a caching proxy in front of it"
	case "not_found":
		return "the store's root (its bucket or directory) cannot be found or created"
	case "io":
		return "the storage behind the store failed (a full disk?)"
	case "invalid":
		return "check the store URL (docs/storage.md)"
	}
	return "see docs/doctor.md"
}

// stepLabel is the short name of a step in the reason line.
func stepLabel(op string) string {
	switch op {
	case StepPut:
		return "put"
	case StepPutAgain:
		return "refused put"
	}
	return op
}

// fmtMillis writes a duration given in milliseconds: "12ms", "1.2s".
func fmtMillis(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.1fs", ms/1000)
	case ms < 10:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}

// probeKey returns a fresh key under ProbePrefix that names the host.
func probeKey(host string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, orUnknownHost(host))
	safe = strings.TrimLeft(safe, ".")
	if len(safe) > 64 {
		safe = safe[:64]
	}
	return ProbePrefix + safe + "-" + hex.EncodeToString(b[:])
}

func orUnknownHost(h string) string {
	if h == "" {
		return "unknown"
	}
	return h
}
