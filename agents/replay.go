package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// replayEngine applies recorded runs (RecordingPath) instead of calling a
// model: workflow authors test a workflow at zero cost with it, and the
// demo runs on the example's recordings.
type replayEngine struct{}

func (replayEngine) Name() string { return "replay" }

// Run applies the recording of req.Step (and req.Task) inside req.Dir and
// reports the recorded result. Result.Duration is the time the replay took;
// the recorded duration is not waited for.
func (e replayEngine) Run(ctx context.Context, req Request) (Result, error) {
	start := time.Now()
	fail := func(format string, args ...any) (Result, error) {
		return Result{}, &RunError{Class: Fatal, Engine: e.Name(), Msg: fmt.Sprintf(format, args...)}
	}
	if req.Step == "" {
		return fail("no step to replay")
	}
	rel := RecordingPath(req.Step, req.Task)
	if req.Recording != "" {
		rel = req.Recording
	}
	// The worktree is opened as an os.Root: no path of the recording, nor
	// the recording's own path, can lead outside it, not even through a
	// symbolic link that is already in the tree.
	root, err := os.OpenRoot(req.Dir)
	if err != nil {
		return fail("open worktree: %v", err)
	}
	defer root.Close()
	var data []byte
	if req.Recordings != nil {
		data, err = fs.ReadFile(req.Recordings, rel)
	} else {
		data, err = root.ReadFile(filepath.FromSlash(rel))
	}
	if errors.Is(err, fs.ErrNotExist) {
		what := "step " + req.Step
		if req.Task != "" {
			what += " (task " + req.Task + ")"
		}
		return fail("no recording for %s: %s; record one with `codemachine run --record`", what, rel)
	}
	if err != nil {
		return fail("read recording: %v", err)
	}
	rec, err := ParseRecording(rel, data)
	if err != nil {
		return fail("%v", err)
	}
	if rec.Step != req.Step || rec.Task != req.Task {
		return fail("%s: recorded for step %q task %q, not step %q task %q", rel, rec.Step, rec.Task, req.Step, req.Task)
	}

	log := eventLog{w: req.Log}
	for i, f := range rec.Files {
		if ctx.Err() != nil {
			return Result{}, &RunError{Class: Fatal, Engine: e.Name(), Canceled: true,
				Msg: fmt.Sprintf("canceled after applying %d of %d files", i, len(rec.Files))}
		}
		ev, err := applyFile(root, f)
		if err != nil {
			return fail("%s: files[%d]: %v", rel, i, err)
		}
		log.write("replay", ev)
		if req.OnEvent != nil {
			req.OnEvent(Event{Time: time.Now(), Kind: "tool", Text: ev.Action + " " + ev.Path})
		}
	}
	res := Result{
		Text:      rec.Text,
		TokensIn:  rec.TokensIn,
		TokensOut: rec.TokensOut,
		CostUSD:   rec.CostUSD,
		CostKnown: rec.CostKnown,
		SessionID: rec.Session,
		Model:     rec.Model,
		Duration:  time.Since(start),
	}
	if rec.Fingerprint != "" && req.Fingerprint != "" && rec.Fingerprint != req.Fingerprint {
		res.Warnings = append(res.Warnings, fmt.Sprintf(
			"%s was recorded for another prompt (the step's definition, agent, engine, model or inputs, or the task's text, changed since): it replays what the agent did then, which may not fit",
			rel))
	}
	if log.err != nil {
		return res, &RunError{Class: Fatal, Engine: e.Name(), Msg: "write event log: " + log.err.Error(), Result: res}
	}
	return res, nil
}

// fileEvent is the log record of one applied file.
type fileEvent struct {
	Type   string `json:"type"`   // "file"
	Action string `json:"action"` // "write" or "delete"
	Path   string `json:"path"`
	Bytes  int    `json:"bytes,omitempty"`
	Mode   string `json:"mode,omitempty"`
}

// applyFile writes or deletes one file inside root. A symbolic link at the
// path itself is replaced (or deleted), never written through; a deleted
// path that is already gone is fine.
func applyFile(root *os.Root, f FileChange) (fileEvent, error) {
	ev := fileEvent{Type: "file", Path: f.Path}
	if err := checkPath(f.Path); err != nil {
		return ev, err
	}
	name := filepath.FromSlash(f.Path)
	fi, err := root.Lstat(name)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ev, err
	}
	if exists && fi.IsDir() {
		return ev, fmt.Errorf("%s is a directory", f.Path)
	}
	if f.Deleted {
		ev.Action = "delete"
		if !exists {
			return ev, nil
		}
		return ev, root.Remove(name)
	}
	ev.Action = "write"
	perm := fs.FileMode(0o644)
	if f.Mode != "" {
		if perm, err = parseMode(f.Mode); err != nil {
			return ev, err
		}
	}
	ev.Bytes, ev.Mode = len(f.Content), fmt.Sprintf("%04o", perm)
	if dir := filepath.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return ev, err
		}
	}
	if exists && fi.Mode()&fs.ModeSymlink != 0 {
		if err := root.Remove(name); err != nil {
			return ev, err
		}
	}
	if err := root.WriteFile(name, f.Content, perm); err != nil {
		return ev, err
	}
	// WriteFile keeps the mode of an existing file and applies the umask
	// to a new one; the recording says what the mode is.
	return ev, root.Chmod(name, perm)
}

// eventLog writes engine-generated events to a run's log in the runner's
// format; after the first failed write it stops and keeps the error.
type eventLog struct {
	w   io.Writer
	err error
}

func (l *eventLog) write(stream string, event any) {
	if l.w == nil || l.err != nil {
		return
	}
	line, err := json.Marshal(struct {
		T      string `json:"t"`
		Stream string `json:"stream"`
		Event  any    `json:"event"`
	}{time.Now().UTC().Format(time.RFC3339Nano), stream, event})
	if err == nil {
		_, err = l.w.Write(append(line, '\n'))
	}
	l.err = err
}
