package sandbox

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// imageRoot makes a prepared image root (as the images package leaves
// one) holding the probe at /probe and a marker in /var/task.
func imageRoot(t *testing.T) string {
	t.Helper()
	probe, err := os.ReadFile(filepath.Join(probeCodeDir(t), "probe"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	os.Chmod(root, 0o755)
	for _, d := range append(imageMountDirs[:], "var/task") {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{"probe": probe, "var/task/marker": []byte("m"), "etc/image-only": []byte("i")}
	for _, f := range imageEtcFiles {
		files["etc/"+f] = []byte("the image's own\n")
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestImageRoot: a sandbox whose Spec.Image is a prepared image root sees
// that tree as its read-only root (not the host's /usr), Owl's passwd over
// the image's, the image's other /etc files, its own /tmp; and an image
// whose mount points are symlinks is refused before anything is mounted
// through them.
func TestImageRoot(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()

	t.Run("runs", func(t *testing.T) {
		root := imageRoot(t)
		spec := testSpec(t, "", "facts")
		spec.Image, spec.Argv, spec.WorkDir = root, []string{"/probe", "facts"}, "/var/task"
		sb := create(t, m, spec)
		var f Facts
		out := readOutput(t, sb)
		if err := json.Unmarshal([]byte(out), &f); err != nil {
			t.Fatalf("decoding probe output: %v\n%s", err, out)
		}
		waitDone(t, sb)
		if !slices.Contains(f.RootEntries, "probe") || slices.Contains(f.RootEntries, "usr") {
			t.Errorf("/ holds %v: want the image's tree, not the host's /usr", f.RootEntries)
		}
		if f.Cwd != "/var/task" || f.UID != DefaultUID {
			t.Errorf("cwd %q uid %d", f.Cwd, f.UID)
		}
		for dir, want := range map[string]string{"/": "read-only", "/etc": "read-only", "/var/task": "read-only", "/tmp": ""} {
			if got := f.WriteErrs[dir]; (want == "") != (got == "") || !strings.Contains(got, want) {
				t.Errorf("writing in %s: %q, want %q", dir, got, want)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); string(b) != "the image's own\n" {
			t.Errorf("the image's passwd on the host changed: %q", b)
		}
		assertNoMounts(t, root)
	})

	t.Run("hardening", func(t *testing.T) {
		spec := testSpec(t, "", "hardening")
		spec.Image, spec.Argv = imageRoot(t), []string{"/probe", "hardening"}
		sb := create(t, m, spec)
		var h Hardening
		out := readOutput(t, sb)
		if err := json.Unmarshal([]byte(out), &h); err != nil {
			t.Fatalf("decoding probe output: %v\n%s", err, out)
		}
		if !strings.Contains(h.Passwd, sandboxUser) || !slices.Contains(h.Etc, "image-only") {
			t.Errorf("passwd %q, /etc %v: want Owl's passwd and the image's other files", h.Passwd, h.Etc)
		}
		if h.Status["Seccomp"] != "2" || h.Status["NoNewPrivs"] != "1" {
			t.Errorf("status %v: want seccomp filtering and no_new_privs", h.Status)
		}
	})

	for _, c := range []struct{ name, link, want string }{
		{"symlinked /etc", "etc", "/etc"},
		{"symlinked /tmp", "tmp", "/tmp"},
		{"symlinked /etc/passwd", "etc/passwd", "/etc/passwd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := imageRoot(t)
			target := t.TempDir()
			os.WriteFile(filepath.Join(target, "passwd"), []byte("host"), 0o644)
			os.RemoveAll(filepath.Join(root, c.link))
			if err := os.Symlink(target, filepath.Join(root, c.link)); err != nil {
				t.Fatal(err)
			}
			spec := testSpec(t, "", "exit", "0")
			spec.Image, spec.Argv = root, []string{"/probe", "exit", "0"}
			_, err := m.Create(ctx, spec)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "not a plain") {
				t.Fatalf("Create with %s a symlink: %v, want a refusal naming %s", c.link, err, c.want)
			}
			if b, _ := os.ReadFile(filepath.Join(target, "passwd")); string(b) != "host" {
				t.Errorf("the symlink's target was written: %q", b)
			}
			assertNoMounts(t, target)
		})
	}
}
