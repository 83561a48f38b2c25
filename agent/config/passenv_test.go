package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestPassEnv: --pass-env, BATON_PASS_ENV and pass_env give a list of
// variable names; anything else is refused, naming the element.
func TestPassEnv(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		yaml  string
		want  []string
		error string // a part of Validate's message; "" for none
	}{
		{name: "none", want: []string{}},
		{name: "flags", args: []string{"--pass-env", "RUNPOD_API_KEY", "--pass-env=BATON_METRICS_TOKEN,CONTAINER_API_KEY"},
			want: []string{"RUNPOD_API_KEY", "BATON_METRICS_TOKEN", "CONTAINER_API_KEY"}},
		{name: "env", env: map[string]string{"BATON_PASS_ENV": "RUNPOD_API_KEY,_X1"}, want: []string{"RUNPOD_API_KEY", "_X1"}},
		{name: "yaml", yaml: "pass_env: [RUNPOD_API_KEY]\n", want: []string{"RUNPOD_API_KEY"}},
		{name: "leading digit", args: []string{"--pass-env=1X"}, want: []string{"1X"}, error: "--pass-env[0]"},
		{name: "a pair", args: []string{"--pass-env=OK,A=B"}, want: []string{"OK", "A=B"}, error: "--pass-env[1]"},
		{name: "a dash", env: map[string]string{"BATON_PASS_ENV": "MY-KEY"}, want: []string{"MY-KEY"}, error: "not a variable name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args, files := requiredArgs(), map[string]string{}
			if c.yaml != "" {
				args, files["c.yaml"] = append(args, "--config=c.yaml"), c.yaml
			}
			cfg, _, err := load(append(args, c.args...), c.env, files)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(cfg.PassEnv, c.want) {
				t.Errorf("PassEnv = %q, want %q", cfg.PassEnv, c.want)
			}
			err = cfg.Validate()
			switch {
			case c.error == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case c.error != "" && (err == nil || !strings.Contains(err.Error(), c.error)):
				t.Errorf("Validate = %v, want an error with %q", err, c.error)
			}
		})
	}
}
