package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/batonrun/baton/agent/platform"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/storeurl"
)

// machineIdentity is the most stable name of the machine under this
// container: RunPod's server host name, the Kubernetes node (a downward-API
// NODE_NAME), else the UUIDs of the GPUs NVML sees, which follow the
// hardware on every platform. "" when there is none (no platform host name,
// no GPU): such a machine cannot be remembered.
func (a *agent) machineIdentity() string {
	switch a.desc.Platform {
	case platform.RunPod, platform.Kubernetes:
		if a.desc.Host != "" {
			return "host " + a.desc.Host
		}
	}
	if a.gpus == nil {
		return ""
	}
	var uuids []string
	for _, d := range a.gpus.Info().Devices {
		uuids = append(uuids, d.UUID)
	}
	if len(uuids) == 0 {
		return ""
	}
	slices.Sort(uuids)
	return "gpus " + strings.Join(uuids, ",")
}

// refuseBadHost returns a give-up if the run recorded this machine as bad:
// a later baton run there refuses at once instead of burning another hour.
func (a *agent) refuseBadHost(ctx context.Context) (*giveUp, error) {
	machine := a.machineIdentity()
	if machine == "" {
		return nil, nil
	}
	hosts, err := a.repo.BadHosts(ctx)
	if err != nil {
		return nil, err
	}
	id := checkpoint.BadHostID(a.desc.Platform, machine)
	for _, h := range hosts {
		if h.ID == id {
			reason := fmt.Sprintf("this machine (%s) was given up for run %s on %s: %s; to try it again: baton checkpoint hosts --forget %s",
				machine, a.cfg.RunID, h.At.Format(time.RFC3339), h.Reason, h.ID)
			a.log.Error("refusing a machine the run gave up before", "machine", machine, "id", h.ID, "status", h.Status, "reason", h.Reason, "at", h.At)
			return &giveUp{code: ExitUnhealthy, reason: reason}, nil
		}
	}
	return nil, nil
}

// recordBadHost remembers this machine in the run's store after it was
// given up for g.
func (a *agent) recordBadHost(ctx context.Context, g giveUp) {
	machine := a.machineIdentity()
	if machine == "" || a.repo == nil {
		a.log.Warn("this machine cannot be remembered as bad: the platform names no host and NVML sees no GPU")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	h := checkpoint.BadHost{Platform: a.desc.Platform, Machine: machine, Reason: g.reason, Status: g.code, At: time.Now().UTC()}
	if a.lease != nil {
		h.Holder = a.lease.Record().Holder
	}
	if err := a.repo.RecordBadHost(ctx, h); err != nil {
		a.log.Warn("could not record this machine as bad in the store", "err", err)
		return
	}
	a.log.Info("machine recorded as bad for this run: a later baton run here refuses at once", "machine", machine,
		"id", checkpoint.BadHostID(a.desc.Platform, machine))
}

// rememberFromGate records a machine the GPU check refused before the run's
// store was opened: it opens the store and the run for that alone.
func (a *agent) rememberFromGate(ctx context.Context, g giveUp) {
	store, err := storeurl.Open(ctx, a.cfg.Store, storeurl.Options{Driver: a.cfg.S3Driver, Getenv: platform.Getenv(a.deps.Environ), MaxConns: 2})
	if err == nil {
		a.repo, err = checkpoint.Open(store, checkpoint.Options{Run: a.cfg.RunID, Logger: a.log})
	}
	if err != nil {
		a.log.Warn("could not record this machine as bad: the store", "err", err)
		return
	}
	a.recordBadHost(ctx, g)
}

// supersededAction carries out --on-superseded: another host has the run,
// and this machine has nothing left to do.
func (a *agent) supersededAction(ctx context.Context, getenv func(string) string) {
	a.actOnMachine(ctx, a.cfg.OnSuperseded, getenv)
}

// localWorkSafe reports whether the checkpoint directory holds nothing the
// store may lack, so that stopping or deleting the machine loses nothing:
// it is empty, or holds exactly the checkpoint its record names. Else it
// says why not.
func (a *agent) localWorkSafe() (bool, string) {
	digest, files, err := checkpoint.DirDigest(a.dir, a.cfg.Exclude)
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
		return true, ""
	case err != nil:
		return false, "the checkpoint directory cannot be read: " + err.Error()
	case files == 0:
		return true, ""
	}
	if rec := readDirRecord(a.dir); rec != nil && rec.Digest == digest {
		return true, ""
	}
	return false, "the checkpoint directory holds files that may not be in the store"
}
