package transfer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/batonrun/baton/internal/units"
)

// Progress counts the bytes of a transfer as they move. It is safe for
// concurrent use; Report shows it.
type Progress struct {
	total atomic.Int64
	done  atomic.Int64
}

func (p *Progress) addTotal(n int64) { p.total.Add(n) }
func (p *Progress) addDone(n int64)  { p.done.Add(n) }

// Snapshot returns the bytes moved so far and the bytes planned.
func (p *Progress) Snapshot() (done, total int64) { return p.done.Load(), p.total.Load() }

// Report shows p until ctx is done: on a terminal, a bar redrawn in place on w
// five times a second; otherwise a log line every interval. It writes a last
// line when ctx ends.
func (p *Progress) Report(ctx context.Context, w io.Writer, terminal bool, log *slog.Logger, interval time.Duration) {
	every := interval
	if terminal {
		every = 200 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	start := time.Now()
	show := func(final bool) {
		done, total := p.Snapshot()
		elapsed := time.Since(start)
		rate := float64(done) / max(elapsed.Seconds(), 1e-3)
		var eta time.Duration
		if rate > 0 && total > done {
			eta = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second)
		}
		if terminal {
			end := ""
			if final {
				end = "\n"
			}
			fmt.Fprintf(w, "\r%s %s / %s  %s/s  ETA %s  %s", bar(done, total, 30), units.Bytes(done), units.Bytes(total), units.Bytes(int64(rate)), eta, end)
			return
		}
		log.Info("transfer progress", "bytes", done, "total_bytes", total, "rate_bytes_per_s", int64(rate), "eta", eta.String())
	}
	for {
		select {
		case <-ctx.Done():
			show(true)
			return
		case <-tick.C:
			show(false)
		}
	}
}

func bar(done, total int64, width int) string {
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	full := int(frac * float64(width))
	return fmt.Sprintf("[%s%s] %3.0f%%", strings.Repeat("=", full), strings.Repeat(" ", width-full), frac*100)
}
