package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestEveryCommandLoads checks that the settings struct of every command
// reads its defaults (settingsOf panics on a bad tag or a reference to no
// setting) and that a shared setting is baton run's, names and all.
func TestEveryCommandLoads(t *testing.T) {
	run := map[string]Setting{}
	for _, s := range Settings() {
		run[s.Flag] = s
	}
	for _, c := range Commands() {
		t.Run(c.Name, func(t *testing.T) {
			dst := c.Settings()
			if _, err := LoadInto(dst, nil, nil, nil); err != nil {
				t.Fatalf("defaults: %v", err)
			}
			flags := map[string]bool{}
			for _, s := range SettingsOf(dst) {
				if flags[s.Flag] {
					t.Errorf("--%s twice", s.Flag)
				}
				flags[s.Flag] = true
				base, ok := run[s.Flag]
				if s.Shared && (s.Env != base.Env || s.YAML != base.YAML || s.Name != base.Name) {
					t.Errorf("--%s: %s/%s/%s, baton run's is %s/%s/%s", s.Flag, s.Env, s.YAML, s.Name, base.Env, base.YAML, base.Name)
				}
				sameAsRun := s.Help == base.Help && s.Name == base.Name // doctor embeds Config
				if ok && !s.Shared && !sameAsRun && (s.YAML != "-" || s.Name == base.Name) {
					t.Errorf("--%s is baton run's flag with a meaning of its own: it must be a flag alone, judged by a name of its own", s.Flag)
				}
			}
		})
	}
}

// TestSharedSettingsMeanTheSame loads a command's settings from the file and
// the variables written for baton run: the shared ones are read, run's own
// keys are left alone, a key no command knows is an error, and a command's
// own flag that shares a name with one of run's (gc's --grace) is not fed by
// run's variable.
func TestSharedSettingsMeanTheSame(t *testing.T) {
	files := map[string]string{"b.yaml": "store: file:///s\nrun_id: r1\ncheckpoint_interval: 15m\nworkers: 4\ngrace: 5s\n"}
	var gc CheckpointGC
	if _, err := LoadInto(&gc, []string{"--config", "b.yaml"}, mapEnv(map[string]string{"BATON_GRACE": "1s", "BATON_KEEP": "2"}), readMap(files)); err != nil {
		t.Fatal(err)
	}
	if gc.Store != "file:///s" || gc.RunID != "r1" || gc.Workers != 4 || gc.Keep != 2 {
		t.Errorf("gc = %+v, want the file's store, run and workers and BATON_KEEP", gc)
	}
	if gc.Grace.String() != "6h0m0s" {
		t.Errorf("gc --grace = %s, want its default: run's grace is another setting", gc.Grace)
	}
	if got := gc.Origin("store"); got.Source != SourceFile || got.Line != 1 {
		t.Errorf("origin of store = %+v", got)
	}

	files["typo.yaml"] = "run_id: r1\nBATON_STORE: file:///s\n"
	var ls CheckpointList
	_, err := LoadInto(&ls, []string{"--config", "typo.yaml"}, nil, readMap(files))
	checkError(t, err, `typo.yaml:2: BATON_STORE: unknown key; did you mean store?`, SourceFile, "BATON_STORE")
}

// TestLoadGoesOnPastAProblem checks that a value that does not read falls
// to its next source and that every problem is returned.
func TestLoadGoesOnPastAProblem(t *testing.T) {
	env := map[string]string{"BATON_KEEP": "many", "BATON_WORKERS": "lots", "BATON_CONFIG": "c.yaml"}
	c, _, err := load(requiredArgs(), env, map[string]string{"c.yaml": "keep: 7\n"})
	var p Problems
	if !errors.As(err, &p) || len(p) != 2 {
		t.Fatalf("err = %v, want two problems", err)
	}
	want := `BATON_KEEP="many": not an integer; BATON_WORKERS="lots": not an integer`
	if err.Error() != want {
		t.Errorf("message\n got %s\nwant %s", err, want)
	}
	if c.Keep != 7 || c.Workers != 16 {
		t.Errorf("keep, workers = %d, %d; want the file's 7 and the default 16", c.Keep, c.Workers)
	}
	if o := c.Origin("keep"); o.Source != SourceFile {
		t.Errorf("keep came from %v, want the file", o.Source)
	}
}

