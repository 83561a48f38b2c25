package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Controller stops or terminates the instance baton runs on, through its platform's API.
type Controller interface {
	// Stop stops the instance: compute billing ends, the disk is kept (and billed).
	Stop(ctx context.Context) error
	// Terminate deletes the instance and its disk; billing ends.
	Terminate(ctx context.Context) error
}

// Errors NewController wraps, for errors.Is.
var (
	// ErrNoAPI: the platform has no API baton can drive (Kubernetes, Lambda, Docker, local).
	ErrNoAPI = errors.New("no API to stop or terminate the instance on this platform")
	// ErrNoKey: the platform's API key variable is not set.
	ErrNoKey = errors.New("API key is not set")
)

// RunPodAPI selects which of RunPod's two APIs carries the exit action.
type RunPodAPI string

// The RunPod API choices.
const (
	// RunPodAuto tries REST first and GraphQL when REST fails. REST is RunPod's current
	// API; GraphQL is deprecated (to be retired in early 2027, per
	// https://docs.runpod.io/sdks/graphql/configurations) but is the long-standing one that
	// RunPod's Python SDK still uses to stop and terminate pods, and nothing documents
	// whether REST accepts the pod-scoped RUNPOD_API_KEY, so GraphQL is the fallback.
	RunPodAuto RunPodAPI = "auto"
	// RunPodREST uses only https://rest.runpod.io/v1.
	RunPodREST RunPodAPI = "rest"
	// RunPodGraphQL uses only https://api.runpod.io/graphql.
	RunPodGraphQL RunPodAPI = "graphql"
)

// Default endpoints and timeout.
const (
	// DefaultRunPodRESTURL is the REST API's server
	// (https://docs.runpod.io/api-reference/pods/POST/pods/podId/stop).
	DefaultRunPodRESTURL = "https://rest.runpod.io/v1"
	// DefaultRunPodGraphQLURL is the GraphQL endpoint (https://docs.runpod.io/sdks/graphql/configurations).
	DefaultRunPodGraphQLURL = "https://api.runpod.io/graphql"
	// DefaultVastURL is the Vast.ai REST API's base: server https://console.vast.ai, paths
	// under /api/v0, a Bearer key (https://docs.vast.ai/api-reference/authentication).
	DefaultVastURL = "https://console.vast.ai/api/v0"
	// DefaultCallTimeout bounds one API call, so a platform that does not answer never
	// holds the exit. With RunPodAuto a failed REST call is followed by one GraphQL call.
	DefaultCallTimeout = 15 * time.Second
)

// ControllerOptions adjusts NewController. The zero value uses the platforms' real
// endpoints, RunPodAuto and DefaultCallTimeout.
type ControllerOptions struct {
	// RunPodRESTURL, RunPodGraphQLURL and VastURL replace the platforms' endpoints (tests
	// point them at local fake servers).
	RunPodRESTURL    string
	RunPodGraphQLURL string
	VastURL          string
	// RunPodAPI selects RunPod's REST or GraphQL API, or REST with GraphQL as the fallback.
	RunPodAPI RunPodAPI
	// Timeout bounds each API call; 0 means DefaultCallTimeout.
	Timeout time.Duration
	// Logger, if set, hears about a RunPod REST failure that GraphQL is about to retry.
	Logger *slog.Logger
}

// NewController returns the Controller for the instance d describes, with the API key read
// through getenv: RUNPOD_API_KEY on RunPod (the pod-scoped key RunPod sets in every pod,
// https://docs.runpod.io/pods/references/environment-variables), CONTAINER_API_KEY on
// Vast.ai (the per-instance key, https://docs.vast.ai/documentation/instances/docker-environment).
// A nil client means a new http.Client. The error wraps ErrNoAPI for a platform without an
// API and ErrNoKey when the key variable is empty; it names the variable, never its value.
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
		return &runpodController{
			podID:   d.InstanceID,
			restURL: strings.TrimRight(orDefault(opts.RunPodRESTURL, DefaultRunPodRESTURL), "/"),
			gqlURL:  orDefault(opts.RunPodGraphQLURL, DefaultRunPodGraphQLURL),
			api:     api,
			caller:  caller{platform: RunPod, client: client, key: key, timeout: opts.Timeout},
			logger:  opts.Logger,
		}, nil
	case Vast:
		key := strings.TrimSpace(getenv("CONTAINER_API_KEY"))
		if key == "" {
			return nil, fmt.Errorf("vast: CONTAINER_API_KEY: %w", ErrNoKey)
		}
		// The API takes the instance id as an integer (vast-ai/docs,
		// api-reference/openapi/yaml/auto_put_api_v0_instances_id_4ff617.yaml).
		if n, err := strconv.ParseUint(d.InstanceID, 10, 64); err != nil || n == 0 {
			return nil, fmt.Errorf("vast: instance id %q (CONTAINER_ID) is not a number", d.InstanceID)
		}
		return &vastController{
			id:     d.InstanceID,
			base:   strings.TrimRight(orDefault(opts.VastURL, DefaultVastURL), "/"),
			caller: caller{platform: Vast, client: client, key: key, timeout: opts.Timeout},
		}, nil
	}
	return nil, fmt.Errorf("%s: %w", d.Platform, ErrNoAPI)
}

