package config

import (
	"errors"
	"strings"
	"testing"
)

// TestValidateErrors checks that every rule of Validate reports the key in
// the place the bad value came from: a flag, a variable, the YAML file, or
// a default named by its flag.
func TestValidateErrors(t *testing.T) {
	runErrorCases(t, []errorCase{
		{name: "store missing", args: []string{"--run=r1"},
			want: `--store: required (or set BATON_STORE, or store in the config file)`, source: SourceDefault, key: "--store"},
		{name: "store empty in the file", args: []string{"--run=r1"}, yaml: "store: \"\"\n",
			want: `c.yaml:1: store: required (or set BATON_STORE, or store in the config file)`, source: SourceFile, key: "store"},
		{name: "store scheme", args: []string{"--run=r1"}, env: map[string]string{"BATON_STORE": "gs://b/p"},
			want: `BATON_STORE="gs://b/p": unknown scheme "gs": want s3://bucket/prefix, file:///path or a path`, source: SourceEnv, key: "BATON_STORE"},
		{name: "store without bucket", args: []string{"--run=r1", "--store=s3:///p"},
			want: `--store=s3:///p: no bucket; want s3://bucket/prefix`, source: SourceFlag, key: "--store"},
		{name: "run missing", args: []string{"--store=/tmp/s"},
			want: `--run: required (or set BATON_RUN_ID, or run_id in the config file)`, source: SourceDefault, key: "--run"},
		{name: "run id", args: []string{"--store=/tmp/s"}, env: map[string]string{"BATON_RUN_ID": "my run"},
			want: `BATON_RUN_ID="my run": want 1 to 128 of [A-Za-z0-9._-], not starting with a dot`, source: SourceEnv, key: "BATON_RUN_ID"},
		{name: "checkpoint dir", args: append(requiredArgs(), "--checkpoint-dir="),
			want: `--checkpoint-dir: empty`, source: SourceFlag, key: "--checkpoint-dir"},
		{name: "interval too short", args: requiredArgs(), env: map[string]string{"BATON_CHECKPOINT_INTERVAL": "1s"},
			want: `BATON_CHECKPOINT_INTERVAL="1s": want 0 (no timed commits) or at least 10s`, source: SourceEnv, key: "BATON_CHECKPOINT_INTERVAL"},
		{name: "quiescence negative", args: requiredArgs(), yaml: "quiescence: -1s\n",
			want: `c.yaml:1: quiescence: "-1s": negative`, source: SourceFile, key: "quiescence"},
		{name: "quiescence over interval", args: append(requiredArgs(), "--checkpoint-interval=1m"), yaml: "quiescence: 1m\n",
			want: `c.yaml:1: quiescence: "1m": want less than the checkpoint interval (1m0s)`, source: SourceFile, key: "quiescence"},
		{name: "keep", args: append(requiredArgs(), "--keep=-1"),
			want: `--keep=-1: negative`, source: SourceFlag, key: "--keep"},
		{name: "code", args: requiredArgs(), env: map[string]string{"BATON_CODE": "https://example.com/code"},
			want: `BATON_CODE="https://example.com/code": want a git repository (ending in .git) or a tarball (.tar, .tar.gz, .tgz)`, source: SourceEnv, key: "BATON_CODE"},
		{name: "code ref on a prefix", args: append(requiredArgs(), "--code=s3://bkt/code#main"),
			want: `--code=s3://bkt/code#main: #ref only applies to a git URL (ending in .git, or git@host:path)`, source: SourceFlag, key: "--code"},
		{name: "code dir", args: append(requiredArgs(), "--code=s3://bkt/code"), yaml: "code_dir: ''\n",
			want: `c.yaml:1: code_dir: empty, but --code is set`, source: SourceFile, key: "code_dir"},
		{name: "data SRC from YAML", args: requiredArgs(), yaml: "data:\n  - s3://bkt/a=/a\n  - gs://b/x=/x\n",
			want: `c.yaml:3: data[1]: "gs://b/x=/x": SRC: unknown scheme "gs": want s3://bucket/prefix, file:///path or a path`, source: SourceFile, key: "data[1]"},
		{name: "data without DST", args: requiredArgs(), env: map[string]string{"BATON_DATA": "s3://bkt/d?region=x&driver=minio"},
			want: `BATON_DATA[0]="s3://bkt/d?region=x&driver=minio": SRC's query parameter "driver" has no value; want SRC=DST`, source: SourceEnv, key: "BATON_DATA[0]"},
		{name: "data DST twice", args: append(requiredArgs(), "--data=s3://bkt/a=/data,s3://bkt/b=/data/"),
			want: `--data[1]=s3://bkt/b=/data/: DST /data/ is also the DST of --data[0]`, source: SourceFlag, key: "--data[1]"},
		{name: "on-exit", args: append(requiredArgs(), "--on-exit=reboot"),
			want: `--on-exit=reboot: want none, stop or terminate`, source: SourceFlag, key: "--on-exit"},
		{name: "on-failure", args: requiredArgs(), yaml: "on_failure: halt\n",
			want: `c.yaml:1: on_failure: "halt": want none, stop or terminate`, source: SourceFile, key: "on_failure"},
		{name: "restarts", args: requiredArgs(), env: map[string]string{"BATON_RESTARTS": "-2"},
			want: `BATON_RESTARTS="-2": negative`, source: SourceEnv, key: "BATON_RESTARTS"},
		{name: "restart backoff", args: append(requiredArgs(), "--restart-backoff=-1s"),
			want: `--restart-backoff=-1s: negative`, source: SourceFlag, key: "--restart-backoff"},
		{name: "grace", args: requiredArgs(), env: map[string]string{"BATON_GRACE": "500ms"},
			want: `BATON_GRACE="500ms": want 0 (half the stop window) or 1s to 10m0s`, source: SourceEnv, key: "BATON_GRACE"},
		{name: "grace negative", args: append(requiredArgs(), "--grace=-1s"),
			want: `--grace=-1s: want 0 (half the stop window) or 1s to 10m0s`, source: SourceFlag, key: "--grace"},
		{name: "grace over the stop window", args: append(requiredArgs(), "--stop-window=10s"), yaml: "grace: 10s\n",
			want: `c.yaml:1: grace: "10s": want less than the stop window (10s): the final commit needs the rest of it`, source: SourceFile, key: "grace"},
		{name: "stop window too short", args: requiredArgs(), env: map[string]string{"BATON_STOP_WINDOW": "1s"},
			want: `BATON_STOP_WINDOW="1s": want 0 (the platform's) or 2s to 24h0m0s`, source: SourceEnv, key: "BATON_STOP_WINDOW"},
		{name: "exclude bad glob", args: append(requiredArgs(), "--exclude=*.tmp", "--exclude=[a-"),
			want: `--exclude[1]=[a-: not a glob (path.Match syntax: *, ?, [a-z], \ before a special character)`, source: SourceFlag, key: "--exclude[1]"},
		{name: "exclude bad glob in YAML", args: requiredArgs(), yaml: "exclude:\n  - \"*.tmp\"\n  - 'ckpt[\\'\n",
			want: `c.yaml:3: exclude[1]: "ckpt[\\": not a glob (path.Match syntax: *, ?, [a-z], \ before a special character)`, source: SourceFile, key: "exclude[1]"},
		{name: "exclude a path", args: requiredArgs(), env: map[string]string{"BATON_EXCLUDE": "*.tmp,ckpt/*.bin"},
			want: `BATON_EXCLUDE[1]="ckpt/*.bin": a glob matches one file or directory name, never a path: no /`, source: SourceEnv, key: "BATON_EXCLUDE[1]"},
		{name: "exclude everything", args: append(requiredArgs(), "--exclude=*"),
			want: `--exclude[0]=*: leaves every file out`, source: SourceFlag, key: "--exclude[0]"},
		{name: "store bucket", args: []string{"--run=r1", "--store=s3://My_Bucket/p"},
			want: `--store=s3://My_Bucket/p: "My_Bucket" is not a valid bucket name: want 3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit`, source: SourceFlag, key: "--store"},
		{name: "store unknown parameter", args: []string{"--run=r1"}, env: map[string]string{"BATON_STORE": "s3://bucket/p?foo=1"},
			want: `BATON_STORE="s3://bucket/p?foo=1": unknown parameter "foo" (known: endpoint, region, profile, driver, addressing)`, source: SourceEnv, key: "BATON_STORE"},
		{name: "store bad driver in the file", args: []string{"--run=r1"}, yaml: "store: s3://bucket/p?driver=boto\n",
			want: `c.yaml:1: store: "s3://bucket/p?driver=boto": driver="boto": want aws or minio`, source: SourceFile, key: "store"},
		{name: "store file URL with a parameter", args: []string{"--run=r1", "--store=file:///data/s?x=1"},
			want: `--store=file:///data/s?x=1: a file URL takes no parameters`, source: SourceFlag, key: "--store"},
		{name: "data unknown parameter", args: append(requiredArgs(), "--data=s3://bucket/d?regoin=eu=/data"),
			want: `--data[0]=s3://bucket/d?regoin=eu=/data: SRC: unknown parameter "regoin" (known: endpoint, region, profile, driver, addressing)`, source: SourceFlag, key: "--data[0]"},
		{name: "data bad bucket", args: requiredArgs(), env: map[string]string{"BATON_DATA": "s3://bucket/a=/a,s3://x/b=/b"},
			want: `BATON_DATA[1]="s3://x/b=/b": SRC: "x" is not a valid bucket name: want 3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit`, source: SourceEnv, key: "BATON_DATA[1]"},
		{name: "code bad bucket", args: append(requiredArgs(), "--code=s3://Code/src.tar.gz"),
			want: `--code=s3://Code/src.tar.gz: "Code" is not a valid bucket name: want 3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit`, source: SourceFlag, key: "--code"},
		{name: "code unknown parameter", args: requiredArgs(), yaml: "code: s3://bucket/code?endpont=http://minio:9000\n",
			want: `c.yaml:1: code: "s3://bucket/code?endpont=http://minio:9000": unknown parameter "endpont" (known: endpoint, region, profile, driver, addressing)`, source: SourceFile, key: "code"},
		{name: "lease", args: requiredArgs(), yaml: "lease_duration: 2h\n",
			want: `c.yaml:1: lease_duration: "2h": want 10s to 1h0m0s`, source: SourceFile, key: "lease_duration"},
		{name: "workers", args: append(requiredArgs(), "--workers=0"),
			want: `--workers=0: want 1 to 1024`, source: SourceFlag, key: "--workers"},
		{name: "nice", args: requiredArgs(), env: map[string]string{"BATON_NICE": "20"},
			want: `BATON_NICE="20": want 0 (unchanged) to 19 (the lowest priority)`, source: SourceEnv, key: "BATON_NICE"},
		{name: "part size", args: requiredArgs(), env: map[string]string{"BATON_PART_SIZE": "1MiB"},
			want: `BATON_PART_SIZE="1MiB": want 5MiB to 5GiB`, source: SourceEnv, key: "BATON_PART_SIZE"},
		{name: "chunk size", args: requiredArgs(), yaml: "chunk_size: 2GiB\n",
			want: `c.yaml:1: chunk_size: "2GiB": want 64KiB to 1GiB`, source: SourceFile, key: "chunk_size"},
		{name: "s3 driver", args: append(requiredArgs(), "--s3-driver=boto"),
			want: `--s3-driver=boto: want aws or minio`, source: SourceFlag, key: "--s3-driver"},
		{name: "telemetry interval too short", args: append(requiredArgs(), "--telemetry-interval=10ms"),
			want: `--telemetry-interval=10ms: want 0 (off) or 100ms to 1h`, source: SourceFlag, key: "--telemetry-interval"},
		{name: "hang timeout too short", args: requiredArgs(), env: map[string]string{"BATON_HANG_TIMEOUT": "30s"},
			want: `BATON_HANG_TIMEOUT="30s": want 0 (off) or at least 1m0s`, source: SourceEnv, key: "BATON_HANG_TIMEOUT"},
		{name: "unknown hang action", args: append(requiredArgs(), "--on-hang=reboot"),
			want: `--on-hang=reboot: want restart, give-up or report`, source: SourceFlag, key: "--on-hang"},
		{name: "telemetry upload too often", args: append(requiredArgs(), "--telemetry-upload=1s"),
			want: `--telemetry-upload=1s: want 0 (keep telemetry local) or at least 10s`, source: SourceFlag, key: "--telemetry-upload"},
		{name: "metrics address", args: append(requiredArgs(), "--metrics-addr=9400"),
			want: `--metrics-addr=9400: want HOST:PORT, e.g. 127.0.0.1:9400`, source: SourceFlag, key: "--metrics-addr"},
		{name: "metrics port", args: requiredArgs(), env: map[string]string{"BATON_METRICS_ADDR": "127.0.0.1:99999"},
			want: `BATON_METRICS_ADDR="127.0.0.1:99999": want a port of 1 to 65535`, source: SourceEnv, key: "BATON_METRICS_ADDR"},
		{name: "metrics public without token", args: requiredArgs(), yaml: "metrics_addr: 0.0.0.0:9400\n",
			want:   `c.yaml:1: metrics_addr: "0.0.0.0:9400": beyond loopback only with a metrics token (RunPod's proxy makes every HTTP port public); set --metrics-token or listen on 127.0.0.1`,
			source: SourceFile, key: "metrics_addr"},
		{name: "log format", args: requiredArgs(), env: map[string]string{"BATON_LOG_FORMAT": "xml"},
			want: `BATON_LOG_FORMAT="xml": want auto, json or text`, source: SourceEnv, key: "BATON_LOG_FORMAT"},
		{name: "pid file", args: append(requiredArgs(), "--detach", "--pid-file="),
			want: `--pid-file: empty, but --detach is set`, source: SourceFlag, key: "--pid-file"},
		{name: "log file", args: requiredArgs(), env: map[string]string{"BATON_DETACH": "true"}, yaml: "log_file:\n",
			want: `c.yaml:1: log_file: empty, but --detach is set`, source: SourceFile, key: "log_file"},
	}, true)
}

