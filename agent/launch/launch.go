// Package launch keeps a run alive across rented machines with nothing but
// the run's store (issue 16): it chooses the cheapest offer that fits the
// run's launch spec across the providers listed, starts a host there with
// baton run as its entrypoint, and, in baton watch, launches a replacement
// whenever the run's lease lapses before the run is done. Several watchers
// may run at once: each launch is claimed with a create-only object keyed
// by the lapsed lease's epoch, so exactly one of them launches.
//
// The providers (runpod, vast, local) live in sub-packages and implement
// Provider, which this package owns; nothing here knows an API. The
// objects it keeps in the store are described in docs/launch.md.
package launch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Errors that callers branch on.
var (
	// ErrNoOffer: no provider offers a machine that fits the spec, the
	// price bound and the machines to avoid.
	ErrNoOffer = errors.New("no offer fits")
	// ErrUncertain: a create call got no clear answer (a timeout, a reset
	// connection, a 5xx): the machine may exist. The launcher looks it up
	// by its label before anything else; it never creates again blindly.
	ErrUncertain = errors.New("the provider's answer was lost: the machine may exist")
	// ErrNotFound: the provider knows no such machine (any more).
	ErrNotFound = errors.New("no such machine")
	// ErrGaveUp: baton watch stopped trying to keep the run alive (the
	// budget, too many failed launches); the error says why.
	ErrGaveUp = errors.New("gave up keeping the run alive")
)

// Provider rents machines: RunPod, Vast.ai, or processes of this machine.
type Provider interface {
	// Name is the provider's name in the spec: runpod, vast or local.
	Name() string
	// Offers returns the machines that fit req now, in any order.
	Offers(ctx context.Context, req Request) ([]Offer, error)
	// Create starts host on offer and returns the new machine. An error
	// that wraps ErrUncertain means the machine may exist all the same.
	Create(ctx context.Context, offer Offer, host Host) (Machine, error)
	// Find returns the machines labelled label (none: an empty slice).
	Find(ctx context.Context, label string) ([]Machine, error)
	// Status returns what the provider says of machine id now; ErrNotFound
	// when it is gone.
	Status(ctx context.Context, id string) (Machine, error)
	// Stop stops machine id (its disk kept); Destroy deletes it.
	Stop(ctx context.Context, id string) error
	Destroy(ctx context.Context, id string) error
}

// Request is what a host needs of a machine.
type Request struct {
	// GPUs are the GPU types that fit (see MatchGPU); empty: any.
	GPUs []string
	// GPUCount is the number of GPUs.
	GPUCount int
	// DiskGB is the container disk in whole GB.
	DiskGB int
	// MaxPrice bounds the price per hour in dollars; 0: no bound.
	MaxPrice float64
	// Avoid are machines not to land on, by Offer.Machine.
	Avoid map[string]bool
}

// Offer is one machine a provider would start now.
type Offer struct {
	// Provider is the provider's name.
	Provider string `json:"provider"`
	// ID is what the provider creates from: a Vast ask id, a RunPod GPU
	// type id, a local label.
	ID string `json:"id"`
	// Machine is the provider's stable name of the physical machine (Vast's
	// machine_id), remembered when a host there fails; "" where the
	// provider names none (RunPod places a pod itself).
	Machine string `json:"machine,omitempty"`
	// GPU is the GPU type as the provider names it; GPUCount how many.
	GPU      string `json:"gpu,omitempty"`
	GPUCount int    `json:"gpu_count,omitempty"`
	// PricePerHour is what the machine costs an hour, in dollars (for an
	// interruptible one, the bid).
	PricePerHour float64 `json:"price_per_hour"`
	// Interruptible says the machine may be taken back (Vast's bids).
	Interruptible bool `json:"interruptible,omitempty"`
	// Where is the location, for people.
	Where string `json:"where,omitempty"`
}

// String is the offer in a few words, for logs and baton launch.
func (o Offer) String() string {
	s := fmt.Sprintf("%s %s", o.Provider, o.ID)
	if o.GPU != "" {
		s += fmt.Sprintf(" (%dx %s)", o.GPUCount, o.GPU)
	}
	s += fmt.Sprintf(" at $%.3f/h", o.PricePerHour)
	if o.Where != "" {
		s += " in " + o.Where
	}
	return s
}