// TestParseArgs checks baton's own reading of flags: anywhere among the
// operands of a command such as restore (but see TestRunFlagsEndAtTheCommand).
func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		want     string // the settings read, as flag=value in the order of the struct
		rest     []string
		problem  string
		wantHelp bool
	}{
		{args: []string{"--seq=3", "--force", "dir"}, want: "seq=3 force=true", rest: []string{"dir"}},
		{args: []string{"-seq", "3", "-force=false", "--", "--json"}, want: "seq=3 force=false", rest: []string{"--json"}},
		{args: []string{"--workers", "4", "dir", "--force"}, want: "workers=4 force=true", rest: []string{"dir"}},
		{args: []string{"a", "--seq", "2", "b", "--", "--force", "c"}, want: "seq=2", rest: []string{"a", "b", "--force", "c"}},
		{args: []string{"--wrokers=2"}, problem: "--wrokers: unknown flag; did you mean --workers?"},
		{args: []string{"-", "x"}, rest: []string{"-", "x"}},
		{args: []string{"--frob"}, problem: "--frob: unknown flag"},
		{args: []string{"---seq=1"}, problem: "---seq: not a flag: want -name or --name"},
		{args: []string{"--seq"}, problem: "--seq: needs a value"},
		{args: []string{"--run", "r", "-h"}, wantHelp: true},
		{args: []string{"--help"}, wantHelp: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var r CheckpointRestore
			rest, err := LoadInto(&r, tc.args, nil, nil)
			switch {
			case tc.wantHelp:
				if !errors.Is(err, ErrHelp) {
					t.Fatalf("err = %v, want ErrHelp", err)
				}
				return
			case tc.problem != "":
				if err == nil || err.Error() != tc.problem {
					t.Fatalf("err = %v, want %q", err, tc.problem)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			var got []string
			for _, s := range SettingsOf(&r) {
				if r.Origin(s.Flag).Source == SourceFlag {
					got = append(got, fmt.Sprintf("%s=%v", s.Flag, reflect.ValueOf(r).FieldByIndex(s.index)))
				}
			}
			if strings.Join(got, " ") != tc.want || !reflect.DeepEqual(rest, tc.rest) {
				t.Errorf("got %q, rest %q; want %q, rest %q", got, rest, tc.want, tc.rest)
			}
		})
	}
}

// TestRunFlagsEndAtTheCommand: baton run's operands are the trainer's
// command line, whose own flags must reach it untouched.
func TestRunFlagsEndAtTheCommand(t *testing.T) {
	for _, dst := range []any{new(Config), new(Doctor)} {
		rest, err := LoadInto(dst, []string{"--keep", "2", "python", "train.py", "--keep", "9", "--", "x"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"python", "train.py", "--keep", "9", "--", "x"}; !reflect.DeepEqual(rest, want) {
			t.Errorf("%T: rest = %q, want %q", dst, rest, want)
		}
	}
}

// TestMetaKeepsCommas: each --meta is one KEY=VALUE, commas and all.
func TestMetaKeepsCommas(t *testing.T) {
	var c CheckpointCommit
	if _, err := LoadInto(&c, []string{"--meta", "note=a,b", "--meta=step=10"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"note=a,b", "step=10"}; !reflect.DeepEqual(c.Meta, want) {
		t.Errorf("meta = %q, want %q", c.Meta, want)
	}
	c.Meta = append(c.Meta, "novalue")
	c.Store, c.RunID = "file:///s", "r"
	checkError(t, Validate(&c), `--meta[2]=novalue: want KEY=VALUE`, SourceDefault, "--meta[2]")
}

func mapEnv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func readMap(files map[string]string) func(string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		data, ok := files[path]
		if !ok {
			return nil, fmt.Errorf("open %s: no such file", path)
		}
		return []byte(data), nil
	}
}

func TestUnknownVariables(t *testing.T) {
	got := UnknownVariables([]string{"BATON_CHEKPOINT_DIR=/w", "BATON_STORE=s3://b/p", "BATON_RUN=r1", "BATON_AGENT_SOCKET=/s",
		"BATON_TEST_X=1", "BATON_FROBNICATE=1", "HOME=/root", "BATON_JSON=1"})
	want := []string{
		"BATON_CHEKPOINT_DIR is set but no baton command reads it; did you mean BATON_CHECKPOINT_DIR?",
		"BATON_FROBNICATE is set but no baton command reads it",
		"BATON_JSON is set but no baton command reads it",
		"BATON_RUN is set but no baton command reads it; did you mean BATON_RUN_ID?",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
