package checkpoint

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/batonrun/baton/internal/durable"
)

// The names a restore of DIR (base name NAME, parent PARENT) makes, HEX being
// 16 random lowercase hex digits, the same for every name of one restore:
//
//	PARENT/.NAME.baton-restore-HEX   staging directory beside DIR
//	PARENT/NAME.baton-old-HEX        DIR renamed aside during the swap
//	DIR/.baton-restore-HEX           staging directory inside DIR, a mount point
//	DIR/.baton-old-HEX               DIR's entries moved aside during the swap
//	DIR/.baton-swap-HEX              journal: the in-place swap rolls forward
const (
	besideStagingInfix = ".baton-restore-"
	besideOldInfix     = ".baton-old-"
	inStagingPrefix    = ".baton-restore-"
	inOldPrefix        = ".baton-old-"
	journalPrefix      = ".baton-swap-"
)

// names are the paths of one restore's staging, old and journal entries.
type names struct {
	dir, hexID                string
	staging, old              string // beside dir
	inStaging, inOld, journal string // inside dir
}

func leftoverNames(dir, hexID string) names {
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	return names{
		dir: dir, hexID: hexID,
		staging:   filepath.Join(parent, "."+base+besideStagingInfix+hexID),
		old:       filepath.Join(parent, base+besideOldInfix+hexID),
		inStaging: filepath.Join(dir, inStagingPrefix+hexID),
		inOld:     filepath.Join(dir, inOldPrefix+hexID),
		journal:   filepath.Join(dir, journalPrefix+hexID),
	}
}

// newSuffix returns 16 random lowercase hex digits.
func newSuffix() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// isHex says whether s is n lowercase hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isDecimal says whether s is 1 to 10 decimal digits: the suffix of
// os.MkdirTemp, which earlier versions of baton named staging directories
// with.
func isDecimal(s string) bool {
	if len(s) < 1 || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// RemoveLeftovers removes what restores of dir that were killed or crashed
// left behind, finishing or undoing their swap, so that dir is either the
// checkpoint it held before such a restore or the one that restore wrote,
// never a mix. Restore calls it first; so does baton run before it looks at
// its checkpoint directory. It holds an advisory lock on dir's parent while
// it works, the same one Restore holds, so it never touches the staging
// directory of a restore in progress.
//
// It looks at these names only, HEX being exactly 16 lowercase hex digits
// (the suffix baton makes; older versions made the two noted):
//
//   - Beside dir: directory .NAME.baton-restore-HEX (also -DIGITS, 1 to 10
//     decimal digits), a staging directory, and NAME.baton-old-HEX (also
//     with 8 hex digits), what dir was before a swap, where NAME is dir's
//     base name exactly: the leftovers of dir "a" never include those of
//     "a.b". If dir does not exist and both .NAME.baton-restore-HEX and
//     NAME.baton-old-HEX do, with the same HEX, the crash came between the
//     two renames of the swap, when the staging directory was complete: it
//     is renamed to dir. Then every such entry is removed.
//   - Inside dir, if it is a directory (not a symbolic link): directory
//     .baton-restore-HEX (staging), directory .baton-old-HEX (dir's entries
//     moved aside) and regular file .baton-swap-HEX (journal) of an
//     in-place swap. If the journal holds exactly what baton writes there,
//     the staged entries are complete: those left are moved up into dir and
//     the old ones removed. Otherwise the entries moved aside are moved back
//     into dir and the staging directory is removed, as is a journal that
//     is a part of what baton writes (one cut short). A file of that name
//     with other content is not baton's and is left alone.
//
// Nothing else is touched. A missing dir or parent is not an error.
func RemoveLeftovers(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	unlock, err := lockDir(filepath.Dir(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	return removeLeftovers(dir)
}

// removeLeftovers is RemoveLeftovers with the lock held.
func removeLeftovers(dir string) error {
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	entries, err := os.ReadDir(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	stagings := map[string]string{} // suffix -> path
	olds := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if s, ok := strings.CutPrefix(name, "."+base+besideStagingInfix); ok && (isHex(s, 16) || isDecimal(s)) && e.IsDir() {
			stagings[s] = filepath.Join(parent, name)
		} else if s, ok := strings.CutPrefix(name, base+besideOldInfix); ok && (isHex(s, 16) || isHex(s, 8)) {
			olds[s] = filepath.Join(parent, name)
		}
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		for _, s := range slices.Sorted(maps.Keys(olds)) {
			if staging, ok := stagings[s]; ok && isHex(s, 16) {
				if err := os.Rename(staging, dir); err != nil {
					return err
				}
				delete(stagings, s)
				if err := durable.SyncDir(parent); err != nil {
					return err
				}
				break
			}
		}
	}
	if len(stagings)+len(olds) > 0 {
		for _, p := range stagings {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
		for _, p := range olds {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
		if err := durable.SyncDir(parent); err != nil {
			return err
		}
	}

	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return nil
	}
	inside, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	swaps := map[string]bool{} // suffix -> its journal is valid
	for _, e := range inside {
		name := e.Name()
		if s, ok := strings.CutPrefix(name, inStagingPrefix); ok && isHex(s, 16) && e.IsDir() {
			swaps[s] = swaps[s] || false
		} else if s, ok := strings.CutPrefix(name, inOldPrefix); ok && isHex(s, 16) && e.IsDir() {
			swaps[s] = swaps[s] || false
		} else if s, ok := strings.CutPrefix(name, journalPrefix); ok && isHex(s, 16) && e.Type().IsRegular() {
			ours, valid := isOurJournal(filepath.Join(dir, name), s)
			if ours {
				swaps[s] = swaps[s] || valid
			}
		}
	}
	for _, s := range slices.Sorted(maps.Keys(swaps)) {
		n := leftoverNames(dir, s)
		if swaps[s] {
			err = rollForward(n)
		} else {
			err = rollBack(n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// isOurJournal says whether the file at p is a swap journal baton wrote for
// suffix hexID (ours: its content is a prefix of journalText, possibly
// empty, as a crash while writing leaves it) and whether it is complete.
func isOurJournal(p, hexID string) (ours, valid bool) {
	want := journalText(hexID)
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > int64(len(want)) {
		return false, false
	}
	b, err := os.ReadFile(p)
	if err != nil || !bytes.HasPrefix([]byte(want), b) {
		return false, false
	}
	return true, len(b) == len(want)
}
