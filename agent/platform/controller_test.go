package platform

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	runpodKey = "rp-key-0123456789abcdef"
	vastKey   = "vast-key-fedcba9876543210"
)

// request is what a fake platform server saw.
type request struct {
	Method, Path, RawQuery, Auth, ContentType, Body string
}

// reply is what a fake platform server answers at one path.
type reply struct {
	status int
	body   string
}

// fakePlatform is a local server that records every request and answers by path.
type fakePlatform struct {
	mu      sync.Mutex
	seen    []request
	replies map[string]reply // by "METHOD /path"; missing means 404
	srv     *httptest.Server
}

func newFakePlatform(t *testing.T, replies map[string]reply) *fakePlatform {
	t.Helper()
	f := &fakePlatform{replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)})
		rep, ok := f.replies[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		io.WriteString(w, rep.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePlatform) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.seen...)
}

func runpodEnv(key string) func(string) string {
	return func(k string) string {
		if k == "RUNPOD_API_KEY" {
			return key
		}
		return ""
	}
}

func vastEnv(key string) func(string) string {
	return func(k string) string {
		if k == "CONTAINER_API_KEY" {
			return key
		}
		return ""
	}
}

func gqlBody(query string) string {
	b, _ := json.Marshal(map[string]string{"query": query})
	return string(b)
}

// assertNoSecret fails when err's message contains a key.
func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, k := range []string{runpodKey, vastKey} {
		if strings.Contains(err.Error(), k) {
			t.Errorf("error message contains the API key: %v", err)
		}
	}
}

