package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SSHOptions adjusts SetupSSH. The zero value works on the real machine.
type SSHOptions struct {
	// Root stands for "/": authorized_keys, the host keys, sshd's pid file and the sshd and
	// ssh-keygen binaries are all looked for under it. Empty means "/". Tests pass a
	// temporary directory.
	Root string
	// Home is the home directory, as seen under Root, whose .ssh/authorized_keys receives
	// the keys. Empty means $HOME, else /root.
	Home string
	// SSHDPath is the sshd binary to start. Empty means the first of /usr/sbin/sshd,
	// /usr/bin/sshd and /sbin/sshd that exists under Root.
	SSHDPath string
	// KeygenPath is the ssh-keygen binary. Empty means the first of /usr/bin/ssh-keygen,
	// /bin/ssh-keygen and /usr/local/bin/ssh-keygen that exists under Root.
	KeygenPath string
	// Run runs a command to completion and returns its failure. Nil means os/exec; tests
	// replace it so that no real sshd starts.
	Run func(ctx context.Context, name string, args ...string) error
}

// SSHResult says what SetupSSH did, for the log.
type SSHResult struct {
	// KeyVars names the variables the keys came from.
	KeyVars []string
	// KeysAdded counts the keys appended to authorized_keys; KeysPresent those already there.
	KeysAdded, KeysPresent int
	// KeysInvalid counts lines of the key variables that are not public keys (skipped).
	KeysInvalid int
	// AuthorizedKeys is the file the keys went to, as seen under Root.
	AuthorizedKeys string
	// HostKeysGenerated reports that ssh-keygen -A ran because a host key was missing.
	HostKeysGenerated bool
	// Started reports that sshd was started; AlreadyRunning that a running sshd was found.
	Started, AlreadyRunning bool
	// Skipped says why nothing was done; empty when something was.
	Skipped string
}

// Key variables per platform. RunPod passes the account's keys in PUBLIC_KEY and its own
// start script appends them to ~/.ssh/authorized_keys, generates missing host keys and
// starts sshd (https://docs.runpod.io/pods/references/environment-variables;
// runpod/containers, container-template/start.sh). Vast.ai passes them in SSH_PUBLIC_KEY
// (https://docs.vast.ai/documentation/instances/docker-environment) and says that in
// entrypoint launch mode the image sets SSH up itself.
func sshKeyVars(platform string) []string {
	switch platform {
	case RunPod:
		return []string{"PUBLIC_KEY"}
	case Vast:
		return []string{"SSH_PUBLIC_KEY"}
	case Docker, Kubernetes:
		// A container on another platform: honour either name, for images moved between them.
		return []string{"PUBLIC_KEY", "SSH_PUBLIC_KEY"}
	}
	// Local machines and Lambda VMs run their own sshd; baton never touches their keys.
	return nil
}

// SetupSSH does what the platforms' start scripts do for SSH, so that baton as the
// entrypoint does not cost the user SSH: when the platform's key variable (PUBLIC_KEY on
// RunPod, SSH_PUBLIC_KEY on Vast.ai, either in another container) holds public keys and the
// image has sshd, it appends the keys that are not there yet to ~/.ssh/authorized_keys
// (directory 0700, file 0600; running it again adds nothing), generates the host keys if
// one is missing (ssh-keygen -A) and starts sshd, which daemonizes, unless one is already
// running. On a developer's machine or a Lambda VM it does nothing.
//
// Nothing to do is not an error: the result's Skipped says why. A key variable that is set
// while the image has no sshd is reported there too, for the caller to warn about.
func SetupSSH(ctx context.Context, d Description, getenv func(string) string, opts SSHOptions) (SSHResult, error) {
	var res SSHResult
	vars := sshKeyVars(d.Platform)
	if vars == nil {
		res.Skipped = "not a container platform (" + d.Platform + ")"
		return res, nil
	}
	var keys []string
	for _, v := range vars {
		if val := getenv(v); strings.TrimSpace(val) != "" {
			res.KeyVars = append(res.KeyVars, v)
			k, bad := parseKeys(val)
			keys = append(keys, k...)
			res.KeysInvalid += bad
		}
	}
	if len(res.KeyVars) == 0 {
		res.Skipped = strings.Join(vars, " and ") + " not set"
		return res, nil
	}
	if len(keys) == 0 {
		res.Skipped = strings.Join(res.KeyVars, " and ") + " holds no public key"
		return res, nil
	}

	root := opts.Root
	if root == "" {
		root = "/"
	}
	sshd := opts.SSHDPath
	if sshd == "" {
		sshd = findUnder(root, "/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd")
	}
	if sshd == "" || !isFile(sshd) {
		res.Skipped = strings.Join(res.KeyVars, " and ") + " is set but the image has no sshd"
		return res, nil
	}
	run := opts.Run
	if run == nil {
		run = runCommand
	}

	home := opts.Home
	if home == "" {
		home = getenv("HOME")
	}
	if home == "" {
		home = "/root"
	}
	res.AuthorizedKeys = filepath.Join(home, ".ssh", "authorized_keys")
	added, present, err := installKeys(filepath.Join(root, res.AuthorizedKeys), keys)
	res.KeysAdded, res.KeysPresent = added, present
	if err != nil {
		return res, fmt.Errorf("ssh: install keys in %s: %w", res.AuthorizedKeys, err)
	}

	generated, err := ensureHostKeys(ctx, root, opts.KeygenPath, run)
	res.HostKeysGenerated = generated
	if err != nil {
		return res, fmt.Errorf("ssh: host keys: %w", err)
	}

	if sshdRunning(root) {
		res.AlreadyRunning = true
		return res, nil
	}
	// sshd refuses to start without its privilege-separation directory, which the distros'
	// service scripts create (Debian and Ubuntu: /run/sshd).
	if err := os.MkdirAll(filepath.Join(root, "run", "sshd"), 0o755); err != nil {
		return res, fmt.Errorf("ssh: privilege separation directory: %w", err)
	}
	// Without -D sshd forks into the background and the command returns once it listens.
	if err := run(ctx, sshd); err != nil {
		return res, fmt.Errorf("ssh: start %s: %w", sshd, err)
	}
	res.Started = true
	return res, nil
}

