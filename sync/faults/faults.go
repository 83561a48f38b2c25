// Package faults wraps a storage.Store with injected faults, for tests: calls
// that fail with a typed error, Get bodies that end early, listings cut short,
// responses lost after the write happened, and added latency. It follows
// kopia's fault-injecting storage.
//
// A Store is built from an inner store and a list of rules. Every call is
// checked against every rule; a rule fires on the calls it matches according
// to its schedule (After, Times, Prob), and the call then suffers that rule's
// fault:
//
//	s := faults.Wrap(inner,
//		faults.Rule{Op: "get", Times: 3, Err: faults.Transient},
//		faults.Rule{Op: "put", Prefix: "ckpt/", After: 1, Times: 1, Err: faults.Permission},
//	)
//
// Calls and Injected count what happened, so that a test can assert that a
// permanent error stopped work at once and that the faults really fired.
package faults

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/batonrun/baton/sync/storage"
)

// The operations a Rule can name and Store.Calls counts. The upload.* ones
// are the methods of the storage.Upload that NewUpload ("upload") returns.
const (
	OpPut      = "put"
	OpGet      = "get"
	OpStat     = "stat"
	OpList     = "list"
	OpDelete   = "delete"
	OpUpload   = "upload"
	OpPart     = "upload.part"
	OpComplete = "upload.complete"
	OpAbort    = "upload.abort"
)

// validOp reports whether op is one of the Op constants.
func validOp(op string) bool {
	switch op {
	case OpPut, OpGet, OpStat, OpList, OpDelete, OpUpload, OpPart, OpComplete, OpAbort:
		return true
	}
	return false
}

// storeOp is the storage.Error.Op a driver would report for op.
func storeOp(op string) string {
	if strings.HasPrefix(op, OpUpload+".") {
		return OpUpload
	}
	return op
}

// ErrInjected is the underlying error (storage.Error.Err) of every error this
// package makes, so that errors.Is tells an injected fault from a real one.
const ErrInjected = injectedError("injected fault")

type injectedError string

func (e injectedError) Error() string { return string(e) }

// Kind names one of storage's error kinds, for Rule.Err. An injected Kind
// becomes a *storage.Error of that kind naming the operation and key.
type Kind int

// The kinds, one for each sentinel error of storage.
const (
	NotFound           Kind = iota + 1 // storage.ErrNotFound
	PreconditionFailed                 // storage.ErrPreconditionFailed
	Transient                          // storage.ErrTransient
	Unreachable                        // storage.ErrUnreachable
	Auth                               // storage.ErrAuth
	Permission                         // storage.ErrPermission
	NoBucket                           // storage.ErrNoBucket
	Invalid                            // storage.ErrInvalid
	IO                                 // storage.ErrIO
)

// Sentinel returns the storage sentinel error the kind stands for, or nil for
// an unknown kind.
func (k Kind) Sentinel() error {
	switch k {
	case NotFound:
		return storage.ErrNotFound
	case PreconditionFailed:
		return storage.ErrPreconditionFailed
	case Transient:
		return storage.ErrTransient
	case Unreachable:
		return storage.ErrUnreachable
	case Auth:
		return storage.ErrAuth
	case Permission:
		return storage.ErrPermission
	case NoBucket:
		return storage.ErrNoBucket
	case Invalid:
		return storage.ErrInvalid
	case IO:
		return storage.ErrIO
	}
	return nil
}

// Error is the sentinel's message.
func (k Kind) Error() string {
	if s := k.Sentinel(); s != nil {
		return s.Error()
	}
	return fmt.Sprintf("faults.Kind(%d)", int(k))
}

// Unwrap returns the sentinel, so errors.Is(faults.Transient,
// storage.ErrTransient) holds.
func (k Kind) Unwrap() error { return k.Sentinel() }

// kindOf returns the storage sentinel that err stands for when err is a Kind or
// is itself one of the sentinels, and nil otherwise.
func kindOf(err error) error {
	if k, ok := err.(Kind); ok {
		return k.Sentinel()
	}
	for k := NotFound; k <= IO; k++ {
		if err == k.Sentinel() {
			return err
		}
	}
	return nil
}

