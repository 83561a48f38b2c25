package platform

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
)

// Platform names, as they appear in [Description.Platform], in BATON_PLATFORM for the
// trainer, and in the metadata stored with each commit.
const (
	RunPod     = "runpod"
	Vast       = "vast"
	Kubernetes = "kubernetes"
	Lambda     = "lambda"
	Docker     = "docker"
	Local      = "local"
)

// Platforms lists every platform name in detection order: when the markers of several
// platforms are present, the first one in this list wins (see [Detect]).
func Platforms() []string {
	return []string{RunPod, Vast, Kubernetes, Lambda, Docker, Local}
}

// Description is the normalized view of the host a run is on. It holds no secret: it is
// logged once at start and stored with every commit.
type Description struct {
	// Platform is one of RunPod, Vast, Kubernetes, Lambda, Docker or Local.
	Platform string `json:"platform"`
	// InstanceID identifies the pod, instance or container on its platform: the RunPod pod
	// id, the Vast.ai instance id (a number), the Kubernetes pod name, the Docker container
	// id. Empty when the platform gives none (Lambda, a developer's machine).
	InstanceID string `json:"instance_id,omitempty"`
	// Host names the machine the container runs on, as the platform reports it (RunPod's
	// server host name, the Kubernetes node from a downward-API NODE_NAME, the host name of
	// a VM or developer machine). Empty when the platform does not say.
	Host string `json:"host,omitempty"`
	// GPUCount is the number of GPUs the platform says it gave the container; 0 means the
	// platform did not say (NVML telemetry knows better, and later).
	GPUCount int `json:"gpu_count,omitempty"`
	// PublicIP is the public address the platform reports, if any. On Vast.ai it is set at
	// start and not updated if the address changes.
	PublicIP string `json:"public_ip,omitempty"`
	// Ports maps an internal TCP port to the public port that reaches it on PublicIP. A
	// symmetric mapping requested with a placeholder port of 70000 or more is stored under
	// its real port (internal = external).
	Ports map[int]int `json:"ports,omitempty"`
	// PersistentDir is the directory whose contents survive a stop of the instance: RunPod's
	// volume at /workspace (only that survives), "/" on Vast.ai (a stopped instance keeps its
	// whole disk), a Lambda filesystem under /lambda/nfs. Empty when nothing is known to
	// survive (Kubernetes without a known volume, plain Docker, a developer's machine, where
	// everything does but baton cannot tell).
	PersistentDir string `json:"persistent_dir,omitempty"`
	// Interruptible reports that the platform may take the instance away at short notice
	// (spot, bid). Neither RunPod nor Vast.ai documents a variable that tells this from
	// inside the container, so detection leaves it false; the caller may set it from
	// configuration.
	Interruptible bool `json:"interruptible,omitempty"`
	// LaunchMode is how Vast.ai started the container: VastEntrypoint (the image's own
	// entrypoint, so baton can be PID 1 and receives the stop signal), VastSSH or
	// VastJupyter (Vast's launch script replaced the entrypoint and runs the on-start
	// script, from which baton runs detached, not as PID 1). Read from /.launch; empty on
	// other platforms or when /.launch cannot be read.
	LaunchMode string `json:"launch_mode,omitempty"`
}

// Vast.ai launch modes, as [Description.LaunchMode] reports them.
const (
	VastEntrypoint = "entrypoint"
	VastSSH        = "ssh"
	VastJupyter    = "jupyter"
)

