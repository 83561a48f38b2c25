package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/batonrun/baton/sync/storage"
)

// BadHost is a machine a run gave up for its health (a GPU that failed, a
// trainer that hung), recorded so that the run does not burn another hour
// there: runs/<run>/hosts/<id>.json.
type BadHost struct {
	// ID names the record: a hash of Platform and Machine.
	ID string `json:"id"`
	// Platform and Machine identify the machine: the most stable identity
	// the platform gives (RunPod's server host name, a Kubernetes node),
	// else its GPUs' UUIDs.
	Platform string `json:"platform"`
	Machine  string `json:"machine"`
	// Reason says what was wrong; Status is the exit status baton gave
	// (77 unhealthy, 78 hung).
	Reason string    `json:"reason"`
	Status int       `json:"status"`
	At     time.Time `json:"at"`
	// Holder is the lease holder that gave the machine up.
	Holder string `json:"holder"`
}

// BadHostID is the record ID of a machine.
func BadHostID(platform, machine string) string {
	sum := sha256.Sum256([]byte(platform + "\x00" + machine))
	return hex.EncodeToString(sum[:8])
}

func hostsPrefix(run string) string { return runPrefix(run) + "hosts/" }

// RecordBadHost records h (its ID is filled in) for the run, replacing an
// earlier record of the same machine.
func (r *Repo) RecordBadHost(ctx context.Context, h BadHost) error {
	if h.Machine == "" {
		return errors.New("checkpoint: a bad host needs a machine identity")
	}
	h.ID = BadHostID(h.Platform, h.Machine)
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	_, err = r.store.Put(ctx, hostsPrefix(r.opts.Run)+h.ID+".json", storage.BytesPayload(b), storage.PutOptions{})
	return err
}

// BadHosts lists the run's recorded bad hosts, oldest first. A record that
// cannot be read is skipped with a warning: it must not stop a run.
func (r *Repo) BadHosts(ctx context.Context) ([]BadHost, error) {
	var keys []string
	err := r.store.List(ctx, hostsPrefix(r.opts.Run), func(o storage.ObjectInfo) error {
		if strings.HasSuffix(o.Key, ".json") {
			keys = append(keys, o.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the run's bad hosts: %w", err)
	}
	var out []BadHost
	for _, key := range keys {
		var h BadHost
		_, err := r.getJSON(ctx, key, 64<<10, &h)
		h.ID = strings.TrimSuffix(strings.TrimPrefix(key, hostsPrefix(r.opts.Run)), ".json") // the key, not what the record claims
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				continue // forgotten meanwhile
			}
			if errors.Is(err, ErrBadManifest) {
				r.log.Warn("skipping an unreadable bad-host record", "key", key, "err", err)
				continue
			}
			return nil, err
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b BadHost) int { return a.At.Compare(b.At) })
	return out, nil
}

// ForgetBadHost removes the record id (all of them with id "").
func (r *Repo) ForgetBadHost(ctx context.Context, id string) error {
	if id != "" {
		if len(id) != 16 || !isLowerHex(id) {
			return fmt.Errorf("bad host id %q: want the 16 hex digits baton checkpoint hosts shows", id)
		}
		return r.store.Delete(ctx, hostsPrefix(r.opts.Run)+id+".json")
	}
	hosts, err := r.BadHosts(ctx)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		if err := r.ForgetBadHost(ctx, h.ID); err != nil {
			return err
		}
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