// APIError is a failed platform API call. Its message names the platform, the call and
// the HTTP status; it never contains the API key.
type APIError struct {
	// Platform is RunPod or Vast.
	Platform string
	// Call names the request, e.g. "REST POST /pods/{podId}/stop" or "GraphQL podStop".
	Call string
	// StatusCode is the HTTP status; 0 when no response came back.
	StatusCode int
	// Message is a short excerpt of what the platform said, if anything.
	Message string
	// Err is the transport error when no response came back.
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
	case e.Err != nil:
		fmt.Fprintf(&b, ": no response: %v", e.Err)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return redact(b.String(), e.key)
}

// Unwrap returns the transport error, if any.
func (e *APIError) Unwrap() error { return e.Err }

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

// runpodController drives RunPod's REST API and, as a fallback or on request, its GraphQL API.
type runpodController struct {
	podID   string
	restURL string
	gqlURL  string
	api     RunPodAPI
	caller  caller
	logger  *slog.Logger
}

// Stop stops the pod: REST POST /pods/{podId}/stop
// (https://docs.runpod.io/api-reference/pods/POST/pods/podId/stop), GraphQL podStop
// (https://docs.runpod.io/sdks/graphql/manage-pods).
func (r *runpodController) Stop(ctx context.Context) error {
	return r.do(ctx,
		apiCall{name: "REST POST /pods/{podId}/stop", method: http.MethodPost, url: r.restURL + "/pods/" + url.PathEscape(r.podID) + "/stop"},
		r.graphQL("podStop", `mutation { podStop(input: {podId: "`+r.podID+`"}) { id desiredStatus } }`))
}

// Terminate deletes the pod: REST DELETE /pods/{podId}
// (https://docs.runpod.io/api-reference/pods/DELETE/pods/podId), GraphQL podTerminate
// (the mutation RunPod's SDK sends: runpod/runpod-python, runpod/api/mutations/pods.py).
func (r *runpodController) Terminate(ctx context.Context) error {
	return r.do(ctx,
		apiCall{name: "REST DELETE /pods/{podId}", method: http.MethodDelete, url: r.restURL + "/pods/" + url.PathEscape(r.podID)},
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
	if restErr == nil {
		return nil
	}
	if ctx.Err() != nil {
		return restErr
	}
	if r.logger != nil {
		r.logger.WarnContext(ctx, "runpod REST call failed; trying GraphQL", "err", restErr)
	}
	if gqlErr := r.caller.do(ctx, gql); gqlErr != nil {
		return fmt.Errorf("%w; fallback: %w", restErr, gqlErr)
	}
	return nil
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

// Stop stops the instance: PUT /instances/{id}/ with {"state": "stopped"}, the "Update
// Instance" call that sets the target state (vast-ai/docs,
// api-reference/openapi/yaml/auto_put_api_v0_instances_id_4ff617.yaml; the body as the
// CLI's "stop instance" sends it, vast-ai/vast-cli openapi/tests/stop_instance.py).
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
// api-reference/openapi/yaml/auto_delete_api_v0_instances_id_4ff617.yaml).
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
	name   string // for errors: "REST POST /pods/{podId}/stop"
	method string
	url    string
	body   []byte              // JSON; nil for none
	check  func([]byte) string // a failure reported in a 2xx body, or ""
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
	fail := func(status int, msg string, err error) error {
		return &APIError{Platform: c.platform, Call: call.name, StatusCode: status, Message: msg, Err: err, key: c.key}
	}
	var body io.Reader
	if call.body != nil {
		body = bytes.NewReader(call.body)
	}
	req, err := http.NewRequestWithContext(ctx, call.method, call.url, body)
	if err != nil {
		return fail(0, "", fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if call.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s: %w", c.timeout, err)
		}
		return fail(0, "", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fail(resp.StatusCode, excerpt(b), nil)
	}
	if err != nil {
		return fail(0, "", fmt.Errorf("read answer (HTTP %d): %w", resp.StatusCode, err))
	}
	if call.check != nil {
		if msg := call.check(b); msg != "" {
			return fail(resp.StatusCode, "rejected: "+excerpt([]byte(msg)), nil)
		}
	}
	return nil
}

// excerpt returns the start of an answer on one line.
func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// redact removes every occurrence of key from s.
func redact(s, key string) string {
	if key == "" {
		return s
	}
	return strings.ReplaceAll(s, key, "[REDACTED]")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
