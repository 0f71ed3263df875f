package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/dataset"
)

// foldersCard shows each concept folder with its repeats and class tokens,
// editable; applying renames the folder to kohya's `<repeats>_<class>`
// after a confirmation, since it changes the disk.
func (ws *workspace) foldersCard() fyne.CanvasObject {
	rows := container.NewVBox()
	for _, f := range ws.ds.Folders {
		rows.Add(ws.folderRow(f))
	}
	reorg := widget.NewButtonWithIcon("Reorganise into kohya layout…", theme.ContentCopyIcon(), ws.showReorganiseDialog)
	title := widget.NewLabelWithStyle("Folders", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	return container.NewBorder(container.NewBorder(nil, nil, nil, reorg, title), nil, nil, nil, container.NewVScroll(rows))
}

// folderRow is one folder: name, image count, repeats, class tokens.
func (ws *workspace) folderRow(f *dataset.Folder) fyne.CanvasObject {
	name := widget.NewLabelWithStyle(folderTitle(f), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	name.Truncation = fyne.TextTruncateEllipsis
	count := widget.NewLabel(plural(f.Images, "image", "images"))
	count.Importance = widget.LowImportance

	repeats := widget.NewEntry()
	repeats.SetText(strconv.Itoa(f.Repeats))
	class := widget.NewEntry()
	class.SetText(f.ClassTokens)
	class.SetPlaceHolder("class tokens, e.g. sks dog")

	// A subfolder is renamed on disk; the root cannot rename itself, so
	// its values are kept for Reorganise.
	apply := widget.NewButtonWithIcon("", theme.DocumentSaveIcon(), nil)
	apply.Importance = widget.HighImportance
	apply.Hide()
	values := func() (int, string, bool) {
		n, err := strconv.Atoi(strings.TrimSpace(repeats.Text))
		c := strings.TrimSpace(class.Text)
		ok := err == nil && n >= 1 && n <= 100000 && c != ""
		return n, c, ok && (n != f.Repeats || c != f.ClassTokens || (!f.Kohya && f.Rel != "."))
	}
	changed := func(string) {
		n, c, dirty := values()
		if !dirty {
			apply.Hide()
			return
		}
		if f.Rel == "." {
			apply.SetText("Use for reorganising")
		} else {
			apply.SetText("Rename to " + dataset.FolderName(n, c))
		}
		apply.Show()
	}
	repeats.OnChanged = changed
	class.OnChanged = changed
	apply.OnTapped = func() {
		n, c, dirty := values()
		if !dirty {
			return
		}
		if f.Rel == "." {
			f.Repeats, f.ClassTokens = n, c
			apply.Hide()
			ws.summary.refresh()
			return
		}
		ws.confirmRename(f, n, c)
	}

	repeatsBox := container.NewGridWrap(fyne.NewSize(64, repeats.MinSize().Height), repeats)
	form := container.NewBorder(nil, nil,
		container.NewHBox(widget.NewLabel("Repeats"), repeatsBox, widget.NewLabel("Class")),
		nil, class)
	parts := []fyne.CanvasObject{container.NewBorder(nil, nil, nil, count, name), form, apply}
	if f.Rel == "." {
		note := widget.NewLabel("The dataset root itself holds images. Reorganise puts them in a kohya folder with these values.")
		note.Wrapping = fyne.TextWrapWord
		note.Importance = widget.LowImportance
		parts = append(parts, note)
	} else if !f.Kohya {
		note := widget.NewLabel("Plain folder: trains with 1 repeat. Set repeats and class tokens to rename it the kohya way.")
		note.Wrapping = fyne.TextWrapWord
		note.Importance = widget.LowImportance
		parts = append(parts, note)
	}
	return container.NewVBox(append(parts, widget.NewSeparator())...)
}

// folderTitle names a folder; the root shows as the dataset's name.
func folderTitle(f *dataset.Folder) string {
	if f.Rel == "." {
		return f.Name + " (root)"
	}
	return f.Rel
}

// confirmRename asks before renaming folder f on disk.
func (ws *workspace) confirmRename(f *dataset.Folder, repeats int, class string) {
	newName := dataset.FolderName(repeats, class)
	msg := fmt.Sprintf("Rename the folder\n  %s\nto\n  %s\n\non disk? The images and captions stay inside it.", f.Name, newName)
	dialog.ShowConfirm("Rename folder", msg, func(ok bool) {
		if !ok {
			return
		}
		if err := ws.saver.Flush(); err != nil {
			dialog.ShowError(fmt.Errorf("save captions before renaming: %w", err), ws.s.win)
			return
		}
		if err := ws.ds.RenameFolder(f, repeats, class); err != nil {
			dialog.ShowError(err, ws.s.win)
			return
		}
		ws.rebuild()
	}, ws.s.win)
}

// rebuild redraws the workspace after the dataset's structure changed
// (a renamed folder), keeping the screen, selection and thumbnails.
func (ws *workspace) rebuild() {
	tab := ws.nav.SelectedIndex()
	ws.grids = nil
	ws.s.setContent(ws.build())
	ws.nav.SelectIndex(tab)
	// A run still going has the old paths; the cache makes a restart cheap.
	if done, total, _ := ws.thumbs.progress(); done < total {
		ws.stopThumbs()
		ws.startThumbnails()
	}
}

// showReorganiseDialog copies or moves the dataset into kohya's layout
// (dest/img/<repeats>_<class>/), after the user picks where and how.
func (ws *workspace) showReorganiseDialog() {
	dest := widget.NewEntry()
	dest.SetText(ws.ds.Root + "-kohya")
	browse := widget.NewButtonWithIcon("", theme.FolderOpenIcon(), func() {
		d := dialog.NewFolderOpen(func(u fyne.ListableURI, err error) {
			if err == nil && u != nil {
				dest.SetText(u.Path())
			}
		}, ws.s.win)
		if l, err := storage.ListerForURI(storage.NewFileURI(filepath.Dir(ws.ds.Root))); err == nil {
			d.SetLocation(l)
		}
		d.Show()
	})
	mode := widget.NewRadioGroup([]string{"Copy (keep the originals)", "Move (the originals are removed)"}, nil)
	mode.SetSelected("Copy (keep the originals)")
	mode.Required = true
	explain := widget.NewLabel("Each folder becomes img/<repeats>_<class tokens>/ with its images and captions, using the repeats and class tokens shown. The studio then opens the new layout.")
	explain.Wrapping = fyne.TextWrapWord
	form := container.NewVBox(
		explain,
		widget.NewLabelWithStyle("Destination", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		container.NewBorder(nil, nil, nil, browse, dest),
		mode,
	)
	d := dialog.NewCustomConfirm("Reorganise into kohya layout", "Reorganise", "Cancel", form, func(ok bool) {
		if !ok {
			return
		}
		transfer := dataset.Copy
		if strings.HasPrefix(mode.Selected, "Move") {
			transfer = dataset.Move
		}
		ws.reorganise(strings.TrimSpace(dest.Text), transfer)
	}, ws.s.win)
	d.Resize(fyne.NewSize(560, 320))
	d.Show()
}

// reorganise runs Reorganize off the UI goroutine behind a modal progress
// dialog, then opens the result.
func (ws *workspace) reorganise(dest string, mode dataset.Transfer) {
	if dest == "" {
		dialog.ShowError(errors.New("choose a destination folder"), ws.s.win)
		return
	}
	if entries, err := os.ReadDir(dest); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dest, "img")); err == nil {
			dialog.ShowError(fmt.Errorf("%s already has an img folder; choose an empty destination", dest), ws.s.win)
			return
		}
	}
	if err := ws.saver.Flush(); err != nil {
		dialog.ShowError(fmt.Errorf("save captions before reorganising: %w", err), ws.s.win)
		return
	}
	bar := widget.NewProgressBarInfinite()
	wait := dialog.NewCustomWithoutButtons("Reorganising…", container.NewVBox(widget.NewLabel(dest), bar), ws.s.win)
	wait.Show()
	ws.busy = true
	go func() {
		root, err := ws.ds.Reorganize(context.Background(), dest, mode)
		ws.s.do(func() {
			ws.busy = false
			wait.Hide()
			if err != nil {
				dialog.ShowError(err, ws.s.win)
				return
			}
			ws.s.Open(root)
		})
	}()
}
