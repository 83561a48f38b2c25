// Package config is the configuration of every baton command: every
// setting, where it came from, and whether it makes sense.
//
// A setting is read, in this order of precedence, from a command-line flag
// (--checkpoint-interval), a BATON_* environment variable
// (BATON_CHECKPOINT_INTERVAL), the YAML file named by --config or
// BATON_CONFIG (checkpoint_interval), and finally its default. All four names
// and the default sit in struct tags, the one place they are written down:
// Config holds baton run's, and the structs of commands.go the other
// commands', which take the settings they share with baton run by name
// (setting:"store"). LoadInto reads any of them, Validate names the key as
// the user wrote it, and Reference renders docs/config.md from them.
//
// LoadInto parses (a value that is not a duration, an unknown flag or YAML
// key); Validate judges (a duration that is negative, an exit action that
// does not exist). Both report every problem at once, as Problems of *Error,
// which a command maps to exit status 2 before anything is pulled.
package config

//go:generate go test -run=^TestReferenceIsUpToDate$ . -update

import (
	"strconv"
	"time"

	"github.com/batonrun/baton/internal/units"
)

// Config is every setting of "baton run". Each field's tags give its flag
// name (flag), its environment variable (env), its YAML key (yaml; "-" for
// none), its default as it would be written on the command line (default),
// the values it may take (enum, optional) and a one-line meaning (help).
type Config struct {
	// ConfigFile is the YAML file read for the settings not given as flags
	// or environment variables.
	ConfigFile string `flag:"config" env:"BATON_CONFIG" yaml:"-" default:"" help:"YAML file of settings, keyed as in docs/config.md; flags and BATON_* variables win over it, it wins over the defaults"`
	// Store is the URL of the store that holds the run.
	Store string `flag:"store" env:"BATON_STORE" yaml:"store" default:"" required:"true" help:"required: the store that holds checkpoints, logs and telemetry: s3://bucket/prefix (AWS or any S3-compatible server; credentials come from the AWS_* variables, never the URL), file:///path or a path (a network volume); see docs/storage.md"`
	// RunID names the run; the same ID on another host resumes it.
	RunID string `flag:"run" env:"BATON_RUN_ID" yaml:"run_id" default:"" required:"true" help:"required: the run's name, 1 to 128 of [A-Za-z0-9._-]; the same name on another host resumes the run; the trainer sees it as BATON_RUN_ID"`
	// CheckpointDir is the directory the trainer saves into.
	CheckpointDir string `flag:"checkpoint-dir" env:"BATON_CHECKPOINT_DIR" yaml:"checkpoint_dir" default:"./checkpoints" help:"the directory the trainer saves its checkpoints into: restored before it starts, committed from while it runs; a relative path is taken from the working directory and the trainer sees it absolute as BATON_CHECKPOINT_DIR; local disk is fine, since the store, not the disk, carries the run to its next host"`
	// CheckpointInterval is the period of timed commits; 0 turns them off.
	CheckpointInterval time.Duration `flag:"checkpoint-interval" env:"BATON_CHECKPOINT_INTERVAL" yaml:"checkpoint_interval" default:"10m" help:"commit the checkpoint directory this often; 0: only when the trainer asks (baton checkpoint commit) and at exit; 0 or at least 10s; 10m bounds the work a preemption can cost without uploading a big model all the time (unchanged chunks are never uploaded twice)"`
	// Quiescence is how long the directory must be unchanged before a timed
	// commit.
	Quiescence time.Duration `flag:"quiescence" env:"BATON_QUIESCENCE" yaml:"quiescence" default:"5s" help:"a timed commit waits until no file in the checkpoint directory changed for this long, so that a checkpoint still being written is not taken; shorter than the interval"`
	// Exclude are globs of file and directory names that commits leave
	// out: what trainers write under a temporary name and rename when done.
	Exclude []string `flag:"exclude" env:"BATON_EXCLUDE" yaml:"exclude" default:"*.tmp,*.partial,tmp-checkpoint-*" help:"globs of file and directory names (path.Match syntax, matched against the name alone, never a path) that commits leave out: files a trainer is still writing under a temporary name and renames when done, so that a commit during a save takes the rest instead of failing; a matching directory is left out whole; a list given replaces the defaults, so repeat them to keep them; empty (--exclude=, or exclude: [] in the file): leave nothing out"`
	// Keep is how many checkpoints retention keeps; 0 keeps all.
	Keep int `flag:"keep" env:"BATON_KEEP" yaml:"keep" default:"3" help:"keep the newest K checkpoints of the run in the store (and the pinned ones) and delete older ones; 0 keeps every one; 3 leaves two to fall back on if the newest is bad"`
	// Code is where the training code comes from; see ParseCode.
	Code string `flag:"code" env:"BATON_CODE" yaml:"code" default:"" help:"the training code, fetched before the trainer starts: a git URL with an optional #ref (https://github.com/me/repo.git#v1, git@github.com:me/repo.git#main), a store prefix (s3://bucket/code, file:///src) or a tarball (.tar, .tar.gz, .tgz) in a store; empty: the code is in the image already"`
	// CodeDir is where Code is fetched to.
	CodeDir string `flag:"code-dir" env:"BATON_CODE_DIR" yaml:"code_dir" default:"./code" help:"where --code is fetched to; when --code is set, the trainer starts in this directory"`
	// Data are the datasets to pull before the trainer starts.
	Data []DataMapping `flag:"data" env:"BATON_DATA" yaml:"data" default:"" help:"datasets to pull before the trainer starts, as SRC=DST (SRC a store prefix or URL as for --store, DST a local directory); several are separated by commas or newlines, or given as repeated --data flags or a YAML list or mapping; what is already there is not downloaded again"`
	// OnExit is what happens to the machine when the run ends.
	OnExit string `flag:"on-exit" env:"BATON_ON_EXIT" yaml:"on_exit" enum:"none,stop,terminate" default:"none" help:"what to do with the machine when the run ends: none (just exit), stop (stop the pod or instance; its disk is kept and billed) or terminate (delete it), through the platform's API (RUNPOD_API_KEY, CONTAINER_API_KEY); none by default because ending the billing is the user's call, but a platform may start an exited container again (a Kubernetes pod with restartPolicy Always does)"`
	// OnFailure overrides OnExit when the run failed; empty means OnExit.
	OnFailure string `flag:"on-failure" env:"BATON_ON_FAILURE" yaml:"on_failure" enum:"none,stop,terminate" default:"" help:"the same, for a run that failed (the trainer failed after its restarts, or the host was given up for bad health); empty: as --on-exit; e.g. --on-exit=terminate --on-failure=stop keeps a failed machine to look at"`
	// OnSuperseded is what happens to the machine when another host has
	// the run (exit 75 or 76).
	OnSuperseded string `flag:"on-superseded" env:"BATON_ON_SUPERSEDED" yaml:"on_superseded" enum:"none,stop,terminate" default:"none" help:"what to do with the machine when another host has the run: it held the lease past --lease-wait (exit 75) or took it over (exit 76); RunPod restarts an exited container and a Vast.ai interruptible instance resumes by itself, so a superseded machine would go on billing; none, stop or terminate"`
	// Scrub deletes what the run put on the machine when it ends safely;
	// unset (Origin("scrub") is SourceDefault) the agent decides (see
	// agent/scrub.go's scrubWanted).
	Scrub bool `flag:"scrub" env:"BATON_SCRUB" yaml:"scrub" default:"false" help:"when the run ends and everything the trainer saved is in the store, delete the checkpoint directory, each --data DST, the --code-dir (when --code is set), the trainer's log copy and baton's own files (socket, lock, and with --detach the pid and log files) before the exit action, logging what went and how many bytes; never after a failed final commit or a lost lease, never a mount point, /, $HOME or the working directory; not set: on when --on-exit is stop or terminate, and on Vast.ai, else off (the default shown); --scrub=false keeps everything; deleting is not erasing: see docs/run.md, Scrub"`
	// RunPodAPIURL is the base URL of RunPod's REST API v2, for the exit
	// actions (read by platform.NewController as BATON_RUNPOD_API_URL).
	RunPodAPIURL string `flag:"runpod-api-url" env:"BATON_RUNPOD_API_URL" yaml:"runpod_api_url" default:"https://api.runpod.io/v2" help:"base URL of RunPod's REST API v2 for --on-exit and --on-failure: a stop is POST URL/pods/ID/action with {\"action\":\"stop\"}, a terminate DELETE URL/pods/ID; replace it only with a proxy or a test server, and then RunPod's GraphQL API is not tried as the fallback; https, or http to a loopback address; see docs/platforms.md"`
	// VastAPIURL is the base URL of Vast.ai's API, for the exit actions
	// (read by platform.NewController as BATON_VAST_API_URL).
	VastAPIURL string `flag:"vast-api-url" env:"BATON_VAST_API_URL" yaml:"vast_api_url" default:"https://console.vast.ai/api/v0" help:"base URL of Vast.ai's API for --on-exit and --on-failure: a stop is PUT URL/instances/ID/ with {\"state\":\"stopped\"}, a destroy DELETE URL/instances/ID/; replace it only with a proxy or a test server; https, or http to a loopback address; see docs/platforms.md"`
	// Restarts is how many times a failed trainer is started again.
	Restarts int `flag:"restarts" env:"BATON_RESTARTS" yaml:"restarts" default:"3" help:"start the trainer again this many times after it fails, each attempt resuming from the newest checkpoint; 3 rides out a transient crash (an NCCL timeout, a killed data loader) while a bug still fails within minutes"`
	// RestartBackoff is the wait before the first restart.
	RestartBackoff time.Duration `flag:"restart-backoff" env:"BATON_RESTART_BACKOFF" yaml:"restart_backoff" default:"10s" help:"wait this long before the first restart, twice as long before each further one, at most 5m"`
	// Grace is how long the trainer has between SIGTERM and SIGKILL.
	// Grace is how long the trainer has between SIGTERM and SIGKILL; 0
	// means half the stop window (see StopBudget).
	Grace time.Duration `flag:"grace" env:"BATON_GRACE" yaml:"grace" default:"0" help:"on SIGTERM or SIGINT, how long the trainer has to save and exit before baton kills it; the final commit needs the rest of the stop window; 0: half the stop window, leaving the final commit the other half (docker 5s, kubernetes 15s, runpod 2.5s, vast 5s, lambda 5s, local 10s; see docs/run.md, The stop budget); else 1s to 10m, less than --stop-window when that is set"`
	// StopWindow is the time the platform leaves between SIGTERM and
	// SIGKILL; 0 means the detected platform's default (see
	// PlatformStopWindow).
	StopWindow time.Duration `flag:"stop-window" env:"BATON_STOP_WINDOW" yaml:"stop_window" default:"0" help:"how long the platform waits after SIGTERM before it kills the container: the time the trainer's exit and the final commit share; 0: the detected platform's default (docker 10s, kubernetes 30s, runpod 5s, vast 10s assumed, lambda 10s assumed, local none); set it when you changed the window (docker stop -t, a pod's terminationGracePeriodSeconds); else 2s to 24h"`
	// LeaseDuration is how long the run's lease lasts unless renewed.
	LeaseDuration time.Duration `flag:"lease-duration" env:"BATON_LEASE_DURATION" yaml:"lease_duration" default:"2m" help:"how long this host's lease on the run lasts unless renewed: a host that vanished holds the run up this long at most, and one cut off from the store this long stops committing; 10s to 1h"`
	// LeaseWait is how long baton run waits for a run held by another host;
	// see LeaseWaitDuration.
	LeaseWait string `flag:"lease-wait" env:"BATON_LEASE_WAIT" yaml:"lease_wait" default:"auto" help:"when another host holds the run, wait this long for its lease to end (a host that vanished stops renewing, and its lease expires) before exiting 75; auto: the lease duration plus 30s, enough to outlast any lease that is not renewed; 0: exit 75 at once"`
	// Workers is the number of requests in flight to the store.
	Workers int `flag:"workers" env:"BATON_WORKERS" yaml:"workers" default:"16" help:"requests in flight to the store at once, 1 to 1024"`
	// Nice is the niceness of baton run's own threads while the trainer
	// runs (internal/priority); the trainer keeps baton's starting one.
	Nice int `flag:"nice" env:"BATON_NICE" yaml:"nice" default:"19" help:"niceness of baton's own work (commits, uploads, telemetry) once the trainer starts, 0 to 19, so that it takes CPU time the trainer leaves over instead of the trainer's: the trainer keeps the niceness baton started with; measured on 2 busy cores, a 1 GiB commit slows the trainer 2.7% at 19, 11% at 10 and 44% at 0 (medians), and runs 54 s, 13 s and 2.4 s (docs/checkpoint-format.md, Commits and the trainer's CPU); on a machine with idle cores it is as fast at 19; 0, or not above baton's own niceness: nothing is lowered"`
	// PartSize is the size of one part of a big file in a transfer.
	PartSize ByteSize `flag:"part-size" env:"BATON_PART_SIZE" yaml:"part_size" default:"16MiB" help:"size of one part of a big file when pulling code and data, 5MiB to 5GiB"`
	// ChunkSize is the chunk size of checkpoint commits.
	ChunkSize ByteSize `flag:"chunk-size" env:"BATON_CHUNK_SIZE" yaml:"chunk_size" default:"4MiB" help:"chunk size of a checkpoint commit, 64KiB to 1GiB; 4MiB dedupes best (measured: 75% of a partly frozen model's chunks reused between checkpoints, 50% at 64MiB)"`
	// EncryptionKey encrypts the run's checkpoints (checkpoint.ParseKey).
	EncryptionKey string `flag:"encryption-key" env:"BATON_ENCRYPTION_KEY" yaml:"encryption_key" default:"" help:"encrypt the run's checkpoints in the store: 32 bytes in standard base64 (head -c32 /dev/urandom | base64), or @PATH of a file holding them (base64 or raw); chunks, manifests, log segments and telemetry are sealed with AES-256-GCM and chunks named by keyed hashes; a run is encrypted from its first checkpoint or never, and is read (restore, ls, its logs and telemetry) only with its key: keep the key elsewhere too, a lost key loses the checkpoints; see docs/checkpoint-format.md, Encryption"`
	// S3Driver is the S3 client library.
	S3Driver string `flag:"s3-driver" env:"BATON_S3_DRIVER" yaml:"s3_driver" enum:"aws,minio" default:"aws" help:"S3 client library: aws (the whole AWS credential chain) or minio; a store URL's driver= wins"`
	// MetricsAddr is the address of the Prometheus endpoint; empty turns it
	// off.
	MetricsAddr string `flag:"metrics-addr" env:"BATON_METRICS_ADDR" yaml:"metrics_addr" default:"127.0.0.1:9400" help:"HOST:PORT of the Prometheus endpoint (GPU series under dcgm-exporter's names, on its port); empty: off; only loopback unless --metrics-token is set, because RunPod's proxy makes every HTTP port public"`
	// MetricsToken is the bearer token the metrics endpoint requires.
	MetricsToken string `flag:"metrics-token" env:"BATON_METRICS_TOKEN" yaml:"metrics_token" default:"" help:"bearer token the metrics endpoint requires; needed to listen beyond loopback; never printed"`
	// TelemetryInterval is the period of GPU and host samples; 0 turns
	// telemetry off.
	TelemetryInterval time.Duration `flag:"telemetry-interval" env:"BATON_TELEMETRY_INTERVAL" yaml:"telemetry_interval" default:"5s" help:"sample the GPUs (NVML) and the host this often, for the metrics endpoint, the health policy and the run's telemetry in the store; 0: off (and no health policy); 0 or 100ms to 1h"`
	// TelemetryUpload is the period of telemetry uploads to the store.
	TelemetryUpload time.Duration `flag:"telemetry-upload" env:"BATON_TELEMETRY_UPLOAD" yaml:"telemetry_upload" default:"1m" help:"append the samples to the run's telemetry in the store (runs/RUN/telemetry/) this often, as one new part of JSON lines; 0: keep telemetry local"`
	// GPUCheck refuses to start on a GPU that is already unhealthy.
	GPUCheck bool `flag:"gpu-check" env:"BATON_GPU_CHECK" yaml:"gpu_check" default:"true" help:"before the trainer starts, refuse a GPU that is already unhealthy (uncorrectable ECC errors, a pending or failed row remap) with exit status 77, so the run moves to a healthy host instead of training on a broken one"`
	// OnUnhealthy is what happens when a GPU turns unhealthy mid-run.
	OnUnhealthy string `flag:"on-unhealthy" env:"BATON_ON_UNHEALTHY" yaml:"on_unhealthy" enum:"give-up,report" default:"give-up" help:"when a GPU reports a critical XID, an uncorrectable ECC error or a pending row remap: give-up (commit now, stop the trainer, exit 77 and carry out --on-failure) or report (log it and carry on)"`
	// HangTimeout is how long a trainer may make no progress before it is
	// taken as hung; 0 turns hang detection off.
	HangTimeout time.Duration `flag:"hang-timeout" env:"BATON_HANG_TIMEOUT" yaml:"hang_timeout" default:"30m" help:"take the trainer as hung when for this long it wrote no output and no checkpoint while its GPUs sat idle or pinned at 100% at low power; 0: off; at least 1m (a slow first step or a long evaluation must not look like a hang)"`
	// OnHang is what happens to a hung trainer.
	OnHang string `flag:"on-hang" env:"BATON_ON_HANG" yaml:"on_hang" enum:"restart,give-up,report" default:"restart" help:"what to do with a hung trainer: restart (stop it and start it again from the newest checkpoint, counting against --restarts), give-up (commit, stop it, exit 78 and carry out --on-failure) or report (log it and carry on)"`
	// MinFreeDisk is the free space below which a disk is reported.
	MinFreeDisk ByteSize `flag:"min-free-disk" env:"BATON_MIN_FREE_DISK" yaml:"min_free_disk" default:"2GiB" help:"warn (log, metrics, baton doctor) when the checkpoint directory's disk has less free space than this: a full disk is the commonest way a checkpoint dies"`
	// Notify are the webhook URLs that receive the run's events; see
	// package notify.
	Notify []string `flag:"notify" env:"BATON_NOTIFY" yaml:"notify" type:"URL list" default:"" help:"webhook URLs (http or https) that receive one JSON object per event of the run: run_started, checkpoint_committed (at most one a minute), host_given_up, lease_lost, final_commit_failed, run_finished; a Slack (hooks.slack.com) or Discord (discord.com/api/webhooks) URL also gets the message in the field it shows; several are separated by commas, or given as repeated --notify flags or a YAML list; delivered in the background with retries, never holding the run up; the URL is a secret (Slack's and Discord's hold a token): baton's log and errors show its host only; see docs/notifications.md"`
	// PassEnv names the variables of baton's environment that the trainer
	// gets although baton withholds them by default (WithheldEnv).
	PassEnv []string `flag:"pass-env" env:"BATON_PASS_ENV" yaml:"pass_env" type:"name list" default:"" help:"names of variables baton keeps from the trainer's environment by default that it passes on anyway: BATON_METRICS_TOKEN, RUNPOD_API_KEY and CONTAINER_API_KEY (the platforms' API keys, which can stop or delete the machine) are withheld unless named here; several are separated by commas, or given as repeated --pass-env flags or a YAML list; see docs/run.md"`
	// LogFormat is the format of baton's own log lines.
	LogFormat string `flag:"log-format" env:"BATON_LOG_FORMAT" yaml:"log_format" enum:"auto,json,text" default:"auto" help:"format of baton's own log lines; auto: text on a terminal, JSON otherwise, which the platforms' log collectors parse"`
	// Detach starts baton in the background.
	Detach bool `flag:"detach" env:"BATON_DETACH" yaml:"detach" default:"false" help:"start in the background and return at once, for Vast's ssh and jupyter modes where baton runs from onstart; running it again while that baton lives does nothing"`
	// PIDFile is where a detached baton writes its process ID.
	PIDFile string `flag:"pid-file" env:"BATON_PID_FILE" yaml:"pid_file" default:"/tmp/baton.pid" help:"with --detach: the file holding the background baton's process ID, which makes a second --detach a no-op"`
	// LogFile is where a detached baton writes its output.
	LogFile string `flag:"log-file" env:"BATON_LOG_FILE" yaml:"log_file" default:"/tmp/baton.log" help:"with --detach: the file that receives baton's and the trainer's output"`
	// EnvFile is a file of NAME=value lines that baton run adds to its
	// environment at start and then deletes, so that no secret stays on
	// disk (cmd/baton/envfile.go).
	EnvFile string `flag:"env-file" env:"BATON_ENV_FILE" yaml:"env_file" default:"" help:"a file of NAME=value lines (# comments, blank lines, optional export and quotes) that baton run adds to its environment, and so the trainer's, at start, a variable already set keeping its value, and then deletes, so that the keys it holds stay on no disk; see docs/run.md"`

	// Origins records where each setting came from.
	Origins
}

