package doctor

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/notify"
	"github.com/batonrun/baton/internal/redact"
)

// ConfigFacts is the configuration as "baton run" would read it.
type ConfigFacts struct {
	// Valid is true when baton run would accept the configuration.
	Valid bool `json:"valid"`
	// Error is the line baton run would print and exit 2 on ("baton run:
	// KEY...: problem"); empty when valid.
	Error string `json:"error,omitempty"`
	// RunID is the run's name; empty when unset.
	RunID string `json:"run_id"`
	// Store is the store's URL, credentials removed; empty when unset.
	Store string `json:"store"`
	// CheckpointDir is the checkpoint directory, absolute.
	CheckpointDir string `json:"checkpoint_dir"`
	// Settings are the settings that are not at their defaults, in the
	// order of docs/config.md.
	Settings []SettingFacts `json:"settings"`
}

// SettingFacts is one setting and where its value came from.
type SettingFacts struct {
	// Name is the setting's flag name, without dashes: "keep".
	Name string `json:"name"`
	// Value is the value as baton run would write it on its command line;
	// "[REDACTED]" for a secret.
	Value string `json:"value"`
	// Source is flag, env or file.
	Source string `json:"source"`
	// Key is the name as the user wrote it: "--keep", "BATON_KEEP", "keep".
	Key string `json:"key"`
	// File and Line locate a value read from the YAML file.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// LoadConfig reads the settings of baton doctor, which are every setting of
// baton run and doctor's own, the way every command reads them: from its
// flags (args, which may end with "-- CMD ARGS..."), its BATON_* variables
// (getenv) and its YAML file (readFile; nil: os.ReadFile). It returns the
// settings, the trainer's command, and every problem baton run would stop
// on (nil if none).
//
// A problem with a command-line flag is the caller's usage error, returned
// as err; so is -h (config.ErrHelp). A problem in a variable or the file is
// returned as problem, and the setting it spoils falls back to its next
// source, so that the other checks see as much of the configuration as can
// be read.
func LoadConfig(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (d config.Doctor, command []string, problem, err error) {
	command, err = config.LoadInto(&d, args, getenv, readFile)
	var all config.Problems
	if err != nil && !errors.As(err, &all) {
		return config.Doctor{}, nil, nil, err // -h, or a flag that does not parse
	}
	var invalid config.Problems
	if errors.As(config.Validate(&d), &invalid) {
		all = append(all, invalid...) // a value that did not read fell back, so no problem shows twice
	}
	var usage, others config.Problems
	for _, p := range all {
		if p.Source == config.SourceFlag {
			usage = append(usage, p)
		} else {
			others = append(others, p)
		}
	}
	if len(usage) > 0 {
		return config.Doctor{}, nil, nil, usage
	}
	if len(others) > 0 {
		problem = others
	}
	return d, command, problem, nil
}

// missingOnly reports whether every problem says that the store or the
// run is unset.
func missingOnly(problem error) bool {
	var all config.Problems
	if !errors.As(problem, &all) {
		return false
	}
	for _, ce := range all {
		if ce.Source != config.SourceDefault || (ce.Key != "--store" && ce.Key != "--run") {
			return false
		}
	}
	return true
}

// checkConfig reports the configuration. A problem baton run would stop on
// fails the check, which is required; a store or run not set yet only warns,
// so that doctor is useful before a run is configured.
func checkConfig(o Options) (Check, ConfigFacts) {
	cfg := o.Config
	f := ConfigFacts{
		Valid:         o.ConfigProblem == nil,
		RunID:         cfg.RunID,
		Store:         o.Redact(redact.URLs(cfg.Store)),
		CheckpointDir: absDir(o.WorkDir, cfg.CheckpointDir),
		Settings:      settingFacts(cfg),
	}
	c := Check{Name: "config", Required: true, Status: OK}
	if p := o.ConfigProblem; p != nil {
		f.Error = o.Redact("baton run: " + oneLine(p.Error()))
		c.Status, c.Reason = Fail, f.Error
		c.Hint = "baton run would exit 2 on this line: fix the key it names (docs/config.md)"
		if missingOnly(p) {
			c.Status, c.Required = Warn, false
			c.Hint = "set BATON_STORE and BATON_RUN_ID (or --store, --run) for baton run; the other checks do not need them"
		}
		return c, f
	}
	every := "only on request and at exit"
	if cfg.CheckpointInterval > 0 {
		every = "every " + shortDuration(cfg.CheckpointInterval)
	}
	c.Reason = fmt.Sprintf("run %s: %s committed %s to %s; %s", cfg.RunID, f.CheckpointDir, every, f.Store, sourcesSummary(f.Settings))
	if unknown := config.UnknownVariables(o.Environ); len(unknown) > 0 {
		c.Status = Warn
		c.Reason += "; " + strings.Join(unknown, "; ")
		c.Hint = "a misspelt variable is ignored: fix or unset it (the settings: docs/config.md)"
	}
	return c, f
}

// sourcesSummary counts the settings by source: "3 settings from env, 1
// from file"; "all defaults" when none is set.
func sourcesSummary(settings []SettingFacts) string {
	if len(settings) == 0 {
		return "every other setting at its default"
	}
	count := map[string]int{}
	for _, s := range settings {
		count[s.Source]++
	}
	var parts []string
	for _, src := range []string{"flag", "env", "file"} {
		if n := count[src]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d from %s", n, src))
		}
	}
	return plural(len(settings), "setting") + " set (" + strings.Join(parts, ", ") + ")"
}

// settingFacts lists the settings of cfg that are not at their defaults.
func settingFacts(cfg config.Config) []SettingFacts {
	out := []SettingFacts{}
	v := reflect.ValueOf(cfg)
	for _, s := range config.Settings() {
		o := cfg.Origin(s.Flag)
		if o.Source == config.SourceDefault {
			continue
		}
		value := formatSetting(v.FieldByName(s.Field))
		if urls, ok := v.FieldByName(s.Field).Interface().([]string); ok && s.Flag == "notify" {
			// Webhook URLs carry their token in the path: the host only.
			parts := make([]string, len(urls))
			for i, u := range urls {
				parts[i] = notify.Redact(u)
			}
			value = strings.Join(parts, ",")
		}
		if redact.IsSecretName(s.Flag) && value != "" {
			value = redact.Mask
		}
		out = append(out, SettingFacts{Name: s.Flag, Value: redact.URLs(value), Source: o.Source.String(),
			Key: o.Key, File: o.File, Line: o.Line})
	}
	return out
}

// formatSetting writes a setting's value as on baton run's command line.
func formatSetting(v reflect.Value) string {
	if list, ok := v.Interface().([]string); ok {
		return strings.Join(list, ",")
	}
	if list, ok := v.Interface().([]config.DataMapping); ok {
		parts := make([]string, len(list))
		for i, m := range list {
			parts[i] = m.String()
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

// absDir is dir made absolute against workDir.
func absDir(workDir, dir string) string {
	if dir == "" || filepath.IsAbs(dir) {
		return filepath.Clean(dir)
	}
	if workDir == "" {
		if abs, err := filepath.Abs(dir); err == nil {
			return abs
		}
	}
	return filepath.Join(workDir, dir)
}

// shortDuration writes d without trailing zero units: 10m, 1h30m, 45s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
