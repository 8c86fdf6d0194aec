package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/urfave/cli/v2"
)

// reasonFromEditor asks for a rejection's reason in the person's editor,
// as git commit does without -m: git's choice of editor (GIT_EDITOR,
// core.editor, VISUAL, EDITOR, else vi), on a file whose lines starting
// with # are left out. An empty reason rejects nothing (a usage error).
func reasonFromEditor(c *cli.Context, key string) (string, error) {
	dir := globalString(c, "C")
	query := exec.Command("git", "var", "GIT_EDITOR")
	query.Dir = dir
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
	ed := exec.Command("sh", "-c", strings.TrimSpace(string(editor))+` "$@"`, "editor", f.Name())
	ed.Dir, ed.Stdin, ed.Stdout, ed.Stderr = dir, os.Stdin, os.Stdout, os.Stderr
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