// Host is what a new machine runs.
type Host struct {
	// Label names the machine at the provider: baton-RUN-EPOCH-ATTEMPT. It
	// is how a lost create is found again.
	Label string
	// Image is the container image.
	Image string
	// Args are the trainer's command: what follows baton run -- (the
	// ready images' entrypoint is baton run --, so a provider's arguments
	// are these).
	Args []string
	// Env are the variables the host gets: the run's settings as BATON_*
	// variables, and launch.env's (secrets among them: never log).
	Env map[string]string
	// DiskGB is the container disk in whole GB.
	DiskGB int
	// Detach asks for baton run --detach -- ARGS from a start script, for
	// a provider mode that keeps the image's own entrypoint (Vast's ssh).
	Detach bool
}

// Machine states, as Machine.State gives them.
const (
	StateStarting = "starting" // created, not running yet
	StateRunning  = "running"
	StateStopped  = "stopped" // stopped or exited: no compute billed
	StateGone     = "gone"    // deleted
)

// Machine is one machine a provider started.
type Machine struct {
	// Provider is the provider's name; ID its id of the machine (pod id,
	// instance id, a local process's label).
	Provider string `json:"provider"`
	ID       string `json:"id"`
	// Label is the label it was created with.
	Label string `json:"label"`
	// Machine is the physical machine, as Offer.Machine.
	Machine string `json:"machine,omitempty"`
	// State is one of the State constants.
	State string `json:"state"`
	// PricePerHour is what it costs an hour, where the provider says.
	PricePerHour float64 `json:"price_per_hour,omitempty"`
}

// normGPU is a GPU name for matching: lower case, without spaces, dashes,
// underscores, "nvidia" and "geforce".
func normGPU(s string) string {
	s = strings.ToLower(s)
	for _, cut := range []string{"nvidia", "geforce", " ", "-", "_"} {
		s = strings.ReplaceAll(s, cut, "")
	}
	return s
}

// MatchGPU reports whether a provider's GPU name (RunPod's "NVIDIA GeForce
// RTX 4090", Vast's "RTX 4090") is one of wants; an empty wants matches
// every GPU. Names match whole once normalized ("H100" is not "H100 NVL").
func MatchGPU(name string, wants []string) bool {
	if len(wants) == 0 {
		return true
	}
	n := normGPU(name)
	return slices.ContainsFunc(wants, func(w string) bool { return normGPU(w) == n })
}

// Choose returns the cheapest of offers that fits req: not above its price,
// not on a machine to avoid; among equal prices, the provider listed first
// in order wins, then the offer listed first. ErrNoOffer when none fits.
func Choose(offers []Offer, req Request, order []string) (Offer, error) {
	rank := func(o Offer) int {
		if i := slices.Index(order, o.Provider); i >= 0 {
			return i
		}
		return math.MaxInt
	}
	best, found := Offer{}, false
	for _, o := range offers {
		if req.MaxPrice > 0 && o.PricePerHour > req.MaxPrice || o.Machine != "" && req.Avoid[o.Machine] {
			continue
		}
		if !found || o.PricePerHour < best.PricePerHour || o.PricePerHour == best.PricePerHour && rank(o) < rank(best) {
			best, found = o, true
		}
	}
	if !found {
		return Offer{}, fmt.Errorf("%w (%d offers looked at, price bound $%.2f/h, %d machines avoided)", ErrNoOffer, len(offers), req.MaxPrice, len(req.Avoid))
	}
	return best, nil
}

// Label names the machine of a run's launch: baton-RUN-EPOCH-ATTEMPT,
// with the characters of the run id that no provider's name takes (a dot)
// turned into dashes.
func Label(run string, epoch int64, attempt int) string {
	return fmt.Sprintf("baton-%s-%d-%d", strings.ReplaceAll(run, ".", "-"), epoch, attempt)
}

// spent is what a launch has cost until now, from its price and the time
// its machine was up (until EndedAt, else until now).
func (c Claim) spent(now time.Time) float64 {
	if c.LaunchedAt.IsZero() || c.PricePerHour <= 0 {
		return 0
	}
	end := now
	if !c.EndedAt.IsZero() {
		end = c.EndedAt
	}
	if end.Before(c.LaunchedAt) {
		return 0
	}
	return c.PricePerHour * end.Sub(c.LaunchedAt).Hours()
}

// Spent is what the run's launches have cost until now, in dollars.
func Spent(claims []Claim, now time.Time) float64 {
	var sum float64
	for _, c := range claims {
		sum += c.spent(now)
	}
	return sum
}
