// Package apitest is a fake provider API for the tests of the launch
// providers: an httptest server that checks each request against the one
// the test expects next (method, path, query, bearer key, JSON body) and
// answers it as the provider documents; and the check of a failed create
// that every provider's tests make.
package apitest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
)

// Call is one request the server expects, and its answer.
type Call struct {
	// Method and Path must match; Query, where set, must be a subset of
	// the request's query.
	Method, Path string
	Query        map[string]string
	// Body, where set, must equal the request's JSON body (decoded both
	// sides, so key order does not matter).
	Body string
	// Status and Answer are the reply (Status 0: 200).
	Status int
	Answer string
}

// Server is a fake API.
type Server struct {
	*httptest.Server
	t     *testing.T
	key   string
	mu    sync.Mutex
	calls []Call
}

// New starts a server that expects calls in order, each with key as its
// bearer token; the test fails on any other request, and at its end if a
// call did not come.
func New(t *testing.T, key string, calls ...Call) *Server {
	s := &Server{t: t, key: key, calls: calls}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.Close()
		if len(s.calls) > 0 {
			t.Errorf("%d expected calls did not come, the first: %s %s", len(s.calls), s.calls[0].Method, s.calls[0].Path)
		}
	})
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if len(s.calls) == 0 {
		s.mu.Unlock()
		s.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "unexpected", http.StatusTeapot)
		return
	}
	c := s.calls[0]
	s.calls = s.calls[1:]
	s.mu.Unlock()
	if r.Method != c.Method || r.URL.Path != c.Path {
		s.t.Errorf("request %s %s, want %s %s", r.Method, r.URL.Path, c.Method, c.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+s.key {
		s.t.Errorf("%s %s: Authorization %q, want the bearer key", r.Method, r.URL.Path, got)
	}
	for k, v := range c.Query {
		if got := r.URL.Query().Get(k); got != v {
			s.t.Errorf("%s %s: query %s=%q, want %q", r.Method, r.URL.Path, k, got, v)
		}
	}
	body, _ := io.ReadAll(r.Body)
	if c.Body != "" {
		if r.Header.Get("Content-Type") != "application/json" {
			s.t.Errorf("%s %s: Content-Type %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		var got, want any
		if err := json.Unmarshal(body, &got); err != nil {
			s.t.Errorf("%s %s: body is not JSON: %s", r.Method, r.URL.Path, body)
		}
		if err := json.Unmarshal([]byte(c.Body), &want); err != nil {
			s.t.Errorf("the test's body is not JSON: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			s.t.Errorf("%s %s: body\n%s\nwant\n%s", r.Method, r.URL.Path, body, c.Body)
		}
	}
	status := c.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, c.Answer)
}