// TestControllerRequests checks each call's method, path, Authorization header and body
// against the platforms' documentation (cited in controller.go).
func TestControllerRequests(t *testing.T) {
	const (
		stopQuery      = `mutation { podStop(input: {podId: "riixlu8oclhp"}) { id desiredStatus } }`
		terminateQuery = `mutation { podTerminate(input: {podId: "riixlu8oclhp"}) }`
	)
	runpod := Description{Platform: RunPod, InstanceID: "riixlu8oclhp"}
	vast := Description{Platform: Vast, InstanceID: "4242"}
	tests := []struct {
		name    string
		d       Description
		getenv  func(string) string
		api     RunPodAPI
		action  Action
		replies map[string]reply
		want    []request
		wantErr []string // substrings of the error; nil means success
	}{
		{
			name: "runpod REST stop", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodREST, action: ActionStop,
			replies: map[string]reply{"POST /v1/pods/riixlu8oclhp/stop": {200, `{}`}},
			want:    []request{{Method: "POST", Path: "/v1/pods/riixlu8oclhp/stop", Auth: "Bearer " + runpodKey}},
		},
		{
			name: "runpod REST terminate", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodREST, action: ActionTerminate,
			replies: map[string]reply{"DELETE /v1/pods/riixlu8oclhp": {204, ``}},
			want:    []request{{Method: "DELETE", Path: "/v1/pods/riixlu8oclhp", Auth: "Bearer " + runpodKey}},
		},
		{
			name: "runpod GraphQL stop", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodGraphQL, action: ActionStop,
			replies: map[string]reply{"POST /graphql": {200, `{"data":{"podStop":{"id":"riixlu8oclhp","desiredStatus":"EXITED"}}}`}},
			want: []request{{Method: "POST", Path: "/graphql", Auth: "Bearer " + runpodKey,
				ContentType: "application/json", Body: gqlBody(stopQuery)}},
		},
		{
			name: "runpod GraphQL terminate", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodGraphQL, action: ActionTerminate,
			replies: map[string]reply{"POST /graphql": {200, `{"data":{"podTerminate":null}}`}},
			want: []request{{Method: "POST", Path: "/graphql", Auth: "Bearer " + runpodKey,
				ContentType: "application/json", Body: gqlBody(terminateQuery)}},
		},
		{
			name: "runpod auto: REST alone when it works", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{"POST /v1/pods/riixlu8oclhp/stop": {200, `{}`}},
			want:    []request{{Method: "POST", Path: "/v1/pods/riixlu8oclhp/stop", Auth: "Bearer " + runpodKey}},
		},
		{
			name: "runpod auto: GraphQL when REST refuses the key", d: runpod, getenv: runpodEnv(runpodKey), action: ActionTerminate,
			replies: map[string]reply{
				"DELETE /v1/pods/riixlu8oclhp": {401, `{"error":"unauthorized"}`},
				"POST /graphql":                {200, `{"data":{"podTerminate":null}}`},
			},
			want: []request{
				{Method: "DELETE", Path: "/v1/pods/riixlu8oclhp", Auth: "Bearer " + runpodKey},
				{Method: "POST", Path: "/graphql", Auth: "Bearer " + runpodKey, ContentType: "application/json", Body: gqlBody(terminateQuery)},
			},
		},
		{
			name: "runpod auto: both fail", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{
				"POST /v1/pods/riixlu8oclhp/stop": {500, `internal error`},
				"POST /graphql":                   {502, `bad gateway`},
			},
			want: []request{
				{Method: "POST", Path: "/v1/pods/riixlu8oclhp/stop", Auth: "Bearer " + runpodKey},
				{Method: "POST", Path: "/graphql", Auth: "Bearer " + runpodKey, ContentType: "application/json", Body: gqlBody(stopQuery)},
			},
			wantErr: []string{"runpod API", "REST POST /pods/{podId}/stop", "HTTP 500", "internal error", "GraphQL podStop", "HTTP 502"},
		},
		{
			name: "runpod GraphQL error in a 200 answer", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodGraphQL, action: ActionStop,
			replies: map[string]reply{"POST /graphql": {200, `{"errors":[{"message":"pod not found"}],"data":null}`}},
			want: []request{{Method: "POST", Path: "/graphql", Auth: "Bearer " + runpodKey,
				ContentType: "application/json", Body: gqlBody(stopQuery)}},
			wantErr: []string{"runpod API", "GraphQL podStop", "HTTP 200", "pod not found"},
		},
		{
			name: "vast stop", d: vast, getenv: vastEnv(vastKey), action: ActionStop,
			replies: map[string]reply{"PUT /api/v0/instances/4242/": {200, `{"success":true}`}},
			want: []request{{Method: "PUT", Path: "/api/v0/instances/4242/", Auth: "Bearer " + vastKey,
				ContentType: "application/json", Body: `{"state":"stopped"}`}},
		},
		{
			name: "vast destroy", d: vast, getenv: vastEnv(vastKey), action: ActionTerminate,
			replies: map[string]reply{"DELETE /api/v0/instances/4242/": {200, `{"success":true}`}},
			want:    []request{{Method: "DELETE", Path: "/api/v0/instances/4242/", Auth: "Bearer " + vastKey}},
		},
		{
			name: "vast success false", d: vast, getenv: vastEnv(vastKey), action: ActionStop,
			replies: map[string]reply{"PUT /api/v0/instances/4242/": {200, `{"success":false,"error":"missing_billing","msg":"You lack credit"}`}},
			want: []request{{Method: "PUT", Path: "/api/v0/instances/4242/", Auth: "Bearer " + vastKey,
				ContentType: "application/json", Body: `{"state":"stopped"}`}},
			wantErr: []string{"vast API", "PUT /instances/{id}/ (stop)", "missing_billing", "You lack credit"},
		},
		{
			name: "vast 500", d: vast, getenv: vastEnv(vastKey), action: ActionTerminate,
			replies: map[string]reply{"DELETE /api/v0/instances/4242/": {500, `{"error":"server_error"}`}},
			want:    []request{{Method: "DELETE", Path: "/api/v0/instances/4242/", Auth: "Bearer " + vastKey}},
			wantErr: []string{"vast API", "DELETE /instances/{id}/ (destroy)", "HTTP 500 Internal Server Error", "server_error"},
		},
		{
			name: "a server echoing the key is redacted", d: vast, getenv: vastEnv(vastKey), action: ActionStop,
			replies: map[string]reply{"PUT /api/v0/instances/4242/": {403, `{"msg":"key ` + vastKey + ` lacks instance_write"}`}},
			want: []request{{Method: "PUT", Path: "/api/v0/instances/4242/", Auth: "Bearer " + vastKey,
				ContentType: "application/json", Body: `{"state":"stopped"}`}},
			wantErr: []string{"vast API", "HTTP 403", "[REDACTED] lacks instance_write"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePlatform(t, tt.replies)
			c, err := NewController(tt.d, tt.getenv, f.srv.Client(), ControllerOptions{
				RunPodRESTURL:    f.srv.URL + "/v1",
				RunPodGraphQLURL: f.srv.URL + "/graphql",
				VastURL:          f.srv.URL + "/api/v0",
				RunPodAPI:        tt.api,
			})
			if err != nil {
				t.Fatal(err)
			}
			err = tt.action.Do(t.Context(), c)
			assertNoSecret(t, err)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("%s: %v", tt.action, err)
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("%s succeeded, want an error", tt.action)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				var apiErr *APIError
				if !errors.As(err, &apiErr) {
					t.Errorf("error %v is not an *APIError", err)
				}
			}
			if got := f.requests(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("requests:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestControllerUnreachable: nobody listens at the address.
func TestControllerUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	tests := []struct {
		name   string
		d      Description
		getenv func(string) string
		want   []string
	}{
		{"runpod", Description{Platform: RunPod, InstanceID: "p1"}, runpodEnv(runpodKey),
			[]string{"runpod API", "REST POST /pods/{podId}/stop", "no response", "GraphQL podStop"}},
		{"vast", Description{Platform: Vast, InstanceID: "7"}, vastEnv(vastKey),
			[]string{"vast API", "PUT /instances/{id}/ (stop)", "no response"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewController(tt.d, tt.getenv, nil, ControllerOptions{
				RunPodRESTURL: addr + "/v1", RunPodGraphQLURL: addr + "/graphql", VastURL: addr + "/api/v0",
			})
			if err != nil {
				t.Fatal(err)
			}
			err = c.Stop(t.Context())
			if err == nil {
				t.Fatal("Stop succeeded against a closed server")
			}
			assertNoSecret(t, err)
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestControllerHangingServer: a server that never answers is cut off by the call timeout.
// The handler blocks until the test ends; the test asserts only that an error comes back.
func TestControllerHangingServer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)                 // runs second: waits for the handlers
	t.Cleanup(func() { close(release) }) // runs first: lets the handlers return
	tests := []struct {
		name   string
		d      Description
		getenv func(string) string
	}{
		{"runpod", Description{Platform: RunPod, InstanceID: "p1"}, runpodEnv(runpodKey)},
		{"vast", Description{Platform: Vast, InstanceID: "7"}, vastEnv(vastKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewController(tt.d, tt.getenv, srv.Client(), ControllerOptions{
				RunPodRESTURL: srv.URL + "/v1", RunPodGraphQLURL: srv.URL + "/graphql", VastURL: srv.URL + "/api/v0",
				Timeout: 50 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			err = c.Terminate(t.Context())
			if err == nil {
				t.Fatal("Terminate succeeded against a server that never answers")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
			}
			if !strings.Contains(err.Error(), "no answer within") {
				t.Errorf("error %q does not say the call timed out", err)
			}
			assertNoSecret(t, err)
		})
	}
}

// TestControllerNoFallbackAfterCancel: once the caller gives up, GraphQL is not tried.
func TestControllerNoFallbackAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		cancel() // the caller gives up while REST is answering
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	c, err := NewController(Description{Platform: RunPod, InstanceID: "p1"}, runpodEnv(runpodKey), srv.Client(),
		ControllerOptions{RunPodRESTURL: srv.URL + "/v1", RunPodGraphQLURL: srv.URL + "/graphql"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err == nil {
		t.Fatal("Stop succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/v1/pods/p1/stop"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("paths = %v, want %v", paths, want)
	}
}

func TestNewControllerErrors(t *testing.T) {
	noEnv := func(string) string { return "" }
	tests := []struct {
		name    string
		d       Description
		getenv  func(string) string
		opts    ControllerOptions
		is      error
		wantErr []string
	}{
		{name: "kubernetes has no API", d: Description{Platform: Kubernetes, InstanceID: "p"}, getenv: noEnv, is: ErrNoAPI, wantErr: []string{"kubernetes"}},
		{name: "lambda has no API", d: Description{Platform: Lambda}, getenv: noEnv, is: ErrNoAPI, wantErr: []string{"lambda"}},
		{name: "docker has no API", d: Description{Platform: Docker}, getenv: noEnv, is: ErrNoAPI},
		{name: "local has no API", d: Description{Platform: Local}, getenv: noEnv, is: ErrNoAPI},
		{name: "runpod without key", d: Description{Platform: RunPod, InstanceID: "p"}, getenv: noEnv, is: ErrNoKey, wantErr: []string{"RUNPOD_API_KEY"}},
		{name: "vast without key", d: Description{Platform: Vast, InstanceID: "1"}, getenv: runpodEnv(runpodKey), is: ErrNoKey, wantErr: []string{"CONTAINER_API_KEY"}},
		{name: "runpod pod id with a quote", d: Description{Platform: RunPod, InstanceID: `p"}) { x }`}, getenv: runpodEnv(runpodKey), wantErr: []string{"not a valid pod id"}},
		{name: "runpod without pod id", d: Description{Platform: RunPod}, getenv: runpodEnv(runpodKey), wantErr: []string{"not a valid pod id"}},
		{name: "vast id not a number", d: Description{Platform: Vast, InstanceID: "C.12"}, getenv: vastEnv(vastKey), wantErr: []string{`"C.12"`, "not a number"}},
		{name: "unknown RunPod API", d: Description{Platform: RunPod, InstanceID: "p"}, getenv: runpodEnv(runpodKey), opts: ControllerOptions{RunPodAPI: "soap"}, wantErr: []string{`"soap"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewController(tt.d, tt.getenv, nil, tt.opts)
			if err == nil {
				t.Fatalf("NewController = %T, want an error", c)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			assertNoSecret(t, err)
		})
	}
}
