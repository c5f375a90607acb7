package codezip

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzExtract builds zips from a line-based description ("F name", "D name/",
// "L name target") and checks the safety property: whenever Inspect accepts
// a zip, Extract agrees and nothing in the unpacked tree — no path, no link —
// resolves outside it, as judged by the kernel through os.Root and by
// filepath.EvalSymlinks.
func FuzzExtract(f *testing.F) {
	for _, seed := range []string{
		"F a\nL b a",
		"L a .\nF a/x",
		"L b .\nL a b/..",
		"D d/\nL d/l ../d\nF d/l/x",
		"L a b\nL b a",
		"L x missing/../../y",
		"L p q/r\nF p/f\nL q/r/s ../..",
		"D a/\nL a/b ..\nL c a/b/a/b/..",
		"L s .\nL s2 s/s/s\nF s2/s/f",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, desc string) {
		var ents []ent
		for line := range strings.SplitSeq(desc, "\n") {
			kind, rest, _ := strings.Cut(line, " ")
			name, target, _ := strings.Cut(rest, " ")
			switch kind {
			case "F":
				ents = append(ents, file(name, "x", 0o755))
			case "D":
				ents = append(ents, dir(name))
			case "L":
				ents = append(ents, link(name, target))
			}
		}
		if len(ents) == 0 || len(ents) > 50 {
			return
		}
		for _, e := range ents {
			if strings.HasSuffix(e.name, "/") != e.mode.IsDir() {
				return // the zip writer cannot write such entries
			}
		}
		zb := mkzip(t, ents...)
		lim := Limits{MaxZipped: 1 << 20, MaxUnzipped: 1 << 20, MaxFiles: 1000}
		_, ierr := Inspect(zb, lim)
		parent := t.TempDir()
		dest := filepath.Join(parent, "in", "code")
		os.Mkdir(filepath.Dir(dest), 0o755)
		os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o644)
		info, xerr := Extract(zb, dest, lim)
		if (ierr == nil) != (xerr == nil) {
			t.Fatalf("Inspect: %v, Extract: %v", ierr, xerr)
		}
		if xerr != nil {
			var ze *Error
			if !errors.As(xerr, &ze) {
				t.Fatalf("not a refusal: %v", xerr)
			}
			if got := listDir(t, filepath.Dir(dest)); len(got) != 0 {
				t.Fatalf("left %v behind", got)
			}
			return
		}
		root, err := os.OpenRoot(dest)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		realDest, _ := filepath.EvalSymlinks(dest)
		check := func(rel string) {
			if _, err := root.Stat(rel); err != nil && strings.Contains(err.Error(), "path escapes") {
				t.Fatalf("%s escapes (os.Root): %v", rel, err)
			}
			if r, err := filepath.EvalSymlinks(filepath.Join(dest, rel)); err == nil &&
				r != realDest && !strings.HasPrefix(r, realDest+string(filepath.Separator)) {
				t.Fatalf("%s resolves to %s, outside %s", rel, r, realDest)
			}
		}
		filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dest, p)
			check(rel)
			return nil
		})
		for _, e := range info.Entries {
			check(e.Name)
			if _, ok := info.Stat(e.Name); !ok && e.Mode&fs.ModeSymlink == 0 {
				t.Fatalf("Stat(%q) not found", e.Name)
			}
		}
	})
}
