package ui

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"
)

// Shortcuts beyond the ones Fyne predefines.
var (
	shortcutRedo   = &desktop.CustomShortcut{KeyName: fyne.KeyZ, Modifier: fyne.KeyModifierShortcutDefault | fyne.KeyModifierShift}
	shortcutOpen   = &desktop.CustomShortcut{KeyName: fyne.KeyO, Modifier: fyne.KeyModifierShortcutDefault}
	shortcutSave   = &desktop.CustomShortcut{KeyName: fyne.KeyS, Modifier: fyne.KeyModifierShortcutDefault}
	shortcutBulk   = &desktop.CustomShortcut{KeyName: fyne.KeyB, Modifier: fyne.KeyModifierShortcutDefault}
	shortcutPrev   = &desktop.CustomShortcut{KeyName: fyne.KeyLeft, Modifier: fyne.KeyModifierAlt}
	shortcutNext   = &desktop.CustomShortcut{KeyName: fyne.KeyRight, Modifier: fyne.KeyModifierAlt}
	shortcutSelAll = &desktop.CustomShortcut{KeyName: fyne.KeyA, Modifier: fyne.KeyModifierShortcutDefault | fyne.KeyModifierShift}
)

// menuItems are the items whose label or state follows the workspace.
type menuItems struct {
	undo, redo                                  *fyne.MenuItem
	closeDS, selAll, clearSel, bulk, prev, next *fyne.MenuItem
	reorg, save                                 *fyne.MenuItem
}

// mainMenu builds the window menu. Its shortcuts work while a text field
// has the focus too, so Ctrl+Z always undoes the last tag edit.
func (s *Studio) mainMenu() *fyne.MainMenu {
	m := &s.menu
	withWS := func(fn func(ws *workspace)) func() {
		return func() {
			if s.ws != nil && !s.ws.busy {
				fn(s.ws)
			}
		}
	}
	open := fyne.NewMenuItem("Open folder…", s.showOpenDialog)
	open.Shortcut = shortcutOpen
	demo := fyne.NewMenuItem("Open demo dataset", s.OpenDemo)
	m.closeDS = fyne.NewMenuItem("Close dataset", s.showStart)
	m.save = fyne.NewMenuItem("Save all captions now", withWS(func(ws *workspace) { ws.saveNow() }))
	m.save.Shortcut = shortcutSave
	settings := fyne.NewMenuItem("Settings…", s.showSettings)

	m.undo = fyne.NewMenuItem("Undo", withWS(func(ws *workspace) { ws.undo() }))
	m.undo.Shortcut = &fyne.ShortcutUndo{}
	m.redo = fyne.NewMenuItem("Redo", withWS(func(ws *workspace) { ws.redo() }))
	m.redo.Shortcut = shortcutRedo
	m.selAll = fyne.NewMenuItem("Select all shown images", withWS(func(ws *workspace) { ws.selectAllVisible() }))
	m.selAll.Shortcut = shortcutSelAll
	m.clearSel = fyne.NewMenuItem("Clear selection", withWS(func(ws *workspace) {
		ws.st.selectOnly(nil)
		ws.refreshGrids()
		ws.editor.refreshMulti()
		ws.status.refresh()
	}))
	m.bulk = fyne.NewMenuItem("Bulk edit…", withWS(func(ws *workspace) { ws.showBulkDialog() }))
	m.bulk.Shortcut = shortcutBulk

	m.prev = fyne.NewMenuItem("Previous image", withWS(func(ws *workspace) { ws.step(-1) }))
	m.prev.Shortcut = shortcutPrev
	m.next = fyne.NewMenuItem("Next image", withWS(func(ws *workspace) { ws.step(1) }))
	m.next.Shortcut = shortcutNext
	m.reorg = fyne.NewMenuItem("Reorganise into kohya layout…", withWS(func(ws *workspace) { ws.showReorganiseDialog() }))

	menu := fyne.NewMainMenu(
		fyne.NewMenu("File", open, demo, m.closeDS, fyne.NewMenuItemSeparator(), m.save, fyne.NewMenuItemSeparator(), settings),
		fyne.NewMenu("Edit", m.undo, m.redo, fyne.NewMenuItemSeparator(), m.selAll, m.clearSel, fyne.NewMenuItemSeparator(), m.bulk),
		fyne.NewMenu("Image", m.prev, m.next),
		fyne.NewMenu("Dataset", m.reorg),
	)
	s.mainMenuRef = menu
	return menu
}

