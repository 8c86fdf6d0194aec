package gitstate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/codemachine/codemachine/internal/fastread"
)

// Lock is the repository lock: one codemachine orchestrator per
// repository. It is an flock on LocalDir/lock, so it vanishes with its
// process however that process ends.
type Lock struct {
	f *os.File
	// TookOverFrom is the pid of a previous holder that died without
	// releasing the lock (its record was still in the file), 0 otherwise.
	TookOverFrom int
	// TookOverCommand is what that previous holder was running.
	TookOverCommand string
}

// Lock takes the repository lock for command (what to tell another
// codemachine that finds the lock held). When a live process holds it the
// error is a *LockedError naming that process.
func (r *Repo) Lock(command string) (*Lock, error) {
	p, err := r.localPath("lock")
	if err != nil {
		return nil, err
	}
	// The file is never removed: unlinking a locked file lets a second
	// process lock a new file of the same name while the first still
	// holds the old one.
	f, err := openLockFile(p, os.O_RDWR|os.O_CREATE)
	if errors.Is(err, errNotRegular) {
		return nil, &DamagedFileError{Path: r.RelPath(p), Problem: notAFile(err) + ", not a file"}
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if err := flockOrDeadHolder(f); err != nil {
		pid, cmd := readLockFile(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{PID: pid, Command: cmd}
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	l := &Lock{f: f}
	l.TookOverFrom, l.TookOverCommand = readLockFile(f)
	if err := writeLockFile(f, os.Getpid(), command); err != nil {
		l.Release()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return l, nil
}

// openLockFile opens the lock file at p, refusing with errNotRegular a
// named pipe, socket or device planted there: opening a named pipe to
// read would wait for a writer for ever (status hung), and one opened to
// read and write would hang the read of its record. It is opened
// non-blocking, so that the open itself cannot wait, which changes
// nothing for a regular file.
func openLockFile(p string, flag int) (*os.File, error) {
	f, err := os.OpenFile(p, flag|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, err
		}
		return nil, &os.PathError{Op: "open", Path: p, Err: errNotRegular}
	}
	return f, nil
}

// deadHolderWait bounds how long Lock waits for a lock whose holder on
// record is dead.
var deadHolderWait = 3 * time.Second

// flockOrDeadHolder takes the lock's flock. When it is held and the
// holder on record is dead (killed with kill -9 a moment ago), the flock
// is held by a child that the dead holder forked and that has not reached
// its exec yet (close-on-exec lets the lock's descriptor go only there;
// a sandboxed step's child waits for its user namespace to be set up by
// the parent, which on a loaded machine takes a while to learn it is
// gone), or by a new holder about to write its record: it is waited for,
// rather than naming a dead process as the one running.
func flockOrDeadHolder(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return err
	}
	if pid, _ := readLockFile(f); pid <= 0 || processRuns(pid) {
		return err
	}
	for deadline := time.Now().Add(deadHolderWait); time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
	}
	return err
}

// processRuns reports whether pid is a process that has not exited.
func processRuns(pid int) bool {
	err := syscall.Kill(pid, 0)
	return (err == nil || errors.Is(err, syscall.EPERM)) && !procDead(pid)
}

// Release gives the lock up. The file is emptied first, so that the next
// holder does not mistake this clean exit for a crash.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}

// Handback gives a lock up like Release, but a lock taken over from a
// holder that died is left with that holder's record, as this process
// found it: a command that only tidied up (a status finishing an
// interrupted landing) must not hide the crash from the next run, which
// stops the process groups the dead holder left running when it takes
// the lock over.
func (l *Lock) Handback() {
	if l == nil || l.f == nil {
		return
	}
	if l.TookOverFrom == 0 {
		l.Release()
		return
	}
	_ = writeLockFile(l.f, l.TookOverFrom, l.TookOverCommand)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}

// LockHolder reports who holds the repository lock, if anyone. Held with
// a dead holder on record (killed with kill -9 a moment ago), the flock is
// a child's that the dead holder forked and that has not reached its exec
// yet, or a new holder's about to write its record: as Lock does, it waits
// (at most deadHolderWait) for the one or the other, rather than telling
// a dead process as running (status right after the kill).
func (r *Repo) LockHolder() (pid int, command string, held bool) {
	// Not os.Open, which would start the runtime's poller in a status.
	f, err := fastread.Open(filepath.Join(r.commonDir, "codemachine", "lock")) // LocalDir would create it
	if err != nil {
		return 0, "", false // a named pipe there is Lock's to report
	}
	defer f.Close()
	deadline := time.Now().Add(deadHolderWait)
	for {
		// A shared lock is granted exactly when nobody holds the
		// exclusive one.
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			return 0, "", false
		}
		pid, command = readLockFile(f)
		if pid <= 0 || processRuns(pid) || !time.Now().Before(deadline) {
			return pid, command, true
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readLockFile(f *os.File) (pid int, command string) {
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<16))
	if err != nil {
		return 0, ""
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "pid "); ok {
			pid, _ = strconv.Atoi(strings.TrimSpace(v))
		} else if v, ok := strings.CutPrefix(line, "command "); ok {
			command = strings.TrimSpace(v)
		}
	}
	return pid, command
}

func writeLockFile(f *os.File, pid int, command string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(fmt.Sprintf("pid %d\ncommand %s\n", pid, oneLineText(command))), 0)
	return err
}