// Rule says which calls get a fault, what the fault is, and when it fires.
//
// Which: a call matches when its operation is one that Op names and its key
// (a List's prefix) passes Prefix and Key.
//
// What: at least one of Err, ShortRead and Delay must be set. Delay comes
// first; then Err fails the call, or ShortRead lets it succeed with a
// truncated result.
//
// When: the rule counts the calls it matches, on its own, whatever other rules
// do. It skips the first After of them; after that each matching call fires
// with probability Prob, until the rule has fired Times times.
//
// When several rules fire on one call, all their delays are served, the first
// rule's Err (in the order given to Wrap) wins, and else the smallest
// ShortRead.
type Rule struct {
	// Op names the operation the rule applies to (one of the Op constants),
	// or several separated by commas ("put,upload.complete"); "" means any.
	Op string
	// Prefix, if set, limits the rule to keys that start with it.
	Prefix string
	// Key, if set, limits the rule to keys it returns true for. It is called
	// with the Store's lock held, so it must not call the Store.
	Key func(key string) bool

	// Err fails the call. A Kind or a storage sentinel error (storage.ErrTransient
	// ...) becomes a *storage.Error of that kind with the call's operation and
	// key, wrapping ErrInjected; any other error is returned as is. The inner
	// store is not called, unless LoseResponse is set.
	Err error
	// LoseResponse makes Err stand for a response lost on the way back: the
	// call reaches the inner store and takes effect, then Err replaces its
	// result (a Get body is closed, a new Upload aborted).
	LoseResponse bool
	// ShortRead, if > 0, truncates the result of a Get or List (and only
	// those; Op must name no other operation): a Get body returns ShortRead
	// bytes, then an error wrapping storage.ErrTransient and
	// io.ErrUnexpectedEOF; a List passes ShortRead objects to its callback,
	// then fails with such an error. A result no longer than ShortRead is
	// left alone. It cannot be combined with Err.
	ShortRead int64
	// Delay is latency added before the call. It respects the call's
	// context: if the context ends first, the call fails with its error and
	// the inner store is not called.
	Delay time.Duration

	// After is how many matching calls to let through before the rule may
	// fire.
	After int
	// Times caps how often the rule fires; 0 means no limit.
	Times int
	// Prob is the chance that the rule fires on an eligible call, drawn from
	// a math/rand/v2 PCG source seeded with Seed, so that a given sequence
	// of calls gets the same faults on every run. 0 means always (as 1
	// does).
	Prob float64
	// Seed seeds the rule's random source; it matters only with Prob.
	Seed uint64
}

// rule is a Rule with its parsed operations and its schedule's state, which
// the Store's mutex guards.
type rule struct {
	Rule
	ops     map[string]bool // nil: any operation
	rng     *rand.Rand      // nil unless 0 < Prob < 1
	matched int             // matching calls seen
	fired   int             // times fired
}

func compile(i int, r Rule) *rule {
	bad := func(format string, args ...any) {
		panic(fmt.Sprintf("faults: rule %d: %s", i, fmt.Sprintf(format, args...)))
	}
	c := &rule{Rule: r}
	if r.Op != "" {
		c.ops = map[string]bool{}
		for op := range strings.SplitSeq(r.Op, ",") {
			op = strings.TrimSpace(op)
			if !validOp(op) {
				bad("unknown operation %q", op)
			}
			c.ops[op] = true
		}
	}
	switch {
	case r.Err == nil && r.ShortRead <= 0 && r.Delay <= 0:
		bad("no fault: set Err, ShortRead or Delay")
	case r.Err != nil && r.ShortRead > 0:
		bad("Err and ShortRead cannot be combined")
	case r.LoseResponse && r.Err == nil:
		bad("LoseResponse needs Err")
	case r.ShortRead < 0, r.Delay < 0, r.After < 0, r.Times < 0:
		bad("negative ShortRead, Delay, After or Times")
	case r.Prob < 0 || r.Prob > 1:
		bad("Prob %v outside [0, 1]", r.Prob)
	}
	if r.ShortRead > 0 {
		if c.ops == nil {
			bad("ShortRead needs Op to name get and/or list")
		}
		for op := range c.ops {
			if op != OpGet && op != OpList {
				bad("ShortRead applies to get and list only, not %q", op)
			}
		}
	}
	if r.Prob > 0 && r.Prob < 1 {
		c.rng = rand.New(rand.NewPCG(r.Seed, r.Seed^0x9e3779b97f4a7c15))
	}
	return c
}

func (r *rule) matches(op, key string) bool {
	if r.ops != nil && !r.ops[op] {
		return false
	}
	if !strings.HasPrefix(key, r.Prefix) {
		return false
	}
	return r.Key == nil || r.Key(key)
}

