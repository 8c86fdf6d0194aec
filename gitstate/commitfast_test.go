package gitstate

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gitCommitTree runs git commit-tree as CommitTree did before commits
// were written in the process, with extra environment.
func gitCommitTree(t *testing.T, dir string, env []string, msg, tree string, parents ...string) string {
	t.Helper()
	args := []string{"commit-tree", tree}
	for _, p := range parents {
		args = append(args, "-p", p)
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git commit-tree: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// unsetenv removes an environment variable for the test (t.Setenv cannot
// unset one).
func unsetenv(t *testing.T, name string) {
	old, had := os.LookupEnv(name)
	os.Unsetenv(name)
	t.Cleanup(func() {
		if had {
			os.Setenv(name, old)
		}
	})
}

// TestCommitInProcessLikeGit: the commit written in the process is the one
// git commit-tree writes for the same tree, parents, people, dates and
// message (the same id), for identities from the environment, from the
// configuration and given by the caller, and git fsck finds it sound.
func TestCommitInProcessLikeGit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	ctx := t.Context()
	head := git(t, dir, "rev-parse", "HEAD")
	tree := git(t, dir, "rev-parse", "HEAD^{tree}")
	second := stepCommit(t, r, head, map[string]string{"b": "b\n"}, "second")
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.FixedZone("", 90*60))
	nowRaw := strconv.FormatInt(now.Unix(), 10) + " +0130"
	t.Setenv("GIT_AUTHOR_DATE", nowRaw)
	t.Setenv("GIT_COMMITTER_DATE", nowRaw)
	tests := []struct {
		name    string
		setup   func(t *testing.T)
		spec    CommitSpec
		gitEnv  []string
		parents []string
	}{
		{name: "identities from the environment", spec: CommitSpec{Message: "subject\n\nbody\n"}, parents: []string{head}},
		{name: "a message without a final newline, no parent", spec: CommitSpec{Message: "no newline"}},
		{name: "two parents", spec: CommitSpec{Message: "merge\n"}, parents: []string{head, second}},
		{name: "the caller's author", spec: CommitSpec{Message: "step\n\nCodemachine-Step: x\n",
			Author: Signature{Name: "codemachine claude/opus", Email: "codemachine@localhost", When: time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", -7*3600))}},
			gitEnv: []string{"GIT_AUTHOR_NAME=codemachine claude/opus", "GIT_AUTHOR_EMAIL=codemachine@localhost", "GIT_AUTHOR_DATE=1772625967 -0700"}, parents: []string{head}},
		{name: "identities from the configuration", setup: func(t *testing.T) {
			for _, k := range []string{"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"} {
				unsetenv(t, k)
			}
			git(t, dir, "config", "user.name", "Config User")
			git(t, dir, "config", "user.email", "user@example.com")
			git(t, dir, "config", "author.name", "Config Author")
		}, spec: CommitSpec{Message: "from config\n"}, parents: []string{second}},
		{name: "ISO dates", setup: func(t *testing.T) {
			t.Setenv("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
			t.Setenv("GIT_COMMITTER_DATE", "2026-07-08T09:10:11+05:30")
		}, spec: CommitSpec{Message: "iso\n"}, parents: []string{head}},
		{name: "dates now", setup: func(t *testing.T) {
			unsetenv(t, "GIT_AUTHOR_DATE")
			unsetenv(t, "GIT_COMMITTER_DATE")
		}, spec: CommitSpec{Message: "now\n"}, gitEnv: []string{"GIT_AUTHOR_DATE=" + nowRaw, "GIT_COMMITTER_DATE=" + nowRaw}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			spec := tt.spec
			spec.Tree, spec.Parents = tree, tt.parents
			before := r.Processes()
			got, err := r.commitInProcess(ctx, spec, now)
			if err != nil {
				t.Fatal(err)
			}
			if n := r.Processes() - before; n > 1 { // the configuration, read once
				t.Fatalf("%d git processes", n)
			}
			msg := spec.Message
			if !strings.HasSuffix(msg, "\n") {
				msg += "\n"
			}
			if want := gitCommitTree(t, dir, tt.gitEnv, msg, tree, tt.parents...); got != want {
				t.Fatalf("commit %s, git commit-tree: %s\n%s", got, want, git(t, dir, "cat-file", "-p", want))
			}
			git(t, dir, "fsck", "--strict", "--no-dangling")
		})
	}
}

// TestCommitLeavesToGit: where git would decide more than it is given
// (a date to parse, an identity to clean up or guess, a signature), the
// commit is git's.
func TestCommitLeavesToGit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	ctx := t.Context()
	head := git(t, dir, "rev-parse", "HEAD")
	tree := git(t, dir, "rev-parse", "HEAD^{tree}")
	t.Setenv("GIT_AUTHOR_DATE", "1778049489 +0130")
	t.Setenv("GIT_COMMITTER_DATE", "1778049489 +0130")
	tests := []struct {
		name  string
		setup func(t *testing.T)
		spec  CommitSpec
	}{
		{"a date in another form", func(t *testing.T) { t.Setenv("GIT_COMMITTER_DATE", "2026-01-02 03:04:05") }, CommitSpec{}},
		{"a name git cleans up", func(t *testing.T) {}, CommitSpec{Author: Signature{Name: " spaced ", Email: "a@b"}}},
		{"commit.gpgSign", func(t *testing.T) { git(t, dir, "config", "commit.gpgSign", "true") }, CommitSpec{}},
		{"a missing tree", func(t *testing.T) {}, CommitSpec{Tree: strings.Repeat("1", 40)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(t)
			t.Cleanup(func() { exec.Command("git", "-C", dir, "config", "--unset", "commit.gpgSign").Run() })
			spec := tt.spec
			if spec.Tree == "" {
				spec.Tree = tree
			}
			spec.Parents, spec.Message = []string{head}, "m\n"
			if _, err := r.commitInProcess(ctx, spec, time.Now()); !errors.Is(err, errObjectsByGit) {
				t.Fatalf("in-process commit: %v, want errObjectsByGit", err)
			}
		})
	}
}

// TestMergeTreeInOneStep: a merge of changes to different files starts no
// git process and gives git merge-tree's tree; the throwaway commits that
// make base the merge base otherwise are written in the process, the same
// commits git commit-tree writes, so that such a merge is one git
// merge-tree.
func TestMergeTreeInOneStep(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "1\n2\n3\n", "b": "b\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	ours := stepCommit(t, r, base, map[string]string{"a": "one\n2\n3\n"}, "ours")
	theirs := stepCommit(t, r, base, map[string]string{"b": "B\n", "n/c": "c\n"}, "theirs")
	clash := stepCommit(t, r, base, map[string]string{"a": "1\n2\nthree\n"}, "clash")
	before := r.Processes()
	tree, conflicts, err := r.MergeTree(ctx, base, ours, theirs)
	if err != nil || len(conflicts) != 0 {
		t.Fatalf("disjoint merge: %v, %v", conflicts, err)
	}
	if n := r.Processes() - before; n != 0 {
		t.Fatalf("a disjoint merge started %d git processes", n)
	}
	if want, _, err := r.mergeCommits(ctx, ours, theirs); err != nil || tree != want {
		t.Fatalf("disjoint merge %s, git merge-tree %s (%v)", tree, want, err)
	}
	for _, c := range []struct{ treeish, parent string }{{base, ""}, {ours, base}, {theirs + "^{tree}", ""}} {
		got, err := r.syntheticInProcess(c.treeish, c.parent)
		if c.treeish != theirs+"^{tree}" && err != nil {
			t.Fatal(err)
		}
		if err != nil {
			continue // a revision, not an id: git's
		}
		args := []string{"commit-tree", c.treeish + "^{tree}"}
		if c.parent != "" {
			args = append(args, "-p", c.parent)
		}
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), syntheticEnv...)
		cmd.Stdin = strings.NewReader("merge base\n")
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != got {
			t.Fatalf("synthetic commit %s, git commit-tree %s (%v)", got, out, err)
		}
	}
	before = r.Processes()
	merged, conflicts, err := r.MergeTree(ctx, ours, clash, theirs)
	if err != nil || len(conflicts) != 0 {
		t.Fatalf("merge with another base: %v, %v", conflicts, err)
	}
	if got := git(t, dir, "cat-file", "-p", merged+":a"); got != "1\n2\nthree" {
		t.Fatalf("merged a: %q", got)
	}
	if n := r.Processes() - before; n > 3 {
		t.Fatalf("a merge with another base started %d git processes (merge-base, rev-parse, merge-tree)", n)
	}
	git(t, dir, "fsck", "--strict", "--no-dangling")
}

