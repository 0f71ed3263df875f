package ui

import (
	"os"
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// startScreen is what the window shows while no dataset is open: the two
// ways in (a folder or the demo) and the recent datasets.
func (s *Studio) startScreen() fyne.CanvasObject {
	logo := canvas.NewImageFromResource(s.app.Icon())
	logo.FillMode = canvas.ImageFillContain
	logo.SetMinSize(fyne.NewSquareSize(88))

	title := widget.NewLabelWithStyle("LoRA Studio", fyne.TextAlignCenter, fyne.TextStyle{Bold: true})
	title.SizeName = theme.SizeNameHeadingText
	sub := widget.NewLabelWithStyle("Tag a folder of images and train a Stable Diffusion LoRA on your CPU.",
		fyne.TextAlignCenter, fyne.TextStyle{})

	open := widget.NewButtonWithIcon("Open folder…", theme.FolderOpenIcon(), s.showOpenDialog)
	open.Importance = widget.HighImportance
	demo := widget.NewButtonWithIcon("Open demo dataset", theme.MediaPhotoIcon(), s.OpenDemo)
	buttons := container.NewGridWithColumns(2, open, demo)

	hint := widget.NewLabelWithStyle("or drop a folder onto this window", fyne.TextAlignCenter, fyne.TextStyle{Italic: true})
	hint.Importance = widget.LowImportance

	head := container.NewVBox(container.NewCenter(logo), title, sub, layout.NewSpacer(), buttons, hint)
	body := container.NewVBox(head, widget.NewSeparator(), s.recentList())
	return container.NewCenter(container.NewGridWrap(fyne.NewSize(560, body.MinSize().Height), body))
}

// recentList shows the recent datasets, newest first; a folder that no
// longer exists is marked, and a click forgets it, instead of it being
// dropped silently.
func (s *Studio) recentList() fyne.CanvasObject {
	heading := widget.NewLabelWithStyle("Recent datasets", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	recent := s.state.settings.RecentDatasets
	if len(recent) == 0 {
		none := widget.NewLabel("Nothing opened yet.")
		none.Importance = widget.LowImportance
		return container.NewVBox(heading, none)
	}
	box := container.NewVBox(heading)
	for _, dir := range recent {
		b := widget.NewButtonWithIcon(recentLabel(dir), theme.FolderIcon(), func() { s.Open(dir) })
		b.Alignment = widget.ButtonAlignLeading
		b.Importance = widget.LowImportance
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			b.SetText(recentLabel(dir) + "   (moved or deleted: click to forget)")
			b.SetIcon(theme.NewWarningThemedResource(theme.WarningIcon()))
			b.OnTapped = func() {
				s.state.settings.RemoveRecent(dir)
				s.saveSettings()
				s.setContent(s.startScreen())
			}
		}
		box.Add(b)
	}
	return box
}

// recentLabel names a dataset, then its folder (home shortened to ~),
// which tells datasets apart at a glance.
func recentLabel(dir string) string {
	where := dir
	if home, err := os.UserHomeDir(); err == nil && home != "/" && strings.HasPrefix(where, home+string(filepath.Separator)) {
		where = "~" + strings.TrimPrefix(where, home)
	}
	return datasetName(dir) + "   ·   " + where
}
