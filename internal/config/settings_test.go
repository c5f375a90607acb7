package config

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite docs/settings.md's table")

// docs/settings.md lists exactly the table's settings.
func TestSettingsDoc(t *testing.T) {
	const path = "../../docs/settings.md"
	const begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q ... %q markers", path, begin, end)
	}
	want := doc[:i+len(begin)] + SettingsMarkdown() + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date: go test ./internal/config -run TestSettingsDoc -update", path)
}

// Every setting parses what it prints, has a distinct name, and a help.
func TestSettingsTable(t *testing.T) {
	seen := map[string]bool{}
	def := Default()
	for _, s := range Settings {
		if seen[s.Name] || s.Help == "" {
			t.Errorf("%s: duplicate or without help", s.Name)
		}
		seen[s.Name] = true
		c := Default()
		if err := s.Set(&c, s.Get(&def)); err != nil || s.Get(&c) != s.Get(&def) {
			t.Errorf("%s: Set(Get()) = %v, %q; want %q", s.Name, err, s.Get(&c), s.Get(&def))
		}
	}
	if _, ok := Lookup("memory-budget"); !ok {
		t.Error("Lookup misses memory-budget")
	}
	if s, _ := Lookup("max-body-memory"); s.Env() != "OWL_MAX_BODY_MEMORY" {
		t.Errorf("Env of max-body-memory = %s", s.Env())
	}
	env := map[string]string{"OWL_FREEZE_AFTER": "2s", "OWL_MEMORY_OVERCOMMIT": "1.5", "OWL_NETWORK_EGRESS": "false",
		"OWL_CODE_STORAGE_LIMIT": "12345678901", "OWL_SECRET_ACCESS_KEY": "s3cret", "OWL_SYNC_ALWAYS": "true"}
	c := Default()
	if err := c.FromEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.FreezeAfter != 2*time.Second || c.MemoryOvercommit != 1.5 || c.NetworkEgress || c.CodeStorageLimit != 12345678901 || c.SecretAccessKey != "s3cret" || !c.SyncAlways {
		t.Errorf("FromEnv gave %+v", c)
	}
	if err := c.FromEnv(func(k string) string {
		return map[string]string{"OWL_MEMORY_OVERCOMMIT": "lots", "OWL_NETWORK_EGRESS": "maybe"}[k]
	}); err == nil || !strings.Contains(err.Error(), `OWL_MEMORY_OVERCOMMIT="lots": not a number`) ||
		!strings.Contains(err.Error(), `OWL_NETWORK_EGRESS="maybe": not a boolean`) {
		t.Errorf("bad values: %v", err)
	}
}
