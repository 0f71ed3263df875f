// Package ui is LoRA Studio's desktop interface, built with Fyne: the start
// screen, the dataset grid, the tag editor and tag panel, bulk edits and
// settings. State lives in appState, outside the widgets; every slow step
// (scanning, decoding, saving) runs off the UI goroutine and reports back
// through fyne.Do.
package ui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/dataset"
)

// Studio is the main window: the start screen until a dataset is open, then
// the workspace.
type Studio struct {
	app   fyne.App
	win   fyne.Window
	state *appState
	root  *fyne.Container

	// cancelOpen stops a scan still running when another folder is opened.
	cancelOpen context.CancelFunc
	// ws is the open dataset's workspace, nil on the start screen.
	ws *workspace

	// do runs a function on the UI goroutine: fyne.Do in the app; tests
	// queue the calls and run them on the test goroutine instead.
	do func(func())
	// thumbDir is the thumbnail cache; empty means the user cache dir.
	thumbDir string
	// saveDelay is how long captions wait for more edits before they are
	// written; 0 means the dataset package's default.
	saveDelay time.Duration

	menu        menuItems
	mainMenuRef *fyne.MainMenu

	// train is the Train screen, made when a dataset first opens.
	train *trainPanel
}

// New builds the studio inside win, loading settings from settingsPath.
// Only main creates the fyne.App; tests pass fyne/v2/test's.
func New(a fyne.App, win fyne.Window, settingsPath string) *Studio {
	return newStudio(a, win, settingsPath, fyne.Do)
}

// newStudio is New with the function that runs work on the UI goroutine.
func newStudio(a fyne.App, win fyne.Window, settingsPath string, do func(func())) *Studio {
	settings, loadErr := LoadSettings(settingsPath)
	s := &Studio{
		app:   a,
		win:   win,
		state: &appState{settings: settings, settingsPath: settingsPath, current: -1},
		do:    do,
	}
	win.Resize(fyne.NewSize(settings.WindowWidth, settings.WindowHeight))
	s.root = container.NewStack(s.startScreen())
	win.SetContent(s.root)
	win.SetMainMenu(s.mainMenu())
	s.refreshMenu()
	s.addShortcuts()
	win.SetOnDropped(s.dropped)
	win.SetCloseIntercept(s.closeWindow)
	if loadErr != nil {
		dialog.ShowError(fmt.Errorf("%w\nUsing default settings.", loadErr), win)
	}
	return s
}

// setContent swaps what the window shows.
func (s *Studio) setContent(o fyne.CanvasObject) {
	s.root.Objects = []fyne.CanvasObject{o}
	s.root.Refresh()
}

// showStart closes any dataset and returns to the start screen.
func (s *Studio) showStart() {
	s.leave(s.startOver)
}

func (s *Studio) startOver() {
	s.closeDataset()
	s.win.SetTitle("LoRA Studio")
	s.setContent(s.startScreen())
}

// Open loads the dataset in dir in the background: the window shows the
// scan's progress, then the workspace, whose thumbnails fill in as they
// are made.
func (s *Studio) Open(dir string) {
	s.leave(func() { s.open(dir) })
}

// leave runs next once the open dataset's edits are on disk; when some
// cannot be written (a read-only folder), it asks first, since leaving
// loses them.
func (s *Studio) leave(next func()) {
	ws := s.ws
	if ws == nil {
		next()
		return
	}
	ws.editor.commitRaw()
	err := ws.saver.Flush()
	if err == nil {
		next()
		return
	}
	msg := widget.NewLabel(fmt.Sprintf("These edits could not be saved and exist only in memory:\n\n%v\n\nLeave the dataset and lose them?", err))
	msg.Wrapping = fyne.TextWrapWord
	d := dialog.NewCustomConfirm("Captions not saved", "Leave", "Stay", msg, func(yes bool) {
		if yes {
			next()
		}
	}, s.win)
	d.Resize(fyne.NewSize(560, 300))
	d.Show()
}

func (s *Studio) open(dir string) {
	s.closeDataset()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancelOpen = cancel

	bar := widget.NewProgressBar()
	var done, total atomic.Int64
	progress := newCoalescer(50*time.Millisecond, s.do, func() {
		if t := total.Load(); t > 0 {
			bar.Max = float64(t)
			bar.SetValue(float64(done.Load()))
		}
	})
	s.setContent(s.loadingScreen(dir, bar, cancel))
	s.win.SetTitle("Opening " + datasetName(dir) + " — LoRA Studio")

	opts := dataset.Options{
		CaptionExt: s.state.settings.CaptionExt,
		Progress: func(d, t int) {
			done.Store(int64(d))
			total.Store(int64(t))
			progress.Trigger()
		},
	}
	go func() {
		ds, err := dataset.Open(ctx, dir, opts)
		s.do(func() {
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				s.startOver()
				dialog.ShowError(err, s.win)
				return
			}
			s.state.settings.AddRecent(ds.Root)
			s.saveSettings()
			s.showDataset(ds)
		})
	}()
}

