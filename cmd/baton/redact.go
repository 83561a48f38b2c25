package main

import (
	"strings"

	"github.com/batonrun/baton/internal/redact"
)

// redactEnv replaces, in s, the values of secret-named variables of environ
// and any credentials written inside URLs.
func redactEnv(s string, environ []string) string { return redact.Environ(s, environ) }

// oneLine folds a multi-line message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