// Marker files, relative to the root of the file system given to Detect.
const (
	// Docker creates /.dockerenv in every container; it is a de-facto marker, not a
	// documented interface, but container-detection code everywhere relies on it
	// (see https://github.com/containers/podman/issues/648).
	dockerEnvFile = ".dockerenv"
	// Podman creates /run/.containerenv in every container, as documented in
	// https://docs.podman.io/en/latest/markdown/podman-run.1.html.
	containerEnvFile = "run/.containerenv"
	// The cgroup of PID 1 names the container runtime under cgroup v1 (under v2 it is
	// "0::/" and says nothing).
	initCgroupFile = "proc/1/cgroup"
	// Kubernetes mounts the service-account token here unless
	// automountServiceAccountToken is false.
	serviceAccountDir = "var/run/secrets/kubernetes.io/serviceaccount"
	// Lambda Cloud mounts its persistent filesystems under /lambda/nfs/<name>. No variable
	// or file that marks a Lambda instance is documented; this directory is the only
	// Lambda-specific thing on the machine, and it exists only when a filesystem is
	// attached. Lambda is therefore detected conservatively: from this directory, or by
	// naming it (see DescribeAs).
	lambdaNFSDir = "lambda/nfs"
	// The host name of a VM or developer machine, and the container id inside Docker.
	hostnameFile = "etc/hostname"
	// RunPod mounts the volume disk or network volume at /workspace by default
	// (https://docs.runpod.io/pods/storage/types).
	runpodWorkspace = "workspace"
	// In its SSH and Jupyter launch modes Vast.ai replaces the image's entrypoint with its
	// own launch script, /.launch, which mentions jupyter only in the Jupyter mode; in the
	// entrypoint mode there is none. Vast's docs do not describe the file; Vast's own
	// images decide the mode from it exactly so (vast-ai/base-image at a7552d18,
	// ROOT/etc/vast_boot.d/10-prep-env.sh: "In entrypoint mode (no /.launch)", and
	// `grep -qi jupyter /.launch` for the Jupyter mode).
	vastLaunchFile = ".launch"
	// maxLaunchFile bounds how much of /.launch is read.
	maxLaunchFile = 1 << 20
)

// Detect describes the host from the process environment (as os.Environ returns it:
// "KEY=value" strings) and from marker files read through fsys, which stands for the root
// of the file system (os.DirFS("/") in production, a testing/fstest.MapFS in tests; nil
// means no file exists). It is pure: it reads nothing else.
//
// The environment is a list rather than a lookup function because the port maps
// (RUNPOD_TCP_PORT_<n>, VAST_TCP_PORT_<n>) can only be found by listing it.
//
// When the markers of several platforms are present the first match wins, in this order:
//
//  1. runpod: RUNPOD_POD_ID is set.
//  2. vast: VAST_CONTAINERLABEL is set, or CONTAINER_ID together with CONTAINER_API_KEY.
//  3. kubernetes: KUBERNETES_SERVICE_HOST is set, or the service-account directory exists.
//  4. lambda: /lambda/nfs exists.
//  5. docker: /.dockerenv or /run/.containerenv exists, or PID 1's cgroup names a
//     container runtime.
//  6. local: none of the above.
//
// The platform variables come first because the platform sets them on purpose; the
// container markers come last because RunPod and Vast.ai run on Docker too, and a
// Kubernetes pod usually has a container runtime's cgroup as well.
func Detect(environ []string, fsys fs.FS) Description {
	e := newEnv(environ)
	fsys = orEmpty(fsys)
	for _, name := range Platforms() {
		if d, _ := detectorFor(name); d.match(e, fsys) {
			return d.describe(e, fsys)
		}
	}
	return describeLocal(e, fsys) // unreachable: local always matches
}

// DescribeAs describes the host as the named platform, skipping detection: for a platform
// baton cannot tell apart (Lambda without a filesystem) or a deliberate override. The
// fields are read as Detect would read them for that platform. An unknown name is an
// error that names it.
func DescribeAs(name string, environ []string, fsys fs.FS) (Description, error) {
	d, ok := detectorFor(name)
	if !ok {
		return Description{}, fmt.Errorf("unknown platform %q: want one of %s", name, strings.Join(Platforms(), ", "))
	}
	return d.describe(newEnv(environ), orEmpty(fsys)), nil
}

