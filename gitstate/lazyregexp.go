package gitstate

import (
	"regexp"
	"sync"
)

// lazyRegexp compiles expr the first time it is used, not while the
// program starts: Go runs every package's variable initialisers before
// main, for every command, whether it needs the expression or not.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
