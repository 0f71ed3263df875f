package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/sd"
	"lorastudio/trainer"
)

// generatePanel is the Generate screen: text-to-image with the prompt
// syntax of AUTOMATIC1111, so a user tries a LoRA (<lora:name:0.7>)
// without leaving the studio. Sampling runs in a goroutine; its progress
// and result come back through Studio.do.
type generatePanel struct {
	s *Studio

	model                   *widget.Entry
	prompt, negative        *widget.Entry
	steps, cfg, seed        *widget.Entry
	width, height           *widget.Entry
	sampler                 *widget.Select
	loraDir                 *widget.Entry
	loraList                *widget.List
	loraNote                *widget.Label
	loras                   []sd.LoRAEntry
	run, cancel, save       *widget.Button
	bar                     *widget.ProgressBar
	barText, status, params *widget.Label
	result                  *canvas.Image

	// model is kept between runs (loading a checkpoint takes seconds);
	// loaded names what it was loaded from. Both change on the UI
	// goroutine only.
	loaded     *sd.Model
	loadedKey  string
	loadedHash string
	stop       context.CancelFunc
	last       *trainer.Generated
	root       fyne.CanvasObject

	// settingsPath is generate.json; saved is what it holds (or the
	// defaults before the first save), so unchanged settings are not
	// written again. persist saves shortly after edits settle.
	settingsPath string
	saved        generateSettings
	persist      *coalescer
}

// generateSettings is the Generate form as generate.json keeps it between
// launches. The seed is kept as typed: -1 stays "random".
type generateSettings struct {
	Model          string  `json:"model"`
	Prompt         string  `json:"prompt"`
	NegativePrompt string  `json:"negative_prompt"`
	Steps          int     `json:"steps"`
	CFGScale       float32 `json:"cfg_scale"`
	Sampler        string  `json:"sampler"`
	Seed           int64   `json:"seed"`
	Width          int     `json:"width"`
	Height         int     `json:"height"`
	LoRADir        string  `json:"lora_dir"`
}

// The smallest steps and image side the form accepts.
const (
	minSteps = 1
	minSide  = 8
)

// generatePersistDelay is how long the form waits for more edits before
// it is saved; short, since a close within it loses the last edit.
const generatePersistDelay = 500 * time.Millisecond

// defaultGenerateSettings is a first start's form: sd's defaults, a random
// seed, and the Train screen's saved base model and output folder (where
// its LoRAs go).
func defaultGenerateSettings(configDir string) generateSettings {
	// A broken train.toml is the Train screen's to report and set aside.
	train, _ := trainStore{dir: configDir}.loadConfig()
	o := sd.DefaultGenerateOptions()
	return generateSettings{
		Model: train.PretrainedModel, LoRADir: train.OutputDir,
		Steps: o.Steps, CFGScale: o.CFGScale, Sampler: o.Sampler, Seed: -1, Width: o.Width, Height: o.Height,
	}
}

// loadGenerateSettings reads the form saved at path over def, value by
// value: one that is missing, of the wrong type or out of range keeps
// def's, and the error says what was dropped. A file that is not JSON
// gives def whole.
func loadGenerateSettings(path string, def generateSettings) (generateSettings, error) {
	g := def
	err := readJSON(path, &g)
	if errors.Is(err, fs.ErrNotExist) {
		return def, nil
	}
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		return def, err
	}
	var problems []error
	if err != nil {
		problems = append(problems, typeErr)
	}
	for _, f := range []struct {
		name string
		v    *int
		min  int
		def  int
	}{{"steps", &g.Steps, minSteps, def.Steps}, {"width", &g.Width, minSide, def.Width}, {"height", &g.Height, minSide, def.Height}} {
		if *f.v < f.min {
			problems = append(problems, fmt.Errorf("%s %d is below %d", f.name, *f.v, f.min))
			*f.v = f.def
		}
	}
	if !slices.Contains(trainer.Samplers, g.Sampler) {
		problems = append(problems, fmt.Errorf("sampler %q is not one of %s", g.Sampler, strings.Join(trainer.Samplers, ", ")))
		g.Sampler = def.Sampler
	}
	if len(problems) > 0 {
		return g, fmt.Errorf("read %s: %w", path, errors.Join(problems...))
	}
	return g, nil
}

// loraWeight is the multiplier a LoRA picked from the list starts with,
// AUTOMATIC1111's usual suggestion.
const loraWeight = "0.7"