// LogAttrs returns the description as log attributes, for the one line logged at start.
// The description holds no secret, so everything is included.
func (d Description) LogAttrs() []slog.Attr {
	attrs := []slog.Attr{slog.String("platform", d.Platform)}
	if d.InstanceID != "" {
		attrs = append(attrs, slog.String("instance_id", d.InstanceID))
	}
	if d.Host != "" {
		attrs = append(attrs, slog.String("host", d.Host))
	}
	if d.GPUCount > 0 {
		attrs = append(attrs, slog.Int("gpus", d.GPUCount))
	}
	if d.PublicIP != "" {
		attrs = append(attrs, slog.String("public_ip", d.PublicIP))
	}
	if len(d.Ports) > 0 {
		attrs = append(attrs, slog.String("ports", d.PortsString()))
	}
	if d.PersistentDir != "" {
		attrs = append(attrs, slog.String("persistent_dir", d.PersistentDir))
	}
	if d.LaunchMode != "" {
		attrs = append(attrs, slog.String("launch_mode", d.LaunchMode))
	}
	attrs = append(attrs, slog.Bool("interruptible", d.Interruptible))
	return attrs
}

// LogValue lets a Description be logged as one group: logger.Info("host", "platform", d).
func (d Description) LogValue() slog.Value {
	return slog.GroupValue(d.LogAttrs()...)
}

// PortsString renders the port map as "internal->external" pairs in internal-port order,
// e.g. "22->10022,8888->10023".
func (d Description) PortsString() string {
	internal := make([]int, 0, len(d.Ports))
	for p := range d.Ports {
		internal = append(internal, p)
	}
	sort.Ints(internal)
	parts := make([]string, len(internal))
	for i, p := range internal {
		parts[i] = fmt.Sprintf("%d->%d", p, d.Ports[p])
	}
	return strings.Join(parts, ",")
}

// detector recognizes one platform and reads its description.
type detector struct {
	match    func(env, fs.FS) bool
	describe func(env, fs.FS) Description
}

// detectorFor returns the detector of the named platform.
func detectorFor(name string) (detector, bool) {
	switch name {
	case RunPod:
		return detector{matchRunPod, describeRunPod}, true
	case Vast:
		return detector{matchVast, describeVast}, true
	case Kubernetes:
		return detector{matchKubernetes, describeKubernetes}, true
	case Lambda:
		return detector{matchLambda, describeLambda}, true
	case Docker:
		return detector{matchDocker, describeDocker}, true
	case Local:
		return detector{func(env, fs.FS) bool { return true }, describeLocal}, true
	}
	return detector{}, false
}

// RunPod sets these variables in every pod (https://docs.runpod.io/pods/references/environment-variables,
// https://docs.runpod.io/pods/templates/environment-variables): RUNPOD_POD_ID (the pod id),
// RUNPOD_POD_HOSTNAME (the host server), RUNPOD_GPU_COUNT, RUNPOD_PUBLIC_IP (if available),
// RUNPOD_TCP_PORT_22 and, per https://docs.runpod.io/pods/configuration/expose-ports, one
// RUNPOD_TCP_PORT_<internal> per exposed TCP port (70000 and up request a symmetric mapping).
// No variable says whether the pod is a spot (interruptible) one.
func matchRunPod(e env, _ fs.FS) bool { return e.get("RUNPOD_POD_ID") != "" }

func describeRunPod(e env, fsys fs.FS) Description {
	d := Description{
		Platform:   RunPod,
		InstanceID: e.get("RUNPOD_POD_ID"),
		Host:       e.get("RUNPOD_POD_HOSTNAME"),
		GPUCount:   gpuCount(e, "RUNPOD_GPU_COUNT"),
		PublicIP:   e.get("RUNPOD_PUBLIC_IP"),
		Ports:      e.ports("RUNPOD_TCP_PORT_"),
	}
	// Only the volume mount survives a stop; it is /workspace unless the user moved it,
	// and it is absent when the pod has no volume (https://docs.runpod.io/pods/storage/types).
	if isDir(fsys, runpodWorkspace) {
		d.PersistentDir = "/workspace"
	}
	return d
}

