package testenv

import (
	"os"
	"strconv"
	"time"
)

// ScaleEnv is the one setting that stretches every limit a test must put
// on a wait (an engine's timeout, a deadline for a process to appear) for
// slow or loaded machines: a factor, 1 by default. Tests await events
// wherever they can; where a limit cannot be avoided it goes through Scale.
const ScaleEnv = "CODEMACHINE_TEST_SCALE"

// Scale returns d stretched by CODEMACHINE_TEST_SCALE (a positive number,
// fractions allowed; anything else counts as 1).
func Scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * scaleFactor())
}

func scaleFactor() float64 {
	f, err := strconv.ParseFloat(os.Getenv(ScaleEnv), 64)
	if err != nil || f <= 0 {
		return 1
	}
	return f
}

// Patience is how long a test waits for an event that must come (a
// process to start, a session to end, a file to appear) before it gives up
// and fails: generous, because reaching it fails the test anyway and a
// loaded machine must not, and stretched by CODEMACHINE_TEST_SCALE.
func Patience() time.Duration {
	return Scale(3 * time.Minute)
}

// CLIRunPatience is how long a test lets one whole run of a real agent
// CLI take before it kills it and fails: such a run is work, not a
// moment (about 10 s alone on a quiet 2-core machine, 30 s with four
// starting at once, and ten times that on a heavily loaded one), so it
// gets more than Patience; stretched by CODEMACHINE_TEST_SCALE too.
func CLIRunPatience() time.Duration {
	return Scale(12 * time.Minute)
}
