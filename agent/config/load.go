package config

import (
	"errors"
	"fmt"
	"github.com/batonrun/baton/internal/spell"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// ErrHelp is what LoadInto returns for -h or --help: the caller prints the
// command's usage.
var ErrHelp = errors.New("help requested")

// Load reads the configuration of "baton run" from its arguments (without
// the command name), the environment (getenv; nil: none) and the YAML file
// named by --config or BATON_CONFIG (read with readFile; nil: os.ReadFile).
// It is LoadInto for a Config.
func Load(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (Config, []string, error) {
	var c Config
	rest, err := LoadInto(&c, args, getenv, readFile)
	return c, rest, err
}

// LoadInto fills the settings struct that dst points to (Config, or a
// command's struct of commands.go) from args, the environment (getenv; nil:
// none) and the YAML file named by --config or BATON_CONFIG (read with
// readFile; nil: os.ReadFile), for the settings that have one. Each setting
// takes the value of the first of its flag, its BATON_* variable, its YAML
// key and its default that is set and reads; an empty variable counts as
// unset. A list setting (data, exclude) takes all its elements from that one
// place: repeated --data flags add up, and replace BATON_DATA entirely. The
// file may hold the keys of any command: those of baton run that this
// command has no use for are left alone, so one baton.yaml serves them all.
//
// It returns the operands exactly as given. Flags may come before, between
// and after them (baton pull SRC DIR --workers 4), and everything after the
// first "--" is an operand; but where the operands are a command line of
// their own (baton run and baton doctor: the trainer's), flags end at its
// first word, so that the trainer's own flags reach it untouched. -h or --help
// returns ErrHelp, and a flag that does not exist or lacks its value a
// *Error, at once. A value that does not read (a variable that is not a
// duration, a file that is not YAML) is a problem, and that setting falls to
// its next source: LoadInto reads everything it can and returns every
// problem at once, as Problems, with dst as complete as the problems allow.
// LoadInto does not call Validate.
func LoadInto(dst any, args []string, getenv func(string) string, readFile func(string) ([]byte, error)) ([]string, error) {
	h, ok := dst.(holder)
	if !ok {
		panic(fmt.Sprintf("config: %T does not embed config.Origins", dst))
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	settings := SettingsOf(dst)

	_, commandLine := dst.(takesCommand)
	flags, rest, err := parseArgs(settings, args, !commandLine)
	if err != nil {
		return nil, err
	}
	var problems Problems
	env := map[string]origin{}
	for _, s := range settings {
		if v := getenv(s.Env); s.Env != "-" && v != "" {
			env[s.Flag] = newOrigin(s, Origin{Source: SourceEnv, Key: s.Env}, v)
		}
	}
	file, err := readConfigFile(settings, flags, env, readFile)
	problems.add(err)

	byFlag := make(map[string]origin, len(settings))
	v := reflect.ValueOf(dst).Elem()
	for _, s := range settings {
		for _, o := range sources(s, flags, env, file) {
			err := set(s, v.FieldByIndex(s.index), o)
			if err == nil {
				byFlag[s.Flag] = o
				break
			}
			if o.Source == SourceDefault {
				panic(fmt.Sprintf("config: the default of %s does not parse: %v", s.Field, err))
			}
			problems.add(err)
		}
	}
	h.origins().byFlag = byFlag
	return rest, problems.err()
}

// sources are the values given for setting s, highest precedence first,
// ending with its default.
func sources(s Setting, flags, env, file map[string]origin) []origin {
	var out []origin
	if o, ok := flags[s.Flag]; ok {
		out = append(out, o)
	}
	if o, ok := env[s.Flag]; ok {
		out = append(out, o)
	}
	if o, ok := file[s.YAML]; ok && s.YAML != "-" {
		out = append(out, o)
	}
	return append(out, newOrigin(s, Origin{Source: SourceDefault, Key: "--" + s.Flag}, s.Default))
}

// readConfigFile reads the YAML file named by the config setting, if the
// command has one and it is set, by YAML key. Its keys are checked against
// every setting of baton run as well as the command's own, so that a file
// written for baton run serves every command.
func readConfigFile(settings []Setting, flags, env map[string]origin, readFile func(string) ([]byte, error)) (map[string]origin, error) {
	at, ok := flags["config"]
	if !ok {
		at, ok = env["config"]
	}
	if !ok || at.raw == "" {
		return nil, nil
	}
	path := at.raw
	data, err := readFile(path)
	if err != nil {
		return nil, &Error{Source: at.Source, Key: at.Key, Value: path,
			Problem: fmt.Sprintf("cannot read the config file: %v", err), Err: err}
	}
	known := append(Settings(), specSettings()...) // issue 16: run.yaml's launch spec serves every command
	for _, s := range settings {
		if s.YAML != "-" && !s.Shared {
			known = append(known, s)
		}
	}
	return parseYAML(known, path, data)
}

// newOrigin records the text raw of setting s from the place at; a list's
// text is split into its elements.
func newOrigin(s Setting, at Origin, raw string) origin {
	o := origin{Origin: at, raw: raw}
	switch {
	case s.isList() && s.splits():
		for _, item := range splitList(raw) {
			o.addItem(item, at.Line)
		}
	case s.isList() && raw != "":
		o.addItem(raw, at.Line)
	}
	return o
}

// addItem appends an element with the text raw to a list's origin.
func (o *origin) addItem(raw string, line int) {
	key := fmt.Sprintf("%s[%d]", o.Key, len(o.items))
	o.items = append(o.items, origin{Origin: Origin{Source: o.Source, Key: key, File: o.File, Line: line}, raw: raw})
}

// splitList splits the text of a list at commas and newlines, dropping empty
// elements.
func splitList(raw string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == '\n' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// set parses the text of o into the field v of setting s.
func set(s Setting, v reflect.Value, o origin) error {
	fail := func(problem string) error {
		return &Error{Source: o.Source, Key: o.Key, File: o.File, Line: o.Line, Value: redactValue(s, o.raw), Problem: problem}
	}
	raw := strings.TrimSpace(o.raw)
	switch p := v.Addr().Interface().(type) {
	case *string:
		*p = o.raw
	case *int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fail("not an integer")
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fail("not a boolean (want true or false)")
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fail("not a duration (want e.g. 30s, 10m, 1h30m)")
		}
		*p = d
	case *ByteSize:
		b, err := ParseByteSize(raw)
		if err != nil {
			return fail(err.Error())
		}
		*p = b
	case *Number: // issue 16: prices
		f, err := strconv.ParseFloat(strings.TrimPrefix(raw, "$"), 64)
		if err != nil {
			return fail("not a number (want e.g. 2.5)")
		}
		*p = Number(f)
	case *[]DataMapping:
		var list []DataMapping
		for _, item := range o.items {
			m, ok := parseDataMapping(item.raw)
			if !ok {
				return &Error{Source: item.Source, Key: item.Key, File: item.File, Line: item.Line,
					Value: redactValue(s, item.raw), Problem: "not SRC=DST"}
			}
			list = append(list, m)
		}
		*p = list
	case *[]string:
		list := make([]string, 0, len(o.items))
		for _, item := range o.items {
			list = append(list, item.raw)
		}
		*p = list
	default:
		panic("config: cannot set " + s.Field) // Settings panics first
	}
	return nil
}

// parseDataMapping splits SRC=DST at its last "=": an S3 URL's query may
// hold "=", a directory name should not.
func parseDataMapping(raw string) (DataMapping, bool) {
	i := strings.LastIndex(raw, "=")
	if i < 0 {
		return DataMapping{}, false
	}
	m := DataMapping{Src: strings.TrimSpace(raw[:i]), Dst: strings.TrimSpace(raw[i+1:])}
	return m, m.Src != "" && m.Dst != ""
}

// takesCommand is implemented by the settings of a command whose operands
// are a command line (baton run, and baton doctor through its embedded
// Config).
type takesCommand interface{ takesCommand() }

func (Config) takesCommand() {}

// parseArgs reads the flags in args, by flag name, and returns the operands:
// the arguments that are not flags, and all after the first "--". With
// interleaved false, the operands begin at the first argument that is not a
// flag. A flag is -name or --name, its value after "=" or in the next
// argument; a boolean takes no next argument (--detach, --detach=false). A
// flag given twice keeps its last value, or for a list adds to it.
func parseArgs(settings []Setting, args []string, interleaved bool) (map[string]origin, []string, error) {
	byFlag := make(map[string]Setting, len(settings))
	names := make([]string, 0, len(settings))
	for _, s := range settings {
		byFlag[s.Flag] = s
		names = append(names, s.Flag)
	}
	got := map[string]origin{}
	var operands []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return got, nonEmpty(append(operands, args[i+1:]...)), nil
		}
		if len(arg) < 2 || arg[0] != '-' {
			if !interleaved {
				return got, nonEmpty(append(operands, args[i:]...)), nil
			}
			operands = append(operands, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(arg[1:], "-"), "=")
		if name == "h" || name == "help" {
			return nil, nil, ErrHelp
		}
		if name == "" || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "=") {
			written, _, _ := strings.Cut(arg, "=")
			return nil, nil, &Error{Source: SourceFlag, Key: written, Problem: "not a flag: want -name or --name"}
		}
		s, known := byFlag[name]
		if !known {
			problem := "unknown flag"
			if guess := spell.Closest(name, names); guess != "" {
				problem += "; did you mean --" + guess + "?"
			}
			return nil, nil, &Error{Source: SourceFlag, Key: "--" + name, Problem: problem}
		}
		if !hasValue && s.Type == "boolean" {
			value, hasValue = "true", true
		}
		if !hasValue {
			if i+1 == len(args) {
				return nil, nil, &Error{Source: SourceFlag, Key: "--" + name, Problem: "needs a value"}
			}
			i++
			value = args[i]
		}
		got[name] = addFlag(s, got[name], value)
	}
	return got, nonEmpty(operands), nil
}

// addFlag returns the origin of flag s given the value v, after the values
// o it had so far.
func addFlag(s Setting, o origin, v string) origin {
	if !s.isList() || o.Key == "" {
		o = origin{Origin: Origin{Source: SourceFlag, Key: "--" + s.Flag}}
	}
	if !s.isList() {
		o.raw = v // the last one wins
		return o
	}
	o.raw = strings.TrimPrefix(o.raw+","+v, ",")
	if !s.splits() {
		o.addItem(v, 0)
		return o
	}
	for _, item := range splitList(v) {
		o.addItem(item, 0)
	}
	return o
}

// nonEmpty is args, or nil when it is empty.
func nonEmpty(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	return args
}
