package dataset

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"lorastudio/atomicfile"
)

// DefaultSaveDelay is how long a Saver waits after the last edit of a file.
const DefaultSaveDelay = 700 * time.Millisecond

// SaveState is where a caption file stands relative to the edits.
type SaveState int

const (
	// Saved: the file on disk holds the latest edit (or was never edited).
	Saved SaveState = iota
	// Pending: an edit waits for the debounce delay.
	Pending
	// Failed: the last write failed; the edit is kept in memory and
	// retried on the next edit or Flush.
	Failed
)

func (s SaveState) String() string {
	switch s {
	case Saved:
		return "saved"
	case Pending:
		return "unsaved"
	case Failed:
		return "save failed"
	}
	return fmt.Sprintf("SaveState(%d)", int(s))
}

// SaveStatus is a file's state and, when Failed, why.
type SaveStatus struct {
	State SaveState
	Err   error
}

// Saver writes caption files in the background, coalescing the edits of
// one file that come within a delay of each other into one atomic write.
// Queue snapshots the caption on the calling goroutine, so the Saver never
// reads an Image the UI is changing.
type Saver struct {
	delay   time.Duration
	onState func(path string, st SaveStatus)

	mu      sync.Mutex
	entries map[string]*saveEntry
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closed  bool
	writeMu sync.Mutex // one write at a time, in the order taken
}

type saveEntry struct {
	text   string
	locked bool
	due    time.Time
	state  SaveState
	err    error
	writes int // edits queued, to tell a newer edit from the one written
}

// NewSaver starts a Saver. delay <= 0 means DefaultSaveDelay. onState, if
// not nil, is called (on the Saver's goroutine, or Flush's caller) when a
// file's state changes, with the caption path.
func NewSaver(delay time.Duration, onState func(path string, st SaveStatus)) *Saver {
	if delay <= 0 {
		delay = DefaultSaveDelay
	}
	s := &Saver{
		delay:   delay,
		onState: onState,
		entries: map[string]*saveEntry{},
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.loop()
	return s
}

// Queue schedules im's current tags to be written after the delay. A
// locked caption (not UTF-8) is never written; its state becomes Failed
// at once with ErrCaptionLocked.
func (s *Saver) Queue(im *Image) {
	text := im.captionFile()
	s.mu.Lock()
	e := s.entries[im.CaptionPath]
	if e == nil {
		e = &saveEntry{}
		s.entries[im.CaptionPath] = e
	}
	e.text, e.locked, e.writes = text, im.CaptionLocked, e.writes+1
	e.due = time.Now().Add(s.delay)
	st := SaveStatus{State: Pending}
	if e.locked {
		e.state, e.err = Failed, fmt.Errorf("save %s: %w", im.CaptionPath, ErrCaptionLocked)
		st = SaveStatus{State: Failed, Err: e.err}
	} else {
		e.state, e.err = Pending, nil
	}
	s.mu.Unlock()
	s.notify(im.CaptionPath, st)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Status reports the state of the caption file at path.
func (s *Saver) Status(path string) SaveStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[path]; e != nil {
		return SaveStatus{State: e.state, Err: e.err}
	}
	return SaveStatus{State: Saved}
}

// Unsaved returns the caption paths that are pending or failed.
func (s *Saver) Unsaved() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p, e := range s.entries {
		if e.state != Saved {
			out = append(out, p)
		}
	}
	return out
}

// Flush writes every pending or failed edit now and returns the failures
// joined (nil when all saved).
func (s *Saver) Flush() error {
	return s.writeDue(time.Time{}, true)
}

// Close flushes and stops the background goroutine. The Saver must not be
// used afterwards.
func (s *Saver) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	return s.Flush()
}

func (s *Saver) loop() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.writeDue(time.Now(), false)
		next := s.nextDue()
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-s.stop:
			return
		case <-s.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// nextDue is the earliest due time of a pending edit, zero if none.
func (s *Saver) nextDue() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	for _, e := range s.entries {
		if e.state == Pending && (next.IsZero() || e.due.Before(next)) {
			next = e.due
		}
	}
	return next
}

// writeDue writes pending edits due by now (all of them when now is zero);
// retryFailed also retries failed, unlocked ones.
func (s *Saver) writeDue(now time.Time, retryFailed bool) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	type job struct {
		path, text string
		writes     int
	}
	var jobs []job
	var errs []error
	s.mu.Lock()
	for p, e := range s.entries {
		switch {
		case e.state == Pending && (now.IsZero() || !e.due.After(now)):
		case e.state == Failed && retryFailed && !e.locked:
		case e.state == Failed && e.locked && retryFailed:
			errs = append(errs, e.err)
			continue
		default:
			continue
		}
		jobs = append(jobs, job{p, e.text, e.writes})
	}
	s.mu.Unlock()
	for _, j := range jobs {
		err := atomicfile.WriteBytes(j.path, []byte(j.text))
		s.mu.Lock()
		e := s.entries[j.path]
		stale := e.writes != j.writes // edited again while writing
		if !stale {
			if err != nil {
				e.state, e.err = Failed, fmt.Errorf("save caption: %w", err)
			} else {
				delete(s.entries, j.path)
			}
		}
		s.mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("save caption: %w", err))
		}
		if stale {
			continue
		}
		if err != nil {
			s.notify(j.path, SaveStatus{State: Failed, Err: fmt.Errorf("save caption: %w", err)})
		} else {
			s.notify(j.path, SaveStatus{State: Saved})
		}
	}
	return errors.Join(errs...)
}

func (s *Saver) notify(path string, st SaveStatus) {
	if s.onState != nil {
		s.onState(path, st)
	}
}
