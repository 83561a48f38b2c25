package config

import (
	"time"

	"github.com/batonrun/baton/agent/platform"
)

// PlatformWindow is what a platform leaves a container between its stop
// signal (SIGTERM to the main process) and SIGKILL: the time in which the
// trainer must exit and baton must finish the final commit.
type PlatformWindow struct {
	// Platform is the platform's name (platform.Docker, ...).
	Platform string
	// Window is the time from SIGTERM to SIGKILL; 0 means nothing outside
	// baton kills it (a developer's machine).
	Window time.Duration
	// Documented reports whether the platform documents Window; when
	// false, Window is baton's assumption and Source says why.
	Documented bool
	// Source is where the figure comes from, in one line (docs/platforms.md
	// has the links and the date they were checked).
	Source string
}

// LocalGrace is the default grace where no stop window is known (a
// developer's machine): nothing kills baton there, so the trainer may take
// as long as docker stop would give it.
const LocalGrace = 10 * time.Second

// PlatformStopWindow returns the stop window of the named platform, as its
// documentation states it or, where it states none, as baton assumes it;
// docs/platforms.md cites each source. An unknown name gets Docker's.
func PlatformStopWindow(name string) PlatformWindow {
	switch name {
	case platform.Kubernetes:
		return PlatformWindow{Platform: name, Window: 30 * time.Second, Documented: true,
			Source: "a pod's terminationGracePeriodSeconds, 30s by default"}
	case platform.RunPod:
		return PlatformWindow{Platform: name, Window: 5 * time.Second,
			Source: "not documented today; RunPod documented a 5s warning (SIGTERM, then SIGKILL) for spot pods until May 2026, and a spot pod cannot be told from inside"}
	case platform.Vast:
		return PlatformWindow{Platform: name, Window: 10 * time.Second,
			Source: "not documented; Vast.ai runs docker stop on the host (its API reference says so for reboot), whose default is 10s"}
	case platform.Lambda:
		return PlatformWindow{Platform: name, Window: 10 * time.Second,
			Source: "not documented; assumed as docker stop's default"}
	case platform.Local:
		return PlatformWindow{Platform: name,
			Source: "none: nothing outside baton kills it after a stop signal"}
	}
	if name == "" {
		name = platform.Docker
	}
	return PlatformWindow{Platform: name, Window: 10 * time.Second, Documented: name == platform.Docker,
		Source: "docker stop's default timeout, 10s"}
}

// StopBudget is how a stop window is shared between the trainer and the
// final commit.
type StopBudget struct {
	// PlatformWindow is the platform's window, with Window replaced by
	// --stop-window where that is set (Documented is then true: the user
	// said so).
	PlatformWindow
	// Grace is how long the trainer has to exit after SIGTERM before baton
	// kills it: --grace, or by default half the window (LocalGrace where
	// there is no window).
	Grace time.Duration
	// GraceSet reports whether Grace came from --grace.
	GraceSet bool
	// FinalCommit is what the window is sure to leave the final commit if
	// the trainer takes its whole grace: Window - Grace, 0 when that is
	// nothing or there is no window.
	FinalCommit time.Duration
}

// StopBudget returns the stop budget of a run on the named platform (a
// platform.Description's Platform): the window from --stop-window or the
// platform's, the grace from --grace or half the window. The trainer gets
// the grace (supervise.Spec.Grace) in place of c.Grace, whose 0 means "the
// default".
func (c Config) StopBudget(platformName string) StopBudget {
	b := StopBudget{PlatformWindow: PlatformStopWindow(platformName)}
	if c.StopWindow > 0 {
		b.Window, b.Documented, b.Source = c.StopWindow, true, "--stop-window"
	}
	switch {
	case c.Grace > 0:
		b.Grace, b.GraceSet = c.Grace, true
	case b.Window > 0:
		b.Grace = b.Window / 2
	default:
		b.Grace = LocalGrace
	}
	if b.Window > b.Grace {
		b.FinalCommit = b.Window - b.Grace
	}
	return b
}
