package doctor

import (
	"errors"
	"flag"
	"fmt"
	"os"
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

// LoadConfig reads the configuration the way "baton run" does, from its
// flags (args, which may end with "-- CMD ARGS..."), its BATON_* variables
// (getenv) and its YAML file (readFile; nil: os.ReadFile), and returns the
// configuration, the trainer's command, and the first problem baton run
// would stop on (nil if none).
//
// A problem in a flag is the caller's usage error, returned as err; so is
// -h (flag.ErrHelp). A problem in a variable or the file is returned as
// problem, and reading goes on without that variable or file, so that the
// other checks see as much of the configuration as can be read.
func LoadConfig(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (cfg config.Config, command []string, problem, err error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	skipVar, skipFile := map[string]bool{}, map[string]bool{}
	env := func(k string) string {
		if skipVar[k] {
			return ""
		}
		return getenv(k)
	}
	read := func(p string) ([]byte, error) {
		if skipFile[p] {
			return nil, nil // an empty file sets nothing
		}
		if readFile == nil {
			return os.ReadFile(p)
		}
		return readFile(p)
	}
	for range len(config.Settings()) + 2 {
		cfg, command, err = config.Load(args, env, read)
		if err == nil {
			break
		}
		if errors.Is(err, flag.ErrHelp) || fromFlag(err) {
			return config.Config{}, nil, nil, err
		}
		if problem == nil {
			problem = err
		}
		var ce *config.Error
		if !errors.As(err, &ce) {
			return config.Config{}, nil, nil, err // not one of Load's: cannot go on
		}
		switch ce.Source {
		case config.SourceEnv:
			name, _, _ := strings.Cut(ce.Key, "[")
			skipVar[name] = true
		case config.SourceFile:
			skipFile[ce.File] = true
		}
	}
	if err != nil { // still failing: read the flags and defaults alone
		if cfg, command, err = config.Load(args, nil, nil); err != nil {
			return config.Config{}, nil, nil, err
		}
	}
	if problem == nil {
		if verr := cfg.Validate(); verr != nil {
			if fromFlag(verr) {
				return config.Config{}, nil, nil, verr
			}
			problem = verr
		}
	}
	return cfg, command, problem, nil
}

// fromFlag reports whether err is a problem with a command-line flag.
func fromFlag(err error) bool {
	var ce *config.Error
	return errors.As(err, &ce) && ce.Source == config.SourceFlag
}

// missingOnly reports whether problem says that the store or the run is
// unset, and nothing else is wrong with cfg.
func missingOnly(cfg config.Config, problem error) bool {
	var ce *config.Error
	if !errors.As(problem, &ce) || ce.Source != config.SourceDefault || (ce.Key != "--store" && ce.Key != "--run") {
		return false
	}
	if cfg.Store == "" {
		cfg.Store = "file:///placeholder"
	}
	if cfg.RunID == "" {
		cfg.RunID = "placeholder"
	}
	return cfg.Validate() == nil
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
		if missingOnly(cfg, p) {
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