// newGeneratePanel builds the screen with the settings it had last time
// (see loadSettings).
func newGeneratePanel(s *Studio) *generatePanel {
	configDir := filepath.Dir(s.state.settingsPath)
	p := &generatePanel{s: s, settingsPath: filepath.Join(configDir, "generate.json")}
	p.persist = newCoalescer(generatePersistDelay, s.do, p.saveSettings)
	saved, loadErr := p.loadSettings(configDir)

	p.model = widget.NewEntry()
	p.model.SetPlaceHolder("model.safetensors, a diffusers folder, or demo")
	p.model.SetText(saved.Model)
	file := widget.NewButtonWithIcon("File…", theme.FileIcon(), p.chooseModel)
	demo := widget.NewButtonWithIcon("Demo model", theme.MediaPlayIcon(), func() { p.model.SetText(trainer.DemoModel) })
	fromTrain := widget.NewButton("Train screen's model", func() {
		if s.train != nil {
			p.model.SetText(s.train.model.value())
		}
	})

	p.prompt = widget.NewMultiLineEntry()
	p.prompt.SetPlaceHolder("a photo of a cat <lora:name:0.7>")
	p.prompt.Wrapping = fyne.TextWrapWord
	p.prompt.SetMinRowsVisible(3)
	p.negative = widget.NewMultiLineEntry()
	p.negative.SetPlaceHolder("negative prompt")
	p.negative.Wrapping = fyne.TextWrapWord
	p.negative.SetMinRowsVisible(2)

	number := func(v string) *widget.Entry {
		e := widget.NewEntry()
		e.SetText(v)
		return e
	}
	p.prompt.SetText(saved.Prompt)
	p.negative.SetText(saved.NegativePrompt)
	p.steps = number(strconv.Itoa(saved.Steps))
	p.cfg = number(strconv.FormatFloat(float64(saved.CFGScale), 'g', -1, 32))
	p.seed = number(strconv.FormatInt(saved.Seed, 10))
	p.width = number(strconv.Itoa(saved.Width))
	p.height = number(strconv.Itoa(saved.Height))
	p.sampler = widget.NewSelect(trainer.Samplers, nil)
	p.sampler.SetSelected(saved.Sampler)

	p.loraDir = widget.NewEntry()
	p.loraDir.SetPlaceHolder("folder of LoRA .safetensors files")
	p.loraDir.OnChanged = func(string) { p.listLoRAs() }
	browse := widget.NewButtonWithIcon("", theme.FolderOpenIcon(), p.chooseLoRADir)
	rescan := widget.NewButtonWithIcon("", theme.ViewRefreshIcon(), p.listLoRAs)
	p.loraNote = widget.NewLabel("")
	p.loraNote.Wrapping = fyne.TextWrapWord
	p.loraList = widget.NewList(
		func() int { return len(p.loras) },
		func() fyne.CanvasObject { return widget.NewLabel("lora name") },
		func(i widget.ListItemID, o fyne.CanvasObject) {
			e := p.loras[i]
			text := e.Name
			if e.Alias != "" && e.Alias != e.Name {
				text += "  (" + e.Alias + ")"
			}
			o.(*widget.Label).SetText(text)
		})
	p.loraList.OnSelected = func(i widget.ListItemID) {
		p.insertLoRA(p.loras[i].Name)
		p.loraList.UnselectAll()
	}
	p.loraDir.SetText(saved.LoRADir)

	p.run = widget.NewButtonWithIcon("Generate", theme.MediaPlayIcon(), p.start)
	p.run.Importance = widget.HighImportance
	p.cancel = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), p.stopRun)
	p.cancel.Disable()
	p.bar = widget.NewProgressBar()
	p.bar.TextFormatter = func() string { return "" }
	p.barText = widget.NewLabel("")
	p.status = widget.NewLabel("")
	p.status.Wrapping = fyne.TextWrapWord
	p.result = canvas.NewImageFromImage(nil)
	p.result.FillMode = canvas.ImageFillContain
	p.result.SetMinSize(fyne.NewSize(320, 320))
	p.params = widget.NewLabel("")
	p.params.Wrapping = fyne.TextWrapWord
	p.params.Selectable = true
	p.save = widget.NewButtonWithIcon("Save PNG…", theme.DocumentSaveIcon(), p.chooseSave)
	p.save.Disable()
	if loadErr != nil {
		p.status.Importance = widget.WarningImportance
		p.status.SetText("⚠ " + loadErr.Error())
	}
	p.watchEdits()

	settings := widget.NewForm(
		widget.NewFormItem("Steps", p.steps),
		widget.NewFormItem("CFG scale", p.cfg),
		widget.NewFormItem("Sampler", p.sampler),
		widget.NewFormItem("Seed", p.seed),
		widget.NewFormItem("Width", p.width),
		widget.NewFormItem("Height", p.height),
	)
	form := container.NewVBox(
		widget.NewLabelWithStyle("Model", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		p.model, container.NewHBox(file, demo, fromTrain),
		widget.NewLabelWithStyle("Prompt", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		p.prompt, p.negative, settings,
	)
	// The LoRA list has its own pane, so it stays visible however tall
	// the form is.
	loraHead := container.NewVBox(
		widget.NewLabelWithStyle("LoRA folder (click a LoRA to add it to the prompt)", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		container.NewBorder(nil, nil, nil, container.NewHBox(browse, rescan), p.loraDir),
		p.loraNote,
	)
	left := container.NewVSplit(container.NewVScroll(form), container.NewBorder(loraHead, nil, nil, nil, p.loraList))
	left.SetOffset(0.62)
	controls := container.NewVBox(container.NewHBox(p.run, p.cancel, p.save), p.bar, p.barText, p.status)
	params := container.NewVScroll(p.params)
	params.SetMinSize(fyne.NewSize(0, 110))
	right := container.NewBorder(controls, params, nil, nil, p.result)
	split := container.NewHSplit(left, right)
	split.SetOffset(0.4)
	p.root = split
	return p
}

func (p *generatePanel) object() fyne.CanvasObject { return p.root }

// loadSettings returns the saved form (see loadGenerateSettings). A file
// with values it had to drop is renamed to generate.json.broken before
// the next save replaces it, and the error says so: the user's file is
// never lost silently.
func (p *generatePanel) loadSettings(configDir string) (generateSettings, error) {
	g, err := loadGenerateSettings(p.settingsPath, defaultGenerateSettings(configDir))
	p.saved = g
	if err == nil {
		return g, nil
	}
	fyne.LogError("load generate settings", err)
	return g, setAsideBroken(p.settingsPath, err)
}

// watchEdits saves the form shortly after each change. It is set after
// the saved values are shown, so showing them writes nothing.
func (p *generatePanel) watchEdits() {
	for _, e := range []*widget.Entry{p.model, p.prompt, p.negative, p.steps, p.cfg, p.seed, p.width, p.height} {
		e.OnChanged = func(string) { p.persist.Trigger() }
	}
	p.sampler.OnChanged = func(string) { p.persist.Trigger() }
	list := p.loraDir.OnChanged
	p.loraDir.OnChanged = func(text string) {
		list(text)
		p.persist.Trigger()
	}
}

// formSettings reads the form as it is saved. A number that does not parse
// (half typed, or wrong) keeps its last saved value.
func (p *generatePanel) formSettings() generateSettings {
	g := p.saved
	g.Model, g.LoRADir, g.Sampler = p.model.Text, p.loraDir.Text, p.sampler.Selected
	g.Prompt, g.NegativePrompt = p.prompt.Text, p.negative.Text
	for _, f := range []struct {
		e   *widget.Entry
		dst *int
		min int
	}{{p.steps, &g.Steps, minSteps}, {p.width, &g.Width, minSide}, {p.height, &g.Height, minSide}} {
		if n, err := parseWhole(f.e.Text, f.min); err == nil {
			*f.dst = n
		}
	}
	if v, err := parseCFG(p.cfg.Text); err == nil {
		g.CFGScale = v
	}
	if v, err := parseSeed(p.seed.Text); err == nil {
		g.Seed = v
	}
	return g
}

// saveSettings writes the form to generate.json when it changed since the
// last save; a failure is logged, as the Train screen's is.
func (p *generatePanel) saveSettings() {
	g := p.formSettings()
	if g == p.saved {
		return
	}
	if err := writeJSON(p.settingsPath, g); err != nil {
		fyne.LogError("save generate settings", err)
		return
	}
	p.saved = g
}

func parseWhole(text string, min int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil || n < min {
		return 0, fmt.Errorf("%q: want a whole number of at least %d", text, min)
	}
	return n, nil
}

func parseCFG(text string) (float32, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(text), 32)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("CFG scale %q is not a number", text)
	}
	return float32(v), nil
}

