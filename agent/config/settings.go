package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Setting describes one field of a settings struct (Config, or a command's
// struct in commands.go), as its struct tags write it.
type Setting struct {
	// Field is the name of the Go field.
	Field string
	// Name is what Validate knows the setting by: for Config's settings
	// and the fields that refer to them, the flag name; else the name tag,
	// or the flag name where there is none.
	Name string
	// Flag, Env and YAML are its three names; Env and YAML are "-" where
	// the setting cannot be given that way.
	Flag, Env, YAML string
	// Default is the default as it would be written on the command line.
	Default string
	// Values are the values an enumerated setting may take, else nil.
	Values []string
	// Type names the kind of value: string, integer, boolean, duration,
	// size, SRC=DST list, glob list, URL list, name list or KEY=VALUE list
	// (a []string field whose type tag says so).
	Type string
	// Required says that the setting must not be empty.
	Required bool
	// Help is the one-line meaning.
	Help string
	// Shared is true for a field of a command's struct that refers to a
	// setting of baton run (its tag setting:"NAME"), which it takes whole.
	Shared bool

	index []int // of the field in its struct, for reflect.Value.FieldByIndex
}

// Settings returns every setting of baton run's Config, in the order of its
// fields.
func Settings() []Setting { return settingsOf(reflect.TypeFor[Config]()) }

// SettingsOf returns every setting of the settings struct that dst points
// to, in the order of its fields, the fields of embedded structs in their
// place.
func SettingsOf(dst any) []Setting { return settingsOf(reflect.TypeOf(dst).Elem()) }

// settingsOf reads the settings of struct type t. A field tagged
// setting:"NAME" takes every tag of Config's setting with that flag name,
// except those it writes itself (a default, a help, required). It panics on
// a field it cannot set or a reference to no setting: programming errors
// that the package's tests catch.
func settingsOf(t reflect.Type) []Setting {
	var out []Setting
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			at := append(append([]int(nil), index...), i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, at)
				continue
			}
			if !f.IsExported() {
				continue
			}
			out = append(out, fieldSetting(f, at))
		}
	}
	walk(t, nil)
	return out
}

// fieldSetting reads the Setting of one field.
func fieldSetting(f reflect.StructField, index []int) Setting {
	tag := f.Tag
	s := Setting{Field: f.Name, index: index}
	if ref := tag.Get("setting"); ref != "" {
		base, ok := configSetting(ref)
		if !ok {
			panic(fmt.Sprintf("config: field %s refers to no setting %q", f.Name, ref))
		}
		if want := reflect.TypeFor[Config]().FieldByIndex(base.index).Type; f.Type != want {
			panic(fmt.Sprintf("config: field %s is a %s, setting %q a %s", f.Name, f.Type, ref, want))
		}
		base.Field, base.index, base.Shared = f.Name, index, true
		s = base
	} else {
		s.Flag, s.Env, s.YAML = tag.Get("flag"), tag.Get("env"), tag.Get("yaml")
		s.Name = s.Flag
		s.Type = typeName(f)
	}
	if v, ok := tag.Lookup("name"); ok {
		s.Name = v
	}
	if v, ok := tag.Lookup("default"); ok {
		s.Default = v
	}
	if v, ok := tag.Lookup("help"); ok {
		s.Help = v
	}
	if v, ok := tag.Lookup("required"); ok {
		s.Required = v == "true"
	}
	if v, ok := tag.Lookup("enum"); ok {
		s.Values = strings.Split(v, ",")
	}
	if s.Flag == "" || s.Env == "" || s.YAML == "" {
		panic(fmt.Sprintf("config: field %s lacks a flag, env or yaml tag", f.Name))
	}
	return s
}

// configSetting returns the setting of Config whose flag is name.
func configSetting(name string) (Setting, bool) {
	for _, s := range Settings() {
		if s.Flag == name {
			return s, true
		}
	}
	return Setting{}, false
}

// typeName names the kind of value field f holds; it panics on a kind Load
// cannot set.
func typeName(f reflect.StructField) string {
	switch reflect.Zero(f.Type).Interface().(type) {
	case string:
		return "string"
	case int:
		return "integer"
	case bool:
		return "boolean"
	case time.Duration:
		return "duration"
	case ByteSize:
		return "size"
	case Number: // issue 16: prices
		return "number"
	case []DataMapping:
		return "SRC=DST list"
	case []string:
		if typ := f.Tag.Get("type"); typ != "" {
			return typ
		}
		return "glob list"
	}
	panic(fmt.Sprintf("config: field %s has type %s, which Load cannot set", f.Name, f.Type))
}

// isList reports whether s takes a list of values.
func (s Setting) isList() bool { return strings.HasSuffix(s.Type, " list") }

// splits reports whether one value of list setting s may hold several
// elements separated by commas; a KEY=VALUE's value may hold a comma, so
// each of its flags is one element.
func (s Setting) splits() bool { return s.Type != "KEY=VALUE list" && s.Type != "argument list" }

// itemName is what one element of list setting s is called in messages:
// SRC=DST, a glob, a URL, a name or KEY=VALUE.
func (s Setting) itemName() string {
	switch s.Type {
	case "glob list":
		return "a glob"
	case "URL list":
		return "a URL"
	case "name list":
		return "a name"
	case "KEY=VALUE list":
		return "KEY=VALUE"
	case "argument list": // issue 16: command
		return "a word"
	}
	return "SRC=DST"
}

// Origins records where each setting of a settings struct came from. Each
// settings struct embeds it once (Config does, and a struct that embeds
// Config shares Config's); Load fills it.
type Origins struct {
	byFlag map[string]origin
}

// origins gives Load and Validate the Origins of any settings struct.
func (o *Origins) origins() *Origins { return o }

// holder is a pointer to a settings struct.
type holder interface{ origins() *Origins }

// Origin says where the value of the setting with the given flag name came
// from. A platform-aware default (the checkpoint directory under RunPod's
// /workspace, say) may replace a value whose Source is SourceDefault. The
// Origin of an unknown name, or of a struct not filled by Load, is
// SourceDefault.
func (o Origins) Origin(flagName string) Origin {
	if got, ok := o.byFlag[flagName]; ok {
		return got.Origin
	}
	return Origin{Source: SourceDefault, Key: "--" + flagName}
}
