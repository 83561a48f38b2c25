// Package redact keeps secrets out of what baton prints, logs and stores:
// the values of variables and settings whose names say they hold one, and
// the credentials written inside URLs, their user information and the
// values of their secret query parameters. DESIGN.md fixes the rule: names
// containing KEY, SECRET, TOKEN, PASSWORD (and CREDENTIAL) hold secrets.
//
// One redaction point serves each output channel: Handler for a slog
// logger, Writer for a stream stored away (the trainer's log segment), URLs
// or Environ for an error line.
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

// plainSecretKeys are the parameter names whose values are masked wherever
// name=value stands in a text, not only inside a URL's query: the
// signatures and tokens of presigned URLs, and the few names that mean a
// secret everywhere. (A wider rule would mask a trainer's "tokens=1024".)
var plainSecretKeys = map[string]bool{
	"x-amz-signature": true, "x-amz-security-token": true, "x-amz-credential": true,
	"x-goog-signature": true, "x-goog-credential": true,
	"signature": true, "sig": true, "token": true, "access_token": true, "refresh_token": true, "id_token": true,
	"password": true, "passwd": true, "secret": true, "client_secret": true, "api_key": true, "apikey": true,
}

// IsSecretQueryKey reports whether the value of the URL query parameter
// name is a secret: a secret name (IsSecretName: X-Amz-Security-Token,
// X-Amz-Credential, token, access_token, api_key, password, secret), a
// signature (X-Amz-Signature, sig, signature) or a password (passwd, pwd),
// in any case.
func IsSecretQueryKey(name string) bool {
	lower := strings.ToLower(name)
	switch {
	case IsSecretName(name), plainSecretKeys[lower],
		strings.HasSuffix(lower, "signature"), strings.HasSuffix(lower, "-sig"), strings.HasSuffix(lower, "_sig"):
		return true
	}
	return lower == "pwd" || lower == "auth" || lower == "authorization"
}

// URLs removes the credentials written inside URLs anywhere in s, which
// may be any text (a log line, an error), not only a URL:
//   - the user information of a URL, also of one nested in another's query
//     value, raw or percent-encoded: https://user:token@host becomes
//     https://[REDACTED]@host, ?endpoint=http%3A%2F%2Fu%3Apw%40h becomes
//     ?endpoint=http%3A%2F%2F[REDACTED]%40h;
//   - the value of every query parameter IsSecretQueryKey names, after ?,
//     & or ; (or their percent-encoded forms): ?X-Amz-Signature=abc becomes
//     ?X-Amz-Signature=[REDACTED];
//   - the value of the few names that mean a secret wherever name=value
//     stands (plainSecretKeys: sig=, token=, X-Amz-Signature=, password=).
func URLs(s string) string {
	if !strings.ContainsAny(s, "@=%") {
		return s
	}
	s = userinfo(s, "://", []string{"@"}, rawAuthorityEnd)
	s = userinfo(s, "%3a%2f%2f", []string{"%40", "@"}, encodedAuthorityEnd)
	return queryValues(s)
}

// rawAuthorityEnd and encodedAuthorityEnd end a URL's authority (where its
// user information must stand), raw and percent-encoded.
var (
	rawAuthorityEnd     = []string{"/", "?", "#"}
	encodedAuthorityEnd = []string{"%2f", "%3f", "%23", "&", "/", "?", "#"}
)

// userinfo masks what stands between each sep ("://", raw or encoded) that
// follows a scheme and the last at-sign (one of ats) of the authority that
// follows it, which ends at one of ends, a space or a quote.
func userinfo(s, sep string, ats, ends []string) string {
	lower := asciiLower(s)
	var b strings.Builder
	done := 0 // s[:done] is in b
	for from := 0; ; {
		i := strings.Index(lower[from:], sep)
		if i < 0 {
			break
		}
		i += from
		from = i + len(sep)
		if i == 0 || !isSchemeByte(s[i-1]) {
			continue
		}
		start := from
		end := start
		for end < len(s) && !isTextEnd(s[end]) && !hasAnyPrefix(lower[end:], ends) {
			end++
		}
		at := -1
		for _, a := range ats {
			if k := strings.LastIndex(lower[start:end], a); k >= 0 && start+k > at {
				at = start + k
			}
		}
		if at <= start || s[start:at] == Mask {
			continue
		}
		b.WriteString(s[done:start])
		b.WriteString(Mask)
		done, from = at, at
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// queryKey finds name=value pairs, raw or with the = percent-encoded.
var queryKey = regexp.MustCompile(`([A-Za-z0-9_.\-]+)(=|%3[dD])`)

// queryValues masks the values of secret parameters; see URLs.
func queryValues(s string) string {
	var b strings.Builder
	done := 0
	for _, m := range queryKey.FindAllStringSubmatchIndex(s, -1) {
		nameStart, nameEnd, sepEnd := m[2], m[3], m[5]
		if nameStart < done {
			continue // inside a value masked already
		}
		name, inQuery := s[nameStart:nameEnd], false
		switch {
		case nameStart > 0 && s[nameStart-1] == '%' && len(name) > 2 && isHex(name[0]) && isHex(name[1]):
			// An encoded separator stuck to the name: %3Ftoken, %26sig.
			code := strings.ToLower(name[:2])
			inQuery, name = code == "3f" || code == "26", name[2:]
		case nameStart > 0:
			inQuery = strings.IndexByte("?&;", s[nameStart-1]) >= 0
		}
		name = strings.TrimLeft(name, "-.")
		if !plainSecretKeys[strings.ToLower(name)] && !(inQuery && IsSecretQueryKey(name)) {
			continue
		}
		encoded := m[5]-m[4] > 1
		end := sepEnd
		for end < len(s) && !isTextEnd(s[end]) && strings.IndexByte("&#", s[end]) < 0 &&
			!(encoded && hasAnyPrefix(asciiLower(s[end:min(end+3, len(s))]), []string{"%26", "%23"})) {
			end++
		}
		if strings.HasPrefix(s[sepEnd:end], Mask) {
			continue // masked already
		}
		for end > sepEnd && strings.IndexByte(":,.;)]}", s[end-1]) >= 0 {
			end-- // the punctuation of the text around the value: "?sig=abc: denied"
		}
		if end == sepEnd {
			continue
		}
		b.WriteString(s[done:sepEnd])
		b.WriteString(Mask)
		done = end
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// isTextEnd reports whether c ends a URL written in a text: a space, a
// quote, an angle bracket, a backslash (of an escaped quote).
func isTextEnd(c byte) bool {
	return c <= ' ' || strings.IndexByte("\"'`<>\\", c) >= 0
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '.' || c == '-'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// asciiLower lowers ASCII letters only, so that offsets into the result are
// offsets into s.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Values replaces, in s, every occurrence of each non-empty secret, as
// written and query-escaped, with Mask.
func Values(s string, secrets ...string) string {
	for _, v := range secrets {
		if v == "" {
			continue
		}
		s = strings.ReplaceAll(s, v, Mask)
		if q := url.QueryEscape(v); q != v {
			s = strings.ReplaceAll(s, q, Mask)
		}
	}
	return s
}

// Environ replaces, in s, the value of every secret-named variable of
// environ ("NAME=value" pairs; values shorter than 6 bytes are left, since
// they would mask common words) as written and query-escaped, then the
// credentials inside URLs (URLs).
func Environ(s string, environ []string) string {
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || len(value) < 6 || !IsSecretName(name) {
			continue
		}
		s = Values(s, value)
	}
	return URLs(s)
}
