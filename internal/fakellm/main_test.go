package fakellm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codemachine/codemachine/internal/testenv"
)

// TestMain makes the test binary double as the fakellm command for the
// testscript tests (testdata/testscript/*.txtar).
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"fakellm": Main})
}

func TestRunUsage(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("turns:\n  - text: hi\n"), 0o644)
	os.WriteFile(bad, []byte("turns:\n  - txt: hi\n"), 0o644)
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{nil, 2, "", "usage:"},
		{[]string{"help"}, 0, "usage:", ""},
		{[]string{"frob"}, 2, "", `fakellm: unknown command "frob"`},
		{[]string{"check", good}, 0, "ok\n", ""},
		{[]string{"check", bad}, 2, "", "fakellm: " + bad + `:2:5: unknown key "txt" (did you mean "text"?)` + "\n"},
		{[]string{"check"}, 2, "", "usage:"},
		{[]string{"serve"}, 2, "", "fakellm serve: want one script file, got 0"},
		{[]string{"serve", good, good}, 2, "", "fakellm serve: want one script file, got 2"},
		{[]string{"serve", "-nope", good}, 2, "", "fakellm serve: flag provided but not defined: -nope"},
		{[]string{"serve", bad}, 2, "", "fakellm: " + bad + ":2:5:"},
		{[]string{"serve", filepath.Join(dir, "missing.yaml")}, 2, "", "no such file"},
		{[]string{"serve", "-addr", "256.0.0.1:1", good}, 1, "", "listen on 256.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) || (tt.stdout == "" && stdout.Len() > 0) {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) || (tt.stderr == "" && stderr.Len() > 0) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
		})
	}
}

// TestRunServe runs "serve SCRIPT -addr-file F -requests L" (flags after
// the script), talks to it, stops it, and reads the request log.
func TestRunServe(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.json")
	os.WriteFile(script, []byte(`{"turns":[{"text":"served"}]}`), 0o644)
	addrFile := filepath.Join(dir, "url")
	logFile := filepath.Join(dir, "requests.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	codec := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		codec <- Run(ctx, []string{"serve", script, "-addr-file", addrFile, "-requests", logFile}, io.Discard, &stderr)
	}()
	url := waitFile(t, addrFile)
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.HasSuffix(url, "\n") {
		t.Fatalf("addr file holds %q", url)
	}
	e := post(t, url, "/v1/chat/completions", chatBody)
	if d := decode(t, APIChat, false, e); d.text != "served" {
		t.Errorf("answer %q", d.text)
	}
	cancel()
	select {
	case code := <-codec:
		if code != 0 {
			t.Errorf("serve exited %d: %s", code, stderr.String())
		}
	case <-time.After(testenv.Patience()):
		t.Fatal("serve did not stop when its context ended")
	}
	if _, err := http.Get(url); err == nil {
		t.Error("the server still answers after serve returned")
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(data), &r); err != nil {
		t.Fatalf("request log %q: %v", data, err)
	}
	if r["api"] != "chat" || r["turn"] != 0.0 || r["status"] != 200.0 || r["body"] != nil {
		t.Errorf("request log entry %v", r)
	}
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(testenv.Patience())
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil {
			return string(data)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
	return ""
}

// TestScript runs testdata/testscript/*.txtar: fakellm used as a
// testscript command, the way CLI acceptance tests start it.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/testscript",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitfile FILE: wait until a background command wrote FILE.
			"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 || neg {
					ts.Fatalf("usage: waitfile FILE")
				}
				deadline := time.Now().Add(testenv.Patience())
				for {
					if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("%s never appeared", args[0])
					}
					time.Sleep(10 * time.Millisecond)
				}
			},
			// post URLFILE PATH BODY: POST BODY to the URL read from
			// URLFILE plus PATH; prints the status and the answer.
			"post": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 3 || neg {
					ts.Fatalf("usage: post URLFILE PATH BODY")
				}
				url := strings.TrimSpace(ts.ReadFile(args[0]))
				resp, err := http.Post(url+args[1], "application/json", strings.NewReader(args[2]))
				ts.Check(err)
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				ts.Check(err)
				fmt.Fprintf(ts.Stdout(), "%d\n%s", resp.StatusCode, body)
			},
		},
	})
}
