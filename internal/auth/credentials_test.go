package auth

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	var (
		akidRE   = regexp.MustCompile(`^AKIA[A-Z0-9]{16}$`)
		secretRE = regexp.MustCompile(`^[A-Za-z0-9+/]{40}$`)
		tokenRE  = regexp.MustCompile(`^owl_[A-Za-z0-9_-]{32,}$`)
	)
	cases := []struct {
		name  string
		first Credentials // env on the first start
		later Credentials // env on the second start
		check func(t *testing.T, first, second Credentials)
	}{
		{
			name: "generated then reloaded",
			check: func(t *testing.T, first, second Credentials) {
				if !akidRE.MatchString(first.AccessKeyID) || !secretRE.MatchString(first.SecretAccessKey) || !tokenRE.MatchString(first.Token) {
					t.Errorf("generated values have the wrong shape: %q, secret of %d chars, token of %d chars",
						first.AccessKeyID, len(first.SecretAccessKey), len(first.Token))
				}
				if second != first {
					t.Error("second start did not reload the stored credentials")
				}
			},
		},
		{
			name:  "env overrides and is stored",
			later: Credentials{AccessKeyID: "AKIAENVENVENVENVENV0", SecretAccessKey: "env-secret"},
			check: func(t *testing.T, first, second Credentials) {
				if second.AccessKeyID != "AKIAENVENVENVENVENV0" || second.SecretAccessKey != "env-secret" {
					t.Errorf("env key pair not used: %q", second.AccessKeyID)
				}
				if second.Token != first.Token {
					t.Error("token not set in env should come from the file")
				}
			},
		},
		{
			name:  "env on first start, generated rest",
			first: Credentials{Token: "owl_from_env"},
			check: func(t *testing.T, first, second Credentials) {
				if first.Token != "owl_from_env" || !akidRE.MatchString(first.AccessKeyID) {
					t.Errorf("got key %q, env token used: %v", first.AccessKeyID, first.Token == "owl_from_env")
				}
				if second != first {
					t.Error("second start without env lost the env token")
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data") // not there yet: LoadOrCreate creates it
			first, err := LoadOrCreate(dir, c.first)
			if err != nil {
				t.Fatal(err)
			}
			second, err := LoadOrCreate(dir, c.later)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, first, second)

			read, err := ReadFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			if read != second {
				t.Error("ReadFile does not return what LoadOrCreate stored")
			}
			assertMode(t, filepath.Join(dir, CredentialsFile), 0o600)
			assertMode(t, dir, 0o700)
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("data directory holds %d entries, want only %s (temp file left behind?)", len(entries), CredentialsFile)
			}
		})
	}
}

func TestLoadOrCreateFileFormat(t *testing.T) {
	dir := t.TempDir()
	c, err := LoadOrCreate(dir, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m["access_key_id"] != c.AccessKeyID || m["secret_access_key"] != c.SecretAccessKey || m["token"] != c.Token {
		t.Errorf("file keys are not access_key_id/secret_access_key/token: %v", keys(m))
	}

	// A loosened file is tightened again on the next start.
	path := filepath.Join(dir, CredentialsFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir, Credentials{}); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir, Credentials{}); err == nil {
		t.Error("a corrupt file must be an error, not silently replaced")
	}
}

func TestReadFileMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadFile(dir)
	if err == nil || !strings.Contains(err.Error(), "no credentials file") {
		t.Fatalf("err = %v, want a clear missing-file error", err)
	}
	if err := os.WriteFile(filepath.Join(dir, CredentialsFile), []byte(`{"token":"owl_x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(dir); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("err = %v, want an incomplete-file error", err)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", filepath.Base(path), got, want)
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
