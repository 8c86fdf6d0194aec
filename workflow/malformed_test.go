package workflow

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// TestMalformed runs every testdata/malformed case through LoadProject and
// compares the first error line with the case's want file. Plan cases have
// no load error; their first plan error is compared instead. The CLI tests
// run the same cases through `codemachine validate`.
func TestMalformed(t *testing.T) {
	files, err := filepath.Glob("testdata/malformed/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 27 {
		t.Fatalf("found %d cases, want at least 27", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) {
			a, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			wantIdx := slices.IndexFunc(a.Files, func(f txtar.File) bool { return f.Name == "want" })
			if wantIdx < 0 {
				t.Fatal("no want file")
			}
			got := firstError(t, a)
			if *update {
				a.Files[wantIdx].Data = []byte(got + "\n")
				if err := os.WriteFile(file, txtar.Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := string(bytes.TrimSpace(a.Files[wantIdx].Data))
			if got != want {
				t.Errorf("first error:\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func firstError(t *testing.T, a *txtar.Archive) string {
	t.Helper()
	p, err := LoadProject(archiveFS(a, "want"), testEngines)
	if err == nil {
		var plans []string
		for path := range p.PlanErrs {
			plans = append(plans, path)
		}
		slices.Sort(plans)
		if len(plans) == 0 {
			t.Fatal("the case loads without errors")
		}
		err = p.PlanErrs[plans[0]]
	}
	if strings.Contains(err.Error(), "goroutine ") || strings.Contains(err.Error(), "template: ") {
		t.Errorf("error leaks internals: %v", err)
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	return first
}
