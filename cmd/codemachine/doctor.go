package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/orchestrator"
)

// doctorReport is what `codemachine doctor` found.
type doctorReport struct {
	Engines    []agents.EngineInfo `json:"engines"`
	Git        gitCheck            `json:"git"`
	Sandbox    sandboxCheck        `json:"sandbox"`
	Repository repoCheck           `json:"repository"`
	Remote     *remoteCheck        `json:"remote,omitempty"`
}

// sandboxCheck is the protection a step gets on this system.
type sandboxCheck struct {
	Active  string               `json:"active"`            // one line
	Missing []string             `json:"missing,omitempty"` // what a sandboxed step lacks
	System  agents.SandboxStatus `json:"system"`
}

type gitCheck struct {
	Found   bool   `json:"found"`
	Version string `json:"version,omitempty"`
	Hint    string `json:"hint,omitempty"`
}

// repoCheck is the repository around the working directory (or -C).
type repoCheck struct {
	Found  bool   `json:"found"`
	Root   string `json:"root,omitempty"`
	Branch string `json:"branch,omitempty"` // "" when detached
	Error  string `json:"error,omitempty"`  // why it could not be opened or read
	// Workflow is "valid", "invalid" or "missing".
	Workflow string   `json:"workflow,omitempty"`
	Steps    int      `json:"steps,omitempty"`
	Problems []string `json:"problems,omitempty"` // validation problems, file:line:col: message
	Lock     lockInfo `json:"lock"`
	// Interrupted: a landing, rollback or approval was left halfway (a
	// kill), and no codemachine is finishing it now.
	Interrupted bool `json:"interrupted,omitempty"`
	// IndexLock is git's index.lock of this worktree when it is there
	// and no codemachine holds the lock or has a landing to finish: left
	// by a git command that was killed, or held by one running now. While
	// it is there, git commit and everything else that writes the index
	// refuse.
	IndexLock string `json:"index_lock,omitempty"`
	// Worktrees is the number of pooled worktrees; Stale lists linked
	// worktrees whose directory is gone (git worktree prune removes them).
	Worktrees int      `json:"worktrees"`
	Stale     []string `json:"stale_worktrees"`
}

type lockInfo struct {
	Held    bool   `json:"held"`
	PID     int    `json:"pid,omitempty"`
	Command string `json:"command,omitempty"`
}

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check the engines, git and the repository",
		Description: `Lists each coding CLI codemachine can drive (` + strings.Join(agents.CodingCLIs(), ", ") + `): whether
it is on PATH, its version, where its credentials would come from in the environment agents
get, and what to do when something is missing. Then git's version and, inside a repository,
whether the workflow is valid, who holds the lock, whether git's index.lock was left behind
and whether linked worktrees are stale. It also says which protection the sandbox gives steps
on this system: Landlock for writes, a mount namespace (or Landlock) for other programs'
sockets, a subreaper for their processes.
With a remote (--remote NAME, else the branch's remote or origin) it looks at it the way
"codemachine worker" does: whether it answers, has the branch and is not behind it, and which
workers hold claims there now (the integrator, the units running, results waiting to land).
It only reports: the exit code is 0 whatever it finds.`,
		Flags: []cli.Flag{jsonFlag, &cli.StringFlag{Name: "remote", Usage: "check the workers' remote `NAME` (default: the branch's remote, else origin)"}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			out := newOutput(c)
			r := doctor(c.Context, globalString(c, "C"), c.String("remote"))
			if out.json {
				return out.printJSON(r)
			}
			printDoctor(out, r)
			return nil
		},
	}
}

// doctor gathers the report. The engines are probed at once: each runs its
// CLI's --version, which takes up to a few seconds for some.
//
// In a repository, the CLIs and git are found on PATH without its
// directories in the working tree (gitstate.Repo.OutsidePath), as
// codemachine's git is: a step may have landed a bin/claude or bin/git
// there (direnv's PATH_add bin), which doctor would run unconfined.
func doctor(ctx context.Context, dir, remote string) doctorReport {
	env := agents.Environ(os.Environ(), nil)
	start := dir
	if start == "" {
		start = "."
	}
	repo, err := gitstate.Open(start)
	if err != nil {
		repo = nil
	} else {
		env = append(env, "PATH="+repo.OutsidePath())
	}
	names := agents.CodingCLIs()
	r := doctorReport{Engines: make([]agents.EngineInfo, len(names))}
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Engines[i] = agents.Probe(name, env)
		}()
	}
	st := agents.ProbeSandbox()
	r.Sandbox = sandboxCheck{Active: st.Summary(), Missing: st.Missing(), System: st}
	r.Repository = checkRepo(ctx, dir)
	r.Git = checkGit(ctx, repo)
	if repo != nil && r.Repository.Found && r.Repository.Branch != "" {
		r.Remote = checkRemote(ctx, repo, r.Repository.Branch, remote)
	}
	wg.Wait()
	return r
}

func checkGit(ctx context.Context, repo *gitstate.Repo) gitCheck {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	version, err := gitstate.Version(ctx, repo)
	if err != nil {
		return gitCheck{Hint: "git is required: install git (" + err.Error() + ")"}
	}
	return gitCheck{Found: true, Version: version}
}

