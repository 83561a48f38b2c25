package docs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/internal/buildflags"
	"github.com/batonrun/baton/internal/imagetest"
	"github.com/batonrun/baton/internal/s3test"
)

// notRun are the commands of shell blocks that TestDocCommandsRun does not
// run (TestDocCommandsParse still checks them), by file and a part of the
// command line, with the reason. An entry that matches no command fails the
// test, so the list stays as short as the docs allow.
var notRun = []struct{ file, contains, why string }{
	{"README.md", "-- python train.py", "the user's trainer (train.py) in a pod"},
	{"docs/guide-trainers.md", "examples/hf_trainer.py", "PyTorch and transformers, and a GPU to be worth it"},
	{"docs/guide-vast.md", "--detach", "the user's trainer (/app/train.py), from a Vast.ai instance's on-start script"},
	{"docs/notifications.md", "--notify https://hooks.slack.com", "the user's trainer (train.py) and a Slack webhook"},
	{"docs/launch.md", "--config run.yaml", "RunPod and Vast.ai accounts (RUNPOD_API_KEY, VAST_API_KEY) for the page's run.yaml; agent/watch_e2e_test.go runs the loop with the local provider"},
}

// skipReason returns why ex is not run, or "".
func skipReason(ex example) string {
	for _, s := range notRun {
		if s.file == ex.file && strings.Contains(ex.text, s.contains) {
			return s.why
		}
	}
	return ""
}

// TestDocCommandsRun runs the complete baton commands of the shell blocks of
// every doc, in the order each page gives them, as a user reading it would,
// and wants each to exit 0. Each page is one user: its own bucket on a
// versitygw server and its own file stores, and a page's exports apply to
// the rest of it. Each command runs on a fresh host: a new directory for the
// absolute paths it names and for its working directory, with bin/baton and
// examples/ in it. Placeholders are replaced: every s3:// bucket by the
// page's bucket (an endpoint= and region= by the server's), file:///PATH by
// a directory of the page, an absolute /PATH by the host's, $PWD by the
// host's directory (and $VAR by its value), and the AWS_* credentials by the server's. What a page
// takes for granted is made first: a checkpoint of the run a command reads
// that the page did not commit itself, files under a prefix it pulls, files
// in a directory it pushes or commits.
func TestDocCommandsRun(t *testing.T) {
	exs, _ := readDocs(t)
	var run []example
	skipped := map[string]bool{}
	for _, ex := range exs {
		if !ex.shell || placeholders(ex.args) {
			continue
		}
		if why := skipReason(ex); why != "" {
			t.Logf("not run: %s (needs %s)", ex, why)
			skipped[ex.file+"\x00"+ex.text] = true
			continue
		}
		run = append(run, ex)
	}
	for _, s := range notRun {
		found := false
		for k := range skipped {
			file, text, _ := strings.Cut(k, "\x00")
			found = found || file == s.file && strings.Contains(text, s.contains)
		}
		if !found {
			t.Errorf("notRun: no command of %s holds %q: remove the entry", s.file, s.contains)
		}
	}
	if len(run) < 15 {
		t.Fatalf("%d commands to run, want at least 15: is the extractor broken?", len(run))
	}

	imagetest.LookPath(t, "python3") // examples/README.md runs trainer.py; skips, or fails under BATON_REQUIRE_ALL=1
	srv := s3test.Start(t, s3test.Versitygw)
	bin := filepath.Join(t.TempDir(), "baton")
	if err := buildflags.Build(bin); err != nil {
		t.Fatal(err)
	}
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var pages []string
	byPage := map[string][]example{}
	for _, ex := range run {
		if byPage[ex.file] == nil {
			pages = append(pages, ex.file)
		}
		byPage[ex.file] = append(byPage[ex.file], ex)
	}
	for _, page := range pages {
		t.Run(page, func(t *testing.T) {
			u := &user{t: t, srv: srv, bucket: srv.NewBucket(t), stores: t.TempDir(), bin: bin, examples: examples,
				committed: map[string]bool{}}
			for _, ex := range byPage[page] {
				u.run(ex)
			}
		})
	}
	t.Logf("ran %d commands of %d pages in %s; %d not run", len(run), len(pages), time.Since(start).Round(time.Millisecond),
		len(skipped))
}

// user is one reader of one page.
type user struct {
	t        *testing.T
	srv      *s3test.Server
	bucket   string
	stores   string // the root of the page's file:// stores
	bin      string
	examples string
	// committed are the STORE\x00RUN pairs that hold a checkpoint.
	committed map[string]bool
	hosts     int
}

// host makes a fresh host directory, with bin/baton and examples/.
func (u *user) host() string {
	u.hosts++
	dir := filepath.Join(u.t.TempDir(), fmt.Sprintf("host%d", u.hosts))
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		u.t.Fatal(err)
	}
	if err := os.Symlink(u.bin, filepath.Join(dir, "bin", "baton")); err != nil {
		u.t.Fatal(err)
	}
	if err := os.Symlink(u.examples, filepath.Join(dir, "examples")); err != nil {
		u.t.Fatal(err)
	}
	return dir
}

