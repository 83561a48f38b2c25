package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// hook is a test webhook server that records every request it answers.
type hook struct {
	srv *httptest.Server

	mu     sync.Mutex
	bodies [][]byte
	paths  []string
	// answer returns the status of the n-th request (from 1) and may set
	// headers, write to body or block; nil: 200.
	answer func(n int, w http.ResponseWriter, r *http.Request, body io.Writer) int
}

func newHook(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request, body io.Writer) int) *hook {
	t.Helper()
	h := &hook{answer: answer}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, body)
		h.paths = append(h.paths, r.URL.RequestURI())
		n := len(h.bodies)
		h.mu.Unlock()
		code := http.StatusOK
		var out bytes.Buffer
		if h.answer != nil {
			code = h.answer(n, w, r, &out)
		}
		w.WriteHeader(code)
		w.Write(out.Bytes())
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// received returns the bodies received so far, decoded.
func (h *hook) received(t *testing.T) []map[string]any {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, b := range h.bodies {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("body %q is not a JSON object: %v", b, err)
		}
		out = append(out, m)
	}
	return out
}

func (h *hook) raw() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return string(bytes.Join(h.bodies, []byte("\n")))
}

// routed returns a client that sends every request, whatever its host, to
// the test server: hooks.slack.com and discord.com without the network.
func routed(h *hook) *http.Client {
	addr := h.srv.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

// flush closes n with all the time it needs: every queued event is
// delivered or given up.
func flush(n *Notifier) { n.Close(context.Background()) }

func sample(event string) Event {
	return Event{Event: event, Run: "llama-ft", Seq: 12, Platform: "runpod", Instance: "pod-abc", Host: "server-7",
		Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Message: "checkpoint 12 committed (interval)"}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestShapes: the fields of every payload, and the text field each chat
// webhook's host gets.
func TestShapes(t *testing.T) {
	t.Parallel()
	base := []string{"event", "host", "instance", "message", "platform", "run", "seq", "time"}
	cases := []struct {
		name, url string
		shape     shape
		extra     []string // keys beyond base
	}{
		{"plain", "http://hooks.example.com/baton", shapeJSON, nil},
		{"slack", "http://hooks.slack.com/services/T000/B000/XXXXXXXX", shapeSlack, []string{"text"}},
		{"slack upper case", "http://HOOKS.SLACK.COM/services/T000/B000/XXXXXXXX", shapeSlack, []string{"text"}},
		{"discord", "http://discord.com/api/webhooks/123/tok-en", shapeDiscord, []string{"allowed_mentions", "content"}},
		{"discord versioned", "http://discord.com/api/v10/webhooks/123/tok-en", shapeDiscord, []string{"allowed_mentions", "content"}},
		{"discordapp", "http://discordapp.com/api/webhooks/123/tok-en", shapeDiscord, []string{"allowed_mentions", "content"}},
		{"discord slack-compatible", "http://discord.com/api/webhooks/123/tok-en/slack", shapeSlack, []string{"text"}},
		{"discord not a webhook", "http://discord.com/invite/x", shapeJSON, nil},
		{"slack in the path only", "http://evil.example/hooks.slack.com/services/x", shapeJSON, nil},
		{"slack lookalike host", "http://hooks.slack.com.evil.example/services/x", shapeJSON, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, err := url.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := shapeOf(u); got != c.shape {
				t.Fatalf("shapeOf(%s) = %s, want %s", c.url, got, c.shape)
			}
			h := newHook(t, nil)
			n := New([]string{c.url}, Options{Client: routed(h)})
			ev := sample(RunFinished)
			ev.Status = StatusOf(0)
			ev.Message = "done <@everyone> & more"
			n.Send(ev)
			flush(n)
			got := h.received(t)
			if len(got) != 1 {
				t.Fatalf("%d requests, want 1", len(got))
			}
			want := append(append([]string{"status"}, base...), c.extra...)
			slices.Sort(want)
			if k := keys(got[0]); !slices.Equal(k, want) {
				t.Fatalf("keys %v, want %v", k, want)
			}
			m := got[0]
			if m["event"] != "run_finished" || m["run"] != "llama-ft" || m["seq"] != 12.0 || m["platform"] != "runpod" ||
				m["instance"] != "pod-abc" || m["host"] != "server-7" || m["time"] != "2026-12-01T10:00:00Z" || m["status"] != 0.0 {
				t.Fatalf("fields: %v", m)
			}
			switch c.shape {
			case shapeSlack:
				if text := m["text"].(string); !strings.Contains(text, "run llama-ft: run finished: done &lt;@everyone&gt; &amp; more") {
					t.Fatalf("slack text %q", text)
				}
			case shapeDiscord:
				if content := m["content"].(string); !strings.Contains(content, "run finished: done <@everyone> & more") {
					t.Fatalf("discord content %q", content)
				}
				if am, _ := json.Marshal(m["allowed_mentions"]); string(am) != `{"parse":[]}` {
					t.Fatalf("allowed_mentions %s", am)
				}
			}
		})
	}
}

// TestStatusAbsent: an event without a status has no status field.
func TestStatusAbsent(t *testing.T) {
	t.Parallel()
	h := newHook(t, nil)
	n := New([]string{h.srv.URL}, Options{})
	n.Send(sample(RunStarted))
	flush(n)
	if got := h.received(t); len(got) != 1 || got[0]["status"] != nil {
		t.Fatalf("received %v", got)
	}
}

// TestDiscordContentLimit: Discord's content stays within 2000 characters.
func TestDiscordContentLimit(t *testing.T) {
	t.Parallel()
	ev := sample(RunFinished)
	ev.Message = strings.Repeat("é", 3000)
	b, err := payload(shapeDiscord, ev)
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Content string }
	json.Unmarshal(b, &m)
	if n := len([]rune(m.Content)); n != discordMaxContent {
		t.Fatalf("content of %d characters", n)
	}
}

