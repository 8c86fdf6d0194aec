package workflow

import (
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/yamlnode"
)

// Sandbox modes (the sandbox: key): auto sandboxes every step
// wherever the system can and warns once per run where it cannot;
// required refuses to run a step unsandboxed; off runs steps without the
// filesystem sandbox (their processes still end with them).
const (
	SandboxAuto     = "auto"
	SandboxRequired = "required"
	SandboxOff      = "off"
)

var (
	sandboxModes = []string{SandboxAuto, SandboxRequired, SandboxOff}
	sandboxKeys  = []string{"mode", "writable"}
)

// Sandbox is a sandbox: setting as written, at the workflow's top level
// (the default of every step) or in a step: either a mode alone
// (sandbox: required) or a mapping {mode, writable}.
type Sandbox struct {
	// Mode is auto, required or off; "" when not written (the
	// workflow's applies, then auto).
	Mode string
	// Writable are paths the step may write besides its worktree, its
	// TMPDIR and its engine's config dirs, as written: relative to the
	// repository root, absolute, under ~/ (the user's home), or starting
	// with $NAME (a variable of the user's environment; left out when it
	// is unset). A step's list adds to the workflow's.
	Writable []string
	// Pos is where the setting is written; zero when it is not.
	Pos Pos
}

// SandboxFor is the sandbox setting that applies to step s: its own mode,
// else the workflow's, else auto (Pos says where the mode came from, zero
// for the default), with the workflow's writable paths and then the
// step's.
func (w *Workflow) SandboxFor(s *Step) Sandbox {
	out := Sandbox{Mode: SandboxAuto}
	for _, sb := range []Sandbox{w.Sandbox, s.Sandbox} {
		if sb.Mode != "" {
			out.Mode, out.Pos = sb.Mode, sb.Pos
		}
		out.Writable = append(out.Writable, sb.Writable...)
	}
	return out
}

// sandbox reads a sandbox: value.
func (d *yamlDoc) sandbox(n *yaml.Node, where string) Sandbox {
	sb := Sandbox{Pos: d.at(n)}
	r := yamlnode.Resolve(n)
	if r.Kind == yaml.ScalarNode {
		sb.Mode = d.sandboxMode(r, where)
		return sb
	}
	kvs, ok := d.mapping(n, where+"sandbox")
	if !ok {
		return Sandbox{}
	}
	for _, kv := range kvs {
		switch kv.name {
		case "mode":
			sb.Mode = d.sandboxMode(kv.val, where)
		case "writable":
			sb.Writable = d.writablePaths(kv.val, where)
		default:
			d.unknownKey(kv, " in "+where+"sandbox", sandboxKeys)
		}
	}
	return sb
}

// sandboxMode reads a mode, "" when it is none.
func (d *yamlDoc) sandboxMode(n *yaml.Node, where string) string {
	v, ok := d.str(n, where+"sandbox")
	if !ok {
		return ""
	}
	for _, m := range sandboxModes {
		if v == m {
			return v
		}
	}
	d.errs.Add(d.at(n), "%ssandbox: want auto, required or off, got %q%s", where, v, suggest(v, sandboxModes))
	return ""
}

// writablePaths reads and checks the writable list.
func (d *yamlDoc) writablePaths(n *yaml.Node, where string) []string {
	vals, nodes := d.strList(n, where+"sandbox: writable", "a list of paths")
	var out []string
	for i, v := range vals {
		if msg := checkWritable(v); msg != "" {
			d.errs.Add(d.at(nodes[i]), "%ssandbox: writable: %q %s", where, v, msg)
			continue
		}
		out = append(out, v)
	}
	return out
}

// checkWritable says what is wrong with a writable path ("" when nothing).
func checkWritable(p string) string {
	switch {
	case strings.TrimSpace(p) == "":
		return "is empty"
	case strings.ContainsRune(p, 0):
		return "holds a NUL byte"
	case strings.HasPrefix(p, "~") && p != "~" && !strings.HasPrefix(p, "~/"):
		return "names another user's home: only ~/ is expanded"
	case p == "~" || path.Clean(p) == "/":
		return "would make everything writable: use sandbox: off instead"
	case path.Clean(p) == "~":
		return "is your home: that would make it writable (use sandbox: off instead)"
	}
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "~") || strings.HasPrefix(p, "$") {
		return ""
	}
	// Relative to the repository root: what the run's check of the
	// resolved path refuses is known from the text already.
	clean := path.Clean(p)
	first, _, _ := strings.Cut(clean, "/")
	switch {
	case clean == ".":
		return "is the repository: that would make it writable (use sandbox: off instead)"
	case !slices.ContainsFunc(strings.Split(clean, "/"), func(seg string) bool { return seg != ".." }):
		return "holds the repository: that would make it writable (use sandbox: off instead)"
	case strings.EqualFold(clean, ".git"):
		return "is the repository's git directory, which a step may not write"
	case first == ".codemachine":
		return "lies inside .codemachine, which a step may not write"
	}
	return ""
}
