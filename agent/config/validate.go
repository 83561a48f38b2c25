package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/batonrun/baton/agent/notify"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/redact"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/storeurl"
)

// Limits that Validate enforces.
const (
	MinCheckpointInterval = 10 * time.Second
	MinGrace              = time.Second
	MaxGrace              = 10 * time.Minute
	MinStopWindow         = 2 * time.Second
	MaxStopWindow         = 24 * time.Hour
	MinLeaseDuration      = 10 * time.Second
	MaxLeaseDuration      = time.Hour
	MaxWorkers            = 1024
	MaxPartSize           = 5 << 30 // S3's largest part
	MinTelemetryInterval  = 100 * time.Millisecond
	MinHangTimeout        = time.Minute
)

// Validate returns the first problem of c, in the order of Config's fields,
// as a *Error that names the key the way the user wrote it; nil if there is
// none.
func (c Config) Validate() error {
	v := reflect.ValueOf(c)
	for _, s := range Settings() {
		if err := c.check(s, v.Field(s.index)); err != nil {
			return err
		}
	}
	return nil
}

// check returns the problem of setting s, whose value is v, or nil.
func (c Config) check(s Setting, v reflect.Value) error {
	fail := func(format string, args ...any) error { return c.fail(s, fmt.Sprintf(format, args...)) }
	if s.Values != nil {
		if got := v.String(); !(got == "" && s.Default == "") && !slices.Contains(s.Values, got) {
			return fail("want %s", orList(s.Values))
		}
	}
	switch s.Flag {
	case "store":
		if c.Store == "" {
			return fail("required (or set %s, or %s in the config file)", s.Env, s.YAML)
		}
		if p := storeURLProblem(c.Store); p != "" {
			return fail("%s", p)
		}
	case "run":
		if c.RunID == "" {
			return fail("required (or set %s, or %s in the config file)", s.Env, s.YAML)
		}
		if err := checkpoint.CheckRunID(c.RunID); err != nil {
			return fail("want 1 to 128 of [A-Za-z0-9._-], not starting with a dot")
		}
	case "checkpoint-dir":
		if strings.TrimSpace(c.CheckpointDir) == "" {
			return fail("empty")
		}
	case "checkpoint-interval":
		if c.CheckpointInterval != 0 && c.CheckpointInterval < MinCheckpointInterval {
			return fail("want 0 (no timed commits) or at least %s", MinCheckpointInterval)
		}
	case "quiescence":
		if c.Quiescence < 0 {
			return fail("negative")
		}
		if c.CheckpointInterval > 0 && c.Quiescence >= c.CheckpointInterval {
			return fail("want less than the checkpoint interval (%s)", c.CheckpointInterval)
		}
	case "exclude":
		return c.checkExclude(s)
	case "keep", "restarts":
		if v.Int() < 0 {
			return fail("negative")
		}
	case "code":
		if _, err := ParseCode(c.Code); err != nil {
			return fail("%v", err)
		}
	case "code-dir":
		if c.Code != "" && strings.TrimSpace(c.CodeDir) == "" {
			return fail("empty, but --code is set")
		}
	case "data":
		return c.checkData(s)
	case "notify":
		for i, u := range c.Notify {
			if err := notify.CheckURL(u); err != nil {
				return c.failItem(s, i, err.Error())
			}
		}
	case "pass-env":
		return c.checkPassEnv(s)
	case "runpod-api-url", "vast-api-url":
		if p := apiURLProblem(v.String()); p != "" {
			return fail("%s", p)
		}
	case "restart-backoff":
		if c.RestartBackoff < 0 {
			return fail("negative")
		}
	case "grace":
		if c.Grace != 0 && (c.Grace < MinGrace || c.Grace > MaxGrace) {
			return fail("want 0 (half the stop window) or %s to %s", MinGrace, MaxGrace)
		}
		if c.Grace != 0 && c.StopWindow >= MinStopWindow && c.Grace >= c.StopWindow {
			return fail("want less than the stop window (%s): the final commit needs the rest of it", c.StopWindow)
		}
	case "stop-window":
		if c.StopWindow != 0 && (c.StopWindow < MinStopWindow || c.StopWindow > MaxStopWindow) {
			return fail("want 0 (the platform's) or %s to %s", MinStopWindow, MaxStopWindow)
		}
	case "lease-duration":
		if c.LeaseDuration < MinLeaseDuration || c.LeaseDuration > MaxLeaseDuration {
			return fail("want %s to %s", MinLeaseDuration, MaxLeaseDuration)
		}
	case "lease-wait":
		if c.LeaseWait == "auto" {
			return nil
		}
		if d, err := time.ParseDuration(c.LeaseWait); err != nil || d < 0 || d > 24*time.Hour {
			return fail("want auto or a duration from 0 to 24h")
		}
	case "workers":
		if c.Workers < 1 || c.Workers > MaxWorkers {
			return fail("want 1 to %d", MaxWorkers)
		}
	case "part-size":
		if c.PartSize < storage.MinPartSize || c.PartSize > MaxPartSize {
			return fail("want %s to %s", ByteSize(storage.MinPartSize), ByteSize(MaxPartSize))
		}
	case "chunk-size":
		if c.ChunkSize < checkpoint.MinChunkSize || c.ChunkSize > checkpoint.MaxChunkSize {
			return fail("want %s to %s", ByteSize(checkpoint.MinChunkSize), ByteSize(checkpoint.MaxChunkSize))
		}
	case "metrics-addr":
		return c.checkMetrics(s)
	case "telemetry-interval":
		if c.TelemetryInterval != 0 && (c.TelemetryInterval < MinTelemetryInterval || c.TelemetryInterval > time.Hour) {
			return fail("want 0 (off) or %s to 1h", MinTelemetryInterval)
		}
	case "telemetry-upload":
		if c.TelemetryUpload < 0 {
			return fail("negative")
		}
		if c.TelemetryUpload != 0 && c.TelemetryUpload < MinCheckpointInterval {
			return fail("want 0 (keep telemetry local) or at least %s", MinCheckpointInterval)
		}
	case "hang-timeout":
		if c.HangTimeout != 0 && c.HangTimeout < MinHangTimeout {
			return fail("want 0 (off) or at least %s", MinHangTimeout)
		}
	case "min-free-disk":
		if c.MinFreeDisk < 0 {
			return fail("negative")
		}
	case "metrics-token":
		if strings.IndexFunc(c.MetricsToken, unicode.IsSpace) >= 0 {
			return fail("holds white space")
		}
	case "pid-file", "log-file":
		if c.Detach && strings.TrimSpace(v.String()) == "" {
			return fail("empty, but --detach is set")
		}
	}
	return nil
}

