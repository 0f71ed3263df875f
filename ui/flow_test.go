package ui

import (
	"sync"
	"testing"
	"time"
)

// TestCoalescerFlush checks Flush runs what a Trigger asked for at once
// and only then: the timer's run afterwards does nothing, and a later
// Trigger runs again.
func TestCoalescerFlush(t *testing.T) {
	var (
		mu     sync.Mutex
		queued []func()
	)
	do := func(fn func()) {
		mu.Lock()
		queued = append(queued, fn)
		mu.Unlock()
	}
	// wait returns the next run the timer handed to do.
	wait := func() func() {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			mu.Lock()
			if len(queued) > 0 {
				fn := queued[0]
				queued = queued[1:]
				mu.Unlock()
				return fn
			}
			mu.Unlock()
		}
		t.Fatal("the timer did not run")
		return nil
	}
	runs := 0
	c := newCoalescer(time.Millisecond, do, func() { runs++ })

	c.Flush()
	if runs != 0 {
		t.Fatalf("Flush with nothing triggered ran %d times", runs)
	}
	c.Trigger()
	c.Trigger()
	c.Flush()
	if runs != 1 {
		t.Fatalf("Flush after Trigger ran %d times, want 1", runs)
	}
	wait()()
	if runs != 1 {
		t.Errorf("the timer ran again after Flush: %d runs", runs)
	}
	c.Trigger()
	wait()()
	if runs != 2 {
		t.Errorf("a Trigger after Flush gave %d runs, want 2", runs)
	}
}