func parseSeed(text string) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("Seed %q: want a whole number (-1 for a random seed)", text)
	}
	return v, nil
}

// insertLoRA adds <lora:name:0.7> to the end of the prompt.
func (p *generatePanel) insertLoRA(name string) {
	text := strings.TrimRight(p.prompt.Text, " ")
	if text != "" {
		text += " "
	}
	p.prompt.SetText(text + "<lora:" + name + ":" + loraWeight + ">")
}

// listLoRAs lists the LoRA folder's files.
func (p *generatePanel) listLoRAs() {
	dir := strings.TrimSpace(p.loraDir.Text)
	p.loras = nil
	switch entries, err := sd.FindLoRAs(dir); {
	case dir == "":
		p.loraNote.SetText("No LoRA folder: the prompt cannot use <lora:…> tags.")
	case err != nil:
		p.loraNote.SetText("⚠ " + err.Error())
	case len(entries) == 0:
		p.loraNote.SetText("No .safetensors files in this folder.")
	default:
		p.loras = entries
		p.loraNote.SetText(fmt.Sprintf("%d LoRA files", len(entries)))
	}
	p.loraList.Refresh()
}

// options reads the form, or says which field is wrong.
func (p *generatePanel) options() (sd.GenerateOptions, error) {
	o := sd.DefaultGenerateOptions()
	o.Prompt, o.NegativePrompt, o.Sampler = p.prompt.Text, p.negative.Text, p.sampler.Selected
	ints := []struct {
		name string
		e    *widget.Entry
		dst  *int
		min  int
	}{{"Steps", p.steps, &o.Steps, minSteps}, {"Width", p.width, &o.Width, minSide}, {"Height", p.height, &o.Height, minSide}}
	for _, f := range ints {
		n, err := parseWhole(f.e.Text, f.min)
		if err != nil {
			return o, fmt.Errorf("%s %w", f.name, err)
		}
		*f.dst = n
	}
	cfg, err := parseCFG(p.cfg.Text)
	if err != nil {
		return o, err
	}
	o.CFGScale = cfg
	seed, err := parseSeed(p.seed.Text)
	if err != nil {
		return o, err
	}
	if seed < 0 {
		seed = int64(rand.Uint32())
	}
	o.Seed = uint64(seed)
	if _, _, err := sd.ParsePromptLoRAs(o.Prompt); err != nil {
		return o, err
	}
	return o, nil
}

