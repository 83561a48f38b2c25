package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/batonrun/baton/agent/notify"
	"github.com/batonrun/baton/internal/redact"
)

// Error is a problem with one setting, the user's to fix before anything
// runs. Its message is one line that names the key as the user wrote it:
//
//	--on-exit=reboot: want none, stop or terminate
//	BATON_CHECKPOINT_INTERVAL="ten": not a duration (want e.g. 30s, 10m, 1h30m)
//	config.yaml:4: data[1]: "foo": not SRC=DST
//	--store: required (or set BATON_STORE, or store in the config file)
type Error struct {
	// Source is where the bad value came from.
	Source Source
	// Key is the name as the user wrote it (see Origin.Key); empty for a
	// problem with a whole YAML file.
	Key string
	// File and Line locate a problem in the YAML file (Line 0: unknown).
	File string
	Line int
	// Value is the value as written, with the values of secret settings
	// (names containing KEY, SECRET, TOKEN, PASSWORD or CREDENTIAL) replaced
	// by [REDACTED] and credentials inside URLs removed; empty where no
	// value applies (an unknown flag, a missing one).
	Value string
	// Problem says what is wrong, e.g. "not a duration".
	Problem string
	// Err is the underlying error, if any (a file that cannot be read).
	Err error
}

// Error returns the one-line message.
func (e *Error) Error() string {
	var b strings.Builder
	switch e.Source {
	case SourceEnv:
		fmt.Fprintf(&b, "%s=%s", e.Key, strconv.Quote(e.Value))
	case SourceFile:
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		if e.Key != "" {
			b.WriteString(": " + e.Key)
		}
		if e.Value != "" {
			b.WriteString(": " + strconv.Quote(e.Value))
		}
	default: // a flag, or a default named by its flag
		b.WriteString(e.Key)
		if e.Value != "" {
			b.WriteString("=" + quoteIfNeeded(e.Value))
		}
	}
	b.WriteString(": " + e.Problem)
	// One line: quoted values escape their own newlines; a key or problem
	// with one (a YAML parser's message) is folded.
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(b.String())
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Problems are every problem that LoadInto or Validate found, in the order
// of the settings. errors.As finds the first *Error.
type Problems []*Error

// Error returns each problem's line, joined on one line by "; ".
func (p Problems) Error() string {
	lines := make([]string, len(p))
	for i, e := range p {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "; ")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (p Problems) Unwrap() []error {
	out := make([]error, len(p))
	for i, e := range p {
		out[i] = e
	}
	return out
}

// add appends err, if any; an error that is not a *Error (none of this
// package's functions return one) becomes one with no key.
func (p *Problems) add(err error) {
	if err == nil {
		return
	}
	var ce *Error
	if !errors.As(err, &ce) {
		ce = &Error{Source: SourceFlag, Problem: err.Error(), Err: err}
	}
	*p = append(*p, ce)
}

// err is p as an error: nil when there is no problem.
func (p Problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// quoteIfNeeded quotes s if it is empty or holds anything but printable,
// non-space characters other than quotes and backslashes.
func quoteIfNeeded(s string) string {
	if s == "" || strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '"' || r == '\'' || r == '\\'
	}) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// redactValue is what an Error may show of the value v of setting s.
func redactValue(s Setting, v string) string {
	if v != "" && (redact.IsSecretName(s.Flag) || redact.IsSecretName(s.Env) || redact.IsSecretName(s.YAML)) {
		return redact.Mask
	}
	if s.Type == "URL list" { // webhook URLs hold their token in the path: the host only
		items := splitList(v)
		for i, u := range items {
			items[i] = notify.Redact(u)
		}
		return strings.Join(items, ",")
	}
	return redact.URLs(v)
}
