// Package notify posts the events of a run (started, checkpoint committed,
// host given up, lease lost, final commit failed, finished) to webhooks, one
// JSON object per event and URL.
//
// A Notifier never holds the run up: Send only appends to a bounded queue
// per URL, and one goroutine per URL delivers that queue in order, each
// request under a timeout, retrying network errors, 408, 429 and 5xx with
// backoff (honouring Retry-After up to a cap). When a queue is full the
// oldest queued event is dropped and counted: the newest events (how the run
// ended) matter most. Close gives what is still queued until its context
// ends, then drops the rest.
//
// Payloads: every URL receives the fields of Event. A Slack incoming webhook
// (hooks.slack.com, or a Discord webhook's Slack-compatible /slack endpoint)
// also gets "text", a Discord webhook (discord.com or discordapp.com
// /api/webhooks/…) "content" and "allowed_mentions" (no pings), the one
// field each of them displays. Neither rejects the other fields. See
// docs/notifications.md.
//
// Secrets: a message passes through internal/redact (the values of
// secret-named variables of Options.Environ, credentials inside URLs), and
// the webhook URLs themselves, whose path holds a token for Slack and
// Discord, are masked in messages and only ever logged as scheme and host
// (Redact). No payload carries environment variables.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonrun/baton/internal/redact"
)

// Event names, the value of Event.Event.
const (
	// RunStarted: the trainer is about to start, fresh (Seq 0) or resumed
	// from checkpoint Seq.
	RunStarted = "run_started"
	// CheckpointCommitted: checkpoint Seq is in the store. At most one per
	// Options.CommitInterval is sent (see Send).
	CheckpointCommitted = "checkpoint_committed"
	// HostGivenUp: bad GPU health or a hung trainer made baton give the
	// host up; Status is 77 or 78.
	HostGivenUp = "host_given_up"
	// LeaseLost: another host took the run over; this one stopped its
	// trainer and commits nothing more (Status 76).
	LeaseLost = "lease_lost"
	// FinalCommitFailed: what the trainer saved after checkpoint Seq is
	// only on this host's disk (Status 74).
	FinalCommitFailed = "final_commit_failed"
	// RunFinished: baton run is exiting with Status; the last event of a
	// run on a host.
	RunFinished = "run_finished"
)

// Event is one notification, posted as a JSON object with these field
// names. Every field but status is always present; status only on events
// that carry an exit status.
type Event struct {
	// Event is one of the event names above.
	Event string `json:"event"`
	// Run is the run's ID.
	Run string `json:"run"`
	// Seq is the checkpoint concerned: committed, resumed from, or the last
	// one committed; 0 for none.
	Seq int64 `json:"seq"`
	// Platform, Instance and Host say where the run is, as platform
	// detection found it (empty where the platform does not say).
	Platform string `json:"platform"`
	Instance string `json:"instance"`
	Host     string `json:"host"`
	// Time is when the event happened, in UTC; Send fills it in if zero.
	Time time.Time `json:"time"`
	// Message says what happened in a sentence; Send redacts it.
	Message string `json:"message"`
	// Status is baton run's exit status (run_finished) or the one it is
	// heading for (host_given_up, lease_lost, final_commit_failed); nil
	// (absent from the JSON) on other events.
	Status *int `json:"status,omitempty"`
}

// StatusOf returns a pointer to code, for Event.Status.
func StatusOf(code int) *int { return &code }

// titles are the events' names in words, for the text of chat webhooks.
var titles = map[string]string{
	RunStarted:          "run started",
	CheckpointCommitted: "checkpoint committed",
	HostGivenUp:         "host given up",
	LeaseLost:           "lease lost",
	FinalCommitFailed:   "final commit failed",
	RunFinished:         "run finished",
}

