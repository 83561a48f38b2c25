package s3aws_test

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/s3config"
)

// recordHandler keeps every slog record it is handed, at every level.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// TestSDKWarningsGoToSlogAtDebug answers a DeleteObject with 200 OK and a body
// cut short (the connection closes before its Content-Length): the Delete
// fails, and the SDK warns "failed to discard remaining HTTP response body",
// as it does on its own even on successful requests against some servers.
// The warning must reach slog at Debug, not stderr. It swaps os.Stderr and the
// default slog logger, so it does not run in parallel.
func TestSDKWarningsGoToSlogAtDebug(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				if req.Body != nil {
					_, _ = bufio.NewReader(req.Body).WriteTo(discard{})
				}
				conn.Write([]byte("HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 100\r\nConnection: close\r\n\r\nshort"))
			}()
		}
	}()

	h, printed := capture(t)

	s, err := s3aws.New(t.Context(), s3config.Config{
		Bucket: "b", Endpoint: "http://" + ln.Addr().String(), Region: "us-east-1",
		AccessKey: "AKIDEXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), "k"); err == nil {
		t.Fatal("a delete answered with a body cut short succeeded")
	}
	if out := printed(); out != "" {
		t.Errorf("the SDK printed on stderr:\n%s", out)
	}
	h.atDebug(t, "failed to discard remaining HTTP response body")
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if strings.Contains(r.Message, "wJalrXUtnFEMI") {
			t.Errorf("a log record holds the secret key: %s", r.Message)
		}
	}
}

// capture swaps os.Stderr for a file and slog's default logger for a
// recordHandler until the test ends; printed puts os.Stderr back and
// returns what was written to it.
func capture(t *testing.T) (h *recordHandler, printed func() string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	saved := os.Stderr
	os.Stderr = f
	t.Cleanup(func() { os.Stderr = saved })
	h = &recordHandler{}
	savedLog := slog.Default()
	slog.SetDefault(slog.New(h))
	t.Cleanup(func() { slog.SetDefault(savedLog) })
	return h, func() string {
		os.Stderr = saved
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

// atDebug fails unless some record holds msg, and every such record is at
// Debug.
func (h *recordHandler) atDebug(t *testing.T, msg string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var found bool
	for _, r := range h.records {
		if strings.Contains(r.Message, msg) {
			found = true
			if r.Level != slog.LevelDebug {
				t.Errorf("the SDK's %q was logged at %v, want DEBUG", msg, r.Level)
			}
		}
	}
	if !found {
		t.Errorf("no slog record of the SDK's %q; records: %d", msg, len(h.records))
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
