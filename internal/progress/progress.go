// Package progress shows long transfers as they run: pulls, pushes,
// checkpoint commits and restores. A Counter counts a transfer's files and
// bytes, planned and done; a Reporter shows it: nothing at all for a
// transfer that ends within a second, otherwise a first line naming what
// moves and its totals, then a bar redrawn in place on a terminal or a log
// line every 10 seconds, and a last line with what moved.
package progress

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonrun/baton/internal/units"
)

// Counter counts the files and bytes of one transfer, planned and done. It
// is safe for concurrent use.
type Counter struct {
	planned                atomic.Bool
	filesTotal, bytesTotal atomic.Int64
	filesDone, bytesDone   atomic.Int64
}

// Plan sets the totals: the files and bytes the transfer is about to move.
// A transfer is shown only once it has a plan.
func (c *Counter) Plan(files, bytes int64) {
	c.filesTotal.Store(files)
	c.bytesTotal.Store(bytes)
	c.planned.Store(true)
}

// Add counts files and bytes moved.
func (c *Counter) Add(files, bytes int64) {
	c.filesDone.Add(files)
	c.bytesDone.Add(bytes)
}

// Snapshot is a Counter at one moment.
type Snapshot struct {
	FilesDone, FilesTotal int64
	BytesDone, BytesTotal int64
}

// Snapshot returns what the counter holds, and whether it has a plan.
func (c *Counter) Snapshot() (Snapshot, bool) {
	return Snapshot{
		FilesDone: c.filesDone.Load(), FilesTotal: c.filesTotal.Load(),
		BytesDone: c.bytesDone.Load(), BytesTotal: c.bytesTotal.Load(),
	}, c.planned.Load()
}

// Quiet is how long a transfer runs before it is shown: one that ends
// sooner shows nothing.
const Quiet = time.Second

// DefaultEvery is the default time between two log lines.
const DefaultEvery = 10 * time.Second

// redraw is how often a bar is redrawn, and how often a reporter looks at
// its clock.
const redraw = 200 * time.Millisecond

// Reporter shows transfers. Its lines go to Log, unless Bar is set: then
// they are written on Bar, a terminal, with a bar redrawn in place between
// the first and the last (files, bytes, rate, ETA). A nil *Reporter shows
// nothing; its transfers only count.
//
// On Log, every line's message names the transfer, and its attributes are
// numbers, their units in their keys as baton's log handlers expect:
// files_total and total_bytes on the first line; files_done, files_total,
// done_bytes, total_bytes, rate_bytes_per_s and eta_s (the last two once
// they are known) every Every; the last line's message ends in ": done"
// (or ": failed"), and it has the done and total counts, elapsed_s and
// rate_bytes_per_s.
type Reporter struct {
	Log   *slog.Logger
	Bar   io.Writer
	Every time.Duration    // between two log lines (default DefaultEvery)
	Now   func() time.Time // the clock (default time.Now)

	manual bool // tests: no goroutine, they call update
}

// Transfer is one transfer being shown: its Counter, and the reporter's
// view of it. End it when it is over.
type Transfer struct {
	Counter
	r     *Reporter
	what  string
	start time.Time
	stop  chan struct{} // closed by End
	gone  chan struct{} // closed when the goroutine has returned

	mu      sync.Mutex
	shown   bool      // the first line is out
	lastLog time.Time // when the last log line went out
	ended   bool
}

// Start begins showing a transfer of what, a phrase such as "pulling
// s3://b/data into /data". Plan its totals on the Transfer, count what
// moves, and call End when it is over.
func (r *Reporter) Start(what string) *Transfer {
	t := &Transfer{r: r, what: what}
	if r == nil {
		return t
	}
	t.start = r.now()
	if !r.manual {
		t.stop, t.gone = make(chan struct{}), make(chan struct{})
		go t.loop()
	}
	return t
}

func (r *Reporter) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func (r *Reporter) every() time.Duration {
	if r.Every <= 0 {
		return DefaultEvery
	}
	return r.Every
}

func (t *Transfer) loop() {
	defer close(t.gone)
	tick := time.NewTicker(redraw)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.update()
		}
	}
}

// update shows the transfer as it stands on the reporter's clock.
func (t *Transfer) update() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	now := t.r.now()
	s, ok := t.showFirst(now)
	if !ok {
		return
	}
	if t.r.Bar != nil {
		fmt.Fprintf(t.r.Bar, "\r%s\x1b[K", barLine(s, now.Sub(t.start)))
		return
	}
	if now.Sub(t.lastLog) >= t.r.every() {
		t.lastLog = now
		args := []any{"files_done", s.FilesDone, "files_total", s.FilesTotal, "done_bytes", s.BytesDone, "total_bytes", s.BytesTotal}
		if rate, ok := rate(s, now.Sub(t.start)); ok {
			args = append(args, "rate_bytes_per_s", int64(rate))
			if eta, ok := eta(s, rate); ok {
				args = append(args, "eta_s", int64(eta/time.Second))
			}
		}
		t.r.Log.Info(t.what, args...)
	}
}

