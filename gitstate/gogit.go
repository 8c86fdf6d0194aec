package gitstate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/filesystem/dotgit"

	"github.com/codemachine/codemachine/internal/fastread"
)

// gitRepo is a repository's objects, refs and config as go-git's storage
// reads them. It is opened from go-git's storage packages, not its root
// package: that one links go-git's transports (HTTP, SSH and their
// crypto), which codemachine never uses (git itself fetches and pushes),
// and Go initialises every linked package at start-up.
//
// Its objects are read by objReader first (objread.go), and by go-git
// when that does not answer; commits, trees and tags are decoded by
// objparse.go.
type gitRepo struct {
	Storer *fastStorage
}

// openGitRepo opens the storage of the repository whose git dir is gitDir
// (a linked worktree's, whose objects and refs are in commonDir, or the
// main one, when both are the same).
func openGitRepo(gitDir, commonDir string) (*gitRepo, error) {
	if _, err := os.Stat(gitDir); err != nil {
		return nil, err
	}
	var fs billy.Filesystem = osfs.New(gitDir)
	if commonDir != gitDir {
		fs = dotgit.NewRepositoryFilesystem(fs, osfs.New(commonDir))
	}
	// Alternates (a git clone --shared, say) name directories anywhere
	// on the machine: go-git looks them up from the root.
	st := filesystem.NewStorageWithOptions(fs, cache.NewObjectLRUDefault(), filesystem.Options{AlternatesFS: osfs.New("/")})
	// go-git reads SHA-1 repositories only: in a SHA-256 one it cuts every
	// object name to 40 digits and finds nothing ("object not found").
	// Its parse of the config is skipped when the file does not spell the
	// setting at all (neither git nor go-git reads the repository's format
	// from an included file): it was most of opening the repository, which
	// every status does.
	if mayNameObjectFormat(commonDir) {
		if cfg, err := st.Config(); err == nil {
			if f := cfg.Raw.Section("extensions").Option("objectformat"); f != "" && !strings.EqualFold(f, "sha1") {
				return nil, fmt.Errorf("%w: its objects are named with %s (extensions.objectFormat), and codemachine reads SHA-1 repositories only",
					ErrObjectFormat, f)
			}
		}
	}
	return &gitRepo{Storer: &fastStorage{Storage: st, objs: newObjReader(commonDir)}}, nil
}

// mayNameObjectFormat reports whether the config file in commonDir may set
// extensions.objectFormat: it spells the name (in any case), or it cannot
// be read (go-git's parse then decides, as it did for every repository).
func mayNameObjectFormat(commonDir string) bool {
	data, err := fastread.ReadFile(filepath.Join(commonDir, "config"))
	return err != nil || bytes.Contains(bytes.ToLower(data), []byte("objectformat"))
}

// ErrObjectFormat is a repository whose object names are not SHA-1 (git
// init --object-format=sha256).
var ErrObjectFormat = errors.New("unsupported object format")

// close releases the files the in-house reader keeps open; go-git's
// storage keeps none between reads.
func (g *gitRepo) close() { g.Storer.objs.close() }

// Reference is the ref called name, followed to the ref it points at when
// resolved.
func (g *gitRepo) Reference(name plumbing.ReferenceName, resolved bool) (*plumbing.Reference, error) {
	if resolved {
		return storer.ResolveReference(g.Storer, name)
	}
	return g.Storer.Reference(name)
}

// References iterates over every ref.
func (g *gitRepo) References() (storer.ReferenceIter, error) { return g.Storer.IterReferences() }

// Config is the repository's config file (not the user's or the system's).
func (g *gitRepo) Config() (*config.Config, error) { return g.Storer.Config() }

// ResolveRevision resolves a ref name the way git does (rev, refs/rev,
// refs/tags/rev, refs/heads/rev, refs/remotes/rev, refs/remotes/rev/HEAD).
// Any other form (rev~n, rev^, rev@{...}, :/text, an abbreviated hash) is
// git's to answer: it returns plumbing.ErrReferenceNotFound for those.
func (g *gitRepo) ResolveRevision(rev string) (*plumbing.Hash, error) {
	if strings.ContainsAny(rev, "~^:@{}\\ \t*?[") || strings.HasPrefix(rev, "-") {
		return nil, fmt.Errorf("revision %q: %w", rev, plumbing.ErrReferenceNotFound)
	}
	for _, name := range []string{rev, "refs/" + rev, "refs/tags/" + rev, "refs/heads/" + rev, "refs/remotes/" + rev, "refs/remotes/" + rev + "/HEAD"} {
		ref, err := storer.ResolveReference(g.Storer, plumbing.ReferenceName(name))
		if err == nil {
			h := ref.Hash()
			if ref.Type() == plumbing.HashReference {
				// An annotated tag: the commit it points at.
				c, isTag, err := g.peelTag(h)
				if err != nil {
					return nil, err
				}
				if isTag {
					h = c
				}
			}
			return &h, nil
		}
	}
	return nil, fmt.Errorf("revision %q: %w", rev, plumbing.ErrReferenceNotFound)
}
