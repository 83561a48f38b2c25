package platform

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA alice@laptop"
	keyB = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQKeyBBBBBBBBBBBBBBBBBBBBBBBB bob@desk"
	// keyAOtherComment is keyA under another comment: the same key.
	keyAOtherComment = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA alice@other"
	keyWithOptions   = `from="10.0.0.0/8" ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYKeyCCCC carol`
)

// fakeMachine is a temporary root with fake sshd and ssh-keygen binaries and a command
// runner that records the commands instead of running them.
type fakeMachine struct {
	root     string
	commands [][]string
	runErr   error
}

func newFakeMachine(t *testing.T, withSSHD, withKeygen bool) *fakeMachine {
	t.Helper()
	m := &fakeMachine{root: t.TempDir()}
	if withSSHD {
		m.write(t, "usr/sbin/sshd", "#!/bin/false\n", 0o755)
	}
	if withKeygen {
		m.write(t, "usr/bin/ssh-keygen", "#!/bin/false\n", 0o755)
	}
	return m
}

func (m *fakeMachine) write(t *testing.T, rel, data string, perm os.FileMode) {
	t.Helper()
	p := filepath.Join(m.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

// run records a command; ssh-keygen -A -f ROOT creates the host keys as the real one would.
func (m *fakeMachine) run(_ context.Context, name string, args ...string) error {
	m.commands = append(m.commands, append([]string{name}, args...))
	if m.runErr != nil {
		return m.runErr
	}
	if filepath.Base(name) == "ssh-keygen" {
		for _, typ := range []string{"rsa", "ecdsa", "ed25519"} {
			p := filepath.Join(m.root, "etc", "ssh", "ssh_host_"+typ+"_key")
			if err := os.WriteFile(p, []byte("private"), 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *fakeMachine) opts() SSHOptions {
	return SSHOptions{Root: m.root, Run: m.run}
}

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestSetupSSHInstallsKeysAndStartsSSHD(t *testing.T) {
	t.Parallel()
	m := newFakeMachine(t, true, true)
	getenv := envOf(map[string]string{
		"HOME":       "/root",
		"PUBLIC_KEY": keyA + "\n" + keyWithOptions + "\nnot a key\n\n" + keyAOtherComment + "\n",
	})
	res, err := SetupSSH(t.Context(), Description{Platform: RunPod}, getenv, m.opts())
	if err != nil {
		t.Fatal(err)
	}
	want := SSHResult{
		KeyVars: []string{"PUBLIC_KEY"}, KeysAdded: 2, KeysPresent: 1, KeysInvalid: 1,
		AuthorizedKeys: "/root/.ssh/authorized_keys", HostKeysGenerated: true, Started: true,
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result:\n got %+v\nwant %+v", res, want)
	}
	ak := filepath.Join(m.root, "root", ".ssh", "authorized_keys")
	b, err := os.ReadFile(ak)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), keyA+"\n"+keyWithOptions+"\n"; got != want {
		t.Errorf("authorized_keys:\n%s\nwant:\n%s", got, want)
	}
	assertMode(t, filepath.Dir(ak), 0o700)
	assertMode(t, ak, 0o600)
	if fi, err := os.Stat(filepath.Join(m.root, "run", "sshd")); err != nil || !fi.IsDir() {
		t.Errorf("privilege separation directory missing: %v", err)
	}
	wantCmds := [][]string{
		{filepath.Join(m.root, "usr/bin/ssh-keygen"), "-A", "-f", m.root},
		{filepath.Join(m.root, "usr/sbin/sshd")},
	}
	if !reflect.DeepEqual(m.commands, wantCmds) {
		t.Errorf("commands:\n got %q\nwant %q", m.commands, wantCmds)
	}
}

// TestSetupSSHIdempotent: running again (onstart runs on every start) adds nothing, even
// when a key comes back under another comment, and keeps what was in the file.
func TestSetupSSHIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing string // authorized_keys before the first run; "" means absent
		env      string
		want     string // authorized_keys after both runs
	}{
		{
			name: "fresh file",
			env:  keyA + "\n" + keyB,
			want: keyA + "\n" + keyB + "\n",
		},
		{
			name:     "key already there under another comment",
			existing: keyAOtherComment + "\n",
			env:      keyA + "\n" + keyB,
			want:     keyAOtherComment + "\n" + keyB + "\n",
		},
		{
			name:     "existing file without a final newline",
			existing: "# managed by hand\n" + keyB,
			env:      keyA,
			want:     "# managed by hand\n" + keyB + "\n" + keyA + "\n",
		},
		{
			name:     "everything already there",
			existing: keyA + "\n" + keyB + "\n",
			env:      keyB + "\n" + keyA,
			want:     keyA + "\n" + keyB + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newFakeMachine(t, true, true)
			ak := filepath.Join(m.root, "root", ".ssh", "authorized_keys")
			if tt.existing != "" {
				m.write(t, "root/.ssh/authorized_keys", tt.existing, 0o644)
			}
			getenv := envOf(map[string]string{"SSH_PUBLIC_KEY": tt.env})
			d := Description{Platform: Vast}
			for i := range 2 {
				if _, err := SetupSSH(t.Context(), d, getenv, m.opts()); err != nil {
					t.Fatalf("run %d: %v", i+1, err)
				}
			}
			b, err := os.ReadFile(ak)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("authorized_keys:\n%s\nwant:\n%s", b, tt.want)
			}
			assertMode(t, ak, 0o600)
			res, err := SetupSSH(t.Context(), d, getenv, m.opts())
			if err != nil {
				t.Fatal(err)
			}
			if res.KeysAdded != 0 {
				t.Errorf("a third run added %d keys", res.KeysAdded)
			}
		})
	}
}

