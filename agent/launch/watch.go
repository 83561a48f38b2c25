package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/backoff"
)

// Backoff between failed launches: 30 s, doubling up to 30 min.
const (
	failureBackoff    = 30 * time.Second
	maxFailureBackoff = 30 * time.Minute
)

// Outcome is what one look at the run found.
type Outcome int

// The outcomes of Watcher.Step.
const (
	// Alive: a host holds the lease.
	Alive Outcome = iota
	// Waiting: a launch is booting, another watcher launched, or a
	// failed launch's backoff has not passed.
	Waiting
	// Launched: this watcher launched a host.
	Launched
	// Finished: the run is done.
	Finished
)

// String names the outcome.
func (o Outcome) String() string {
	return [...]string{"alive", "waiting", "launched", "done"}[o]
}

// Report is what Step found and did.
type Report struct {
	Outcome Outcome
	// Message says it in a sentence.
	Message string
	// Claim is the launch this step made, if any.
	Claim *Claim
	// Spent is what the run's launches have cost so far, in dollars.
	Spent float64
}

// Watcher keeps a run alive: each Step reads the run's done record, lease
// and launches from the store and launches a host when the lease has
// lapsed and the run is not done.
type Watcher struct {
	// Launcher starts hosts; its Store, Run, Now and Log are the
	// watcher's.
	Launcher *Launcher
	// BootTimeout is how long a launched host has to take the lease.
	BootTimeout time.Duration
	// Interval is the time between steps in Run.
	Interval time.Duration
	// MaxFailures is how many launches in a row may fail.
	MaxFailures int
	// Budget bounds what the run may spend, in dollars; 0: no bound.
	Budget float64
	// OnSuperseded is what to do with a machine of the run's launches that
	// another host superseded, or whose host never took the lease: none,
	// stop or terminate.
	OnSuperseded string
	// Once makes Run return after one step.
	Once bool
	// Sleep waits between steps (nil: backoff.Sleep); tests advance a
	// fake clock instead.
	Sleep func(context.Context, time.Duration) error
	// Notify, if set, hears that the watcher gave up.
	Notify func(message string)

	warned map[string]bool // superseded machines left running, logged once
}

func (w *Watcher) log() *slog.Logger { return w.Launcher.Log }

// Run steps until the run is done (nil), the watcher gives up (an error
// that wraps ErrGaveUp) or ctx ends. A step that fails otherwise (the
// store out of reach) is logged and tried again.
func (w *Watcher) Run(ctx context.Context) (Report, error) {
	sleep := w.Sleep
	if sleep == nil {
		sleep = backoff.Sleep
	}
	var last string
	for {
		r, err := w.Step(ctx)
		switch {
		case errors.Is(err, ErrGaveUp):
			if w.Notify != nil {
				w.Notify(err.Error())
			}
			return r, err
		case err != nil && ctx.Err() != nil:
			return r, ctx.Err()
		case err != nil:
			w.log().Warn("watch: could not read the run; trying again", "err", err)
		case r.Outcome == Finished:
			w.log().Info("the run is done", "spent_usd", round(r.Spent))
			return r, nil
		case r.Message != last:
			w.log().Info(r.Message, "state", r.Outcome.String(), "spent_usd", round(r.Spent))
			last = r.Message
		}
		if w.Once {
			return r, err
		}
		if err := sleep(ctx, w.Interval); err != nil {
			return r, err
		}
	}
}