// checkData checks every dataset mapping: SRC a store URL, DST a
// directory no other mapping uses.
func (c Config) checkData(s Setting) error {
	seen := map[string]int{}
	for i, m := range c.Data {
		// A SRC=DST without its DST splits inside the query: say so first.
		if u, err := url.Parse(m.Src); err == nil && strings.Contains(m.Src, "://") {
			q := u.Query()
			for _, k := range slices.Sorted(maps.Keys(q)) {
				if vs := q[k]; vs[len(vs)-1] == "" {
					return c.failItem(s, i, fmt.Sprintf("SRC's query parameter %q has no value; want SRC=DST", k))
				}
			}
		}
		if p := storeURLProblem(m.Src); p != "" {
			return c.failItem(s, i, "SRC: "+p)
		}
		dst := filepath.Clean(m.Dst)
		if j, dup := seen[dst]; dup {
			return c.failItem(s, i, fmt.Sprintf("DST %s is also the DST of %s", m.Dst, c.itemKey(s, j)))
		}
		seen[dst] = i
	}
	return nil
}

// checkPassEnv checks every --pass-env name: a variable's name, letters,
// digits and underscores, not starting with a digit.
func (c Config) checkPassEnv(s Setting) error {
	for i, n := range c.PassEnv {
		bad := n == "" || n[0] >= '0' && n[0] <= '9'
		for _, r := range n {
			bad = bad || r != '_' && (r < '0' || r > '9') && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z')
		}
		if bad {
			return c.failItem(s, i, "not a variable name (want letters, digits and _, not starting with a digit)")
		}
	}
	return nil
}

