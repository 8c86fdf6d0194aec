// Package githooks installs codemachine's git hooks (post-commit,
// post-merge, post-checkout), chaining the hooks that were there before and
// putting them back on uninstall, and starts the detached runs those hooks
// ask for. Only the CLI uses it; it imports nothing of codemachine's, so
// whether a run is wanted is for the caller to decide.
package githooks

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// GitHooks are the git hooks codemachine installs: after a commit, a merge
// (a pull included) and a checkout of a branch, the workflow may be due.
var GitHooks = []string{"post-commit", "post-merge", "post-checkout"}

// Marker is the line that identifies a hook written by codemachine.
const Marker = "# codemachine-git-hook v1"

// ChainedSuffix is appended to the name of a hook that was there before
// codemachine's: it is kept under that name, run first by codemachine's
// hook, and put back by Uninstall.
const ChainedSuffix = ".pre-codemachine"

// States of a git hook.
const (
	StateInstalled = "installed" // codemachine's hook
	StateAbsent    = "absent"    // no hook
	StateForeign   = "foreign"   // somebody else's hook
)

// HookStatus describes one git hook.
type HookStatus struct {
	Name  string `json:"name"`
	Path  string `json:"path"`
	State string `json:"state"`
	// Chained is the path of the previous hook kept beside codemachine's
	// ("" when there is none).
	Chained string `json:"chained,omitempty"`
	// Action is what Install or Uninstall did: "installed", "updated",
	// "restored" (the previous hook is back), "removed", "kept" (left as
	// it was).
	Action string `json:"action,omitempty"`
}

// InstallOptions say where to install the hooks and what they run.
type InstallOptions struct {
	// Dir is the hooks directory: `git rev-parse --git-path hooks`, which
	// honours core.hooksPath.
	Dir string
	// Program is the codemachine binary the hooks call.
	Program string
	// RunArgs are passed to the `codemachine run` the hooks start
	// (--engine, --model).
	RunArgs []string
}

// ConflictError reports a hook that cannot be installed because both the
// hook and its chained copy exist and the hook is not codemachine's.
type ConflictError struct {
	Hook, Chained string
}

// Error names both hooks in the way and what to move.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s is not codemachine's hook, and %s already holds an earlier one: move one of them away first", e.Hook, e.Chained)
}

// NotAHookError reports a hook path that holds a directory: git cannot
// run it, and parking it beside codemachine's hook would only make every
// commit's hook fail running it.
type NotAHookError struct {
	Hook string
}

// Error names the directory that sits where the hook belongs.
func (e *NotAHookError) Error() string {
	return fmt.Sprintf("%s is a directory, not a hook: move it away first", e.Hook)
}

// NotADirError reports a hooks directory that is no directory:
// core.hooksPath=/dev/null, the usual way to turn git's hooks off. git runs
// no hook from it, so codemachine's could not be installed there.
type NotADirError struct {
	Dir string
}

// Error names the hooks path that is not a directory and how to fix core.hooksPath.
func (e *NotADirError) Error() string {
	return fmt.Sprintf("the hooks directory %s is not a directory (core.hooksPath turns git's hooks off): git runs no hook from it; point core.hooksPath at a directory, or unset it, first", e.Dir)
}

// checkDir returns a *NotADirError when dir exists and is no directory.
func checkDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return &NotADirError{Dir: dir}
	}
	return nil
}

// Install writes codemachine's hooks into opts.Dir. An existing hook that
// is not codemachine's is renamed to <name>.pre-codemachine (content, mode
// and symlink-ness unchanged) and run first, with its arguments and stdin;
// its exit status stays the hook's. Installing again updates codemachine's
// hooks in place.
func Install(opts InstallOptions) ([]HookStatus, error) {
	if err := checkDir(opts.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("install git hooks: %w", err)
	}
	// Every hook is looked at before any is written: one that cannot be
	// installed leaves the others as they were, not half of them done.
	var all []HookStatus
	for _, name := range GitHooks {
		st, err := status(opts.Dir, name)
		if err != nil {
			return nil, err
		}
		if st.State == StateForeign {
			if st.Chained != "" {
				return nil, &ConflictError{Hook: st.Path, Chained: st.Chained}
			}
			if fi, err := os.Stat(st.Path); err == nil && fi.IsDir() {
				return nil, &NotAHookError{Hook: st.Path}
			}
		}
		all = append(all, st)
	}
	var out []HookStatus
	for _, st := range all {
		switch st.State {
		case StateInstalled:
			st.Action = "updated"
		case StateForeign:
			chained := st.Path + ChainedSuffix
			if err := os.Rename(st.Path, chained); err != nil {
				return out, fmt.Errorf("install %s: keep the existing hook: %w", st.Name, err)
			}
			st.Chained = chained
			st.Action = "installed"
		default:
			st.Action = "installed"
		}
		if err := writeAtomic(st.Path, Script(st.Name, opts.Program, opts.RunArgs), 0o755); err != nil {
			return out, fmt.Errorf("install %s: %w", st.Name, err)
		}
		st.State = StateInstalled
		out = append(out, st)
	}
	return out, nil
}

