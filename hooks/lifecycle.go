// Package hooks runs a step's lifecycle hooks (before, after, on_failure)
// and installs codemachine's git hooks.
package hooks

import (
	"context"
	"fmt"
	"time"

	"github.com/codemachine/codemachine/agents"
)

// Timeout bounds one lifecycle hook; hooks are meant to be quick commands.
const Timeout = 10 * time.Minute

// Run runs a step's lifecycle hook command (when it is not empty) with sh -c
// in dir. name is "before", "after" or "on_failure" and appears in the
// error, which carries the command's last output line.
func Run(ctx context.Context, name, command, dir string, env []string) error {
	if command == "" {
		return nil
	}
	sh, err := agents.New("shell")
	if err != nil {
		return err
	}
	_, err = sh.Run(ctx, agents.Request{Command: command, Dir: dir, Env: env, Timeout: Timeout})
	if err != nil {
		return fmt.Errorf("%s hook failed: %w", name, err)
	}
	return nil
}
