package githooks

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestScriptGolden(t *testing.T) {
	got := Script("post-checkout", "/opt/code machine/bin/codemachine", []string{"--engine", "replay", "--model", "it's"})
	golden := filepath.Join("testdata", "post-checkout.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("script differs from %s (go test ./hooks -update):\n%s", golden, got)
	}
	// It is a valid shell script.
	p := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(p, got, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v\n%s", err, out)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "plain",
		"/usr/bin/x":   "/usr/bin/x",
		"":             "''",
		"with space":   "'with space'",
		"it's":         `'it'\''s'`,
		"$HOME":        "'$HOME'",
		"--engine=a,b": "--engine=a,b",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// hookFile is a file in a hooks directory: content, mode, symlink target.
type hookFile struct {
	data   []byte
	mode   os.FileMode
	target string
}

func snapshot(t *testing.T, dir string) map[string]hookFile {
	t.Helper()
	out := map[string]hookFile{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		f := hookFile{mode: fi.Mode()}
		if fi.Mode()&os.ModeSymlink != 0 {
			f.target, _ = os.Readlink(p)
		} else {
			f.data, _ = os.ReadFile(p)
		}
		out[e.Name()] = f
	}
	return out
}

func TestInstallUninstallRoundTrip(t *testing.T) {
	dir := t.TempDir()
	// The user's hooks: an executable post-commit, a non-executable
	// post-merge (git ignores it, so do we, but it must come back), a
	// symlinked post-checkout, and an unrelated pre-commit.
	write := func(name, content string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("post-commit", "#!/bin/sh\necho mine\n", 0o750)
	write("post-merge", "#!/bin/sh\necho disabled\n", 0o640)
	write("shared-hook", "#!/bin/sh\necho shared\n", 0o755)
	if err := os.Symlink("shared-hook", filepath.Join(dir, "post-checkout")); err != nil {
		t.Fatal(err)
	}
	write("pre-commit", "#!/bin/sh\nexit 0\n", 0o755)
	before := snapshot(t, dir)

	got, err := Install(InstallOptions{Dir: dir, Program: "/bin/codemachine"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range got {
		if st.State != StateInstalled || st.Action != "installed" || st.Chained != filepath.Join(dir, st.Name+ChainedSuffix) {
			t.Errorf("install: %+v", st)
		}
	}
	// Idempotent: installing again updates in place, keeps the chain.
	again, err := Install(InstallOptions{Dir: dir, Program: "/bin/codemachine", RunArgs: []string{"--engine", "replay"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range again {
		if st.Action != "updated" || st.Chained == "" {
			t.Errorf("second install: %+v", st)
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, "post-commit"))
	if !bytes.Contains(data, []byte("hooks run --engine replay post-commit")) {
		t.Errorf("the update did not take:\n%s", data)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "post-commit")); fi.Mode().Perm() != 0o755 {
		t.Errorf("hook mode %v", fi.Mode())
	}
	status, err := Status(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 3 || status[0].State != StateInstalled {
		t.Errorf("status %+v", status)
	}

	removed, err := Uninstall(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range removed {
		if st.Action != "restored" || st.State != StateForeign || st.Chained != "" {
			t.Errorf("uninstall: %+v", st)
		}
	}
	if after := snapshot(t, dir); !reflect.DeepEqual(after, before) {
		t.Errorf("not restored exactly:\nbefore %v\nafter  %v", before, after)
	}
	// Nothing of ours is left: uninstalling again changes nothing.
	if _, err := Uninstall(dir); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, dir); !reflect.DeepEqual(after, before) {
		t.Errorf("second uninstall changed the directory")
	}
}

func TestInstallFresh(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "custom", "hooks") // core.hooksPath that does not exist yet
	got, err := Install(InstallOptions{Dir: dir, Program: "codemachine"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range got {
		if st.Chained != "" || st.Action != "installed" {
			t.Errorf("%+v", st)
		}
	}
	removed, err := Uninstall(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range removed {
		if st.Action != "removed" || st.State != StateAbsent {
			t.Errorf("%+v", st)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestInstallConflictAndForeign(t *testing.T) {
	dir := t.TempDir()
	if _, err := Install(InstallOptions{Dir: dir, Program: "codemachine"}); err != nil {
		t.Fatal(err)
	}
	// Another tool overwrote codemachine's post-commit while the chained
	// one is still parked: neither may be lost.
	if err := os.WriteFile(filepath.Join(dir, "post-commit"), []byte("#!/bin/sh\necho other\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "post-commit"+ChainedSuffix), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Install(InstallOptions{Dir: dir, Program: "codemachine"})
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "move one of them away") {
		t.Fatalf("install over a foreign hook with a chained one = %v", err)
	}
	got, err := Uninstall(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].State != StateForeign || got[0].Action != "kept" {
		t.Errorf("uninstall touched the foreign hook: %+v", got[0])
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "post-commit")); string(data) != "#!/bin/sh\necho other\n" {
		t.Errorf("foreign hook changed: %q", data)
	}
}

// TestScriptRuns runs an installed hook the way git does: the previous
// hook first with the arguments and stdin, then codemachine in the
// background; the exit status is the previous hook's.
func TestScriptRuns(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	prev := "#!/bin/sh\necho \"prev $*\" >> " + out + "\ncat >> " + out + "\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, "post-checkout"), []byte(prev), 0o755); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "fake codemachine")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nsleep 1\necho \"cm $*\" >> '"+out+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(InstallOptions{Dir: dir, Program: fake, RunArgs: []string{"--engine", "replay"}}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "post-checkout"), "aaa", "bbb", "1")
	cmd.Stdin = strings.NewReader("from stdin\n")
	start := time.Now()
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("hook exit = %v, want the previous hook's 3", err)
	}
	if d := time.Since(start); d > 700*time.Millisecond {
		t.Errorf("the hook waited %v for codemachine", d)
	}
	want := "prev aaa bbb 1\nfrom stdin\ncm hooks run --engine replay post-checkout aaa bbb 1\n"
	deadline := time.Now().Add(testenv.Patience())
	for {
		data, _ := os.ReadFile(out)
		if string(data) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("output %q, want %q", data, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartDetached(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "run.log")
	pidFile := filepath.Join(dir, "pid")
	script := `echo "git dir: [$GIT_DIR] keep: [$KEEP]"; pwd; cat /proc/$$/stat > ` + filepath.Join(dir, "stat") + `; echo $$ > ` + pidFile + `.tmp; mv ` + pidFile + `.tmp ` + pidFile
	pid, err := StartDetached(Detached{Program: "sh", Args: []string{"-c", script}, Dir: dir,
		Env: []string{"PATH=" + os.Getenv("PATH"), "GIT_DIR=/elsewhere/.git", "KEEP=yes"}, Log: log, Header: "header\n"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testenv.Patience())
	for {
		if data, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(data)) == strconv.Itoa(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the detached process did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
	data, _ := os.ReadFile(log)
	if want := "header\ngit dir: [] keep: [yes]\n" + dir + "\n"; string(data) != want {
		t.Errorf("log %q, want %q", data, want)
	}
	// Fields after "(comm)": state ppid pgrp session; a session leader's
	// session id is its pid.
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil || bytes.LastIndexByte(stat, ')') < 0 {
		t.Fatalf("the detached process's /proc/PID/stat: %q, %v", stat, err)
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 4 || f[3] != strconv.Itoa(pid) {
		t.Errorf("session of the detached process: %v, want %d", f, pid)
	}
	if _, err := StartDetached(Detached{Program: filepath.Join(dir, "missing"), Log: log}); err == nil {
		t.Error("a missing program started")
	}
}

func TestRunArgs(t *testing.T) {
	for _, args := range [][]string{nil, {"--engine", "replay"}, {"--model", "it's \"odd\" model", "--engine", "claude"}} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "post-commit"), Script("post-commit", "/usr/bin/codemachine", args), 0o755); err != nil {
			t.Fatal(err)
		}
		got, ok := RunArgs(dir, "post-commit")
		if !ok || strings.Join(got, "\x00") != strings.Join(args, "\x00") {
			t.Errorf("RunArgs of a hook installed with %q = %q, %v", args, got, ok)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "post-commit"), []byte("#!/bin/sh\necho mine\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := RunArgs(dir, "post-commit"); ok {
		t.Error("RunArgs reads somebody else's hook as codemachine's")
	}
	if _, ok := RunArgs(t.TempDir(), "post-commit"); ok {
		t.Error("RunArgs finds a hook that is not there")
	}
}

// TestInstallOverDirectory: a directory where a hook goes is no hook to
// keep and run first: install refuses it, writing none of the hooks. A chained
// hook that is not a file (parked by an earlier version) is still put
// back by uninstall.
func TestInstallOverDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "post-checkout"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Install(InstallOptions{Dir: dir, Program: "codemachine"})
	var nh *NotAHookError
	if !errors.As(err, &nh) || !strings.Contains(err.Error(), "post-checkout is a directory, not a hook") {
		t.Fatalf("install over a directory = %v, want a NotAHookError", err)
	}
	for _, name := range []string{"post-checkout" + ChainedSuffix, "post-commit", "post-merge"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("install refused, yet %s was written: %v", name, err)
		}
	}

	other := t.TempDir()
	if _, err := Install(InstallOptions{Dir: other, Program: "codemachine"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(other, "post-merge"+ChainedSuffix), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Uninstall(other); err != nil {
		t.Fatalf("uninstall with a chained directory: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(other, "post-merge")); err != nil || !fi.IsDir() {
		t.Errorf("post-merge not put back: %v", err)
	}
	for _, name := range []string{"post-commit", "post-checkout"} {
		if _, err := os.Lstat(filepath.Join(other, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after uninstall: %v", name, err)
		}
	}
}
