// Package stackreserve grows the main goroutine's stack to its working
// size once, at the start of package initialisation.
//
// A goroutine's stack starts small and doubles when a call needs more,
// each time copying the stack and adjusting every frame on it through
// the functions' stack maps (runtime.copystack). A one-shot command's main
// goroutine grew three times (to 64 KiB: initialisation and the cli
// package call deep) and each copy, of a deeper stack than the last and
// looking up tables the process had not touched yet, cost about 1% of
// `codemachine version`. Grown here, before almost every other package's
// initialisation, the stack is copied once while it is shallow; the pages
// the reservation touches are those the deepest calls would touch anyway.
// A garbage collection gives back what a long-running command then leaves
// unused.
//
// The package must stay free of imports: packages are initialised in the
// order of their import paths once their imports are, so this one runs
// before every module dependency whose path sorts after it (go-git, the
// JSON Schema, expr and MCP packages, OpenTelemetry, YAML).
package stackreserve

// reserve is the frame grow takes: with what is on the stack already and
// the runtime's guard, the stack doubles to 64 KiB at once.
const reserve = 40 << 10

// sink keeps grow's frame from being optimised away.
var sink int

//go:noinline
func grow() int {
	var buf [reserve]byte
	buf[sink%reserve] = 1
	return int(buf[(sink+1)%reserve])
}

func init() { sink = grow() }
