package config

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/storeurl"
	"github.com/batonrun/baton/sync/transfer"
)

var update = flag.Bool("update", false, "rewrite docs/config.md from Reference")

// docPath is docs/config.md, from this package's directory.
func docPath() string { return filepath.Join("..", "..", "docs", "config.md") }

func TestReferenceIsUpToDate(t *testing.T) {
	want := document()
	if *update {
		if err := os.WriteFile(docPath(), []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(docPath())
	if err != nil {
		t.Fatalf("%v; run go generate ./agent/config", err)
	}
	if string(got) != want {
		t.Errorf("docs/config.md is out of date with agent/config.Config's struct tags; run go generate ./agent/config")
	}
}

// TestSettingsTags checks every field's tags: all there, one line, unique,
// and named by one rule (BATON_ and the flag in upper case; the YAML key
// is the flag with underscores), with the exceptions written here.
func TestSettingsTags(t *testing.T) {
	envExceptions := map[string]string{"run": "BATON_RUN_ID"}
	yamlExceptions := map[string]string{"run": "run_id", "config": "-"}
	seen := map[string]string{}
	for _, s := range Settings() {
		if s.Flag == "" || s.Env == "" || s.YAML == "" || s.Help == "" {
			t.Errorf("%s: flag %q, env %q, yaml %q, help %q: want all four", s.Field, s.Flag, s.Env, s.YAML, s.Help)
		}
		wantEnv := "BATON_" + strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_"))
		if e, ok := envExceptions[s.Flag]; ok {
			wantEnv = e
		}
		if s.Env != wantEnv {
			t.Errorf("%s: env %q, want %q", s.Field, s.Env, wantEnv)
		}
		wantYAML := strings.ReplaceAll(s.Flag, "-", "_")
		if y, ok := yamlExceptions[s.Flag]; ok {
			wantYAML = y
		}
		if s.YAML != wantYAML {
			t.Errorf("%s: yaml %q, want %q", s.Field, s.YAML, wantYAML)
		}
		if strings.ContainsAny(s.Help, "\n`") {
			t.Errorf("%s: help is not one plain line", s.Field)
		}
		for _, name := range []string{s.Flag, s.Env, s.YAML} {
			if other, dup := seen[name]; dup && other != s.Field && name != "-" {
				t.Errorf("%s and %s share the name %q", other, s.Field, name)
			}
			seen[name] = s.Field
		}
		if s.Values != nil && s.Default != "" && !slices.Contains(s.Values, s.Default) {
			t.Errorf("%s: default %q is not one of %q", s.Field, s.Default, s.Values)
		}
	}
}

// TestDefaultsMatchPackages checks the defaults written in the tags against
// the packages that own them.
func TestDefaultsMatchPackages(t *testing.T) {
	c, _, err := Load(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"workers", c.Workers, transfer.DefaultWorkers},
		{"part-size", int64(c.PartSize), int64(transfer.DefaultPartSize)},
		{"chunk-size", int64(c.ChunkSize), int64(checkpoint.DefaultChunkSize)},
		{"s3-driver", c.S3Driver, storeurl.DefaultDriver},
		{"lease-duration", c.LeaseDuration, 2 * time.Minute}, // checkpoint.Options' default
		{"exclude", strings.Join(c.Exclude, ","), strings.Join(checkpoint.DefaultExclude, ",")},
	} {
		if tc.got != tc.want {
			t.Errorf("default of --%s is %v, its package's is %v", tc.name, tc.got, tc.want)
		}
	}
}

// TestExample checks that the YAML example of docs/config.md loads and
// validates.
func TestExample(t *testing.T) {
	c, _, err := Load(nil, func(k string) string {
		if k == "BATON_CONFIG" {
			return "baton.yaml"
		}
		return ""
	}, func(string) ([]byte, error) { return []byte(docExample), nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Data) != 2 || c.OnExit != "stop" || len(c.Exclude) != 4 || c.Exclude[3] != "*.lock" {
		t.Errorf("example read as %+v", c)
	}
}

func TestUsage(t *testing.T) {
	u := Usage()
	for _, s := range Settings() {
		if !strings.Contains(u, "  --"+s.Flag+" ") || !strings.Contains(u, s.Env) {
			t.Errorf("Usage() lacks --%s or %s", s.Flag, s.Env)
		}
	}
	if !strings.Contains(Reference(), "`--on-exit` | `BATON_ON_EXIT` | `on_exit` | none, stop, terminate | `none` |") {
		t.Errorf("Reference() row of on-exit is not as expected:\n%s", Reference())
	}
}
