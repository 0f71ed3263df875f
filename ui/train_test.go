package ui

import (
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"lorastudio/trainer"
)

// openTrain opens a dataset of n 64 px images in 1_toy/ and shows the
// Train screen.
func openTrain(t *testing.T, n int) (*harness, *trainPanel) {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "cache"))
	root := filepath.Join(t.TempDir(), "img")
	for i := range n {
		path := filepath.Join(root, "1_toy", "toy"+itoa(i)+".png")
		writePNG(t, path, 64, 64, color.NRGBA{R: uint8(60 * i), G: 90, B: 200, A: 255})
		writeFile(t, strings.TrimSuffix(path, ".png")+".txt", "toy, blue")
	}
	h := newHarness(t)
	ws := h.open(root)
	ws.nav.SelectIndex(2)
	p := h.s.train
	if p == nil {
		t.Fatal("no Train screen")
	}
	return h, p
}

// setEntry types text into the field with key.
func setEntry(t *testing.T, p *trainPanel, key, text string) {
	t.Helper()
	fl := p.form.byKey[key]
	if fl == nil {
		t.Fatalf("no field %s", key)
	}
	var e *widget.Entry
	for _, o := range test.LaidOutObjects(fl.input) {
		if x, ok := o.(*widget.Entry); ok {
			e = x
			break
		}
	}
	if e == nil {
		t.Fatalf("field %s has no entry", key)
	}
	e.SetText(text)
}

func TestTrainFormFlagsInvalidValues(t *testing.T) {
	h, p := openTrain(t, 2)
	p.model.path.SetText(trainer.DemoModel)
	h.pump("a plan", func() bool { return p.st.plan != nil })
	if p.monitor.start.Disabled() {
		t.Fatalf("Start disabled with valid settings: %q", p.monitor.reason.Text)
	}

	cases := []struct {
		key, text, want string
	}{
		{"network_dim", "0", "rank 0: want 1 to 1024"},
		{"network_dim", "eight", `"eight" is not a whole number`},
		{"learning_rate", "-1", "a learning rate must be 0 or more"},
		{"lr_warmup_steps", "150%", "percentage"},
		{"resolution", "500", "multiple of 64"},
		{"clip_skip", "0", "want 1 (last layer) to 12"},
		{"caption_dropout_rate", "2", "probability from 0 to 1"},
		{"output_name", "a/b", "is not a file name"},
	}
	for _, c := range cases {
		t.Run(c.key+"="+c.text, func(t *testing.T) {
			fl := p.form.byKey[c.key]
			old := fl.msg.Text
			setEntry(t, p, c.key, c.text)
			if !strings.Contains(fl.msg.Text, c.want) || fl.msg.Importance != widget.DangerImportance {
				t.Errorf("message %q (importance %v), want one with %q", fl.msg.Text, fl.msg.Importance, c.want)
			}
			if !p.monitor.start.Disabled() {
				t.Error("Start is enabled")
			}
			if !p.monitor.reason.Visible() || !strings.Contains(p.monitor.reason.Text, fl.label) {
				t.Errorf("reason %q does not name %s", p.monitor.reason.Text, fl.label)
			}
			var restore string
			switch c.key {
			case "network_dim":
				restore = "8"
			case "learning_rate":
				restore = "0.0001"
			case "lr_warmup_steps":
				restore = "10%"
			case "resolution":
				restore = "512,512"
			case "clip_skip":
				restore = "1"
			case "caption_dropout_rate":
				restore = "0"
			case "output_name":
				restore = "last"
			}
			setEntry(t, p, c.key, restore)
			if fl.msg.Text != old || fl.msg.Importance == widget.DangerImportance {
				t.Errorf("after %s = %s the message is %q, want the help %q", c.key, restore, fl.msg.Text, old)
			}
			h.pump("the plan again", func() bool { return p.st.plan != nil })
			if p.monitor.start.Disabled() {
				t.Errorf("Start still disabled: %q", p.monitor.reason.Text)
			}
		})
	}

	p.model.path.SetText("")
	if !p.monitor.start.Disabled() || !strings.Contains(p.monitor.reason.Text, "Base model") {
		t.Errorf("no model: Start enabled or reason %q", p.monitor.reason.Text)
	}
	if !strings.Contains(p.model.info.Text, "demo model") {
		t.Errorf("without a model the demo is not offered: %q", p.model.info.Text)
	}
}