func TestSetupSSHSkipsAndSSHDState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		platform    string
		env         map[string]string
		sshd        bool
		keygen      bool
		hostKeys    bool
		files       map[string]string // extra files under the root
		wantSkipped string            // substring; "" means not skipped
		wantCmds    []string          // base names of the commands run
		wantRunning bool
		wantStarted bool
		wantNoFile  bool // authorized_keys must not exist
	}{
		{name: "developer machine is never touched", platform: Local, env: map[string]string{"PUBLIC_KEY": keyA},
			sshd: true, keygen: true, wantSkipped: "not a container platform", wantNoFile: true},
		{name: "lambda VM is never touched", platform: Lambda, env: map[string]string{"PUBLIC_KEY": keyA},
			sshd: true, keygen: true, wantSkipped: "not a container platform", wantNoFile: true},
		{name: "no key variable", platform: RunPod, env: map[string]string{},
			sshd: true, keygen: true, wantSkipped: "PUBLIC_KEY not set", wantNoFile: true},
		{name: "vast ignores PUBLIC_KEY", platform: Vast, env: map[string]string{"PUBLIC_KEY": keyA},
			sshd: true, keygen: true, wantSkipped: "SSH_PUBLIC_KEY not set", wantNoFile: true},
		{name: "variable without a key", platform: RunPod, env: map[string]string{"PUBLIC_KEY": "null"},
			sshd: true, keygen: true, wantSkipped: "holds no public key", wantNoFile: true},
		{name: "no sshd in the image", platform: RunPod, env: map[string]string{"PUBLIC_KEY": keyA},
			keygen: true, wantSkipped: "no sshd", wantNoFile: true},
		{name: "docker takes either variable", platform: Docker, env: map[string]string{"SSH_PUBLIC_KEY": keyA},
			sshd: true, keygen: true, wantCmds: []string{"ssh-keygen", "sshd"}, wantStarted: true},
		{name: "host keys present: no ssh-keygen", platform: RunPod, env: map[string]string{"PUBLIC_KEY": keyA},
			sshd: true, keygen: true, hostKeys: true, wantCmds: []string{"sshd"}, wantStarted: true},
		{name: "sshd already running", platform: RunPod, env: map[string]string{"PUBLIC_KEY": keyA},
			sshd: true, keygen: true, hostKeys: true,
			files:    map[string]string{"run/sshd.pid": "41\n", "proc/41/comm": "sshd\n"},
			wantCmds: nil, wantRunning: true},
		{name: "stale pid file", platform: RunPod, env: map[string]string{"PUBLIC_KEY": keyA},
			sshd: true, keygen: true, hostKeys: true,
			files:    map[string]string{"var/run/sshd.pid": "41\n", "proc/41/comm": "python3\n"},
			wantCmds: []string{"sshd"}, wantStarted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newFakeMachine(t, tt.sshd, tt.keygen)
			if tt.hostKeys {
				for _, typ := range []string{"rsa", "ecdsa", "ed25519"} {
					m.write(t, "etc/ssh/ssh_host_"+typ+"_key", "k", 0o600)
				}
			}
			for rel, data := range tt.files {
				m.write(t, rel, data, 0o644)
			}
			env := map[string]string{"HOME": "/root"}
			for k, v := range tt.env {
				env[k] = v
			}
			res, err := SetupSSH(t.Context(), Description{Platform: tt.platform}, envOf(env), m.opts())
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantSkipped == "" && res.Skipped != "" || !strings.Contains(res.Skipped, tt.wantSkipped) {
				t.Errorf("Skipped = %q, want %q", res.Skipped, tt.wantSkipped)
			}
			var cmds []string
			for _, c := range m.commands {
				cmds = append(cmds, filepath.Base(c[0]))
			}
			if !reflect.DeepEqual(cmds, tt.wantCmds) {
				t.Errorf("commands = %v, want %v", cmds, tt.wantCmds)
			}
			if res.AlreadyRunning != tt.wantRunning || res.Started != tt.wantStarted {
				t.Errorf("AlreadyRunning, Started = %v, %v; want %v, %v", res.AlreadyRunning, res.Started, tt.wantRunning, tt.wantStarted)
			}
			_, statErr := os.Stat(filepath.Join(m.root, "root", ".ssh", "authorized_keys"))
			if tt.wantNoFile && statErr == nil {
				t.Error("authorized_keys was written")
			}
			if !tt.wantNoFile && statErr != nil {
				t.Errorf("authorized_keys: %v", statErr)
			}
		})
	}
}

func TestSetupSSHErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("exit status 255")
	tests := []struct {
		name    string
		keygen  bool
		runErr  error
		wantErr string
	}{
		{name: "no host key and no ssh-keygen", keygen: false, wantErr: "no host key and no ssh-keygen"},
		{name: "ssh-keygen fails", keygen: true, runErr: boom, wantErr: "exit status 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newFakeMachine(t, true, tt.keygen)
			m.runErr = tt.runErr
			_, err := SetupSSH(t.Context(), Description{Platform: RunPod}, envOf(map[string]string{"PUBLIC_KEY": keyA, "HOME": "/root"}), m.opts())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("SetupSSH error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestSetupSSHStartFailure(t *testing.T) {
	t.Parallel()
	m := newFakeMachine(t, true, true)
	for _, typ := range []string{"rsa", "ecdsa", "ed25519"} {
		m.write(t, "etc/ssh/ssh_host_"+typ+"_key", "k", 0o600)
	}
	m.runErr = errors.New("Bind to port 22 failed")
	res, err := SetupSSH(t.Context(), Description{Platform: RunPod}, envOf(map[string]string{"PUBLIC_KEY": keyA}), m.opts())
	if err == nil || !strings.Contains(err.Error(), "Bind to port 22 failed") || !strings.Contains(err.Error(), "sshd") {
		t.Fatalf("SetupSSH error = %v, want the sshd failure", err)
	}
	if res.Started || res.KeysAdded != 1 {
		t.Errorf("result %+v: want the key added and sshd not started", res)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func TestRunCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		script  string
		wantErr []string
	}{
		{name: "success", script: "exit 0"},
		{name: "failure carries the output", script: "echo 'Missing privilege separation directory'; exit 255",
			wantErr: []string{"exit status 255", "Missing privilege separation directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runCommand(t.Context(), "sh", "-c", tt.script)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("runCommand succeeded, want an error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}
