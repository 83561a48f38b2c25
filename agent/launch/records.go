package launch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/storage"
)

// The run's objects that this package reads and writes, under
// runs/<run>/ (docs/launch.md, Store objects). lease.json and latest.json
// are the checkpoint package's (docs/checkpoint-format.md), read through
// it; they stay in the clear in an encrypted run.

func runPrefix(run string) string    { return "runs/" + run + "/" }
func doneKey(run string) string      { return runPrefix(run) + "done.json" }
func launchPrefix(run string) string { return runPrefix(run) + "launches/" }

// claimKey is the claim of attempt n at a lapsed lease's epoch.
func claimKey(run string, epoch int64, attempt int) string {
	return fmt.Sprintf("%s%d-%d.json", launchPrefix(run), epoch, attempt)
}

// maxRecord bounds what is read of one record.
const maxRecord = 64 << 10

// Done is runs/<run>/done.json: baton run writes it when the trainer
// exited 0 and the final commit succeeded. A run with it is finished:
// baton watch launches nothing more.
type Done struct {
	// Holder is the lease holder that finished the run; Seq its last
	// checkpoint.
	Holder string `json:"holder"`
	Seq    int64  `json:"seq"`
	// Platform and Host say where it finished.
	Platform string `json:"platform"`
	Host     string `json:"host"`
	// At is when.
	At time.Time `json:"at"`
}

// WriteDone writes the run's done record.
func WriteDone(ctx context.Context, s storage.Store, run string, d Done) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if _, err := s.Put(ctx, doneKey(run), storage.BytesPayload(b), storage.PutOptions{}); err != nil {
		return fmt.Errorf("writing the done record of run %s: %w", run, err)
	}
	return nil
}

// ClearDone removes the run's done record, if any: a host that takes the
// run's lease makes it live again (a run resumed to train further, a Vast
// instance that woke up), and a watcher must not take it for finished.
func ClearDone(ctx context.Context, s storage.Store, run string) error {
	if err := s.Delete(ctx, doneKey(run)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("removing the done record of run %s: %w", run, err)
	}
	return nil
}

// ReadDone returns the run's done record, or nil when the run is not done.
func ReadDone(ctx context.Context, s storage.Store, run string) (*Done, error) {
	return readOptional[Done](ctx, s, doneKey(run))
}

// ReadLease returns the run's lease.json, or nil when the run has none.
func ReadLease(ctx context.Context, s storage.Store, run string) (*checkpoint.LeaseRecord, error) {
	repo, err := checkpoint.Open(s, checkpoint.Options{Run: run})
	if err != nil {
		return nil, err
	}
	return repo.LeaseRecord(ctx)
}

// ReadLatest returns the run's latest.json, or nil when it has none.
func ReadLatest(ctx context.Context, s storage.Store, run string) (*checkpoint.Latest, error) {
	repo, err := checkpoint.Open(s, checkpoint.Options{Run: run})
	if err != nil {
		return nil, err
	}
	return repo.Pointer(ctx)
}

// readOptional reads the record at key, nil if there is none.
func readOptional[T any](ctx context.Context, s storage.Store, key string) (*T, error) {
	var v T
	if _, err := getJSON(ctx, s, key, &v); errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return &v, nil
}

// Claim is runs/<run>/launches/<epoch>-<attempt>.json: one launch of a
// host after the lease of that epoch lapsed. Whoever creates it (a
// create-only write) launches; it then fills in what it started.
type Claim struct {
	// Epoch is the lease epoch that had lapsed (0: the run had no lease);
	// Attempt counts the launches at that epoch from 1.
	Epoch   int64 `json:"epoch"`
	Attempt int   `json:"attempt"`
	// Label is the machine's label at the provider.
	Label string `json:"label"`
	// Watcher is who claimed it: HOST/PID/NONCE.
	Watcher   string    `json:"watcher"`
	ClaimedAt time.Time `json:"claimed_at"`
	// Provider, Offer, Machine (the physical machine, if the provider
	// names one) and Instance (the pod or instance id) say what was
	// started.
	Provider string `json:"provider,omitempty"`
	Offer    string `json:"offer,omitempty"`
	Machine  string `json:"machine,omitempty"`
	Instance string `json:"instance,omitempty"`
	GPU      string `json:"gpu,omitempty"`
	GPUCount int    `json:"gpu_count,omitempty"`
	// PricePerHour is the offer's price in dollars.
	PricePerHour float64 `json:"price_per_hour,omitempty"`
	// LaunchedAt is when the provider took the create.
	LaunchedAt time.Time `json:"launched_at,omitzero"`
	// Error says why the launch failed; empty: it did not.
	Error string `json:"error,omitempty"`
	// Holder is the lease holder the host became, once a watcher saw it
	// hold the lease.
	Holder string `json:"holder,omitempty"`
	// EndedAt is when a watcher found the machine stopped or gone (or
	// stopped it); its cost ends there.
	EndedAt time.Time `json:"ended_at,omitzero"`
	// Ended says how: superseded, boot-timeout, stopped, gone, done.
	Ended string `json:"ended,omitempty"`

	etag string // of the object as read, for updates
}