// TestTrainDemoRun trains the demo model on four 64 px images through the
// screen: the chart gains points and the bar advances, pause holds the
// run, resume continues it, stop saves a LoRA with its resume state, and
// the screen then offers to continue the run.
func TestTrainDemoRun(t *testing.T) {
	h, p := openTrain(t, 4)
	p.model.path.SetText(trainer.DemoModel)
	for key, text := range map[string]string{
		"resolution": "64", "max_train_epochs": "0", "max_train_steps": "60",
		"learning_rate": "0.001", "lr_warmup_steps": "0", "save_every_n_epochs": "0",
		"sample_every_n_steps": "20",
	} {
		setEntry(t, p, key, text)
	}
	p.form.byKey["enable_bucket"].input.(*widget.Check).SetChecked(false)
	p.form.byKey["lr_scheduler"].input.(*widget.Select).SetSelected("constant")
	p.form.prompts.SetText("a blue toy --w 64 --h 64 --s 2 --d 3")
	h.pump("the plan", func() bool { return p.st.plan != nil && !p.monitor.start.Disabled() })
	if got := p.monitor.plan.total.value.Text; !strings.HasPrefix(got, "60") {
		t.Errorf("plan shows %q total steps, want 60", got)
	}
	if got := p.monitor.plan.samples.value.Text; got != "4 × → 4" {
		t.Errorf("plan shows %q images x repeats", got)
	}

	test.Tap(p.monitor.start)
	h.pump("two steps", func() bool { return len(p.monitor.chart.points) >= 2 })
	if p.monitor.bar.Value < 2 || p.monitor.bar.Max != 60 {
		t.Errorf("progress %v / %v after two steps", p.monitor.bar.Value, p.monitor.bar.Max)
	}
	if !strings.Contains(p.monitor.bar.TextFormatter(), "/ 60") {
		t.Errorf("bar text %q", p.monitor.bar.TextFormatter())
	}
	h.pump("the chart", func() bool { return p.monitor.chart.drawnPoints >= 2 && p.monitor.chart.img.Image != nil })
	if !p.monitor.start.Disabled() || p.monitor.pause.Disabled() || p.monitor.stopBtn.Disabled() {
		t.Error("while training: Start enabled or Pause/Stop disabled")
	}

	test.Tap(p.monitor.pause)
	h.pump("paused", func() bool { return p.st.run.paused })
	if p.monitor.title.Text != "Paused" || p.monitor.pause.Text != "Resume" {
		t.Errorf("paused: title %q, button %q", p.monitor.title.Text, p.monitor.pause.Text)
	}
	at := len(p.monitor.chart.points)
	h.drain()
	if n := len(p.monitor.chart.points); n != at {
		t.Errorf("steps went on while paused: %d -> %d", at, n)
	}

	test.Tap(p.monitor.pause)
	h.pump("resumed", func() bool { return !p.st.run.paused && len(p.monitor.chart.points) > at })
	h.pump("a sample", func() bool { return len(p.monitor.gallery.samples) > 0 })
	if s := p.monitor.gallery.samples[0]; s.Prompt != "a blue toy" {
		t.Errorf("sample prompt %q", s.Prompt)
	}
	h.drain()
	var cell *sampleCell
	for _, o := range test.LaidOutObjects(h.win.Content()) {
		if c, ok := o.(*sampleCell); ok && c.s.Path != "" {
			cell = c
		}
	}
	if cell == nil {
		t.Fatal("no sample thumbnail on screen")
	}
	test.Tap(cell)
	if h.win.Canvas().Overlays().Top() == nil {
		t.Error("clicking a sample does not enlarge it")
	}
	h.tapDialogButton("Close")
	p.monitor.logTog.SetChecked(true)
	if !p.monitor.chart.drawnLog {
		t.Error("the log scale did not redraw the chart")
	}

	test.Tap(p.monitor.stopBtn)
	h.pump("the run to end", func() bool { return p.st.run.ended })
	if p.monitor.title.Text != "Stopped" {
		t.Errorf("title %q after Stop", p.monitor.title.Text)
	}
	saved := p.monitor.lastSave
	if st, err := os.Stat(saved); err != nil || st.Size() == 0 {
		t.Fatalf("no LoRA file after Stop (%q): %v", saved, err)
	}
	if len(p.monitor.log.lines) == 0 {
		t.Error("the log is empty")
	}
	h.pump("the unfinished run", func() bool { return len(p.st.unfinished) == 1 && p.monitor.resume.Visible() })
	if p.monitor.start.Disabled() {
		t.Errorf("Start disabled after the run: %q", p.monitor.reason.Text)
	}
	stoppedAt := int(p.monitor.bar.Value)

	stopped := p.st.run
	test.Tap(p.monitor.start)
	h.tapDialogButton("No")
	if p.st.run != stopped {
		t.Fatal("Start replaced the unfinished run without asking")
	}
	test.Tap(p.monitor.resume)
	h.tapDialogButton("Continue")
	h.pump("the continued run to start", func() bool { return p.st.run != stopped })
	h.pump("the continued run to finish", func() bool { return p.st.run.ended })
	if p.monitor.title.Text != "Finished" || p.st.run.failed != nil {
		t.Fatalf("continued run: title %q, error %v", p.monitor.title.Text, p.st.run.failed)
	}
	if first := p.monitor.chart.points[0].step; int(first) != stoppedAt+1 {
		t.Errorf("the continued run's chart starts at step %v, want %d", first, stoppedAt+1)
	}
	final := filepath.Join(p.st.cfg.OutputDir, "last.safetensors")
	if _, err := os.Stat(final); err != nil {
		t.Errorf("no final LoRA: %v", err)
	}
	h.pump("no unfinished run", func() bool { return len(p.st.unfinished) == 0 && !p.monitor.resume.Visible() })
	if got := p.monitor.plan.eta.value.Text; got == "after step 1" || got == "–" {
		t.Errorf("after a run the plan has no time estimate: %q", got)
	}
}

