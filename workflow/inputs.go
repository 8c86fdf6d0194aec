package workflow

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"

	"github.com/bmatcuk/doublestar/v4"
)

// ResolveInputs returns the files matching the patterns, sorted by path and
// without duplicates, each with its git blob id. A literal pattern that
// names a directory stands for every file under it; a pattern that matches
// nothing contributes nothing (an input not written yet). .git is never
// looked into. Hashes come from fsys when it implements BlobHasher (a
// commit's tree knows them without reading the files), else from reading
// the files.
func ResolveInputs(fsys fs.FS, patterns []string) ([]InputFile, error) {
	rfs := repoFS{fsys}
	seen := map[string]bool{}
	var paths []string
	addPath := func(p string) {
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	for _, pat := range patterns {
		clean, msg := checkGlob(pat)
		if msg != "" {
			return nil, fmt.Errorf("input %q: %s", pat, msg)
		}
		if !hasMeta(clean) {
			// The common case, a named file: one stat, no directory
			// reads.
			info, err := rfs.Stat(clean)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				continue
			case err != nil:
				return nil, fmt.Errorf("input %q: %w", pat, err)
			case !info.IsDir():
				addPath(clean)
				continue
			}
			err = fs.WalkDir(rfs, clean, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() {
					addPath(p)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("input %q: %w", pat, err)
			}
			continue
		}
		// doublestar walks only below the pattern's literal prefix.
		err := doublestar.GlobWalk(rfs, clean, func(p string, d fs.DirEntry) error {
			if !d.IsDir() {
				addPath(p)
			}
			return nil
		}, doublestar.WithFilesOnly(), doublestar.WithNoFollow(), doublestar.WithFailOnIOErrors())
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", pat, err)
		}
	}
	slices.Sort(paths)
	hasher, _ := fsys.(BlobHasher)
	out := make([]InputFile, 0, len(paths))
	for _, p := range paths {
		var h string
		var err error
		if hasher != nil {
			h, err = hasher.BlobHash(p)
		} else {
			h, err = hashFile(fsys, p)
		}
		if errors.Is(err, errIsDir) {
			continue // a symlink to a directory: its files are not inputs
		}
		if err != nil {
			return nil, fmt.Errorf("hash input %s: %w", p, err)
		}
		out = append(out, InputFile{Path: p, Hash: h})
	}
	return out, nil
}

var errIsDir = errors.New("is a directory")

// hashFile computes a file's git blob id, streaming it so that a large
// input does not have to fit in memory. A symbolic link is hashed as git
// stores it, as its target path, when fsys can tell (os.DirFS can).
func hashFile(fsys fs.FS, name string) (string, error) {
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		info, err := rl.Lstat(name)
		if err != nil {
			return "", err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := rl.ReadLink(name)
			if err != nil {
				return "", err
			}
			return BlobID([]byte(target)), nil
		}
	}
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	if info.IsDir() {
		return "", errIsDir
	}
	h := sha1.New()
	h.Write([]byte("blob " + strconv.FormatInt(info.Size(), 10) + "\x00"))
	n, err := io.Copy(h, f)
	if err != nil {
		return "", err
	}
	if n != info.Size() {
		return "", fmt.Errorf("%s changed while it was read", name)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// BlobID returns the git blob id of content: what `git hash-object` prints.
func BlobID(content []byte) string {
	h := sha1.New()
	h.Write([]byte("blob " + strconv.Itoa(len(content)) + "\x00"))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}