func round(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// Step looks at the run once and launches a host if it needs one.
func (w *Watcher) Step(ctx context.Context) (Report, error) {
	l := w.Launcher
	done, err := ReadDone(ctx, l.Store, l.Run)
	if err != nil {
		return Report{}, err
	}
	lease, err := ReadLease(ctx, l.Store, l.Run)
	if err != nil {
		return Report{}, fmt.Errorf("reading the lease: %w", err)
	}
	claims, err := Claims(ctx, l.Store, l.Run)
	if err != nil {
		return Report{}, err
	}
	now := l.Now()
	w.track(ctx, claims, lease, done, now)
	spent := Spent(claims, now)
	if done != nil {
		return Report{Outcome: Finished, Message: fmt.Sprintf("the run is done: checkpoint %d by %s", done.Seq, done.Holder), Spent: spent}, nil
	}
	if lease != nil && now.Before(lease.ExpiresAt) {
		return Report{Outcome: Alive, Message: fmt.Sprintf("%s holds the run (epoch %d)", lease.Holder, lease.Epoch), Spent: spent}, nil
	}
	var epoch int64
	if lease != nil {
		epoch = lease.Epoch
	}
	var cur *Claim
	for i := range claims {
		if claims[i].Epoch == epoch {
			cur = &claims[i]
		}
	}
	if cur != nil && !cur.failed(now, w.BootTimeout) {
		return Report{Outcome: Waiting, Message: fmt.Sprintf("launch %s is starting (claimed by %s)", cur.Label, cur.Watcher), Spent: spent}, nil
	}
	failures := consecutiveFailures(claims, now, w.BootTimeout)
	if failures >= w.MaxFailures {
		return Report{Spent: spent}, fmt.Errorf("%w: %d launches in a row failed, the last: %s", ErrGaveUp, failures, failure(claims[len(claims)-1]))
	}
	if failures > 0 {
		last := claims[len(claims)-1]
		next := last.ClaimedAt.Add(backoff.Exponential(failureBackoff, maxFailureBackoff, failures))
		if now.Before(next) {
			return Report{Outcome: Waiting, Spent: spent, Message: fmt.Sprintf("%d launches failed (the last: %s); the next at %s",
				failures, failure(last), next.UTC().Format(time.RFC3339))}, nil
		}
	}
	left := -1.0
	if w.Budget > 0 {
		if left = w.Budget - spent; left <= 0 {
			return Report{Spent: spent}, fmt.Errorf("%w: the budget of $%.2f is spent ($%.2f)", ErrGaveUp, w.Budget, spent)
		}
	}
	attempt := 1
	if cur != nil {
		attempt = cur.Attempt + 1
	}
	c, err := l.Claim(ctx, epoch, attempt)
	if errors.Is(err, ErrClaimed) {
		return Report{Outcome: Waiting, Message: fmt.Sprintf("another watcher claimed launch %d-%d", epoch, attempt), Spent: spent}, nil
	}
	if err != nil {
		return Report{Spent: spent}, err
	}
	avoid, err := w.avoid(ctx, claims, lease, now)
	if err != nil {
		w.log().Warn("could not read the run's bad hosts; launching without them", "err", err)
	}
	why := "the run has no lease yet"
	if lease != nil {
		why = fmt.Sprintf("the lease of %s (epoch %d) lapsed at %s", lease.Holder, lease.Epoch, lease.ExpiresAt.UTC().Format(time.RFC3339))
	}
	w.log().Info("launching a host: "+why, "label", c.Label, "avoid", len(avoid))
	m, err := l.Launch(ctx, c, avoid, left)
	if errors.Is(err, ErrGaveUp) {
		return Report{Claim: c, Spent: spent}, err
	}
	if err != nil {
		w.log().Warn("launch failed", "label", c.Label, "err", err)
		return Report{Outcome: Waiting, Claim: c, Spent: spent, Message: "launch " + c.Label + " failed: " + err.Error()}, nil
	}
	return Report{Outcome: Launched, Claim: c, Spent: spent,
		Message: fmt.Sprintf("launched %s on %s %s (%s) at $%.3f/h: %s", c.Label, m.Provider, m.ID, c.GPU, c.PricePerHour, why)}, nil
}

// failure says why a launch failed.
func failure(c Claim) string {
	if c.Error != "" {
		return c.Label + ": " + c.Error
	}
	return c.Label + ": its host never took the lease"
}

// consecutiveFailures counts the failed launches at the end of claims.
func consecutiveFailures(claims []Claim, now time.Time, boot time.Duration) int {
	n := 0
	for i := len(claims) - 1; i >= 0 && claims[i].failed(now, boot); i-- {
		n++
	}
	return n
}

// holds reports whether the lease holder is the host of claim c: a
// holder is PLATFORM:INSTANCE/NONCE, and the instance is the pod, the
// Vast instance or the local label.
func holds(holder string, c Claim) bool {
	return c.Instance != "" && strings.Contains(holder, ":"+c.Instance+"/")
}

// avoid returns the machines a new launch must not land on: those whose
// host never took the lease, the machine of the host whose lease just
// lapsed, and those of hosts the run recorded as bad (runs/<run>/hosts/).
// A create the provider refused says nothing of its machine.
func (w *Watcher) avoid(ctx context.Context, claims []Claim, lease *checkpoint.LeaseRecord, now time.Time) (map[string]bool, error) {
	avoid := map[string]bool{}
	for _, c := range claims {
		if c.Machine != "" && c.Instance != "" && (c.failed(now, w.BootTimeout) || lease != nil && holds(lease.Holder, c)) {
			avoid[c.Machine] = true
		}
	}
	l := w.Launcher
	repo, err := checkpoint.Open(l.Store, checkpoint.Options{Run: l.Run, Logger: l.Log})
	if err != nil {
		return avoid, err
	}
	bad, err := repo.BadHosts(ctx)
	if err != nil {
		return avoid, err
	}
	for _, h := range bad {
		for _, c := range claims {
			if c.Machine != "" && (c.Holder == h.Holder || holds(h.Holder, c)) {
				avoid[c.Machine] = true
			}
		}
	}
	return avoid, nil
}

// track brings the launches' records up to date: which host took the
// lease, which machines stopped or are gone (their cost ends), and acts
// on the machines that are superseded or never took the lease
// (OnSuperseded).
func (w *Watcher) track(ctx context.Context, claims []Claim, lease *checkpoint.LeaseRecord, done *Done, now time.Time) {
	l := w.Launcher
	for i := range claims {
		c := &claims[i]
		if c.Instance == "" || !c.EndedAt.IsZero() {
			continue
		}
		changed := false
		if lease != nil && c.Holder == "" && holds(lease.Holder, *c) {
			c.Holder, changed = lease.Holder, true
		}
		p := l.provider(c.Provider)
		if p == nil {
			continue // a provider this watcher's spec does not list
		}
		m, err := p.Status(ctx, c.Instance)
		switch {
		case errors.Is(err, ErrNotFound):
			m.State = StateGone
		case err != nil:
			w.log().Warn("could not read a machine's status", "label", c.Label, "id", c.Instance, "err", err)
			m.State = ""
		}
		if m.State == StateStopped || m.State == StateGone {
			c.EndedAt, c.Ended, changed = now.UTC(), m.State, true
		} else if m.State != "" {
			if why := w.superseded(*c, lease, done, now); why != "" && w.act(ctx, p, *c, why) {
				c.EndedAt, c.Ended, changed = now.UTC(), why, true
			}
		}
		if changed {
			if err := updateClaim(ctx, l.Store, l.Run, c); err != nil && !errors.Is(err, context.Canceled) {
				w.log().Debug("launch record not updated (another watcher did)", "label", c.Label, "err", err)
			}
		}
	}
}

// superseded says why the running machine of c has nothing left to do,
// or "": another host holds the run (or finished it) and c's host is not
// it, or c's host never took the lease within the boot timeout.
func (w *Watcher) superseded(c Claim, lease *checkpoint.LeaseRecord, done *Done, now time.Time) string {
	if lease != nil && holds(lease.Holder, c) || done != nil && holds(done.Holder, c) {
		return ""
	}
	switch {
	case done != nil:
		return "superseded"
	case lease != nil && now.Before(lease.ExpiresAt) && c.Epoch < lease.Epoch:
		return "superseded"
	case c.Holder == "" && c.failed(now, w.BootTimeout):
		return "boot-timeout"
	}
	return ""
}

// act carries out OnSuperseded on c's machine and reports whether it is
// stopped or deleted now.
func (w *Watcher) act(ctx context.Context, p Provider, c Claim, why string) bool {
	var err error
	switch w.OnSuperseded {
	case "stop":
		err = p.Stop(ctx, c.Instance)
	case "terminate":
		err = p.Destroy(ctx, c.Instance)
	default:
		if w.warned == nil {
			w.warned = map[string]bool{}
		}
		if !w.warned[c.Label] {
			w.warned[c.Label] = true
			w.log().Warn("a machine of the run is "+why+" and still running; --on-superseded=none leaves it (and its bill) alone",
				"label", c.Label, "provider", c.Provider, "id", c.Instance)
		}
		return false
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		w.log().Warn("could not end a "+why+" machine", "action", w.OnSuperseded, "label", c.Label, "id", c.Instance, "err", err)
		return false
	}
	w.log().Info("ended a "+why+" machine", "action", w.OnSuperseded, "label", c.Label, "provider", c.Provider, "id", c.Instance)
	return true
}