// TestCommitSignedUnderGpgSign: with commit.gpgSign, codemachine's commits
// are signed with the user's key as git commit signs theirs (git
// commit-tree alone does not sign), and a key git cannot use is a
// SigningError that says what to do, not an unsigned commit.
func TestCommitSignedUnderGpgSign(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("no ssh-keygen")
	}
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	ctx := t.Context()
	head := git(t, dir, "rev-parse", "HEAD")
	tree := git(t, dir, "rev-parse", "HEAD^{tree}")
	key := t.TempDir() + "/id_ed25519"
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "a@b", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	signers := t.TempDir() + "/allowed_signers"
	if err := os.WriteFile(signers, []byte("a@b "+string(pub)), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "config", "gpg.format", "ssh")
	git(t, dir, "config", "gpg.ssh.allowedSignersFile", signers)
	git(t, dir, "config", "user.signingKey", key)
	git(t, dir, "config", "commit.gpgSign", "yes")

	id, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{head}, Message: "signed\n"})
	if err != nil {
		t.Fatalf("CommitTree: %v", err)
	}
	if !strings.Contains(git(t, dir, "cat-file", "commit", id), "\ngpgsig -----BEGIN SSH SIGNATURE-----") {
		t.Fatalf("commit %s is not signed:\n%s", id, git(t, dir, "cat-file", "commit", id))
	}
	git(t, dir, "verify-commit", id)

	git(t, dir, "config", "user.signingKey", key+".missing")
	_, err = r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{head}, Message: "unsignable\n"})
	var se *SigningError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "commit.gpgSign") {
		t.Fatalf("CommitTree with a missing key: %v, want a SigningError", err)
	}

	git(t, dir, "config", "commit.gpgSign", "false")
	id, err = r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{head}, Message: "unsigned\n"})
	if err != nil || strings.Contains(git(t, dir, "cat-file", "commit", id), "gpgsig") {
		t.Fatalf("commit.gpgSign=false: %s, %v", id, err)
	}
}
