// Package internal_test checks the shape of the code base: every package
// says what it owns, and dependencies point one way (docs/architecture.md).
package internal_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "github.com/owl-project/owl/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if len(p.GoFiles) > 0 && strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment saying what it owns", p.ImportPath)
		}
	}
}

// forbidden lists, for the packages at the bottom of the stack, what they
// must never import: the sandbox and the Runtime API know nothing of NATS,
// the registry or the HTTP API.
var forbidden = map[string][]string{
	"internal/sandbox":    {"nats-io", "internal/registry", "internal/lambdaapi", "internal/worker", "internal/server"},
	"internal/runtimeapi": {"nats-io", "internal/registry", "internal/lambdaapi", "internal/worker", "internal/server", "internal/sandbox"},
	"internal/codezip":    {"nats-io", "internal/"},
	"internal/images":     {"nats-io", "internal/registry", "internal/lambdaapi", "internal/worker", "internal/server", "internal/sandbox"},
	"internal/auth":       {"nats-io", "internal/registry", "internal/worker", "internal/lambdaapi", "internal/server", "internal/sandbox"},
	"internal/console":    {"nats-io", "internal/registry", "internal/worker", "internal/lambdaapi", "internal/server", "internal/sandbox"},
	"internal/lambdaerr":  {"nats-io", "internal/"},
	"internal/leases":     {"internal/"},
	"internal/registry":   {"internal/worker", "internal/lambdaapi", "internal/server", "internal/sandbox"},
	"internal/worker":     {"internal/lambdaapi", "internal/server"},
	"internal/lambdaapi":  {"internal/server", "internal/sandbox", "internal/worker"},
	"internal/client":     {"internal/server", "internal/worker", "internal/registry"},
	"internal/lambdawire": {"nats-io", "internal/"},
	"internal/events":     {"internal/worker", "internal/lambdaapi", "internal/server", "internal/sandbox"},
	"internal/triggers":   {"internal/worker", "internal/lambdaapi", "internal/server", "internal/sandbox"},
	"internal/schedule":   {"nats-io", "internal/"},
	"internal/metrics":    {"nats-io", "internal/"},
	"internal/routes":     {"internal/worker", "internal/lambdaapi", "internal/server", "internal/sandbox"},
	"internal/sources":    {"internal/worker", "internal/lambdaapi", "internal/server", "internal/sandbox"},
	"internal/usage":      {"internal/worker", "internal/lambdaapi", "internal/server", "internal/sandbox", "internal/registry"},
	"internal/tracing":    {"nats-io", "internal/"},
	"internal/cluster":    {"internal/worker", "internal/lambdaapi", "internal/server", "internal/sandbox"},
	"internal/history":    {"internal/worker", "internal/lambdaapi", "internal/server", "internal/sandbox", "internal/registry"},
}

func TestDependenciesPointOneWay(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, imp := range p.Imports {
			if strings.HasSuffix(imp, "/internal/testkit") || strings.Contains(imp, "/internal/testkit/") {
				t.Errorf("%s imports %s outside its tests: testkit is for tests only", p.ImportPath, imp)
			}
		}
		for suffix, bad := range forbidden {
			if !strings.HasSuffix(p.ImportPath, "/"+suffix) {
				continue
			}
			for _, imp := range p.Imports {
				for _, b := range bad {
					if strings.Contains(imp, b) {
						t.Errorf("%s imports %s: it must not depend on %q", p.ImportPath, imp, b)
					}
				}
			}
		}
	}
}

// maxFuncLines is the longest a function may be without its doc comment
// saying why ("It is long because ...").
const maxFuncLines = 80

// TestLongFunctionsSayWhy: a function over maxFuncLines lines is usually
// several functions; one that is not says why in its doc comment.
func TestLongFunctionsSayWhy(t *testing.T) {
	fset := token.NewFileSet()
	for _, root := range []string{".", "../cmd"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				return err
			}
			for _, decl := range f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
				if n > maxFuncLines && (fd.Doc == nil || !strings.Contains(fd.Doc.Text(), "long because")) {
					t.Errorf("%s: %s is %d lines and its doc comment does not say why (\"It is long because ...\"); split it or say why",
						fset.Position(fd.Pos()), fd.Name.Name, n)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
