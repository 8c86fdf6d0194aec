// Package lazyre holds regular expressions compiled on first use.
package lazyre

import (
	"regexp"
	"sync"
)

// New returns a function compiling expr the first time it is called, not
// while the program starts: Go runs every package's variable initialisers
// before main, for every command, whether it needs the expression or not.
func New(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