// refreshMenu names the step Undo and Redo would take and disables what
// needs a dataset.
func (s *Studio) refreshMenu() {
	m := &s.menu
	if m.undo == nil {
		return
	}
	ws := s.ws
	open := ws != nil
	for _, it := range []*fyne.MenuItem{m.closeDS, m.selAll, m.clearSel, m.bulk, m.prev, m.next, m.reorg, m.save} {
		it.Disabled = !open
	}
	m.undo.Label, m.undo.Disabled = "Undo", true
	m.redo.Label, m.redo.Disabled = "Redo", true
	if open {
		if l := ws.ed.UndoLabel(); l != "" {
			m.undo.Label, m.undo.Disabled = "Undo "+l, false
		}
		if l := ws.ed.RedoLabel(); l != "" {
			m.redo.Label, m.redo.Disabled = "Redo "+l, false
		}
	}
	if s.mainMenuRef != nil {
		s.mainMenuRef.Refresh()
	}
}

// addShortcuts binds the keys that work when no text field has the focus:
// arrows and Page Up/Down step through the images, Ctrl+Y redoes.
func (s *Studio) addShortcuts() {
	c := s.win.Canvas()
	c.AddShortcut(&fyne.ShortcutRedo{}, func(fyne.Shortcut) {
		if s.ws != nil && !s.ws.busy {
			s.ws.redo()
		}
	})
	c.SetOnTypedKey(func(k *fyne.KeyEvent) {
		if s.ws == nil || s.ws.busy {
			return
		}
		switch k.Name {
		case fyne.KeyLeft, fyne.KeyPageUp, fyne.KeyUp:
			s.ws.step(-1)
		case fyne.KeyRight, fyne.KeyPageDown, fyne.KeyDown:
			s.ws.step(1)
		}
	})
}

// saveNow writes pending captions immediately, off the UI goroutine.
func (ws *workspace) saveNow() {
	ws.editor.commitRaw()
	go func() {
		err := ws.saver.Flush()
		ws.s.do(func() {
			if err != nil {
				dialog.ShowError(fmt.Errorf("some captions could not be saved:\n%w", err), ws.s.win)
			}
			ws.status.refresh()
		})
	}()
}

// showSettings edits the settings that are not set elsewhere.
func (s *Studio) showSettings() {
	ext := widget.NewSelect(CaptionExtensions, nil)
	ext.SetSelected(s.state.settings.CaptionExt)
	clearRecent := widget.NewButton("Forget recent datasets", func() {
		s.state.settings.RecentDatasets = nil
		s.saveSettings()
	})
	note := widget.NewLabel("Captions are read from and written to <image name><extension> beside each image.")
	note.Wrapping = fyne.TextWrapWord
	note.Importance = widget.LowImportance
	form := widget.NewForm(widget.NewFormItem("Caption extension", ext))
	content := container.NewVBox(form, note, clearRecent)
	d := dialog.NewCustomConfirm("Settings", "Save", "Cancel", content, func(ok bool) {
		if !ok || ext.Selected == s.state.settings.CaptionExt {
			return
		}
		s.state.settings.CaptionExt = ext.Selected
		s.saveSettings()
		if s.ws != nil {
			root := s.ws.ds.Root
			dialog.ShowConfirm("Reopen dataset", "Reopen the dataset to read "+ext.Selected+" captions?", func(yes bool) {
				if yes {
					s.Open(root)
				}
			}, s.win)
		}
	}, s.win)
	d.Resize(fyne.NewSize(460, 260))
	d.Show()
}
