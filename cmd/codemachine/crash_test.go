package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

// crashWorkflow is four steps of shell commands, each changing, adding
// and deleting files, so that every landing rewrites files in the user's
// checkout. A step deletes a file of the step before it that is none of
// its outputs (deleting an output would make that step due again).
const crashWorkflow = `version: 1
steps:
  - id: a
    run: 'mkdir -p out && for i in 1 2 3 4 5 6 7 8; do echo a$i > out/a$i.txt; done && echo a > shared.txt && echo a > out/tmp-a.txt'
    outputs: [out/a*.txt, shared.txt]
  - id: b
    run: 'for i in 1 2 3 4 5 6 7 8; do echo b$i > out/b$i.txt; done && rm out/tmp-a.txt && echo b > out/tmp-b.txt && echo b >> shared.txt'
    needs: [a]
    outputs: [out/b*.txt, shared.txt]
  - id: c
    run: 'for i in 1 2 3 4 5 6 7 8; do echo c$i > out/c$i.txt; done && rm out/tmp-b.txt && echo c >> shared.txt'
    needs: [b]
    outputs: [out/c*.txt, shared.txt]
  - id: d
    run: 'cat out/*.txt > all.txt && echo d >> shared.txt'
    needs: [c]
    outputs: [all.txt, shared.txt]
`

// crashEnv is a repository with the workflow committed, a tracked file the
// user changed and an untracked file of theirs, and the binary under test.
type crashEnv struct {
	t        *testing.T
	bin, dir string
	env      []string
}

func (c *crashEnv) cmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	return cmd
}