// failed reports whether the launch failed or its host never took the
// lease within boot.
func (c Claim) failed(now time.Time, boot time.Duration) bool {
	return c.Error != "" || c.Holder == "" && !now.Before(c.ClaimedAt.Add(boot))
}

// Claims returns the run's launch claims, oldest first (by epoch, then
// attempt). A claim that cannot be read is skipped: it must not stop the
// watcher.
func Claims(ctx context.Context, s storage.Store, run string) ([]Claim, error) {
	var keys []string
	err := s.List(ctx, launchPrefix(run), func(o storage.ObjectInfo) error {
		if strings.HasSuffix(o.Key, ".json") {
			keys = append(keys, o.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the launches of run %s: %w", run, err)
	}
	var out []Claim
	for _, key := range keys {
		var c Claim
		etag, err := getJSON(ctx, s, key, &c)
		if errors.Is(err, storage.ErrNotFound) || errors.Is(err, errBadRecord) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if epoch, attempt, ok := parseClaimKey(strings.TrimPrefix(key, launchPrefix(run))); ok {
			c.Epoch, c.Attempt = epoch, attempt // the key, not what the record claims
		}
		c.etag = etag
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Claim) int {
		if a.Epoch != b.Epoch {
			return cmpInt(a.Epoch, b.Epoch)
		}
		return cmpInt(int64(a.Attempt), int64(b.Attempt))
	})
	return out, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseClaimKey reads EPOCH-ATTEMPT.json.
func parseClaimKey(name string) (int64, int, bool) {
	e, a, ok := strings.Cut(strings.TrimSuffix(name, ".json"), "-")
	epoch, err1 := strconv.ParseInt(e, 10, 64)
	attempt, err2 := strconv.Atoi(a)
	return epoch, attempt, ok && err1 == nil && err2 == nil && attempt > 0
}

// ErrClaimed: another watcher claimed that launch first.
var ErrClaimed = errors.New("another watcher claimed this launch")

// putClaim creates c's object, only if no watcher did: ErrClaimed if one
// did.
func putClaim(ctx context.Context, s storage.Store, run string, c *Claim) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	info, err := s.Put(ctx, claimKey(run, c.Epoch, c.Attempt), storage.BytesPayload(b), storage.PutOptions{IfAbsent: true})
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return fmt.Errorf("%w (launch %d-%d)", ErrClaimed, c.Epoch, c.Attempt)
	}
	if err != nil {
		return fmt.Errorf("claiming launch %d-%d: %w", c.Epoch, c.Attempt, err)
	}
	c.etag = info.ETag
	return nil
}

// updateClaim rewrites c, only if it is still as last read or written
// (storage.ErrPreconditionFailed otherwise: another watcher updated it;
// read it again).
func updateClaim(ctx context.Context, s storage.Store, run string, c *Claim) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	info, err := s.Put(ctx, claimKey(run, c.Epoch, c.Attempt), storage.BytesPayload(b), storage.PutOptions{IfMatch: c.etag})
	if err != nil {
		return fmt.Errorf("updating launch %d-%d: %w", c.Epoch, c.Attempt, err)
	}
	c.etag = info.ETag
	return nil
}

// errBadRecord: a record that is not the JSON it should be.
var errBadRecord = errors.New("unreadable record")

// getJSON reads key into v and returns its ETag.
func getJSON(ctx context.Context, s storage.Store, key string, v any) (string, error) {
	body, info, err := s.Get(ctx, key, 0, -1)
	if err != nil {
		return "", err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxRecord+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", key, err)
	}
	if len(b) > maxRecord {
		return "", fmt.Errorf("%s: %w: over %d bytes", key, errBadRecord, maxRecord)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", fmt.Errorf("%s: %w: %v", key, errBadRecord, err)
	}
	return info.ETag, nil
}