// Vast.ai sets these in every instance (https://docs.vast.ai/documentation/instances/docker-environment):
// CONTAINER_ID (the instance id), CONTAINER_API_KEY (a per-instance API key),
// VAST_CONTAINERLABEL (the instance's name, "C.<id>"), GPU_COUNT, PUBLIC_IPADDR (set at
// start, not updated), SSH_PUBLIC_KEY and one VAST_TCP_PORT_<internal> per open port
// (70000 and up request an identity mapping). A stopped instance keeps all its data
// (https://docs.vast.ai/cli/reference/stop-instance). No variable says whether the instance
// is interruptible. CONTAINER_ID alone is too common a name to count, so it needs
// CONTAINER_API_KEY beside it.
func matchVast(e env, _ fs.FS) bool {
	return e.get("VAST_CONTAINERLABEL") != "" || (e.get("CONTAINER_ID") != "" && e.get("CONTAINER_API_KEY") != "")
}

func describeVast(e env, fsys fs.FS) Description {
	id := e.get("CONTAINER_ID")
	if id == "" {
		// Vast's own images fall back the same way: ${CONTAINER_ID:-${VAST_CONTAINERLABEL#C.}}
		// (vast-ai/base-image at a7552d18, ROOT/etc/vast_boot.d/55-tls-cert-gen.sh).
		id = strings.TrimPrefix(e.get("VAST_CONTAINERLABEL"), "C.")
	}
	return Description{
		Platform:      Vast,
		InstanceID:    id,
		GPUCount:      gpuCount(e, "GPU_COUNT"),
		PublicIP:      e.get("PUBLIC_IPADDR"),
		Ports:         e.ports("VAST_TCP_PORT_"),
		PersistentDir: "/",
		LaunchMode:    vastLaunchMode(fsys),
	}
}

// vastLaunchMode reads the launch mode from /.launch (see vastLaunchFile): none means
// the entrypoint mode, one that mentions jupyter (in any case) the Jupyter mode, any
// other the SSH mode. A /.launch that cannot be read gives "".
func vastLaunchMode(fsys fs.FS) string {
	f, err := fsys.Open(vastLaunchFile)
	if errors.Is(err, fs.ErrNotExist) {
		return VastEntrypoint
	}
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLaunchFile))
	if err != nil {
		return ""
	}
	if bytes.Contains(bytes.ToLower(b), []byte("jupyter")) {
		return VastJupyter
	}
	return VastSSH
}

// Kubernetes sets KUBERNETES_SERVICE_HOST for the control-plane service in every container,
// and a container's host name is its pod's name
// (https://kubernetes.io/docs/concepts/containers/container-environment). The pod and node
// names reach the container only through the downward API under names the manifest chooses
// (https://kubernetes.io/docs/tasks/configure-pod-container/environment-variable-expose-pod-information/);
// baton reads the conventional POD_NAME and NODE_NAME.
func matchKubernetes(e env, fsys fs.FS) bool {
	return e.get("KUBERNETES_SERVICE_HOST") != "" || isDir(fsys, serviceAccountDir)
}

func describeKubernetes(e env, fsys fs.FS) Description {
	id := e.get("POD_NAME")
	if id == "" {
		id = hostname(e, fsys)
	}
	return Description{
		Platform:   Kubernetes,
		InstanceID: id,
		Host:       e.get("NODE_NAME"),
		GPUCount:   gpuCount(e, ""),
	}
}

// Lambda Cloud instances are VMs; see lambdaNFSDir for why detection is conservative.
func matchLambda(_ env, fsys fs.FS) bool { return isDir(fsys, lambdaNFSDir) }

