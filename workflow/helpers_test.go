package workflow

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/rogpeppe/go-internal/txtar"
)

var update = flag.Bool("update", false, "rewrite golden files and the want lines of testdata/malformed")

// testEngines stands for the engine names the callers pass from the agents
// registry (agents.WorkflowEngines), which the model does not import; the
// CLI's TestMalformed runs the engine cases through the real wiring.
var testEngines = []string{"auto", "claude", "codex", "gemini", "opencode", "shell", "replay"}

// golden compares got with testdata/<name>, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// archiveFS turns a txtar archive into a file system, leaving out the
// files that are not repository files (want).
func archiveFS(a *txtar.Archive, skip ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
next:
	for _, f := range a.Files {
		for _, s := range skip {
			if f.Name == s {
				continue next
			}
		}
		fsys[f.Name] = &fstest.MapFile{Data: f.Data}
	}
	return fsys
}

// jsonEqual compares two values by their JSON encoding, which covers the
// exported fields and treats nil and empty alike only where JSON does.
func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// dumpJSON renders v for golden files.
func dumpJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
