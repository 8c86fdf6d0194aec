package watch

import (
	"context"
	"path/filepath"
	"sort"
	"strings"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/watcher"
	"github.com/codemachine/codemachine/workflow"
)

// configure reads the trigger mode and the inputs from the workflow at the
// tip and points the watcher at what matters: git's own files always, and
// with trigger: save the .codemachine directory and the directories of
// every input.
func (s *session) configure(head gitstate.Head) error {
	if head.Commit != s.wfTip {
		s.wfTip = head.Commit
		s.trigger, s.patterns = TriggerCommit, nil
		if project, err := s.loadProject(head.Commit); err == nil && project != nil && project.Workflow != nil {
			if project.Workflow.Trigger != "" {
				s.trigger = project.Workflow.Trigger
			}
			for _, step := range project.Workflow.Steps {
				s.patterns = append(s.patterns, step.Inputs...)
				if step.FansOut() {
					s.patterns = append(s.patterns, step.TaskSource())
				}
			}
		}
		if s.opts.Trigger != "" {
			s.trigger = s.opts.Trigger
		}
	}
	dirs := s.watchDirs(head.Branch)
	if sameDirs(dirs, s.dirs) {
		return nil
	}
	if err := s.w.SetDirs(dirs); err != nil {
		return err
	}
	s.dirs = dirs
	if s.opts.OnWatching != nil {
		s.opts.OnWatching(Info{Branch: head.Branch, Trigger: s.trigger, Dirs: len(s.w.Watched()), Poll: s.opts.Poll})
	}
	return nil
}

// watchDirs is the watch set: .git without recursion (HEAD, the index,
// packed-refs), the directory of the branch's ref (refs/heads/feature for
// feature/x), the request directory, and in save mode .codemachine/ and
// each input's directory. The worktrees the orchestrator writes in live
// under .git/codemachine, outside all of these.
func (s *session) watchDirs(branch string) []watcher.Dir {
	r := s.repo
	ref := filepath.Join(r.CommonDir(), "refs", "heads", filepath.FromSlash(branch))
	dirs := []watcher.Dir{{Path: r.GitDir()}, {Path: r.CommonDir()}, {Path: filepath.Dir(ref)},
		{Path: filepath.Join(r.LocalDir(), requestsDir)}}
	if s.trigger != TriggerSave {
		return dirs
	}
	dirs = append(dirs, watcher.Dir{Path: filepath.Join(r.Root(), workflow.Dir), Recursive: true})
	for _, p := range s.patterns {
		dirs = append(dirs, inputDir(r.Root(), p))
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Path < dirs[j].Path })
	return dirs
}

// inputDir is the directory to watch for an input glob: its static prefix,
// recursively when the pattern can match below it ("src/**/*.go", "a/*/b")
// and alone when only the last segment has wildcards ("docs/*.md"). A
// literal path is watched as a recursive root: a directory stands for
// everything in it, and for a file the watcher watches the nearest
// existing directory above it.
func inputDir(root, pattern string) watcher.Dir {
	segs := strings.Split(pattern, "/")
	i := 0
	for i < len(segs) && !hasGlobMeta(segs[i]) {
		i++
	}
	if i == len(segs) {
		return watcher.Dir{Path: filepath.Join(root, filepath.FromSlash(pattern)), Recursive: true}
	}
	dir := filepath.Join(append([]string{root}, segs[:i]...)...)
	return watcher.Dir{Path: dir, Recursive: i < len(segs)-1 || strings.Contains(segs[i], "**")}
}

func sameDirs(a, b []watcher.Dir) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ignoredDirs asks git which of dirs it ignores: build output and
// dependencies are neither inputs nor worth a watch. When git cannot say,
// everything is watched rather than a change missed.
func (s *session) ignoredDirs(ctx context.Context, dirs []string) []string {
	ignored, err := s.repo.IgnoredDirs(ctx, dirs)
	if err != nil {
		return nil
	}
	return ignored
}

// loadProject is the workflow at commit, for its trigger and inputs.
func (s *session) loadProject(commit string) (*workflow.Project, error) {
	if s.project != nil {
		return s.project(commit)
	}
	fsys, err := s.repo.TreeFS(commit)
	if err != nil {
		return nil, err
	}
	return workflow.LoadProject(fsys, agents.WorkflowEngines())
}
