package ui

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/nn"
	"lorastudio/sd"
	"lorastudio/trainer"
)

// modelPicker chooses the base model: a single-file checkpoint, a
// diffusers folder or the demo model, and shows what the loader found in
// it (or why it refuses it).
type modelPicker struct {
	p       *trainPanel
	path    *widget.Entry
	info    *widget.Label
	problem *widget.Label
	file    *widget.Button
	folder  *widget.Button
	demo    *widget.Button
	// shown is the model described now; a slow inspection of another
	// one only fills the cache.
	shown string
	// described keeps what was found in each file (by path, size and
	// time), so going back to a model does not read 2 GB again.
	described map[string]describedModel
	box       *fyne.Container
}

// demoModelText labels the demo model wherever it is chosen.
const demoModelText = "Demo model (untrained, for trying the workflow): a tiny SD-shaped model made from a fixed seed. " +
	"It trains in seconds; its LoRA is only for this demo model, not for AUTOMATIC1111."

func newModelPicker(p *trainPanel) *modelPicker {
	// shown starts as no path at all, so the first show describes "".
	m := &modelPicker{p: p, shown: "\x00", described: map[string]describedModel{}}
	m.path = widget.NewEntry()
	m.path.SetPlaceHolder("model.safetensors, a diffusers folder, or demo")
	m.path.OnChanged = func(string) {
		m.show(m.value())
		p.changed()
	}
	m.info = widget.NewLabel("")
	m.info.Wrapping = fyne.TextWrapWord
	m.problem = widget.NewLabel("")
	m.problem.Wrapping = fyne.TextWrapWord
	m.problem.Importance = widget.DangerImportance
	m.problem.Hide()
	m.file = widget.NewButtonWithIcon("File…", theme.FileIcon(), m.chooseFile)
	m.folder = widget.NewButtonWithIcon("Diffusers folder…", theme.FolderOpenIcon(), m.chooseFolder)
	m.demo = widget.NewButtonWithIcon("Demo model", theme.MediaPlayIcon(), func() { m.path.SetText(trainer.DemoModel) })
	buttons := container.NewHBox(m.file, m.folder, m.demo)
	m.box = container.NewVBox(m.path, buttons, m.info, m.problem)
	return m
}

func (m *modelPicker) object() fyne.CanvasObject { return m.box }

// value is the model setting: a path or trainer.DemoModel.
func (m *modelPicker) value() string { return strings.TrimSpace(m.path.Text) }

// set puts path in the entry (from a loaded Config).
func (m *modelPicker) set(path string) {
	m.path.SetText(path)
	m.show(path)
}

func (m *modelPicker) setEnabled(on bool) {
	for _, d := range []fyne.Disableable{m.path, m.file, m.folder, m.demo} {
		if on {
			d.Enable()
		} else {
			d.Disable()
		}
	}
}

// showProblem shows the validation problem of the model setting.
func (m *modelPicker) showProblem(msg string) {
	if msg == "" || m.value() == "" {
		if m.problem.Visible() {
			m.problem.Hide()
			m.box.Refresh()
		}
		return
	}
	m.problem.SetText("⚠ " + msg)
	if !m.problem.Visible() {
		m.problem.Show()
		m.box.Refresh()
	}
}

