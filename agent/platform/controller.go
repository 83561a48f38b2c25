package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/batonrun/baton/internal/redact"
)

// Controller stops or terminates the instance baton runs on, through its platform's API.
type Controller interface {
	// Stop stops the instance: compute billing ends, the disk is kept (and billed).
	Stop(ctx context.Context) error
	// Terminate deletes the instance and its disk; billing ends.
	Terminate(ctx context.Context) error
}

// Errors NewController and the Controllers wrap, for errors.Is.
var (
	// ErrNoAPI: the platform has no API baton can drive (Kubernetes, Lambda, Docker, local).
	ErrNoAPI = errors.New("no API to stop or terminate the instance on this platform")
	// ErrNoKey: the platform's API key variable is not set.
	ErrNoKey = errors.New("API key is not set")
	// ErrConflict: the platform answered 409 Conflict: the instance's current state does
	// not allow the action. An *APIError with status 409 matches it.
	ErrConflict = errors.New("the instance's current state does not allow the action (HTTP 409)")
)

// RunPodAPI selects which of RunPod's two APIs carries the exit action.
type RunPodAPI string

// The RunPod API choices.
const (
	// RunPodAuto uses the REST API v2 and turns to GraphQL only when v2 gave no answer
	// about the pod (see fallbackReason): v2 unreachable, gone (410), a 404 that is not
	// one of v2's problem objects (the route is missing), the key refused (401, 403:
	// nothing documents whether v2 takes the pod-scoped RUNPOD_API_KEY) or a server
	// error (5xx). GraphQL is deprecated and "will be retired in early 2027"
	// (runpod/docs, sdks/graphql/configurations.mdx).
	RunPodAuto RunPodAPI = "auto"
	// RunPodREST uses only the REST API v2 (DefaultRunPodURL).
	RunPodREST RunPodAPI = "rest"
	// RunPodGraphQL uses only the GraphQL API (DefaultRunPodGraphQLURL).
	RunPodGraphQL RunPodAPI = "graphql"
)

// Default endpoints and timeout.
const (
	// DefaultRunPodURL is the base of RunPod's REST API v2; REST v1
	// (https://rest.runpod.io/v1) "is deprecated and will be retired on November 15,
	// 2026" (runpod/docs, api-reference-v2/migrate-from-v1.mdx).
	DefaultRunPodURL = "https://api.runpod.io/v2"
	// DefaultRunPodGraphQLURL is the GraphQL endpoint (runpod/docs, sdks/graphql/configurations.mdx).
	DefaultRunPodGraphQLURL = "https://api.runpod.io/graphql"
	// DefaultVastURL is the Vast.ai REST API's base: server https://console.vast.ai, paths
	// under /api/v0, a Bearer key (vast-ai/docs, api-reference/authentication.mdx).
	DefaultVastURL = "https://console.vast.ai/api/v0"
	// DefaultCallTimeout bounds one API call, so a platform that does not answer never
	// holds the exit. With RunPodAuto a failed v2 call may be followed by one GraphQL call.
	DefaultCallTimeout = 15 * time.Second
)

// The variables NewController reads for an API's base URL when ControllerOptions leaves
// it empty (agent/config declares them as the settings --runpod-api-url and
// --vast-api-url): a proxy or a test server may stand in for the platform.
const (
	RunPodURLEnv = "BATON_RUNPOD_API_URL"
	VastURLEnv   = "BATON_VAST_API_URL"
)

