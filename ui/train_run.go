package ui

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"lorastudio/trainer"
)

// activeRun is a training run as the UI sees it. The reader goroutine
// only fills feed; the UI goroutine takes what arrived through take.
type activeRun struct {
	run  *trainer.Run
	cfg  trainer.Config
	feed runFeed
	// timingKey files the measured step time for later estimates.
	timingKey string
	// UI-goroutine state.
	paused   bool
	stopping bool
	ended    bool
	failed   error
	// onEnd runs once the run has ended (the window close waits for it).
	onEnd func()
}

// runFeed collects the run's events between two UI updates.
type runFeed struct {
	mu sync.Mutex
	feedUpdate
}

// feedUpdate is what arrived since the last update.
type feedUpdate struct {
	planned *trainer.Planned
	caching *trainer.Caching
	steps   []trainer.Step
	samples []trainer.Sample
	saved   []trainer.Saved
	log     []string
	paused  *bool
	end     trainer.Event
}

func (f *runFeed) add(e trainer.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now().Format("15:04:05")
	logf := func(format string, args ...any) {
		f.log = append(f.log, now+"  "+fmt.Sprintf(format, args...))
	}
	switch e := e.(type) {
	case trainer.Planned:
		f.planned = &e
		verb := "Planned"
		if e.Resumed {
			verb = fmt.Sprintf("Continuing at step %d:", e.StartStep)
		}
		logf("%s %d images x repeats = %d samples, %s, %d steps per epoch x %d epochs = %d steps",
			verb, e.Images, e.ImageRepeats, plural(len(e.Buckets), "bucket", "buckets"), e.StepsPerEpoch, e.Epochs, e.TotalSteps)
	case trainer.Caching:
		f.caching = &e
		switch {
		case e.Done == 0:
			logf("%s…", cachingText(e.What))
		case e.Done == e.Total:
			msg := fmt.Sprintf("%s: done (%d)", cachingText(e.What), e.Total)
			if e.Reused > 0 {
				msg += fmt.Sprintf(", %d from the disk cache", e.Reused)
			}
			logf("%s", msg)
		}
	case trainer.Step:
		f.steps = append(f.steps, e)
		if e.Step == 1 || e.Step%50 == 0 || e.Step == e.TotalSteps {
			logf("step %d/%d  epoch %d/%d  loss %.4f  avg %.4f  lr %.3g  %s/step",
				e.Step, e.TotalSteps, e.Epoch, e.Epochs, e.Loss, e.AvgLoss, e.LR, seconds(e.StepTime))
		}
	case trainer.Sample:
		f.samples = append(f.samples, e)
		logf("sample %s (step %d)", filepath.Base(e.Path), e.Step)
	case trainer.Saved:
		f.saved = append(f.saved, e)
		logf("saved %s", e.Path)
	case trainer.Paused:
		t := true
		f.paused = &t
		logf("paused after step %d", e.Step)
	case trainer.Resumed:
		t := false
		f.paused = &t
		logf("resumed at step %d", e.Step)
	case trainer.Finished:
		f.end = e
		if e.Stopped {
			logf("stopped at step %d after %s; %s", e.Step, e.Elapsed.Round(time.Second), savedText(e.Path))
		} else {
			logf("finished %d steps in %s: %s", e.Step, e.Elapsed.Round(time.Second), e.Path)
		}
	case trainer.Failed:
		f.end = e
		logf("FAILED: %v", e.Err)
	}
}

func savedText(path string) string {
	if path == "" {
		return "nothing was saved"
	}
	return "saved " + path
}

func cachingText(what string) string {
	switch what {
	case "model":
		return "Loading the base model"
	case "latents":
		return "Encoding images to latents"
	case "text":
		return "Encoding captions"
	}
	return "Caching " + what
}

// take returns what arrived since the last take.
func (f *runFeed) take() feedUpdate {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.feedUpdate
	f.feedUpdate = feedUpdate{}
	return u
}

// timingKey names what a step's time depends on: the model, the image
// size, the batch and the network.
func timingKey(c trainer.Config) string {
	return fmt.Sprintf("%s|%s|b%d|a%d|%s|r%d", c.PretrainedModel, c.Resolution, c.TrainBatchSize,
		c.GradientAccumulationSteps, c.Targets, c.NetworkDim)
}

// start begins a new run with the form's settings, or continues the
// unfinished run resume when it is not nil. Preparing (opening the
// dataset, checking the model) runs off the UI goroutine.
func (p *trainPanel) start(resume *trainer.Unfinished) {
	if p.st.preparing || (p.st.run != nil && !p.st.run.ended) {
		return
	}
	cfg := p.st.cfg
	if resume != nil {
		cfg = resume.Config
	} else if len(p.st.problems) > 0 {
		return
	}
	p.saveSettings()
	p.st.preparing = true
	p.monitor.preparing()
	go func() {
		var r *trainer.Run
		var err error
		if resume != nil {
			r, err = trainer.Continue(context.Background(), resume.StatePath)
		} else {
			r, err = trainer.Start(context.Background(), cfg)
		}
		p.s.do(func() {
			p.st.preparing = false
			if err != nil {
				p.monitor.notStarted(err)
				var v trainer.ValidationErrors
				if errors.As(err, &v) {
					p.form.showProblems(v)
				}
				return
			}
			p.attach(r, cfg)
		})
	}()
}

// attach shows run r and starts reading its events.
func (p *trainPanel) attach(r *trainer.Run, cfg trainer.Config) {
	ar := &activeRun{run: r, cfg: cfg, timingKey: timingKey(cfg)}
	p.st.run = ar
	p.form.setEnabled(false)
	p.monitor.started(ar)
	update := newCoalescer(100*time.Millisecond, p.s.do, func() { p.monitor.apply(ar) })
	go func() {
		for e := range r.Events() {
			ar.feed.add(e)
			update.Trigger()
		}
		update.Trigger()
	}()
}

// finish is called once the run's last event has been shown.
func (p *trainPanel) finish(ar *activeRun) {
	ar.ended = true
	p.st.planFor = "" // look for the run's resume state again
	p.form.setEnabled(true)
	p.saveSettings()
	p.changed()
	if ar.onEnd != nil {
		fn := ar.onEnd
		ar.onEnd = nil
		fn()
	}
}
