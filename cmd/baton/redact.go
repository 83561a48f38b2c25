package main

import (
	"net/url"
	"regexp"
	"strings"
)

// secretName matches the names of environment variables whose values are
// never printed.
var secretName = regexp.MustCompile(`(?i)KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL`)

// urlUserinfo matches credentials inside URLs: scheme://user:password@host.
var urlUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@`)

// redact replaces, in s, the values of secret-named variables of environ and
// any credentials written inside URLs.
func redact(s string, environ []string) string {
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || len(value) < 6 || !secretName.MatchString(name) {
			continue
		}
		s = strings.ReplaceAll(s, value, "[REDACTED]")
		if q := url.QueryEscape(value); q != value {
			s = strings.ReplaceAll(s, q, "[REDACTED]")
		}
	}
	return urlUserinfo.ReplaceAllString(s, "${1}[REDACTED]@")
}

// oneLine folds a multi-line message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
