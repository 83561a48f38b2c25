package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Setting describes one field of Config, as its struct tags write it.
type Setting struct {
	// Field is the name of the Config field.
	Field string
	// Flag, Env and YAML are its three names; YAML is "-" where the file
	// cannot set it.
	Flag, Env, YAML string
	// Default is the default as it would be written on the command line.
	Default string
	// Values are the values an enumerated setting may take, else nil.
	Values []string
	// Type names the kind of value: string, integer, boolean, duration,
	// size, SRC=DST list, glob list or URL list (a []string field whose
	// type tag says so).
	Type string
	// Help is the one-line meaning.
	Help string

	index int // of the field in Config
}

// Settings returns every setting of Config, in the order of its fields. It
// panics if a field has a type Load cannot set, a programming error that the
// package's tests catch.
func Settings() []Setting {
	t := reflect.TypeFor[Config]()
	zero := reflect.ValueOf(Config{})
	out := make([]Setting, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		s := Setting{
			Field:   f.Name,
			Flag:    f.Tag.Get("flag"),
			Env:     f.Tag.Get("env"),
			YAML:    f.Tag.Get("yaml"),
			Default: f.Tag.Get("default"),
			Help:    f.Tag.Get("help"),
			index:   i,
		}
		if enum := f.Tag.Get("enum"); enum != "" {
			s.Values = strings.Split(enum, ",")
		}
		switch zero.Field(i).Interface().(type) {
		case string:
			s.Type = "string"
		case int:
			s.Type = "integer"
		case bool:
			s.Type = "boolean"
		case time.Duration:
			s.Type = "duration"
		case ByteSize:
			s.Type = "size"
		case []DataMapping:
			s.Type = "SRC=DST list"
		case []string:
			s.Type = "glob list"
			if typ := f.Tag.Get("type"); typ != "" {
				s.Type = typ
			}
		default:
			panic(fmt.Sprintf("config: field %s has type %s, which Load cannot set", f.Name, f.Type))
		}
		out = append(out, s)
	}
	return out
}

// isList reports whether s takes a list of values.
func (s Setting) isList() bool { return strings.HasSuffix(s.Type, " list") }

// itemName is what one element of list setting s is called in messages:
// SRC=DST, a glob or a URL.
func (s Setting) itemName() string {
	switch s.Type {
	case "glob list":
		return "a glob"
	case "URL list":
		return "a URL"
	}
	return "SRC=DST"
}

// Load reads the configuration of "baton run" from its arguments (without
// the command name), the environment (getenv; nil: none) and the YAML file
// named by --config or BATON_CONFIG (read with readFile; nil: os.ReadFile).
// Each setting takes the value of the first of its flag, its BATON_*
// variable, its YAML key and its default that is set; an empty variable
// counts as unset. A list setting (data, exclude) takes all its elements
// from that one place: repeated --data flags add up, and replace BATON_DATA
// entirely.
//
// It returns the remaining arguments, the trainer's command, exactly as
// given: everything after the first "--", or from the first argument that
// is not a flag. -h or --help returns flag.ErrHelp; every other problem is a
// *Error. Load does not call Validate.
func Load(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (Config, []string, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	settings := Settings()

	flags, rest, err := parseFlags(settings, args)
	if err != nil {
		return Config{}, nil, err
	}
	env := map[string]origin{}
	for _, s := range settings {
		if v := getenv(s.Env); v != "" {
			env[s.Flag] = newOrigin(s, Origin{Source: SourceEnv, Key: s.Env}, v)
		}
	}
	var file map[string]origin
	pathOrigin, ok := flags["config"]
	if !ok {
		pathOrigin, ok = env["config"]
	}
	if ok && pathOrigin.raw != "" {
		path := pathOrigin.raw
		data, err := readFile(path)
		if err != nil {
			return Config{}, nil, &Error{Source: pathOrigin.Source, Key: pathOrigin.Key, Value: path,
				Problem: fmt.Sprintf("cannot read the config file: %v", err), Err: err}
		}
		if file, err = parseYAML(settings, path, data); err != nil {
			return Config{}, nil, err
		}
	}

	c := Config{origins: make(map[string]origin, len(settings))}
	v := reflect.ValueOf(&c).Elem()
	for _, s := range settings {
		o, ok := flags[s.Flag]
		if !ok {
			o, ok = env[s.Flag]
		}
		if !ok {
			o, ok = file[s.Flag]
		}
		if !ok {
			o = newOrigin(s, Origin{Source: SourceDefault, Key: "--" + s.Flag}, s.Default)
		}
		if err := set(s, v.Field(s.index), o); err != nil {
			if o.Source == SourceDefault {
				panic(fmt.Sprintf("config: the default of %s does not parse: %v", s.Field, err))
			}
			return Config{}, nil, err
		}
		c.origins[s.Flag] = o
	}
	return c, rest, nil
}

// newOrigin records the text raw of setting s from the place at; a list's
// text is split into its elements.
func newOrigin(s Setting, at Origin, raw string) origin {
	o := origin{Origin: at, raw: raw}
	if s.isList() {
		for _, item := range splitList(raw) {
			o.addItem(item, at.Line)
		}
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

// flagValue records the text of one flag; parsing waits until the flag is
// known to win over the other sources.
type flagValue struct {
	setting Setting
	got     map[string]origin
}

func (f *flagValue) String() string { return "" }

func (f *flagValue) IsBoolFlag() bool { return f.setting.Type == "boolean" }

func (f *flagValue) Set(v string) error {
	s := f.setting
	o, seen := f.got[s.Flag]
	if !s.isList() || !seen {
		o = origin{Origin: Origin{Source: SourceFlag, Key: "--" + s.Flag}}
	}
	if s.isList() {
		o.raw = strings.TrimPrefix(o.raw+","+v, ",")
		for _, item := range splitList(v) {
			o.addItem(item, 0)
		}
	} else {
		o.raw = v // the last one wins, as with package flag
	}
	f.got[s.Flag] = o
	return nil
}

// parseFlags returns the flags given in args, by flag name, and the
// arguments after them.
func parseFlags(settings []Setting, args []string) (map[string]origin, []string, error) {
	fs := flag.NewFlagSet("baton run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	got := map[string]origin{}
	for _, s := range settings {
		fs.Var(&flagValue{setting: s, got: got}, s.Flag, s.Help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, flagError(err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		rest = nil
	}
	return got, rest, nil
}

// flagError turns an error of package flag into a *Error that names the
// flag; package flag writes the name with one dash.
func flagError(err error) error {
	msg := err.Error()
	for _, p := range []struct{ prefix, problem string }{
		{"flag provided but not defined: ", "unknown flag"},
		{"flag needs an argument: ", "needs a value"},
	} {
		if name, ok := strings.CutPrefix(msg, p.prefix); ok {
			return &Error{Source: SourceFlag, Key: "--" + strings.TrimLeft(name, "-"), Problem: p.problem, Err: err}
		}
	}
	return &Error{Source: SourceFlag, Key: "flags", Problem: msg, Err: err}
}
