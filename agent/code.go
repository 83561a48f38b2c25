package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/platform"
	"github.com/batonrun/baton/internal/progress"
	"github.com/batonrun/baton/internal/redact"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/storeurl"
	"github.com/batonrun/baton/sync/transfer"
)

var commitHash = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// fetchCode brings --code into --code-dir before the trainer starts: a git
// clone (at #ref), a mirror of a store prefix, or an unpacked tarball. A git
// checkout or tarball already unpacked there (baton restarted on the same
// host) is left as it is; a prefix is mirrored again, which moves only what
// changed.
func (a *agent) fetchCode(ctx context.Context) error {
	code, err := config.ParseCode(a.cfg.Code)
	if err != nil || code.Kind == config.CodeNone {
		return err
	}
	dir := a.cfg.CodeDir
	getenv := platform.Getenv(a.deps.Environ)
	switch code.Kind {
	case config.CodePrefix:
		src, err := storeurl.Open(ctx, code.URL, storeurl.Options{Driver: a.cfg.S3Driver, Getenv: getenv, MaxConns: a.cfg.Workers})
		if err != nil {
			return fmt.Errorf("code: %w", err)
		}
		st, err := transfer.New(transfer.Options{Workers: a.cfg.Workers, PartSize: int64(a.cfg.PartSize), Logger: a.log, Progress: a.progress()}).Pull(ctx, src, dir)
		if err != nil {
			return fmt.Errorf("code: %w", err)
		}
		a.log.Info("code pulled", "src", src.String(), "dir", dir, "files", st.Files, "up_to_date", st.SkippedFiles)
		return nil
	case config.CodeGit:
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			a.log.Info("code already checked out; leaving it", "dir", dir)
			return nil
		}
		args := []string{"clone", "--quiet"}
		if code.Ref != "" && !commitHash.MatchString(code.Ref) {
			args = append(args, "--depth", "1", "--branch", code.Ref)
		}
		if err := a.git(ctx, append(args, "--", code.URL, dir)...); err != nil {
			return err
		}
		if code.Ref != "" && commitHash.MatchString(code.Ref) {
			if err := a.git(ctx, "-C", dir, "checkout", "--quiet", code.Ref); err != nil {
				return err
			}
		}
		a.log.Info("code cloned", "dir", dir, "ref", code.Ref)
		return nil
	case config.CodeTarball:
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			a.log.Info("code already unpacked; leaving it", "dir", dir)
			return nil
		}
		return a.unpack(ctx, code.URL, dir, getenv)
	}
	return fmt.Errorf("code: unsupported kind %v", code.Kind)
}

// progress shows the pulls, restores and commits that last over a second
// as lines of the agent's log: a first, one every 10 seconds, a last.
func (a *agent) progress() *progress.Reporter { return &progress.Reporter{Log: a.log} }

// git runs git, which must be in the image; its output goes to baton's
// stderr, with the secrets of URLs removed. (It runs before the reaper
// starts, so waiting for it is safe.)
func (a *agent) git(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", args...)
	out := redact.NewWriter(a.deps.Stderr, a.deps.Environ)
	defer out.Flush()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(append([]string(nil), a.deps.Environ...), "GIT_TERMINAL_PROMPT=0")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("code: git %s: %w", args[0], err)
	}
	return nil
}

// unpack downloads a tarball (http(s) or an object in a store) and unpacks
// it into dir with tar, which refuses members that would land outside it.
func (a *agent) unpack(ctx context.Context, url, dir string, getenv func(string) string) error {
	tmp, err := os.CreateTemp("", "baton-code-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var body io.ReadCloser
	if strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("code: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("code: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("code: GET %s: %s", url, resp.Status)
		}
		body = resp.Body
	} else {
		parent, key := path.Split(strings.TrimRight(url, "/"))
		store, err := storeurl.Open(ctx, strings.TrimRight(parent, "/"), storeurl.Options{Driver: a.cfg.S3Driver, Getenv: getenv})
		if err != nil {
			return fmt.Errorf("code: %w", err)
		}
		// The one request of this fetch, retried like any other (a cut body
		// resumes where it stopped).
		if body, _, err = storage.WithRetry(store, storage.DefaultRetry()).Get(ctx, key, 0, -1); err != nil {
			return fmt.Errorf("code: %w", err)
		}
	}
	_, err = io.Copy(tmp, body)
	body.Close()
	if err != nil {
		return fmt.Errorf("code: downloading %s: %w", url, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "tar", "-xf", tmp.Name(), "-C", dir, "--no-same-owner")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("code: unpacking %s: %w: %s", url, err, strings.TrimSpace(string(out)))
	}
	a.log.Info("code unpacked", "src", url, "dir", dir)
	return nil
}
