package s3aws_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/storage"
)

// TestNoCredentialsIsOneError finds no credentials anywhere: no AWS_*
// variables, no shared files, and an instance metadata service that answers
// 404 to the IMDSv2 token, so the SDK warns "falling back to IMDSv1" before
// it finds no role either. The warning must reach slog at Debug only, and
// the error be one line saying no usable credentials. It swaps os.Stderr and
// the default slog logger, so it does not run in parallel.
func TestNoCredentialsIsOneError(t *testing.T) {
	var tokenAsked atomic.Bool
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest/api/token" {
			tokenAsked.Store(true)
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(imds.Close)
	home := t.TempDir()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AWS_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	t.Setenv("HOME", home)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "credentials"))
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)

	h, printed := capture(t)
	s, err := s3aws.New(t.Context(), s3config.Config{Bucket: "bkt", Endpoint: "http://127.0.0.1:1", Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Stat(t.Context(), "k")
	if out := printed(); out != "" {
		t.Errorf("the SDK printed on stderr:\n%s", out)
	}
	if !errors.Is(err, storage.ErrAuth) || !strings.Contains(err.Error(), "no usable credentials") || strings.Contains(err.Error(), "\n") {
		t.Errorf("want one line of ErrAuth saying no usable credentials, got: %v", err)
	}
	if !tokenAsked.Load() {
		t.Fatal("the SDK never asked the metadata service for a token")
	}
	h.atDebug(t, "falling back to IMDSv1")
}
