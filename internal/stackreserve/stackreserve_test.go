package stackreserve

import (
	"runtime"
	"testing"
)

// TestGrowTakesItsFrame: grow's frame is as large as reserve (the compiler
// did not drop the buffer), so calling it on a fresh goroutine, whose
// stack starts at a few KiB, takes a larger stack: the stack memory in use
// grows by tens of KiB (the old stack's span may stay counted, so by less
// than the new stack's whole size).
func TestGrowTakesItsFrame(t *testing.T) {
	grown := make(chan uint64)
	go func() {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		grow()
		runtime.ReadMemStats(&after)
		grown <- after.StackInuse - before.StackInuse
	}()
	if got := <-grown; got < reserve/2 {
		t.Errorf("the goroutine's stacks grew by %d bytes calling grow, want %d or more", got, reserve/2)
	}
}