func describeLambda(e env, fsys fs.FS) Description {
	d := Description{Platform: Lambda, Host: hostname(e, fsys), GPUCount: gpuCount(e, "")}
	if isDir(fsys, lambdaNFSDir) {
		d.PersistentDir = "/" + lambdaNFSDir
		if entries, err := fs.ReadDir(fsys, lambdaNFSDir); err == nil {
			var dirs []string
			for _, en := range entries {
				if en.IsDir() {
					dirs = append(dirs, en.Name())
				}
			}
			if len(dirs) == 1 {
				d.PersistentDir += "/" + dirs[0]
			}
		}
	}
	return d
}

// A plain container: Docker sets HOSTNAME to the container id.
func matchDocker(_ env, fsys fs.FS) bool {
	if exists(fsys, dockerEnvFile) || exists(fsys, containerEnvFile) {
		return true
	}
	b, err := fs.ReadFile(fsys, initCgroupFile)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		for _, rt := range []string{"docker", "containerd", "kubepods", "libpod", "crio"} {
			if strings.Contains(line, rt) {
				return true
			}
		}
	}
	return false
}

func describeDocker(e env, fsys fs.FS) Description {
	return Description{Platform: Docker, InstanceID: hostname(e, fsys), GPUCount: gpuCount(e, "")}
}

func describeLocal(e env, fsys fs.FS) Description {
	return Description{Platform: Local, Host: hostname(e, fsys), GPUCount: gpuCount(e, "")}
}

// gpuCount reads the platform's own count from the variable named key, then falls back on
// NVIDIA_VISIBLE_DEVICES when it lists devices: a comma-separated list of indexes or UUIDs;
// "all", "none", "void" or empty say nothing about the count
// (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/docker-specialized.html).
func gpuCount(e env, key string) int {
	if key != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(e.get(key))); err == nil && n >= 0 {
			return n
		}
	}
	v := strings.TrimSpace(e.get("NVIDIA_VISIBLE_DEVICES"))
	switch strings.ToLower(v) {
	case "", "all", "none", "void":
		return 0
	}
	n := 0
	for _, part := range strings.Split(v, ",") {
		if strings.TrimSpace(part) != "" {
			n++
		}
	}
	return n
}

// hostname is HOSTNAME from the environment, else the first line of /etc/hostname.
func hostname(e env, fsys fs.FS) string {
	if h := strings.TrimSpace(e.get("HOSTNAME")); h != "" {
		return h
	}
	b, err := fs.ReadFile(fsys, hostnameFile)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

func exists(fsys fs.FS, name string) bool {
	_, err := fs.Stat(fsys, name)
	return err == nil
}

func isDir(fsys fs.FS, name string) bool {
	fi, err := fs.Stat(fsys, name)
	return err == nil && fi.IsDir()
}

// orEmpty returns fsys, or a file system with no file when fsys is nil.
func orEmpty(fsys fs.FS) fs.FS {
	if fsys == nil {
		return emptyFS{}
	}
	return fsys
}

// emptyFS holds no file.
type emptyFS struct{}

func (emptyFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// env is the environment as a map; the last of repeated keys wins, as in os.Getenv.
type env map[string]string

func newEnv(environ []string) env {
	e := make(env, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" {
			e[k] = v
		}
	}
	return e
}

func (e env) get(key string) string { return e[key] }

// ports collects PREFIX<internal>=<external> variables. A placeholder internal port of
// 70000 or more (a request for a symmetric mapping) is stored under the external port it
// got. Malformed entries are skipped.
func (e env) ports(prefix string) map[int]int {
	var m map[int]int
	for k, v := range e {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		internal, err1 := strconv.Atoi(rest)
		external, err2 := strconv.Atoi(strings.TrimSpace(v))
		if err1 != nil || err2 != nil || internal < 1 || external < 1 || external > 65535 {
			continue
		}
		if internal > 65535 {
			internal = external
		}
		if m == nil {
			m = make(map[int]int)
		}
		m[internal] = external
	}
	return m
}

// Getenv returns a lookup function over an environment list, for the functions of this
// package that take one (NewController, SetupSSH) when the caller holds a list.
func Getenv(environ []string) func(string) string {
	e := newEnv(environ)
	return e.get
}