// DataMapping is one dataset to pull: the store prefix Src into the local
// directory Dst.
type DataMapping struct {
	Src string
	Dst string
}

// String writes m as SRC=DST.
func (m DataMapping) String() string { return m.Src + "=" + m.Dst }

// LeaseWaitDuration is LeaseWait as a duration: auto is the lease duration
// plus 30 s. It assumes Validate accepted the config.
func (c Config) LeaseWaitDuration() time.Duration {
	if c.LeaseWait == "auto" {
		return c.LeaseDuration + 30*time.Second
	}
	d, _ := time.ParseDuration(c.LeaseWait)
	return d
}

// FailureAction is the exit action of a failed run: OnFailure, or OnExit
// where OnFailure is empty.
func (c Config) FailureAction() string {
	if c.OnFailure != "" {
		return c.OnFailure
	}
	return c.OnExit
}

// Source is where a value came from.
type Source int

// The sources, in increasing order of precedence.
const (
	SourceDefault Source = iota // the default in Config's tags
	SourceFile                  // the YAML file
	SourceEnv                   // a BATON_* environment variable
	SourceFlag                  // a command-line flag
)

// String names the source: default, file, env or flag.
func (s Source) String() string {
	switch s {
	case SourceDefault:
		return "default"
	case SourceFile:
		return "file"
	case SourceEnv:
		return "env"
	case SourceFlag:
		return "flag"
	}
	return "Source(" + strconv.Itoa(int(s)) + ")"
}

// Origin is where one value came from.
type Origin struct {
	// Source is the kind of place.
	Source Source
	// Key is the name as the user wrote it: "--keep", "BATON_KEEP" or
	// "keep"; an element of a list has its index: "data[1]",
	// "BATON_DATA[1]", "--data[1]". A default's key is its flag.
	Key string
	// File and Line locate a value from the YAML file (Line 0: unknown).
	File string
	Line int
}

// origin is an Origin with the text the user wrote, and the origins of a
// list's elements.
type origin struct {
	Origin
	raw   string
	items []origin
}

// ByteSize is a number of bytes, written with an optional binary unit:
// 16MiB, 16M, 512KiB, 1GiB, 1048576.
type ByteSize int64

// String writes b with the largest binary unit that divides it, so that
// ParseByteSize reads it back (units.ExactBytes).
func (b ByteSize) String() string { return units.ExactBytes(int64(b)) }

// ParseByteSize reads a size written as ByteSize.String writes it, or with
// the short units K, M, G or B (units.ParseBytes).
func ParseByteSize(s string) (ByteSize, error) {
	n, err := units.ParseBytes(s)
	return ByteSize(n), err
}
