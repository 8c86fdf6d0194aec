package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/gitstate"
)

// reasonFromEditor asks for a rejection's reason in the person's editor,
// as git commit does without -m: git's choice of editor (GIT_EDITOR,
// core.editor, VISUAL, EDITOR, else vi), on a file whose lines starting
// with # are left out. An empty reason rejects nothing (a usage error).
//
// git and the editor's shell are repo's: found, and run with a PATH,
// without the directories of PATH in the working tree, where a step may
// have landed a git or vi of its own (gitstate.Repo.Command). Neither is
// tied to the command's context: an interrupt must not kill the editor
// and leave the terminal in its modes.
func reasonFromEditor(c *cli.Context, repo *gitstate.Repo, key string) (string, error) {
	dir := globalString(c, "C")
	query := repo.Command(context.Background(), dir, "git", "var", "GIT_EDITOR")
	editor, err := query.Output()
	if err != nil || len(bytes.TrimSpace(editor)) == 0 {
		return "", usageErrorf("reject needs a reason: -m TEXT (no editor: git var GIT_EDITOR: %v)", err)
	}
	f, err := os.CreateTemp("", "codemachine-reject-*.md")
	if err != nil {
		return "", fmt.Errorf("reject: a file for the reason: %w", err)
	}
	defer os.Remove(f.Name())
	template := "\n# Why is the work of " + key + " rejected? The next attempt gets this text as .Feedback.\n" +
		"# Lines starting with # are left out; an empty reason rejects nothing.\n"
	_, err = f.WriteString(template)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("reject: write %s: %w", f.Name(), err)
	}
	// As git does: the editor is a shell command, the file its argument.
	ed := repo.Command(context.Background(), dir, "sh", "-c", strings.TrimSpace(string(editor))+` "$@"`, "editor", f.Name())
	ed.Stdin, ed.Stdout, ed.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := ed.Run(); err != nil {
		return "", fmt.Errorf("reject: the editor (%s) failed: %w; nothing was rejected", strings.TrimSpace(string(editor)), err)
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		return "", fmt.Errorf("reject: read the reason: %w", err)
	}
	var kept []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			kept = append(kept, line)
		}
	}
	reason := strings.TrimSpace(strings.Join(kept, "\n"))
	if reason == "" {
		return "", usageErrorf("reject: the reason is empty; nothing was rejected")
	}
	return reason, nil
}