// show describes path: the demo, nothing chosen yet, or what the loader
// finds in the file (inspected in the background).
func (m *modelPicker) show(path string) {
	if path == m.shown {
		return
	}
	m.shown = path
	m.demo.Importance = widget.MediumImportance
	switch {
	case path == trainer.DemoModel:
		m.info.Importance = widget.WarningImportance
		m.info.SetText(demoModelText)
		return
	case path == "":
		m.info.Importance = widget.MediumImportance
		m.demo.Importance = widget.HighImportance
		m.demo.Refresh()
		m.info.SetText("No base model chosen. Choose a Stable Diffusion 1.x checkpoint (.safetensors) or a diffusers folder, " +
			"or try the workflow first with the demo model.")
		return
	}
	m.demo.Refresh()
	st, err := os.Stat(path)
	if err != nil {
		m.info.SetText("")
		return
	}
	key := fmt.Sprintf("%s|%d|%d", path, st.Size(), st.ModTime().UnixNano())
	if d, ok := m.described[key]; ok {
		m.info.Importance = d.importance
		m.info.SetText(d.text)
		return
	}
	m.info.Importance = widget.LowImportance
	m.info.SetText("Reading " + filepath.Base(path) + "…")
	deliver := func(text string, imp widget.Importance) {
		m.p.s.do(func() {
			m.described[key] = describedModel{text, imp}
			if m.shown != path {
				return
			}
			m.info.Importance = imp
			m.info.SetText(text)
		})
	}
	go func() {
		c, err := sd.Open(path)
		if err != nil {
			deliver("✗ "+err.Error(), widget.DangerImportance)
			return
		}
		defer c.Close()
		desc := describeCheckpoint(c)
		deliver(desc+" · hashing…", widget.SuccessImportance)
		h, err := c.Hash()
		switch {
		case err != nil:
			deliver(desc+" · hash: "+err.Error(), widget.SuccessImportance)
		case h.SHA256 == "":
			deliver(desc, widget.SuccessImportance)
		default:
			deliver(desc+" · hash "+h.Short(), widget.SuccessImportance)
		}
	}()
}

// describedModel is what the picker shows for a model file.
type describedModel struct {
	text       string
	importance widget.Importance
}

// describeCheckpoint is the one line the form shows for a model:
// "✓ SD 1.x single-file checkpoint (…) · fp16 · 2.1 GB".
func describeCheckpoint(c *sd.Checkpoint) string {
	parts := []string{"✓ " + c.Kind()}
	if dt := checkpointDType(c); dt != "" {
		parts = append(parts, dt)
	}
	if n := diskSize(c.Path); n > 0 {
		parts = append(parts, formatBytes(n))
	}
	return strings.Join(parts, " · ")
}

// checkpointDType is the storage type of the UNet's weights: "fp16".
func checkpointDType(c *sd.Checkpoint) string {
	if c.UNet == nil {
		return ""
	}
	for _, name := range c.UNet.Names() {
		path, key, ok := c.UNet.Key(name)
		if !ok {
			continue
		}
		f, err := nn.OpenSafetensors(path)
		if err != nil {
			return ""
		}
		defer f.Close()
		dt, _, _ := f.Info(key)
		switch dt {
		case "F16":
			return "fp16"
		case "BF16":
			return "bf16"
		case "F32":
			return "fp32"
		}
		return dt
	}
	return ""
}

// diskSize is the size of a file, or of the weights in a folder.
func diskSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if !st.IsDir() {
		return st.Size()
	}
	var total int64
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".safetensors") {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// formatBytes writes a size the way file managers do: 2.1 GB, 144 MB.
func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.0f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func (m *modelPicker) chooseFile() {
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil {
			dialog.ShowError(err, m.p.s.win)
			return
		}
		if r != nil {
			r.Close()
			m.path.SetText(r.URI().Path())
		}
	}, m.p.s.win)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".safetensors"}))
	m.locate(d.SetLocation)
	d.Resize(fyne.NewSize(820, 560))
	d.Show()
}

func (m *modelPicker) chooseFolder() {
	d := dialog.NewFolderOpen(func(u fyne.ListableURI, err error) {
		if err != nil {
			dialog.ShowError(err, m.p.s.win)
			return
		}
		if u != nil {
			m.path.SetText(u.Path())
		}
	}, m.p.s.win)
	m.locate(d.SetLocation)
	d.Resize(fyne.NewSize(820, 560))
	d.Show()
}

// locate starts a dialog in the current model's folder.
func (m *modelPicker) locate(set func(fyne.ListableURI)) {
	v := m.value()
	if v == "" || v == trainer.DemoModel {
		return
	}
	if l, err := storage.ListerForURI(storage.NewFileURI(filepath.Dir(v))); err == nil {
		set(l)
	}
}
