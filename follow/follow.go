// Package follow is how a codemachine process that holds the repository
// lock (a run, a retry, a watcher) lets others follow it live: it serves
// its orchestrator events on a Unix socket, and `codemachine ui` in any
// terminal connects to the socket of the lock holder's pid.
//
// The socket is $GIT_COMMON_DIR/codemachine/follow-<pid>.sock (or, when
// that path is too long for a socket address, a name derived from it under
// the system's temporary directory, see SocketPath). The protocol is JSON
// lines, server to client only: first a Hello (what the process is and
// what it is running right now, with each running unit's start and latest
// activity), then one orchestrator.Event per line as it happens.
//
// Following costs the lock holder nothing while nobody follows: Publish
// keeps the small picture a Hello needs (a map entry per running unit)
// and hands the event to no one. A follower that cannot keep up is
// disconnected rather than ever slowing the run down; it reconnects and
// gets a fresh Hello.
//
// The package sits above the orchestrator, like watch: the orchestrator
// does not know it is followed.
package follow

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/codemachine/codemachine/orchestrator"
)

// maxSocketPath is the longest socket path used as it is: sun_path holds
// 108 bytes on Linux (104 on the BSDs) with its terminating NUL.
const maxSocketPath = 100

// SocketPath is where the process pid serves its events, for the
// repository whose codemachine directory is localDir
// (gitstate.Repo.LocalDir). Both sides compute it the same way.
func SocketPath(localDir string, pid int) string {
	p := filepath.Join(localDir, "follow-"+strconv.Itoa(pid)+".sock")
	if len(p) <= maxSocketPath {
		return p
	}
	sum := sha256.Sum256([]byte(localDir))
	return filepath.Join(fallbackDir(), hex.EncodeToString(sum[:8])+"-"+strconv.Itoa(pid)+".sock")
}

// fallbackDir holds the sockets of repositories whose own path is too
// long, one directory per user.
func fallbackDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("codemachine-follow-%d", os.Getuid()))
}

// Hello is the first line a follower reads: who it follows and what runs.
type Hello struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"` // "codemachine run", "codemachine watch", ...
	Since   time.Time `json:"since"`   // when the process started serving
	// Run is the id of the run in progress ("" between a watcher's passes).
	Run string `json:"run,omitempty"`
	// Units are the units running now, in the order they started.
	Units []Unit `json:"units"`
}

// Unit is a unit running when a follower connects.
type Unit struct {
	Step    string    `json:"step"`
	Task    string    `json:"task,omitempty"`
	Title   string    `json:"title,omitempty"`
	Engine  string    `json:"engine,omitempty"`
	Model   string    `json:"model,omitempty"`
	Started time.Time `json:"started"`
	// Activity is its agent's latest activity (ActivityKind says of what
	// kind), "" before the first.
	Activity     string    `json:"activity,omitempty"`
	ActivityKind string    `json:"activity_kind,omitempty"`
	ActivityAt   time.Time `json:"activity_at,omitempty"`
}

// Key is "step" or "step/task".
func (u Unit) Key() string {
	if u.Task == "" {
		return u.Step
	}
	return u.Step + "/" + u.Task
}

// message is one line of the protocol: a Hello or an Event.
type message struct {
	Hello *Hello              `json:"hello,omitempty"`
	Event *orchestrator.Event `json:"event,omitempty"`
}
