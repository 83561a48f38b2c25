package config

// Issue 16 (baton launch, baton watch, baton status): the run's launch spec
// and the settings of the commands that read it. The spec sits in the same
// YAML file as the run's other settings: command: (the trainer's argv) at
// the top level and the keys of a launch: mapping, which the file reader
// flattens to launch.KEY.

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Number is a decimal number: a price in dollars, a ratio.
type Number float64

// String writes n the shortest way that reads back.
func (n Number) String() string { return strconv.FormatFloat(float64(n), 'f', -1, 64) }

// Providers are the values launch.provider may name.
func Providers() []string { return []string{"runpod", "vast", "local"} }

// LaunchSpec is where and how a run's hosts are started: the trainer's
// command line and the launch: section of the run's YAML file
// (docs/launch.md).
type LaunchSpec struct {
	// Command is the trainer's command line, what baton run starts.
	Command []string `flag:"command" env:"-" yaml:"command" type:"argument list" default:"" help:"the trainer's command line, one word per element (a YAML list, or one --command flag per word): what baton run starts after -- on every host baton launch and baton watch start"`
	// Provider lists where hosts may be rented, in order of preference.
	Provider []string `flag:"provider" env:"BATON_LAUNCH_PROVIDER" yaml:"launch.provider" type:"name list" default:"" help:"where hosts are started: one or several of runpod, vast and local; the cheapest offer that fits across them wins, a tie goes to the one listed first; local starts baton run as a process on this machine (for trying the loop and for tests)"`
	// GPU lists the GPU types that fit.
	GPU []string `flag:"gpu" env:"BATON_LAUNCH_GPU" yaml:"launch.gpu" type:"name list" default:"" help:"GPU types that fit, as the providers name them (H100 SXM, RTX 4090, A100 80GB); matched without case, spaces, NVIDIA and GeForce, so \"rtx4090\" matches RunPod's \"NVIDIA GeForce RTX 4090\" and Vast's \"RTX 4090\"; empty: any GPU (the local provider ignores it)"`
	// GPUCount is the number of GPUs of one host.
	GPUCount int `flag:"gpu-count" env:"BATON_LAUNCH_GPU_COUNT" yaml:"launch.gpu_count" default:"1" help:"GPUs per host, 1 to 16"`
	// Image is the container image of a host.
	Image string `flag:"image" env:"BATON_LAUNCH_IMAGE" yaml:"launch.image" default:"" help:"the container image of every host, with baton on its PATH (images/ has some); required for runpod and vast"`
	// Disk is the container disk of a host.
	Disk ByteSize `flag:"disk" env:"BATON_LAUNCH_DISK" yaml:"launch.disk" default:"50GiB" help:"container disk of every host, rounded up to whole GB for the providers; it holds the code, the data and the checkpoint directory"`
	// MaxPrice bounds the price of a host per hour, in dollars.
	MaxPrice Number `flag:"max-price-per-hour" env:"BATON_LAUNCH_MAX_PRICE_PER_HOUR" yaml:"launch.max_price_per_hour" default:"0" help:"the most one host may cost per hour, in US dollars, GPUs, disk and all, as the provider quotes it; 0: no bound"`
	// Budget bounds what the run may spend in all, in dollars.
	Budget Number `flag:"budget" env:"BATON_LAUNCH_BUDGET" yaml:"launch.budget" default:"0" help:"the most the run may spend in all, in US dollars, counted from the launch records (price per hour times the hours each host was up): baton watch launches nothing that would start past it and gives up (exit 1, with a notification); 0: no bound"`
	// RunPodCloud is RunPod's cloud type.
	RunPodCloud string `flag:"runpod-cloud" env:"BATON_LAUNCH_RUNPOD_CLOUD" yaml:"launch.runpod_cloud" enum:"secure,community" default:"secure" help:"RunPod's cloud: secure (RunPod's data centres) or community (hosts of third parties, cheaper)"`
	// VastVerified keeps to Vast's verified machines.
	VastVerified bool `flag:"vast-verified" env:"BATON_LAUNCH_VAST_VERIFIED" yaml:"launch.vast_verified" default:"true" help:"on Vast.ai, only machines that Vast verified"`
	// VastMinReliability is the least reliability of a Vast machine.
	VastMinReliability Number `flag:"vast-min-reliability" env:"BATON_LAUNCH_VAST_MIN_RELIABILITY" yaml:"launch.vast_min_reliability" default:"0.95" help:"on Vast.ai, the least reliability score (0 to 1) of a machine"`
	// VastInterruptible rents Vast machines by bid.
	VastInterruptible bool `flag:"vast-interruptible" env:"BATON_LAUNCH_VAST_INTERRUPTIBLE" yaml:"launch.vast_interruptible" default:"false" help:"on Vast.ai, rent interruptible instances by bid: the bid is the offer's minimum bid plus 10%, at most max_price_per_hour; an outbid instance stops, its lease lapses and baton watch moves the run"`
	// VastRuntype is how a Vast host starts baton.
	VastRuntype string `flag:"vast-runtype" env:"BATON_LAUNCH_VAST_RUNTYPE" yaml:"launch.vast_runtype" enum:"args,ssh" default:"args" help:"how a Vast.ai host starts baton: args (baton run is the container's command, the image's entrypoint replaced) or ssh (Vast's ssh mode, baton run --detach from onstart, for an image that needs ssh)"`
	// Env names the variables passed to every host.
	Env []string `flag:"launch-env" env:"BATON_LAUNCH_ENV" yaml:"launch.env" type:"name list" default:"" help:"names of variables passed to every host (the store's AWS_* credentials, HF_TOKEN, WANDB_API_KEY): their values are read from this command's environment when a host is created and handed to the provider's create call, never written into the spec, the store or a log; a name that is not set is an error"`
	// LocalDir is where the local provider starts its hosts.
	LocalDir string `flag:"local-dir" env:"BATON_LAUNCH_LOCAL_DIR" yaml:"launch.local_dir" default:"./baton-hosts" help:"the local provider's hosts: each runs in LOCAL_DIR/LABEL/ with its output in LOCAL_DIR/LABEL/baton.log"`
	// BootTimeout is how long a new host has to take the run's lease.
	BootTimeout time.Duration `flag:"boot-timeout" env:"BATON_LAUNCH_BOOT_TIMEOUT" yaml:"launch.boot_timeout" default:"15m" help:"how long a new host has to take the run's lease (pull the image, start, restore) before baton watch counts its launch as failed, records its machine as bad and launches another; at least 30s"`
	// WatchInterval is how often baton watch reads the run's state.
	WatchInterval time.Duration `flag:"watch-interval" env:"BATON_LAUNCH_WATCH_INTERVAL" yaml:"launch.watch_interval" default:"30s" help:"how often baton watch reads the run's lease, latest checkpoint and done record; 1s to 1h"`
	// MaxFailures is how many launches in a row may fail before watch
	// gives up.
	MaxFailures int `flag:"max-failures" env:"BATON_LAUNCH_MAX_FAILURES" yaml:"launch.max_failures" default:"5" help:"baton watch gives up (exit 1) after this many launches in a row failed: no offer, a create the provider refused, a host that never took the lease; between them it waits 30s, doubling up to 30m"`
}