// ControllerOptions adjusts NewController. The zero value uses the URLs in
// BATON_RUNPOD_API_URL and BATON_VAST_API_URL, else the platforms' real endpoints,
// RunPodAuto and DefaultCallTimeout.
type ControllerOptions struct {
	// RunPodURL is the base of RunPod's REST API v2: a stop is POST {RunPodURL}/pods/{id}/action,
	// a terminate DELETE {RunPodURL}/pods/{id}. Empty: BATON_RUNPOD_API_URL, else
	// DefaultRunPodURL.
	RunPodURL string
	// RunPodGraphQLURL is RunPod's GraphQL endpoint. Empty: DefaultRunPodGraphQLURL, except
	// that RunPodAuto then has no GraphQL fallback when the v2 base is not
	// DefaultRunPodURL: a stand-in for v2 (a proxy, a test server) must never lead baton
	// to send the key to RunPod's real GraphQL API behind the user's back.
	RunPodGraphQLURL string
	// VastURL is the base of Vast.ai's API: a stop is PUT {VastURL}/instances/{id}/, a
	// destroy DELETE {VastURL}/instances/{id}/. Empty: BATON_VAST_API_URL, else
	// DefaultVastURL.
	VastURL string
	// RunPodAPI selects RunPod's REST v2 or GraphQL API, or v2 with GraphQL as the fallback.
	RunPodAPI RunPodAPI
	// Timeout bounds each API call; 0 means DefaultCallTimeout.
	Timeout time.Duration
	// Logger, if set, hears about a RunPod v2 failure that GraphQL is about to retry.
	Logger *slog.Logger
}

// NewController returns the Controller for the instance d describes, with the API key and
// any replaced base URL read through getenv: RUNPOD_API_KEY on RunPod (the "Pod-scoped API
// key" RunPod sets in every pod, runpod/docs, pods/templates/environment-variables.mdx),
// CONTAINER_API_KEY on Vast.ai (the per-instance key, vast-ai/docs,
// guides/instances/docker-environment.mdx). A nil client means a new http.Client. The
// error wraps ErrNoAPI for a platform without an API and ErrNoKey when the key variable
// is empty; it names the variable, never its value. A base URL that CheckAPIURL refuses
// is an error that names where it came from.
func NewController(d Description, getenv func(string) string, client *http.Client, opts ControllerOptions) (Controller, error) {
	if client == nil {
		client = &http.Client{}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultCallTimeout
	}
	switch d.Platform {
	case RunPod:
		key := strings.TrimSpace(getenv("RUNPOD_API_KEY"))
		if key == "" {
			return nil, fmt.Errorf("runpod: RUNPOD_API_KEY: %w", ErrNoKey)
		}
		if !validPodID(d.InstanceID) {
			return nil, fmt.Errorf("runpod: pod id %q (RUNPOD_POD_ID) is not a valid pod id", d.InstanceID)
		}
		api := opts.RunPodAPI
		switch api {
		case "":
			api = RunPodAuto
		case RunPodAuto, RunPodREST, RunPodGraphQL:
		default:
			return nil, fmt.Errorf("runpod: unknown API %q: want auto, rest or graphql", api)
		}
		base, err := baseURL(opts.RunPodURL, "ControllerOptions.RunPodURL", getenv, RunPodURLEnv, DefaultRunPodURL)
		if err != nil {
			return nil, fmt.Errorf("runpod: %w", err)
		}
		gql, err := baseURL(opts.RunPodGraphQLURL, "ControllerOptions.RunPodGraphQLURL", nil, "", "")
		if err != nil {
			return nil, fmt.Errorf("runpod: %w", err)
		}
		if gql == "" && (api == RunPodGraphQL || base == DefaultRunPodURL) {
			gql = DefaultRunPodGraphQLURL
		}
		return &runpodController{
			podID:  d.InstanceID,
			base:   base,
			gqlURL: gql,
			api:    api,
			caller: caller{platform: RunPod, client: client, key: key, timeout: opts.Timeout},
			logger: opts.Logger,
		}, nil
	case Vast:
		key := strings.TrimSpace(getenv("CONTAINER_API_KEY"))
		if key == "" {
			return nil, fmt.Errorf("vast: CONTAINER_API_KEY: %w", ErrNoKey)
		}
		// The API takes the instance id as an integer (vast-ai/docs,
		// api-reference/openapi/yaml/stop_instance.yaml and destroy_instance.yaml).
		if n, err := strconv.ParseUint(d.InstanceID, 10, 64); err != nil || n == 0 {
			return nil, fmt.Errorf("vast: instance id %q (CONTAINER_ID) is not a number", d.InstanceID)
		}
		base, err := baseURL(opts.VastURL, "ControllerOptions.VastURL", getenv, VastURLEnv, DefaultVastURL)
		if err != nil {
			return nil, fmt.Errorf("vast: %w", err)
		}
		return &vastController{
			id:     d.InstanceID,
			base:   base,
			caller: caller{platform: Vast, client: client, key: key, timeout: opts.Timeout},
		}, nil
	}
	return nil, fmt.Errorf("%s: %w", d.Platform, ErrNoAPI)
}