// Store is a storage.Store that passes calls to an inner store, injecting the
// faults its rules call for. It is safe for concurrent use.
type Store struct {
	inner storage.Store

	mu       sync.Mutex
	rules    []*rule
	calls    map[string]int
	total    int
	injected int
}

var _ storage.Store = (*Store)(nil)

// Wrap returns inner with the faults that rules describe. It panics if a rule
// is malformed (an unknown operation, no fault, ShortRead on an operation
// other than get and list, ...): that is a bug in the test.
func Wrap(inner storage.Store, rules ...Rule) *Store {
	s := &Store{inner: inner, calls: map[string]int{}}
	for i, r := range rules {
		s.rules = append(s.rules, compile(i, r))
	}
	return s
}

// Calls returns how many calls of op (one of the Op constants) the store has
// received so far, the faulted ones included; "" counts every call.
func (s *Store) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if op == "" {
		return s.total
	}
	return s.calls[op]
}

// Injected returns how many faults have taken effect so far: each rule firing
// counts once if it delayed the call, failed it, or cut its result short (a
// short read counts when the body or listing is actually cut). A rule that
// fires with nothing to do (an Err that an earlier rule's Err overrode, a
// ShortRead beyond the result's end) does not count.
func (s *Store) Injected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.injected
}

// String names the inner store, marked as faulty.
func (s *Store) String() string { return "faults(" + s.inner.String() + ")" }

// plan is what the rules decided for one call.
type plan struct {
	op, key string
	delay   time.Duration
	err     error // the injected error, if any
	lose    bool  // err replaces the result of a call that is made
	short   int64 // truncate the result after this many bytes or objects
	counted bool  // the short read's rule already counted as injected
}

// decide counts the call and runs every rule's schedule on it.
func (s *Store) decide(op, key string) plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	s.calls[op]++
	p := plan{op: op, key: key}
	for _, r := range s.rules {
		if !r.matches(op, key) {
			continue
		}
		r.matched++
		if r.matched <= r.After || (r.Times > 0 && r.fired >= r.Times) {
			continue
		}
		if r.rng != nil && r.rng.Float64() >= r.Prob {
			continue
		}
		r.fired++
		took := r.Delay > 0
		p.delay += r.Delay
		if r.Err != nil && p.err == nil {
			p.err, p.lose, took = s.makeErr(op, key, r.Err), r.LoseResponse, true
		}
		if r.ShortRead > 0 && (p.short == 0 || r.ShortRead < p.short) {
			p.short, p.counted = r.ShortRead, took
		}
		if took {
			s.injected++
		}
	}
	if p.err != nil {
		p.short = 0
	}
	return p
}

func (s *Store) makeErr(op, key string, err error) error {
	if kind := kindOf(err); kind != nil {
		return &storage.Error{Op: storeOp(op), Key: key, Kind: kind, Err: ErrInjected}
	}
	return err
}

// before decides the call's faults and serves its delay. A non-nil error is
// the call's result: the delay was cut short, or an error is injected in
// place of the call.
func (s *Store) before(ctx context.Context, op, key string) (plan, error) {
	p := s.decide(op, key)
	if p.delay > 0 {
		t := time.NewTimer(p.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return p, fmt.Errorf("%s %q: %w", storeOp(op), key, ctx.Err())
		}
	}
	if p.err != nil && !p.lose {
		return p, p.err
	}
	return p, nil
}

// call runs inner, the inner store's operation op on key, with the faults
// planned for it: an error in place of the call, or the call made and its
// result lost. It serves every operation whose result is passed on whole.
func call[T any](ctx context.Context, s *Store, op, key string, inner func() (T, error)) (T, error) {
	var none T
	p, err := s.before(ctx, op, key)
	if err != nil {
		return none, err
	}
	v, err := inner()
	if p.lose {
		return none, p.err
	}
	return v, err
}

// callErr is call for an operation that returns only an error.
func callErr(ctx context.Context, s *Store, op, key string, inner func() error) error {
	_, err := call(ctx, s, op, key, func() (struct{}, error) { return struct{}{}, inner() })
	return err
}

// cutErr is the error of a result cut short after n bytes or objects.
func (s *Store) cutErr(p plan, n int64, unit string) error {
	return &storage.Error{Op: storeOp(p.op), Key: p.key, Kind: storage.ErrTransient,
		Err: fmt.Errorf("%w after %d %s (%w)", io.ErrUnexpectedEOF, n, unit, ErrInjected)}
}

