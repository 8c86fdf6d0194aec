package workflow

import (
	"path"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// hasMeta reports whether a pattern (or one segment of it) has glob syntax.
// A backslash escape counts: the text is then not a plain path.
func hasMeta(s string) bool {
	return strings.ContainsAny(s, `*?[{\`)
}

// checkGlob validates a glob relative to the repository root and returns it
// cleaned ("./a//b" -> "a/b") so that it matches the slash-separated, clean
// paths of an fs.FS. msg is non-empty when the glob is refused.
func checkGlob(p string) (clean, msg string) {
	if p != "" && !strings.HasPrefix(p, "/") && !doublestar.ValidatePattern(p) {
		return "", "is not a valid glob pattern"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if s == ".." && i > 0 && hasMeta(strings.Join(segs[:i], "/")) {
			// "**/.." could climb any number of levels: refuse rather
			// than guess.
			return "", "escapes the repository (\"..\" after a wildcard)"
		}
	}
	return checkPath(p)
}

// checkPath validates a path relative to the repository root and returns it
// cleaned; msg is non-empty when the path is refused: absolute, escaping
// the repository, or inside .git/, which belongs to git alone.
func checkPath(p string) (clean, msg string) {
	if p == "" {
		return "", "empty path"
	}
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || isDrivePath(p) {
		return "", "is absolute; paths are relative to the repository root"
	}
	clean = path.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", "escapes the repository"
	}
	if clean == "." {
		return "", "names the repository root; use \"**\" for every file"
	}
	first, _, _ := strings.Cut(clean, "/")
	if strings.EqualFold(first, ".git") {
		return "", "points into .git/"
	}
	return clean, ""
}

func isDrivePath(p string) bool {
	return len(p) >= 2 && p[1] == ':' && ('a' <= p[0] && p[0] <= 'z' || 'A' <= p[0] && p[0] <= 'Z')
}

// globsOverlap reports whether some path could match both globs. It is a
// conservative approximation, used to find implicit dependencies:
//
//   - the patterns are compared segment by segment; "**" matches any number
//     of segments;
//   - two segments overlap when they are equal, when one is literal and the
//     other glob matches it, or, both having wildcards, when their literal
//     prefixes and suffixes are compatible ("gen_*.go" and "*.go" overlap,
//     "*.md" and "*.txt" do not);
//   - a literal pattern whose last segment has no extension may name a
//     directory, which stands for every file under it (ResolveInputs
//     expands it so): "src" overlaps "src/a.go", "main.rs" is a file.
func globsOverlap(a, b string) bool {
	return compileGlob(a).overlaps(compileGlob(b))
}

// globPat is a glob split into segments once, for the many comparisons a
// graph needs.
type globPat struct {
	raw  string
	segs []string
	// literal[i]: segs[i] is a plain name, neither "**" nor a pattern.
	literal []bool
}

func compileGlob(p string) globPat {
	segs := strings.Split(p, "/")
	if !hasMeta(p) && !strings.Contains(strings.TrimLeft(segs[len(segs)-1], "."), ".") {
		segs = append(segs, "**")
	}
	literal := make([]bool, len(segs))
	for i, s := range segs {
		literal[i] = s != "**" && !hasMeta(s)
	}
	return globPat{raw: p, segs: segs, literal: literal}
}

func (a globPat) overlaps(b globPat) bool {
	if a.raw == b.raw {
		return true
	}
	as, bs := a.segs, b.segs
	// Most pairs differ in a leading literal directory or file name.
	for i := 0; i < len(as) && i < len(bs) && a.literal[i] && b.literal[i]; i++ {
		if as[i] != bs[i] {
			return false
		}
	}
	// memo[i*(len(bs)+1)+j]: 0 unknown, 1 no, 2 yes.
	memo := make([]byte, (len(as)+1)*(len(bs)+1))
	var match func(i, j int) bool
	match = func(i, j int) bool {
		k := i*(len(bs)+1) + j
		if memo[k] != 0 {
			return memo[k] == 2
		}
		var r bool
		switch {
		case i == len(as) && j == len(bs):
			r = true
		case i < len(as) && as[i] == "**":
			r = match(i+1, j) || (j < len(bs) && match(i, j+1))
		case j < len(bs) && bs[j] == "**":
			r = match(i, j+1) || (i < len(as) && match(i+1, j))
		case i == len(as) || j == len(bs):
			r = false
		default:
			r = segmentsOverlap(as[i], bs[j]) && match(i+1, j+1)
		}
		memo[k] = 1
		if r {
			memo[k] = 2
		}
		return r
	}
	return match(0, 0)
}

// segmentsOverlap compares two single path segments (no "/").
func segmentsOverlap(x, y string) bool {
	if x == y {
		return true
	}
	mx, my := hasMeta(x), hasMeta(y)
	switch {
	case !mx && !my:
		return false
	case !mx:
		return doublestar.MatchUnvalidated(y, x)
	case !my:
		return doublestar.MatchUnvalidated(x, y)
	}
	px, sx := literalEnds(x)
	py, sy := literalEnds(y)
	return (strings.HasPrefix(px, py) || strings.HasPrefix(py, px)) &&
		(strings.HasSuffix(sx, sy) || strings.HasSuffix(sy, sx))
}

// literalEnds returns the literal text before the first and after the last
// glob character of a segment.
func literalEnds(s string) (prefix, suffix string) {
	first := strings.IndexAny(s, `*?[{\`)
	last := strings.LastIndexAny(s, `*?]}`)
	prefix = s[:first]
	if last >= first {
		suffix = s[last+1:]
	}
	return prefix, suffix
}