// showFirst writes the first line if it is due: the transfer has a plan
// with something to move, and has run for Quiet. It reports whether the
// first line is out.
func (t *Transfer) showFirst(now time.Time) (Snapshot, bool) {
	s, planned := t.Snapshot()
	if t.shown {
		return s, true
	}
	if !planned || s.FilesTotal == 0 && s.BytesTotal == 0 || now.Sub(t.start) < Quiet {
		return s, false // nothing to move is no transfer
	}
	t.shown, t.lastLog = true, now
	if t.r.Bar != nil {
		fmt.Fprintf(t.r.Bar, "%s: %s, %s\n", t.what, units.Plural(s.FilesTotal, "file"), units.Bytes(s.BytesTotal))
	} else {
		t.r.Log.Info(t.what, "files_total", s.FilesTotal, "total_bytes", s.BytesTotal)
	}
	return s, true
}

// End ends the transfer; err is how it ended. If it ran for Quiet or more,
// the last line says what moved (after the first, if no tick showed it
// yet); a shorter one shows nothing. Calls after the first do nothing.
func (t *Transfer) End(err error) {
	if t.r == nil {
		return
	}
	t.mu.Lock()
	ended := t.ended
	t.ended = true // no update from now on
	t.mu.Unlock()
	if ended {
		return
	}
	if t.stop != nil {
		close(t.stop)
		<-t.gone
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.r.now()
	s, ok := t.showFirst(now)
	if !ok {
		return
	}
	how := "done"
	if err != nil {
		how = "failed"
	}
	elapsed := now.Sub(t.start)
	r, _ := rate(s, elapsed)
	if t.r.Bar != nil {
		files, bytes := units.Plural(s.FilesTotal, "file"), units.Bytes(s.BytesTotal)
		if s.FilesDone != s.FilesTotal || s.BytesDone != s.BytesTotal {
			files, bytes = fmt.Sprintf("%d of %s", s.FilesDone, files), units.Bytes(s.BytesDone)+" of "+bytes
		}
		fmt.Fprintf(t.r.Bar, "\r\x1b[K%s: %s, %s, %s in %s (%s/s)\n", t.what, how, files, bytes,
			elapsed.Round(100*time.Millisecond), units.Bytes(int64(r)))
		return
	}
	t.r.Log.Info(t.what+": "+how, "files_done", s.FilesDone, "files_total", s.FilesTotal,
		"done_bytes", s.BytesDone, "total_bytes", s.BytesTotal,
		"elapsed_s", math.Round(elapsed.Seconds()*10)/10, "rate_bytes_per_s", int64(r))
}

// rate is the bytes per second since the start; it is known once bytes
// moved.
func rate(s Snapshot, elapsed time.Duration) (float64, bool) {
	if s.BytesDone <= 0 || elapsed <= 0 {
		return 0, false
	}
	return float64(s.BytesDone) / elapsed.Seconds(), true
}

// eta is the time left at rate, in whole seconds rounded up, so never 0
// while bytes are left; it is unknown when none are.
func eta(s Snapshot, rate float64) (time.Duration, bool) {
	left := s.BytesTotal - s.BytesDone
	if left <= 0 || rate <= 0 {
		return 0, false
	}
	return time.Duration(math.Ceil(float64(left)/rate)) * time.Second, true
}

// barLine is the bar of a terminal: "[=====>    ]  42%  500/1200 files
// 168.0 MiB/400.0 MiB  10.0 MiB/s  ETA 23s", with "—" for a rate or an ETA
// not known yet.
func barLine(s Snapshot, elapsed time.Duration) string {
	frac := 1.0
	switch {
	case s.BytesTotal > 0:
		frac = min(float64(s.BytesDone)/float64(s.BytesTotal), 1)
	case s.FilesTotal > 0:
		frac = min(float64(s.FilesDone)/float64(s.FilesTotal), 1)
	}
	const width = 24
	full := int(frac * width)
	bar := strings.Repeat("=", full)
	if full < width {
		bar += ">" + strings.Repeat(" ", width-full-1)
	}
	rateText, etaText := "—/s", "—"
	if r, ok := rate(s, elapsed); ok {
		rateText = units.Bytes(int64(r)) + "/s"
		if e, ok := eta(s, r); ok {
			etaText = e.String()
		}
	}
	return fmt.Sprintf("[%s] %3.0f%%  %d/%d files  %s/%s  %s  ETA %s", bar, math.Floor(frac*100),
		s.FilesDone, s.FilesTotal, units.Bytes(s.BytesDone), units.Bytes(s.BytesTotal), rateText, etaText)
}