// waits records the retry waits a Notifier asks for, and lets them pass at
// once.
type waits struct {
	mu  sync.Mutex
	got []time.Duration
}

func (w *waits) after(d time.Duration) <-chan time.Time {
	w.mu.Lock()
	w.got = append(w.got, d)
	w.mu.Unlock()
	c := make(chan time.Time, 1)
	c <- time.Time{}
	return c
}

func (w *waits) list() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}

// TestRetries: what is retried (5xx, 429, 408, network errors), with which
// waits, and what is not (other 4xx, a redirect).
func TestRetries(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		answers  []int  // the statuses of the attempts; 200 after the list
		retryAft string // the Retry-After of a non-2xx answer
		sent     int64
		failed   int64
		attempts int
		waits    []time.Duration // exact; nil: backoff with jitter
	}{
		{name: "500 then ok", answers: []int{500, 500}, sent: 1, attempts: 3},
		{name: "503 with Retry-After", answers: []int{503}, retryAft: "7", sent: 1, attempts: 2, waits: []time.Duration{7 * time.Second}},
		{name: "429 with Retry-After", answers: []int{429, 429}, retryAft: "2", sent: 1, attempts: 3, waits: []time.Duration{2 * time.Second, 2 * time.Second}},
		{name: "429 asks too long: capped", answers: []int{429}, retryAft: "3600", sent: 1, attempts: 2, waits: []time.Duration{time.Minute}},
		{name: "408", answers: []int{408}, sent: 1, attempts: 2},
		{name: "500 every time", answers: []int{500, 500, 500, 500, 500, 500}, failed: 1, attempts: 5},
		{name: "400 not retried", answers: []int{400}, failed: 1, attempts: 1},
		{name: "404 not retried", answers: []int{404}, failed: 1, attempts: 1},
		{name: "redirect not followed", answers: []int{302}, failed: 1, attempts: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request, body io.Writer) int {
				if n <= len(c.answers) {
					if c.retryAft != "" {
						w.Header().Set("Retry-After", c.retryAft)
					}
					if c.answers[n-1] == 302 {
						w.Header().Set("Location", "/elsewhere")
					}
					return c.answers[n-1]
				}
				return 200
			})
			w := &waits{}
			n := New([]string{h.srv.URL + "/hook"}, Options{Backoff: time.Second})
			n.after = w.after
			n.Send(sample(RunStarted))
			flush(n)
			st := n.Stats()
			if st.Sent != c.sent || st.Failed != c.failed || st.Dropped != 0 {
				t.Fatalf("stats %+v, want sent %d failed %d", st, c.sent, c.failed)
			}
			if got := len(h.received(t)); got != c.attempts {
				t.Fatalf("%d attempts, want %d", got, c.attempts)
			}
			got := w.list()
			if len(got) != c.attempts-1 {
				t.Fatalf("waits %v for %d attempts", got, c.attempts)
			}
			if c.waits != nil && !slices.Equal(got, c.waits) {
				t.Fatalf("waits %v, want %v", got, c.waits)
			}
			if c.waits == nil { // backoff: 1 s, 2 s, 4 s… ±20%
				for i, d := range got {
					base := time.Second << i
					if d < base*8/10 || d > base*12/10 {
						t.Fatalf("wait %d is %s, want %s ±20%%", i, d, base)
					}
				}
			}
		})
	}
}