func (p *generatePanel) showError(err error) {
	p.status.Importance = widget.DangerImportance
	p.status.SetText("✗ " + err.Error())
}

func (p *generatePanel) setRunning(on bool) {
	if on {
		p.run.Disable()
		p.cancel.Enable()
	} else {
		p.run.Enable()
		p.cancel.Disable()
	}
}

// start saves the form, validates it and generates in the background.
func (p *generatePanel) start() {
	p.saveSettings()
	o, err := p.options()
	if err != nil {
		p.showError(err)
		return
	}
	modelPath := strings.TrimSpace(p.model.Text)
	if modelPath == "" {
		p.showError(fmt.Errorf("no model chosen: pick a checkpoint or the demo model"))
		return
	}
	req := trainer.GenerateRequest{GenerateOptions: o, LoRADir: strings.TrimSpace(p.loraDir.Text), Model: modelPath}
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	p.setRunning(true)
	p.bar.Max, p.bar.Value = float64(o.Steps), 0
	p.bar.Refresh()
	p.barText.SetText("")
	p.status.Importance = widget.MediumImportance
	model := p.loaded
	if p.loadedKey != modelPath {
		// Free the old model before loading the next one.
		p.loaded, p.loadedKey, p.loadedHash, model = nil, "", "", nil
		p.status.SetText("Loading " + filepath.Base(modelPath) + "…")
	} else {
		req.ModelHash = p.loadedHash
		p.status.SetText("Generating…")
	}
	go p.work(ctx, req, model)
}

// work runs on its own goroutine: load the model if needed, sample, and
// hand the result to the UI goroutine.
func (p *generatePanel) work(ctx context.Context, req trainer.GenerateRequest, m *sd.Model) {
	do := p.s.do
	var err error
	if m == nil {
		m, req.ModelHash, err = loadGenerateModel(req.Model)
		if err != nil {
			do(func() { p.finish(nil, err) })
			return
		}
		do(func() {
			p.loaded, p.loadedKey, p.loadedHash = m, req.Model, req.ModelHash
			p.status.SetText("Generating…")
		})
	}
	tracker := stepTracker{start: time.Now()}
	g, err := trainer.Generate(ctx, m, req, func(step, total int) {
		text := tracker.step(step, total)
		do(func() {
			p.bar.Max = float64(total)
			p.bar.SetValue(float64(step))
			p.barText.SetText(text)
		})
	})
	do(func() { p.finish(g, err) })
}

