package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/batonrun/baton/internal/s3test"
)

// stallAt is the size from which stallProxy holds a transfer: the test's
// file is bigger, every listing, lease and manifest smaller.
const stallAt = 1 << 20

// stallProxy is a reverse proxy to an S3 server that holds every big
// transfer in the middle: a request with a body of stallAt bytes or more is
// read whole and never answered; a response of that size is sent up to its
// first 64 KiB and no further. It closes stalled when it first holds one, so
// a test knows the client is mid-transfer, and a held request lasts until
// the client goes away.
type stallProxy struct {
	*httptest.Server
	stalled chan struct{}
	once    sync.Once
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{stalled: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // what the body reader hands over reaches the client
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.ContentLength >= stallAt {
			resp.Body = &stallBody{ReadCloser: resp.Body, left: 64 << 10, ctx: resp.Request.Context(), stall: p.stall}
		}
		return nil
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength >= stallAt {
			_, _ = io.Copy(io.Discard, r.Body)
			p.stall()
			<-r.Context().Done() // the client is gone
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *stallProxy) stall() { p.once.Do(func() { close(p.stalled) }) }

// stallBody passes on left bytes of a response body, then holds until the
// request's context ends.
type stallBody struct {
	io.ReadCloser
	left  int
	ctx   context.Context
	stall func()
}

func (b *stallBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.stall()
		<-b.ctx.Done()
		return 0, b.ctx.Err()
	}
	n, err := b.ReadCloser.Read(p[:min(len(p), b.left)])
	b.left -= n
	return n, err
}

// startBaton starts the baton binary with args, its environment the test's
// without any BATON_*, AWS_* or platform variable, plus extra.
func startBaton(t *testing.T, extra map[string]string, args ...string) (cmd *exec.Cmd, stderr *bytes.Buffer, exited chan error) {
	t.Helper()
	cmd = exec.Command(batonBinary(t), args...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, p := range []string{"BATON_", "AWS_", "RUNPOD_", "VAST_"} {
			if strings.HasPrefix(kv, p) {
				return true
			}
		}
		return false
	})
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return cmd, stderr, exited
}

// TestInterruptExits130Or143 stops pull, push, checkpoint commit and
// checkpoint restore with SIGINT or SIGTERM in the middle of a transfer (a
// proxy holds it, and says when): each prints the one line "baton CMD:
// interrupted", with no context or transient error, and exits 128+signal,
// and a pull or restore leaves no file under its real name.
func TestInterruptExits130Or143(t *testing.T) {
	srv := s3test.Start(t, s3test.Versitygw)
	bucket := srv.NewBucket(t)
	creds := map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_REGION": srv.Region}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "big.bin"), randomData(14, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	with := func(kv ...string) map[string]string { return withEnv(creds, kv...) }
	store := func(endpoint, prefix string) string { return "s3://" + bucket + "/" + prefix + "?endpoint=" + endpoint }
	finish := func(env map[string]string, args ...string) {
		t.Helper()
		_, stderr, exited := startBaton(t, env, args...)
		if err := <-exited; err != nil {
			t.Fatalf("baton %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
	}
	finish(creds, "push", "--progress=none", src, store(srv.Endpoint, "data"))
	finish(with("BATON_STORE", store(srv.Endpoint, "ckpt"), "BATON_RUN_ID", "r"), "checkpoint", "commit", src)

	cases := []struct {
		name string
		sig  syscall.Signal
		want int
		// args returns the environment and the command line through the
		// proxy at endpoint, into or from dst.
		args func(endpoint, dst string) (map[string]string, []string)
		// pulls is true when dst must hold no file under its real name.
		pulls bool
	}{
		{"pull/SIGINT", syscall.SIGINT, 130, func(ep, dst string) (map[string]string, []string) {
			return creds, []string{"pull", "--progress=none", store(ep, "data"), dst}
		}, true},
		{"pull/SIGTERM", syscall.SIGTERM, 143, func(ep, dst string) (map[string]string, []string) {
			return creds, []string{"pull", "--progress=none", store(ep, "data"), dst}
		}, true},
		{"push/SIGINT", syscall.SIGINT, 130, func(ep, dst string) (map[string]string, []string) {
			return creds, []string{"push", "--progress=none", src, store(ep, "pushed")}
		}, false},
		{"commit/SIGTERM", syscall.SIGTERM, 143, func(ep, dst string) (map[string]string, []string) {
			return with("BATON_STORE", store(ep, "ckpt2"), "BATON_RUN_ID", "r"), []string{"checkpoint", "commit", src}
		}, false},
		{"restore/SIGINT", syscall.SIGINT, 130, func(ep, dst string) (map[string]string, []string) {
			return with("BATON_STORE", store(ep, "ckpt"), "BATON_RUN_ID", "r"), []string{"checkpoint", "restore", dst}
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proxy := startStallProxy(t, srv.Endpoint)
			dst := t.TempDir()
			env, args := c.args(proxy.URL, dst)
			cmd, stderr, exited := startBaton(t, env, args...)
			select {
			case <-proxy.stalled:
			case err := <-exited:
				t.Fatalf("baton %s ended before its transfer stalled: %v\n%s", strings.Join(args, " "), err, stderr)
			}
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			err := <-exited
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != c.want {
				t.Fatalf("after %v: %v, want exit status %d\n%s", c.sig, err, c.want, stderr)
			}
			want := "baton " + args[0] + ": interrupted"
			if got := strings.TrimSpace(stderr.String()); got != want {
				t.Fatalf("stderr is\n%s\nwant the one line %q", got, want)
			}
			if _, err := os.Stat(filepath.Join(dst, "big.bin")); c.pulls && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("an interrupted %s left big.bin in the destination (%v)", args[0], err)
			}
		})
	}
}
