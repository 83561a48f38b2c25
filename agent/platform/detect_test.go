package platform

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func dir() *fstest.MapFile  { return &fstest.MapFile{Mode: fs.ModeDir | 0o755} }
func file() *fstest.MapFile { return &fstest.MapFile{Data: []byte{}} }
func text(s string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(s)}
}

func TestDetect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ []string
		files   fstest.MapFS
		want    Description
	}{
		{
			name: "runpod with volume, public IP and ports",
			environ: []string{
				"RUNPOD_POD_ID=riixlu8oclhp", "RUNPOD_POD_HOSTNAME=host-7f", "RUNPOD_GPU_COUNT=2",
				"RUNPOD_PUBLIC_IP=203.0.113.7", "RUNPOD_TCP_PORT_22=10022", "RUNPOD_TCP_PORT_70000=10030",
				"RUNPOD_API_KEY=rp-secret", "PUBLIC_KEY=ssh-ed25519 AAAAC3 me", "HOSTNAME=abc",
			},
			files: fstest.MapFS{"workspace": dir(), ".dockerenv": file()},
			want: Description{
				Platform: RunPod, InstanceID: "riixlu8oclhp", Host: "host-7f", GPUCount: 2,
				PublicIP: "203.0.113.7", Ports: map[int]int{22: 10022, 10030: 10030}, PersistentDir: "/workspace",
			},
		},
		{
			name:    "runpod without volume keeps nothing",
			environ: []string{"RUNPOD_POD_ID=p1", "RUNPOD_GPU_COUNT=1"},
			files:   fstest.MapFS{".dockerenv": file()},
			want:    Description{Platform: RunPod, InstanceID: "p1", GPUCount: 1},
		},
		{
			name:    "runpod gpu count falls back on NVIDIA_VISIBLE_DEVICES",
			environ: []string{"RUNPOD_POD_ID=p1", "RUNPOD_GPU_COUNT=x", "NVIDIA_VISIBLE_DEVICES=GPU-aa,GPU-bb"},
			want:    Description{Platform: RunPod, InstanceID: "p1", GPUCount: 2},
		},
		{
			name: "vast with everything",
			environ: []string{
				"CONTAINER_ID=4242", "CONTAINER_API_KEY=vast-secret", "VAST_CONTAINERLABEL=C.4242", "GPU_COUNT=4",
				"PUBLIC_IPADDR=198.51.100.9", "VAST_TCP_PORT_22=40022", "VAST_TCP_PORT_8080=40080",
				"VAST_TCP_PORT_70000=41000", "SSH_PUBLIC_KEY=ssh-rsa AAAAB3 me",
			},
			files: fstest.MapFS{".dockerenv": file()},
			want: Description{
				Platform: Vast, InstanceID: "4242", GPUCount: 4, PublicIP: "198.51.100.9",
				Ports: map[int]int{22: 40022, 8080: 40080, 41000: 41000}, PersistentDir: "/", LaunchMode: VastEntrypoint,
			},
		},
		{
			name:    "vast from the label alone",
			environ: []string{"VAST_CONTAINERLABEL=C.777"},
			want:    Description{Platform: Vast, InstanceID: "777", PersistentDir: "/", LaunchMode: VastEntrypoint},
		},
		{
			name:    "CONTAINER_ID without CONTAINER_API_KEY is not vast",
			environ: []string{"CONTAINER_ID=123", "HOSTNAME=0123456789ab"},
			files:   fstest.MapFS{".dockerenv": file()},
			want:    Description{Platform: Docker, InstanceID: "0123456789ab"},
		},
		{
			name: "kubernetes with downward API names",
			environ: []string{
				"KUBERNETES_SERVICE_HOST=10.96.0.1", "POD_NAME=train-0", "NODE_NAME=gpu-node-3",
				"HOSTNAME=train-0", "NVIDIA_VISIBLE_DEVICES=0,1,2",
			},
			want: Description{Platform: Kubernetes, InstanceID: "train-0", Host: "gpu-node-3", GPUCount: 3},
		},
		{
			name:    "kubernetes pod name from the host name",
			environ: []string{"KUBERNETES_SERVICE_HOST=10.96.0.1", "NVIDIA_VISIBLE_DEVICES=all"},
			files:   fstest.MapFS{"etc/hostname": text("train-1\n"), ".dockerenv": file()},
			want:    Description{Platform: Kubernetes, InstanceID: "train-1"},
		},
		{
			name:  "kubernetes from the service-account mount alone",
			files: fstest.MapFS{"var/run/secrets/kubernetes.io/serviceaccount/token": text("t"), "etc/hostname": text("p")},
			want:  Description{Platform: Kubernetes, InstanceID: "p"},
		},
		{
			name:  "lambda with one filesystem",
			files: fstest.MapFS{"lambda/nfs/myfs/data": text("x"), "etc/hostname": text("192-0-2-1\n")},
			want:  Description{Platform: Lambda, Host: "192-0-2-1", PersistentDir: "/lambda/nfs/myfs"},
		},
		{
			name:  "lambda with two filesystems",
			files: fstest.MapFS{"lambda/nfs/a/x": text("x"), "lambda/nfs/b/y": text("y")},
			want:  Description{Platform: Lambda, PersistentDir: "/lambda/nfs"},
		},
		{
			name:    "docker from /.dockerenv",
			environ: []string{"HOSTNAME=f00dfeed"},
			files:   fstest.MapFS{".dockerenv": file()},
			want:    Description{Platform: Docker, InstanceID: "f00dfeed"},
		},
		{
			name:  "podman from /run/.containerenv",
			files: fstest.MapFS{"run/.containerenv": file(), "etc/hostname": text("c0ffee")},
			want:  Description{Platform: Docker, InstanceID: "c0ffee"},
		},
		{
			name:  "docker from a cgroup v1 path",
			files: fstest.MapFS{"proc/1/cgroup": text("12:memory:/docker/0123abc\n11:cpu:/docker/0123abc\n")},
			want:  Description{Platform: Docker},
		},
		{
			name:  "cgroup v2 root says nothing",
			files: fstest.MapFS{"proc/1/cgroup": text("0::/\n"), "etc/hostname": text("laptop\n")},
			want:  Description{Platform: Local, Host: "laptop"},
		},
		{
			name:    "local machine",
			environ: []string{"HOME=/home/dev", "RUNPOD_API_KEY="},
			files:   fstest.MapFS{"etc/hostname": text("devbox\n")},
			want:    Description{Platform: Local, Host: "devbox"},
		},
		{
			name: "no files at all",
			want: Description{Platform: Local},
		},
		{
			name: "malformed ports are skipped",
			environ: []string{
				"RUNPOD_POD_ID=p", "RUNPOD_TCP_PORT_x=1", "RUNPOD_TCP_PORT_22=", "RUNPOD_TCP_PORT_23=70000",
				"RUNPOD_TCP_PORT_0=5", "RUNPOD_TCP_PORT_8888= 10888 ",
			},
			want: Description{Platform: RunPod, InstanceID: "p", Ports: map[int]int{8888: 10888}},
		},
		// Precedence: the first platform of Platforms() whose markers are present wins.
		{
			name: "runpod beats vast, kubernetes, lambda and docker",
			environ: []string{
				"RUNPOD_POD_ID=p", "VAST_CONTAINERLABEL=C.1", "KUBERNETES_SERVICE_HOST=10.0.0.1",
			},
			files: fstest.MapFS{"lambda/nfs/fs/x": text("x"), ".dockerenv": file()},
			want:  Description{Platform: RunPod, InstanceID: "p"},
		},
		{
			name:    "vast beats kubernetes and docker",
			environ: []string{"CONTAINER_ID=5", "CONTAINER_API_KEY=k", "KUBERNETES_SERVICE_HOST=10.0.0.1"},
			files:   fstest.MapFS{".dockerenv": file()},
			want:    Description{Platform: Vast, InstanceID: "5", PersistentDir: "/", LaunchMode: VastEntrypoint},
		},
		{
			name:    "kubernetes beats lambda and docker",
			environ: []string{"KUBERNETES_SERVICE_HOST=10.0.0.1", "POD_NAME=p"},
			files:   fstest.MapFS{"lambda/nfs/fs/x": text("x"), ".dockerenv": file()},
			want:    Description{Platform: Kubernetes, InstanceID: "p"},
		},
		{
			name:  "lambda beats docker",
			files: fstest.MapFS{"lambda/nfs/fs/x": text("x"), ".dockerenv": file()},
			want:  Description{Platform: Lambda, PersistentDir: "/lambda/nfs/fs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Detect(tt.environ, tt.files)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Detect:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDetectNilFS(t *testing.T) {
	t.Parallel()
	got := Detect([]string{"HOSTNAME=h"}, nil)
	if want := (Description{Platform: Local, Host: "h"}); !reflect.DeepEqual(got, want) {
		t.Errorf("Detect(nil fs) = %+v, want %+v", got, want)
	}
}

func TestDescribeAs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		as      string
		environ []string
		files   fstest.MapFS
		want    Description
		wantErr string
	}{
		{name: "lambda without filesystem", as: Lambda, files: fstest.MapFS{"etc/hostname": text("vm\n")},
			want: Description{Platform: Lambda, Host: "vm"}},
		{name: "docker although runpod variables are set", as: Docker, environ: []string{"RUNPOD_POD_ID=p", "HOSTNAME=c"},
			want: Description{Platform: Docker, InstanceID: "c"}},
		{name: "vast", as: Vast, environ: []string{"CONTAINER_ID=9"},
			want: Description{Platform: Vast, InstanceID: "9", PersistentDir: "/", LaunchMode: VastEntrypoint}},
		{name: "vast reads /.launch", as: Vast, environ: []string{"CONTAINER_ID=9"},
			files: fstest.MapFS{".launch": text("#!/bin/bash\nsshd\n")},
			want:  Description{Platform: Vast, InstanceID: "9", PersistentDir: "/", LaunchMode: VastSSH}},
		{name: "unknown", as: "azure", wantErr: `unknown platform "azure"`},
		{name: "empty", as: "", wantErr: `unknown platform ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DescribeAs(tt.as, tt.environ, tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DescribeAs(%q) error = %v, want it to contain %q", tt.as, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DescribeAs:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLogAttrsCarryNoSecret(t *testing.T) {
	t.Parallel()
	environ := []string{
		"RUNPOD_POD_ID=p1", "RUNPOD_API_KEY=rp-very-secret", "RUNPOD_GPU_COUNT=8",
		"RUNPOD_TCP_PORT_22=10022", "RUNPOD_TCP_PORT_8888=10888", "RUNPOD_PUBLIC_IP=203.0.113.7",
		"AWS_SECRET_ACCESS_KEY=aws-very-secret", "PUBLIC_KEY=ssh-ed25519 AAAAC3 me",
	}
	d := Detect(environ, fstest.MapFS{"workspace": dir()})
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).LogAttrs(t.Context(), slog.LevelInfo, "host", d.LogAttrs()...)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("host", "platform", d)
	out := buf.String()
	for _, secret := range []string{"rp-very-secret", "aws-very-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line contains a secret: %s", out)
		}
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &line); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"platform": "runpod", "instance_id": "p1", "gpus": float64(8), "public_ip": "203.0.113.7",
		"ports": "22->10022,8888->10888", "persistent_dir": "/workspace", "interruptible": false,
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log attribute %s = %v, want %v", k, line[k], v)
		}
	}
}

// TestVastLaunchMode: /.launch, the script Vast.ai puts in place of the image's
// entrypoint in its SSH and Jupyter launch modes, tells the mode as Vast's own images
// read it: absent in the entrypoint mode, mentioning jupyter (in any case) in the
// Jupyter mode.
func TestVastLaunchMode(t *testing.T) {
	t.Parallel()
	environ := []string{"VAST_CONTAINERLABEL=C.4242", "CONTAINER_ID=4242", "CONTAINER_API_KEY=k"}
	tests := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"no /.launch: entrypoint mode", fstest.MapFS{".dockerenv": file()}, VastEntrypoint},
		{"ssh mode", fstest.MapFS{".launch": text("#!/bin/bash\n/usr/sbin/sshd\nbash /root/onstart.sh\n")}, VastSSH},
		{"empty /.launch: ssh mode", fstest.MapFS{".launch": file()}, VastSSH},
		{"jupyter mode", fstest.MapFS{".launch": text("#!/bin/bash\n/usr/sbin/sshd\njupyter lab --port 8080 &\nbash /root/onstart.sh\n")}, VastJupyter},
		{"jupyter in capitals", fstest.MapFS{".launch": text("# Jupyter-python notebook + SSH\n")}, VastJupyter},
		{"a directory cannot be read: unknown", fstest.MapFS{".launch/x": text("jupyter")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Detect(environ, tt.files)
			if d.Platform != Vast || d.LaunchMode != tt.want {
				t.Errorf("Detect = %s, launch mode %q; want vast, %q", d.Platform, d.LaunchMode, tt.want)
			}
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).LogAttrs(t.Context(), slog.LevelInfo, "host", d.LogAttrs()...)
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			if got, ok := line["launch_mode"]; tt.want != "" && got != tt.want || tt.want == "" && ok {
				t.Errorf("logged launch_mode = %v, want %q", got, tt.want)
			}
		})
	}
	// Only Vast.ai has launch modes.
	if d := Detect([]string{"RUNPOD_POD_ID=p"}, fstest.MapFS{".launch": text("jupyter")}); d.LaunchMode != "" {
		t.Errorf("runpod: launch mode %q, want none", d.LaunchMode)
	}
}

func TestDescriptionJSON(t *testing.T) {
	t.Parallel()
	d := Description{Platform: Vast, InstanceID: "4242", Ports: map[int]int{22: 40022}, PersistentDir: "/", LaunchMode: VastSSH}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back Description
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Errorf("round trip: got %+v, want %+v (json %s)", back, d, b)
	}
}