// baseURL picks an API's base URL: opt (named optName in errors), else the variable env
// read through getenv (if getenv is not nil), else def; it is checked with CheckAPIURL
// and loses any trailing slash. The error names the option or variable, not the value,
// which might hold a password.
func baseURL(opt, optName string, getenv func(string) string, env, def string) (string, error) {
	raw, from := strings.TrimSpace(opt), optName
	if raw == "" && getenv != nil {
		raw, from = strings.TrimSpace(getenv(env)), env
	}
	if raw == "" {
		return def, nil
	}
	if err := CheckAPIURL(raw); err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	return strings.TrimRight(raw, "/"), nil
}

// CheckAPIURL reports what is wrong with raw as the base URL of a platform API (a proxy
// or a test server standing in for RunPod's or Vast.ai's): it must be an absolute https
// URL, or http to a loopback address (127.0.0.0/8, ::1, localhost), since the API key
// travels in a header; with a host, and no user name or password, query or fragment,
// since request paths are appended to it. The error never repeats the URL.
func CheckAPIURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return errors.New("not a URL: want https://host[/path]")
	}
	if u.User != nil {
		return errors.New("credentials do not belong in the URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if u.Hostname() != "" && !isLoopback(u.Hostname()) {
			return errors.New("http:// only to a loopback address (127.0.0.1, ::1, localhost), which a key never leaves in clear text; want https://")
		}
	default:
		return errors.New("want https:// (or http:// to a loopback address)")
	}
	if u.Hostname() == "" {
		return errors.New("no host")
	}
	if u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "?") {
		return errors.New("no query (?...): request paths are appended to the URL")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("no fragment (#...)")
	}
	return nil
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Problem is an RFC 9457 problem object, the form in which RunPod's REST API v2 reports
// every error: title, status and detail are required, errors optional (runpod/docs,
// api-reference-v2/openapi.json, components.schemas.ErrorResponse).
type Problem struct {
	// Title is a short summary ("Conflict").
	Title string
	// Status is the HTTP status the problem object states.
	Status int
	// Detail explains this occurrence.
	Detail string
	// Errors are individual request-validation failures, if any.
	Errors []string
}

// String writes the problem on one line: title "T", status N, detail "D".
func (p *Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "title %q, status %d, detail %q", clip(p.Title), p.Status, clip(p.Detail))
	if len(p.Errors) > 0 {
		errs := p.Errors
		if len(errs) > 5 {
			errs = errs[:5]
		}
		quoted := make([]string, len(errs))
		for i, e := range errs {
			quoted[i] = strconv.Quote(clip(e))
		}
		fmt.Fprintf(&b, ", errors %s", strings.Join(quoted, ", "))
	}
	return b.String()
}

// parseProblem reads an RFC 9457 problem object from an error answer: a JSON object
// sent as application/problem+json, or any JSON object with the two members that
// identify one here, a title and a status. Anything else is nil.
func parseProblem(contentType string, body []byte) *Problem {
	var raw struct {
		Title  string          `json:"title"`
		Status int             `json:"status"`
		Detail string          `json:"detail"`
		Errors json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &raw) != nil {
		return nil
	}
	mediaType, _, _ := strings.Cut(contentType, ";")
	isProblemType := strings.EqualFold(strings.TrimSpace(mediaType), "application/problem+json")
	if !isProblemType && (raw.Title == "" || raw.Status == 0) {
		return nil
	}
	p := &Problem{Title: raw.Title, Status: raw.Status, Detail: raw.Detail}
	var errs []string
	if json.Unmarshal(raw.Errors, &errs) == nil { // an extension in another shape is left out
		p.Errors = errs
	}
	return p
}

