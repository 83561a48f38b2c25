package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/batonrun/baton/sync/storage"
)

// The index is a summary of each published checkpoint, kept so that
// listing a run costs a few requests however many checkpoints it has:
// runs/<run>/index/<first seq of the page>.json holds the Summary of every
// checkpoint in [page, page+indexPage). A committer adds its checkpoint's
// entry after publishing it (a conditional rewrite of the page). The index
// is a cache, never the truth: List still lists the manifests, takes the
// index's entry only for a manifest that exists, and reads the header of
// any checkpoint the index lacks (a committer that died between publishing
// and indexing).
const indexPage = 1000

func indexKey(run string, seq int64) string {
	return fmt.Sprintf("%sindex/%012d.json", runPrefix(run), seq/indexPage*indexPage)
}

// indexEntry is one checkpoint in the index.
type indexEntry struct {
	Seq       int64     `json:"seq"`
	Parent    int64     `json:"parent"`
	CreatedAt time.Time `json:"created_at"`
	Host      string    `json:"host"`
	Platform  string    `json:"platform"`
	Epoch     int64     `json:"epoch"`
	Files     int       `json:"files"`
	Size      int64     `json:"size"`
	NewBytes  int64     `json:"new_bytes"`
}

type indexPageDoc struct {
	Version int          `json:"version"`
	Entries []indexEntry `json:"entries"`
}

func entryOf(m *Manifest) indexEntry {
	return indexEntry{Seq: m.Seq, Parent: m.Parent, CreatedAt: m.CreatedAt, Host: m.Host, Platform: m.Platform,
		Epoch: m.Epoch, Files: m.FileCount, Size: m.Size, NewBytes: m.NewBytes}
}

// header is the entry as a manifest without files, as List uses it.
func (e indexEntry) header() *Manifest {
	return &Manifest{Seq: e.Seq, Parent: e.Parent, CreatedAt: e.CreatedAt, Host: e.Host, Platform: e.Platform,
		Epoch: e.Epoch, FileCount: e.Files, Size: e.Size, NewBytes: e.NewBytes}
}

// addToIndex records published checkpoint m in its index page. A failure is
// logged, not returned: the index is a cache.
func (r *Repo) addToIndex(ctx context.Context, m *Manifest) {
	if r.key != nil {
		return // an encrypted run has no index: it would hold hosts and sizes in the clear
	}
	key := indexKey(r.opts.Run, m.Seq)
	for try := 0; try < 5; try++ {
		var doc indexPageDoc
		etag, err := r.getJSON(ctx, key, 1<<20, &doc)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			if !errors.Is(err, ErrBadManifest) {
				r.log.Warn("checkpoint index not updated; ls reads the manifest instead", "seq", m.Seq, "err", err)
				return
			}
			doc = indexPageDoc{} // a damaged page is rewritten
		}
		doc.Version = 1
		doc.Entries = slices.DeleteFunc(doc.Entries, func(e indexEntry) bool { return e.Seq == m.Seq })
		doc.Entries = append(doc.Entries, entryOf(m))
		slices.SortFunc(doc.Entries, func(a, b indexEntry) int { return int(a.Seq - b.Seq) })
		opts := storage.PutOptions{IfMatch: etag}
		if etag == "" {
			opts = storage.PutOptions{IfAbsent: true}
		}
		_, err = r.putJSON(ctx, key, doc, opts)
		if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			r.log.Warn("checkpoint index not updated; ls reads the manifest instead", "seq", m.Seq, "err", err)
		}
		return
	}
}

// indexed returns the index's entries for the seqs in want (those whose
// manifests exist), read one page at a time. Entries that do not hold up
// (a parent not below the seq) are left out.
func (r *Repo) indexed(ctx context.Context, want map[int64]bool) (map[int64]indexEntry, error) {
	pages := map[int64]bool{}
	for seq := range want {
		pages[seq/indexPage*indexPage] = true
	}
	out := map[int64]indexEntry{}
	for _, page := range slices.Sorted(maps.Keys(pages)) {
		var doc indexPageDoc
		_, err := r.getJSON(ctx, indexKey(r.opts.Run, page), 1<<20, &doc)
		if errors.Is(err, storage.ErrNotFound) || errors.Is(err, ErrBadManifest) {
			continue // no page, or a damaged one: the headers are read instead
		}
		if err != nil {
			return nil, err
		}
		for _, e := range doc.Entries {
			if want[e.Seq] && e.Parent >= 0 && e.Parent < e.Seq && e.Seq/indexPage*indexPage == page {
				out[e.Seq] = e
			}
		}
	}
	return out, nil
}
