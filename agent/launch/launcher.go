package launch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/internal/backoff"
	"github.com/batonrun/baton/sync/storage"
)

// Launcher starts one host of a run: it claims the launch in the store,
// chooses the cheapest offer across its providers and creates the machine,
// never twice for one label.
type Launcher struct {
	// Providers are the spec's providers, in its order of preference.
	Providers []Provider
	// Store holds the run; Run is its id.
	Store storage.Store
	Run   string
	// Spec is the launch spec; Config the run's settings, which the host
	// gets as flags (config.HostArgs).
	Spec   config.LaunchSpec
	Config *config.Config
	// Getenv reads the variables that launch.env names.
	Getenv func(string) string
	// Now is the clock (time.Now).
	Now func() time.Time
	// Log receives what happens; its handler must redact secrets.
	Log *slog.Logger
	// ID names this launcher in its claims (NewID).
	ID string
	// Sleep waits between look-ups after a lost create (nil:
	// backoff.Sleep).
	Sleep func(context.Context, time.Duration) error
}

func (l *Launcher) sleep(ctx context.Context, d time.Duration) error {
	if l.Sleep != nil {
		return l.Sleep(ctx, d)
	}
	return backoff.Sleep(ctx, d)
}

// NewID returns a launcher's or watcher's name: HOST/PID/NONCE.
func NewID() string {
	host, _ := os.Hostname()
	var nonce [3]byte
	rand.Read(nonce[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(nonce[:]))
}

// Request is what a host of the spec needs, avoiding the machines given.
func (l *Launcher) Request(avoid map[string]bool) Request {
	return Request{
		GPUs:     l.Spec.GPU,
		GPUCount: l.Spec.GPUCount,
		DiskGB:   int((int64(l.Spec.Disk) + 1e9 - 1) / 1e9),
		MaxPrice: float64(l.Spec.MaxPrice),
		Avoid:    avoid,
	}
}

// Choose asks every provider for offers and returns the cheapest that
// fits. A provider that fails is logged and left out; ErrNoOffer (with
// their errors) when none has one.
func (l *Launcher) Choose(ctx context.Context, req Request) (Offer, Provider, error) {
	var all []Offer
	var errs []error
	for _, p := range l.Providers {
		offers, err := p.Offers(ctx, req)
		if err != nil {
			l.Log.Warn("offers unavailable", "provider", p.Name(), "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
			continue
		}
		all = append(all, offers...)
	}
	order := make([]string, len(l.Providers))
	for i, p := range l.Providers {
		order[i] = p.Name()
	}
	o, err := Choose(all, req, order)
	if err != nil {
		return Offer{}, nil, errors.Join(append([]error{err}, errs...)...)
	}
	for _, p := range l.Providers {
		if p.Name() == o.Provider {
			return o, p, nil
		}
	}
	return Offer{}, nil, fmt.Errorf("offer of unknown provider %q", o.Provider)
}

// Host returns what a machine labelled label runs: baton run, with the
// run's settings as BATON_* variables and the variables of launch.env read
// now, and the trainer's command.
func (l *Launcher) Host(label string) (Host, error) {
	h := Host{
		Label:  label,
		Image:  l.Spec.Image,
		Args:   l.Spec.Command,
		Env:    map[string]string{},
		DiskGB: l.Request(nil).DiskGB,
		Detach: l.Spec.VastRuntype == "ssh",
	}
	for _, kv := range config.HostEnv(l.Config) {
		name, value, _ := strings.Cut(kv, "=")
		h.Env[name] = value
	}
	var missing []string
	for _, name := range l.Spec.Env {
		v := l.Getenv(name)
		if v == "" {
			missing = append(missing, name)
			continue
		}
		h.Env[name] = v
	}
	if len(missing) > 0 {
		return Host{}, fmt.Errorf("launch.env names variables that are not set here: %s", strings.Join(missing, ", "))
	}
	return h, nil
}

// Claim creates the claim of attempt n after the lease of epoch lapsed:
// ErrClaimed when another watcher (or baton launch) made it first.
func (l *Launcher) Claim(ctx context.Context, epoch int64, attempt int) (*Claim, error) {
	c := &Claim{Epoch: epoch, Attempt: attempt, Label: Label(l.Run, epoch, attempt), Watcher: l.ID, ClaimedAt: l.Now().UTC()}
	if err := putClaim(ctx, l.Store, l.Run, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Launch starts the host of claim c: the cheapest offer that fits, on no
// machine of avoid, within budget (dollars left; negative: no bound). It
// records in c what it started, or why it failed, and returns the
// machine. A machine already labelled c.Label is adopted, never created
// again: before a create, and after a create whose answer was lost.
func (l *Launcher) Launch(ctx context.Context, c *Claim, avoid map[string]bool, budget float64) (Machine, error) {
	m, err := l.launch(ctx, c, avoid, budget)
	if err != nil {
		c.Error = err.Error()
	}
	if uerr := updateClaim(ctx, l.Store, l.Run, c); uerr != nil {
		l.Log.Warn("could not record the launch in the store", "label", c.Label, "err", uerr)
	}
	return m, err
}

func (l *Launcher) launch(ctx context.Context, c *Claim, avoid map[string]bool, budget float64) (Machine, error) {
	host, err := l.Host(c.Label)
	if err != nil {
		return Machine{}, err
	}
	offer, p, err := l.Choose(ctx, l.Request(avoid))
	if err != nil {
		return Machine{}, err
	}
	c.Provider, c.Offer, c.Machine, c.GPU, c.GPUCount, c.PricePerHour = offer.Provider, offer.ID, offer.Machine, offer.GPU, offer.GPUCount, offer.PricePerHour
	if budget >= 0 && offer.PricePerHour > budget {
		return Machine{}, fmt.Errorf("%w: an hour of the cheapest offer ($%.3f) is more than the $%.2f left of the budget", ErrGaveUp, offer.PricePerHour, budget)
	}
	if m, ok := l.adopt(ctx, p, c); ok {
		return m, nil
	}
	l.Log.Info("creating a machine", "label", c.Label, "offer", offer.String())
	m, err := p.Create(ctx, offer, host)
	if errors.Is(err, ErrUncertain) {
		l.Log.Warn("the create's answer was lost: looking the machine up by its label", "label", c.Label, "err", err)
		for try := 0; try < 3; try++ {
			if m, ok := l.adopt(ctx, p, c); ok {
				return m, nil
			}
			if serr := l.sleep(ctx, time.Duration(try+1)*2*time.Second); serr != nil {
				break
			}
		}
		return Machine{}, err
	}
	if err != nil {
		return Machine{}, err
	}
	l.record(c, m)
	return m, nil
}

// adopt looks for a machine labelled c.Label at p and records it in c.
func (l *Launcher) adopt(ctx context.Context, p Provider, c *Claim) (Machine, bool) {
	found, err := p.Find(ctx, c.Label)
	if err != nil {
		l.Log.Warn("could not look the label up", "provider", p.Name(), "label", c.Label, "err", err)
		return Machine{}, false
	}
	if len(found) == 0 {
		return Machine{}, false
	}
	l.Log.Info("adopting the machine that already has the label", "label", c.Label, "id", found[0].ID)
	l.record(c, found[0])
	return found[0], true
}

// record notes machine m in c.
func (l *Launcher) record(c *Claim, m Machine) {
	c.Instance = m.ID
	if m.Machine != "" {
		c.Machine = m.Machine
	}
	if m.PricePerHour > 0 {
		c.PricePerHour = m.PricePerHour
	}
	c.LaunchedAt = l.Now().UTC()
}

// provider returns the provider named name, or nil.
func (l *Launcher) provider(name string) Provider {
	for _, p := range l.Providers {
		if p.Name() == name {
			return p
		}
	}
	return nil
}
