package config

import (
	"strings"

	"github.com/batonrun/baton/agent/platform"
)

// apiURLProblem returns what is wrong with the base URL of a platform API
// (--runpod-api-url, --vast-api-url), or "": platform.CheckAPIURL's
// verdict, so that baton run refuses at start, with exit status 2, a URL
// the exit action would refuse at the end. Empty means the default.
func apiURLProblem(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return ""
	}
	if err := platform.CheckAPIURL(strings.TrimSpace(raw)); err != nil {
		return err.Error()
	}
	return ""
}
