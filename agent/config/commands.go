package config

import (
	"sort"
	"strings"
	"time"

	"github.com/batonrun/baton/internal/spell"
)

// The settings of baton's other commands. A field tagged setting:"NAME" is
// the setting of baton run with that flag name (its flag, variable, YAML
// key, default, meaning and checks), so that --store, BATON_RUN_ID or
// s3_driver in a config file mean the same to every command; a field that
// writes its own tags is the command's alone. A command's own options that
// only make sense for one invocation (--json, --force, --seq) are flags
// alone: no variable left in a container's environment, and no key in a
// file written for baton run, changes what one command does.

// Transfer is the settings of "baton pull SRC DIR" and "baton push DIR DST".
type Transfer struct {
	Origins
	ConfigFile string   `setting:"config"`
	Workers    int      `setting:"workers"`
	S3Driver   string   `setting:"s3-driver"`
	PartSize   ByteSize `setting:"part-size" help:"size of one part of a big file, 5MiB to 5GiB"`
	Progress   string   `flag:"progress" env:"BATON_PROGRESS" yaml:"-" enum:"auto,bar,log,none" default:"auto" help:"progress display of a transfer that lasts over a second: auto (a bar on a terminal, else log lines: a first, one every 10s, a last), bar, log or none"`
	AllowEmpty bool     `flag:"allow-empty" env:"-" yaml:"-" default:"false" help:"let a source that holds nothing (no object under the prefix, no file in the directory) copy nothing and succeed; by default it is an error, since it is most often a misspelt prefix or path"`
}

// Repo is the settings every "baton checkpoint" command shares: the run in
// a store.
type Repo struct {
	Origins
	ConfigFile string `setting:"config"`
	Store      string `setting:"store"`
	RunID      string `setting:"run"`
	Workers    int    `setting:"workers"`
	S3Driver   string `setting:"s3-driver"`
	// EncryptionKey is the run's key (checkpoint.ParseKey), "" for a
	// plain run.
	EncryptionKey string `setting:"encryption-key"`
}

// CheckpointCommit is the settings of "baton checkpoint commit DIR".
type CheckpointCommit struct {
	Repo
	ChunkSize ByteSize `setting:"chunk-size"`
	Nice      int      `setting:"nice" help:"niceness of this commit, 0 to 19: run by a trainer, it takes CPU time the trainer leaves over instead of the trainer's; 0, or not above its own niceness: unchanged"`
	Holder    string   `flag:"holder" env:"BATON_HOLDER" yaml:"-" default:"" help:"who commits, recorded in the lease: a holder retakes its own lease at once, so two committers must never share one; empty: HOST/cli"`
	Platform  string   `flag:"platform" env:"BATON_PLATFORM" yaml:"-" default:"" help:"name of the platform, recorded in the lease and the manifest"`
	Meta      []string `flag:"meta" env:"-" yaml:"-" type:"KEY=VALUE list" default:"" help:"KEY=VALUE recorded in the manifest; repeat the flag for more (a value may hold commas)"`
	Progress  string   `flag:"progress" env:"BATON_PROGRESS" yaml:"-" enum:"auto,bar,log,none" default:"auto" help:"progress display of a transfer that lasts over a second: auto (a bar on a terminal, else log lines: a first, one every 10s, a last), bar, log or none"`
}

// CheckpointList is the settings of "baton checkpoint ls" and "baton
// checkpoint show [SEQ]".
type CheckpointList struct {
	Repo
	JSON bool `flag:"json" env:"-" yaml:"-" default:"false" help:"print JSON instead of a table"`
}

// CheckpointRestore is the settings of "baton checkpoint restore DIR".
type CheckpointRestore struct {
	Repo
	Seq      int    `flag:"seq" env:"-" yaml:"-" default:"0" help:"restore checkpoint N instead of the latest"`
	Force    bool   `flag:"force" env:"-" yaml:"-" default:"false" help:"replace what DIR holds if it is not empty"`
	Progress string `flag:"progress" env:"BATON_PROGRESS" yaml:"-" enum:"auto,bar,log,none" default:"auto" help:"progress display of a transfer that lasts over a second: auto (a bar on a terminal, else log lines: a first, one every 10s, a last), bar, log or none"`
}

// CheckpointGC is the settings of "baton checkpoint gc".
type CheckpointGC struct {
	Origins
	ConfigFile string        `setting:"config"`
	Store      string        `setting:"store"`
	RunID      string        `setting:"run" required:"false" help:"the run whose checkpoints --keep applies to, and whose telemetry is compacted; empty: only sweep the store's chunks"`
	Workers    int           `setting:"workers"`
	S3Driver   string        `setting:"s3-driver"`
	Keep       int           `setting:"keep" default:"0" help:"keep the newest K checkpoints of --run (and the pinned ones) and delete the others; 0 deletes no checkpoint"`
	Grace      time.Duration `flag:"grace" name:"gc-grace" env:"-" yaml:"-" default:"6h" help:"never delete a chunk, or an unpublished manifest, younger than this"`
}

// CheckpointVerify is the settings of "baton checkpoint verify".
type CheckpointVerify struct {
	Repo
	Seq    int    `flag:"seq" env:"-" yaml:"-" default:"0" help:"verify checkpoint N instead of the latest"`
	All    bool   `flag:"all" env:"-" yaml:"-" default:"false" help:"verify every published checkpoint of the run"`
	Deep   bool   `flag:"deep" env:"-" yaml:"-" default:"false" help:"download every chunk and check its content against its hash, not only its length"`
	Repair string `flag:"repair" env:"-" yaml:"-" default:"" help:"upload the damaged chunks again from DIR, a local copy of the checkpoint directory (only bytes that still hash right are used), then verify again"`
}