// Uninstall removes codemachine's hooks from dir and puts back the hooks
// they replaced, byte for byte. Hooks that are not codemachine's are left
// alone.
func Uninstall(dir string) ([]HookStatus, error) {
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	var out []HookStatus
	for _, name := range GitHooks {
		st, err := status(dir, name)
		if err != nil {
			return out, err
		}
		switch {
		case st.State == StateForeign:
			st.Action = "kept"
		case st.Chained != "":
			// Absent too: codemachine's hook was deleted by hand, but the
			// user's own hook is still parked beside it. Codemachine's is
			// removed first: a rename replaces a file with a file only.
			if st.State == StateInstalled {
				if err := os.Remove(st.Path); err != nil {
					return out, fmt.Errorf("uninstall %s: %w", name, err)
				}
			}
			if err := os.Rename(st.Chained, st.Path); err != nil {
				return out, fmt.Errorf("uninstall %s: restore the previous hook: %w", name, err)
			}
			st.State, st.Chained, st.Action = StateForeign, "", "restored"
		case st.State == StateInstalled:
			if err := os.Remove(st.Path); err != nil {
				return out, fmt.Errorf("uninstall %s: %w", name, err)
			}
			st.State, st.Action = StateAbsent, "removed"
		default:
			st.Action = "kept"
		}
		out = append(out, st)
	}
	return out, nil
}

// Status reports the state of each of codemachine's git hooks in dir.
func Status(dir string) ([]HookStatus, error) {
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	var out []HookStatus
	for _, name := range GitHooks {
		st, err := status(dir, name)
		if err != nil {
			return out, err
		}
		out = append(out, st)
	}
	return out, nil
}

func status(dir, name string) (HookStatus, error) {
	st := HookStatus{Name: name, Path: filepath.Join(dir, name), State: StateAbsent}
	if _, err := os.Lstat(st.Path + ChainedSuffix); err == nil {
		st.Chained = st.Path + ChainedSuffix
	}
	fi, err := os.Lstat(st.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return st, nil
	case err != nil:
		return st, fmt.Errorf("git hook %s: %w", name, err)
	}
	st.State = StateForeign
	if fi.Mode().IsRegular() {
		data, err := os.ReadFile(st.Path)
		if err != nil {
			return st, fmt.Errorf("git hook %s: %w", name, err)
		}
		if bytes.Contains(data, []byte("\n"+Marker+"\n")) {
			st.State = StateInstalled
		}
	}
	return st, nil
}

// Script is the hook codemachine installs as name. It runs the previous
// hook first, then hands over to `codemachine hooks run` in the
// background with no terminal attached, so that git returns at once; it
// exits with the previous hook's status (post-checkout's becomes the
// checkout's), or 0.
func Script(name, program string, runArgs []string) []byte {
	args := []string{"hooks", "run"}
	args = append(args, runArgs...)
	args = append(args, name)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n%s\n", Marker)
	fmt.Fprintf(&b, "# Installed by `codemachine hooks install`: after git's %s, it starts\n", name)
	b.WriteString("# `codemachine run` in the background unless codemachine is already running\n")
	b.WriteString("# in this repository. `codemachine hooks uninstall` removes it and puts back\n")
	fmt.Fprintf(&b, "# the hook that was here before (kept as %s%s and run first).\n", name, ChainedSuffix)
	b.WriteString("status=0\n")
	fmt.Fprintf(&b, "chained=\"$(dirname \"$0\")/%s%s\"\n", name, ChainedSuffix)
	b.WriteString("if [ -x \"$chained\" ]; then\n\t\"$chained\" \"$@\"\n\tstatus=$?\nfi\n")
	fmt.Fprintf(&b, "cm=%s\n", shellQuote(program))
	b.WriteString("[ -x \"$cm\" ] || cm=codemachine\n")
	fmt.Fprintf(&b, "\"$cm\" %s \"$@\" </dev/null >/dev/null 2>&1 &\n", strings.Join(quoted, " "))
	b.WriteString("exit $status\n")
	return []byte(b.String())
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeAtomic writes a file through a temporary one in the same directory,
// so that git never runs a half-written hook.
func writeAtomic(p string, data []byte, mode os.FileMode) error {
	tmp := p + ".codemachine-tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	// WriteFile leaves the mode of an existing file (and the umask
	// applies to a new one): the hook must be executable.
	if err := os.Chmod(tmp, mode); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// RunArgs reads the arguments codemachine's hook NAME in dir passes to
// `codemachine run` (--engine, --model), for a command that starts the run
// a hook would have started. ok is false when the hook is not
// codemachine's.
func RunArgs(dir, name string) (args []string, ok bool) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil || !bytes.Contains(data, []byte("\n"+Marker+"\n")) {
		return nil, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		rest, found := strings.CutPrefix(line, `"$cm" `)
		if !found {
			continue
		}
		words := shellWords(rest)
		// hooks run ARGS... NAME "$@" </dev/null ...
		if len(words) < 3 || words[0] != "hooks" || words[1] != "run" {
			return nil, false
		}
		for i := 2; i < len(words) && words[i] != name; i++ {
			args = append(args, words[i])
		}
		return args, true
	}
	return nil, false
}

// shellWords splits what shellQuote joined: plain words and '...' quotes
// (with '\” inside), up to the first word that is neither.
func shellWords(s string) []string {
	var words []string
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" || strings.HasPrefix(s, `"`) || strings.HasPrefix(s, "<") {
			return words
		}
		var b strings.Builder
		for s != "" && s[0] != ' ' {
			if s[0] == '\'' {
				end := strings.IndexByte(s[1:], '\'')
				if end < 0 {
					return words
				}
				b.WriteString(s[1 : 1+end])
				s = s[2+end:]
				continue
			}
			if strings.HasPrefix(s, `\'`) {
				b.WriteByte('\'')
				s = s[2:]
				continue
			}
			b.WriteByte(s[0])
			s = s[1:]
		}
		words = append(words, b.String())
	}
}
