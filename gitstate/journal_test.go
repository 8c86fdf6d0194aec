package gitstate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// deadPID is the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestRecover stages what a kill -9 leaves at each point of a switch of
// the user's checkout and checks that Recover completes or undoes it,
// keeps the user's changes and removes only the lock it made.
func TestRecover(t *testing.T) {
	for _, tc := range []struct {
		name string
		// moved: the compare-and-swap of the ref happened (with the new
		// index in tmp, as read-tree wrote it).
		moved, userLock, alive bool
		// extraEdit: a file the switch rewrote was edited since.
		extraEdit bool
	}{
		{name: "killed after read-tree, before the ref moved"},
		{name: "killed after the ref moved", moved: true},
		{name: "a live git of the user's holds index.lock", userLock: true},
		{name: "the journal's process still runs", alive: true},
		{name: "an edit made since is kept", extraEdit: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"keep.txt": "k\n", "mod.txt": "a\n", "del.txt": "d\n"})
			base := git(t, dir, "rev-parse", "HEAD")
			next := stepCommit(t, r, base, map[string]string{"mod.txt": "b\n", "new.txt": "n\n", "del.txt": "\x00delete"}, "step")
			write(t, dir, "keep.txt", "the user's edit\n")
			ctx := t.Context()
			index := filepath.Join(r.GitDir(), "index")
			tmp := filepath.Join(r.LocalDir(), "switch-index-test")
			j := &switchJournal{Root: dir, Index: index, Tmp: tmp, Ref: "refs/heads/main", Old: base, New: next}
			if err := r.beginSwitch(ctx, j); err != nil {
				t.Fatal(err)
			}
			// What read-tree -m -u did before the kill.
			if err := copyIndex(index, tmp); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("git", "read-tree", "-m", "-u", base, next)
			cmd.Dir, cmd.Env = dir, append(os.Environ(), "GIT_INDEX_FILE="+tmp)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("read-tree: %v\n%s", err, out)
			}
			if tc.moved {
				git(t, dir, "update-ref", "refs/heads/main", next, base)
			}
			if tc.extraEdit {
				write(t, dir, "mod.txt", "edited since\n")
			}
			if !tc.alive {
				j.PID, j.Start = deadPID(t), ""
				if err := r.WriteLocal(journalFile, j); err != nil {
					t.Fatal(err)
				}
			}
			if tc.userLock {
				if err := os.WriteFile(index+".lock", []byte("DIRC user"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rc, err := r.Recover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.alive {
				if rc != nil {
					t.Fatalf("Recover with the writer alive = %+v", rc)
				}
				if _, err := os.Stat(index + ".lock"); err != nil {
					t.Fatal("a live switch's lock was removed")
				}
				return
			}
			if _, err := os.Stat(filepath.Join(r.LocalDir(), journalFile)); err == nil {
				t.Error("the journal is left")
			}
			if _, err := os.Stat(tmp); err == nil {
				t.Error("the temporary index is left")
			}
			if tc.userLock {
				if data, err := os.ReadFile(index + ".lock"); err != nil || string(data) != "DIRC user" {
					t.Fatalf("the user's lock was touched: %q %v", data, err)
				}
				os.Remove(index + ".lock")
			} else if _, err := os.Stat(index + ".lock"); err == nil {
				t.Fatal("index.lock is left")
			}
			if read(t, dir, "keep.txt") != "the user's edit\n" {
				t.Error("the user's edit is lost")
			}
			status := strings.TrimSpace(statusShort(t, dir))
			switch {
			case tc.moved:
				if !rc.Completed || status != "M keep.txt" {
					t.Errorf("completed %v, status %q", rc.Completed, status)
				}
			case tc.extraEdit:
				if !rc.Undone || strings.Join(rc.Kept, ",") != "mod.txt" || read(t, dir, "mod.txt") != "edited since\n" {
					t.Errorf("recovered %+v, mod.txt %q", rc, read(t, dir, "mod.txt"))
				}
			default:
				if !rc.Undone || status != "M keep.txt" || exists(dir, "new.txt") || read(t, dir, "mod.txt") != "a\n" || read(t, dir, "del.txt") != "d\n" {
					t.Errorf("undone %v, status %q", rc.Undone, status)
				}
			}
		})
	}
}

