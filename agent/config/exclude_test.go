package config

import (
	"testing"
)

// TestExclude checks where the exclude globs come from: the defaults, a
// flag (repeated flags add up), the variable (comma-separated), the YAML
// file (a list or one string), and an empty list that leaves nothing out.
func TestExclude(t *testing.T) {
	defaults := []string{"*.tmp", "*.partial", "tmp-checkpoint-*"}
	cases := []listCase{
		{name: "default", want: defaults, key: "--exclude[0]"},
		{name: "flags add up and replace the defaults", args: []string{"--exclude=*.lock", "--exclude=*.swp,scratch"},
			want: []string{"*.lock", "*.swp", "scratch"}, key: "--exclude[0]"},
		{name: "flag over variable", args: []string{"--exclude=*.lock"}, env: map[string]string{"BATON_EXCLUDE": "*.x"},
			want: []string{"*.lock"}, key: "--exclude[0]"},
		{name: "variable", env: map[string]string{"BATON_EXCLUDE": "*.tmp, *.lock"}, want: []string{"*.tmp", "*.lock"}, key: "BATON_EXCLUDE[0]"},
		{name: "empty variable counts as unset", env: map[string]string{"BATON_EXCLUDE": ""}, want: defaults, key: "--exclude[0]"},
		{name: "YAML list", yaml: "exclude:\n  - \"*.tmp\"\n  - tmp-*\n", want: []string{"*.tmp", "tmp-*"}, key: "exclude[0]"},
		{name: "YAML flow list", yaml: `exclude: ["*.tmp", "*.lock"]` + "\n", want: []string{"*.tmp", "*.lock"}, key: "exclude[0]"},
		{name: "YAML string", yaml: "exclude: '*.tmp,*.lock'\n", want: []string{"*.tmp", "*.lock"}, key: "exclude[0]"},
		{name: "variable over YAML", yaml: "exclude: ['*.a']\n", env: map[string]string{"BATON_EXCLUDE": "*.b"}, want: []string{"*.b"}, key: "BATON_EXCLUDE[0]"},
		{name: "empty flag leaves nothing out", args: []string{"--exclude="}, want: []string{}},
		{name: "empty YAML list leaves nothing out", yaml: "exclude: []\n", want: []string{}},
	}
	// A malformed glob: the error names element 0 where it came from.
	runListCases(t, cases, func(c *Config) []string { return c.Exclude }, "[", func(t *testing.T, err error) {})
}

// TestExcludeYAMLMapping checks that exclude has no mapping form (data
// has: SRC: DST).
func TestExcludeYAMLMapping(t *testing.T) {
	_, _, err := load(requiredArgs(), map[string]string{"BATON_CONFIG": "c.yaml"}, map[string]string{"c.yaml": "exclude:\n  a: b\n"})
	checkError(t, err, `c.yaml:2: exclude: want a list of globs, not a mapping`, SourceFile, "exclude")
	_, _, err = load(requiredArgs(), map[string]string{"BATON_CONFIG": "c.yaml"}, map[string]string{"c.yaml": "exclude:\n  - [a]\n"})
	checkError(t, err, `c.yaml:2: exclude[0]: want a glob, not a list`, SourceFile, "exclude[0]")
}