// noteCut counts a short read once it has happened.
func (s *Store) noteCut(p plan) {
	if p.counted {
		return
	}
	s.mu.Lock()
	s.injected++
	s.mu.Unlock()
}

// Put implements storage.Store.
func (s *Store) Put(ctx context.Context, key string, pl storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
	return call(ctx, s, OpPut, key, func() (storage.ObjectInfo, error) { return s.inner.Put(ctx, key, pl, opts) })
}

// Get implements storage.Store.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error) {
	p, err := s.before(ctx, OpGet, key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	body, info, err := s.inner.Get(ctx, key, offset, length)
	if p.lose {
		if err == nil {
			body.Close()
		}
		return nil, storage.ObjectInfo{}, p.err
	}
	if err != nil || p.short == 0 {
		return body, info, err
	}
	return &shortBody{s: s, p: p, inner: body, left: p.short}, info, nil
}

// shortBody passes p.short bytes of inner, then fails.
type shortBody struct {
	s     *Store
	p     plan
	inner io.ReadCloser
	left  int64
	err   error // once cut
}

func (b *shortBody) Read(buf []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left == 0 {
		// Cut only a body that has more to give.
		var probe [1]byte
		n, err := io.ReadAtLeast(b.inner, probe[:], 1)
		if n == 0 && err == io.EOF {
			return 0, io.EOF
		}
		if n == 0 && err != nil {
			return 0, err
		}
		b.err = b.s.cutErr(b.p, b.p.short, "bytes")
		b.s.noteCut(b.p)
		return 0, b.err
	}
	if int64(len(buf)) > b.left {
		buf = buf[:b.left]
	}
	n, err := b.inner.Read(buf)
	b.left -= int64(n)
	return n, err
}

func (b *shortBody) Close() error { return b.inner.Close() }

// Stat implements storage.Store.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	return call(ctx, s, OpStat, key, func() (storage.ObjectInfo, error) { return s.inner.Stat(ctx, key) })
}

// List implements storage.Store. The rules see the prefix as the key.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	p, err := s.before(ctx, OpList, prefix)
	if err != nil {
		return err
	}
	if p.short == 0 {
		err = s.inner.List(ctx, prefix, fn)
	} else {
		var seen int64
		var cut error
		err = s.inner.List(ctx, prefix, func(o storage.ObjectInfo) error {
			if seen == p.short {
				cut = s.cutErr(p, seen, "objects")
				return cut
			}
			seen++
			return fn(o)
		})
		if cut != nil && err == cut {
			s.noteCut(p)
		}
	}
	if p.lose {
		return p.err
	}
	return err
}

// Delete implements storage.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	return callErr(ctx, s, OpDelete, key, func() error { return s.inner.Delete(ctx, key) })
}

// NewUpload implements storage.Store. The upload it returns injects faults into
// Part ("upload.part"), Complete ("upload.complete") and Abort
// ("upload.abort") too, with the upload's key as the key.
func (s *Store) NewUpload(ctx context.Context, key string) (storage.Upload, error) {
	p, err := s.before(ctx, OpUpload, key)
	if err != nil {
		return nil, err
	}
	u, err := s.inner.NewUpload(ctx, key)
	if p.lose {
		if err == nil {
			u.Abort(context.WithoutCancel(ctx))
		}
		return nil, p.err
	}
	if err != nil {
		return nil, err
	}
	return &upload{s: s, key: key, inner: u}, nil
}

// upload is an Upload with faults.
type upload struct {
	s     *Store
	key   string
	inner storage.Upload
}

func (u *upload) Part(ctx context.Context, n int, offset int64, pl storage.Payload) (storage.CompletedPart, error) {
	return call(ctx, u.s, OpPart, u.key, func() (storage.CompletedPart, error) { return u.inner.Part(ctx, n, offset, pl) })
}

func (u *upload) Complete(ctx context.Context, parts []storage.CompletedPart) (storage.ObjectInfo, error) {
	return call(ctx, u.s, OpComplete, u.key, func() (storage.ObjectInfo, error) { return u.inner.Complete(ctx, parts) })
}

func (u *upload) Abort(ctx context.Context) error {
	return callErr(ctx, u.s, OpAbort, u.key, func() error { return u.inner.Abort(ctx) })
}