// Text is the event as one line for a person: what Slack and Discord
// display.
func (e Event) Text() string {
	title := titles[e.Event]
	if title == "" {
		title = e.Event
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[baton] run %s: %s", e.Run, title)
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	var where []string
	if e.Seq > 0 {
		where = append(where, "checkpoint "+strconv.FormatInt(e.Seq, 10))
	}
	if e.Status != nil {
		where = append(where, "status "+strconv.Itoa(*e.Status))
	}
	if on := strings.TrimSpace(e.Platform + " " + e.Instance); on != "" {
		where = append(where, on)
	}
	if e.Host != "" {
		where = append(where, "host "+e.Host)
	}
	if len(where) > 0 {
		b.WriteString(" (" + strings.Join(where, ", ") + ")")
	}
	return b.String()
}

// Options tune a Notifier; the zero value is fine.
type Options struct {
	// Client sends the requests; nil: one that follows no redirects (a
	// redirect counts as a failure). Tests route hosts through its
	// Transport.
	Client *http.Client
	// Timeout bounds one request, connection to last byte; 0: 10 s.
	Timeout time.Duration
	// QueueSize is how many events may wait per URL; when full, the oldest
	// is dropped. 0: 64.
	QueueSize int
	// Attempts is how many times an event is tried per URL; 0: 5.
	Attempts int
	// Backoff is the wait before the first retry, doubled before each next
	// one up to MaxBackoff, with ±20% jitter; 0: 1 s.
	Backoff time.Duration
	// MaxBackoff caps the backoff; 0: 30 s.
	MaxBackoff time.Duration
	// MaxRetryAfter caps the wait a 429's or 503's Retry-After asks for;
	// 0: 60 s.
	MaxRetryAfter time.Duration
	// CommitInterval is the least time between two checkpoint_committed
	// notifications; 0: one minute.
	CommitInterval time.Duration
	// Now is the clock of the rate limit and of events' Time; nil:
	// time.Now.
	Now func() time.Time
	// Environ are NAME=value pairs whose secret-named values (KEY, SECRET,
	// TOKEN, PASSWORD, CREDENTIAL) are masked in messages: the process
	// environment.
	Environ []string
	// UserAgent is the requests' User-Agent; "" : "baton".
	UserAgent string
	// Logger receives delivery problems, with URLs as Redact writes them;
	// nil: nothing is logged.
	Logger *slog.Logger
}

// Stats counts what happened to the events of a Notifier, over all URLs
// (an event sent to two URLs counts twice).
type Stats struct {
	// Sent: a 2xx answer.
	Sent int64
	// Failed: refused (a 4xx other than 408 and 429, a redirect) or still
	// failing after every attempt.
	Failed int64
	// Dropped: pushed out of a full queue, sent after Close, or not yet
	// delivered when Close's context ended.
	Dropped int64
	// Coalesced: checkpoint_committed events not sent because one went out
	// less than CommitInterval before (counted once, not per URL).
	Coalesced int64
}

// Notifier posts events to its URLs. Its methods may be called from any
// goroutine, and on a nil *Notifier (they do nothing).
type Notifier struct {
	opts   Options
	client *http.Client
	log    *slog.Logger
	dests  []*dest
	wg     sync.WaitGroup
	ctx    context.Context // ends the deliveries when Close's context ends
	cancel context.CancelFunc

	// after is the timer of retry waits; tests record the waits through it.
	after func(time.Duration) <-chan time.Time

	mu         sync.Mutex
	closed     bool
	lastCommit time.Time // when the last checkpoint_committed went out
	skipped    int       // checkpoint_committed held back since then
	coalesced  atomic.Int64
}

// dest is one URL and its queue.
type dest struct {
	raw   string
	url   *url.URL
	label string // Redact(raw): all that is ever logged of the URL
	shape shape

	mu      sync.Mutex
	queue   []Event
	closing bool
	warned  bool          // the queue's overflow has been logged
	wake    chan struct{} // capacity 1: the queue may have grown, or closing

	sent, failed, dropped atomic.Int64
}

// New returns a Notifier of urls and starts one goroutine per URL; a URL
// that CheckURL rejects is logged (by its host) and left out. Close ends
// the goroutines.
func New(urls []string, opts Options) *Notifier {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 64
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = time.Minute
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "baton"
	}
	n := &Notifier{opts: opts, client: opts.Client, log: opts.Logger, after: time.After}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.client == nil {
		n.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, raw := range urls {
		raw = strings.TrimSpace(raw)
		if err := CheckURL(raw); err != nil {
			n.log.Warn("notify URL left out", "url", Redact(raw), "err", err)
			continue
		}
		u, _ := url.Parse(raw)
		d := &dest{raw: raw, url: u, label: Redact(raw), shape: shapeOf(u), wake: make(chan struct{}, 1)}
		n.dests = append(n.dests, d)
	}
	for _, d := range n.dests {
		n.wg.Add(1)
		go n.deliverAll(d)
	}
	return n
}

// Send queues ev for every URL and returns at once. It fills in a zero
// Time, and masks secrets in the message. checkpoint_committed is sent at
// most once per CommitInterval: the first always goes, one less than the
// interval after the last one sent is dropped (counted in
// Stats.Coalesced), and the next one that goes says how many were held back
// since. run_finished carries the last committed checkpoint anyway. Events
// sent after Close are dropped.
func (n *Notifier) Send(ev Event) {
	if n == nil || len(n.dests) == 0 {
		return
	}
	now := n.opts.Now()
	if ev.Time.IsZero() {
		ev.Time = now
	}
	ev.Time = ev.Time.UTC()
	n.mu.Lock()
	if ev.Event == CheckpointCommitted {
		if !n.lastCommit.IsZero() && now.Sub(n.lastCommit) < n.opts.CommitInterval {
			n.skipped++
			n.mu.Unlock()
			n.coalesced.Add(1)
			return
		}
		if n.skipped > 0 {
			ev.Message += fmt.Sprintf(" (%d more commit(s) since the last notice)", n.skipped)
		}
		n.lastCommit, n.skipped = now, 0
	}
	n.mu.Unlock()
	ev.Message = n.scrub(ev.Message)
	for _, d := range n.dests {
		n.push(d, ev)
	}
}

// scrub masks secrets in s: secret-named variables' values, credentials
// inside URLs, and the webhook URLs themselves (the whole URL, its path
// and its query, which hold the tokens).
func (n *Notifier) scrub(s string) string {
	for _, d := range n.dests {
		s = strings.ReplaceAll(s, d.raw, d.label)
		for _, secret := range []string{d.url.EscapedPath(), d.url.Path, d.url.RawQuery, d.url.User.String()} {
			if len(secret) >= 6 {
				s = strings.ReplaceAll(s, secret, redact.Mask)
			}
		}
	}
	return redact.Environ(s, n.opts.Environ)
}

// push appends ev to d's queue, dropping the oldest event if it is full.
func (n *Notifier) push(d *dest, ev Event) {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		d.dropped.Add(1)
		return
	}
	overflow := len(d.queue) >= n.opts.QueueSize
	if overflow {
		d.queue = d.queue[1:]
		d.dropped.Add(1)
	}
	d.queue = append(d.queue, ev)
	warn := overflow && !d.warned
	if warn {
		d.warned = true
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	if warn {
		n.log.Warn("notifications pile up: the webhook does not keep up; dropping the oldest", "url", d.label, "queue", n.opts.QueueSize)
	}
}

// take returns the next event of d's queue, waiting for one; false once
// the queue is empty and closing, or the notifier is cancelled.
func (n *Notifier) take(d *dest) (Event, bool) {
	for {
		d.mu.Lock()
		if len(d.queue) > 0 {
			ev := d.queue[0]
			d.queue = d.queue[1:]
			d.mu.Unlock()
			return ev, true
		}
		closing := d.closing
		d.mu.Unlock()
		if closing {
			return Event{}, false
		}
		select {
		case <-d.wake:
		case <-n.ctx.Done():
			return Event{}, false
		}
	}
}

// deliverAll delivers d's queue in order until Close.
func (n *Notifier) deliverAll(d *dest) {
	defer n.wg.Done()
	for {
		ev, ok := n.take(d)
		if !ok {
			return
		}
		n.deliver(d, ev)
	}
}

// deliver posts ev to d, retrying what may pass.
func (n *Notifier) deliver(d *dest, ev Event) {
	body, err := payload(d.shape, ev)
	if err != nil { // an Event always marshals; never retried
		d.failed.Add(1)
		n.log.Warn("notification not sent", "event", ev.Event, "url", d.label, "err", err)
		return
	}
	backoff := n.opts.Backoff
	for attempt := 1; ; attempt++ {
		retry, retryAfter, err := n.post(d, body)
		if err == nil {
			d.sent.Add(1)
			return
		}
		if n.ctx.Err() != nil { // Close ran out of time
			d.dropped.Add(1)
			return
		}
		if !retry || attempt >= n.opts.Attempts {
			d.failed.Add(1)
			n.log.Warn("notification not delivered", "event", ev.Event, "url", d.label, "attempts", attempt, "err", err)
			return
		}
		wait := jitter(backoff)
		if retryAfter > 0 {
			wait = min(retryAfter, n.opts.MaxRetryAfter)
		}
		backoff = min(2*backoff, n.opts.MaxBackoff)
		n.log.Debug("notification failed; trying again", "event", ev.Event, "url", d.label, "attempt", attempt, "in_s", wait.Seconds(), "err", err)
		select {
		case <-n.ctx.Done():
			d.dropped.Add(1)
			return
		case <-n.after(wait):
		}
	}
}

// jitter spreads d by ±20%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// post makes one attempt. It reports whether a failure may pass (a
// network error, a timeout, 408, 429, 5xx) and the wait a Retry-After asked
// for. Its errors never hold the URL.
func (n *Notifier) post(d *dest, body []byte) (retry bool, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.raw, bytes.NewReader(body))
	if err != nil {
		return false, 0, errors.New("cannot make a request of the URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", n.opts.UserAgent)
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error // its text holds the URL, token and all
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, 0, fmt.Errorf("POST %s: %w", d.label, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return false, 0, nil
	}
	err = fmt.Errorf("POST %s: HTTP %d %s", d.label, code, n.scrub(strings.TrimSpace(string(snippet))))
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return true, parseRetryAfter(resp.Header.Get("Retry-After"), n.opts.Now()), err
	case code >= 300 && code < 400:
		return false, 0, fmt.Errorf("%w: redirected; give the URL it redirects to", err)
	}
	return false, 0, err
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date
// (RFC 9110, 10.2.3). It returns 0 for none or a past date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.ParseInt(h, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Close stops taking events and delivers what is queued until ctx ends;
// then it abandons the requests in flight, drops the rest (counted in
// Stats.Dropped) and logs what was not delivered. It returns once every
// goroutine of the Notifier has ended.
func (n *Notifier) Close(ctx context.Context) {
	if n == nil {
		return
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	n.mu.Unlock()
	for _, d := range n.dests {
		d.mu.Lock()
		d.closing = true
		d.mu.Unlock()
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.cancel()
		<-done
	}
	n.cancel()
	for _, d := range n.dests {
		d.mu.Lock()
		d.dropped.Add(int64(len(d.queue)))
		d.queue = nil
		d.mu.Unlock()
	}
	if st := n.Stats(); st.Dropped > 0 || st.Failed > 0 {
		n.log.Warn("some notifications were not delivered", "sent", st.Sent, "failed", st.Failed, "dropped", st.Dropped)
	}
}

// Stats returns the counts so far.
func (n *Notifier) Stats() Stats {
	if n == nil {
		return Stats{}
	}
	st := Stats{Coalesced: n.coalesced.Load()}
	for _, d := range n.dests {
		st.Sent += d.sent.Load()
		st.Failed += d.failed.Load()
		st.Dropped += d.dropped.Load()
	}
	return st
}

// CheckURL reports what is wrong with a notify URL: it must be an absolute
// http or https URL with a host. Its error never repeats the URL, whose
// path or query may hold a token.
func CheckURL(raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return errors.New("not a URL") // url's error repeats the URL
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want an http:// or https:// URL")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return errors.New("no host: want http(s)://HOST/PATH")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("want a port of 1 to 65535")
		}
	}
	return nil
}

// Redact writes a notify URL the way it may be logged: its scheme and host
// (with port), "/..." where a path or query followed; never user
// information, path or query, which hold Slack's and Discord's tokens.
func Redact(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return redact.Mask
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		s += "/..."
	}
	return s
}
