package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/durable"
)

// dirRecord is what baton knows of the checkpoint directory's contents,
// kept inside it as checkpoint.StateFile (never committed): after a restore
// or a commit, the directory held exactly checkpoint Seq of Run in Store,
// whose files sum up to Digest (checkpoint.DirDigest). Whether a local
// directory may be kept at the next start is decided from it, never from
// host names: hostnames repeat, and a machine can come back with an old
// disk long after another host moved the run on.
type dirRecord struct {
	Version int       `json:"version"`
	Store   string    `json:"store"`
	Run     string    `json:"run"`
	Seq     int64     `json:"seq"`
	Digest  string    `json:"digest"`
	Written time.Time `json:"written"`
}

// readDirRecord returns the record in dir, or nil if there is none or it
// cannot be read (a torn write: the directory is then of unknown origin).
func readDirRecord(dir string) *dirRecord {
	b, err := os.ReadFile(filepath.Join(dir, checkpoint.StateFile))
	if err != nil {
		return nil
	}
	var r dirRecord
	if json.Unmarshal(b, &r) != nil || r.Version != 1 {
		return nil
	}
	return &r
}

// writeDirRecord records durably that dir holds checkpoint seq with digest:
// written beside, fsynced, renamed over the old record, and the directory
// fsynced.
func writeDirRecord(dir string, r dirRecord) error {
	r.Version, r.Written = 1, time.Now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, checkpoint.StateFile+".new")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("recording the checkpoint directory's state: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, checkpoint.StateFile))
	}
	if err == nil {
		err = durable.SyncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recording the checkpoint directory's state: %w", err)
	}
	return nil
}

// dirChoice is what prepareCheckpointDir does with the local directory.
type dirChoice int

const (
	// startFresh: nothing local, nothing in the store.
	startFresh dirChoice = iota + 1
	// keepLocal: the directory holds the newest checkpoint already.
	keepLocal
	// commitLocal: the directory holds work the store lacks, on top of the
	// newest checkpoint (or the store has none, or an older one than the
	// directory's): keep it and commit it before the trainer starts.
	commitLocal
	// restoreLatest: the directory is empty, or holds an older checkpoint
	// unchanged: replace it with the newest.
	restoreLatest
	// forkAside: both moved on (the directory holds work that is not in the
	// store, on top of an older checkpoint than the newest): move it aside,
	// restore the newest, and tell the user how to get it back.
	forkAside
)

func (c dirChoice) String() string {
	switch c {
	case startFresh:
		return "start fresh"
	case keepLocal:
		return "keep the local directory"
	case commitLocal:
		return "keep the local directory and commit it first"
	case restoreLatest:
		return "restore the newest checkpoint"
	case forkAside:
		return "set the local directory aside and restore the newest checkpoint"
	}
	return "unknown"
}

// dirFacts is what the choice depends on.
type dirFacts struct {
	// empty: the directory holds no file a commit would take.
	empty bool
	// digest sums up the directory (checkpoint.DirDigest).
	digest string
	// rec is the directory's record, if it has one for this store and run.
	rec *dirRecord
	// latest is the newest published checkpoint, 0 if none; latestDigest
	// its files' digest (needed only without a record).
	latest       int64
	latestDigest func() (string, error)
}

// chooseDir is the table of docs/run.md ("Local directory or store"): the
// choice comes from the directory's own state and the store, never from
// host names, and never discards work that is not in the store.
func chooseDir(f dirFacts) (dirChoice, error) {
	switch {
	case f.empty && f.latest == 0:
		return startFresh, nil
	case f.empty:
		return restoreLatest, nil
	case f.latest == 0:
		// The store has nothing (a new run on a directory the user filled,
		// or a store emptied by hand): what is here is all there is.
		return commitLocal, nil
	case f.rec != nil && f.rec.Seq == f.latest:
		if f.digest == f.rec.Digest {
			return keepLocal, nil
		}
		return commitLocal, nil // saved after the last commit, then stopped
	case f.rec != nil && f.rec.Seq > f.latest:
		// The store is behind the directory (rolled back by hand?): keep
		// the newer work.
		return commitLocal, nil
	case f.rec != nil:
		if f.digest == f.rec.Digest {
			return restoreLatest, nil // an old checkpoint, unchanged: another host moved on
		}
		return forkAside, nil
	}
	// No record: a directory of unknown origin (an older baton, a copy by
	// hand). Kept only if it is exactly the newest checkpoint.
	ld, err := f.latestDigest()
	if err != nil {
		return 0, err
	}
	if f.digest == ld {
		return keepLocal, nil
	}
	return forkAside, nil
}

// forkSuffix names a forked directory by the checkpoint it was based on and
// the time.
func forkSuffix(base int64, now time.Time) string {
	return fmt.Sprintf("%d-%s", base, now.UTC().Format("20060102T150405Z"))
}

// setAside moves the contents of dir to a new directory beside it and
// returns that directory. dir itself is renamed when it can be; a mount
// point cannot, so its entries are moved one by one into a directory made
// inside it, where commits and restores leave it alone (its name starts
// with checkpoint.ForkPrefix).
func setAside(dir string, base int64, now time.Time) (string, error) {
	to := dir + ".baton-fork-" + forkSuffix(base, now)
	err := os.Rename(dir, to)
	if err == nil {
		return to, os.MkdirAll(dir, 0o755)
	}
	if !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EXDEV) {
		return "", err
	}
	// A mount point: the fork stays inside it.
	inside := filepath.Join(dir, checkpoint.ForkPrefix+forkSuffix(base, now))
	if err := os.Mkdir(inside, 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), checkpoint.ReservedPrefix) {
			continue
		}
		if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(inside, e.Name())); err != nil {
			return "", err
		}
	}
	return inside, durable.SyncDir(dir)
}