func checkRepo(ctx context.Context, dir string) repoCheck {
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return repoCheck{Error: err.Error()}
		}
	}
	o, err := orchestrator.New(orchestrator.Config{Dir: dir, Environ: os.Environ()})
	if err != nil {
		return repoCheck{Error: err.Error()}
	}
	repo := o.Repo()
	rc := repoCheck{Found: true, Root: repo.Root(), Stale: []string{}}
	head, err := repo.Head()
	if errors.Is(err, gitstate.ErrObjectFormat) {
		// A repository codemachine cannot read: its branch, workflow and
		// worktrees would all read as missing.
		rc.Error = err.Error()
		return rc
	}
	if err == nil {
		rc.Branch = head.Branch
	}
	rc.Lock.PID, rc.Lock.Command, rc.Lock.Held = repo.LockHolder()
	rc.Interrupted = !rc.Lock.Held && o.Interrupted()
	if lock := filepath.Join(repo.GitDir(), "index.lock"); !rc.Lock.Held && !rc.Interrupted {
		if _, err := os.Lstat(lock); err == nil {
			rc.IndexLock = lock
		}
	}

	if _, err := os.Stat(filepath.Join(repo.Root(), ".codemachine", "workflow.yaml")); errors.Is(err, fs.ErrNotExist) {
		rc.Workflow = "missing"
	} else if report, err := o.Validate(); err == nil {
		rc.Workflow, rc.Steps = "valid", report.Steps
	} else {
		rc.Workflow = "invalid"
		var ve *orchestrator.ValidationError
		if errors.As(err, &ve) {
			rc.Problems = strings.Split(ve.Error(), "\n")
		} else {
			rc.Problems = []string{err.Error()}
		}
	}

	if entries, err := os.ReadDir(filepath.Join(repo.LocalDir(), "worktrees")); err == nil {
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), "slot-") {
				rc.Worktrees++
			}
		}
	}
	if list, err := repo.ListWorktrees(ctx); err == nil {
		for _, w := range list {
			if w.Prunable {
				rc.Stale = append(rc.Stale, w.Path)
			}
		}
	}
	return rc
}

func printDoctor(out *output, r doctorReport) {
	out.printf("engines\n")
	for _, e := range r.Engines {
		switch {
		case !e.Found:
			out.printf("  %s %-9s not found on PATH\n", out.paint(red, "✗"), e.Name)
		case e.Hint != "":
			out.printf("  %s %-9s %s  %s\n", out.paint(yellow, "!"), e.Name, orDash(e.Version), out.paint(dim, e.Path))
		default:
			out.printf("  %s %-9s %s  %s\n", out.paint(green, "✓"), e.Name, e.Version, out.paint(dim, e.Path))
		}
		if e.Found {
			out.printf("              credentials: %s\n", e.Credentials)
		}
		if e.Hint != "" {
			out.printf("              %s\n", e.Hint)
		}
	}
	if !anyFound(r.Engines) {
		out.printf("  no coding agent CLI: install one, or replay recordings with --engine replay (no model, no cost)\n")
	}
	if r.Git.Found {
		out.printf("git: %s\n", r.Git.Version)
	} else {
		out.printf("git: %s\n", out.paint(red, r.Git.Hint))
	}
	printSandboxCheck(out, r.Sandbox)
	rc := r.Repository
	if !rc.Found {
		out.printf("repository: none here (%s)\n", rc.Error)
		return
	}
	if rc.Error != "" {
		out.printf("repository: %s  %s\n", rc.Root, out.paint(red, rc.Error))
		return
	}
	branch := rc.Branch
	if branch == "" {
		branch = "detached HEAD"
	}
	out.printf("repository: %s (%s)\n", rc.Root, branch)
	switch rc.Workflow {
	case "valid":
		out.printf("  workflow: valid, %d step(s)\n", rc.Steps)
	case "missing":
		out.printf("  workflow: none (codemachine init scaffolds one)\n")
	default:
		out.printf("  workflow: %s\n", out.paint(red, fmt.Sprintf("%d problem(s) (codemachine validate)", len(rc.Problems))))
		for i, p := range rc.Problems {
			if i == 3 {
				out.printf("    …\n")
				break
			}
			out.printf("    %s\n", p)
		}
	}
	if rc.Lock.Held {
		out.printf("  lock: held by pid %d (%s)\n", rc.Lock.PID, rc.Lock.Command)
	} else {
		out.printf("  lock: free\n")
	}
	if rc.Interrupted {
		out.printf("  %s\n", out.paint(yellow, "a landing, rollback or approval was interrupted (its process was killed): codemachine status or the next command finishes it"))
	}
	if rc.IndexLock != "" {
		out.printf("  %s\n", out.paint(yellow, fmt.Sprintf("git's index lock is there (%s): git commit refuses while it is; if no git command is running, a killed one left it: remove it", rc.IndexLock)))
	}
	stale := "none stale"
	if len(rc.Stale) > 0 {
		stale = out.paint(yellow, fmt.Sprintf("%d stale (git worktree prune removes them): %s", len(rc.Stale), strings.Join(rc.Stale, ", ")))
	}
	out.printf("  worktrees: %d pooled, %s\n", rc.Worktrees, stale)
	if rc.Branch != "" {
		printRemoteCheck(out, r.Remote)
	}
}

// printSandboxCheck says what protects a step here and what is missing.
func printSandboxCheck(out *output, sc sandboxCheck) {
	if len(sc.Missing) == 0 {
		out.printf("sandbox: %s %s\n", out.paint(green, "✓"), sc.Active)
		return
	}
	out.printf("sandbox: %s %s\n", out.paint(yellow, "!"), sc.Active)
	for _, m := range sc.Missing {
		out.printf("  missing: %s\n", m)
	}
	out.printf("  steps with sandbox: auto run with what there is (the run says so); sandbox: required refuses to run\n")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// anyFound reports whether a coding CLI is installed.
func anyFound(engines []agents.EngineInfo) bool {
	for _, e := range engines {
		if e.Found {
			return true
		}
	}
	return false
}
