package mcpserver

import (
	"os"
	"testing"

	"github.com/codemachine/codemachine/sandbox"
)

// TestMain lets this test binary be the sandbox launcher: the steps the
// server's run tool starts re-execute it to start sandboxed processes.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}