// clip bounds one field of an answer to 200 bytes on one line.
func clip(s string) string { return excerpt([]byte(s)) }

// APIError is a failed platform API call. Its message names the platform, the call and
// the HTTP status, with the problem object's title, status and detail where the platform
// sent one; it never contains the API key.
type APIError struct {
	// Platform is RunPod or Vast.
	Platform string
	// Call names the request, e.g. "v2 POST /pods/{id}/action (stop)" or "GraphQL podStop".
	Call string
	// StatusCode is the HTTP status; 0 when no response came back.
	StatusCode int
	// Problem is the RFC 9457 problem object of the answer, if it was one.
	Problem *Problem
	// Message is a short excerpt of what the platform said, if it was not a problem object.
	Message string
	// Hint says what the status means for this call, if anything (a 409's cause).
	Hint string
	// Err is the transport error when no response came back, or the error reading one.
	Err error

	key string // redacted from every message
}

// Error describes the failure in one line.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s API: %s", e.Platform, e.Call)
	switch {
	case e.StatusCode != 0:
		fmt.Fprintf(&b, ": HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
		if e.Err != nil {
			fmt.Fprintf(&b, ": %v", e.Err)
		}
	case e.Err != nil:
		fmt.Fprintf(&b, ": no response: %v", e.Err)
	}
	if e.Problem != nil {
		fmt.Fprintf(&b, ": %s", e.Problem)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return redact.Values(b.String(), e.key)
}

// Unwrap returns the transport error, if any.
func (e *APIError) Unwrap() error { return e.Err }

// Is reports whether target is ErrConflict and the platform answered 409.
func (e *APIError) Is(target error) bool {
	return target == ErrConflict && e.StatusCode == http.StatusConflict
}

// validPodID admits RunPod pod ids ("riixlu8oclhp"): letters, digits, '-' and '_'. It keeps
// anything else out of the URL path and the GraphQL text.
func validPodID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// runpodController drives RunPod's REST API v2 and, as a fallback or on request, its
// GraphQL API.
type runpodController struct {
	podID  string
	base   string // REST API v2 base, no trailing slash
	gqlURL string // "": no GraphQL fallback
	api    RunPodAPI
	caller caller
	logger *slog.Logger
}

// Stop stops the pod: v2 POST /pods/{id}/action with {"action":"stop"}, 200 with the
// pod, 409 when the pod's status does not allow a stop (runpod/docs,
// api-reference-v2/openapi.json, operation podAction); GraphQL podStop (runpod/docs,
// sdks/graphql/manage-pods.mdx).
func (r *runpodController) Stop(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"action": "stop"}) // a map of strings always marshals
	return r.do(ctx,
		apiCall{
			name:   "v2 POST /pods/{id}/action (stop)",
			method: http.MethodPost,
			url:    r.base + "/pods/" + url.PathEscape(r.podID) + "/action",
			body:   body,
			hints:  map[int]string{http.StatusConflict: "the pod's current status does not allow a stop"},
		},
		r.graphQL("podStop", `mutation { podStop(input: {podId: "`+r.podID+`"}) { id desiredStatus } }`))
}

