package launch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/batonrun/baton/agent/telemetry/gpu"
	"github.com/batonrun/baton/agent/telemetry/record"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/storage"
)

// RunStatus is a run as its store shows it, with no host or provider
// asked: baton status.
type RunStatus struct {
	Run string `json:"run"`
	// Now is when it was read.
	Now time.Time `json:"now"`
	// Done is the done record; nil while the run is not done.
	Done *Done `json:"done"`
	// Lease is lease.json; nil when the run has none. LeaseLive says it
	// has not expired.
	Lease     *checkpoint.LeaseRecord `json:"lease"`
	LeaseLive bool                    `json:"lease_live"`
	// Latest is latest.json; nil before the first commit. CheckpointAge
	// is how old it is in seconds: the work a lost host would cost.
	Latest        *checkpoint.Latest `json:"latest"`
	CheckpointAge float64            `json:"checkpoint_age_s,omitempty"`
	// Hosts are the hosts that ran the trainer, oldest first.
	Hosts []HostRun `json:"hosts"`
	// GPUs is the newest GPU sample of the newest host, if any.
	GPUs     []gpu.Reading `json:"gpus,omitempty"`
	GPUsNote string        `json:"gpus_note,omitempty"`
	// Launches are the launch claims, oldest first; Spent what they cost.
	Launches []Claim `json:"launches"`
	Spent    float64 `json:"spent_usd"`
	// BadHosts are the machines the run gave up.
	BadHosts []checkpoint.BadHost `json:"bad_hosts"`
}