// TestNetworkErrorRetried: a connection that fails is tried again until
// the attempts run out.
func TestNetworkErrorRetried(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	dials := 0
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		return nil, errors.New("connection refused (test)")
	}}}
	n := New([]string{"http://hooks.example.com/x"}, Options{Client: client, Attempts: 3})
	n.after = (&waits{}).after
	n.Send(sample(RunStarted))
	flush(n)
	if st := n.Stats(); st.Failed != 1 || dials != 3 {
		t.Fatalf("stats %+v after %d dials, want 1 failed after 3", st, dials)
	}
}

// TestParseRetryAfter: seconds and HTTP dates.
func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Tue, 01 Dec 2026 10:00:30 GMT": 30 * time.Second,
		"Tue, 01 Dec 2026 09:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(h, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", h, got, want)
		}
	}
}

// TestTimeout: a request the server never answers is abandoned after the
// timeout and tried again.
func TestTimeout(t *testing.T) {
	t.Parallel()
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request, body io.Writer) int {
		if n == 1 {
			<-r.Context().Done() // hangs until the client gives up
		}
		return 200
	})
	n := New([]string{h.srv.URL}, Options{Timeout: 50 * time.Millisecond})
	n.after = (&waits{}).after
	n.Send(sample(RunStarted))
	flush(n)
	if st := n.Stats(); st.Sent != 1 || len(h.received(t)) != 2 {
		t.Fatalf("stats %+v after %d requests, want sent on the second", st, len(h.received(t)))
	}
}

// TestCommitRateLimit: checkpoint_committed at most once a minute by the
// injected clock; other events are never held back.
func TestCommitRateLimit(t *testing.T) {
	t.Parallel()
	h := newHook(t, nil)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var now time.Time
	n := New([]string{h.srv.URL}, Options{Now: func() time.Time { return now }})
	for _, step := range []struct {
		at    time.Duration
		event string
		seq   int64
	}{
		{0, CheckpointCommitted, 1}, // the first always goes
		{30 * time.Second, CheckpointCommitted, 2},
		{59 * time.Second, CheckpointCommitted, 3},
		{59 * time.Second, LeaseLost, 3}, // not rate-limited
		{60 * time.Second, CheckpointCommitted, 4},
		{61 * time.Second, CheckpointCommitted, 5},
		{62 * time.Second, RunFinished, 5},
	} {
		now = t0.Add(step.at)
		ev := sample(step.event)
		ev.Seq, ev.Time, ev.Message = step.seq, time.Time{}, "m"
		n.Send(ev)
	}
	flush(n)
	var got []string
	for _, m := range h.received(t) {
		got = append(got, m["event"].(string)+"/"+m["time"].(string)+"/"+m["message"].(string))
	}
	want := []string{
		"checkpoint_committed/2026-12-01T10:00:00Z/m",
		"lease_lost/2026-12-01T10:00:59Z/m",
		"checkpoint_committed/2026-12-01T10:01:00Z/m (2 more commit(s) since the last notice)",
		"run_finished/2026-12-01T10:01:02Z/m",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("received\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st := n.Stats(); st.Coalesced != 3 || st.Sent != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSendNeverBlocks: with a server that never answers, Send returns at
// once every time; the queue keeps the newest events, and Close with no
// time left drops them all, counted.
func TestSendNeverBlocks(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request, body io.Writer) int {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return 200
	})
	defer close(release) // before the server's Close (cleanup) waits for the handler
	const queue, events = 4, 100
	n := New([]string{h.srv.URL}, Options{QueueSize: queue, Timeout: time.Hour})
	for i := 1; i <= events; i++ {
		ev := sample(LeaseLost)
		ev.Seq = int64(i)
		n.Send(ev) // would hang the test if it waited for the server
	}
	d := n.dests[0]
	d.mu.Lock()
	var seqs []int64
	for _, ev := range d.queue {
		seqs = append(seqs, ev.Seq)
	}
	d.mu.Unlock()
	if !slices.Equal(seqs, []int64{97, 98, 99, 100}) {
		t.Fatalf("queue holds %v, want the newest %d", seqs, queue)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time left
	n.Close(ctx)
	if st := n.Stats(); st.Dropped != events || st.Sent != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v, want all %d dropped", st, events)
	}
	n.Send(sample(RunFinished)) // after Close: dropped, no panic
	if st := n.Stats(); st.Dropped != events+1 {
		t.Fatalf("stats %+v after a Send after Close", st)
	}
}

// TestNoSecrets: a secret variable's value, credentials in a URL and the
// webhook URL's token never reach a payload or the log, whatever the
// server answers.
func TestNoSecrets(t *testing.T) {
	t.Parallel()
	const awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	const token = "T0KEN-b1a2c3d4e5f6"
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request, body io.Writer) int {
		if n == 1 {
			io.WriteString(body, "bad hook "+r.URL.RequestURI()) // a server that echoes the URL
			return 500
		}
		return 400
	})
	hookURL := h.srv.URL + "/hooks/" + token + "?sig=" + token + "x"
	// A second URL that never connects, with its token in the path.
	deadURL := "http://user:pa55w0rd-x@hooks.slack.com/services/T1/B1/" + token + "dead"
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := New([]string{hookURL, deadURL}, Options{
		Environ: []string{"AWS_SECRET_ACCESS_KEY=" + awsSecret, "HOME=/root"},
		Logger:  logger, Attempts: 2,
		Client: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if strings.HasPrefix(addr, "hooks.slack.com") {
				return nil, errors.New("no route (test)")
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}},
	})
	n.after = (&waits{}).after
	ev := sample(FinalCommitFailed)
	ev.Message = "store said: secret " + awsSecret + " at https://AKIA:" + awsSecret + "@s3.example.com/b; posting to " + hookURL + " and " + deadURL
	n.Send(ev)
	flush(n)
	if len(h.received(t)) != 2 {
		t.Fatalf("%d requests, want 2", len(h.received(t)))
	}
	for where, text := range map[string]string{"payload": h.raw(), "log": logs.String()} {
		for _, secret := range []string{awsSecret, token, "pa55w0rd-x"} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s holds %q:\n%s", where, secret, text)
			}
		}
	}
	if !strings.Contains(h.raw(), "[REDACTED]") {
		t.Errorf("nothing was masked in the payload: %s", h.raw())
	}
	for _, want := range []string{h.srv.URL + "/...", "http://hooks.slack.com/...", "HTTP 500", "HTTP 400"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}
	for _, m := range h.received(t) {
		if k := keys(m); !slices.Equal(k, []string{"event", "host", "instance", "message", "platform", "run", "seq", "time"}) {
			t.Errorf("payload keys %v", k)
		}
	}
}