// checkExclude checks every exclude glob: path.Match syntax, a name rather
// than a path, and not one that leaves out everything.
func (c Config) checkExclude(s Setting) error {
	for i, g := range c.Exclude {
		if _, err := path.Match(g, ""); err != nil {
			return c.failItem(s, i, `not a glob (path.Match syntax: *, ?, [a-z], \ before a special character)`)
		}
		if strings.Contains(g, "/") {
			return c.failItem(s, i, "a glob matches one file or directory name, never a path: no /")
		}
		if strings.Trim(g, "*") == "" {
			return c.failItem(s, i, "leaves every file out")
		}
	}
	return nil
}

// checkMetrics checks the metrics address: HOST:PORT, on loopback unless a
// token guards it.
func (c Config) checkMetrics(s Setting) error {
	if c.MetricsAddr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(c.MetricsAddr)
	if err != nil {
		return c.fail(s, "want HOST:PORT, e.g. 127.0.0.1:9400")
	}
	if n, err := net.LookupPort("tcp", port); err != nil || n < 1 || n > 65535 {
		return c.fail(s, "want a port of 1 to 65535")
	}
	if c.MetricsToken != "" {
		return nil
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return c.fail(s, "beyond loopback only with a metrics token (RunPod's proxy makes every HTTP port public); set --metrics-token or listen on 127.0.0.1")
	}
	return nil
}

// fail returns the *Error of setting s with the given problem, naming the
// key and value as they were written.
func (c Config) fail(s Setting, problem string) error {
	o, ok := c.origins[s.Flag]
	if !ok { // not made by Load: name the flag, print the value
		o = origin{Origin: Origin{Source: SourceDefault, Key: "--" + s.Flag}, raw: formatValue(reflect.ValueOf(c).Field(s.index))}
	}
	return &Error{Source: o.Source, Key: o.Key, File: o.File, Line: o.Line, Value: redactValue(s, o.raw), Problem: problem}
}

// failItem returns the *Error of element i of list setting s.
func (c Config) failItem(s Setting, i int, problem string) error {
	o := c.origins[s.Flag]
	if i < len(o.items) {
		it := o.items[i]
		return &Error{Source: it.Source, Key: it.Key, File: it.File, Line: it.Line, Value: redactValue(s, it.raw), Problem: problem}
	}
	item := fmt.Sprint(reflect.ValueOf(c).Field(s.index).Index(i).Interface())
	return &Error{Source: SourceDefault, Key: fmt.Sprintf("--%s[%d]", s.Flag, i), Value: redactValue(s, item), Problem: problem}
}

// itemKey is the key of element i of list setting s as the user wrote it.
func (c Config) itemKey(s Setting, i int) string {
	if o := c.origins[s.Flag]; i < len(o.items) {
		return o.items[i].Key
	}
	return fmt.Sprintf("--%s[%d]", s.Flag, i)
}

// formatValue writes a field's value as it would be written on the command
// line.
func formatValue(v reflect.Value) string {
	if list, ok := v.Interface().([]DataMapping); ok {
		parts := make([]string, len(list))
		for i, m := range list {
			parts[i] = m.String()
		}
		return strings.Join(parts, ",")
	}
	if list, ok := v.Interface().([]string); ok {
		return strings.Join(list, ",")
	}
	return fmt.Sprint(v.Interface())
}

// storeURLProblem returns what is wrong with a store URL, or "": whatever
// storeurl.Check finds in the URL alone (scheme, bucket name, prefix,
// parameters), never a credential. Opening the store checks the rest.
func storeURLProblem(raw string) string {
	err := storeurl.Check(raw)
	var ue *storeurl.URLError
	if errors.As(err, &ue) {
		return ue.Problem
	}
	if err != nil {
		return redact.URLs(err.Error())
	}
	return ""
}

