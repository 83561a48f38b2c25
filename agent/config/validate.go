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

// Validate returns every problem of c, in the order of Config's fields, as
// Problems whose *Errors name each key the way the user wrote it; nil if
// there is none.
func (c Config) Validate() error { return Validate(&c) }

// Validate returns every problem of the settings struct that dst points to
// (Config, or a command's struct of commands.go), in the order of its
// fields, as Problems; nil if there is none. A setting is judged by its
// name, so a command's store, run or workers is judged as baton run's.
func Validate(dst any) error {
	h, ok := dst.(holder)
	if !ok {
		panic(fmt.Sprintf("config: %T does not embed config.Origins", dst))
	}
	x := &validator{v: reflect.ValueOf(dst).Elem(), origins: h.origins().byFlag, byName: map[string]Setting{}}
	settings := SettingsOf(dst)
	for _, s := range settings {
		x.byName[s.Name] = s
	}
	for _, s := range settings {
		x.check(s, x.v.FieldByIndex(s.index))
	}
	return x.problems.err()
}

// validator judges the settings of one struct and collects their problems.
type validator struct {
	v        reflect.Value // the struct
	origins  map[string]origin
	byName   map[string]Setting
	problems Problems
}

// get is the value of the setting named name, or the zero Value if the
// struct has none.
func (x *validator) get(name string) reflect.Value {
	s, ok := x.byName[name]
	if !ok {
		return reflect.Value{}
	}
	return x.v.FieldByIndex(s.index)
}

// str, dur and on read the setting named name as a string, a duration and
// a boolean; zero where the struct has no such setting.
func (x *validator) str(name string) string {
	if v := x.get(name); v.IsValid() {
		return v.String()
	}
	return ""
}

func (x *validator) dur(name string) time.Duration {
	if v := x.get(name); v.IsValid() {
		return time.Duration(v.Int())
	}
	return 0
}

func (x *validator) on(name string) bool {
	v := x.get(name)
	return v.IsValid() && v.Bool()
}

