package gitstate

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// benchRepo makes a repository of n small files, 100 per directory.
func benchRepo(b *testing.B, n int) (string, *Repo) {
	b.Helper()
	dir, err := filepath.EvalSymlinks(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	git(b, dir, "init", "-q", "-b", "main")
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%04d", i/100), fmt.Sprintf("f%06d.txt", i))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(p, fmt.Appendf(nil, "file %d\n", i), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	commitAll(b, dir, "initial")
	r, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	return dir, r
}

// BenchmarkStageCommit compares codemachine's per-step git work (hand out
// the pooled worktree, stage the agent's change, commit it, land it on the
// checked-out branch bringing the user's working tree along, finish) with a
// person making a change of the same size by hand (git add -A && git
// commit), in the same run on the same repository. Two cases:
//
//   - sequential: steps follow each other on main while the person commits
//     on another branch in a linked worktree; the pooled worktree is reused
//     as it is (the hot path of a run);
//   - user-committed: the person commits on main between steps, so each step
//     first moves the pooled worktree to the new tip and every landing
//     updates a working tree that just changed.
//
// Metrics: cm-ms/op, git-ms/op and their ratio. Set
// CODEMACHINE_BENCH_LARGE=1 to add a 100k-file repository.
func BenchmarkStageCommit(b *testing.B) {
	for _, n := range benchSizes() {
		for _, mode := range []string{"sequential", "user-committed"} {
			b.Run(fmt.Sprintf("files=%d/%s", n, mode), func(b *testing.B) {
				benchStageCommit(b, n, mode == "user-committed")
			})
		}
	}
}

func benchStageCommit(b *testing.B, n int, onMain bool) {
	dir, r := benchRepo(b, n)
	ctx := b.Context()
	manualDir := dir
	if !onMain {
		manualDir = filepath.Join(b.TempDir(), "manual")
		git(b, dir, "worktree", "add", "-q", "-b", "manual", manualDir)
	}
	// The one full checkout a clone pays, outside the measurement.
	tip := git(b, dir, "rev-parse", "HEAD")
	w, err := r.Worktree(ctx, 0, tip, sandboxed)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.Stage(ctx); err != nil {
		b.Fatal(err)
	}
	if err := w.Finish(ctx, tip); err != nil {
		b.Fatal(err)
	}
	author := Signature{Name: "codemachine shell", Email: "codemachine@localhost"}
	var cm, manual time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		write(b, manualDir, "d0001/f000100.txt", fmt.Sprintf("user change %d\n", i))
		for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", fmt.Sprintf("user %d", i)}} {
			cmd := exec.Command("git", args...)
			cmd.Dir = manualDir
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
		manual += time.Since(start)

		start = time.Now()
		base, err := r.ResolveRev("main")
		if err != nil {
			b.Fatal(err)
		}
		w, err := r.Worktree(ctx, 0, base, sandboxed)
		if err != nil {
			b.Fatal(err)
		}
		write(b, w.Path(), "d0000/f000000.txt", fmt.Sprintf("step change %d\n", i))
		tree, err := w.Stage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		c, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{base}, Message: fmt.Sprintf("step %d", i), Author: author})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Land(ctx, "main", base, c, LandOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := w.Finish(ctx, c); err != nil {
			b.Fatal(err)
		}
		cm += time.Since(start)
	}
	iters := float64(b.N)
	b.ReportMetric(float64(cm.Microseconds())/1000/iters, "cm-ms/op")
	b.ReportMetric(float64(manual.Microseconds())/1000/iters, "git-ms/op")
	b.ReportMetric(float64(cm)/float64(manual), "ratio")
}

// BenchmarkWorktreeReuse measures handing out a pooled worktree that was
// left clean at the requested base, the hot path of sequential steps: no
// git command runs, the worktree's scratch .git is brought up to date in place and the
// private index copied into it. The baseline, in the same run on the same
// worktree, is the cheapest git command there is over its files: git
// status in it (which also proves the copied index valid: a wrong one
// would make git hash every file). Metrics: reuse-ms/op, status-ms/op and
// their ratio.
func BenchmarkWorktreeReuse(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			dir, r := benchRepo(b, n)
			ctx := b.Context()
			tip := git(b, dir, "rev-parse", "HEAD")
			w, err := r.Worktree(ctx, 0, tip, sandboxed)
			if err != nil {
				b.Fatal(err)
			}
			w.Discard()
			before := r.ncmd.Load()
			var reuse, status time.Duration
			for b.Loop() {
				if err := w.markClean(tip); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if w, err = r.Worktree(ctx, 0, tip, sandboxed); err != nil {
					b.Fatal(err)
				}
				reuse += time.Since(start)
				start = time.Now()
				cmd := exec.Command("git", "status", "--porcelain")
				cmd.Dir = w.Path()
				out, err := cmd.CombinedOutput()
				status += time.Since(start)
				if err != nil || len(out) != 0 {
					b.Fatalf("git status in the reused worktree: %v %q", err, out)
				}
				w.close()
			}
			if r.ncmd.Load() != before {
				b.Fatal("the reuse path ran git")
			}
			iters := float64(b.N)
			b.ReportMetric(float64(reuse.Microseconds())/1000/iters, "reuse-ms/op")
			b.ReportMetric(float64(status.Microseconds())/1000/iters, "status-ms/op")
			b.ReportMetric(float64(reuse)/float64(status), "ratio")
		})
	}
}

// BenchmarkTreeFS measures what a fingerprint needs from a commit: open
// its tree, hash a few inputs and read a state file.
func BenchmarkTreeFS(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			_, r := benchRepo(b, n)
			for b.Loop() {
				fsys, err := r.TreeFS("HEAD")
				if err != nil {
					b.Fatal(err)
				}
				t := fsys.(*TreeFS)
				for _, name := range []string{"d0000/f000000.txt", "d0001/f000100.txt", "d0009/f000999.txt"} {
					if _, err := t.BlobHash(name); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := t.ReadFile("d0000/f000001.txt"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchSizes() []int {
	if os.Getenv("CODEMACHINE_BENCH_LARGE") == "1" {
		return []int{1000, 100000}
	}
	return []int{1000}
}
