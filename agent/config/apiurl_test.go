package config

import (
	"testing"

	"github.com/batonrun/baton/agent/platform"
)

// TestAPIURLDefaultsMatchPlatform: the defaults of --runpod-api-url and
// --vast-api-url are the endpoints platform.NewController uses when the
// variables are unset.
func TestAPIURLDefaultsMatchPlatform(t *testing.T) {
	c, _, err := Load(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RunPodAPIURL != platform.DefaultRunPodURL {
		t.Errorf("default --runpod-api-url = %q, platform's = %q", c.RunPodAPIURL, platform.DefaultRunPodURL)
	}
	if c.VastAPIURL != platform.DefaultVastURL {
		t.Errorf("default --vast-api-url = %q, platform's = %q", c.VastAPIURL, platform.DefaultVastURL)
	}
	for _, s := range Settings() {
		switch s.Flag {
		case "runpod-api-url":
			if s.Env != platform.RunPodURLEnv {
				t.Errorf("--runpod-api-url's variable is %s, NewController reads %s", s.Env, platform.RunPodURLEnv)
			}
		case "vast-api-url":
			if s.Env != platform.VastURLEnv {
				t.Errorf("--vast-api-url's variable is %s, NewController reads %s", s.Env, platform.VastURLEnv)
			}
		}
	}
}

// TestAPIURLs: a stand-in (https anywhere, http on loopback) is accepted
// from a flag, a variable or the file; anything else exits 2 naming the key.
func TestAPIURLs(t *testing.T) {
	runErrorCases(t, []errorCase{
		{name: "https proxy from a flag", args: append(requiredArgs(), "--runpod-api-url=https://proxy.example.com/runpod/v2")},
		{name: "loopback test server from the environment", args: requiredArgs(),
			env: map[string]string{"BATON_RUNPOD_API_URL": "http://127.0.0.1:8080/v2", "BATON_VAST_API_URL": "http://localhost:5002/api/v0"}},
		{name: "empty in the file means the default", args: requiredArgs(), yaml: "vast_api_url: \"\"\n"},
		{name: "runpod http to another host", args: requiredArgs(), env: map[string]string{"BATON_RUNPOD_API_URL": "http://10.1.2.3/v2"},
			want:   `BATON_RUNPOD_API_URL="http://10.1.2.3/v2": http:// only to a loopback address (127.0.0.1, ::1, localhost), which a key never leaves in clear text; want https://`,
			source: SourceEnv, key: "BATON_RUNPOD_API_URL"},
		{name: "runpod no scheme", args: append(requiredArgs(), "--runpod-api-url=api.runpod.io/v2"),
			want:   `--runpod-api-url=api.runpod.io/v2: want https:// (or http:// to a loopback address)`,
			source: SourceFlag, key: "--runpod-api-url"},
		{name: "vast with a query in the file", args: requiredArgs(), yaml: "vast_api_url: https://console.vast.ai/api/v0?api_key=x\n",
			want:   `c.yaml:1: vast_api_url: "https://console.vast.ai/api/v0?api_key=[REDACTED]": no query (?...): request paths are appended to the URL`,
			source: SourceFile, key: "vast_api_url"},
		{name: "vast credentials are not printed", args: append(requiredArgs(), "--vast-api-url=https://me:hunter2@proxy.example.com/api/v0"),
			want:   `--vast-api-url=https://[REDACTED]@proxy.example.com/api/v0: credentials do not belong in the URL`,
			source: SourceFlag, key: "--vast-api-url"},
	}, true)
}
