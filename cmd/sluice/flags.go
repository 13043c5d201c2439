package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// command is one subcommand's flags plus the layering of environment and
// config file under them: a flag given on the command line wins, then
// SLUICE_<FLAG>, then the file's <flag> key (dashes become underscores in
// both).
type command struct {
	name   string
	fs     *flag.FlagSet
	stderr io.Writer

	config    string
	logLevel  string
	logFormat string
	pprof     string
	verbose   bool

	// extraKeys are file keys that are not flags (lists such as tunnels).
	extraKeys []string
	// file holds the parsed config file, for commands that read lists from it.
	file map[string]any
}

func newCommand(name, synopsis string, stderr io.Writer) *command {
	c := &command{name: name, fs: flag.NewFlagSet(name, flag.ContinueOnError), stderr: stderr}
	c.fs.SetOutput(stderr)
	c.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice %s\n\nFlags (each also SLUICE_<NAME> in the environment, or <name> in the -c file):\n", synopsis)
		c.fs.PrintDefaults()
	}
	c.fs.StringVar(&c.config, "c", "", "YAML config `file` (keys named like the flags, - written _)")
	c.fs.StringVar(&c.config, "config", "", "same as -c")
	c.fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	c.fs.StringVar(&c.logFormat, "log-format", "text", "log `format`: text or json")
	c.fs.StringVar(&c.pprof, "pprof", "", "serve Go profiling endpoints (/debug/pprof/) on this `host:port`, e.g. 127.0.0.1:6060 (off when empty)")
	return c
}

// given reports whether the flag was set on the command line, in the
// environment or in the config file, rather than left at its default.
func (c *command) given(name string) bool {
	set := false
	c.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// envName is the environment variable standing for a flag.
func envName(flagName string) string {
	return "SLUICE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// fileKey is the config file key standing for a flag.
func fileKey(flagName string) string { return strings.ReplaceAll(flagName, "-", "_") }

// parse parses args (flags may come before or after positional arguments),
// then fills every flag not given on the command line from the environment
// and the config file. It returns the positional arguments.
func (c *command) parse(args []string) ([]string, error) {
	var positional []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelpShown
			}
			return nil, usageError{fmt.Errorf("%s: %w (run sluice %s -h)", c.name, err, c.name)}
		}
		args = c.fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["c"] || set["config"] {
		set["c"], set["config"] = true, true
	} else if v := os.Getenv("SLUICE_CONFIG"); v != "" {
		c.config = v
	}
	if c.config != "" {
		if err := c.loadFile(); err != nil {
			return nil, err
		}
	}
	var err error
	c.fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] || f.Name == "c" || f.Name == "config" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok && v != "" {
			if e := c.fs.Set(f.Name, v); e != nil {
				err = usagef("%s=%q: %v", envName(f.Name), v, e)
			}
			return
		}
		if v, ok := c.file[fileKey(f.Name)]; ok {
			if e := setFromFile(c.fs, f.Name, v); e != nil {
				err = usagef("%s: key %s: %v", c.config, fileKey(f.Name), e)
			}
		}
	})
	return positional, err
}

func setFromFile(fs *flag.FlagSet, name string, v any) error {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		// Repeatable flags (token) accept a list.
		for _, item := range v {
			if err := fs.Set(name, fmt.Sprint(item)); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		return fmt.Errorf("expected a single value, got a mapping")
	default:
		return fs.Set(name, fmt.Sprint(v))
	}
}

// loadFile reads the YAML config file and rejects keys that mean nothing, so
// a typo does not silently fall back to a default.
func (c *command) loadFile() error {
	data, err := os.ReadFile(c.config)
	if err != nil {
		return usagef("reading config file: %v", err)
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return usagef("config file %s is not valid YAML: %v", c.config, err)
	}
	valid := slices.Clone(c.extraKeys)
	c.fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "c" && f.Name != "config" {
			valid = append(valid, fileKey(f.Name))
		}
	})
	for k := range m {
		if !slices.Contains(valid, k) {
			slices.Sort(valid)
			return usagef("config file %s: unknown key %q; valid keys for sluice %s: %s", c.config, k, c.name, strings.Join(valid, ", "))
		}
	}
	c.file = m
	return nil
}

// logger builds the slog logger the flags ask for, writing to stderr.
func (c *command) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", c.logLevel)
	}
	if c.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(c.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: use text or json", c.logFormat)
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}
