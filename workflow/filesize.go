package workflow

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/yamlnode"
)

// DefaultMaxFileSize is the largest file a step may add or change when
// the workflow sets no max_file_size: 10 MB.
const DefaultMaxFileSize = 10 * 1000 * 1000

var fileSizeKeys = []string{"limit", "allow"}

// FileSize is a max_file_size: setting as written, at the workflow's top
// level (the default of every step) or in a step: a size alone
// (max_file_size: 50MB) or a mapping {limit, allow}.
type FileSize struct {
	// Limit in bytes; 0 when not written (the workflow's applies, then
	// DefaultMaxFileSize).
	Limit int64
	// Allow are globs of paths that may be larger. A step's list adds to
	// the workflow's.
	Allow []string
}

// MaxFileSizeFor is the max_file_size that applies to step s: its own
// limit, else the workflow's, else DefaultMaxFileSize, with the
// workflow's allowed paths and then the step's.
func (w *Workflow) MaxFileSizeFor(s *Step) FileSize {
	out := FileSize{Limit: DefaultMaxFileSize}
	for _, fs := range []FileSize{w.MaxFileSize, s.MaxFileSize} {
		if fs.Limit > 0 {
			out.Limit = fs.Limit
		}
		out.Allow = append(out.Allow, fs.Allow...)
	}
	return out
}

// Refuses reports whether a file at p (slash-separated, relative to the
// repository) of size bytes is over the limit, and no glob of Allow
// matches p.
func (f FileSize) Refuses(p string, size int64) bool {
	if size <= f.Limit {
		return false
	}
	for _, g := range f.Allow {
		if ok, _ := doublestar.Match(g, p); ok {
			return false
		}
	}
	return true
}

// fileSize reads a max_file_size: value.
func (d *yamlDoc) fileSize(n *yaml.Node, where string) FileSize {
	r := yamlnode.Resolve(n)
	if r.Kind == yaml.ScalarNode {
		return FileSize{Limit: d.size(r, where+"max_file_size")}
	}
	kvs, ok := d.mapping(n, where+"max_file_size")
	if !ok {
		return FileSize{}
	}
	var fs FileSize
	for _, kv := range kvs {
		switch kv.name {
		case "limit":
			fs.Limit = d.size(kv.val, where+"max_file_size: limit")
		case "allow":
			fs.Allow, _ = d.globs(kv.val, where+"max_file_size: allow")
		default:
			d.unknownKey(kv, " in "+where+"max_file_size", fileSizeKeys)
		}
	}
	return fs
}

// size reads a size: a whole number of bytes, or one with a unit (B, KB,
// MB, GB: powers of 1000; KiB, MiB, GiB: of 1024), e.g. 10MB, 512 KiB.
func (d *yamlDoc) size(n *yaml.Node, what string) int64 {
	v, ok := d.str(n, what)
	if !ok {
		return 0
	}
	b, err := ParseSize(v)
	if err != nil {
		d.errs.Add(d.pos(n), "%s: %v", what, err)
		return 0
	}
	return b
}

var sizeUnits = []struct {
	name string
	mult int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1},
}

// ParseSize reads a size such as 10MB, 512 KiB or 1000 (bytes); it must be
// positive.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.name); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*float64(mult) >= 1<<62 {
		return 0, fmt.Errorf("want a positive size such as 10MB, 512KiB or 1000 (bytes), got %q", s)
	}
	return int64(f * float64(mult)), nil
}

// FormatSize writes a size in the largest decimal unit it reaches.
func FormatSize(b int64) string {
	switch {
	case b >= 1000*1000*1000:
		return strconv.FormatFloat(float64(b)/1e9, 'f', -1, 64) + " GB"
	case b >= 1000*1000:
		return strconv.FormatFloat(float64(b)/1e6, 'f', 1, 64) + " MB"
	case b >= 1000:
		return strconv.FormatFloat(float64(b)/1e3, 'f', 1, 64) + " KB"
	}
	return strconv.FormatInt(b, 10) + " B"
}