// subst replaces the placeholders of one word (see TestDocCommandsRun); a
// flag's value after = and a variable's value are replaced alike.
func (u *user) subst(word, host string) string {
	if name, value, ok := strings.Cut(word, "="); ok && (strings.HasPrefix(name, "-") || assignmentWord.MatchString(word)) {
		return name + "=" + u.subst(value, host)
	}
	switch {
	case strings.HasPrefix(word, "s3://"):
		loc, err := url.Parse(word)
		if err != nil {
			u.t.Fatalf("%s: %v", word, err)
		}
		loc.Host = u.bucket
		q := loc.Query()
		if q.Has("endpoint") {
			q.Set("endpoint", u.srv.Endpoint)
		}
		if q.Has("region") {
			q.Set("region", u.srv.Region)
		}
		loc.RawQuery = q.Encode()
		return loc.String()
	case strings.HasPrefix(word, "file:///"):
		return "file://" + filepath.Join(u.stores, strings.TrimPrefix(word, "file://"))
	case strings.HasPrefix(word, "/"):
		p := filepath.Join(host, word)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			u.t.Fatal(err)
		}
		return p
	}
	return word
}

// env is the environment of a command on host: the test's, without what
// configures baton, a platform or AWS; the server's credentials and
// endpoint; then the page's assignments, replaced.
func (u *user) env(ex example, host string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "BATON_") || strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "RUNPOD_") ||
			strings.HasPrefix(name, "VAST_") || name == "CONTAINER_ID" || name == "CONTAINER_API_KEY" ||
			name == "KUBERNETES_SERVICE_HOST" || name == "PWD" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PWD="+host)
	for _, kv := range ex.env {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, os.Expand(u.subst(kv, host), envLookup(env)))
		}
	}
	return append(env, "AWS_ACCESS_KEY_ID="+u.srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+u.srv.SecretKey,
		"AWS_ENDPOINT_URL_S3="+u.srv.Endpoint, "AWS_REGION="+u.srv.Region)
}

// run runs ex on a fresh host, after making what it takes for granted.
func (u *user) run(ex example) {
	t := u.t
	host := u.host()
	args := make([]string, len(ex.args))
	env := u.env(ex, host)
	for i, a := range ex.args {
		args[i] = os.Expand(u.subst(a, host), envLookup(env))
	}
	c, rest, ok, err := lookup(args)
	if err != nil {
		t.Fatalf("%s: %v", ex, err)
	}
	if ok {
		u.prepare(ex, c, rest, env, host)
	}
	out, err := u.baton(host, env, args...)
	switch {
	case err != nil:
		t.Errorf("%s\n\tran: baton %s\n\t%v\n%s", ex, strings.Join(args, " "), err, out)
	case strings.Contains(out, "no baton command reads it"):
		t.Errorf("%s\n\tsets a variable that baton warns of:\n%s", ex, out)
	default:
		t.Logf("%s: ok", ex)
	}
}

// prepare makes what command c (its arguments after its name: rest) takes
// for granted, and notes the run it commits to.
func (u *user) prepare(ex example, c config.Command, rest, env []string, host string) {
	t := u.t
	dst := c.Settings()
	operands, err := config.LoadInto(dst, rest, envLookup(env), nil)
	if err != nil {
		t.Fatalf("%s: %v", ex, err)
	}
	seed := func(dir string) {
		if _, err := os.Stat(dir); err == nil {
			return
		}
		for name, size := range map[string]int{"model.bin": 300 << 10, "state.json": 40, "sub/notes.txt": 5} {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, bytes.Repeat([]byte(name[:1]), size), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	switch c.Name {
	case "push":
		if len(operands) > 0 {
			seed(operands[0])
		}
	case "pull":
		if len(operands) > 0 {
			dir := filepath.Join(t.TempDir(), "seed")
			seed(dir)
			if out, err := u.baton(host, env, "push", dir, operands[0]); err != nil {
				t.Fatalf("%s: making %s to pull: %v\n%s", ex, operands[0], err, out)
			}
		}
	}
	var r *config.Repo
	switch s := dst.(type) {
	case *config.Config: // baton run: it commits at the end
		u.committed[s.Store+"\x00"+s.RunID] = true
		return
	case *config.CheckpointCommit:
		if len(operands) > 0 {
			seed(operands[0])
		}
		u.committed[s.Store+"\x00"+s.RunID] = true
		return
	case *config.CheckpointList:
		r = &s.Repo
	case *config.CheckpointRestore:
		r = &s.Repo
	case *config.CheckpointVerify:
		r = &s.Repo
	case *config.CheckpointHosts:
		r = &s.Repo
	case *config.Repo: // pin, unpin
		r = s
	case *config.CheckpointGC:
		r = &config.Repo{Store: s.Store, RunID: s.RunID}
	}
	if r == nil || r.RunID == "" || u.committed[r.Store+"\x00"+r.RunID] {
		return
	}
	dir := filepath.Join(t.TempDir(), "checkpoint")
	seed(dir)
	if out, err := u.baton(host, env, "checkpoint", "commit", "--store", r.Store, "--run", r.RunID, dir); err != nil {
		t.Fatalf("%s: committing a checkpoint of run %s first: %v\n%s", ex, r.RunID, err, out)
	}
	u.committed[r.Store+"\x00"+r.RunID] = true
}

// baton runs the binary in dir with env and returns its output.
func (u *user) baton(dir string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.bin, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return string(out), err
}
