package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"time"

	"github.com/batonrun/baton/internal/progress"
	"github.com/batonrun/baton/sync/storage"
)

// DefaultChunkSize is the fixed chunk size of new commits: 4 MiB. Measured on
// an H100 with a GPT-2 fine-tune with 2/3 of the blocks frozen, 75% of the
// model file's 4 MiB chunks were unchanged between two checkpoints, against
// 70% at 16 MiB and 50% at 64 MiB (DESIGN.md); scripts/bench-checkpoint.sh
// shows the cost of the smaller chunks on commit and restore time is within
// noise on one versitygw.
const DefaultChunkSize = 4 << 20

// Errors callers branch on.
var (
	// ErrNoCheckpoint: the run has no committed checkpoint yet.
	ErrNoCheckpoint = errors.New("no checkpoint committed yet")
	// ErrLeaseHeld: another holder's lease on the run has not expired.
	ErrLeaseHeld = errors.New("the run's lease is held by another host")
	// ErrLeaseLost: this holder's lease was taken over; it must stop
	// committing at once.
	ErrLeaseLost = errors.New("lease lost: another host took the run over")
	// ErrDirChanged: a file changed while the commit read it; the commit was
	// dropped and may be tried again later.
	ErrDirChanged = errors.New("checkpoint directory changed during the commit")
	// ErrEmpty: the directory holds no file to commit; an empty directory
	// is never published as a checkpoint.
	ErrEmpty = errors.New("the checkpoint directory holds no file")
	// ErrNotPublished: a manifest exists under that number but was never
	// published (a commit that crashed or was fenced before it moved
	// latest.json, or one still in flight). It is not a checkpoint.
	ErrNotPublished = errors.New("not a published checkpoint")
)

// Holder identifies who commits: one process on one host.
type Holder struct {
	// ID is unique to the holder and stable across its restarts on the same
	// host, so that a restarted agent can take its own lease back at once.
	ID string
	// Host and Platform are recorded in the lease and in every manifest.
	Host     string
	Platform string
}