// TestTrainCloseAsks closes the window during a run: the studio asks,
// and Yes stops the run (saving it) before the window closes.
func TestTrainCloseAsks(t *testing.T) {
	h, p := openTrain(t, 2)
	p.model.path.SetText(trainer.DemoModel)
	for key, text := range map[string]string{
		"resolution": "64", "max_train_epochs": "0", "max_train_steps": "100000", "lr_warmup_steps": "0",
	} {
		setEntry(t, p, key, text)
	}
	p.form.byKey["enable_bucket"].input.(*widget.Check).SetChecked(false)
	h.pump("Start", func() bool { return !p.monitor.start.Disabled() })
	test.Tap(p.monitor.start)
	h.pump("a step", func() bool { return len(p.monitor.chart.points) > 0 })

	h.s.closeWindow()
	h.tapDialogButton("Yes")
	h.pump("the run to stop", func() bool { return p.st.run.ended })
	if p.monitor.title.Text != "Stopped" {
		t.Errorf("title %q", p.monitor.title.Text)
	}
	if _, err := os.Stat(p.monitor.lastSave); err != nil {
		t.Errorf("closing did not save the run: %v", err)
	}
	if h.s.trainBlocksClose(func() {}) {
		t.Error("the close is still held after the run ended")
	}
}

// TestTrainStartErrorDialog starts a job whose dataset vanished after
// the form checked it: the error comes up in a dialog with its text to
// copy, and the screen is ready again.
func TestTrainStartErrorDialog(t *testing.T) {
	h, p := openTrain(t, 2)
	p.model.path.SetText(trainer.DemoModel)
	h.pump("the plan", func() bool { return p.st.plan != nil && !p.monitor.start.Disabled() })
	if err := os.RemoveAll(p.st.dataDir); err != nil {
		t.Fatal(err)
	}
	test.Tap(p.monitor.start)
	h.pump("the start to fail", func() bool { return !p.st.preparing })
	if p.st.run != nil {
		t.Fatal("a run started without its dataset")
	}
	top := h.win.Canvas().Overlays().Top()
	if top == nil {
		t.Fatal("no error dialog")
	}
	var text string
	for _, o := range test.LaidOutObjects(top) {
		if e, ok := o.(*widget.Entry); ok {
			text = e.Text
		}
	}
	if !strings.Contains(text, "train_data_dir") {
		t.Errorf("the dialog's text %q does not name the dataset", text)
	}
	h.tapDialogButton("Copy")
	if got := fyne.CurrentApp().Clipboard().Content(); got != text {
		t.Errorf("clipboard %q, want the error text", got)
	}
	if p.monitor.title.Text != "Ready to train" {
		t.Errorf("title %q", p.monitor.title.Text)
	}
}
