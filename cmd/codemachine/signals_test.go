package main

import (
	"os"
	"os/signal"
	"slices"
	"syscall"
	"testing"
)

// TestStopSignals: SIGHUP (a closed terminal) stops codemachine as Ctrl-C
// does, unless it was started with SIGHUP ignored (nohup), which it keeps.
func TestStopSignals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ignored bool
		want    []os.Signal
	}{
		{"terminal", false, []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}},
		{"nohup", true, []os.Signal{os.Interrupt, syscall.SIGTERM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ignored {
				signal.Ignore(syscall.SIGHUP)
				defer signal.Reset(syscall.SIGHUP)
			}
			if got := stopSignals(); !slices.Equal(got, tc.want) {
				t.Errorf("stopSignals() = %v, want %v", got, tc.want)
			}
		})
	}
}
