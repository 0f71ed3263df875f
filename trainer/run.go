package trainer

import (
	"context"
	"sync"
)

// Run is a training run working in its own goroutine. Its events arrive on
// Events in order until the channel closes after Finished or Failed. The
// run waits for each event to be received, so the caller must keep
// receiving until the channel closes (a UI drops what it cannot show, it
// does not stop reading). Pause, Resume, Stop and SaveNow act between
// optimizer steps; they are safe to call from any goroutine, at any time,
// also after the run ended.
type Run struct {
	events chan Event
	plan   Plan
	done   chan struct{}
	err    error // the run's result, set before done closes
	cancel context.CancelFunc

	mu      sync.Mutex
	paused  bool
	stopped bool
	saveNow bool
	wake    chan struct{} // a control changed
}

// Start checks cfg completely (settings, base model, dataset: every problem
// comes back at once as ValidationErrors before any work), plans the run
// and starts it. Cancelling ctx stops the run as Stop does: what was
// trained is saved with its resume state.
func Start(ctx context.Context, cfg Config) (*Run, error) {
	j, err := prepare(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	return launch(ctx, j), nil
}

// Continue resumes the unfinished run whose resume state is at statePath
// (see Unfinished). The run continues with the settings it was started
// with and reaches the same weights, with the same losses, as if it had
// never been interrupted; it refuses a dataset that changed since.
func Continue(ctx context.Context, statePath string) (*Run, error) {
	st, err := readState(statePath)
	if err != nil {
		return nil, err
	}
	j, err := prepare(ctx, st.Config, st)
	if err != nil {
		return nil, err
	}
	return launch(ctx, j), nil
}

func launch(ctx context.Context, j *job) *Run {
	r := &Run{
		events: make(chan Event, 64),
		plan:   j.plan,
		done:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
	}
	work, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	j.run = r
	go func() {
		defer close(r.done)
		defer close(r.events)
		defer cancel()
		r.err = j.train(work)
	}()
	return r
}

// Events is the run's event stream (see Run).
func (r *Run) Events() <-chan Event { return r.events }

// Plan is the run's arithmetic, also sent as the Planned event.
func (r *Run) Plan() Plan { return r.plan }

// Pause holds the run after the current step; Paused acknowledges it.
func (r *Run) Pause() { r.set(func() { r.paused = true }) }

// Resume continues a paused run; Resumed acknowledges it.
func (r *Run) Resume() { r.set(func() { r.paused = false }) }

// SaveNow writes the LoRA and its resume state after the current step.
func (r *Run) SaveNow() { r.set(func() { r.saveNow = true }) }

// Stop ends the run after the current step (a sample preview in progress
// is abandoned), saving the LoRA and its resume state; the run then sends
// Finished with Stopped set.
func (r *Run) Stop() {
	r.set(func() { r.stopped = true })
	r.cancel()
}

// Wait blocks until the run has ended and returns nil when it finished or
// was stopped, or the error it failed with.
func (r *Run) Wait() error {
	<-r.done
	return r.err
}

func (r *Run) set(change func()) {
	r.mu.Lock()
	change()
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// controls returns the pending controls and clears SaveNow.
func (r *Run) controls() (paused, stopped, saveNow bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	paused, stopped, saveNow = r.paused, r.stopped, r.saveNow
	r.saveNow = false
	return
}
