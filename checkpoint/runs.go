package checkpoint

import (
	"context"
	"errors"
	"strings"

	"github.com/batonrun/baton/sync/storage"
)

// errEnough stops a listing once it has seen enough.
var errEnough = errors.New("enough")

// Runs returns the runs of the store that have a published checkpoint
// (their latest.json), in the order of their names, looking at no more than
// limit objects under runs/ (0: no limit): enough to suggest the run a
// misspelt run id meant, without listing a store of many runs whole.
func Runs(ctx context.Context, s storage.Store, limit int) ([]string, error) {
	var runs []string
	seen := 0
	err := s.List(ctx, "runs/", func(o storage.ObjectInfo) error {
		if seen++; limit > 0 && seen > limit {
			return errEnough
		}
		run, rest, ok := strings.Cut(strings.TrimPrefix(o.Key, "runs/"), "/")
		if ok && rest == "latest.json" && CheckRunID(run) == nil {
			runs = append(runs, run)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return runs, nil
}
