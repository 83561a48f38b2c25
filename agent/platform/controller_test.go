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
	Method, Path, RawQuery, Auth, Accept, ContentType, Body string
}

// reply is what a fake platform server answers at one path.
type reply struct {
	status      int
	body        string
	contentType string // "": application/json
}

// The Accept header every call sends.
const accept = "application/json, application/problem+json"

// problemType is the media type of an RFC 9457 problem object.
const problemType = "application/problem+json"

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
		f.seen = append(f.seen, request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"),
			r.Header.Get("Accept"), r.Header.Get("Content-Type"), string(b)})
		rep, ok := f.replies[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		ct := rep.contentType
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
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

const (
	stopQuery      = `mutation { podStop(input: {podId: "riixlu8oclhp"}) { id desiredStatus } }`
	terminateQuery = `mutation { podTerminate(input: {podId: "riixlu8oclhp"}) }`
)

// The requests the platforms' documentation describes (cited in controller.go), as the
// fake servers see them: method, path, Authorization, Accept, Content-Type and body.
var (
	v2Stop = request{Method: "POST", Path: "/v2/pods/riixlu8oclhp/action", Auth: "Bearer " + runpodKey,
		Accept: accept, ContentType: "application/json", Body: `{"action":"stop"}`}
	v2Terminate = request{Method: "DELETE", Path: "/v2/pods/riixlu8oclhp", Auth: "Bearer " + runpodKey, Accept: accept}
	gqlStop     = request{Method: "POST", Path: "/graphql", Auth: "Bearer " + runpodKey,
		Accept: accept, ContentType: "application/json", Body: gqlBody(stopQuery)}
	gqlTerminate = request{Method: "POST", Path: "/graphql", Auth: "Bearer " + runpodKey,
		Accept: accept, ContentType: "application/json", Body: gqlBody(terminateQuery)}
	vastStop = request{Method: "PUT", Path: "/api/v0/instances/4242/", Auth: "Bearer " + vastKey,
		Accept: accept, ContentType: "application/json", Body: `{"state":"stopped"}`}
	vastDestroy = request{Method: "DELETE", Path: "/api/v0/instances/4242/", Auth: "Bearer " + vastKey, Accept: accept}
)

// The fake servers' answers.
const (
	v2StopPath      = "POST /v2/pods/riixlu8oclhp/action"
	v2TerminatePath = "DELETE /v2/pods/riixlu8oclhp"
	gqlPath         = "POST /graphql"
	podJSON         = `{"id":"riixlu8oclhp","status":"EXITED","actions":["start","terminate"]}`
	gqlStopOK       = `{"data":{"podStop":{"id":"riixlu8oclhp","desiredStatus":"EXITED"}}}`
	gqlTerminateOK  = `{"data":{"podTerminate":null}}`
)

// TestControllerRequests checks each call's method, path, headers and body against the
// platforms' documentation (cited in controller.go), how each answer is reported, and
// when RunPod's GraphQL fallback is used.
func TestControllerRequests(t *testing.T) {
	t.Parallel()
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
		is      error    // an error the result must wrap
	}{
		{
			name: "runpod v2 stop", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodREST, action: ActionStop,
			replies: map[string]reply{v2StopPath: {status: 200, body: podJSON}},
			want:    []request{v2Stop},
		},
		{
			name: "runpod v2 terminate", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodREST, action: ActionTerminate,
			replies: map[string]reply{v2TerminatePath: {status: 204}},
			want:    []request{v2Terminate},
		},
		{
			name: "runpod GraphQL stop", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodGraphQL, action: ActionStop,
			replies: map[string]reply{gqlPath: {status: 200, body: gqlStopOK}},
			want:    []request{gqlStop},
		},
		{
			name: "runpod GraphQL terminate", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodGraphQL, action: ActionTerminate,
			replies: map[string]reply{gqlPath: {status: 200, body: gqlTerminateOK}},
			want:    []request{gqlTerminate},
		},
		{
			name: "runpod auto: v2 alone when it works", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{v2StopPath: {status: 200, body: podJSON}, gqlPath: {status: 200, body: gqlStopOK}},
			want:    []request{v2Stop},
		},
		{
			name: "runpod auto: GraphQL when the v2 route is missing (404, no problem object)", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{gqlPath: {status: 200, body: gqlStopOK}}, // v2: http.NotFound's text
			want:    []request{v2Stop, gqlStop},
		},
		{
			name: "runpod auto: GraphQL when v2 is gone (410)", d: runpod, getenv: runpodEnv(runpodKey), action: ActionTerminate,
			replies: map[string]reply{
				v2TerminatePath: {status: 410, contentType: problemType, body: `{"title":"Gone","status":410,"detail":"API v2 is retired"}`},
				gqlPath:         {status: 200, body: gqlTerminateOK},
			},
			want: []request{v2Terminate, gqlTerminate},
		},
		{
			name: "runpod auto: GraphQL when v2 refuses the key (401)", d: runpod, getenv: runpodEnv(runpodKey), action: ActionTerminate,
			replies: map[string]reply{
				v2TerminatePath: {status: 401, contentType: problemType, body: `{"title":"Unauthorized","status":401,"detail":"missing bearer token"}`},
				gqlPath:         {status: 200, body: gqlTerminateOK},
			},
			want: []request{v2Terminate, gqlTerminate},
		},
		{
			name: "runpod auto: GraphQL on a v2 server error (503)", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{
				v2StopPath: {status: 503, contentType: "text/html", body: `<html>upstream unavailable</html>`},
				gqlPath:    {status: 200, body: gqlStopOK},
			},
			want: []request{v2Stop, gqlStop},
		},
		{
			name: "runpod auto: no GraphQL when v2 says the pod does not exist (404 problem)", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{
				v2StopPath: {status: 404, contentType: problemType, body: `{"title":"Not Found","status":404,"detail":"pod not found"}`},
				gqlPath:    {status: 200, body: gqlStopOK},
			},
			want:    []request{v2Stop},
			wantErr: []string{"runpod API: v2 POST /pods/{id}/action (stop): HTTP 404 Not Found: title \"Not Found\", status 404, detail \"pod not found\""},
		},
		{
			name: "runpod: a problem object sent as application/json is one", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{
				v2StopPath: {status: 404, body: `{"title":"Not Found","status":404,"detail":"pod not found"}`},
				gqlPath:    {status: 200, body: gqlStopOK},
			},
			want:    []request{v2Stop},
			wantErr: []string{`title "Not Found", status 404, detail "pod not found"`},
		},
		{
			name: "runpod auto: 409 on stop is reported, never worked around", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{
				v2StopPath: {status: 409, contentType: problemType, body: `{"title":"Conflict","status":409,"detail":"action stop is not valid for a pod in status EXITED"}`},
				gqlPath:    {status: 200, body: gqlStopOK},
			},
			want: []request{v2Stop},
			wantErr: []string{"v2 POST /pods/{id}/action (stop): HTTP 409 Conflict",
				`title "Conflict", status 409, detail "action stop is not valid for a pod in status EXITED"`,
				"the pod's current status does not allow a stop"},
			is: ErrConflict,
		},
		{
			name: "runpod auto: 409 on terminate is reported, never worked around", d: runpod, getenv: runpodEnv(runpodKey), action: ActionTerminate,
			replies: map[string]reply{
				v2TerminatePath: {status: 409, contentType: problemType, body: `{"title":"Conflict","status":409,"detail":"pod belongs to a cluster"}`},
				gqlPath:         {status: 200, body: gqlTerminateOK},
			},
			want: []request{v2Terminate},
			wantErr: []string{"v2 DELETE /pods/{id} (terminate): HTTP 409 Conflict", `detail "pod belongs to a cluster"`,
				"the pod's current state does not allow a terminate", "Instant Cluster"},
			is: ErrConflict,
		},
		{
			name: "runpod auto: no GraphQL on a bad request (422), whose errors are listed", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{
				v2StopPath: {status: 422, contentType: problemType, body: `{"title":"Unprocessable Entity","status":422,"detail":"invalid body","errors":["$.action: must be one of start, stop"]}`},
				gqlPath:    {status: 200, body: gqlStopOK},
			},
			want:    []request{v2Stop},
			wantErr: []string{"HTTP 422", `title "Unprocessable Entity", status 422, detail "invalid body", errors "$.action: must be one of start, stop"`},
		},
		{
			name: "runpod auto: no GraphQL when rate limited (429)", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{
				v2StopPath: {status: 429, contentType: problemType, body: `{"title":"Too Many Requests","status":429,"detail":"rate limit exceeded for the minute window"}`},
				gqlPath:    {status: 200, body: gqlStopOK},
			},
			want:    []request{v2Stop},
			wantErr: []string{"HTTP 429", "rate limit exceeded"},
		},
		{
			name: "runpod auto: both fail", d: runpod, getenv: runpodEnv(runpodKey), action: ActionStop,
			replies: map[string]reply{
				v2StopPath: {status: 500, contentType: problemType, body: `{"title":"Internal Server Error","status":500,"detail":"internal error"}`},
				gqlPath:    {status: 502, body: `bad gateway`},
			},
			want: []request{v2Stop, gqlStop},
			wantErr: []string{"runpod API", "v2 POST /pods/{id}/action (stop)", "HTTP 500", `detail "internal error"`,
				"GraphQL fallback (v2 server error (500))", "GraphQL podStop", "HTTP 502", "bad gateway"},
		},
		{
			name: "runpod GraphQL error in a 200 answer", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodGraphQL, action: ActionStop,
			replies: map[string]reply{gqlPath: {status: 200, body: `{"errors":[{"message":"pod not found"}],"data":null}`}},
			want:    []request{gqlStop},
			wantErr: []string{"runpod API", "GraphQL podStop", "HTTP 200", "pod not found"},
		},
		{
			name: "runpod: a problem echoing the key is redacted", d: runpod, getenv: runpodEnv(runpodKey), api: RunPodREST, action: ActionStop,
			replies: map[string]reply{v2StopPath: {status: 403, contentType: problemType,
				body: `{"title":"Forbidden","status":403,"detail":"key ` + runpodKey + ` lacks access"}`}},
			want:    []request{v2Stop},
			wantErr: []string{"HTTP 403", `detail "key [REDACTED] lacks access"`},
		},
		{
			name: "vast stop", d: vast, getenv: vastEnv(vastKey), action: ActionStop,
			replies: map[string]reply{"PUT /api/v0/instances/4242/": {status: 200, body: `{"success":true}`}},
			want:    []request{vastStop},
		},
		{
			name: "vast destroy", d: vast, getenv: vastEnv(vastKey), action: ActionTerminate,
			replies: map[string]reply{"DELETE /api/v0/instances/4242/": {status: 200, body: `{"success":true}`}},
			want:    []request{vastDestroy},
		},
		{
			name: "vast success false", d: vast, getenv: vastEnv(vastKey), action: ActionStop,
			replies: map[string]reply{"PUT /api/v0/instances/4242/": {status: 200, body: `{"success":false,"error":"missing_billing","msg":"You lack credit"}`}},
			want:    []request{vastStop},
			wantErr: []string{"vast API", "PUT /instances/{id}/ (stop)", "missing_billing", "You lack credit"},
		},
		{
			name: "vast 500", d: vast, getenv: vastEnv(vastKey), action: ActionTerminate,
			replies: map[string]reply{"DELETE /api/v0/instances/4242/": {status: 500, body: `{"error":"server_error"}`}},
			want:    []request{vastDestroy},
			wantErr: []string{"vast API", "DELETE /instances/{id}/ (destroy)", "HTTP 500 Internal Server Error", "server_error"},
		},
		{
			name: "vast 429 (detail only) is not taken for a problem object", d: vast, getenv: vastEnv(vastKey), action: ActionStop,
			replies: map[string]reply{"PUT /api/v0/instances/4242/": {status: 429, body: `{"detail":"API requests too frequent endpoint threshold=1.0"}`}},
			want:    []request{vastStop},
			wantErr: []string{"HTTP 429 Too Many Requests: {\"detail\":\"API requests too frequent endpoint threshold=1.0\"}"},
		},
		{
			name: "a server echoing the key is redacted", d: vast, getenv: vastEnv(vastKey), action: ActionStop,
			replies: map[string]reply{"PUT /api/v0/instances/4242/": {status: 403, body: `{"msg":"key ` + vastKey + ` lacks instance_write"}`}},
			want:    []request{vastStop},
			wantErr: []string{"vast API", "HTTP 403", "[REDACTED] lacks instance_write"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePlatform(t, tt.replies)
			c, err := NewController(tt.d, tt.getenv, f.srv.Client(), ControllerOptions{
				RunPodURL:        f.srv.URL + "/v2",
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
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error %v is not %v", err, tt.is)
				}
				if tt.is == nil && errors.Is(err, ErrConflict) {
					t.Errorf("error %v is ErrConflict", err)
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
	t.Parallel()
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
			[]string{"runpod API", "v2 POST /pods/{id}/action (stop)", "no response", "GraphQL fallback (v2 unreachable)", "GraphQL podStop"}},
		{"vast", Description{Platform: Vast, InstanceID: "7"}, vastEnv(vastKey),
			[]string{"vast API", "PUT /instances/{id}/ (stop)", "no response"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewController(tt.d, tt.getenv, nil, ControllerOptions{
				RunPodURL: addr + "/v2", RunPodGraphQLURL: addr + "/graphql", VastURL: addr + "/api/v0",
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
	t.Parallel()
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
				RunPodURL: srv.URL + "/v2", RunPodGraphQLURL: srv.URL + "/graphql", VastURL: srv.URL + "/api/v0",
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
	t.Parallel()
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
		ControllerOptions{RunPodURL: srv.URL + "/v2", RunPodGraphQLURL: srv.URL + "/graphql"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err == nil {
		t.Fatal("Stop succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/v2/pods/p1/action"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("paths = %v, want %v", paths, want)
	}
}

func TestNewControllerErrors(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	tests := []struct {
		name    string
		d       Description
		getenv  func(string) string
		opts    ControllerOptions
		is      error
		wantErr []string
		notIn   string // a value the error must not repeat
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
		{name: "runpod URL in clear text to another host", d: Description{Platform: RunPod, InstanceID: "p"},
			getenv:  withEnv(runpodEnv(runpodKey), RunPodURLEnv, "http://proxy.example.com/v2"),
			wantErr: []string{"runpod: BATON_RUNPOD_API_URL: http:// only to a loopback address"}},
		{name: "vast URL with credentials", d: Description{Platform: Vast, InstanceID: "1"},
			getenv:  withEnv(vastEnv(vastKey), VastURLEnv, "https://me:hunter2@proxy.example.com/api/v0"),
			wantErr: []string{"vast: BATON_VAST_API_URL: credentials do not belong in the URL"}, notIn: "hunter2"},
		{name: "runpod URL option with a query", d: Description{Platform: RunPod, InstanceID: "p"}, getenv: runpodEnv(runpodKey),
			opts: ControllerOptions{RunPodURL: "https://api.runpod.io/v2?x=1"}, wantErr: []string{"ControllerOptions.RunPodURL: no query"}},
		{name: "runpod GraphQL URL option not a URL", d: Description{Platform: RunPod, InstanceID: "p"}, getenv: runpodEnv(runpodKey),
			opts: ControllerOptions{RunPodGraphQLURL: "api.runpod.io/graphql"}, wantErr: []string{"ControllerOptions.RunPodGraphQLURL: want https://"}},
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
			if tt.notIn != "" && strings.Contains(err.Error(), tt.notIn) {
				t.Errorf("error %q repeats %q", err, tt.notIn)
			}
			assertNoSecret(t, err)
		})
	}
}

// withEnv adds key=value to getenv.
func withEnv(getenv func(string) string, key, value string) func(string) string {
	return func(k string) string {
		if k == key {
			return value
		}
		return getenv(k)
	}
}

// TestControllerURLs: the platforms' real endpoints by default; BATON_RUNPOD_API_URL and
// BATON_VAST_API_URL replace them (a trailing slash dropped), and a replaced RunPod v2 URL
// leaves no GraphQL fallback unless one is given.
func TestControllerURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		d                 Description
		getenv            func(string) string
		opts              ControllerOptions
		wantBase, wantGQL string
	}{
		{name: "runpod defaults", d: Description{Platform: RunPod, InstanceID: "p"}, getenv: runpodEnv(runpodKey),
			wantBase: "https://api.runpod.io/v2", wantGQL: "https://api.runpod.io/graphql"},
		{name: "runpod v2 URL from the variable: no fallback", d: Description{Platform: RunPod, InstanceID: "p"},
			getenv:   withEnv(runpodEnv(runpodKey), RunPodURLEnv, "https://proxy.example.com/runpod/v2/"),
			wantBase: "https://proxy.example.com/runpod/v2"},
		{name: "runpod default v2 URL named in the variable keeps the fallback", d: Description{Platform: RunPod, InstanceID: "p"},
			getenv:   withEnv(runpodEnv(runpodKey), RunPodURLEnv, "https://api.runpod.io/v2"),
			wantBase: "https://api.runpod.io/v2", wantGQL: "https://api.runpod.io/graphql"},
		{name: "runpod option wins over the variable", d: Description{Platform: RunPod, InstanceID: "p"},
			getenv:   withEnv(runpodEnv(runpodKey), RunPodURLEnv, "https://proxy.example.com/v2"),
			opts:     ControllerOptions{RunPodURL: "http://127.0.0.1:8080/v2", RunPodGraphQLURL: "http://[::1]:8080/graphql"},
			wantBase: "http://127.0.0.1:8080/v2", wantGQL: "http://[::1]:8080/graphql"},
		{name: "runpod GraphQL only: the real endpoint even with a v2 stand-in", d: Description{Platform: RunPod, InstanceID: "p"},
			getenv:   withEnv(runpodEnv(runpodKey), RunPodURLEnv, "http://localhost:9/v2"),
			opts:     ControllerOptions{RunPodAPI: RunPodGraphQL},
			wantBase: "http://localhost:9/v2", wantGQL: "https://api.runpod.io/graphql"},
		{name: "vast default", d: Description{Platform: Vast, InstanceID: "1"}, getenv: vastEnv(vastKey),
			wantBase: "https://console.vast.ai/api/v0"},
		{name: "vast from the variable", d: Description{Platform: Vast, InstanceID: "1"},
			getenv:   withEnv(vastEnv(vastKey), VastURLEnv, "http://127.0.0.1:5002/api/v0/"),
			wantBase: "http://127.0.0.1:5002/api/v0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewController(tt.d, tt.getenv, nil, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var base, gql string
			switch c := c.(type) {
			case *runpodController:
				base, gql = c.base, c.gqlURL
			case *vastController:
				base = c.base
			default:
				t.Fatalf("controller %T", c)
			}
			if base != tt.wantBase || gql != tt.wantGQL {
				t.Errorf("base %q, GraphQL %q; want %q, %q", base, gql, tt.wantBase, tt.wantGQL)
			}
		})
	}
}

// TestControllerStandInFromVariable: with BATON_RUNPOD_API_URL and BATON_VAST_API_URL
// naming a local server, the calls go there; a v2 answer that would otherwise lead to
// GraphQL does not, and the error says why.
func TestControllerStandInFromVariable(t *testing.T) {
	t.Parallel()
	f := newFakePlatform(t, map[string]reply{
		"PUT /api/v0/instances/4242/": {status: 200, body: `{"success":true}`},
	})
	env := func(k string) string {
		switch k {
		case RunPodURLEnv:
			return f.srv.URL + "/v2"
		case VastURLEnv:
			return f.srv.URL + "/api/v0"
		case "RUNPOD_API_KEY":
			return runpodKey
		case "CONTAINER_API_KEY":
			return vastKey
		}
		return ""
	}
	rp, err := NewController(Description{Platform: RunPod, InstanceID: "riixlu8oclhp"}, env, f.srv.Client(), ControllerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = rp.Stop(t.Context()) // v2: 404 without a problem object
	if err == nil || !strings.Contains(err.Error(), "no GraphQL fallback: BATON_RUNPOD_API_URL replaces RunPod's API v2") {
		t.Errorf("Stop = %v, want the v2 404 and no GraphQL fallback", err)
	}
	vast, err := NewController(Description{Platform: Vast, InstanceID: "4242"}, env, f.srv.Client(), ControllerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := vast.Stop(t.Context()); err != nil {
		t.Errorf("vast Stop: %v", err)
	}
	if got, want := f.requests(), []request{v2Stop, vastStop}; !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\n got %+v\nwant %+v", got, want)
	}
}

func TestCheckAPIURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, want string // want: a substring of the error; "" for none
	}{
		{"https://api.runpod.io/v2", ""},
		{"https://console.vast.ai/api/v0/", ""},
		{"https://proxy.example.com:8443/runpod/v2", ""},
		{"http://127.0.0.1:8080/v2", ""},
		{"http://127.3.4.5/v2", ""},
		{"http://[::1]:8080/v2", ""},
		{"http://localhost:8080", ""},
		{"http://LOCALHOST./v2", ""},
		{"http://10.0.0.1/v2", "http:// only to a loopback address"},
		{"http://proxy.example.com/v2", "http:// only to a loopback address"},
		{"ftp://example.com/v2", "want https://"},
		{"api.runpod.io/v2", "want https://"},
		{"https:api.runpod.io", "not a URL"},
		{"https://", "no host"},
		{"https://:8443/v2", "no host"},
		{"https://u:p@api.runpod.io/v2", "credentials"},
		{"https://api.runpod.io/v2?debug=1", "no query"},
		{"https://api.runpod.io/v2?", "no query"},
		{"https://api.runpod.io/v2#x", "no fragment"},
		{"https://api.runpod.io/%zz", "not a URL"},
	} {
		err := CheckAPIURL(tc.raw)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckAPIURL(%q) = %v, want nil", tc.raw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckAPIURL(%q) = %v, want an error containing %q", tc.raw, err, tc.want)
		case err != nil && strings.Contains(tc.raw, "u:p@") && strings.Contains(err.Error(), "u:p"):
			t.Errorf("CheckAPIURL(%q) = %v repeats the credentials", tc.raw, err)
		}
	}
}

func TestParseProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, contentType, body string
		want                    *Problem
	}{
		{"RunPod's example", "application/problem+json", `{"title":"Not Found","status":404,"detail":"pod not found"}`,
			&Problem{Title: "Not Found", Status: 404, Detail: "pod not found"}},
		{"with errors", "application/problem+json; charset=utf-8", `{"title":"Bad Request","status":400,"detail":"x","errors":["a","b"]}`,
			&Problem{Title: "Bad Request", Status: 400, Detail: "x", Errors: []string{"a", "b"}}},
		{"errors in another shape are left out", "application/problem+json", `{"title":"T","status":400,"detail":"d","errors":[{"path":"$"}]}`,
			&Problem{Title: "T", Status: 400, Detail: "d"}},
		{"title and status as application/json", "application/json", `{"title":"Conflict","status":409,"detail":"d"}`,
			&Problem{Title: "Conflict", Status: 409, Detail: "d"}},
		{"problem type with members missing", "application/problem+json", `{"detail":"only a detail"}`,
			&Problem{Detail: "only a detail"}},
		{"Vast's error object", "application/json", `{"success":false,"error":"not_found","msg":"Instance not found"}`, nil},
		{"detail only as application/json", "application/json", `{"detail":"API requests too frequent"}`, nil},
		{"v1's message", "application/json", `{"message":"Pod not found"}`, nil},
		{"not JSON", "text/html", `<html>404</html>`, nil},
		{"not JSON though the type says so", "application/problem+json", `oops`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseProblem(tc.contentType, []byte(tc.body)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseProblem = %+v, want %+v", got, tc.want)
			}
		})
	}
}
