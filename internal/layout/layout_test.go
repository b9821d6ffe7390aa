package layout

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	maxFileLines = 700
	maxExported  = 80
)

// root is the module's root: this package sits two folders below it.
const root = "../.."

// goFiles walks the module's non-test Go files, outside testdata and
// hidden folders.
func goFiles(t *testing.T, visit func(path string)) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			visit(path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNoFileOverMaxLines(t *testing.T) {
	goFiles(t, func(path string) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		lines := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		for sc.Scan() {
			lines++
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if lines > maxFileLines {
			t.Errorf("%s has %d lines (at most %d): split it by concern", rel(path), lines, maxFileLines)
		}
	})
}

// TestExportedNamesPerPackage counts the top-level exported names (types,
// functions, constants, variables; not methods or fields) of each library
// package. Commands and tasks/store/internal (the shared SQL of both stores)
// are exempt.
func TestExportedNamesPerPackage(t *testing.T) {
	counts := map[string]int{}
	fset := token.NewFileSet()
	goFiles(t, func(path string) {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		dir := rel(filepath.Dir(path))
		if f.Name.Name == "main" || strings.HasPrefix(dir, "tasks/store/internal") {
			return
		}
		counts[dir] += exported(f)
	})
	if len(counts) == 0 {
		t.Fatal("no package found: is the module root right?")
	}
	for dir, n := range counts {
		if n > maxExported {
			t.Errorf("package %s exports %d names (at most %d): split it by feature", dir, n, maxExported)
		}
	}
}

func exported(f *ast.File) int {
	n := 0
	for _, decl := range f.Decls {
		switch decl := decl.(type) {
		case *ast.FuncDecl:
			if decl.Recv == nil && decl.Name.IsExported() {
				n++
			}
		case *ast.GenDecl:
			for _, spec := range decl.Specs {
				switch spec := spec.(type) {
				case *ast.TypeSpec:
					if spec.Name.IsExported() {
						n++
					}
				case *ast.ValueSpec:
					for _, name := range spec.Names {
						if name.IsExported() {
							n++
						}
					}
				}
			}
		}
	}
	return n
}

func rel(path string) string {
	r, err := filepath.Rel(root, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(r)
}
