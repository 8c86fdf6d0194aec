package gitstate

import (
	"context"
	"os"
	"os/exec"
)

// Command is the program name (git, or the shell that runs the editor git
// names) run as the repository's own git commands run: found on PATH
// without its relative entries and the directories in the working tree
// (outsidePath), and with that PATH, so that neither it nor what it starts
// (the editor, ssh, gpg) is a program a step landed there (a bin/git where
// direnv's PATH_add bin put bin on PATH). It runs in dir with the process's
// environment otherwise.
func (r *Repo) Command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	path := r.gitPath()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Path, cmd.Err = findProgram(path, name)
	cmd.Dir = dir
	env := append(os.Environ(), r.env...)
	// The last PATH is the one the program gets.
	cmd.Env = append(env, "PATH="+path)
	return cmd
}

// OutsidePath is the PATH the repository's git commands run with and are
// found on: PATH without its relative entries and the directories in the
// working tree or git directory (see outsidePath), for the programs
// codemachine starts outside the sandbox besides git (doctor's probes of
// the agents' CLIs).
func (r *Repo) OutsidePath() string {
	return r.gitPath()
}
