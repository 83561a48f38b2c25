package faultproxy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/batonrun/baton/internal/faultproxy"
)

const bigSize = 1 << 20

// body is bigSize bytes that differ from one offset to the next.
func body() []byte {
	b := make([]byte, bigSize)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// server serves /big (bigSize bytes), /upload (reads a body, answers its
// length) and /stream (64 KiB, then waits for the test to end).
func server(t *testing.T) *httptest.Server {
	big := body()
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		w.Write(big)
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		w.Write(big[:64<<10])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv
}

// client returns an HTTP client with its own connection pool.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// fetch GETs url and reads the whole body.
func fetch(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// fetchWhole GETs /big through p n times; each must return the whole body.
// when says in which state of p, for the failure.
func fetchWhole(t *testing.T, c *http.Client, p *faultproxy.Proxy, n int, when string) {
	t.Helper()
	for range n {
		got, err := fetch(c, p.URL()+"/big")
		if err != nil || !bytes.Equal(got, body()) {
			t.Fatalf("%s: %d bytes, %v", when, len(got), err)
		}
	}
}

func target(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

func TestPassThrough(t *testing.T) {
	srv := server(t)
	p := faultproxy.Start(t, target(srv), faultproxy.Options{})
	if p.URL() != "http://"+p.Addr() || !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr() = %q, URL() = %q", p.Addr(), p.URL())
	}
	fetchWhole(t, client(t), p, 3, "get")
	if p.Cuts() != 0 || p.Conns() < 1 {
		t.Fatalf("Cuts() = %d, Conns() = %d", p.Cuts(), p.Conns())
	}
}

// partials fetches /big through a fresh proxy with the given options, cuts
// times, and returns the number of body bytes each cut read let through.
func partials(t *testing.T, srv *httptest.Server, opts faultproxy.Options, cuts int) []int {
	p := faultproxy.Start(t, target(srv), opts)
	c := client(t)
	var got []int
	for i := range cuts {
		b, err := fetch(c, p.URL()+"/big")
		if err == nil {
			t.Fatalf("read %d: got the whole body, want a cut", i+1)
		}
		if p.Cuts() != i+1 {
			t.Fatalf("after %d cut reads, Cuts() = %d", i+1, p.Cuts())
		}
		got = append(got, len(b))
	}
	return got
}

func TestCutsThenPass(t *testing.T) {
	srv := server(t)
	const n = 256 << 10
	opts := faultproxy.Options{CutAfterBytes: n, Cuts: 2, Seed: 1}
	p := faultproxy.Start(t, target(srv), opts)
	c := client(t)

	var offsets []int
	for i := range 2 {
		got, err := fetch(c, p.URL()+"/big")
		if err == nil {
			t.Fatalf("read %d: got the whole body, want a cut", i+1)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read %d failed with %v, want io.ErrUnexpectedEOF", i+1, err)
		}
		// The proxy lets through [n/2, n] bytes, headers included.
		if len(got) > n || len(got) < n/2-1024 || !bytes.Equal(got, body()[:len(got)]) {
			t.Fatalf("read %d: got %d bytes before the cut, want a prefix of about [%d, %d]", i+1, len(got), n/2, n)
		}
		if p.Cuts() != i+1 {
			t.Fatalf("after %d cut reads, Cuts() = %d", i+1, p.Cuts())
		}
		offsets = append(offsets, len(got))
	}
	if offsets[0] == offsets[1] {
		t.Errorf("both cuts at %d bytes; want varied offsets", offsets[0])
	}

	// The budget is spent: everything passes.
	fetchWhole(t, c, p, 3, "after the cuts")
	if p.Cuts() != 2 || p.Conns() < 3 {
		t.Fatalf("Cuts() = %d, Conns() = %d; want 2, >= 3", p.Cuts(), p.Conns())
	}

	// The same seed cuts at the same offsets.
	if again := partials(t, srv, opts, 2); again[0] != offsets[0] || again[1] != offsets[1] {
		t.Fatalf("same seed cut at %v, then at %v", offsets, again)
	}
}

func TestUnlimitedCuts(t *testing.T) {
	srv := server(t)
	got := partials(t, srv, faultproxy.Options{CutAfterBytes: 64 << 10, Seed: 2}, 4)
	if len(got) != 4 {
		t.Fatalf("got %v", got)
	}
}

func TestCutWithReset(t *testing.T) {
	srv := server(t)
	p := faultproxy.Start(t, target(srv), faultproxy.Options{CutAfterBytes: 128 << 10, Cuts: 1, Reset: true})
	c := client(t)
	if _, err := fetch(c, p.URL()+"/big"); err == nil {
		t.Fatal("got the whole body, want a reset")
	}
	fetchWhole(t, c, p, 1, "after the cut")
	if p.Cuts() != 1 {
		t.Fatalf("Cuts() = %d, want 1", p.Cuts())
	}
}

func TestUploadCut(t *testing.T) {
	srv := server(t)
	p := faultproxy.Start(t, target(srv), faultproxy.Options{CutAfterBytes: 64 << 10, Cuts: 1, Seed: 3})
	c := client(t)
	post := func() (string, error) {
		resp, err := c.Post(p.URL()+"/upload", "application/octet-stream", bytes.NewReader(body()))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s: %s", resp.Status, b)
		}
		return string(b), err
	}
	if _, err := post(); err == nil {
		t.Fatal("upload through a cut connection succeeded")
	}
	if p.Cuts() != 1 {
		t.Fatalf("Cuts() = %d, want 1", p.Cuts())
	}
	if got, err := post(); err != nil || got != strconv.Itoa(bigSize) {
		t.Fatalf("second upload: %q, %v", got, err)
	}
}

func TestOutage(t *testing.T) {
	srv := server(t)
	p := faultproxy.Start(t, target(srv), faultproxy.Options{})
	c := client(t)

	// An open connection is cut when the outage starts.
	resp, err := c.Get(p.URL() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	p.SetDown(true)
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a connection open across SetDown(true) ended cleanly")
	}

	// New connections are refused.
	if _, err := fetch(c, p.URL()+"/big"); err == nil {
		t.Fatal("get during the outage succeeded")
	}
	if p.Refused() != 1 {
		t.Fatalf("Refused() = %d, want 1", p.Refused())
	}

	p.SetDown(false)
	fetchWhole(t, c, p, 1, "after the outage")
	if p.Cuts() != 0 || p.Conns() != 3 {
		t.Fatalf("Cuts() = %d, Conns() = %d; want 0, 3", p.Cuts(), p.Conns())
	}
}

func TestTargetDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := target(srv)
	srv.Close()
	p := faultproxy.Start(t, addr, faultproxy.Options{})
	if _, err := fetch(client(t), p.URL()); err == nil {
		t.Fatal("get through a proxy to a closed port succeeded")
	}
	if p.Refused() != 1 || p.Conns() != 1 {
		t.Fatalf("Refused() = %d, Conns() = %d; want 1, 1", p.Refused(), p.Conns())
	}
}