// orList writes a, b or c.
func orList(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

// CodeKind is the kind of source the training code comes from.
type CodeKind int

// The kinds of code source.
const (
	CodeNone    CodeKind = iota // no --code: the code is in the image
	CodeGit                     // a git repository, at Code.Ref if set
	CodeTarball                 // a .tar, .tar.gz or .tgz object or file
	CodePrefix                  // a store prefix (s3://, file://) or directory
)

// String names the kind: none, git, tarball or prefix.
func (k CodeKind) String() string {
	switch k {
	case CodeNone:
		return "none"
	case CodeGit:
		return "git"
	case CodeTarball:
		return "tarball"
	case CodePrefix:
		return "prefix"
	}
	return fmt.Sprintf("CodeKind(%d)", int(k))
}

// Code is a parsed --code value.
type Code struct {
	// Kind is what URL names.
	Kind CodeKind
	// URL is what to fetch: for git, the URL git understands (a git+
	// prefix removed), else the store URL or path.
	URL string
	// Ref is the git branch, tag or commit after "#"; empty: the default
	// branch.
	Ref string
}

// gitHosts serve git over plain https URLs without the .git suffix.
func gitHosts() []string {
	return []string{"github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "huggingface.co"}
}

// ParseCode parses a --code value:
//
//	https://github.com/me/repo.git#v1   git (https, ssh://, git://, git+https://, user@host:path;
//	git@github.com:me/repo.git#main     plain https on github.com and other known hosts)
//	s3://bucket/code.tar.gz             a tarball: .tar, .tar.gz or .tgz, in a store or a path
//	s3://bucket/code, /src              a store prefix or directory, copied as it is
//
// An empty value is CodeNone.
func ParseCode(raw string) (Code, error) {
	if raw == "" {
		return Code{Kind: CodeNone}, nil
	}
	if strings.HasPrefix(raw, "-") {
		return Code{}, errors.New("must not start with -")
	}
	loc, ref, hasRef := strings.Cut(raw, "#")
	if hasRef {
		if ref == "" || strings.HasPrefix(ref, "-") || strings.Contains(ref, "..") ||
			strings.IndexFunc(ref, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return Code{}, fmt.Errorf("git ref %q: want a branch, tag or commit", ref)
		}
	}
	tarball := strings.HasSuffix(loc, ".tar") || strings.HasSuffix(loc, ".tar.gz") || strings.HasSuffix(loc, ".tgz")
	if kind, url, ok := gitURL(loc); ok && !tarball {
		if strings.IndexFunc(url, unicode.IsSpace) >= 0 {
			return Code{}, errors.New("white space in a git URL")
		}
		return Code{Kind: kind, URL: url, Ref: ref}, nil
	}
	if hasRef {
		return Code{}, errors.New("#ref only applies to a git URL (ending in .git, or git@host:path)")
	}
	scheme, _, _ := strings.Cut(loc, "://")
	if tarball && (scheme == "http" || scheme == "https") {
		return Code{Kind: CodeTarball, URL: loc}, nil
	}
	if p := storeURLProblem(loc); p != "" {
		if scheme == "http" || scheme == "https" {
			return Code{}, errors.New("want a git repository (ending in .git) or a tarball (.tar, .tar.gz, .tgz)")
		}
		return Code{}, errors.New(p)
	}
	if tarball {
		return Code{Kind: CodeTarball, URL: loc}, nil
	}
	return Code{Kind: CodePrefix, URL: loc}, nil
}

// gitURL reports whether loc names a git repository, and the URL to give
// git.
func gitURL(loc string) (CodeKind, string, bool) {
	if rest, ok := strings.CutPrefix(loc, "git+"); ok {
		return CodeGit, rest, strings.Contains(rest, "://")
	}
	scheme, rest, hasScheme := strings.Cut(loc, "://")
	if !hasScheme {
		// scp-like user@host:path, as in git@github.com:me/repo.git
		at := strings.Index(loc, "@")
		colon := strings.Index(loc, ":")
		slash := strings.Index(loc, "/")
		return CodeGit, loc, at > 0 && colon > at+1 && (slash < 0 || colon < slash)
	}
	switch scheme {
	case "git", "ssh":
		return CodeGit, loc, true
	case "http", "https":
		if strings.HasSuffix(loc, ".git") {
			return CodeGit, loc, true
		}
		host, _, _ := strings.Cut(rest, "/")
		if i := strings.LastIndex(host, "@"); i >= 0 {
			host = host[i+1:]
		}
		return CodeGit, loc, slices.Contains(gitHosts(), strings.ToLower(host))
	}
	return CodeGit, loc, false
}