// CheckpointHosts is the settings of "baton checkpoint hosts".
type CheckpointHosts struct {
	Repo
	Forget    string `flag:"forget" env:"-" yaml:"-" default:"" help:"forget the machine ID (as listed): baton run tries it again"`
	ForgetAll bool   `flag:"forget-all" env:"-" yaml:"-" default:"false" help:"forget every machine of the run"`
	JSON      bool   `flag:"json" env:"-" yaml:"-" default:"false" help:"print the list as JSON"`
}

// Doctor is the settings of "baton doctor": every setting of baton run,
// which it reports on as baton run would read them, and its own.
type Doctor struct {
	Config
	JSON       bool          `flag:"json" env:"-" yaml:"-" default:"false" help:"print the report as JSON (schema in docs/doctor.md)"`
	RequireGPU bool          `flag:"require-gpu" env:"BATON_REQUIRE_GPU" yaml:"-" default:"false" help:"fail unless NVML works and sees a GPU, and every GPU is healthy"`
	Timeout    time.Duration `flag:"timeout" env:"-" yaml:"-" default:"30s" help:"bound on the whole check; each check has a shorter deadline of its own"`
}

// Command is one command's synopsis and settings, for its -h text and
// docs/config.md.
type Command struct {
	// Name is the command as typed after baton: "checkpoint ls".
	Name string
	// Synopsis is its usage line after baton.
	Synopsis string
	// Settings returns a new settings struct of the command.
	Settings func() any
}

// Commands are every command that reads settings, in the order of
// docs/config.md.
func Commands() []Command {
	return []Command{
		{"run", "run [flags] -- CMD ARGS...", func() any { return new(Config) }},
		{"pull", "pull [flags] SRC DIR", func() any { return new(Transfer) }},
		{"push", "push [flags] DIR DST", func() any { return new(Transfer) }},
		{"doctor", "doctor [flags] [-- CMD ARGS...]", func() any { return new(Doctor) }},
		{"checkpoint commit", "checkpoint commit [flags] DIR (or, in a trainer under baton run: checkpoint commit)", func() any { return new(CheckpointCommit) }},
		{"checkpoint ls", "checkpoint ls [flags]", func() any { return new(CheckpointList) }},
		{"checkpoint show", "checkpoint show [flags] [SEQ]", func() any { return new(CheckpointList) }},
		{"checkpoint restore", "checkpoint restore [flags] DIR", func() any { return new(CheckpointRestore) }},
		{"checkpoint gc", "checkpoint gc [flags]", func() any { return new(CheckpointGC) }},
		{"checkpoint pin", "checkpoint pin [flags] SEQ", func() any { return new(Repo) }},
		{"checkpoint unpin", "checkpoint unpin [flags] SEQ", func() any { return new(Repo) }},
		{"checkpoint verify", "checkpoint verify [flags]", func() any { return new(CheckpointVerify) }},
		{"checkpoint hosts", "checkpoint hosts [flags]", func() any { return new(CheckpointHosts) }},
		// issue 16 (launch.go)
		{"launch", "launch [flags]", func() any { return new(Launch) }},
		{"watch", "watch [flags]", func() any { return new(Watch) }},
		{"status", "status [flags]", func() any { return new(Status) }},
	}
}

// LookupCommand returns the command named name.
func LookupCommand(name string) (Command, bool) {
	for _, c := range Commands() {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// TrainerVariables are the BATON_* variables that baton run sets for its
// trainer (docs/run.md); a command the trainer runs, such as baton
// checkpoint commit, finds them in its environment.
func TrainerVariables() []string {
	return []string{"BATON_RUN_ID", "BATON_CHECKPOINT_DIR", "BATON_RESUME", "BATON_RESUME_FROM", "BATON_ATTEMPT",
		"BATON_PLATFORM", "BATON_AGENT_SOCKET"}
}

// otherVariables are the BATON_* variables that no command reads but that
// belong to baton all the same: its install script's, its build's and its
// tests', and the example trainers' (BATON_COMMIT_CMD, the command
// examples/trainer.py runs to ask for a commit).
func otherVariables() []string {
	return []string{"BATON_VERSION", "BATON_SHA256", "BATON_TOOLS", "BATON_LDFLAGS", "BATON_REQUIRE_ALL", "BATON_COMMIT_CMD"}
}

// UnknownVariables returns a warning for each BATON_* variable of environ
// (KEY=VALUE entries) that no command reads, naming the closest variable
// that one does: a misspelt BATON_CHEKPOINT_DIR is otherwise ignored
// without a word. Variables of baton's tests (BATON_TEST_*) pass.
func UnknownVariables(environ []string) []string {
	known := map[string]bool{}
	var names []string
	add := func(name string) {
		if name != "-" && !known[name] {
			known[name] = true
			names = append(names, name)
		}
	}
	for _, c := range Commands() {
		for _, s := range SettingsOf(c.Settings()) {
			add(s.Env)
		}
	}
	for _, name := range append(TrainerVariables(), otherVariables()...) {
		add(name)
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "BATON_") || known[name] || strings.HasPrefix(name, "BATON_TEST_") {
			continue
		}
		msg := name + " is set but no baton command reads it"
		if guess := spell.Closest(name, names); guess != "" {
			msg += "; did you mean " + guess + "?"
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}