// TestCheckURLAndRedact: what a notify URL may be, and how it is logged.
func TestCheckURLAndRedact(t *testing.T) {
	t.Parallel()
	cases := []struct {
		url, problem, logged string
	}{
		{"https://hooks.slack.com/services/T/B/secret", "", "https://hooks.slack.com/..."},
		{"http://127.0.0.1:8080", "", "http://127.0.0.1:8080"},
		{"http://127.0.0.1:8080/", "", "http://127.0.0.1:8080"},
		{"https://u:p@example.com/x?token=1", "", "https://example.com/..."},
		{"https://example.com?token=1", "", "https://example.com/..."},
		{"ftp://example.com/x", "want an http:// or https:// URL", "ftp://example.com/..."},
		{"example.com/hook", "want an http:// or https:// URL", "[REDACTED]"},
		{"https:///path/secret", "no host: want http(s)://HOST/PATH", "[REDACTED]"},
		{"http:opaque-secret", "no host: want http(s)://HOST/PATH", "[REDACTED]"},
		{"http://example.com:99999/x", "want a port of 1 to 65535", "http://example.com:99999/..."},
		{"http://exa mple.com/secret", "not a URL", "[REDACTED]"},
	}
	for _, c := range cases {
		err := CheckURL(c.url)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.problem {
			t.Errorf("CheckURL(%q) = %q, want %q", c.url, got, c.problem)
		}
		if strings.Contains(got, "secret") {
			t.Errorf("CheckURL(%q) repeats the URL: %q", c.url, got)
		}
		if r := Redact(c.url); r != c.logged {
			t.Errorf("Redact(%q) = %q, want %q", c.url, r, c.logged)
		}
	}
}

// TestNilAndEmpty: a nil Notifier and one without URLs do nothing.
func TestNilAndEmpty(t *testing.T) {
	t.Parallel()
	var nilN *Notifier
	nilN.Send(sample(RunStarted))
	nilN.Close(context.Background())
	n := New(nil, Options{})
	n.Send(sample(RunStarted))
	n.Close(context.Background())
	if st := n.Stats(); st != (Stats{}) {
		t.Fatalf("stats %+v", st)
	}
}
