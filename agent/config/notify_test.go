package config

import (
	"strings"
	"testing"
)

// TestNotify checks where the notify URLs come from (repeated flags, the
// variable split at commas, a YAML list or string) and that a bad URL is an
// error that names the element's key and shows the URL's host only, never
// its path or query, which hold a webhook's token.
func TestNotify(t *testing.T) {
	const slack = "https://hooks.slack.com/services/T0/B0/SECRETtoken1"
	const discord = "https://discord.com/api/webhooks/1/SECRETtoken2"
	cases := []listCase{
		{name: "default: none"},
		{name: "flags add up", args: []string{"--notify=" + slack, "--notify", discord}, want: []string{slack, discord}, key: "--notify[0]"},
		{name: "variable, comma-separated", env: map[string]string{"BATON_NOTIFY": slack + ", " + discord}, want: []string{slack, discord}, key: "BATON_NOTIFY[0]"},
		{name: "flag over variable", args: []string{"--notify=" + discord}, env: map[string]string{"BATON_NOTIFY": slack}, want: []string{discord}, key: "--notify[0]"},
		{name: "YAML list", yaml: "notify:\n  - " + slack + "\n  - " + discord + "\n", want: []string{slack, discord}, key: "notify[0]"},
		{name: "YAML string", yaml: "notify: " + slack + "\n", want: []string{slack}, key: "notify[0]"},
	}
	runListCases(t, cases, func(c *Config) []string { return c.Notify }, "ftp://files.example.com/SECRETpath?SECRETquery", func(t *testing.T, err error) {
		// The key's value as the user wrote it, host only.
		if msg := err.Error(); strings.Contains(msg, "SECRET") || !strings.Contains(msg, ".com/...") ||
			!strings.Contains(msg, "want an http:// or https:// URL") {
			t.Errorf("error %q: want the host only and the problem", msg)
		}
	})
}

// TestNotifyBadValues: each bad URL exits 2 with one line naming the key,
// never the URL's path.
func TestNotifyBadValues(t *testing.T) {
	for raw, want := range map[string]string{
		"hooks.slack.com/services/SECRET":       `BATON_NOTIFY[0]="[REDACTED]": want an http:// or https:// URL`,
		"https:///SECRET":                       `BATON_NOTIFY[0]="[REDACTED]": no host: want http(s)://HOST/PATH`,
		"http://h.example:0/SECRET":             `BATON_NOTIFY[0]="http://h.example:0/...": want a port of 1 to 65535`,
		"https://ok.example/x,mailto:SECRET@me": `BATON_NOTIFY[1]="[REDACTED]": want an http:// or https:// URL`,
	} {
		c, _, err := load(requiredArgs(), map[string]string{"BATON_NOTIFY": raw}, nil)
		if err == nil {
			err = c.Validate()
		}
		if err == nil || err.Error() != want {
			t.Errorf("BATON_NOTIFY=%s: %v, want %s", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("the error repeats the URL: %v", err)
		}
	}
	_, _, err := load(requiredArgs(), map[string]string{"BATON_CONFIG": "c.yaml"}, map[string]string{"c.yaml": "notify:\n  a: b\n"})
	checkError(t, err, `c.yaml:2: notify: want a list of URLs, not a mapping`, SourceFile, "notify")
}

// TestNotifyUsage: -h shows the placeholder of a URL list.
func TestNotifyUsage(t *testing.T) {
	if !strings.Contains(Usage(), "--notify URL[,URL...]  (BATON_NOTIFY)") {
		t.Errorf("Usage lacks --notify:\n%s", Usage())
	}
}