// TestValidateReturnsEveryProblem checks that Validate goes on past the
// first problem, in the order of Config's fields, on one line.
func TestValidateReturnsEveryProblem(t *testing.T) {
	c, _, err := load([]string{"--log-format=xml", "--keep=-1", "--on-exit=reboot"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	checkError(t, err, `--store: required (or set BATON_STORE, or store in the config file)`, SourceDefault, "--store")
	want := `--store: required (or set BATON_STORE, or store in the config file); ` +
		`--run: required (or set BATON_RUN_ID, or run_id in the config file); ` +
		`--keep=-1: negative; --on-exit=reboot: want none, stop or terminate; --log-format=xml: want auto, json or text`
	if err.Error() != want {
		t.Errorf("message\n got %s\nwant %s", err, want)
	}
	var p Problems
	if !errors.As(err, &p) || len(p) != 5 {
		t.Errorf("err = %#v, want Problems of 5", err)
	}
	c.Store, c.RunID = "/tmp/s", "r"
	checkError(t, c.Validate(), `--keep=-1: negative`, SourceFlag, "--keep")
}

// TestValidateWithoutLoad checks a Config built in code: errors name the
// flag and print the value.
func TestValidateWithoutLoad(t *testing.T) {
	c, _, err := load(requiredArgs(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Origins = Origins{}
	c.Workers = 0
	checkError(t, c.Validate(), `--workers=0: want 1 to 1024`, SourceDefault, "--workers")
	c.Workers = 1
	c.Data = []DataMapping{{"s3://bkt/a", "/a"}, {"ftp://x", "/x"}}
	checkError(t, c.Validate(), `--data[1]=ftp://x=/x: SRC: unknown scheme "ftp": want s3://bucket/prefix, file:///path or a path`, SourceDefault, "--data[1]")
}

func TestOnFailure(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--on-exit=terminate"}, "terminate"},
		{[]string{"--on-exit=terminate", "--on-failure=stop"}, "stop"},
		{[]string{"--on-failure=none", "--on-exit=stop"}, "none"},
	} {
		c, _, err := load(append(requiredArgs(), tc.args...), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := c.FailureAction(); got != tc.want {
			t.Errorf("%q: FailureAction() = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestMetricsAddresses(t *testing.T) {
	for _, tc := range []struct {
		listen, token string
		ok            bool
	}{
		{"127.0.0.1:9400", "", true},
		{"localhost:9400", "", true},
		{"[::1]:9400", "", true},
		{"", "", true},
		{"0.0.0.0:9400", "", false},
		{":9400", "", false},
		{"[::]:9400", "", false},
		{"0.0.0.0:9400", "s3cr3t-t0ken", true},
		{":http", "", false},
		{"127.0.0.1:0", "", false},
	} {
		c, _, err := load(append(requiredArgs(), "--metrics-addr="+tc.listen, "--metrics-token="+tc.token), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("listen %q, token %q: Validate() = %v, want ok %v", tc.listen, tc.token, err, tc.ok)
		}
	}
}

// TestSecretsNotEchoed plants secrets in every place a value can come from
// and checks that no error shows them.
func TestSecretsNotEchoed(t *testing.T) {
	const secret = "hunter2-SECRET-value"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		yaml string
	}{
		{name: "token flag with white space", args: []string{"--metrics-token=" + secret + " x"}},
		{name: "token env with white space", env: map[string]string{"BATON_METRICS_TOKEN": secret + " x"}},
		{name: "token YAML with white space", yaml: "metrics_token: " + secret + " x\n"},
		{name: "token YAML as a list", yaml: "metrics_token: [" + secret + "]\n"},
		{name: "token under an unknown YAML key", yaml: "metrics_tokn: " + secret + "\n"},
		{name: "token flag misspelled", args: []string{"--metrics-tokn=" + secret}},
		{name: "credentials in the store URL", args: []string{"--store=s3://AKIA:" + secret + "@bucket/p"}},
		{name: "credentials in a data URL", env: map[string]string{"BATON_DATA": "s3://u:" + secret + "@b/p=/d"}},
		{name: "token as git username in a bad code URL", env: map[string]string{"BATON_CODE": "https://" + secret + "@example.com/x"}},
		{name: "credentials in a data URL that does not parse", env: map[string]string{"BATON_DATA": "s3://u:" + secret + "@b/p"}},
		{name: "token over a public metrics address", args: []string{"--metrics-addr=0.0.0.0:1", "--metrics-token= " + secret}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"BATON_STORE": "/tmp/store", "BATON_RUN_ID": "r1"}
			for k, v := range tc.env {
				env[k] = v
			}
			files := map[string]string{}
			if tc.yaml != "" {
				files["c.yaml"] = tc.yaml
				env["BATON_CONFIG"] = "c.yaml"
			}
			c, _, err := load(tc.args, env, files)
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("no error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want a *Error", err, err)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(ce.Value, "hunter2") || strings.Contains(ce.Problem, "hunter2") {
				t.Errorf("the secret shows: %s", err)
			}
			t.Log(err)
		})
	}
}

func TestParseCode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Code
		ok   bool
	}{
		{"", Code{Kind: CodeNone}, true},
		{"https://github.com/me/repo.git", Code{CodeGit, "https://github.com/me/repo.git", ""}, true},
		{"https://github.com/me/repo.git#v1.2", Code{CodeGit, "https://github.com/me/repo.git", "v1.2"}, true},
		{"https://github.com/me/repo#main", Code{CodeGit, "https://github.com/me/repo", "main"}, true},
		{"https://tok@github.com/me/private#main", Code{CodeGit, "https://tok@github.com/me/private", "main"}, true},
		{"https://git.example.com/me/repo.git#0123abc", Code{CodeGit, "https://git.example.com/me/repo.git", "0123abc"}, true},
		{"git@github.com:me/repo.git#feature/x", Code{CodeGit, "git@github.com:me/repo.git", "feature/x"}, true},
		{"ssh://git@host:2222/me/repo", Code{CodeGit, "ssh://git@host:2222/me/repo", ""}, true},
		{"git://host/repo", Code{CodeGit, "git://host/repo", ""}, true},
		{"git+https://host/me/repo#dev", Code{CodeGit, "https://host/me/repo", "dev"}, true},
		{"s3://bucket/code", Code{CodePrefix, "s3://bucket/code", ""}, true},
		{"file:///src/code", Code{CodePrefix, "file:///src/code", ""}, true},
		{"/mnt/volume/code", Code{CodePrefix, "/mnt/volume/code", ""}, true},
		{"s3://bucket/code.tar.gz", Code{CodeTarball, "s3://bucket/code.tar.gz", ""}, true},
		{"s3://bucket/code.tgz", Code{CodeTarball, "s3://bucket/code.tgz", ""}, true},
		{"/mnt/code.tar", Code{CodeTarball, "/mnt/code.tar", ""}, true},
		{"https://example.com/releases/code.tar.gz", Code{CodeTarball, "https://example.com/releases/code.tar.gz", ""}, true},
		{"https://example.com/code", Code{}, false},
		{"s3://bucket/code#main", Code{}, false},
		{"s3://bucket/code.tar.gz#main", Code{}, false},
		{"https://github.com/me/repo.git#", Code{}, false},
		{"https://github.com/me/repo.git#--upload-pack=evil", Code{}, false},
		{"https://github.com/me/repo.git#a..b", Code{}, false},
		{"https://github.com/me/repo.git#a b", Code{}, false},
		{"--upload-pack=evil", Code{}, false},
		{"ftp://host/code", Code{}, false},
		{"s3://user:pw@bucket/code", Code{}, false},
	} {
		got, err := ParseCode(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseCode(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
