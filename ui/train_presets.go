package ui

import (
	"encoding/json"
	"errors"
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

	"lorastudio/atomicfile"
	"lorastudio/trainer"
)

// trainStore keeps the training settings between launches: train.toml
// (the same TOML `lorastudio train --config` reads), the sample prompts
// beside it, and the measured step times.
type trainStore struct{ dir string }

func (s trainStore) configPath() string { return filepath.Join(s.dir, "train.toml") }
func (s trainStore) timesPath() string  { return filepath.Join(s.dir, "train-timing.json") }

// loadConfig returns the saved settings, kohya_ss's defaults on a first
// start, or the defaults and why the file cannot be read.
func (s trainStore) loadConfig() (trainer.Config, error) {
	cfg, _, err := trainer.LoadConfig(s.configPath())
	if errors.Is(err, fs.ErrNotExist) {
		return trainer.Defaults(), nil
	}
	if err != nil {
		return trainer.Defaults(), err
	}
	return cfg, nil
}

// load returns the saved settings and their sample prompts text (see
// loadConfig and readPrompts). A train.toml that cannot be read is set
// aside before the next save replaces it (see setAsideBroken); the error
// says so, and why the prompts could not be read.
func (s trainStore) load() (trainer.Config, string, error) {
	cfg, err := s.loadConfig()
	if err != nil {
		err = setAsideBroken(s.configPath(), err)
	}
	prompts, perr := readPrompts(cfg.SamplePrompts)
	return cfg, prompts, errors.Join(err, perr)
}

func (s trainStore) save(cfg trainer.Config, prompts string, times map[string]float64) error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	if err := cfg.WriteFile(s.configPath()); err != nil {
		return err
	}
	return writeJSON(s.timesPath(), times)
}

func (s trainStore) loadTimes() map[string]float64 {
	times := map[string]float64{}
	if err := readJSON(s.timesPath(), &times); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fyne.LogError("load step times", err)
	}
	return times
}

// readJSON decodes the JSON file at path into v; a missing file is an
// error matching fs.ErrNotExist. encoding/json skips a value of the wrong
// type, leaving that field of v as it was, and decodes the rest (the error
// is then a *json.UnmarshalTypeError), so v can hold defaults that a file
// from an older version or a hand edit only partly replaces.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// writeJSON writes v as indented JSON to path atomically, making the
// folder first.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	// atomicfile's error names the file.
	return atomicfile.WriteBytes(path, append(b, '\n'))
}

// setAsideBroken renames a settings file that could not be read (err says
// why) to path.broken, so the next save, which writes what the screen
// shows, does not replace the user's file; the error returned adds where
// the file is kept.
func setAsideBroken(path string, err error) error {
	kept := path + ".broken"
	if rerr := os.Rename(path, kept); rerr != nil {
		return fmt.Errorf("%w\nDefaults are used instead; the file could not be set aside: %v", err, rerr)
	}
	return fmt.Errorf("%w\nDefaults are used instead; the file is kept as %s", err, kept)
}

// readPrompts returns the prompts file as the form's text, one prompt a
// line: a text file as it is, sd-scripts' TOML and JSON formats rewritten
// as text lines (the form saves its text as sample_prompts.txt). A missing
// file, like none, gives "": the settings still load without their
// prompts.
func readPrompts(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	text, err := trainer.SamplePromptsText(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sample prompts not loaded: %w", err)
	}
	return strings.TrimRight(text, "\n"), nil
}

// writePrompts writes the prompts text when the file holds something else.
func writePrompts(path, text string) error {
	want := strings.TrimRight(text, "\n") + "\n"
	if b, err := os.ReadFile(path); err == nil && string(b) == want {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save sample prompts: %w", err)
	}
	if err := atomicfile.WriteBytes(path, []byte(want)); err != nil {
		return fmt.Errorf("save sample prompts: %w", err)
	}
	return nil
}

