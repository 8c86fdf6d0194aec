package gitstate

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// Commits written in the process: the object git commit-tree would write
// for the same tree, parents, author, committer and message, byte for
// byte. commitInProcess declines (errObjectsByGit), leaving the commit to
// git, wherever git would write something else or decide something it does
// not: an identity missing from the environment and the configuration
// (git would guess one from the system, or refuse), a name or email git
// would clean up, a date given in the environment in any form but git's
// raw "seconds +zone", a signed commit (commit.gpgSign), a commit encoding
// other than the default, a message with a NUL, repeated parents, a time
// zone that is not whole minutes, or a tree or parent that is not there.

// person is a name and email as git would record them.
type person struct{ name, email string }

// identFor is the author (author true) or committer git would record,
// with git's precedence: the environment, then author.* or committer.*,
// then user.*, then (email only) EMAIL. ok is false when git would have to
// guess or would clean the value up.
func (r *Repo) identFor(c *fastConfig, author bool) (person, bool) {
	role := "committer"
	if author {
		role = "author"
	}
	lookup := func(field string) (string, bool) {
		if v, set := r.lookupEnv("GIT_" + strings.ToUpper(role) + "_" + strings.ToUpper(field)); set {
			return v, true
		}
		if v, set := c.get(role + "." + field); set {
			return v, true
		}
		if v, set := c.get("user." + field); set {
			return v, true
		}
		if field == "email" {
			return r.lookupEnv("EMAIL")
		}
		return "", false
	}
	name, ok1 := lookup("name")
	email, ok2 := lookup("email")
	if !ok1 || !ok2 || !identClean(name) || !identClean(email) {
		return person{}, false
	}
	return person{name: name, email: email}, true
}

// lookupEnv is os.LookupEnv as the repository's git commands see it.
func (r *Repo) lookupEnv(name string) (string, bool) {
	for i := len(r.env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(r.env[i], name+"="); ok {
			return v, true
		}
	}
	return os.LookupEnv(name)
}

// identClean reports whether git records s as it is: not empty, nothing
// git strips from its ends, no newline or angle bracket inside.
func identClean(s string) bool {
	if s == "" || strings.ContainsAny(s, "\n<>") {
		return false
	}
	crud := func(c byte) bool { return c <= 32 || strings.IndexByte(",:;<>\"\\'", c) >= 0 }
	return !crud(s[0]) && !crud(s[len(s)-1])
}

// rawDate parses a date of the environment in the forms whose meaning is
// not in doubt, as git records it: git's own "seconds +hhmm", or ISO 8601
// with seconds and a zone ("2026-01-02T03:04:05Z", "...+05:30"); ok is
// false for anything else.
func rawDate(s string) (string, bool) {
	if t, err := time.Parse(time.RFC3339, s); err == nil && !strings.Contains(s, "-00:00") &&
		(t.Format(time.RFC3339) == s || strings.HasSuffix(s, "+00:00") && t.Format("2006-01-02T15:04:05")+"+00:00" == s) {
		return gitTime(t)
	}
	secs, zone, found := strings.Cut(strings.TrimSpace(s), " ")
	if !found || len(zone) != 5 || (zone[0] != '+' && zone[0] != '-') {
		return "", false
	}
	if _, err := strconv.ParseUint(secs, 10, 63); err != nil || strings.HasPrefix(secs, "0") && secs != "0" {
		return "", false
	}
	for _, c := range zone[1:] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	if zone[3] > '5' { // minutes past 59: git would normalise
		return "", false
	}
	return secs + " " + zone, true
}

// gitTime formats t as git records a time, or ok false when its zone is
// not whole minutes.
func gitTime(t time.Time) (string, bool) {
	_, off := t.Zone()
	if off%60 != 0 {
		return "", false
	}
	return strconv.FormatInt(t.Unix(), 10) + " " + t.Format("-0700"), true
}

// commitInProcess writes the commit of spec, made at now, as a loose
// object; errObjectsByGit where git must write it (see above).
func (r *Repo) commitInProcess(ctx context.Context, spec CommitSpec, now time.Time) (string, error) {
	if _, err := r.objectsDir(); err != nil {
		return "", err
	}
	c, err := r.fastConfigFor(ctx)
	if err != nil {
		return "", errObjectsByGit
	}
	if !c.isBool("commit.gpgsign", false) {
		return "", errObjectsByGit
	}
	if _, set := c.get("i18n.commitencoding"); set {
		return "", errObjectsByGit
	}
	if !isHash(spec.Tree) || strings.IndexByte(spec.Message, 0) >= 0 {
		return "", errObjectsByGit
	}
	committer, ok := r.identFor(c, false)
	if !ok {
		return "", errObjectsByGit
	}
	author, ok := r.identFor(c, true)
	if !ok {
		return "", errObjectsByGit
	}
	if spec.Author.Name != "" {
		author.name = spec.Author.Name
	}
	if spec.Author.Email != "" {
		author.email = spec.Author.Email
	}
	if !identClean(author.name) || !identClean(author.email) {
		return "", errObjectsByGit
	}
	nowStr, ok := gitTime(now)
	if !ok {
		return "", errObjectsByGit
	}
	committerDate, authorDate := nowStr, nowStr
	if v, set := r.lookupEnv("GIT_COMMITTER_DATE"); set {
		if committerDate, ok = rawDate(v); !ok {
			return "", errObjectsByGit
		}
	}
	switch v, set := r.lookupEnv("GIT_AUTHOR_DATE"); {
	case !spec.Author.When.IsZero():
		if authorDate, ok = gitTime(spec.Author.When); !ok {
			return "", errObjectsByGit
		}
	case set:
		if authorDate, ok = rawDate(v); !ok {
			return "", errObjectsByGit
		}
	}
	if !r.hasObjects(spec.Tree, spec.Parents) {
		return "", errObjectsByGit
	}
	var b strings.Builder
	b.WriteString("tree " + spec.Tree + "\n")
	for _, p := range spec.Parents {
		b.WriteString("parent " + p + "\n")
	}
	fmt.Fprintf(&b, "author %s <%s> %s\n", author.name, author.email, authorDate)
	fmt.Fprintf(&b, "committer %s <%s> %s\n\n", committer.name, committer.email, committerDate)
	b.WriteString(spec.Message)
	if !strings.HasSuffix(spec.Message, "\n") {
		b.WriteString("\n")
	}
	return r.writeObject("commit", []byte(b.String()))
}

// hasObjects reports whether tree is a tree and parents are distinct
// commits, all in the object database.
func (r *Repo) hasObjects(tree string, parents []string) bool {
	seen := map[string]bool{}
	for _, p := range parents {
		if !isHash(p) || seen[p] {
			return false
		}
		seen[p] = true
	}
	if tree == emptyTreeSHA1 {
		// git knows the empty tree without having it; the commit needs it.
		if _, err := r.writeObject("tree", nil); err != nil {
			return false
		}
	}
	err := r.goGit(func(g *gitRepo) error {
		if _, err := g.Storer.EncodedObject(plumbing.TreeObject, plumbing.NewHash(tree)); err != nil {
			return err
		}
		for _, p := range parents {
			if _, err := g.Storer.EncodedObject(plumbing.CommitObject, plumbing.NewHash(p)); err != nil {
				return err
			}
		}
		return nil
	})
	return err == nil
}