// loadingScreen shows the scan of dir with a way to cancel it.
func (s *Studio) loadingScreen(dir string, bar *widget.ProgressBar, cancel func()) fyne.CanvasObject {
	title := widget.NewLabelWithStyle("Opening "+filepath.Base(dir), fyne.TextAlignCenter, fyne.TextStyle{Bold: true})
	title.SizeName = theme.SizeNameSubHeadingText
	path := widget.NewLabelWithStyle(dir, fyne.TextAlignCenter, fyne.TextStyle{})
	path.Importance = widget.LowImportance
	path.Truncation = fyne.TextTruncateEllipsis
	note := widget.NewLabelWithStyle("Reading image headers and captions…", fyne.TextAlignCenter, fyne.TextStyle{})
	stop := widget.NewButton("Cancel", func() {
		cancel()
		s.startOver()
	})
	box := container.NewVBox(title, path, bar, note, container.NewCenter(stop))
	return container.NewCenter(container.NewGridWrap(fyne.NewSize(520, box.MinSize().Height), box))
}

// OpenDemo unpacks the bundled demo dataset (once) and opens it.
func (s *Studio) OpenDemo() {
	go func() {
		dir, err := demoDir()
		if err == nil {
			dir, err = dataset.ExtractDemo(dir)
		}
		s.do(func() {
			if err != nil {
				dialog.ShowError(fmt.Errorf("demo dataset: %w", err), s.win)
				return
			}
			s.Open(dir)
		})
	}()
}

// demoDir is where the demo dataset is unpacked: the user's data lives in
// the config dir beside the settings, so edits to the demo persist.
func demoDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "lorastudio", "demo"), nil
}

// showOpenDialog asks for a dataset folder.
func (s *Studio) showOpenDialog() {
	d := dialog.NewFolderOpen(func(u fyne.ListableURI, err error) {
		if err != nil {
			dialog.ShowError(err, s.win)
			return
		}
		if u != nil {
			s.Open(u.Path())
		}
	}, s.win)
	if len(s.state.settings.RecentDatasets) > 0 {
		parent := filepath.Dir(s.state.settings.RecentDatasets[0])
		if l, err := storage.ListerForURI(storage.NewFileURI(parent)); err == nil {
			d.SetLocation(l)
		}
	}
	d.Resize(fyne.NewSize(820, 560))
	d.Show()
}

// dropped opens a folder dropped onto the window; a dropped image opens
// the folder it is in.
func (s *Studio) dropped(_ fyne.Position, uris []fyne.URI) {
	for _, u := range uris {
		if u.Scheme() != "file" {
			continue
		}
		st, err := os.Stat(u.Path())
		if err != nil {
			continue
		}
		if st.IsDir() {
			s.Open(u.Path())
			return
		}
		if dataset.IsImageFile(u.Path()) {
			s.Open(filepath.Dir(u.Path()))
			return
		}
	}
	dialog.ShowInformation("Not a folder", "Drop a folder of images (or an image inside one) to open it.", s.win)
}

// closeDataset stops a running scan and closes the open workspace, saving
// pending caption edits first.
func (s *Studio) closeDataset() {
	if s.cancelOpen != nil {
		s.cancelOpen()
		s.cancelOpen = nil
	}
	if s.ws != nil {
		s.ws.close()
		s.ws = nil
		s.refreshMenu()
	}
	s.state.ds = nil
}

// closeWindow saves pending edits and the window size, then closes.
func (s *Studio) closeWindow() {
	if s.trainBlocksClose(s.closeWindow) {
		return
	}
	s.leave(s.closeNow)
}

func (s *Studio) closeNow() {
	s.closeDataset()
	size := s.win.Canvas().Size()
	s.state.settings.WindowWidth, s.state.settings.WindowHeight = size.Width, size.Height
	s.saveSettings()
	s.win.Close()
}

// saveSettings writes the settings file; a failure is logged, not fatal.
func (s *Studio) saveSettings() {
	if err := s.state.settings.Save(s.state.settingsPath); err != nil {
		fyne.LogError("save settings", err)
	}
}
