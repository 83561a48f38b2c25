package agent

import (
	"github.com/batonrun/baton/internal/priority"
)

// lowerPriority puts every thread of baton but kept at --nice, so that
// commits, uploads and telemetry take only CPU time the trainer leaves
// over. The trainer is started on kept, which keeps baton's starting
// niceness, and so starts at that (internal/priority). Threads made later
// start lowered. Where the platform forbids it, baton says so once and runs
// on as it is.
func (a *agent) lowerPriority(kept *priority.Thread) {
	if a.cfg.Nice == 0 || a.deps.Lower == nil {
		return
	}
	res, err := a.deps.Lower(a.cfg.Nice, kept)
	if err != nil {
		a.log.Warn("cannot lower baton's own priority; its commits compete with the trainer for the CPU", "nice", a.cfg.Nice, "err", err)
		return
	}
	if res.Threads == 0 {
		a.log.Debug("baton's priority left as it is: already at or below --nice", "nice", a.cfg.Nice, "trainer_nice", res.From)
		return
	}
	a.log.Info("baton's own work runs below the trainer's", "nice", a.cfg.Nice, "trainer_nice", res.From, "threads", res.Threads)
}
