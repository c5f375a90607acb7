package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildEtc builds a sandbox /etc from a made-up host /etc: only the
// allowed entries that the sandbox user could read are copied, symlinks
// into /usr stay symlinks, others are resolved, and the identity files are
// Owl's own.
func TestBuildEtc(t *testing.T) {
	host := t.TempDir()
	write := func(name, body string, mode os.FileMode) {
		p := filepath.Join(host, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("shadow", "root:$6$secret", 0o640)
	write("passwd", "root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n", 0o644)
	write("npmrc", "//registry/:_authToken=secret", 0o644)
	write("ssl/certs/ca-certificates.crt", "CERTS", 0o644)
	write("ssl/private/key.pem", "KEY", 0o600)
	write("ssl/openssl.cnf", "conf", 0o644)
	write("python3.11/sitecustomize.py", "# site", 0o644)
	write("ld.so.cache", "cache", 0o644)
	write("run-resolv.conf", "nameserver 10.0.0.1\n", 0o644)
	os.Chmod(filepath.Join(host, "ssl/private"), 0o710)
	if err := os.Symlink("/usr/share/zoneinfo/Etc/UTC", filepath.Join(host, "localtime")); err != nil {
		t.Fatal(err)
	}
	// An absolute link outside /usr and /etc is resolved (here into the
	// made-up host dir, standing for /run).
	if err := os.Symlink(filepath.Join(host, "run-resolv.conf"), filepath.Join(host, "resolv.conf")); err != nil {
		t.Fatal(err)
	}

	dst := filepath.Join(t.TempDir(), "etc")
	if err := buildEtc(host, dst, 993, 990); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != dst {
			got = append(got, strings.TrimPrefix(p, dst+"/"))
		}
		return nil
	})
	want := "group hostname hosts ld.so.cache localtime nsswitch.conf passwd python3.11 python3.11/sitecustomize.py resolv.conf ssl ssl/certs ssl/certs/ca-certificates.crt ssl/openssl.cnf"
	if strings.Join(got, " ") != want {
		t.Errorf("sandbox /etc:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if target, err := os.Readlink(filepath.Join(dst, "localtime")); err != nil || target != "/usr/share/zoneinfo/Etc/UTC" {
		t.Errorf("localtime -> %q, %v", target, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "resolv.conf")); string(b) != "nameserver 10.0.0.1\n" {
		t.Errorf("resolv.conf %q, want the resolved file's content", b)
	}
	passwd, _ := os.ReadFile(filepath.Join(dst, "passwd"))
	if strings.Contains(string(passwd), "alice") || !strings.Contains(string(passwd), "sbx_user1051:x:993:990:") {
		t.Errorf("passwd:\n%s", passwd)
	}
	for _, p := range []string{"", "ssl", "ssl/certs"} {
		if fi, err := os.Stat(filepath.Join(dst, p)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("/etc/%s: %v %v, want mode 0755", p, fi.Mode(), err)
		}
	}

	// Rebuilding replaces it (a host change reaches the next Owl start).
	write("ld.so.cache", "new cache", 0o644)
	if err := buildEtc(host, dst, 993, 990); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "ld.so.cache")); string(b) != "new cache" {
		t.Errorf("after a rebuild ld.so.cache is %q", b)
	}
}