// Terminate deletes the pod: v2 DELETE /pods/{id}, 204 with no body; its 409 is documented
// for a pod that belongs to an Instant Cluster (runpod/docs, api-reference-v2/openapi.json,
// operation deletePod). GraphQL podTerminate is the mutation RunPod's SDK sends
// (runpod/runpod-python, runpod/api/mutations/pods.py).
func (r *runpodController) Terminate(ctx context.Context) error {
	return r.do(ctx,
		apiCall{
			name:   "v2 DELETE /pods/{id} (terminate)",
			method: http.MethodDelete,
			url:    r.base + "/pods/" + url.PathEscape(r.podID),
			hints: map[int]string{http.StatusConflict: "the pod's current state does not allow a terminate; " +
				"RunPod documents this answer for a pod that belongs to an Instant Cluster, which only deleting the cluster ends"},
		},
		r.graphQL("podTerminate", `mutation { podTerminate(input: {podId: "`+r.podID+`"}) }`))
}

// graphQL builds a GraphQL call. The key goes in an Authorization: Bearer header, as
// RunPod's SDK sends it (runpod/runpod-python, runpod/api/graphql.py), not in the
// ?api_key= query parameter the docs' curl examples use: a URL ends up in error messages
// and proxy logs, a header does not.
func (r *runpodController) graphQL(mutation, query string) apiCall {
	body, _ := json.Marshal(map[string]string{"query": query}) // a map of strings always marshals
	return apiCall{
		name:   "GraphQL " + mutation,
		method: http.MethodPost,
		url:    r.gqlURL,
		body:   body,
		check:  checkGraphQL,
	}
}

func (r *runpodController) do(ctx context.Context, rest, gql apiCall) error {
	switch r.api {
	case RunPodREST:
		return r.caller.do(ctx, rest)
	case RunPodGraphQL:
		return r.caller.do(ctx, gql)
	}
	restErr := r.caller.do(ctx, rest)
	if restErr == nil || ctx.Err() != nil {
		return restErr
	}
	why, ok := fallbackReason(restErr)
	if !ok {
		return restErr
	}
	if r.gqlURL == "" {
		return fmt.Errorf("%w (no GraphQL fallback: %s replaces RunPod's API v2)", restErr, RunPodURLEnv)
	}
	if r.logger != nil {
		r.logger.WarnContext(ctx, "runpod API v2 call failed; trying GraphQL", "why", why, "err", restErr)
	}
	if gqlErr := r.caller.do(ctx, gql); gqlErr != nil {
		return fmt.Errorf("%w; GraphQL fallback (%s): %w", restErr, why, gqlErr)
	}
	return nil
}

// fallbackReason says whether a failed v2 call leaves GraphQL to try, and why. Only when
// v2 gave no answer about the pod:
//
//   - no response (DNS, connection, TLS, timeout): v2 is unreachable;
//   - 410 Gone: v2 is retired;
//   - 404 that is not a problem object: the route is missing (v2 answers its own 404,
//     "resource not found or not accessible to the caller", with one);
//   - 401 or 403: v2 refused the key; nothing documents whether v2 accepts the
//     pod-scoped RUNPOD_API_KEY, which GraphQL has long taken;
//   - 5xx: v2 failed on its side.
//
// Every other answer is v2's word on this pod and is final: a 404 problem object (no such
// pod), 409 (its state does not allow the action: never worked around), 400 or 422 (a bad
// request, which GraphQL would not mend), 429 (rate limited).
func fallbackReason(err error) (string, bool) {
	var e *APIError
	if !errors.As(err, &e) {
		return "", false
	}
	switch s := e.StatusCode; {
	case s == 0:
		return "v2 unreachable", true
	case s == http.StatusGone:
		return "v2 gone (410)", true
	case s == http.StatusNotFound && e.Problem == nil:
		return "no v2 route (404 without a problem object)", true
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return fmt.Sprintf("v2 refused the key (%d)", s), true
	case s >= 500:
		return fmt.Sprintf("v2 server error (%d)", s), true
	}
	return "", false
}

// checkGraphQL fails a 200 answer that carries GraphQL errors: {"errors":[{"message":...}]}.
func checkGraphQL(body []byte) string {
	var resp struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &resp) != nil || len(resp.Errors) == 0 {
		return ""
	}
	msg := resp.Errors[0].Message
	if msg == "" {
		msg = "GraphQL error"
	}
	return msg
}

