package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startKilledAtSwitch starts codemachine with args and kills it with
// SIGKILL the moment the n-th switch of the checkout it journals changes
// the branch ref (or, with atIndex, the user's index), plus a random
// busy wait of up to maxDelay: the instants around the ref update of a
// landing, too short for startKilled's polling to hit often. It reports
// where it killed.
func (c *crashEnv) startKilledAtSwitch(rng *rand.Rand, n int, atIndex bool, maxDelay time.Duration, args ...string) string {
	c.t.Helper()
	cmd := c.cmd(c.bin, args...)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	journal := filepath.Join(c.dir, ".git", "codemachine", "switch.yaml")
	refFile := filepath.Join(c.dir, ".git", "refs", "heads", "main")
	indexFile := filepath.Join(c.dir, ".git", "index")
	what := "ref update"
	if atIndex {
		what = "index update"
	}
	where := fmt.Sprintf("switch %d's %s", n, what)
	var ref []byte
	var index os.FileInfo
	seen, in := 0, false
	deadline := time.Now().Add(time.Minute)
	for seen < n {
		select {
		case <-done:
			return where + " (it had finished)"
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			c.t.Fatalf("%s: never seen", where)
		}
		_, err := os.Stat(journal)
		if err != nil {
			in = false
			ref, _ = os.ReadFile(refFile)
			index, _ = os.Stat(indexFile)
			continue
		}
		if in {
			continue // this switch was counted
		}
		if atIndex {
			now, err := os.Stat(indexFile)
			if err != nil || index == nil || os.SameFile(now, index) {
				continue
			}
		} else if now, _ := os.ReadFile(refFile); bytes.Equal(now, ref) {
			continue
		}
		seen, in = seen+1, true
	}
	delay := time.Duration(rng.Int64N(int64(maxDelay) + 1))
	for start := time.Now(); time.Since(start) < delay; {
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return fmt.Sprintf("%s + %v", where, delay)
}

// TestCrashKill9UserCommits kills `codemachine run` with SIGKILL around
// the moment a landing moves the user's branch, with an edit of the
// user's staged and another not; the user then removes the index.lock
// the kill left, as git's message advises, and commits what they staged.
// That commit must never undo a step the branch has, nor lose the user's
// edits; and the next commands recover and reach the uninterrupted
// result.
func TestCrashKill9UserCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it some dozens of times")
	}
	t.Parallel()
	bin, rng := crashSetup(t)
	setup := func() *crashEnv {
		c := newCrashEnv(t, bin)
		if err := os.WriteFile(filepath.Join(c.dir, "staged.txt"), []byte("the user's staged edit\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.git("add", "staged.txt")
		return c
	}
	withoutStaged := func(tree string) string {
		var keep []string
		for _, l := range strings.Split(tree, "\n") {
			if !strings.HasSuffix(l, "\tstaged.txt") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	ref := setup()
	if code, out := ref.cm("run"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	want := withoutStaged(ref.treeWithoutState())
	// The trees of the uninterrupted run's steps, in order: a commit of
	// the user's on step s may hold the tree of s or of a step after it
	// (the next landing's index, installed before its ref moved), never
	// one from before s.
	var stepTrees []string
	stepOf := map[string]int{}
	for _, h := range strings.Fields(ref.git("log", "--reverse", "--format=%H", "HEAD")) {
		if step := ref.git("log", "-1", "--format=%(trailers:key=Codemachine-Step,valueonly)", h); step != "" {
			stepOf[step] = len(stepTrees)
			stepTrees = append(stepTrees, ref.treeAt(h))
		}
	}

	stale := map[string]int{}
	for i := range 16 {
		c := setup()
		where := c.startKilledAtSwitch(rng, 1+rng.IntN(2), i%2 == 1, time.Duration(rng.IntN(3))*100*time.Microsecond, "run")
		where = fmt.Sprintf("kill %d at %s", i, where)
		// The user removes what git's next command refuses to run
		// beside, as git's message tells them to: the index's lock, and
		// the branch's when the kill came during the ref's update.
		for _, lock := range []string{filepath.Join(c.dir, ".git", "index.lock"), filepath.Join(c.dir, ".git", "refs", "heads", "main.lock")} {
			if _, err := os.Stat(lock); err == nil {
				stale[filepath.Base(lock)]++
				if err := os.Remove(lock); err != nil {
					t.Fatal(err)
				}
			}
		}
		c.git("commit", "-q", "-m", "the user's commit")
		if parent := c.git("log", "-1", "--format=%(trailers:key=Codemachine-Step,valueonly)", "HEAD~1"); parent != "" {
			if !slices.Contains(stepTrees[stepOf[parent]:], c.treeAt("HEAD")) {
				t.Fatalf("%s: the user's commit on step %s holds the tree\n%s\nof no step from %s on: it undoes the step", where, parent, c.treeAt("HEAD"), parent)
			}
		}
		if got := c.git("show", "HEAD:staged.txt"); got != "the user's staged edit" {
			t.Fatalf("%s: the user's commit lost the staged edit: %q", where, got)
		}
		if code, out := c.cm("status"); code != 0 {
			t.Fatalf("%s: status: exit %d\n%s", where, code, out)
		}
		if code, out := c.cm("run"); code != 0 {
			t.Fatalf("%s: the next run: exit %d\n%s", where, code, out)
		}
		c.check(where)
		if got := withoutStaged(c.treeWithoutState()); got != want {
			t.Fatalf("%s: the tree after the next run differs:\n%s\nwant\n%s", where, got, want)
		}
	}
	t.Logf("locks left for the user to remove in 16 kills: %v", stale)
}

// treeAt is the tree listing of rev without state.yaml and staged.txt.
func (c *crashEnv) treeAt(rev string) string {
	c.t.Helper()
	var keep []string
	for _, l := range strings.Split(c.git("ls-tree", "-r", rev), "\n") {
		if !strings.HasSuffix(l, "\t.codemachine/state.yaml") && !strings.HasSuffix(l, "\tstaged.txt") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