// TestRecoverPendingLock: a landing killed while it held the index lock
// before it touched anything (reading the tip, rebasing) leaves the lock
// and a pending journal; Recover removes both and changes nothing else.
func TestRecoverPendingLock(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a.txt", "the user's edit\n")
	j := &switchJournal{Root: dir, Index: filepath.Join(r.GitDir(), "index"), Ref: "refs/heads/main", Pending: true}
	if err := r.beginSwitch(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	j.PID, j.Start = deadPID(t), ""
	if err := r.WriteLocal(journalFile, j); err != nil {
		t.Fatal(err)
	}
	rc, err := r.Recover(t.Context())
	if err != nil || rc != nil {
		t.Fatalf("Recover = %+v, %v; want nothing to report", rc, err)
	}
	if exists(dir, ".git/index.lock") {
		t.Error("the landing's lock is still there")
	}
	if p, _ := r.localFile(journalFile); exists("/", p) {
		t.Error("the journal is still there")
	}
	if read(t, dir, "a.txt") != "the user's edit\n" || git(t, dir, "rev-parse", "HEAD") != base {
		t.Error("Recover changed the user's files or branch")
	}
	git(t, dir, "commit", "-qam", "the user commits again")
}

// TestBeginSwitchLinksTheJournalAsTheLock: the journal and the index lock
// are one written file under two names (a new inode is 0.3-1 ms of kernel
// time on ext4), and the lock is still told from anyone else's by the
// marker it holds.
func TestBeginSwitchLinksTheJournalAsTheLock(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	j := &switchJournal{Root: dir, Index: filepath.Join(r.GitDir(), "index"), Ref: "refs/heads/main", Pending: true}
	if err := r.beginSwitch(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	p, _ := r.localFile(journalFile)
	js, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := os.Stat(j.lock())
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(js, ls) {
		t.Error("the journal and the index lock are two files")
	}
	data, err := os.ReadFile(j.lock())
	if err != nil || !holdsMarker(data, j.Marker) {
		t.Fatalf("the lock = %q, %v; want it to hold the marker %q", data, err, j.Marker)
	}
	ents, err := os.ReadDir(r.LocalDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "lock-tmp-") {
			t.Errorf("beginSwitch left %s", e.Name())
		}
	}
}

// TestHoldsMarker: a lock is a switch's when it holds that switch's
// journal or, from an earlier version, its marker alone; never an index,
// another switch's journal or a file that only mentions the marker.
func TestHoldsMarker(t *testing.T) {
	const marker = "codemachine-switch-42-7\n"
	journal := func(m string) string {
		data, err := yaml.Marshal(&switchJournal{PID: 42, Marker: m, Ref: "refs/heads/main"})
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	for _, tc := range []struct {
		name, data string
		want       bool
	}{
		{"the marker alone", marker, true},
		{"the switch's journal", journal(marker), true},
		{"another switch's journal", journal("codemachine-switch-42-8\n"), false},
		{"the marker without its newline", strings.TrimSuffix(marker, "\n"), false},
		{"an index", "DIRC\x00\x00\x00\x02" + marker, false},
		{"the marker in another field", "pid: 42\nref: \"" + strings.TrimSuffix(marker, "\n") + "\"\n", false},
		{"YAML that is no journal", "pid: [\nmarker: x", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := holdsMarker([]byte(tc.data), marker); got != tc.want {
				t.Errorf("holdsMarker(%q) = %v, want %v", tc.data, got, tc.want)
			}
		})
	}
}

// TestRecoverAfterAZombie: a codemachine killed with kill -9 stays a
// zombie until its parent reaps it (a container's init may never do), with
// its pid and start time in /proc. Recover took it for alive and left its
// index.lock; the next landing wrote its own journal over the dead one's
// and waited on that lock, and a kill then left a lock no journal named:
// the user's git blocked for good. A zombie is dead.
func TestRecoverAfterAZombie(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	j := &switchJournal{Root: dir, Index: filepath.Join(r.GitDir(), "index"), Ref: "refs/heads/main", Pending: true}
	if err := r.beginSwitch(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()
	pid := zombie.Process.Pid
	for i := 0; !procDead(pid); i++ {
		if i > 5000 {
			t.Fatal("the child never became a zombie")
		}
		time.Sleep(time.Millisecond)
	}
	j.PID, j.Start = pid, procStart(pid)
	if j.Start == "" {
		t.Fatal("no start time for the zombie")
	}
	if err := r.WriteLocal(journalFile, j); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if exists(dir, ".git/index.lock") {
		t.Error("the dead landing's lock is still there")
	}
	git(t, dir, "commit", "-q", "--allow-empty", "-m", "the user commits")
}

// TestRecoverHalfWrittenFiles: a kill -9 of the process group during the
// switch's git read-tree -m -u leaves a file it had created and not yet
// written (empty, or a prefix of the new content), or one it had removed
// to write again and not yet created. Recover took both for edits made
// since and kept them: junk in the user's checkout, and the next landing
// of the step conflicted on it. Both are the switch's own and are undone.
func TestRecoverHalfWrittenFiles(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"keep.txt": "k\n", "mod.txt": "a\n", "mod2.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	next := stepCommit(t, r, base, map[string]string{"mod.txt": "b\n", "mod2.txt": "bbbb\n", "new.txt": "new content\n", "new2.txt": "n\n"}, "step")
	write(t, dir, "keep.txt", "the user's edit\n")
	index := filepath.Join(r.GitDir(), "index")
	j := &switchJournal{Root: dir, Index: index, Tmp: filepath.Join(r.LocalDir(), "switch-index-test"), Ref: "refs/heads/main", Old: base, New: next}
	if err := r.beginSwitch(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	// What the killed read-tree left: new.txt begun, new2.txt created
	// empty, mod.txt removed and not written again, mod2.txt begun.
	write(t, dir, "new.txt", "new con")
	write(t, dir, "new2.txt", "")
	write(t, dir, "mod2.txt", "bb")
	if err := os.Remove(filepath.Join(dir, "mod.txt")); err != nil {
		t.Fatal(err)
	}
	j.PID, j.Start = deadPID(t), ""
	if err := r.WriteLocal(journalFile, j); err != nil {
		t.Fatal(err)
	}
	rc, err := r.Recover(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rc == nil || !rc.Undone || len(rc.Kept) != 0 {
		t.Fatalf("Recover = %+v; want undone, nothing kept", rc)
	}
	if got := strings.TrimSpace(statusShort(t, dir)); got != "M keep.txt" {
		t.Errorf("status after the recovery: %q", got)
	}
	if read(t, dir, "keep.txt") != "the user's edit\n" {
		t.Error("the user's edit is lost")
	}
}

// TestRecoverForcedRollback: a forced rollback (ResetBranch with force)
// killed after it overwrote the user's uncommitted change and before the
// ref moved is undone by Recover, and the user's change comes back from
// where the rollback saved it. The journal names that commit; Recover
// read it as one (a journal of an earlier version names the saved ref).
func TestRecoverForcedRollback(t *testing.T) {
	for _, byRef := range []bool{false, true} {
		t.Run(fmt.Sprintf("saved named by its ref %v", byRef), func(t *testing.T) {
			testRecoverForcedRollback(t, byRef)
		})
	}
}

func testRecoverForcedRollback(t *testing.T, byRef bool) {
	dir, r := newRepo(t, map[string]string{"keep.txt": "k\n", "mod.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	next := stepCommit(t, r, base, map[string]string{"mod.txt": "b\n", "new.txt": "n\n"}, "step")
	git(t, dir, "reset", "-q", "--hard", next)
	write(t, dir, "mod.txt", "the user's edit\n")
	index := filepath.Join(r.GitDir(), "index")
	// What the kill leaves: the journal, the lock, the index before the
	// switch, the files as the switch wrote them (they stay so).
	var journal, lock, oldIndex []byte
	r.testHook = func(stage string) {
		if stage == "before-index" {
			journal, _ = os.ReadFile(filepath.Join(r.LocalDir(), journalFile))
			lock, _ = os.ReadFile(index + ".lock")
			oldIndex, _ = os.ReadFile(index)
		}
	}
	_, savedRef, err := r.ResetBranch(t.Context(), "main", base, next, true)
	if err != nil {
		t.Fatal(err)
	}
	r.testHook = nil
	if journal == nil || lock == nil || oldIndex == nil {
		t.Fatal("the switch never reached its index update")
	}
	if read(t, dir, "mod.txt") != "a\n" {
		t.Fatalf("the forced reset left mod.txt %q", read(t, dir, "mod.txt"))
	}
	git(t, dir, "update-ref", "refs/heads/main", next, base)
	var j switchJournal
	if err := yaml.Unmarshal(journal, &j); err != nil {
		t.Fatal(err)
	}
	if !j.Hard || j.Saved == "" {
		t.Fatalf("the journal of a forced rollback: %+v", j)
	}
	j.PID, j.Start = deadPID(t), ""
	if byRef {
		j.Saved = savedRef
	}
	if err := r.WriteLocal(journalFile, &j); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{index + ".lock": lock, index: oldIndex} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	rc, err := r.Recover(t.Context())
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if rc == nil || !rc.Undone {
		t.Fatalf("recovered %+v, want undone", rc)
	}
	if got := read(t, dir, "mod.txt"); got != "the user's edit\n" {
		t.Errorf("mod.txt is %q after the recovery, want the user's edit back", got)
	}
	if !exists(dir, "new.txt") {
		t.Error("new.txt of the commit the branch is still at is gone")
	}
	if _, err := os.Stat(index + ".lock"); err == nil {
		t.Error("index.lock is left")
	}
	if got := strings.TrimSpace(statusShort(t, dir)); got != "M mod.txt" {
		t.Errorf("git status after the recovery: %q", got)
	}
}

// TestBeginSwitchKeepsAnotherJournal: a switch that begins while another
// process's journal is there does not write its own over it. One of a
// killed process's is left for Recover (the next landing used to replace
// it, wait on the index.lock it named and remove the journal on giving
// up: the lock then blocked the user's git for good); a live process's is
// waited for, as its lock.
func TestBeginSwitchKeepsAnotherJournal(t *testing.T) {
	for _, alive := range []bool{false, true} {
		t.Run(fmt.Sprintf("alive=%v", alive), func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
			r.LockWait = 200 * time.Millisecond
			index := filepath.Join(r.GitDir(), "index")
			j := &switchJournal{Root: dir, Index: index, Ref: "refs/heads/main", Pending: true}
			if err := r.beginSwitch(t.Context(), j); err != nil {
				t.Fatal(err)
			}
			j.PID, j.Start = deadPID(t), ""
			if alive {
				cmd := exec.Command("sleep", "30")
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
				j.PID = cmd.Process.Pid
			}
			if err := r.WriteLocal(journalFile, j); err != nil {
				t.Fatal(err)
			}
			p, _ := r.localFile(journalFile)
			before, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			next := &switchJournal{Root: dir, Index: index, Ref: "refs/heads/main", Pending: true}
			err = r.beginSwitch(t.Context(), next)
			var held *LockHeldError
			switch {
			case !alive && !errors.Is(err, ErrSwitchInterrupted):
				t.Fatalf("beginSwitch over a dead process's journal = %v, want ErrSwitchInterrupted", err)
			case alive && !errors.As(err, &held):
				t.Fatalf("beginSwitch over a live process's journal = %v, want a LockHeldError", err)
			}
			if after, err := os.ReadFile(p); err != nil || string(after) != string(before) {
				t.Fatalf("the other journal was replaced: %q, %v", after, err)
			}
			if data, err := os.ReadFile(index + ".lock"); err != nil || !holdsMarker(data, j.Marker) {
				t.Fatalf("the other switch's lock = %q, %v", data, err)
			}
			if alive {
				return
			}
			if _, err := r.Recover(t.Context()); err != nil {
				t.Fatal(err)
			}
			if exists(dir, ".git/index.lock") {
				t.Fatal("Recover left the lock")
			}
			if err := r.beginSwitch(t.Context(), next); err != nil {
				t.Fatalf("beginSwitch after Recover: %v", err)
			}
			if err := os.Remove(next.lock()); err != nil {
				t.Fatal(err)
			}
			if err := r.removeJournal(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
