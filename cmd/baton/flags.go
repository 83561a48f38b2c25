package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/batonrun/baton/agent/config"
)

// newFlagSet returns a flag set for one command that reports errors to the
// caller instead of exiting.
func newFlagSet(name string, stderr io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: baton %s\n\nFlags (each also read from BATON_<FLAG>, e.g. --part-size from BATON_PART_SIZE):\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// envName is the environment variable that sets a flag: BATON_ and the flag's
// name in upper case with dashes as underscores.
func envName(flagName string) string {
	return "BATON_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envNamed is a flag value read from an environment variable of its own
// instead of the one envName derives, for the few flags whose variable is
// fixed elsewhere: --run is BATON_RUN_ID, the name the agent hands the
// trainer.
type envNamed struct {
	flag.Value
	name string
}

// String is safe on the zero value, which flag.PrintDefaults creates.
func (v *envNamed) String() string {
	if v == nil || v.Value == nil {
		return ""
	}
	return v.Value.String()
}

// setEnvName makes the flag name of fs read from the variable env instead
// of envName(name), and says so in its usage text. It panics if the flag is
// not defined: that is a programming error.
func setEnvName(fs *flag.FlagSet, name, env string) {
	f := fs.Lookup(name)
	f.Value = &envNamed{Value: f.Value, name: env}
	f.Usage += " (env " + env + ")"
}

// flagEnv is the environment variable that sets flag f.
func flagEnv(f *flag.Flag) string {
	if v, ok := f.Value.(*envNamed); ok {
		return v.name
	}
	return envName(f.Name)
}

// parse parses args, then fills every flag not given on the command line from
// its BATON_* variable (see flagEnv; setEnvName overrides the name). Flags win over the environment. A bad value names the
// flag or the variable it came from.
func parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err} // flag.ErrHelp too: -h exits 2 after the usage text
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := flagEnv(f)
		if v := getenv(name); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = usagef("%s=%q: %v", name, v, serr)
			}
		}
	})
	return err
}

// byteSize is a flag value of bytes with an optional binary unit (16MiB,
// 16M, 512KiB, 1GiB, 1048576), read and written as baton run's settings are.
type byteSize config.ByteSize

// String prints the size so that it reads back with Set.
func (b *byteSize) String() string { return config.ByteSize(*b).String() }

// Set reads a size as config.ParseByteSize does.
func (b *byteSize) Set(s string) error {
	v, err := config.ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(v)
	return nil
}
