// Package redact keeps secrets out of what baton prints: the values of
// variables and settings whose names say they hold one, and credentials
// written inside URLs. DESIGN.md fixes the rule: names containing KEY,
// SECRET, TOKEN, PASSWORD (and CREDENTIAL) hold secrets.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask is what a secret is replaced with.
const Mask = "[REDACTED]"

// secretWords are the words that make a name secret.
var secretWords = [...]string{"KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL"}

// urlUserinfo matches credentials inside URLs: scheme://user:password@host.
var urlUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@`)

// IsSecretName reports whether a variable or setting of this name holds a
// secret whose value is never printed.
func IsSecretName(name string) bool {
	upper := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(upper, w) {
			return true
		}
	}
	return false
}

// URLs replaces the user information of every URL in s:
// https://user:token@host becomes https://[REDACTED]@host.
func URLs(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return urlUserinfo.ReplaceAllString(s, "${1}"+Mask+"@")
}

// Environ replaces, in s, the value of every secret-named variable of
// environ ("NAME=value" pairs; values shorter than 6 bytes are left, since
// they would mask common words) as written and query-escaped, then the
// credentials inside URLs.
func Environ(s string, environ []string) string {
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || len(value) < 6 || !IsSecretName(name) {
			continue
		}
		s = strings.ReplaceAll(s, value, Mask)
		if q := url.QueryEscape(value); q != value {
			s = strings.ReplaceAll(s, q, Mask)
		}
	}
	return URLs(s)
}
