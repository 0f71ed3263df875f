package ui

import (
	"fmt"
	"path/filepath"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/trainer"
)

// runMonitor is the right side of the Train screen: the controls, the
// plan, progress, the loss chart, the samples and the log.
type runMonitor struct {
	p *trainPanel

	title, subtitle *widget.Label
	reason          *widget.Label
	start, pause    *widget.Button
	stopBtn, save   *widget.Button
	resume          *widget.Button

	plan *planView

	cachingLabel *widget.Label
	cachingBar   *widget.ProgressBar
	caching      fyne.CanvasObject
	bar          *widget.ProgressBar
	detail       *widget.Label

	chart   *lossChart
	logTog  *widget.Check
	redraw  *coalescer
	gallery *sampleGallery
	log     *logPane
	tabs    *container.AppTabs

	// progress of the run shown: its last step and save, and the recent
	// step times.
	last     *trainer.Step
	lastSave string
	recent   []time.Duration

	// top and buttons are relaid out when a part of them shows or hides.
	top, buttons *fyne.Container
	box          fyne.CanvasObject
}

func newRunMonitor(p *trainPanel) *runMonitor {
	m := &runMonitor{p: p}
	m.title = widget.NewLabelWithStyle("Ready to train", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	m.title.SizeName = theme.SizeNameSubHeadingText
	m.subtitle = widget.NewLabel("")
	m.subtitle.Importance = widget.LowImportance
	m.subtitle.Truncation = fyne.TextTruncateEllipsis
	m.reason = widget.NewLabel("")
	m.reason.Wrapping = fyne.TextWrapWord
	m.reason.Importance = widget.DangerImportance

	m.start = widget.NewButtonWithIcon("Start training", theme.MediaPlayIcon(), m.confirmStart)
	m.start.Importance = widget.HighImportance
	m.pause = widget.NewButtonWithIcon("Pause", theme.MediaPauseIcon(), m.togglePause)
	m.stopBtn = widget.NewButtonWithIcon("Stop", theme.MediaStopIcon(), m.stop)
	m.stopBtn.Importance = widget.DangerImportance
	m.save = widget.NewButtonWithIcon("Save now", theme.DocumentSaveIcon(), m.saveNow)
	m.resume = widget.NewButtonWithIcon("Resume unfinished…", theme.HistoryIcon(), m.chooseUnfinished)
	buttons := container.NewHBox(m.start, m.pause, m.stopBtn, m.save, m.resume)

	m.plan = newPlanView()

	m.cachingLabel = widget.NewLabel("")
	m.cachingBar = widget.NewProgressBar()
	m.caching = container.NewBorder(nil, nil, m.cachingLabel, nil, m.cachingBar)
	m.setShown(m.caching, false)
	m.bar = widget.NewProgressBar()
	m.bar.TextFormatter = m.barText
	m.setShown(m.bar, false)
	m.detail = widget.NewLabel("Press Start: the loss, samples and log appear here.")
	m.detail.Importance = widget.LowImportance
	m.detail.Truncation = fyne.TextTruncateEllipsis

	m.chart = newLossChart()
	m.redraw = newCoalescer(250*time.Millisecond, p.s.do, m.chart.Refresh)
	m.logTog = widget.NewCheck("Log scale", m.chart.setLogScale)
	chartHead := container.NewBorder(nil, nil, widget.NewLabelWithStyle("Loss", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), m.logTog, m.chart.legend())
	m.gallery = newSampleGallery(p.s.win)
	m.log = newLogPane(p.s.win)
	m.tabs = container.NewAppTabs(
		container.NewTabItemWithIcon("Samples", theme.MediaPhotoIcon(), m.gallery.object()),
		container.NewTabItemWithIcon("Log", theme.ListIcon(), m.log.object()),
	)

	m.buttons = buttons
	top := container.NewVBox(m.title, m.subtitle, buttons, m.reason, m.plan.box, m.caching, m.bar, m.detail)
	lower := container.NewVSplit(container.NewBorder(chartHead, nil, nil, nil, m.chart), m.tabs)
	lower.SetOffset(0.66)
	m.top = top
	m.box = container.NewPadded(container.NewBorder(top, nil, nil, nil, lower))
	m.setButtons()
	return m
}

func (m *runMonitor) object() fyne.CanvasObject { return m.box }

// setShown shows or hides o, a part of the monitor's top, and lays the
// top out again (a container does not notice a child's visibility).
func (m *runMonitor) setShown(o fyne.CanvasObject, on bool) {
	if o.Visible() == on {
		return
	}
	if on {
		o.Show()
	} else {
		o.Hide()
	}
	if m.top != nil {
		m.buttons.Refresh()
		m.top.Refresh()
	}
}

// running is the run in progress, nil when none.
func (m *runMonitor) running() *activeRun {
	if r := m.p.st.run; r != nil && !r.ended {
		return r
	}
	return nil
}

// setButtons enables the controls that make sense now.
func (m *runMonitor) setButtons() {
	r := m.running()
	enable := func(b *widget.Button, on bool) {
		if on {
			b.Enable()
		} else {
			b.Disable()
		}
	}
	st := m.p.st
	enable(m.start, r == nil && !m.preparingNow() && len(st.problems) == 0 && st.planErr == "")
	enable(m.pause, r != nil && !r.stopping)
	enable(m.stopBtn, r != nil && !r.stopping)
	enable(m.save, r != nil && !r.stopping && !r.paused)
	if r != nil && r.paused {
		m.pause.SetText("Resume")
		m.pause.SetIcon(theme.MediaPlayIcon())
	} else {
		m.pause.SetText("Pause")
		m.pause.SetIcon(theme.MediaPauseIcon())
	}
	if r == nil && len(st.unfinished) > 0 && !m.preparingNow() {
		m.resume.SetText(fmt.Sprintf("Resume unfinished (%d)…", len(st.unfinished)))
		m.setShown(m.resume, true)
	} else {
		m.setShown(m.resume, false)
	}
}

func (m *runMonitor) preparingNow() bool { return m.p.st.preparing }

// refreshReady shows whether Start can be pressed, and why not.
func (m *runMonitor) refreshReady() {
	m.setButtons()
	if m.running() != nil || m.preparingNow() {
		m.setShown(m.reason, false)
		return
	}
	st := m.p.st
	if st.run == nil {
		m.subtitle.SetText(fmt.Sprintf("%s.safetensors from %s", st.cfg.OutputName, datasetName(st.cfg.TrainDataDir)))
	}
	switch {
	case len(st.problems) > 0:
		m.reason.SetText("Can't start — " + m.p.form.reason(st.problems))
		m.setShown(m.reason, true)
	case st.planErr != "":
		m.reason.SetText("Can't start — " + st.planErr)
		m.setShown(m.reason, true)
	default:
		m.setShown(m.reason, false)
	}
	m.showPlan()
}

// showPlan shows the plan of the settings, or of the run in progress.
func (m *runMonitor) showPlan() {
	st := m.p.st
	if r := m.running(); r != nil {
		pl := r.run.Plan()
		m.plan.show(&pl, "", st.stepTimes[r.timingKey])
		return
	}
	m.plan.show(st.plan, st.planErr, st.stepTimes[timingKey(st.cfg)])
}

// preparing shows that Start is checking the settings and the dataset.
func (m *runMonitor) preparing() {
	m.title.SetText("Preparing…")
	m.subtitle.SetText("Checking the settings, the base model and the dataset")
	m.setShown(m.reason, false)
	m.setButtons()
}

// notStarted shows why a run could not start.
func (m *runMonitor) notStarted(err error) {
	m.title.SetText("Ready to train")
	m.subtitle.SetText("")
	m.setButtons()
	m.refreshReady()
	showErrorText(m.p.s.win, "Training could not start", err.Error())
}

// started resets the monitor for run r.
func (m *runMonitor) started(r *activeRun) {
	m.last, m.lastSave, m.recent = nil, "", nil
	m.chart.reset()
	m.gallery.reset()
	m.title.SetText("Starting…")
	m.subtitle.SetText(r.cfg.OutputName + " → " + r.cfg.OutputDir)
	m.bar.Max = float64(r.run.Plan().TotalSteps)
	m.bar.SetValue(0)
	m.setShown(m.bar, true)
	m.detail.SetText("")
	m.log.add([]string{time.Now().Format("15:04:05") + "  ── " + r.cfg.OutputName + ": training on " + r.cfg.TrainDataDir + " with " + modelName(r.cfg.PretrainedModel)})
	m.setShown(m.reason, false)
	m.setButtons()
	m.showPlan()
}

func modelName(path string) string {
	if path == trainer.DemoModel {
		return "the demo model"
	}
	return filepath.Base(path)
}

// apply shows what the run reported since the last update.
func (m *runMonitor) apply(r *activeRun) {
	if m.p.st.run != r || r.ended {
		return
	}
	u := r.feed.take()
	m.log.add(u.log)
	if u.planned != nil {
		m.bar.Max = float64(u.planned.TotalSteps)
		if u.planned.Resumed {
			m.bar.SetValue(float64(u.planned.StartStep))
		}
	}
	if c := u.caching; c != nil {
		m.showCaching(*c)
	}
	if len(u.steps) > 0 {
		m.setShown(m.caching, false)
		m.chart.add(u.steps)
		m.redraw.Trigger()
		last := u.steps[len(u.steps)-1]
		m.last = &last
		for _, s := range u.steps {
			m.recent = append(m.recent, s.StepTime)
		}
		if n := len(m.recent) - 20; n > 0 {
			m.recent = m.recent[n:]
		}
		m.p.st.stepTimes[r.timingKey] = meanSeconds(m.recent)
		m.bar.SetValue(float64(last.Step))
		m.showPlan()
		if !r.paused && !r.stopping {
			m.title.SetText("Training")
		}
		m.detail.SetText(stepText(last))
	}
	m.gallery.add(u.samples)
	if len(u.samples) > 0 && m.tabs.SelectedIndex() != 0 {
		m.tabs.Items[0].Text = fmt.Sprintf("Samples (%d)", len(m.gallery.samples))
		m.tabs.Refresh()
	}
	for _, s := range u.saved {
		m.lastSave = s.Path
	}
	if u.paused != nil {
		r.paused = *u.paused
		if r.paused {
			m.title.SetText("Paused")
		} else {
			m.title.SetText("Training")
		}
	}
	if u.end != nil {
		m.ended(r, u.end)
		return
	}
	m.setButtons()
}

func (m *runMonitor) showCaching(c trainer.Caching) {
	if c.Done >= c.Total && c.What != "model" {
		m.setShown(m.caching, false)
		return
	}
	m.title.SetText(cachingText(c.What) + "…")
	m.cachingLabel.SetText(fmt.Sprintf("%s  %d / %d", cachingText(c.What), c.Done, c.Total))
	m.cachingBar.Max = float64(max(c.Total, 1))
	m.cachingBar.SetValue(float64(c.Done))
	m.setShown(m.caching, true)
}

// ended shows the end of run r.
func (m *runMonitor) ended(r *activeRun, e trainer.Event) {
	m.setShown(m.caching, false)
	m.chart.Refresh()
	switch e := e.(type) {
	case trainer.Finished:
		if e.Stopped {
			m.title.SetText("Stopped")
			m.subtitle.SetText(savedText(e.Path) + " · resume it with Resume unfinished")
		} else {
			m.title.SetText("Finished")
			m.subtitle.SetText(fmt.Sprintf("%s · %s", e.Path, duration(e.Elapsed)))
			m.bar.SetValue(m.bar.Max)
		}
	case trainer.Failed:
		r.failed = e.Err
		m.title.SetText("Failed")
		kept := "No LoRA was saved."
		if e.LastSave != "" {
			kept = "The last good save is kept: " + e.LastSave
		}
		m.subtitle.SetText(kept)
		showErrorText(m.p.s.win, "Training failed", e.Err.Error()+"\n\n"+kept)
	}
	m.p.finish(r)
	m.setButtons()
	m.showPlan()
}

func meanSeconds(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum.Seconds() / float64(len(ds))
}

// stepText is the line under the progress bar.
func stepText(s trainer.Step) string {
	return fmt.Sprintf("epoch %d / %d  ·  %s per step  ·  ETA %s  ·  loss %.4f (average %.4f)  ·  LR %.3g",
		s.Epoch, s.Epochs, seconds(s.StepTime), duration(s.ETA), s.Loss, s.AvgLoss, s.LR)
}

// barText is the text inside the progress bar.
func (m *runMonitor) barText() string {
	if m.last == nil {
		if m.bar.Max > 0 {
			return fmt.Sprintf("step 0 / %s", itoa(int(m.bar.Max)))
		}
		return ""
	}
	return fmt.Sprintf("step %s / %s  (%.0f%%)", itoa(m.last.Step), itoa(m.last.TotalSteps), 100*float64(m.last.Step)/float64(max(m.last.TotalSteps, 1)))
}

// confirmStart starts a new run, first asking when an unfinished run of
// the same name would be replaced.
func (m *runMonitor) confirmStart() {
	st := m.p.st
	for _, u := range st.unfinished {
		if u.OutputName != st.cfg.OutputName {
			continue
		}
		msg := fmt.Sprintf("%s stopped at step %s of %s and can be continued with Resume unfinished. Start a new run anyway? Its resume state will be replaced.",
			u.OutputName, itoa(u.Step), itoa(u.TotalSteps))
		dialog.ShowConfirm("Unfinished run", msg, func(yes bool) {
			if yes {
				m.p.start(nil)
			}
		}, m.p.s.win)
		return
	}
	m.p.start(nil)
}

func (m *runMonitor) togglePause() {
	r := m.running()
	if r == nil {
		return
	}
	if r.paused {
		r.run.Resume()
		m.title.SetText("Resuming…")
	} else {
		r.run.Pause()
		m.title.SetText("Pausing after this step…")
	}
}

// stop ends the run after the current step; the trainer saves the LoRA
// and its resume state.
func (m *runMonitor) stop() {
	r := m.running()
	if r == nil {
		return
	}
	r.stopping = true
	r.run.Stop()
	m.title.SetText("Stopping after this step…")
	m.setButtons()
}

func (m *runMonitor) saveNow() {
	if r := m.running(); r != nil {
		r.run.SaveNow()
		m.log.add([]string{time.Now().Format("15:04:05") + "  saving after this step…"})
	}
}

// chooseUnfinished lists the unfinished runs in the output folder, each
// with a button to continue it.
func (m *runMonitor) chooseUnfinished() {
	list := m.p.st.unfinished
	if len(list) == 0 {
		return
	}
	var d dialog.Dialog
	rows := container.NewVBox()
	for i := range list {
		u := list[i]
		info := widget.NewLabel(fmt.Sprintf("%s — step %s of %s, saved %s", u.OutputName, itoa(u.Step), itoa(u.TotalSteps), u.Saved.Format("2 Jan 15:04")))
		where := widget.NewLabel(u.Config.TrainDataDir)
		where.Importance = widget.LowImportance
		where.Truncation = fyne.TextTruncateEllipsis
		cont := widget.NewButtonWithIcon("Continue", theme.MediaPlayIcon(), func() {
			d.Hide()
			m.p.start(&u)
		})
		cont.Importance = widget.HighImportance
		rows.Add(container.NewBorder(nil, nil, nil, cont, container.NewVBox(info, where)))
	}
	note := widget.NewLabel("A continued run uses the settings it started with and reaches the same LoRA as an uninterrupted run.")
	note.Wrapping = fyne.TextWrapWord
	note.Importance = widget.LowImportance
	d = dialog.NewCustom("Unfinished runs in "+m.p.st.cfg.OutputDir, "Cancel", container.NewBorder(nil, note, nil, nil, container.NewVScroll(rows)), m.p.s.win)
	d.Resize(fyne.NewSize(640, 360))
	d.Show()
}
