package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"lorastudio/dataset"
)

func TestRenameFolderAfterConfirmation(t *testing.T) {
	h := newHarness(t)
	root := writeDataset(t)
	ws := h.open(root)
	var plain *dataset.Folder
	for _, f := range ws.ds.Folders {
		if f.Rel == "plain" {
			plain = f
		}
	}
	if plain == nil || plain.Kohya {
		t.Fatalf("plain folder = %+v", plain)
	}
	ws.confirmRename(plain, 3, "person")
	if _, err := os.Stat(filepath.Join(root, "plain")); err != nil {
		t.Fatalf("the folder was renamed before the confirmation: %v", err)
	}
	h.tapDialogButton("Yes")
	if _, err := os.Stat(filepath.Join(root, "3_person", "e.png")); err != nil {
		t.Fatalf("after confirming: %v", err)
	}
	// 10_cat: 4 images x 10; 3_person: 2 x 3.
	if got := h.s.ws.summary.steps.value.Text; got != "46" {
		t.Errorf("steps per epoch after the rename = %q, want 46", got)
	}
	// Edits after the rename land in the renamed folder.
	id := imageIndex(t, h.s.ws, "3_person/e.png")
	h.s.ws.tapImage(id, 0)
	h.s.ws.editor.add.SetText("portrait")
	h.s.ws.editor.addTyped()
	h.waitFile(filepath.Join(root, "3_person", "e.txt"), "portrait")
}

func TestReorganiseCopiesIntoKohyaLayout(t *testing.T) {
	h := newHarness(t)
	root := writeDataset(t)
	ws := h.open(root)
	ws.tapImage(imageIndex(t, ws, "plain/f.png"), 0)
	ws.editor.add.SetText("pending edit")
	ws.editor.addTyped()

	dest := filepath.Join(t.TempDir(), "out")
	ws.reorganise(dest, dataset.Copy)
	h.pump("the reorganised dataset to open", func() bool {
		return h.s.ws != nil && h.s.ws != ws && h.s.ws.ds.Root == filepath.Join(dest, "img")
	})
	for _, rel := range []string{"img/10_cat/a.png", "img/10_cat/a.txt", "img/1_plain/e.png", "img/1_plain/f.txt"} {
		if _, err := os.Stat(filepath.Join(dest, rel)); err != nil {
			t.Errorf("missing %s: %v", rel, err)
		}
	}
	if got := readFile(t, filepath.Join(dest, "img", "1_plain", "f.txt")); got != "pending edit" {
		t.Errorf("the edit made before reorganising = %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "plain", "e.png")); err != nil {
		t.Errorf("copy removed the original: %v", err)
	}
}

func TestDroppedFolderOpens(t *testing.T) {
	h := newHarness(t)
	root := writeDataset(t)
	h.s.dropped(fyne.NewPos(10, 10), []fyne.URI{storage.NewFileURI(filepath.Join(root, "10_cat", "a.png"))})
	h.pump("the dropped image's folder to open", func() bool { return h.s.ws != nil })
	if got := h.s.ws.ds.Root; got != filepath.Join(root, "10_cat") {
		t.Errorf("dropping an image opened %s", got)
	}
	h.s.dropped(fyne.NewPos(10, 10), []fyne.URI{storage.NewFileURI(root)})
	h.pump("the dropped folder to open", func() bool { return h.s.ws != nil && h.s.ws.ds.Root == root })
}

func TestWindowSizeIsRemembered(t *testing.T) {
	h := newHarness(t)
	h.win.Resize(fyne.NewSize(1111, 777))
	h.s.closeWindow()
	s, err := LoadSettings(h.s.state.settingsPath)
	if err != nil {
		t.Fatal(err)
	}
	if s.WindowWidth != 1111 || s.WindowHeight != 777 {
		t.Errorf("saved window %vx%v, want 1111x777", s.WindowWidth, s.WindowHeight)
	}
}

func TestLeavingWithUnsavedEditsAsks(t *testing.T) {
	h := newHarness(t)
	root := writeDataset(t)
	writeFile(t, filepath.Join(root, "plain", "e.txt"), "caf\xe9")
	ws := h.open(root)
	ws.tapImage(imageIndex(t, ws, "plain/e.png"), 0)
	ws.editor.add.SetText("kept in memory")
	ws.editor.addTyped()

	other := writeDataset(t)
	h.s.Open(other)
	h.tapDialogButton("Stay")
	h.drain()
	if h.s.ws != ws {
		t.Fatal("the dataset was closed although the user chose to stay")
	}
	h.s.Open(other)
	h.tapDialogButton("Leave")
	h.pump("the other dataset to open", func() bool { return h.s.ws != nil && h.s.ws.ds.Root == other })
}

func TestMissingRecentDatasetIsForgottenOnClick(t *testing.T) {
	h := newHarness(t)
	gone := filepath.Join(t.TempDir(), "gone")
	h.s.state.settings.AddRecent(gone)
	h.s.startOver()
	var forget *widget.Button
	for _, o := range test.LaidOutObjects(h.win.Content()) {
		if b, ok := o.(*widget.Button); ok && strings.Contains(b.Text, "click to forget") {
			forget = b
		}
	}
	if forget == nil {
		t.Fatal("the missing dataset is not marked on the start screen")
	}
	test.Tap(forget)
	s, err := LoadSettings(h.s.state.settingsPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.RecentDatasets) != 0 {
		t.Errorf("recent datasets after forgetting = %q", s.RecentDatasets)
	}
}