// check records the problem of setting s, whose value is v, if it has one.
func (x *validator) check(s Setting, v reflect.Value) {
	fail := func(format string, args ...any) { x.fail(s, fmt.Sprintf(format, args...)) }
	if s.Values != nil {
		if got := v.String(); !(got == "" && s.Default == "") && !slices.Contains(s.Values, got) {
			fail("want %s", orList(s.Values))
			return
		}
	}
	if s.Required && v.Kind() == reflect.String && v.String() == "" {
		if s.YAML != "-" {
			fail("required (or set %s, or %s in the config file)", s.Env, s.YAML)
		} else {
			fail("required (or set %s)", s.Env)
		}
		return
	}
	x.checkSpec(s, v) // issue 16: the launch spec and watch's own (launch.go)
	switch s.Name {
	case "store":
		if p := storeURLProblem(v.String()); v.String() != "" && p != "" {
			fail("%s", p)
		}
	case "run":
		if err := checkpoint.CheckRunID(v.String()); v.String() != "" && err != nil {
			fail("want 1 to 128 of [A-Za-z0-9._-], not starting with a dot")
		}
	case "checkpoint-dir":
		if strings.TrimSpace(v.String()) == "" {
			fail("empty")
		}
	case "checkpoint-interval":
		if d := time.Duration(v.Int()); d != 0 && d < MinCheckpointInterval {
			fail("want 0 (no timed commits) or at least %s", MinCheckpointInterval)
		}
	case "quiescence":
		q, interval := time.Duration(v.Int()), x.dur("checkpoint-interval")
		if q < 0 {
			fail("negative")
		} else if interval > 0 && q >= interval {
			fail("want less than the checkpoint interval (%s)", interval)
		}
	case "exclude":
		x.checkExclude(s, v.Interface().([]string))
	case "keep", "restarts", "seq":
		if v.Int() < 0 {
			fail("negative")
		}
	case "code":
		if _, err := ParseCode(v.String()); err != nil {
			fail("%v", err)
		}
	case "code-dir":
		if x.str("code") != "" && strings.TrimSpace(v.String()) == "" {
			fail("empty, but --code is set")
		}
	case "data":
		x.checkData(s, v.Interface().([]DataMapping))
	case "notify":
		for i, u := range v.Interface().([]string) {
			if err := notify.CheckURL(u); err != nil {
				x.failItem(s, i, err.Error())
			}
		}
	case "pass-env":
		x.checkPassEnv(s, v.Interface().([]string))
	case "runpod-api-url", "vast-api-url":
		if p := apiURLProblem(v.String()); p != "" {
			fail("%s", p)
		}
	case "restart-backoff", "gc-grace":
		if v.Int() < 0 {
			fail("negative")
		}
	case "grace":
		g, window := time.Duration(v.Int()), x.dur("stop-window")
		if g != 0 && (g < MinGrace || g > MaxGrace) {
			fail("want 0 (half the stop window) or %s to %s", MinGrace, MaxGrace)
		} else if g != 0 && window >= MinStopWindow && g >= window {
			fail("want less than the stop window (%s): the final commit needs the rest of it", window)
		}
	case "stop-window":
		if d := time.Duration(v.Int()); d != 0 && (d < MinStopWindow || d > MaxStopWindow) {
			fail("want 0 (the platform's) or %s to %s", MinStopWindow, MaxStopWindow)
		}
	case "lease-duration":
		if d := time.Duration(v.Int()); d < MinLeaseDuration || d > MaxLeaseDuration {
			fail("want %s to %s", MinLeaseDuration, MaxLeaseDuration)
		}
	case "lease-wait":
		if w := v.String(); w != "auto" {
			if d, err := time.ParseDuration(w); err != nil || d < 0 || d > 24*time.Hour {
				fail("want auto or a duration from 0 to 24h")
			}
		}
	case "nice":
		if n := v.Int(); n < 0 || n > 19 {
			fail("want 0 (unchanged) to 19 (the lowest priority)")
		}
	case "workers":
		if n := v.Int(); n < 1 || n > MaxWorkers {
			fail("want 1 to %d", MaxWorkers)
		}
	case "part-size":
		if b := ByteSize(v.Int()); b < storage.MinPartSize || b > MaxPartSize {
			fail("want %s to %s", ByteSize(storage.MinPartSize), ByteSize(MaxPartSize))
		}
	case "chunk-size":
		if b := ByteSize(v.Int()); b < checkpoint.MinChunkSize || b > checkpoint.MaxChunkSize {
			fail("want %s to %s", ByteSize(checkpoint.MinChunkSize), ByteSize(checkpoint.MaxChunkSize))
		}
	case "encryption-key":
		if _, err := checkpoint.ParseKey(v.String()); v.String() != "" && err != nil {
			fail("%v", err)
		}
	case "metrics-addr":
		x.checkMetrics(s, v.String())
	case "telemetry-interval":
		if d := time.Duration(v.Int()); d != 0 && (d < MinTelemetryInterval || d > time.Hour) {
			fail("want 0 (off) or %s to 1h", MinTelemetryInterval)
		}
	case "telemetry-upload":
		if d := time.Duration(v.Int()); d < 0 {
			fail("negative")
		} else if d != 0 && d < MinCheckpointInterval {
			fail("want 0 (keep telemetry local) or at least %s", MinCheckpointInterval)
		}
	case "hang-timeout":
		if d := time.Duration(v.Int()); d != 0 && d < MinHangTimeout {
			fail("want 0 (off) or at least %s", MinHangTimeout)
		}
	case "min-free-disk":
		if v.Int() < 0 {
			fail("negative")
		}
	case "metrics-token":
		if strings.IndexFunc(v.String(), unicode.IsSpace) >= 0 {
			fail("holds white space")
		}
	case "pid-file", "log-file":
		if x.on("detach") && strings.TrimSpace(v.String()) == "" {
			fail("empty, but --detach is set")
		}
	case "timeout":
		if v.Int() <= 0 {
			fail("want a positive duration")
		}
	case "meta":
		for i, kv := range v.Interface().([]string) {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				x.failItem(s, i, "want KEY=VALUE")
			}
		}
	}
}

