package sandbox

import (
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	valid := Spec{ID: "f1-abc_1.2", CodeDir: "/code", Argv: []string{"/var/task/bootstrap"}, MemoryMB: 128}
	if err := valid.withDefaults().validate(); err != nil {
		t.Fatalf("valid spec rejected: %v", err)
	}
	d := valid.withDefaults()
	if d.UID != DefaultUID || d.GID != DefaultGID || d.PidsMax != DefaultPidsMax || d.TmpMB != DefaultTmpMB || d.RuntimeAPIAddr != DefaultRuntimeAPIAddr {
		t.Errorf("defaults not applied: %+v", d)
	}
	tests := []struct {
		name   string
		modify func(*Spec)
		want   string
	}{
		{"empty ID", func(s *Spec) { s.ID = "" }, "ID"},
		{"ID with slash", func(s *Spec) { s.ID = "a/b" }, "ID"},
		{"ID dotdot", func(s *Spec) { s.ID = ".." }, "ID"},
		{"relative code dir", func(s *Spec) { s.CodeDir = "code" }, "CodeDir"},
		{"no argv", func(s *Spec) { s.Argv = nil }, "Argv"},
		{"relative entrypoint", func(s *Spec) { s.Argv = []string{"bootstrap"} }, "Argv"},
		{"NUL in argv", func(s *Spec) { s.Argv = []string{"/x", "a\x00b"} }, "Argv"},
		{"env without =", func(s *Spec) { s.Env = []string{"FOO"} }, "Env"},
		{"env empty key", func(s *Spec) { s.Env = []string{"=x"} }, "Env"},
		{"no memory", func(s *Spec) { s.MemoryMB = 0 }, "MemoryMB"},
		{"tiny memory", func(s *Spec) { s.MemoryMB = 8 }, "MemoryMB"},
		{"huge tmp", func(s *Spec) { s.TmpMB = MaxTmpMB + 1 }, "TmpMB"},
		{"negative tmp", func(s *Spec) { s.TmpMB = -1 }, "TmpMB"},
		{"negative pids", func(s *Spec) { s.PidsMax = -1 }, "PidsMax"},
		{"negative uid", func(s *Spec) { s.UID = -1 }, "UID"},
		{"hostname addr", func(s *Spec) { s.RuntimeAPIAddr = "localhost:9001" }, "RuntimeAPIAddr"},
		{"port zero", func(s *Spec) { s.RuntimeAPIAddr = "127.0.0.1:0" }, "RuntimeAPIAddr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid
			s.Argv = append([]string(nil), valid.Argv...)
			tt.modify(&s)
			err := s.withDefaults().validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Instance: "", RootDir: "/data"},
		{Instance: "a b", RootDir: "/data"},
		{Instance: "x", RootDir: "relative"},
	} {
		if err := c.validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (Config{Instance: "abc123", RootDir: "/data/sandboxes"}).validate(); err != nil {
		t.Error(err)
	}
}

func TestCPUWeights(t *testing.T) {
	for _, tt := range []struct {
		mb             int
		shares, weight uint64
	}{
		{128, 74, 7},
		{1769, 1024, 100},
		{3538, 2048, 200},
		{16, 9, 1},
		{10240, 5927, 579},
	} {
		if got := cpuShares(tt.mb); got != tt.shares {
			t.Errorf("cpuShares(%d) = %d, want %d", tt.mb, got, tt.shares)
		}
		if got := cpuWeight(tt.mb); got != tt.weight {
			t.Errorf("cpuWeight(%d) = %d, want %d", tt.mb, got, tt.weight)
		}
	}
}