// vastController drives Vast.ai's REST API.
type vastController struct {
	id     string
	base   string
	caller caller
}

// Stop stops the instance: PUT /instances/{id}/ with {"state": "stopped"}, "Stops a
// running container and updates its status to 'stopped'" (vast-ai/docs,
// api-reference/openapi/yaml/stop_instance.yaml; the body as the CLI's "stop instance"
// sends it, vast-ai/vast-cli vast.py stop_instance).
func (v *vastController) Stop(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"state": "stopped"}) // a map of strings always marshals
	return v.caller.do(ctx, apiCall{
		name:   "PUT /instances/{id}/ (stop)",
		method: http.MethodPut,
		url:    v.base + "/instances/" + v.id + "/",
		body:   body,
		check:  checkVast,
	})
}

// Terminate destroys the instance: DELETE /instances/{id}/ (vast-ai/docs,
// api-reference/openapi/yaml/destroy_instance.yaml).
func (v *vastController) Terminate(ctx context.Context) error {
	return v.caller.do(ctx, apiCall{
		name:   "DELETE /instances/{id}/ (destroy)",
		method: http.MethodDelete,
		url:    v.base + "/instances/" + v.id + "/",
		check:  checkVast,
	})
}

// checkVast fails a 2xx answer of {"success": false, "msg": ...}.
func checkVast(body []byte) string {
	var resp struct {
		Success *bool  `json:"success"`
		Error   string `json:"error"`
		Msg     string `json:"msg"`
	}
	if json.Unmarshal(body, &resp) != nil || resp.Success == nil || *resp.Success {
		return ""
	}
	msg := strings.TrimSpace(resp.Error + " " + resp.Msg)
	if msg == "" {
		msg = "success: false"
	}
	return msg
}

// apiCall is one request to a platform API.
type apiCall struct {
	name   string // for errors: "v2 POST /pods/{id}/action (stop)"
	method string
	url    string
	body   []byte              // JSON; nil for none
	check  func([]byte) string // a failure reported in a 2xx body, or ""
	hints  map[int]string      // what an error status means for this call
}

// caller sends API calls with a bearer key and a bounded time.
type caller struct {
	platform string
	client   *http.Client
	key      string
	timeout  time.Duration
}

// maxBody bounds how much of an answer is read.
const maxBody = 64 << 10

func (c caller) do(ctx context.Context, call apiCall) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	fail := func(status int, err error) *APIError {
		return &APIError{Platform: c.platform, Call: call.name, StatusCode: status, Hint: call.hints[status], Err: err, key: c.key}
	}
	var body io.Reader
	if call.body != nil {
		body = bytes.NewReader(call.body)
	}
	req, err := http.NewRequestWithContext(ctx, call.method, call.url, body)
	if err != nil {
		return fail(0, fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json, application/problem+json")
	if call.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s: %w", c.timeout, err)
		}
		return fail(0, err)
	}
	defer resp.Body.Close()
	b, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := fail(resp.StatusCode, nil)
		if e.Problem = parseProblem(resp.Header.Get("Content-Type"), b); e.Problem == nil {
			e.Message = excerpt(b)
		}
		return e
	}
	if call.check == nil {
		return nil // the status is the answer; a body cut short does not matter
	}
	if readErr != nil {
		return fail(resp.StatusCode, fmt.Errorf("reading the answer: %w", readErr))
	}
	if msg := call.check(b); msg != "" {
		e := fail(resp.StatusCode, nil)
		e.Message = "rejected: " + excerpt([]byte(msg))
		return e
	}
	return nil
}

// Excerpt returns the start of an answer on one line, for an APIError's
// Message (agent/launch's provider clients use it too).
func Excerpt(b []byte) string { return excerpt(b) }

// excerpt returns the start of an answer on one line.
func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