// loadGenerateModel loads a checkpoint and hashes its file (AUTOMATIC1111
// names a checkpoint by its hash in the parameters; a diffusers folder has
// none), or builds the Train screen's demo model.
func loadGenerateModel(path string) (*sd.Model, string, error) {
	if path == trainer.DemoModel {
		m, err := sd.NewRandomModel(sd.TinyConfig(), trainer.DemoSeed)
		return m, "", err
	}
	c, err := sd.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	m, err := sd.LoadModelFrom(c)
	if err != nil {
		return nil, "", err
	}
	h, err := c.Hash()
	if err != nil {
		// The image does not need the hash; its parameters then omit it.
		return m, "", nil
	}
	return m, h.SHA256, nil
}

// stepTracker turns step callbacks into "Step 3/20 · 2.41 s/step · 41 s
// left".
type stepTracker struct {
	start time.Time
}

func (t stepTracker) step(step, total int) string {
	perStep := time.Since(t.start).Seconds() / float64(max(1, step))
	left := time.Duration(perStep*float64(total-step)) * time.Second
	return fmt.Sprintf("Step %d/%d · %.2f s/step · %s left", step, total, perStep, left.Round(time.Second))
}

// finish shows a run's result or error.
func (p *generatePanel) finish(g *trainer.Generated, err error) {
	p.setRunning(false)
	p.stop = nil
	switch {
	case err != nil && errors.Is(err, context.Canceled):
		p.status.Importance = widget.WarningImportance
		p.status.SetText("Cancelled.")
	case err != nil:
		p.showError(err)
	default:
		p.last = g
		p.status.Importance = widget.SuccessImportance
		done := "✓ Done. Save the PNG to keep it with its parameters."
		if p.loadedKey == trainer.DemoModel {
			done += " The demo model is untrained: its images are noise."
		}
		p.status.SetText(done)
		p.result.Image = g.Image
		p.result.Refresh()
		p.params.SetText(g.Parameters)
		p.save.Enable()
	}
}

func (p *generatePanel) stopRun() {
	if p.stop != nil {
		p.stop()
		p.status.SetText("Cancelling after the current step…")
	}
}

// saveTo writes the last image with its parameters.
func (p *generatePanel) saveTo(path string) error {
	if p.last == nil {
		return fmt.Errorf("nothing generated yet")
	}
	return trainer.WritePNG(path, p.last.Image, p.last.Parameters)
}

func (p *generatePanel) chooseSave() {
	d := dialog.NewFileSave(func(w fyne.URIWriteCloser, err error) {
		if err != nil {
			dialog.ShowError(err, p.s.win)
			return
		}
		if w == nil {
			return
		}
		// WritePNG writes atomically itself; the dialog's writer only
		// chose the name.
		path := w.URI().Path()
		w.Close()
		if err := p.saveTo(path); err != nil {
			dialog.ShowError(err, p.s.win)
			return
		}
		p.status.Importance = widget.SuccessImportance
		p.status.SetText("✓ Saved " + path)
	}, p.s.win)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".png"}))
	d.SetFileName(fmt.Sprintf("lorastudio-%d.png", p.last.Options.Seed))
	d.Resize(fyne.NewSize(820, 560))
	d.Show()
}

func (p *generatePanel) chooseModel() {
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil {
			dialog.ShowError(err, p.s.win)
			return
		}
		if r != nil {
			r.Close()
			p.model.SetText(r.URI().Path())
		}
	}, p.s.win)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".safetensors"}))
	d.Resize(fyne.NewSize(820, 560))
	d.Show()
}

func (p *generatePanel) chooseLoRADir() {
	d := dialog.NewFolderOpen(func(u fyne.ListableURI, err error) {
		if err != nil {
			dialog.ShowError(err, p.s.win)
			return
		}
		if u != nil {
			p.loraDir.SetText(u.Path())
		}
	}, p.s.win)
	d.Resize(fyne.NewSize(820, 560))
	d.Show()
}