func (c *crashEnv) git(args ...string) string {
	c.t.Helper()
	out, err := c.cmd("git", args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// cm runs codemachine to its end and returns its exit code and output.
func (c *crashEnv) cm(args ...string) (int, string) {
	out, err := c.cmd(c.bin, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		c.t.Fatalf("codemachine %v: %v", args, err)
	}
	return 0, string(out)
}

func newCrashEnv(t *testing.T, bin string) *crashEnv {
	return newCrashEnvWith(t, bin, crashWorkflow)
}

// newCrashEnvWith is newCrashEnv with another workflow.
func newCrashEnvWith(t *testing.T, bin, workflow string) *crashEnv {
	home := t.TempDir()
	c := &crashEnv{t: t, bin: bin, dir: filepath.Join(home, "repo"), env: append(testenv.GitEnv(home), "NO_COLOR=1")}
	if err := os.MkdirAll(filepath.Join(c.dir, ".codemachine"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(c.dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(".codemachine/workflow.yaml", workflow)
	write("notes.txt", "committed\n")
	c.git("init", "-q", "-b", "main")
	c.git("add", "-A")
	c.git("commit", "-q", "-m", "init")
	write("notes.txt", "the user's uncommitted edit\n")
	write("scratch.txt", "the user's untracked file\n")
	return c
}

// startKilled starts codemachine with args and kills it with SIGKILL at a
// random point: after a random number of output lines, or as soon as the
// journal of one of its first switches of the checkout (landings, a
// rollback's reset) appears, each followed by a random delay of up to a
// few milliseconds (a landing takes a few). It reports where it killed.
func (c *crashEnv) startKilled(rng *rand.Rand, switches int, args ...string) string {
	c.t.Helper()
	cmd := c.cmd(c.bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	journal := filepath.Join(c.dir, ".git", "codemachine", "switch.yaml")
	// A landing holds the user's index for well under a millisecond (its
	// files are prepared before), a rollback's reset for a few.
	delay := time.Duration(rng.IntN(1000)) * time.Microsecond
	if switches == 1 {
		delay = time.Duration(rng.IntN(1500)) * time.Microsecond
	}
	var where string
	exited := false
	if rng.IntN(3) > 0 {
		// At the n-th landing's journal: during the switch of the checkout.
		n := 1 + rng.IntN(switches)
		seen, was := 0, false
		for seen < n && !exited {
			_, err := os.Stat(journal)
			is := err == nil
			if is && !was {
				seen++
			}
			was = is
			select {
			case _, ok := <-lines:
				exited = !ok
			default:
			}
		}
		where = fmt.Sprintf("landing %d + %v", n, delay)
	} else {
		n := rng.IntN(8)
		for i := 0; i < n && !exited; i++ {
			_, ok := <-lines
			exited = !ok
		}
		where = fmt.Sprintf("output line %d + %v", n, delay)
	}
	time.Sleep(delay)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	go func() {
		for range lines {
		}
	}()
	_ = cmd.Wait()
	if exited {
		where += " (it had finished)"
	}
	return where
}

// check asserts what every kill must leave, once the next command ran:
// no lock file, the user's edit and untracked file intact, the working
// tree and index at the branch tip but for the user's changes, and a
// repository git fsck accepts.
func (c *crashEnv) check(where string) {
	c.t.Helper()
	for _, l := range []string{"index.lock", "refs/heads/main.lock", "codemachine/switch.yaml", "codemachine/rollback.yaml", "codemachine/approve.yaml"} {
		if _, err := os.Stat(filepath.Join(c.dir, ".git", l)); err == nil {
			c.t.Fatalf("%s: .git/%s left", where, l)
		}
	}
	if got := c.git("status", "--porcelain"); got != "M notes.txt\n?? scratch.txt" && got != " M notes.txt\n?? scratch.txt" {
		c.t.Fatalf("%s: git status:\n%s", where, got)
	}
	if data, _ := os.ReadFile(filepath.Join(c.dir, "notes.txt")); string(data) != "the user's uncommitted edit\n" {
		c.t.Fatalf("%s: the user's edit is lost: %q", where, data)
	}
	c.git("fsck", "--no-progress", "--no-dangling")
}

// treeWithoutState is the tip's tree listing without state.yaml, whose
// times and durations differ between runs.
func (c *crashEnv) treeWithoutState() string {
	var keep []string
	for _, l := range strings.Split(c.git("ls-tree", "-r", "HEAD"), "\n") {
		if !strings.HasSuffix(l, "\t.codemachine/state.yaml") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// stepCommits lists the step trailers of the branch's commits, oldest
// first: each step must have landed exactly once.
func (c *crashEnv) stepCommits() string {
	return strings.Join(strings.Fields(c.git("log", "--reverse", "--format=%(trailers:key=Codemachine-Step,valueonly)")), " ")
}

// TestCrashKill9 kills `codemachine run` and `codemachine rollback` with
// SIGKILL at random points, many of them while a step lands (issue 10,
// D5), and checks that the next command finds branch, index, working tree
// and holds consistent and that a run then reaches the result of an
// uninterrupted one. CODEMACHINE_CRASH_SEED replays a sequence.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it some hundred times")
	}
	t.Parallel()
	bin, rng := crashSetup(t)

	// The uninterrupted result.
	ref := newCrashEnv(t, bin)
	if code, out := ref.cm("run"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	ref.check("uninterrupted run")
	want, wantSteps := ref.treeWithoutState(), ref.stepCommits()
	if wantSteps != "a b c d" {
		t.Fatalf("uninterrupted run landed %q", wantSteps)
	}

	runs, rollbacks := 50, 20
	if testing.Short() {
		runs, rollbacks = 10, 5
	}
	recovered := map[string]int{}
	outcomes := map[bool]int{} // rollbacks that happened (true) or not
	c := newCrashEnv(t, bin)
	for i := range runs {
		if i%4 == 0 && i > 0 {
			c = newCrashEnv(t, bin)
		}
		where := fmt.Sprintf("run kill %d at %s", i, c.startKilled(rng, 4, "run"))
		code, out := c.cm("run")
		if code != 0 {
			t.Fatalf("%s: the next run: exit %d\n%s", where, code, out)
		}
		countRecovered(recovered, "run", out)
		c.check(where)
		if got := c.treeWithoutState(); got != want {
			t.Fatalf("%s: the next run's tree differs:\n%s\nwant\n%s", where, got, want)
		}
		if got := c.stepCommits(); got != wantSteps {
			t.Fatalf("%s: step commits %q, want %q", where, got, wantSteps)
		}
	}

	// Rollbacks of step c (and d after it), killed at random; the next
	// command finishes or undoes it, and a run after that must not run
	// the rolled-back steps again unless the rollback never happened.
	for i := range rollbacks {
		c = newCrashEnv(t, bin)
		if code, out := c.cm("run"); code != 0 {
			t.Fatalf("run: exit %d\n%s", code, out)
		}
		tip := c.git("rev-parse", "HEAD")
		before := c.git("rev-parse", "HEAD~2")
		// rollback refuses uncommitted changes to tracked files: the
		// user's edit waits aside (their untracked file stays).
		c.git("checkout", "--", "notes.txt")
		where := fmt.Sprintf("rollback kill %d at %s", i, c.startKilled(rng, 1, "rollback", "c"))
		code, out := c.cm("run")
		if code != 0 {
			t.Fatalf("%s: the next run: exit %d\n%s", where, code, out)
		}
		countRecovered(recovered, "rollback", out)
		if err := os.WriteFile(filepath.Join(c.dir, "notes.txt"), []byte("the user's uncommitted edit\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.check(where)
		got := c.git("rev-parse", "HEAD")
		outcomes[got == before]++
		switch got {
		case tip:
			if c.stepCommits() != wantSteps {
				t.Fatalf("%s: not rolled back, but the steps are %q", where, c.stepCommits())
			}
		case before:
			if strings.Contains(out, "✓") {
				t.Fatalf("%s: the rollback happened but the run re-ran held steps:\n%s", where, out)
			}
			if _, st := c.cm("status"); !strings.Contains(st, "held") {
				t.Fatalf("%s: the rolled-back steps are not held:\n%s", where, st)
			}
		default:
			t.Fatalf("%s: the branch is at %s, neither the tip nor the rollback target", where, got)
		}
	}
	t.Logf("switches found interrupted and recovered: %v; rollbacks done %d, not done %d", recovered, outcomes[true], outcomes[false])
}

// countRecovered counts the notes of a recovery in a run's output.
func countRecovered(m map[string]int, what, out string) {
	for _, w := range []string{"completed", "undone", "cleaned up"} {
		if strings.Contains(out, "was killed) was "+w) {
			m[what+" "+w]++
		}
	}
	if strings.Contains(out, "finished the interrupted rollback") {
		m["rollback holds finished"]++
	}
}

// crashSetup builds the binary and seeds the kills' randomness
// (CODEMACHINE_CRASH_SEED replays a sequence).
func crashSetup(t *testing.T) (string, *rand.Rand) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "codemachine")
	if out, err := exec.Command("go", "build", "-tags", buildTags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CODEMACHINE_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (CODEMACHINE_CRASH_SEED=%d replays it)", seed, seed)
	return bin, rand.New(rand.NewPCG(seed, seed))
}

// approveWorkflow is a step whose work waits for review, and one after it.
const approveWorkflow = `version: 1
steps:
  - id: a
    run: 'mkdir -p out && for i in 1 2 3 4 5 6 7 8; do echo a$i > out/a$i.txt; done && echo a > shared.txt'
    outputs: [out/a*.txt, shared.txt]
    review: true
  - id: b
    run: 'cat out/*.txt > all.txt && echo b >> shared.txt'
    needs: [a]
    outputs: [all.txt, shared.txt]
`

// TestCrashKill9Approve kills `codemachine approve` with SIGKILL at random
// points, many of them while the reviewed commit lands (issue 10, D5), and
// checks that the next command finds no half-landed review: either the
// work is on the branch and no longer waits for review, or the branch is
// untouched and the review still pending; approving then (if needed) and
// running reach the uninterrupted result, each step landed once.
func TestCrashKill9Approve(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it some hundred times")
	}
	t.Parallel()
	bin, rng := crashSetup(t)
	reviewRef := "refs/heads/codemachine/review/a"

	// The uninterrupted result.
	ref := newCrashEnvWith(t, bin, approveWorkflow)
	if code, out := ref.cm("run"); code != 3 {
		t.Fatalf("run: exit %d, want 3 (waiting for review)\n%s", code, out)
	}
	if code, out := ref.cm("approve", "a"); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}
	if code, out := ref.cm("run"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	ref.check("uninterrupted approve")
	want, wantSteps := ref.treeWithoutState(), ref.stepCommits()
	if wantSteps != "a b" {
		t.Fatalf("uninterrupted approve and run landed %q", wantSteps)
	}

	outcomes := map[string]int{}
	for i := range 30 {
		c := newCrashEnvWith(t, bin, approveWorkflow)
		if code, out := c.cm("run"); code != 3 {
			t.Fatalf("run: exit %d, want 3\n%s", code, out)
		}
		tip := c.git("rev-parse", "HEAD")
		where := fmt.Sprintf("approve kill %d at %s", i, c.startKilled(rng, 1, "approve", "a"))
		// The next command (a run, which waits for the review again
		// when the approval did not happen) finishes or rolls back.
		code, out := c.cm("run")
		c.check(fmt.Sprintf("%s (the next run: exit %d)\n%s", where, code, out))
		pending := c.cmd("git", "rev-parse", "--verify", "-q", reviewRef).Run() == nil
		head := c.git("rev-parse", "HEAD")
		switch {
		case pending:
			if head != tip {
				t.Fatalf("%s: half-landed: the review is pending, but the branch moved from %s to %s", where, tip, head)
			}
			if code != 3 {
				t.Fatalf("%s: the next run: exit %d, want 3 (waiting for review)\n%s", where, code, out)
			}
			outcomes["not approved"]++
			if code, out := c.cm("approve", "a"); code != 0 {
				t.Fatalf("%s: approve again: exit %d\n%s", where, code, out)
			}
			if code, out := c.cm("run"); code != 0 {
				t.Fatalf("%s: run after the approval: exit %d\n%s", where, code, out)
			}
			c.check(where + ", approved again")
		case code != 0:
			t.Fatalf("%s: the next run: exit %d\n%s", where, code, out)
		default:
			outcomes["approved"]++
			if strings.Contains(out, "finished the interrupted approval") {
				outcomes["approval finished by the next command"]++
			}
		}
		if strings.Contains(out, "rolled back the interrupted approval") {
			outcomes["approval rolled back by the next command"]++
		}
		if got := c.treeWithoutState(); got != want {
			t.Fatalf("%s: the tree differs:\n%s\nwant\n%s", where, got, want)
		}
		if got := c.stepCommits(); got != wantSteps {
			t.Fatalf("%s: step commits %q, want %q", where, got, wantSteps)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

// reviewerWorkflow is a step whose reviewer agent (replayed) rejects its
// first round and approves its second, and a step after it.
const reviewerWorkflow = `version: 1
steps:
  - id: gen
    run: 'echo "gen $(cat .codemachine/feedback/gen.md 2>/dev/null)" > out.txt'
    outputs: [out.txt]
    review: checker
    attempts: 3
  - id: after
    run: 'cat out.txt > after.txt'
    inputs: [out.txt]
    outputs: [after.txt]
`

// TestCrashKill9ReviewerVerdict kills `codemachine run` with SIGKILL the
// moment a unit's commit goes to its review branch, before its reviewer
// agent's verdict is applied (approved, or rejected for another round),
// and checks that the next run reaches the uninterrupted result instead
// of leaving the review to a person: each step landed once, with the
// second round's output.
func TestCrashKill9ReviewerVerdict(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it some ten times")
	}
	t.Parallel()
	bin, _ := crashSetup(t)
	files := map[string]string{
		".codemachine/agents/checker.md":            "---\nname: checker\ndescription: Reviews a change\nengine: claude\n---\nYou review changes.\n",
		".codemachine/recordings/gen.review/1.yaml": "step: gen\nengine: claude\nmodel: m\ntext: |\n  {\"verdict\": \"reject\", \"reasons\": \"say please\"}\n",
		".codemachine/recordings/gen.review/2.yaml": "step: gen\nengine: claude\nmodel: m\ntext: |\n  {\"verdict\": \"approve\"}\n",
	}
	for i := range 8 {
		c := newCrashEnvWith(t, bin, reviewerWorkflow)
		for name, data := range files {
			p := filepath.Join(c.dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c.git("add", ".codemachine")
		c.git("commit", "-q", "-m", "reviewer")
		// Round 1 (i even) or round 2 (i odd) is killed: round 2 comes
		// after round 1's review branch went.
		where := fmt.Sprintf("kill %d at review round %d", i, 1+i%2)
		cmd := c.cmd(c.bin, "run", "--engine", "replay")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		reviewRef := filepath.Join(c.dir, ".git", "refs", "heads", "codemachine", "review", "gen")
		finished := false
		for seen, was := 0, false; seen <= i%2 && !finished; {
			_, err := os.Stat(reviewRef)
			if is := err == nil; is != was {
				if is {
					seen++
				}
				was = is
			}
			select {
			case <-exited:
				// A busy machine let the branch come and go unseen.
				finished = true
			default:
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if finished {
			where += " (it had finished)"
		}
		code, out := c.cm("run", "--engine", "replay")
		if code != 0 {
			t.Fatalf("%s: the next run: exit %d\n%s", where, code, out)
		}
		c.check(where)
		if got := c.stepCommits(); got != "gen after" {
			t.Fatalf("%s: step commits %q, want %q", where, got, "gen after")
		}
		if data, _ := os.ReadFile(filepath.Join(c.dir, "after.txt")); string(data) != "gen say please\n" {
			t.Fatalf("%s: after.txt is %q, want the second round's", where, data)
		}
	}
}
