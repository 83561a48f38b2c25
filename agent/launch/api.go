package launch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/batonrun/baton/agent/platform"
)

// API calls a provider's JSON API with a bearer key: the one HTTP client of
// the runpod and vast providers. Its errors are *platform.APIError, as the
// exit actions' (agent/platform), and never hold the key.
type API struct {
	// Platform names the provider in errors: RunPod, Vast.
	Platform string
	// Base is the API's base URL, without a trailing slash.
	Base string
	// Key is the API key, sent as Authorization: Bearer.
	Key string
	// Client sends the requests.
	Client *http.Client
}

// APIOptions are what a provider's API client is made of.
type APIOptions struct {
	// BaseURL is the API's base ("": the provider's real one).
	BaseURL string
	// Key is the account's API key.
	Key string
	// Client sends the requests (nil: http.DefaultClient).
	Client *http.Client
}

// NewAPI returns the API of platform at base (def where base is empty)
// with key, which must be set: the error names keyVar, the variable it
// comes from.
func NewAPI(platformName, base, def, key, keyVar string, client *http.Client) (API, error) {
	if strings.TrimSpace(key) == "" {
		return API{}, fmt.Errorf("%s: %s (the account's API key) is not set", strings.ToLower(platformName), keyVar)
	}
	if base == "" {
		base = def
	}
	if client == nil {
		client = http.DefaultClient
	}
	return API{Platform: platformName, Base: strings.TrimSuffix(base, "/"), Key: key, Client: client}, nil
}

// maxAnswer bounds what is read of an answer (an offer search can be big).
const maxAnswer = 32 << 20

// Do sends method to Base+path with query and body (JSON; nil for none)
// and decodes a 2xx answer into out (nil: ignore it). name is the call's
// name in errors.
func (a API) Do(ctx context.Context, name, method, path string, query url.Values, body, out any) error {
	fail := func(status int, msg string, err error) error {
		return &platform.APIError{Platform: a.Platform, Call: name, StatusCode: status, Message: msg, Err: err}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fail(0, "", err)
		}
		rd = bytes.NewReader(b)
	}
	u := a.Base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fail(0, "", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.Key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return fail(0, "", errors.New(strings.ReplaceAll(err.Error(), a.Key, "***")))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fail(resp.StatusCode, platform.Excerpt(b), nil)
	}
	if err != nil {
		return fail(resp.StatusCode, "", fmt.Errorf("reading the answer: %w", err))
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fail(resp.StatusCode, platform.Excerpt(b), fmt.Errorf("decoding the answer: %w", err))
		}
	}
	return nil
}

// Uncertain wraps err with ErrUncertain when the call may have taken
// effect all the same: no answer came back (a timeout, a reset
// connection) or the server failed (5xx).
func Uncertain(err error) error {
	var e *platform.APIError
	if errors.As(err, &e) && (e.StatusCode == 0 || e.StatusCode >= 500) {
		return fmt.Errorf("%w: %w", ErrUncertain, err)
	}
	return err
}

// NotFound wraps err with ErrNotFound when the provider answered 404.
func NotFound(err error) error {
	var e *platform.APIError
	if errors.As(err, &e) && e.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// ShellJoin writes args as one shell command line, quoting each word that
// needs it: the form a provider's single args or start-script string
// takes.
func ShellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
