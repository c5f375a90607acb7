package cli

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/config"
)

// settingFlag adapts a config.Setting to a pflag.Value, so that flags parse
// with the same parser as the environment (config.Setting.Set).
type settingFlag struct {
	s   config.Setting
	cfg *config.Config
}

func (f settingFlag) String() string     { return f.s.Get(f.cfg) }
func (f settingFlag) Set(v string) error { return f.s.Set(f.cfg, v) }
func (f settingFlag) Type() string {
	switch f.s.Field(f.cfg).(type) {
	case *int, *int64:
		return "int"
	case *float64:
		return "float"
	case *bool:
		return "bool"
	case *time.Duration:
		return "duration"
	case *[]string:
		return "strings"
	}
	return "string"
}

// bindSetting adds s's flag to cmd, writing into cfg; its help names the
// environment variable too.
func bindSetting(cmd *cobra.Command, s config.Setting, cfg *config.Config) {
	f := cmd.Flags().VarPF(settingFlag{s, cfg}, s.Name, "", s.Help+" (env "+s.Env()+")")
	if _, ok := s.Field(cfg).(*bool); ok {
		f.NoOptDefVal = "true" // --network-egress alone means true
	}
}

// serverConfig is the server configuration of one command: defaults, then
// the OWL_* environment, then the flags the user set (flags win).
type serverConfig struct {
	flags     config.Config // what the bound flags write into
	names     []string      // the flags bound to this command
	getenv    func(string) string
	fromFlags func(name string) bool // whether the user set the flag; the command's by default
}

// bindServerConfig binds the named settings' flags (every setting that has
// one when none is named; config.Settings) to cmd. serve and doctor bind
// them all (so that doctor checks exactly what serve would use),
// credentials only --addr and --data. Resolve gives the configuration.
func bindServerConfig(cmd *cobra.Command, names ...string) *serverConfig {
	sc := &serverConfig{flags: config.Default(), getenv: os.Getenv}
	for _, s := range config.Settings {
		if s.EnvOnly || len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		bindSetting(cmd, s, &sc.flags)
		sc.names = append(sc.names, s.Name)
	}
	sc.fromFlags = func(name string) bool { return cmd.Flags().Changed(name) }
	return sc
}

// resolve returns the configuration: defaults, the environment on top, and
// the flags the user set on top of that. Bad environment values are errors
// naming the variable. It does not Validate.
func (sc *serverConfig) resolve() (config.Config, error) {
	cfg := config.Default()
	if err := cfg.FromEnv(sc.getenv); err != nil {
		return cfg, err
	}
	for _, s := range config.Settings {
		if slices.Contains(sc.names, s.Name) && sc.fromFlags(s.Name) {
			if list, ok := s.Field(&cfg).(*[]string); ok {
				*list = nil // the flags replace the environment's list
			}
			if err := s.Set(&cfg, s.Get(&sc.flags)); err != nil {
				return cfg, fmt.Errorf("--%s: %w", s.Name, err) // parsed once already: not expected
			}
		}
	}
	return cfg, nil
}