// Launch is the settings of "baton launch": the run's settings, which it
// hands to the host, its launch spec, and its own.
type Launch struct {
	Config
	LaunchSpec
	// DryRun prints the offer that would be taken and creates nothing.
	DryRun bool `flag:"dry-run" env:"-" yaml:"-" default:"false" help:"print the offer that would be taken and the host's command line, and create nothing"`
}

// Watch is the settings of "baton watch".
type Watch struct {
	Config
	LaunchSpec
	// Once makes watch look once and exit.
	Once bool `flag:"once" env:"-" yaml:"-" default:"false" help:"look once, launch a host if the run needs one, and exit: 0 when the run is done or has a live host or a launch in flight, 1 when it gave up; for a cron job or a CI schedule instead of a long-lived watcher"`
}

// Status is the settings of "baton status": the run in a store.
type Status struct {
	Origins
	ConfigFile    string `setting:"config"`
	Store         string `setting:"store"`
	RunID         string `setting:"run"`
	S3Driver      string `setting:"s3-driver"`
	EncryptionKey string `setting:"encryption-key"`
	JSON          bool   `flag:"json" env:"-" yaml:"-" default:"false" help:"print JSON instead of a screen"`
}

// specSettings are the settings of the launch spec; every command's file
// reader knows their keys, so that one run.yaml serves baton run too.
func specSettings() []Setting { return settingsOf(reflect.TypeFor[LaunchSpec]()) }