// parseKeys splits a key variable into its public-key lines and counts the lines that are
// not keys. A line may carry authorized_keys options before the key type.
func parseKeys(val string) (keys []string, invalid int) {
	for _, line := range strings.Split(strings.ReplaceAll(val, "\r", ""), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if keyBlob(line) == "" {
			invalid++
			continue
		}
		keys = append(keys, line)
	}
	return keys, invalid
}

// keyBlob returns the base64 key material of an authorized_keys line: the field after the
// key type. Two lines with the same blob are the same key, whatever their comments.
func keyBlob(line string) string {
	fields := strings.Fields(line)
	for i := 0; i+1 < len(fields); i++ {
		t := fields[i]
		if strings.HasPrefix(t, "ssh-") || strings.HasPrefix(t, "ecdsa-sha2-") || strings.HasPrefix(t, "sk-") {
			if b := fields[i+1]; strings.HasPrefix(b, "AAAA") {
				return b
			}
		}
	}
	return ""
}

// installKeys appends to path the keys it does not hold yet, creating the directory
// (0700) and the file (0600) as needed, and returns how many it added and found.
func installKeys(path string, keys []string) (added, present int, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, 0, err
	}
	// sshd's StrictModes refuses keys in a group- or world-writable directory.
	if err := os.Chmod(dir, 0o700); err != nil {
		return 0, 0, err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, 0, err
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(old), "\n") {
		if b := keyBlob(line); b != "" {
			have[b] = true
		}
	}
	var buf bytes.Buffer
	for _, k := range keys {
		b := keyBlob(k)
		if have[b] {
			present++
			continue
		}
		have[b] = true
		buf.WriteString(k)
		buf.WriteByte('\n')
		added++
	}
	if added > 0 {
		data := buf.Bytes()
		if len(old) > 0 && old[len(old)-1] != '\n' {
			data = append([]byte{'\n'}, data...)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return 0, present, err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return 0, present, err
		}
		if err := f.Close(); err != nil {
			return 0, present, err
		}
	}
	if _, err := os.Stat(path); err == nil {
		if err := os.Chmod(path, 0o600); err != nil {
			return added, present, err
		}
	}
	return added, present, nil
}

// ensureHostKeys runs ssh-keygen -A when a host key is missing; -A creates only the
// missing ones, and -f puts them under a root other than "/".
func ensureHostKeys(ctx context.Context, root, keygen string, run func(context.Context, string, ...string) error) (bool, error) {
	missing, found := 0, 0
	// The host keys ssh-keygen -A creates on current OpenSSH.
	for _, t := range []string{"rsa", "ecdsa", "ed25519"} {
		if isFile(filepath.Join(root, "etc", "ssh", "ssh_host_"+t+"_key")) {
			found++
		} else {
			missing++
		}
	}
	if missing == 0 {
		return false, nil
	}
	if keygen == "" {
		keygen = findUnder(root, "/usr/bin/ssh-keygen", "/bin/ssh-keygen", "/usr/local/bin/ssh-keygen")
	}
	if keygen == "" || !isFile(keygen) {
		if found > 0 {
			return false, nil // sshd starts with the keys it has
		}
		return false, errors.New("no host key and no ssh-keygen to make one")
	}
	if err := os.MkdirAll(filepath.Join(root, "etc", "ssh"), 0o755); err != nil {
		return false, err
	}
	args := []string{"-A"}
	if filepath.Clean(root) != "/" {
		args = append(args, "-f", root)
	}
	if err := run(ctx, keygen, args...); err != nil {
		return false, fmt.Errorf("%s %s: %w", keygen, strings.Join(args, " "), err)
	}
	return true, nil
}

// sshdRunning reports whether the pid in sshd's pid file is a live sshd (a stale file
// from before a container restart names a dead or reused pid).
func sshdRunning(root string) bool {
	for _, pidFile := range []string{"run/sshd.pid", "var/run/sshd.pid"} {
		b, err := os.ReadFile(filepath.Join(root, pidFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(root, "proc", strconv.Itoa(pid), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == "sshd" {
			return true
		}
	}
	return false
}

// findUnder returns root joined with the first candidate that is a file, or "".
func findUnder(root string, candidates ...string) string {
	for _, c := range candidates {
		p := filepath.Join(root, c)
		if isFile(p) {
			return p
		}
	}
	return ""
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// runCommand runs name to completion; a failure carries the start of its output. A
// daemon that forks and keeps the output pipe open cannot hold it past WaitDelay.
func runCommand(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if msg := excerpt(out); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}
