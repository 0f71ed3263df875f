package ui

import (
	"time"

	"lorastudio/trainer"
)

// DemoTrain shows the whole workflow without any setup: it opens the
// demo dataset (unless a dataset is open or opening), switches to the
// Train screen and trains the demo model for steps steps at 64 px with a
// sample every few steps. The GUI smoke test uses it to photograph a
// training run.
func (s *Studio) DemoTrain(steps int) {
	if s.ws == nil && s.cancelOpen == nil {
		s.OpenDemo()
	}
	// The dataset opens in the background: wait for its workspace.
	// started is only touched on the UI goroutine.
	started := false
	go func() {
		ready := make(chan struct{}, 1)
		deadline := time.After(2 * time.Minute)
		for {
			select {
			case <-ready:
				return
			case <-deadline:
				return
			case <-time.After(100 * time.Millisecond):
			}
			s.do(func() {
				if started || s.ws == nil {
					return
				}
				// Showing the tab builds the Train screen.
				s.ws.nav.SelectIndex(2)
				if s.train == nil {
					return
				}
				started = true
				s.train.startDemo(steps)
				ready <- struct{}{}
			})
		}
	}()
}

// startDemo sets the demo model and small, fast settings, then starts.
func (p *trainPanel) startDemo(steps int) {
	cfg := p.st.cfg
	cfg.PretrainedModel = trainer.DemoModel
	cfg.OutputName = "demo_lora"
	cfg.Resolution = "64"
	cfg.EnableBucket = false
	cfg.MaxTrainEpochs, cfg.MaxTrainSteps = 0, steps
	cfg.LearningRate = 1e-3
	cfg.UNetLR, cfg.TextEncoderLR = nil, nil
	cfg.LRScheduler = "cosine"
	cfg.LRWarmup = trainer.Warmup{Ratio: 0.1}
	cfg.SaveEveryNEpochs = 0
	cfg.SampleEveryNSteps = max(steps/4, 1)
	cfg.SampleEveryNEpochs = 0
	p.applyConfig(cfg, "a photo of a dog --w 64 --h 64 --s 8 --d 1\na red teapot --w 64 --h 64 --s 8 --d 2")
	p.replan()
	if len(p.st.problems) > 0 {
		p.monitor.refreshReady()
		return
	}
	p.start(nil)
}
