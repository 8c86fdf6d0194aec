//go:build !linux

package agents

import "os"

// outputPipe is what a started program writes its standard output to,
// and the end codemachine reads (see outpipe_linux.go).
func outputPipe() (r, w *os.File, err error) {
	return os.Pipe()
}
