package config

import (
	"errors"
	"io/fs"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// requiredArgs sets the settings without a default, so that a Load of them
// alone validates.
func requiredArgs() []string { return []string{"--store=s3://bucket/prefix", "--run=r1"} }

// load runs Load with the given arguments, environment and files.
func load(args []string, env, files map[string]string) (Config, []string, error) {
	return Load(args, func(k string) string { return env[k] }, func(path string) ([]byte, error) {
		data, ok := files[path]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		}
		return []byte(data), nil
	})
}

// loadWith loads args with the variables env and, unless yaml is empty, the
// config file c.yaml that holds it, named by BATON_CONFIG.
func loadWith(args []string, env map[string]string, yaml string) (Config, error) {
	vars := maps.Clone(env)
	if vars == nil {
		vars = map[string]string{}
	}
	files := map[string]string{}
	if yaml != "" {
		files["c.yaml"] = yaml
		vars["BATON_CONFIG"] = "c.yaml"
	}
	c, _, err := load(args, vars, files)
	return c, err
}

func TestDefaults(t *testing.T) {
	c, rest, err := load(requiredArgs(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rest != nil {
		t.Errorf("rest = %q, want none", rest)
	}
	want := Config{
		Store: "s3://bucket/prefix", RunID: "r1",
		CheckpointDir: "./checkpoints", CheckpointInterval: 10 * time.Minute, Quiescence: 5 * time.Second,
		Keep: 3, CodeDir: "./code", OnExit: "none", OnSuperseded: "none", Restarts: 3, RestartBackoff: 10 * time.Second,
		Exclude:       []string{"*.tmp", "*.partial", "tmp-checkpoint-*"},
		LeaseDuration: 2 * time.Minute, LeaseWait: "auto", Workers: 16, Nice: 19, PartSize: 16 << 20, ChunkSize: 4 << 20,
		S3Driver: "aws", MetricsAddr: "127.0.0.1:9400", LogFormat: "auto",
		TelemetryInterval: 5 * time.Second, TelemetryUpload: time.Minute, GPUCheck: true,
		OnUnhealthy: "give-up", HangTimeout: 30 * time.Minute, OnHang: "restart", MinFreeDisk: 2 << 30,
		PIDFile: "/tmp/baton.pid", LogFile: "/tmp/baton.log", Notify: []string{}, PassEnv: []string{},
		RunPodAPIURL: "https://api.runpod.io/v2", VastAPIURL: "https://console.vast.ai/api/v0",
	}
	got := c
	got.Origins = Origins{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	if o := c.Origin("keep"); o != (Origin{Source: SourceDefault, Key: "--keep"}) {
		t.Errorf("Origin(keep) = %+v", o)
	}
	if c.FailureAction() != "none" {
		t.Errorf("FailureAction() = %q, want the on-exit action", c.FailureAction())
	}
}

func TestPrecedence(t *testing.T) {
	const file = "baton.yaml"
	yaml := `checkpoint_dir: /file/ckpt
checkpoint_interval: 20m
keep: 5
detach: true
part_size: 32MiB
data:
  - s3://bkt/file=/data/file
`
	env := map[string]string{
		"BATON_CHECKPOINT_DIR":      "/env/ckpt",
		"BATON_CHECKPOINT_INTERVAL": "30m",
		"BATON_KEEP":                "7",
		"BATON_DETACH":              "false",
		"BATON_PART_SIZE":           "64MiB",
		"BATON_DATA":                "s3://bkt/env1=/data/env1, s3://bkt/env2=/data/env2",
	}
	flags := []string{
		"--checkpoint-dir=/flag/ckpt", "--checkpoint-interval", "40m", "-keep=9", "--detach",
		"--part-size=128MiB", "--data=s3://bkt/flag1=/data/flag1", "--data", "s3://bkt/flag2=/data/flag2,s3://bkt/flag3=/data/flag3",
	}
	type want struct {
		dir      string
		interval time.Duration
		keep     int
		detach   bool
		part     ByteSize
		data     []string
		source   Source
		key      string // of checkpoint-interval
	}
	for _, tc := range []struct {
		name  string
		flags bool
		env   bool
		file  bool
		want  want
	}{
		{"default", false, false, false, want{"./checkpoints", 10 * time.Minute, 3, false, 16 << 20, nil, SourceDefault, "--checkpoint-interval"}},
		{"file", false, false, true, want{"/file/ckpt", 20 * time.Minute, 5, true, 32 << 20, []string{"s3://bkt/file=/data/file"}, SourceFile, "checkpoint_interval"}},
		{"env over file", false, true, true, want{"/env/ckpt", 30 * time.Minute, 7, false, 64 << 20, []string{"s3://bkt/env1=/data/env1", "s3://bkt/env2=/data/env2"}, SourceEnv, "BATON_CHECKPOINT_INTERVAL"}},
		{"env alone", false, true, false, want{"/env/ckpt", 30 * time.Minute, 7, false, 64 << 20, []string{"s3://bkt/env1=/data/env1", "s3://bkt/env2=/data/env2"}, SourceEnv, "BATON_CHECKPOINT_INTERVAL"}},
		{"flags over all", true, true, true, want{"/flag/ckpt", 40 * time.Minute, 9, true, 128 << 20, []string{"s3://bkt/flag1=/data/flag1", "s3://bkt/flag2=/data/flag2", "s3://bkt/flag3=/data/flag3"}, SourceFlag, "--checkpoint-interval"}},
		{"flags over file", true, false, true, want{"/flag/ckpt", 40 * time.Minute, 9, true, 128 << 20, []string{"s3://bkt/flag1=/data/flag1", "s3://bkt/flag2=/data/flag2", "s3://bkt/flag3=/data/flag3"}, SourceFlag, "--checkpoint-interval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := requiredArgs()
			e := map[string]string{}
			files := map[string]string{}
			if tc.flags {
				args = append(args, flags...)
			}
			if tc.env {
				for k, v := range env {
					e[k] = v
				}
			}
			if tc.file {
				files[file] = yaml
				e["BATON_CONFIG"] = file
			}
			c, _, err := load(args, e, files)
			if err != nil {
				t.Fatal(err)
			}
			var data []string
			for _, m := range c.Data {
				data = append(data, m.String())
			}
			got := want{c.CheckpointDir, c.CheckpointInterval, c.Keep, c.Detach, c.PartSize, data,
				c.Origin("checkpoint-interval").Source, c.Origin("checkpoint-interval").Key}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestConfigFileFlagOverEnv(t *testing.T) {
	files := map[string]string{"a.yaml": "keep: 1\n", "b.yaml": "keep: 2\n"}
	c, _, err := load([]string{"--config", "b.yaml"}, map[string]string{"BATON_CONFIG": "a.yaml"}, files)
	if err != nil {
		t.Fatal(err)
	}
	if c.Keep != 2 || c.ConfigFile != "b.yaml" {
		t.Errorf("keep = %d, config = %q; want 2 from b.yaml", c.Keep, c.ConfigFile)
	}
	if o := c.Origin("keep"); o != (Origin{Source: SourceFile, Key: "keep", File: "b.yaml", Line: 1}) {
		t.Errorf("Origin(keep) = %+v", o)
	}
}

func TestTrainerArgs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantRest []string
		wantKeep int
	}{
		{"none", []string{"--keep=4"}, nil, 4},
		{"only --", []string{"--keep=4", "--"}, nil, 4},
		{"after --", []string{"--keep=4", "--", "python", "train.py"}, []string{"python", "train.py"}, 4},
		{"flag-like args after --",
			[]string{"--keep", "4", "--", "python", "-u", "train.py", "--keep=9", "--store", "x", "--", "-h", "--help", ""},
			[]string{"python", "-u", "train.py", "--keep=9", "--store", "x", "--", "-h", "--help", ""}, 4},
		{"trainer flags only", []string{"--", "--keep=9"}, []string{"--keep=9"}, 3},
		{"without --, from the first non-flag",
			[]string{"-keep=4", "python", "train.py", "--keep=9", "--"},
			[]string{"python", "train.py", "--keep=9", "--"}, 4},
		{"spaces and quotes kept", []string{"--", "sh", "-c", `echo "a  b" 'c'`, " "}, []string{"sh", "-c", `echo "a  b" 'c'`, " "}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rest, err := load(tc.args, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rest, tc.wantRest) {
				t.Errorf("rest = %q, want %q", rest, tc.wantRest)
			}
			if c.Keep != tc.wantKeep {
				t.Errorf("keep = %d, want %d", c.Keep, tc.wantKeep)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		if _, _, err := load([]string{arg}, nil, nil); !errors.Is(err, ErrHelp) {
			t.Errorf("%s: err = %v, want ErrHelp", arg, err)
		}
	}
}

func TestDataMappings(t *testing.T) {
	const file = "c.yaml"
	for _, tc := range []struct {
		name  string
		args  []string
		env   string
		yaml  string
		want  []DataMapping
		wantK []string // keys of the elements' origins
	}{
		{name: "env comma", env: "s3://bkt/a=/data/a,s3://bkt/b=/data/b",
			want:  []DataMapping{{"s3://bkt/a", "/data/a"}, {"s3://bkt/b", "/data/b"}},
			wantK: []string{"BATON_DATA[0]", "BATON_DATA[1]"}},
		{name: "env newlines, spaces, empty entries", env: "\n s3://bkt/a = /data/a ,\n\ns3://bkt/b=/data/b\n,",
			want:  []DataMapping{{"s3://bkt/a", "/data/a"}, {"s3://bkt/b", "/data/b"}},
			wantK: []string{"BATON_DATA[0]", "BATON_DATA[1]"}},
		{name: "S3 query in SRC", env: "s3://bkt/d?region=eu-west-1&driver=minio=/data/d",
			want: []DataMapping{{"s3://bkt/d?region=eu-west-1&driver=minio", "/data/d"}}, wantK: []string{"BATON_DATA[0]"}},
		{name: "relative DST and a path SRC", env: "/mnt/volume/ds=data",
			want: []DataMapping{{"/mnt/volume/ds", "data"}}, wantK: []string{"BATON_DATA[0]"}},
		{name: "repeated flags", args: []string{"--data=s3://bkt/a=/a", "--data", "s3://bkt/b=/b,s3://bkt/c=/c"},
			want:  []DataMapping{{"s3://bkt/a", "/a"}, {"s3://bkt/b", "/b"}, {"s3://bkt/c", "/c"}},
			wantK: []string{"--data[0]", "--data[1]", "--data[2]"}},
		{name: "YAML list", yaml: "data:\n  - s3://bkt/a=/a\n  - file:///x=/x\n",
			want: []DataMapping{{"s3://bkt/a", "/a"}, {"file:///x", "/x"}}, wantK: []string{"data[0]", "data[1]"}},
		{name: "YAML mapping", yaml: "data:\n  s3://bkt/a: /a\n  s3://bkt/q?region=x: /q\n",
			want: []DataMapping{{"s3://bkt/a", "/a"}, {"s3://bkt/q?region=x", "/q"}}, wantK: []string{"data[0]", "data[1]"}},
		{name: "YAML string", yaml: "data: s3://bkt/a=/a,s3://bkt/b=/b\n",
			want: []DataMapping{{"s3://bkt/a", "/a"}, {"s3://bkt/b", "/b"}}, wantK: []string{"data[0]", "data[1]"}},
		{name: "YAML block string", yaml: "data: |\n  s3://bkt/a=/a\n  s3://bkt/b=/b\n",
			want: []DataMapping{{"s3://bkt/a", "/a"}, {"s3://bkt/b", "/b"}}, wantK: []string{"data[0]", "data[1]"}},
		{name: "YAML empty list", yaml: "data: []\n", want: nil},
		{name: "none", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"BATON_DATA": tc.env}
			files := map[string]string{}
			if tc.yaml != "" {
				files[file] = tc.yaml
				env["BATON_CONFIG"] = file
			}
			c, _, err := load(append(requiredArgs(), tc.args...), env, files)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Data, tc.want) {
				t.Errorf("data = %q, want %q", c.Data, tc.want)
			}
			var keys []string
			for _, it := range c.byFlag["data"].items {
				keys = append(keys, it.Key)
			}
			if !reflect.DeepEqual(keys, tc.wantK) {
				t.Errorf("element keys = %q, want %q", keys, tc.wantK)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// TestLoadErrors checks that every error of Load is a *Error whose one-line
// message names the key where the user wrote it.
func TestLoadErrors(t *testing.T) {
	runErrorCases(t, []errorCase{
		{name: "env duration", env: map[string]string{"BATON_CHECKPOINT_INTERVAL": "ten"},
			want: `BATON_CHECKPOINT_INTERVAL="ten": not a duration (want e.g. 30s, 10m, 1h30m)`, source: SourceEnv, key: "BATON_CHECKPOINT_INTERVAL"},
		{name: "flag integer", args: []string{"--keep=three"},
			want: `--keep=three: not an integer`, source: SourceFlag, key: "--keep"},
		{name: "flag value with a space is quoted", args: []string{"--workers", "1 6"},
			want: `--workers="1 6": not an integer`, source: SourceFlag, key: "--workers"},
		{name: "flag boolean", args: []string{"--detach=maybe"},
			want: `--detach=maybe: not a boolean (want true or false)`, source: SourceFlag, key: "--detach"},
		{name: "env boolean", env: map[string]string{"BATON_DETACH": "yes"},
			want: `BATON_DETACH="yes": not a boolean (want true or false)`, source: SourceEnv, key: "BATON_DETACH"},
		{name: "file size", yaml: "keep: 3\npart_size: 16MB\n",
			want: `c.yaml:2: part_size: "16MB": not a size (want e.g. 16MiB, 512KiB, 1GiB or a number of bytes)`, source: SourceFile, key: "part_size"},
		{name: "file duration", yaml: "grace: 8\n",
			want: `c.yaml:1: grace: "8": not a duration (want e.g. 30s, 10m, 1h30m)`, source: SourceFile, key: "grace"},
		{name: "unknown flag", args: []string{"--checkpoint-intervall=5m"},
			want: `--checkpoint-intervall: unknown flag; did you mean --checkpoint-interval?`, source: SourceFlag, key: "--checkpoint-intervall"},
		{name: "flag without value", args: []string{"--keep"},
			want: `--keep: needs a value`, source: SourceFlag, key: "--keep"},
		{name: "unknown YAML key", yaml: "store: s3://bkt/p\ncheckpoint_intervall: 5m\n",
			want: `c.yaml:2: checkpoint_intervall: unknown key`, source: SourceFile, key: "checkpoint_intervall"},
		{name: "YAML key written as a flag", yaml: "checkpoint-interval: 5m\n",
			want: `c.yaml:1: checkpoint-interval: unknown key; did you mean checkpoint_interval?`, source: SourceFile, key: "checkpoint-interval"},
		{name: "YAML key written as a variable", yaml: "BATON_RUN_ID: r1\n",
			want: `c.yaml:1: BATON_RUN_ID: unknown key; did you mean run_id?`, source: SourceFile, key: "BATON_RUN_ID"},
		{name: "config is no YAML key", yaml: "config: other.yaml\n",
			want: `c.yaml:1: config: unknown key`, source: SourceFile, key: "config"},
		{name: "repeated YAML key", yaml: "keep: 1\nstore: x\nkeep: 2\n",
			want: `c.yaml:3: keep: repeated key (first on line 1)`, source: SourceFile, key: "keep"},
		{name: "bad YAML", yaml: "keep: 3\n  store: [x\n",
			want: `c.yaml: line 2: mapping values are not allowed in this context`, source: SourceFile},
		{name: "YAML not a mapping", yaml: "- keep\n- 3\n",
			want: `c.yaml:1: want a mapping of settings (key: value)`, source: SourceFile},
		{name: "two YAML documents", yaml: "keep: 3\n---\nkeep: 4\n",
			want: `c.yaml:2: want one YAML document, found more`, source: SourceFile},
		{name: "YAML list for a single value", yaml: "keep:\n  - 3\n",
			want: `c.yaml:2: keep: want a single value, not a list`, source: SourceFile, key: "keep"},
		{name: "config file missing", env: map[string]string{"BATON_CONFIG": "nope.yaml"},
			want: `BATON_CONFIG="nope.yaml": cannot read the config file: open nope.yaml: file does not exist`, source: SourceEnv, key: "BATON_CONFIG"},
		{name: "config file flag missing", args: []string{"--config=nope.yaml"},
			want: `--config=nope.yaml: cannot read the config file: open nope.yaml: file does not exist`, source: SourceFlag, key: "--config"},
		{name: "data from YAML list", yaml: "data:\n  - s3://bkt/a=/a\n  - foo\n",
			want: `c.yaml:3: data[1]: "foo": not SRC=DST`, source: SourceFile, key: "data[1]"},
		{name: "data from YAML string", yaml: "data: s3://bkt/a=/a,foo=\n",
			want: `c.yaml:1: data[1]: "foo=": not SRC=DST`, source: SourceFile, key: "data[1]"},
		{name: "data from YAML nested list", yaml: "data:\n  - [a, b]\n",
			want: `c.yaml:2: data[0]: want SRC=DST, not a list`, source: SourceFile, key: "data[0]"},
		{name: "data from env", env: map[string]string{"BATON_DATA": "s3://bkt/a=/a,foo"},
			want: `BATON_DATA[1]="foo": not SRC=DST`, source: SourceEnv, key: "BATON_DATA[1]"},
		{name: "data from flags", args: []string{"--data=s3://bkt/a=/a", "--data==/x"},
			want: `--data[1]==/x: not SRC=DST`, source: SourceFlag, key: "--data[1]"},
	}, false)
}

// errorCase is a configuration and the *Error that Load, or Validate when
// Load accepts it, must give; no error where want is "".
type errorCase struct {
	name   string
	args   []string
	env    map[string]string
	yaml   string // as c.yaml, named by BATON_CONFIG
	want   string
	source Source
	key    string
}

// runErrorCases loads each case and checks the error of Load, or with
// validate the error of Validate.
func runErrorCases(t *testing.T, cases []errorCase, validate bool) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadWith(tc.args, tc.env, tc.yaml)
			if validate {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				err = c.Validate()
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want no error, got %v", err)
				}
				return
			}
			checkError(t, err, tc.want, tc.source, tc.key)
		})
	}
}

// listCase is a list setting given one way, the list it reads as, and the
// key that errors give its element 0.
type listCase struct {
	name string
	args []string
	env  map[string]string
	yaml string
	want []string
	key  string // the key of element 0, as errors name it
}

// runListCases loads each case on top of the required settings and checks
// the list that get reads; then it puts bad in element 0 and checks that
// Validate names that element's key, and what check says of the error.
func runListCases(t *testing.T, cases []listCase, get func(*Config) []string, bad string, check func(*testing.T, error)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadWith(append(requiredArgs(), tc.args...), tc.env, tc.yaml)
			if err == nil {
				err = c.Validate()
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := get(&c); !slices.Equal(got, tc.want) && len(got)+len(tc.want) > 0 {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if len(tc.want) == 0 {
				return
			}
			get(&c)[0] = bad
			var ce *Error
			err = c.Validate()
			if err == nil || !errors.As(err, &ce) || ce.Key != tc.key {
				t.Fatalf("a bad element 0: %v, want an error naming %s", err, tc.key)
			}
			check(t, err)
		})
	}
}

// checkError fails t unless err is a *Error with the given message, source
// and key.
func checkError(t *testing.T, err error, want string, source Source, key string) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want a *Error", err, err)
	}
	if got := ce.Error(); got != want { // the first problem; Problems joins the others
		t.Errorf("message\n got %s\nwant %s", got, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("message has more than one line: %q", err.Error())
	}
	if ce.Source != source || ce.Key != key {
		t.Errorf("source, key = %v, %q; want %v, %q", ce.Source, ce.Key, source, key)
	}
}

func TestConfigFileReadErrorWraps(t *testing.T) {
	_, _, err := load([]string{"--config=missing.yaml"}, nil, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want one that wraps fs.ErrNotExist", err)
	}
}

func TestEmptyConfigFiles(t *testing.T) {
	for _, yaml := range []string{"", "# only a comment\n", "---\n", "{}\n"} {
		c, _, err := load(requiredArgs(), map[string]string{"BATON_CONFIG": "c.yaml"}, map[string]string{"c.yaml": yaml})
		if err != nil {
			t.Errorf("%q: %v", yaml, err)
			continue
		}
		if c.Keep != 3 {
			t.Errorf("%q: keep = %d, want the default", yaml, c.Keep)
		}
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		str  string
		ok   bool
	}{
		{"16MiB", 16 << 20, "16MiB", true},
		{"16M", 16 << 20, "16MiB", true},
		{"512KiB", 512 << 10, "512KiB", true},
		{"1GiB", 1 << 30, "1GiB", true},
		{"1536KiB", 1536 << 10, "1536KiB", true},
		{"1048577", 1048577, "1048577", true},
		{"100B", 100, "100", true},
		{" 4 MiB ", 4 << 20, "4MiB", true},
		{"16MB", 0, "", false},
		{"-1", 0, "", false},
		{"MiB", 0, "", false},
		{"9999999999GiB", 0, "", false},
		{"1.5GiB", 0, "", false},
	} {
		got, err := ParseByteSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
			continue
		}
		if tc.ok && got.String() != tc.str {
			t.Errorf("ByteSize(%d).String() = %q, want %q", got, got.String(), tc.str)
		}
	}
}
