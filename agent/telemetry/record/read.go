package record

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/storage"
)

// ReadStore is what reading telemetry takes of a storage.Store.
type ReadStore interface {
	List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error)
}

// maxLine bounds one line of telemetry when reading.
const maxLine = 16 << 20

// Segments returns the names of a run's telemetry segments, in name order.
// It lists every object of the run's telemetry (one request per thousand).
func Segments(ctx context.Context, store ReadStore, run string) ([]string, error) {
	tp := telemetryPrefix(run)
	segs, err := listSegments(ctx, store, tp)
	if err != nil {
		return nil, err
	}
	var out []string
	for p := range segs {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(p, tp), "/"))
	}
	sort.Strings(out)
	return out, nil
}

// ReadRange returns the lines of a segment whose time is in [since,
// until), in the order they were written; a zero until means no end. It
// lists the segment (one request) and reads only the objects that can hold
// such lines, each once, whatever state compaction left them in.
//
// Objects are selected by the times in their names, which assumes the
// recording host's clock did not step back; lines are then filtered by
// their own times.
//
// key is the run's encryption key, nil for a plain run; reading an
// encrypted run without it fails with a *checkpoint.KeyError ("run R is
// encrypted: ...").
func ReadRange(ctx context.Context, store ReadStore, key *checkpoint.Key, run, segment string, since, until time.Time) ([]Line, error) {
	prefix := Prefix(run, segment)
	objs, err := listSegment(ctx, store, prefix)
	if err != nil {
		return nil, err
	}
	units, _ := cover(objs)
	var out []Line
	for i, o := range units {
		if !until.IsZero() && !o.time.Before(until) {
			break
		}
		// Every line of o precedes the first line of the next object;
		// names keep whole seconds.
		if i+1 < len(units) && units[i+1].time.Add(time.Second).Before(since) {
			continue
		}
		lines, err := readObject(ctx, store, sealer{key, run}, o.key)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			if !l.Time.Before(since) && (until.IsZero() || l.Time.Before(until)) {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// Newest returns the lines of the last d of a segment: those at most d
// older than its newest line, in order. It takes one listing, then reads
// the objects from the newest back until one starts before the window:
// with the default levels, at most 16 objects for an hour. key is as for
// ReadRange.
func Newest(ctx context.Context, store ReadStore, key *checkpoint.Key, run, segment string, d time.Duration) ([]Line, error) {
	prefix := Prefix(run, segment)
	objs, err := listSegment(ctx, store, prefix)
	if err != nil {
		return nil, err
	}
	units, _ := cover(objs)
	var chunks [][]Line
	var since time.Time
	for i := len(units) - 1; i >= 0; i-- {
		if i < len(units)-1 && units[i+1].time.Add(time.Second).Before(since) {
			break // o ends before the window
		}
		lines, err := readObject(ctx, store, sealer{key, run}, units[i].key)
		if err != nil {
			return nil, err
		}
		if i == len(units)-1 && len(lines) > 0 {
			since = lines[len(lines)-1].Time.Add(-d)
		}
		chunks = append(chunks, lines)
	}
	var out []Line
	for k := len(chunks) - 1; k >= 0; k-- {
		for _, l := range chunks[k] {
			if !l.Time.Before(since) {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// readObject reads one object's lines, opening it with sl's key.
func readObject(ctx context.Context, store ReadStore, sl sealer, key string) ([]Line, error) {
	body, _, err := store.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read telemetry %s: %w", key, err)
	}
	raw, err := io.ReadAll(body)
	body.Close()
	if err != nil {
		return nil, fmt.Errorf("read telemetry %s: %w", key, err)
	}
	data, err := sl.open(key, raw)
	if err != nil {
		return nil, err
	}
	var out []Line
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("read telemetry %s: line %d: %w", key, len(out)+1, err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read telemetry %s: %w", key, err)
	}
	return out, nil
}