// checkSpec records the problems of the launch spec's settings; the checks
// that need two of them look at the others through x.
func (x *validator) checkSpec(s Setting, v reflect.Value) {
	fail := func(format string, args ...any) { x.fail(s, fmt.Sprintf(format, args...)) }
	switch s.Name {
	case "command":
		if v.Len() == 0 {
			fail("required: the trainer's command line (a YAML list under command:, or --command once per word)")
		}
	case "provider":
		list := v.Interface().([]string)
		if len(list) == 0 {
			fail("required: one or several of %s", orList(Providers()))
		}
		for i, p := range list {
			if !slices.Contains(Providers(), p) {
				x.failItem(s, i, "want "+orList(Providers()))
			}
		}
	case "gpu-count":
		if n := v.Int(); n < 1 || n > 16 {
			fail("want 1 to 16")
		}
	case "image":
		if v.String() == "" && x.remote() {
			fail("required for the runpod and vast providers")
		}
	case "disk":
		if v.Int() < 1<<30 {
			fail("want at least 1GiB")
		}
	case "max-price-per-hour", "budget":
		if v.Float() < 0 {
			fail("negative")
		}
	case "vast-min-reliability":
		if f := v.Float(); f < 0 || f > 1 {
			fail("want 0 to 1")
		}
	case "launch-env":
		x.checkPassEnv(s, v.Interface().([]string))
	case "local-dir":
		if strings.TrimSpace(v.String()) == "" {
			fail("empty")
		}
	case "boot-timeout":
		if time.Duration(v.Int()) < 30*time.Second {
			fail("want at least 30s")
		}
	case "watch-interval":
		if d := time.Duration(v.Int()); d < time.Second || d > time.Hour {
			fail("want 1s to 1h")
		}
	case "max-failures":
		if v.Int() < 1 {
			fail("want at least 1")
		}
	}
}

// remote reports whether the spec lists a provider that rents machines.
func (x *validator) remote() bool {
	v := x.get("provider")
	if !v.IsValid() {
		return false
	}
	for _, p := range v.Interface().([]string) {
		if p == "runpod" || p == "vast" {
			return true
		}
	}
	return false
}

// HostEnv is the environment of baton run on a launched host: every
// setting of c that was given (by flag, variable or file) rather than
// defaulted, as its BATON_* variable, but for the config file and the env
// file (the host has neither) and detach (the provider decides how baton
// starts). Variables rather than flags, because the ready images' entrypoint
// is "baton run --" and a provider's arguments are the trainer's command
// (docs/launch.md); and a command line shows in ps. A store or code that is
// a relative path is made absolute. A list given empty cannot be told from
// an unset variable, and falls to its default on the host.
func HostEnv(c *Config) []string {
	var env []string
	for _, s := range Settings() {
		switch s.Flag {
		case "config", "detach", "env-file":
			continue
		}
		if s.Env == "-" || c.Origin(s.Flag).Source == SourceDefault {
			continue
		}
		value := formatValue(reflect.ValueOf(c).Elem().FieldByIndex(s.index))
		if (s.Flag == "store" || s.Flag == "code") && value != "" && !strings.Contains(value, "://") && !strings.HasPrefix(value, "git@") {
			if abs, err := filepath.Abs(value); err == nil {
				value = abs
			}
		}
		env = append(env, s.Env+"="+value)
	}
	return env
}