// newPresetBar offers loading and saving settings as TOML, importing a
// kohya_ss GUI configuration, and going back to the defaults.
func newPresetBar(p *trainPanel) fyne.CanvasObject {
	load := widget.NewButtonWithIcon("Load…", theme.FolderOpenIcon(), p.chooseLoadPreset)
	save := widget.NewButtonWithIcon("Save…", theme.DocumentSaveIcon(), p.chooseSavePreset)
	kohya := widget.NewButtonWithIcon("kohya_ss…", theme.UploadIcon(), p.chooseImportKohya)
	reset := widget.NewButtonWithIcon("Defaults", theme.ContentUndoIcon(), func() {
		dialog.ShowConfirm("Reset settings", "Go back to kohya_ss's default settings? The base model and output stay.", func(ok bool) {
			if ok {
				d := trainer.Defaults()
				d.PretrainedModel, d.OutputDir, d.OutputName = p.st.cfg.PretrainedModel, p.st.cfg.OutputDir, p.st.cfg.OutputName
				p.applyConfig(d, p.st.prompts)
			}
		}, p.s.win)
	})
	title := widget.NewLabelWithStyle("Settings", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	title.SizeName = theme.SizeNameSubHeadingText
	p.notice = widget.NewLabel("")
	p.notice.Wrapping = fyne.TextWrapWord
	p.notice.Importance = widget.WarningImportance
	p.notice.Hide()
	return container.NewVBox(title, container.NewHBox(load, save, kohya, reset), p.notice)
}

// showNotice shows what went wrong reading the settings on screen (under
// the preset buttons) and logs it; nil clears the line.
func (p *trainPanel) showNotice(err error) {
	if err == nil {
		p.notice.SetText("")
		p.notice.Hide()
		return
	}
	fyne.LogError("training settings", err)
	p.notice.SetText("⚠ " + err.Error())
	p.notice.Show()
}

// applyConfig shows cfg in the form; the open dataset stays the training
// data.
func (p *trainPanel) applyConfig(cfg trainer.Config, prompts string) {
	if p.st.dataDir != "" {
		cfg.TrainDataDir = p.st.dataDir
	}
	if strings.TrimSpace(cfg.OutputDir) == "" {
		cfg.OutputDir = p.st.cfg.OutputDir
	}
	p.st.cfg = cfg
	p.form.write(cfg, prompts)
	p.changed()
}

// loadPreset reads a TOML job file into the form and returns what it
// could not use: a sample prompts file it could not read (also shown
// under the preset buttons) and the keys it ignored.
func (p *trainPanel) loadPreset(path string) ([]string, error) {
	cfg, warnings, err := trainer.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	prompts, perr := readPrompts(cfg.SamplePrompts)
	p.applyConfig(cfg, prompts)
	p.showNotice(perr)
	if perr != nil {
		warnings = append([]string{perr.Error()}, warnings...)
	}
	return warnings, nil
}

// savePreset writes the form's settings as a TOML job file; the sample
// prompts go beside it so the file works on its own.
func (p *trainPanel) savePreset(path string) error {
	cfg := p.st.cfg
	if strings.TrimSpace(p.st.prompts) != "" {
		pp := strings.TrimSuffix(path, filepath.Ext(path)) + "_prompts.txt"
		if err := writePrompts(pp, p.st.prompts); err != nil {
			return err
		}
		cfg.SamplePrompts = pp
	}
	return cfg.WriteFile(path)
}

// importKohya reads a kohya_ss GUI JSON configuration into the form.
func (p *trainPanel) importKohya(path string) (*trainer.GUIImport, error) {
	im, err := trainer.ImportKohyaGUI(path)
	if err != nil {
		return nil, err
	}
	prompts := im.SamplePromptsText
	var perr error
	if prompts == "" {
		prompts, perr = readPrompts(im.Config.SamplePrompts)
	}
	if perr != nil {
		im.Notes = append(im.Notes, perr.Error())
	}
	if im.Config.PretrainedModel != "" {
		if _, err := os.Stat(im.Config.PretrainedModel); err != nil {
			im.Notes = append(im.Notes, "the base model "+im.Config.PretrainedModel+" is not on this computer: choose it again")
		}
	}
	p.applyConfig(im.Config, prompts)
	p.showNotice(perr)
	return im, nil
}

func (p *trainPanel) chooseLoadPreset() {
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		r.Close()
		warnings, err := p.loadPreset(r.URI().Path())
		if err != nil {
			showErrorText(p.s.win, "Could not load settings", err.Error())
			return
		}
		if len(warnings) > 0 {
			showReport(p.s.win, "Settings loaded", "Loaded "+filepath.Base(r.URI().Path())+", but not everything in it was used:", warnings)
		}
	}, p.s.win)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".toml"}))
	d.Resize(fyne.NewSize(820, 560))
	d.Show()
}

func (p *trainPanel) chooseSavePreset() {
	d := dialog.NewFileSave(func(w fyne.URIWriteCloser, err error) {
		if err != nil || w == nil {
			return
		}
		w.Close()
		path := w.URI().Path()
		if filepath.Ext(path) == "" {
			path += ".toml"
		}
		if err := p.savePreset(path); err != nil {
			showErrorText(p.s.win, "Could not save settings", err.Error())
		}
	}, p.s.win)
	d.SetFileName(p.st.cfg.OutputName + ".toml")
	d.SetFilter(storage.NewExtensionFileFilter([]string{".toml"}))
	d.Resize(fyne.NewSize(820, 560))
	d.Show()
}

func (p *trainPanel) chooseImportKohya() {
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		r.Close()
		im, err := p.importKohya(r.URI().Path())
		if err != nil {
			showErrorText(p.s.win, "Could not import the kohya_ss configuration", err.Error())
			return
		}
		lines := append([]string{}, im.Notes...)
		if len(im.Ignored) > 0 {
			lines = append(lines, "Ignored:")
			for _, s := range im.Ignored {
				lines = append(lines, "  "+s)
			}
		}
		showReport(p.s.win, "kohya_ss configuration imported",
			fmt.Sprintf("%s set %d settings.", filepath.Base(r.URI().Path()), len(im.Mapped)), lines)
	}, p.s.win)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".json"}))
	d.Resize(fyne.NewSize(820, 560))
	d.Show()
}