// checkData checks every dataset mapping: SRC a store URL, DST a
// directory no other mapping uses.
func (x *validator) checkData(s Setting, data []DataMapping) {
	seen := map[string]int{}
	for i, m := range data {
		// A SRC=DST without its DST splits inside the query: say so first.
		if p := dataQueryProblem(m.Src); p != "" {
			x.failItem(s, i, p)
			continue
		}
		if p := storeURLProblem(m.Src); p != "" {
			x.failItem(s, i, "SRC: "+p)
			continue
		}
		dst := filepath.Clean(m.Dst)
		if j, dup := seen[dst]; dup {
			x.failItem(s, i, fmt.Sprintf("DST %s is also the DST of %s", m.Dst, x.itemKey(s, j)))
			continue
		}
		seen[dst] = i
	}
}

// dataQueryProblem says that a --data SRC has a query parameter without a
// value: a SRC=DST whose DST was left out splits inside the query.
func dataQueryProblem(src string) string {
	u, err := url.Parse(src)
	if err != nil || !strings.Contains(src, "://") {
		return ""
	}
	q := u.Query()
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if vs := q[k]; vs[len(vs)-1] == "" {
			return fmt.Sprintf("SRC's query parameter %q has no value; want SRC=DST", k)
		}
	}
	return ""
}

// checkPassEnv checks every --pass-env name: a variable's name, letters,
// digits and underscores, not starting with a digit.
func (x *validator) checkPassEnv(s Setting, names []string) {
	for i, n := range names {
		bad := n == "" || n[0] >= '0' && n[0] <= '9'
		for _, r := range n {
			bad = bad || r != '_' && (r < '0' || r > '9') && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z')
		}
		if bad {
			x.failItem(s, i, "not a variable name (want letters, digits and _, not starting with a digit)")
		}
	}
}

// checkExclude checks every exclude glob: path.Match syntax, a name rather
// than a path, and not one that leaves out everything.
func (x *validator) checkExclude(s Setting, globs []string) {
	for i, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			x.failItem(s, i, `not a glob (path.Match syntax: *, ?, [a-z], \ before a special character)`)
		} else if strings.Contains(g, "/") {
			x.failItem(s, i, "a glob matches one file or directory name, never a path: no /")
		} else if strings.Trim(g, "*") == "" {
			x.failItem(s, i, "leaves every file out")
		}
	}
}

// checkMetrics checks the metrics address: HOST:PORT, on loopback unless a
// token guards it.
func (x *validator) checkMetrics(s Setting, addr string) {
	if addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		x.fail(s, "want HOST:PORT, e.g. 127.0.0.1:9400")
		return
	}
	if n, err := net.LookupPort("tcp", port); err != nil || n < 1 || n > 65535 {
		x.fail(s, "want a port of 1 to 65535")
		return
	}
	if x.str("metrics-token") != "" {
		return
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		x.fail(s, "beyond loopback only with a metrics token (RunPod's proxy makes every HTTP port public); set --metrics-token or listen on 127.0.0.1")
	}
}

// fail records the problem of setting s, naming the key and value as they
// were written.
func (x *validator) fail(s Setting, problem string) {
	o, ok := x.origins[s.Flag]
	if !ok { // not filled by Load: name the flag, print the value
		o = origin{Origin: Origin{Source: SourceDefault, Key: "--" + s.Flag}, raw: formatValue(x.v.FieldByIndex(s.index))}
	}
	x.problems = append(x.problems, &Error{Source: o.Source, Key: o.Key, File: o.File, Line: o.Line, Value: redactValue(s, o.raw), Problem: problem})
}

// failItem records the problem of element i of list setting s.
func (x *validator) failItem(s Setting, i int, problem string) {
	if o := x.origins[s.Flag]; i < len(o.items) {
		it := o.items[i]
		x.problems = append(x.problems, &Error{Source: it.Source, Key: it.Key, File: it.File, Line: it.Line, Value: redactValue(s, it.raw), Problem: problem})
		return
	}
	item := fmt.Sprint(x.v.FieldByIndex(s.index).Index(i).Interface())
	x.problems = append(x.problems, &Error{Source: SourceDefault, Key: fmt.Sprintf("--%s[%d]", s.Flag, i), Value: redactValue(s, item), Problem: problem})
}

// itemKey is the key of element i of list setting s as the user wrote it.
func (x *validator) itemKey(s Setting, i int) string {
	if o := x.origins[s.Flag]; i < len(o.items) {
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