// Options configure a Repo. The zero value of a field means its default.
type Options struct {
	// Run is the run id (see CheckRunID). Required.
	Run string
	// Holder identifies the committer; required to commit or take the lease.
	Holder Holder
	// Supersedes is the ID of a former holder known to be gone (a baton of
	// this machine that died: see agent): Acquire takes its lease over at
	// once instead of waiting for it to expire.
	Supersedes string
	// ChunkSize of new commits (default DefaultChunkSize).
	ChunkSize int64
	// Exclude are globs of file and directory names a commit leaves out
	// (see Excluded); nil means none. DefaultExclude is what baton run
	// uses unless told otherwise.
	Exclude []string
	// Workers is the number of chunk transfers in flight (default 16).
	Workers int
	// LeaseDuration is how long a lease lasts unless renewed (default 2m).
	LeaseDuration time.Duration
	// Retry is the retry policy of every storage request (default
	// storage.DefaultRetry()). Open wraps the store in it once
	// (storage.WithRetry); a store that is already so wrapped gets this
	// policy instead of its own.
	Retry *storage.Retry
	// Now is the clock (default time.Now); tests inject their own.
	Now func() time.Time
	// Progress, if set, shows every Commit and Restore that moves files
	// (see progress.Reporter). A commit plans the files it reads and hashes
	// (those changed since the parent checkpoint) and their bytes; a file
	// counts once read and hashed, a byte once its chunk is in the store
	// (uploaded, or found there). A restore plans every file and byte of
	// the checkpoint; a byte counts once downloaded, verified and written,
	// a file once it is durable.
	Progress *progress.Reporter
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Key, if set, encrypts the run (see docs/checkpoint-format.md,
	// "Encryption"): its chunks are named by keyed hashes and sealed, and
	// so are its manifests. An encrypted run is read only with its key, a
	// plain one only without a key.
	Key *Key
}

// Repo is one run's checkpoints in a store.
type Repo struct {
	store storage.Store // retries every request (see Options.Retry)
	opts  Options
	log   *slog.Logger
	key   *Key // opts.Key
}

// Open returns the repository of opts.Run in store. It sends no request.
// Every request it sends later is retried under opts.Retry.
func Open(store storage.Store, opts Options) (*Repo, error) {
	if err := CheckRunID(opts.Run); err != nil {
		return nil, err
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.ChunkSize < MinChunkSize || opts.ChunkSize > MaxChunkSize {
		return nil, fmt.Errorf("chunk size %d outside [%d, %d]", opts.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	for _, g := range opts.Exclude {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("exclude glob %q: %w", g, err)
		}
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.LeaseDuration <= 0 {
		opts.LeaseDuration = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Repo{store: retrying(store, opts.Retry), opts: opts, log: opts.Logger, key: opts.Key}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r, nil
}

// retrying wraps store in the retry policy p (nil: the default).
func retrying(store storage.Store, p *storage.Retry) storage.Store {
	if p == nil {
		return storage.WithRetry(store, storage.DefaultRetry())
	}
	return storage.WithRetry(store, *p)
}

// Run is the run id.
func (r *Repo) Run() string { return r.opts.Run }

// getJSON reads the small JSON object under key into v and returns its
// ETag. A missing object is storage.ErrNotFound.
func (r *Repo) getJSON(ctx context.Context, key string, limit int64, v any) (string, error) {
	var (
		b    []byte
		etag string
	)
	err := readAgainIfChanged(func() error {
		rc, info, err := r.store.Get(ctx, key, 0, -1)
		if err != nil {
			return err
		}
		defer rc.Close()
		if info.Size > limit {
			return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrBadManifest, key, info.Size, limit)
		}
		b, err = io.ReadAll(io.LimitReader(rc, limit+1))
		etag = info.ETag
		return err
	})
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrBadManifest, key, err)
	}
	return etag, nil
}

// readAgainIfChanged runs read, a whole read of one object, again (twice at
// most) when it failed with storage.ErrChanged: the store resumes a read
// cut mid-stream, but not across a replacement of the object (latest.json,
// lease.json, gc.json move; a torn chunk is sent again), and then only a
// read from the start gets one whole version. Every other retry is the
// store's own (storage.WithRetry).
func readAgainIfChanged(read func() error) error {
	for try := 1; ; try++ {
		err := read()
		if try == 3 || !errors.Is(err, storage.ErrChanged) {
			return err
		}
	}
}

// putJSON writes v under key with the given condition. The store retries
// transient errors, a conditional write whose response was lost too; the
// retry then fails its condition, which callers treat as losing the race
// (they re-read and find their own write).
func (r *Repo) putJSON(ctx context.Context, key string, v any, opts storage.PutOptions) (storage.ObjectInfo, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	b = append(b, '\n')
	return r.store.Put(ctx, key, storage.BytesPayload(b), opts)
}

// readPointer returns latest.json and its ETag. A missing pointer is the
// zero Latest with an empty ETag. Seq 0 is a valid pointer: a run whose
// lease was taken (and fenced at Epoch) before any checkpoint was published.
func (r *Repo) readPointer(ctx context.Context) (Latest, string, error) {
	var l Latest
	etag, err := r.getJSON(ctx, latestKey(r.opts.Run), 64<<10, &l)
	if errors.Is(err, storage.ErrNotFound) {
		return Latest{}, "", nil
	}
	if err != nil {
		return Latest{}, "", err
	}
	if l.Seq < 0 || l.Epoch < 1 {
		return Latest{}, "", fmt.Errorf("%w: latest.json of run %s names checkpoint %d at epoch %d", ErrBadManifest, r.opts.Run, l.Seq, l.Epoch)
	}
	return l, etag, nil
}

// Pointer returns the run's latest.json, checked as every reader checks
// it, or nil if the run has none: for readers that take no lease (baton
// status, baton watch).
func (r *Repo) Pointer(ctx context.Context) (*Latest, error) {
	l, _, err := r.readPointer(ctx)
	if err != nil || l.Epoch == 0 {
		return nil, err
	}
	return &l, nil
}

// LeaseRecord returns the run's lease.json as stored, or nil if no host has
// taken the run yet: for readers that take no lease.
func (r *Repo) LeaseRecord(ctx context.Context) (*LeaseRecord, error) {
	var rec LeaseRecord
	_, err := r.getJSON(ctx, leaseKey(r.opts.Run), 64<<10, &rec)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the lease of run %s: %w", r.opts.Run, err)
	}
	return &rec, nil
}

// readLatest returns the pointer of a run that has a published checkpoint,
// or ErrNoCheckpoint.
func (r *Repo) readLatest(ctx context.Context) (Latest, string, error) {
	l, etag, err := r.readPointer(ctx)
	if err == nil && l.Seq == 0 {
		return Latest{}, "", ErrNoCheckpoint
	}
	return l, etag, err
}

// Latest returns the number of the run's newest published checkpoint, 0 if
// it has none.
func (r *Repo) Latest(ctx context.Context) (int64, error) {
	l, _, err := r.readLatest(ctx)
	if errors.Is(err, ErrNoCheckpoint) {
		return 0, nil
	}
	return l.Seq, err
}

// Manifest returns published checkpoint seq of the run, validated; seq 0
// means the one latest.json names. A manifest that was never published
// (see Published) is refused with ErrNotPublished.
func (r *Repo) Manifest(ctx context.Context, seq int64) (*Manifest, error) {
	seq, err := r.publishedSeq(ctx, seq)
	if err != nil {
		return nil, err
	}
	return r.fetchManifest(ctx, seq, false)
}

// publishedSeq returns seq, or for 0 the one latest.json names, if that
// checkpoint was published (see checkPublished).
func (r *Repo) publishedSeq(ctx context.Context, seq int64) (int64, error) {
	l, _, err := r.readLatest(ctx)
	if err != nil {
		return 0, err
	}
	if err := r.checkKey(l.Encryption); err != nil {
		return 0, err
	}
	if seq == 0 {
		seq = l.Seq
	}
	if err := r.checkPublished(ctx, l, seq); err != nil {
		return 0, err
	}
	return seq, nil
}

// checkPublished returns nil if checkpoint seq was published, given the
// pointer l. Published checkpoints form a chain: latest.json names the
// newest, and each manifest names the one before it (Parent), which was
// latest when it was committed. A number above latest.json's, or one that
// the chain steps over, was never published, whatever manifest is stored
// under it. Where retention has deleted a link, the manifests older than
// the gap are taken as published (only pinned ones are kept there).
func (r *Repo) checkPublished(ctx context.Context, l Latest, seq int64) error {
	if seq > l.Seq {
		return fmt.Errorf("run %s checkpoint %d: %w (latest.json names %d; a commit that crashed or lost its lease leaves such a manifest behind)",
			r.opts.Run, seq, ErrNotPublished, l.Seq)
	}
	for cur := l.Seq; cur > seq; {
		h, err := r.fetchManifest(ctx, cur, true)
		if errors.Is(err, storage.ErrNotFound) && cur != l.Seq {
			return nil // a link retention deleted: older manifests are the pinned ones
		}
		if err != nil {
			return err
		}
		if h.Parent < seq {
			return fmt.Errorf("run %s checkpoint %d: %w (checkpoint %d followed %d; a commit that lost its lease leaves such a manifest behind)",
				r.opts.Run, seq, ErrNotPublished, cur, h.Parent)
		}
		cur = h.Parent
	}
	return nil
}

// Walk reads published checkpoint seq of the run (0: the latest) as it
// streams in, handing each file to fn instead of keeping them all, and
// returns the manifest without its files (FileCount says how many). The
// whole manifest is checked as Manifest checks it, but the checks that need
// every file end only after the last fn call: act on what fn saw only when
// Walk returned nil. fn sees each file once, in order, even when a read is
// started again. An error from fn stops the walk.
func (r *Repo) Walk(ctx context.Context, seq int64, fn func(File) error) (*Manifest, error) {
	seq, err := r.publishedSeq(ctx, seq)
	if err != nil {
		return nil, err
	}
	return r.walkManifest(ctx, seq, fn)
}

// walkManifest is Walk on manifests/<seq>.json, published or not.
func (r *Repo) walkManifest(ctx context.Context, seq int64, fn func(File) error) (*Manifest, error) {
	next := 0 // a read that starts again skips the files fn has seen
	visit := func(i int, f File) error {
		if i < next {
			return nil
		}
		next++
		return fn(f)
	}
	open := func() (io.ReadCloser, error) {
		rc, _, err := r.store.Get(ctx, manifestKey(r.opts.Run, seq), 0, -1)
		if err != nil {
			return nil, err
		}
		return plainOnly(rc)
	}
	// A manifest is never replaced, so a read cut mid-stream resumes
	// (storage.WithRetry); fn still sees each file once if the decoder
	// reads the manifest again (a header after the files, an entry too big
	// for the fast decoder).
	m, err := decodeManifest(open, r.opts.Run, seq, readMode{visit: visit})
	if errors.Is(err, errSealed) {
		return r.walkSealed(ctx, seq, fn)
	}
	if err == nil && r.key != nil {
		return nil, r.notSealed(seq)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("run %s has no checkpoint %d: %w", r.opts.Run, seq, err)
	}
	return m, err
}

// headerProbe is how much of a manifest a header read fetches first.
const headerProbe = 64 << 10

// fetchManifest reads manifests/<seq>.json of the run, published or not:
// whole, or only its header (see readManifest). A missing manifest is
// storage.ErrNotFound.
func (r *Repo) fetchManifest(ctx context.Context, seq int64, headerOnly bool) (*Manifest, error) {
	key := manifestKey(r.opts.Run, seq)
	length := int64(-1)
	if headerOnly {
		length = headerProbe // the header of what this baton writes is a few hundred bytes
	}
	var size int64
	open := func(length int64) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) {
			rc, info, err := r.store.Get(ctx, key, 0, length)
			size = info.Size
			if err != nil {
				return nil, err
			}
			return plainOnly(rc)
		}
	}
	m, err := decodeManifest(open(length), r.opts.Run, seq, readMode{headerOnly: headerOnly})
	if errors.Is(err, errSealed) {
		return r.fetchSealed(ctx, seq, headerOnly)
	}
	if err != nil && headerOnly && size > headerProbe && !errors.Is(err, errBodyRead) && !errors.Is(err, storage.ErrNotFound) {
		// The header did not fit in the probe (files before the
		// counts): read the whole manifest, keeping no entries.
		m, err = decodeManifest(open(-1), r.opts.Run, seq, readMode{headerOnly: true})
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("run %s has no checkpoint %d: %w", r.opts.Run, seq, err)
	}
	if err == nil && r.key != nil {
		return nil, r.notSealed(seq)
	}
	return m, err
}

// PutLog stores a log segment of the run under runs/<run>/logs/<name>,
// replacing an earlier upload of the same segment. One host's agent writes
// one segment per start, so a run's history survives its hosts. In an
// encrypted run the segment is read whole and sealed under the same name
// (see SealObject and LogAD; ReadLog opens it).
func (r *Repo) PutLog(ctx context.Context, name string, p storage.Payload) error {
	if err := CheckRunID(name); err != nil {
		return fmt.Errorf("log segment name: %w", err)
	}
	if r.key != nil {
		var err error
		if p, err = r.sealLog(name, p); err != nil {
			return err
		}
	}
	_, err := r.store.Put(ctx, runPrefix(r.opts.Run)+"logs/"+name, p, storage.PutOptions{})
	return err
}
