package metrics

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:9400", "", true},
		{"127.3.4.5:9400", "", true},
		{"[::1]:9400", "", true},
		{"localhost:9400", "", true},
		{"LocalHost:9400", "", true},
		{"0.0.0.0:9400", "", false},
		{":9400", "", false},
		{"[::]:9400", "", false},
		{"10.0.0.7:9400", "", false},
		{"metrics.example.com:9400", "", false},
		{"0.0.0.0:9400", "s3cret", true},
		{":9400", "s3cret", true},
		{"9400", "", false},
		{"9400", "s3cret", false},
	}
	for _, tt := range tests {
		err := CheckAddr(tt.addr, tt.token)
		if (err == nil) != tt.ok {
			t.Errorf("CheckAddr(%q, token %v) = %v, want ok %v", tt.addr, tt.token != "", err, tt.ok)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "--metrics-addr") {
				t.Errorf("CheckAddr(%q): %q does not name the setting", tt.addr, err)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("CheckAddr(%q): %q prints the token", tt.addr, err)
			}
		}
	}
}

// TestAuth: with a token every path needs it; without one, the endpoint is
// open (it listens on loopback only).
func TestAuth(t *testing.T) {
	t.Parallel()
	const token = "tok-0123456789abcdef"
	m := New()
	tests := []struct {
		name   string
		token  string // the server's
		method string
		path   string
		auth   string // the Authorization header sent
		status int
	}{
		{"no token configured", "", "GET", "/metrics", "", 200},
		{"no token configured, health", "", "GET", "/healthz", "", 200},
		{"right token", token, "GET", "/metrics", "Bearer " + token, 200},
		{"scheme is case-insensitive", token, "GET", "/metrics", "bearer " + token, 200},
		{"right token, health", token, "GET", "/healthz", "Bearer " + token, 200},
		{"right token, HEAD", token, "HEAD", "/metrics", "Bearer " + token, 200},
		{"no header", token, "GET", "/metrics", "", 401},
		{"health needs it too", token, "GET", "/healthz", "", 401},
		{"wrong token", token, "GET", "/metrics", "Bearer nope", 401},
		{"token as a prefix", token, "GET", "/metrics", "Bearer " + token[:10], 401},
		{"token with more", token, "GET", "/metrics", "Bearer " + token + "x", 401},
		{"bare token", token, "GET", "/metrics", token, 401},
		{"basic scheme", token, "GET", "/metrics", "Basic " + token, 401},
		{"unknown path gets 401 first", token, "GET", "/debug/pprof/", "", 401},
		{"unknown path", token, "GET", "/nope", "Bearer " + token, 404},
		{"POST", token, "POST", "/metrics", "Bearer " + token, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			m.Handler(tt.token, nil).ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %v", rec.Header())
			}
			if strings.Contains(rec.Body.String(), token) {
				t.Errorf("the response shows the token: %s", rec.Body)
			}
			if tt.status == 200 && tt.method == "GET" && tt.path == "/metrics" && !strings.Contains(rec.Body.String(), "baton_commits_total") {
				t.Errorf("no baton series in %s", rec.Body)
			}
		})
	}
}

// TestListenRefusesPublicWithoutToken: the server never binds a public
// address without a token.
func TestListenRefusesPublicWithoutToken(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		s, err := New().Listen(addr, "", nil)
		if err == nil {
			s.ln.Close()
			t.Fatalf("Listen(%q) with no token bound %v", addr, s.Addr())
		}
		if !strings.Contains(err.Error(), "--metrics-addr") || !strings.Contains(err.Error(), "--metrics-token") {
			t.Errorf("Listen(%q): %q names neither setting", addr, err)
		}
	}
	err := New().Serve(t.Context(), "0.0.0.0:0", "", nil)
	if err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Errorf("Serve on 0.0.0.0 with no token: %v", err)
	}
}

// TestServeAndShutdown scrapes a real listener with a token, then cancels
// the context: Serve returns nil and the port no longer answers. The token
// appears in no log line.
func TestServeAndShutdown(t *testing.T) {
	t.Parallel()
	const token = "tok-SECRET-42"
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := New()
	m.CommitDone(0, 100, 0, ResultOK)
	s, err := m.Listen("127.0.0.1:0", token, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()

	url := "http://" + s.Addr().String() + "/metrics"
	get := func(auth string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("Bearer wrong"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	code, body := get("Bearer " + token)
	if code != 200 || !strings.Contains(body, "baton_commit_bytes_uploaded_total 100") || !strings.Contains(body, "baton_checkpoint_age_seconds") {
		t.Fatalf("scrape: %d\n%s", code, body)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
		c.Close()
		t.Error("the port still accepts connections after shutdown")
	}
	if !strings.Contains(logs.String(), `msg="metrics endpoint" url=http://`+s.Addr().String()+"/metrics token_required=true") {
		t.Errorf("no start line in the log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the log shows the token:\n%s", logs.String())
	}
}
