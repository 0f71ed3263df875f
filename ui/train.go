package ui

import (
	"path/filepath"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/trainer"
)

// trainPanel is the Train screen: the settings form on the left, the run
// (controls, plan, progress, loss chart, samples, log) on the right. It
// belongs to the Studio, not to a workspace, so a run keeps going (and
// stays visible) when another dataset is opened.
type trainPanel struct {
	s  *Studio
	st *trainState

	form *trainForm
	// notice says what went wrong reading the settings shown (see
	// showNotice); hidden when nothing did.
	notice  *widget.Label
	model   *modelPicker
	monitor *runMonitor

	// refresh redraws what the settings change (messages, plan, Start);
	// plan recomputes the plan in the background after edits settle;
	// persist saves the settings after edits settle.
	planner *coalescer
	persist *coalescer

	root fyne.CanvasObject
}

// trainState is what the Train screen shows, outside the widgets. It is
// owned by the UI goroutine.
type trainState struct {
	cfg trainer.Config
	// prompts is the sample prompts text; it is written to promptsPath,
	// which cfg.SamplePrompts names while the text is not empty.
	prompts     string
	promptsPath string
	// problems are the invalid settings by TOML key (form parse errors
	// and Config.Validate), in form order.
	problems trainer.ValidationErrors
	// plan is the last plan computed for cfg; planErr why there is none.
	plan    *trainer.Plan
	planErr string
	planFor string // the Encode()d config plan belongs to
	// stepTimes are measured seconds per step by timingKey, so the next
	// run on this machine gets a time estimate before it starts.
	stepTimes map[string]float64
	// unfinished are runs in the output folder that can be continued.
	unfinished []trainer.Unfinished
	// dataDir is the open dataset's folder.
	dataDir string
	run     *activeRun
	// preparing is set while Start checks the job before the run exists.
	preparing bool
}

// trainTab returns the Train screen for ws, making the panel the first
// time; the workspace puts it in its navigation.
func (s *Studio) trainTab(ws *workspace) fyne.CanvasObject {
	if s.train == nil {
		s.train = newTrainPanel(s, filepath.Dir(s.state.settingsPath))
	}
	s.train.setDataset(ws.ds.Root)
	return s.train.root
}

// newTrainPanel builds the panel with the settings saved in configDir.
func newTrainPanel(s *Studio, configDir string) *trainPanel {
	p := &trainPanel{s: s, st: &trainState{stepTimes: map[string]float64{}}}
	p.st.promptsPath = filepath.Join(configDir, "sample_prompts.txt")
	store := trainStore{dir: configDir}
	cfg, prompts, loadErr := store.load()
	p.st.cfg, p.st.prompts = cfg, prompts
	p.st.stepTimes = store.loadTimes()
	p.planner = newCoalescer(300*time.Millisecond, s.do, p.replan)
	p.persist = newCoalescer(time.Second, s.do, p.saveSettings)

	p.model = newModelPicker(p)
	p.form = newTrainForm(p)
	p.monitor = newRunMonitor(p)
	p.form.write(p.st.cfg, p.st.prompts)
	p.model.show(p.st.cfg.PretrainedModel)

	split := container.NewHSplit(p.form.object(), p.monitor.object())
	split.SetOffset(0.4)
	p.root = split
	p.showNotice(loadErr)
	p.changed()
	return p
}

// setDataset trains on the dataset at dir from now on (a running job
// keeps its own).
func (p *trainPanel) setDataset(dir string) {
	if p.st.dataDir == dir {
		return
	}
	prev := p.st.cfg.TrainDataDir
	p.st.dataDir = dir
	p.st.cfg.TrainDataDir = dir
	if prev != dir || strings.TrimSpace(p.st.cfg.OutputDir) == "" {
		p.st.cfg.OutputDir = defaultOutputDir(dir)
		p.form.write(p.st.cfg, p.st.prompts)
	}
	p.changed()
}

// defaultOutputDir is where a dataset's LoRA goes unless the user says
// otherwise: kohya_ss's project/model beside project/img, or a folder
// beside the dataset (never inside it, where samples would become
// training images).
func defaultOutputDir(dataDir string) string {
	if strings.EqualFold(filepath.Base(dataDir), "img") {
		return filepath.Join(filepath.Dir(dataDir), "model")
	}
	return dataDir + "-lora"
}

// changed follows every settings edit: it reads the form, validates,
// flags the fields, gates Start and schedules the plan and the save.
func (p *trainPanel) changed() {
	if p.form == nil || p.form.loading {
		return
	}
	cfg, problems := p.form.read(p.st)
	cfg.TrainDataDir = p.st.dataDir
	if p.st.dataDir == "" {
		cfg.TrainDataDir = p.st.cfg.TrainDataDir
	}
	p.st.cfg = cfg
	if err := cfg.Validate(); err != nil {
		if v, ok := err.(trainer.ValidationErrors); ok {
			for _, e := range v {
				if problems.Field(e.Key) == "" {
					problems = append(problems, e)
				}
			}
		}
	}
	p.st.problems = problems
	p.form.showProblems(problems)
	p.model.showProblem(problems.Field("pretrained_model_name_or_path"))
	p.monitor.refreshReady()
	p.planner.Trigger()
	p.persist.Trigger()
}

// saveSettings keeps the settings for the next launch.
func (p *trainPanel) saveSettings() {
	store := trainStore{dir: filepath.Dir(p.st.promptsPath)}
	if err := store.save(p.st.cfg, p.st.prompts, p.st.stepTimes); err != nil {
		fyne.LogError("save training settings", err)
	}
}

// trainBlocksClose asks before the window closes during a run: stopping
// saves what was trained (with its resume state); then closeFn runs.
// It reports whether the close was held back.
func (s *Studio) trainBlocksClose(closeFn func()) bool {
	p := s.train
	if p == nil {
		return false
	}
	p.saveSettings()
	r := p.st.run
	if r == nil || r.ended {
		return false
	}
	dialog.ShowConfirm("Training is running",
		"Stop training and close? What was trained so far is saved, and the run can be resumed later from the Train screen.",
		func(yes bool) {
			if !yes {
				return
			}
			r.onEnd = closeFn
			p.monitor.stop()
		}, s.win)
	return true
}

// sectionTitle is a bold heading with an icon for the form's groups.
func sectionTitle(text string, icon fyne.Resource) fyne.CanvasObject {
	l := widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	l.SizeName = theme.SizeNameSubHeadingText
	return container.NewHBox(widget.NewIcon(icon), l)
}