// HostRun is one host's time with the run, from its telemetry segment.
type HostRun struct {
	// Segment is the telemetry segment (START-HOLDER); Holder the lease
	// holder as the segment's name keeps it (characters other than
	// letters, digits, '-', '_' and '.' turned into '_').
	Segment  string `json:"segment"`
	Holder   string `json:"holder"`
	Platform string `json:"platform"`
	// Started is when its trainer started; LastSeen its last telemetry.
	Started  time.Time `json:"started"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// End says how it ended: holds the lease, done, gave up (77, 78),
	// lease lapsed.
	End string `json:"end"`
}

// ReadStatus reads the run's state from store alone. key is the run's
// encryption key (nil for a plain run; without it an encrypted run's
// telemetry is left out, with a note).
func ReadStatus(ctx context.Context, store storage.Store, key *checkpoint.Key, run string, now time.Time) (*RunStatus, error) {
	st := &RunStatus{Run: run, Now: now.UTC()}
	var err error
	if st.Done, err = ReadDone(ctx, store, run); err != nil {
		return nil, err
	}
	if st.Lease, err = ReadLease(ctx, store, run); err != nil {
		return nil, err
	}
	st.LeaseLive = st.Lease != nil && now.Before(st.Lease.ExpiresAt)
	if st.Latest, err = ReadLatest(ctx, store, run); err != nil {
		return nil, err
	}
	if st.Latest != nil && st.Latest.Seq > 0 {
		st.CheckpointAge = now.Sub(st.Latest.UpdatedAt).Seconds()
	}
	if st.Launches, err = Claims(ctx, store, run); err != nil {
		return nil, err
	}
	st.Spent = Spent(st.Launches, now)
	repo, err := checkpoint.Open(store, checkpoint.Options{Run: run})
	if err != nil {
		return nil, err
	}
	if st.BadHosts, err = repo.BadHosts(ctx); err != nil {
		return nil, err
	}
	segs, err := record.Segments(ctx, store, run)
	if err != nil {
		return nil, err
	}
	tele := len(segs)
	// A host that uploaded its log but no telemetry (telemetry off, or it
	// ended within the first upload) has its segment under logs/.
	err = store.List(ctx, runPrefix(run)+"logs/", func(o storage.ObjectInfo) error {
		name := strings.TrimSuffix(strings.TrimPrefix(o.Key, runPrefix(run)+"logs/"), ".log")
		if !slices.Contains(segs, name) && !strings.Contains(name, "/") {
			segs = append(segs, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the run's logs: %w", err)
	}
	slices.Sort(segs)
	for _, seg := range segs {
		st.Hosts = append(st.Hosts, st.hostRun(seg))
	}
	for i := len(segs) - 1; i >= 0 && tele > 0; i-- {
		lines, err := record.Newest(ctx, store, key, run, segs[i], time.Minute)
		if err != nil {
			st.GPUsNote = "telemetry unreadable: " + err.Error()
			break
		}
		if len(lines) > 0 {
			st.Hosts[i].LastSeen = lines[len(lines)-1].Time
		}
		if st.GPUs == nil {
			st.GPUs = newestGPUs(lines)
		}
		if st.GPUs != nil && i < len(segs)-1 {
			break // the newest host's last sample and the last seen time of the newest ones
		}
	}
	return st, nil
}

// hostRun reads what a segment's name says of its host.
func (st *RunStatus) hostRun(seg string) HostRun {
	h := HostRun{Segment: seg, End: "lease lapsed"}
	start, holder, _ := strings.Cut(seg, "-")
	h.Started, _ = time.Parse("20060102T150405Z", start)
	h.Holder = holder
	h.Platform, _, _ = strings.Cut(holder, "_")
	// A segment's name has a nonce of its own: hosts are told apart by
	// PLATFORM:INSTANCE.
	instance := func(holder string, sep string) string {
		if i := strings.LastIndex(holder, sep); i > 0 {
			return holder[:i]
		}
		return holder
	}
	same := func(full string) bool { return full != "" && sanitize(instance(full, "/")) == instance(holder, "_") }
	switch {
	case st.Done != nil && same(st.Done.Holder):
		h.End = "done"
	case st.LeaseLive && same(st.Lease.Holder):
		h.End = "holds the lease"
	}
	for _, b := range st.BadHosts {
		if same(b.Holder) {
			h.End = fmt.Sprintf("gave up (%d): %s", b.Status, b.Reason)
		}
	}
	return h
}

// sanitize is a holder as a segment's name keeps it (agent's openLog).
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// newestGPUs is the last GPU sample among lines, or nil.
func newestGPUs(lines []record.Line) []gpu.Reading {
	for i := len(lines) - 1; i >= 0; i-- {
		if lines[i].Type != "gpu" {
			continue
		}
		var rs []gpu.Reading
		if json.Unmarshal(lines[i].Data, &rs) == nil && len(rs) > 0 {
			return rs
		}
	}
	return nil
}

// WriteText writes the status as one screen for a person.
func (st *RunStatus) WriteText(w io.Writer) error {
	var b strings.Builder
	ago := func(t time.Time) string { return st.Now.Sub(t).Round(time.Second).String() }
	fmt.Fprintf(&b, "run %s", st.Run)
	if st.Done != nil {
		fmt.Fprintf(&b, ": done at %s (checkpoint %d, %s ago)\n", st.Done.At.Format(time.DateTime), st.Done.Seq, ago(st.Done.At))
	} else {
		b.WriteString(": not done\n")
	}
	switch {
	case st.Lease == nil:
		b.WriteString("lease:       none (no host has taken the run)\n")
	case st.LeaseLive:
		fmt.Fprintf(&b, "lease:       %s on %s (%s), epoch %d, until %s (in %s)\n", st.Lease.Holder, st.Lease.Host, st.Lease.Platform,
			st.Lease.Epoch, st.Lease.ExpiresAt.UTC().Format(time.DateTime), st.Lease.ExpiresAt.Sub(st.Now).Round(time.Second))
	case st.Lease.ExpiresAt.IsZero():
		fmt.Fprintf(&b, "lease:       released by %s (epoch %d)\n", st.Lease.Holder, st.Lease.Epoch)
	default:
		fmt.Fprintf(&b, "lease:       lapsed %s ago (last %s, epoch %d)\n", ago(st.Lease.ExpiresAt), st.Lease.Holder, st.Lease.Epoch)
	}
	if st.Latest == nil || st.Latest.Seq == 0 {
		b.WriteString("checkpoint:  none yet\n")
	} else {
		fmt.Fprintf(&b, "checkpoint:  %d, committed %s ago by %s (the work at risk)\n", st.Latest.Seq, ago(st.Latest.UpdatedAt), st.Latest.Holder)
	}
	fmt.Fprintf(&b, "hosts:       %d\n", len(st.Hosts))
	for _, h := range st.Hosts {
		seen := "-"
		if !h.LastSeen.IsZero() {
			seen = ago(h.LastSeen) + " ago"
		}
		fmt.Fprintf(&b, "  %-19s  %-8s  last seen %-10s  %s  %s\n", h.Started.Format(time.DateTime), h.Platform, seen, h.End, h.Holder)
	}
	if len(st.GPUs) > 0 {
		fmt.Fprintf(&b, "gpus:        at %s\n", st.GPUs[0].Time.UTC().Format(time.DateTime))
		for _, r := range st.GPUs {
			fmt.Fprintf(&b, "  %d %-24s  util %s%%  mem %s  power %sW  temp %sC\n", r.Index, r.Name, num(r.UtilGPU), gib(r.MemUsed), num(r.PowerW), num(r.TempC))
		}
	} else if st.GPUsNote != "" {
		fmt.Fprintf(&b, "gpus:        %s\n", st.GPUsNote)
	}
	fmt.Fprintf(&b, "launches:    %d, $%.2f spent (price x time up, from the providers' prices)\n", len(st.Launches), st.Spent)
	for _, c := range st.Launches {
		state := "up"
		switch {
		case c.Error != "":
			state = "failed: " + c.Error
		case !c.EndedAt.IsZero():
			state = c.Ended
		case c.Holder != "":
			state = "took the lease"
		}
		fmt.Fprintf(&b, "  %-28s  %-6s  %-14s  $%.3f/h  $%.2f  %s\n", c.Label, orDash(c.Provider), orDash(c.Instance), c.PricePerHour, c.spent(st.Now), state)
	}
	if len(st.BadHosts) > 0 {
		fmt.Fprintf(&b, "bad hosts:   %d (baton checkpoint hosts)\n", len(st.BadHosts))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// num writes a number a sample may lack.
func num[T uint32 | float64](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func gib(p *uint64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fGiB", float64(*p)/(1<<30))
}
