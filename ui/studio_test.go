package ui

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"lorastudio/tagger"
)

func TestImportShowsEveryImage(t *testing.T) {
	h := newHarness(t)
	ws := h.open(writeDataset(t))

	if got := len(ws.ds.Images); got != 6 {
		t.Fatalf("dataset has %d images, want 6", got)
	}
	for i, g := range ws.grids {
		if got := g.Length(); got != 6 {
			t.Errorf("grid %d has %d items, want 6", i, got)
		}
	}
	cells := h.cells()
	if len(cells) != 6 {
		t.Fatalf("%d thumbnail cells on screen, want 6", len(cells))
	}
	for _, c := range cells {
		if c.pic.Image == nil {
			t.Errorf("cell %d (%s) has no thumbnail", c.id, c.name.Text)
		}
	}
	if got := ws.summary.images.value.Text; got != "6" {
		t.Errorf("summary shows %q images, want 6", got)
	}
	if got := ws.summary.untagged.value.Text; got != "2" {
		t.Errorf("summary shows %q untagged, want 2", got)
	}
	// 10_cat: 4 images x 10 repeats; plain: 2 x 1.
	if got := ws.summary.steps.value.Text; got != "42" {
		t.Errorf("summary shows %q steps per epoch, want 42", got)
	}
	if got := ws.panel.title.Text; got != "Tags (6)" {
		t.Errorf("tag panel title %q, want Tags (6)", got)
	}
}

func TestSelectImageAddTagWritesCaption(t *testing.T) {
	h := newHarness(t)
	// Long enough to see the unsaved state before the write.
	h.s.saveDelay = 2 * time.Second
	root := writeDataset(t)
	ws := h.open(root)

	id := imageIndex(t, ws, "10_cat/b.png")
	var cell *thumbCell
	for _, c := range h.cells() {
		if c.id == id {
			cell = c
		}
	}
	if cell == nil {
		t.Fatal("no cell for b.png")
	}
	test.Tap(cell)
	if ws.editor.shown != ws.ds.Images[id] {
		t.Fatalf("editor shows %v after tapping b.png", ws.editor.shown)
	}
	if got := len(ws.editor.chips.Objects); got != 2 {
		t.Fatalf("editor shows %d chips, want 2", got)
	}

	ws.editor.add.SetText("sunset")
	ws.editor.add.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})

	if got := ws.ds.Images[id].Tags; !slices.Equal(got, []string{"cat", "outdoors", "sunset"}) {
		t.Fatalf("tags after add = %q", got)
	}
	if got := len(ws.editor.chips.Objects); got != 3 {
		t.Errorf("editor shows %d chips after add, want 3", got)
	}
	if got := ws.editor.state.Text; !strings.Contains(got, "Unsaved") {
		t.Errorf("save state right after the edit = %q, want Unsaved", got)
	}
	if err := ws.saver.Flush(); err != nil {
		t.Fatal(err)
	}
	h.waitFile(filepath.Join(root, "10_cat", "b.txt"), "cat, outdoors, sunset")
	h.pump("the saved state", func() bool {
		return strings.Contains(ws.editor.state.Text, "Saved") && !strings.Contains(ws.editor.state.Text, "Unsaved")
	})
}

func TestBulkReplaceAndUndo(t *testing.T) {
	h := newHarness(t)
	root := writeDataset(t)
	ws := h.open(root)

	f := ws.newBulkForm()
	f.object()
	f.op.SetSelected(bulkReplace)
	f.setScope(scopeAll)
	f.tag.SetText("cat")
	f.with.SetText("kitty")
	if !strings.HasPrefix(f.preview.Text, "Changes 3 of 6 images.") {
		t.Errorf("preview = %q, want it to announce 3 of 6 images", f.preview.Text)
	}
	f.apply()

	for _, name := range []string{"a", "b", "c"} {
		im := ws.ds.Images[imageIndex(t, ws, "10_cat/"+name+".png")]
		if im.Tags[0] != "kitty" || slices.Contains(im.Tags, "cat") {
			t.Errorf("%s tags after replace = %q", name, im.Tags)
		}
	}
	if ws.ed.Count("kitty") != 3 || ws.ed.Count("cat") != 0 {
		t.Errorf("counts after replace: kitty %d, cat %d", ws.ed.Count("kitty"), ws.ed.Count("cat"))
	}
	h.waitFile(filepath.Join(root, "10_cat", "a.txt"), "kitty, sitting, indoors")
	if !strings.Contains(h.s.menu.undo.Label, "replace cat with kitty") {
		t.Errorf("undo menu item = %q", h.s.menu.undo.Label)
	}

	h.s.menu.undo.Action()
	for _, name := range []string{"a", "b", "c"} {
		im := ws.ds.Images[imageIndex(t, ws, "10_cat/"+name+".png")]
		if im.Tags[0] != "cat" {
			t.Errorf("%s tags after undo = %q", name, im.Tags)
		}
	}
	h.waitFile(filepath.Join(root, "10_cat", "a.txt"), "cat, sitting, indoors")
	h.waitFile(filepath.Join(root, "10_cat", "c.txt"), "cat, grass, outdoors")

	h.s.menu.redo.Action()
	if got := ws.ds.Images[imageIndex(t, ws, "10_cat/c.png")].Tags; got[0] != "kitty" {
		t.Errorf("tags after redo = %q", got)
	}
}

func TestBulkOperationsChangeTheScope(t *testing.T) {
	tests := []struct {
		op    string
		setup func(f *bulkForm)
		rel   string
		want  []string
	}{
		{bulkAdd, func(f *bulkForm) { f.tag.SetText("photo"); f.front.SetSelected("at the front") }, "10_cat/d.png", []string{"photo", "dog"}},
		{bulkRemove, func(f *bulkForm) { f.tag.SetText("outdoors") }, "10_cat/c.png", []string{"cat", "grass"}},
		{bulkTrigger, func(f *bulkForm) { f.tag.SetText("outdoors") }, "10_cat/c.png", []string{"outdoors", "cat", "grass"}},
		{bulkSort, func(f *bulkForm) { f.keep.SetText("0") }, "10_cat/a.png", []string{"cat", "indoors", "sitting"}},
		{bulkFindReplace, func(f *bulkForm) { f.find.SetText("doors"); f.replace.SetText("side") }, "10_cat/b.png", []string{"cat", "outside"}},
		{bulkPrefix, func(f *bulkForm) { f.text.SetText("sks, photo") }, "plain/e.png", []string{"sks", "photo"}},
		{bulkPostfix, func(f *bulkForm) { f.text.SetText("best quality") }, "10_cat/d.png", []string{"dog", "best quality"}},
	}
	h := newHarness(t)
	ws := h.open(writeDataset(t))
	for _, tc := range tests {
		t.Run(tc.op, func(t *testing.T) {
			im := ws.ds.Images[imageIndex(t, ws, tc.rel)]
			before := slices.Clone(im.Tags)
			f := ws.newBulkForm()
			f.object()
			f.op.SetSelected(tc.op)
			f.setScope(scopeAll)
			tc.setup(f)
			f.apply()
			if !slices.Equal(im.Tags, tc.want) {
				t.Errorf("%s: tags = %q, want %q", tc.rel, im.Tags, tc.want)
			}
			ws.undo()
			if !slices.Equal(im.Tags, before) {
				t.Errorf("%s: tags after undo = %q, want %q", tc.rel, im.Tags, before)
			}
		})
	}
}

func TestBulkOnSelectionOnly(t *testing.T) {
	h := newHarness(t)
	ws := h.open(writeDataset(t))
	a, c := imageIndex(t, ws, "10_cat/a.png"), imageIndex(t, ws, "10_cat/c.png")
	ws.tapImage(a, 0)
	ws.tapImage(c, fyne.KeyModifierControl)
	f := ws.newBulkForm()
	f.object()
	if got := f.scopes[f.scope.Selected]; got != scopeSelected {
		t.Fatalf("default scope with a selection = %q", got)
	}
	f.op.SetSelected(bulkAdd)
	f.tag.SetText("favourite")
	f.apply()
	for i, im := range ws.ds.Images {
		has := slices.Contains(im.Tags, "favourite")
		if has != (i == a || i == c) {
			t.Errorf("%s has favourite = %v", im.Rel, has)
		}
	}
}

func TestTagPanelFiltersAndSelects(t *testing.T) {
	h := newHarness(t)
	ws := h.open(writeDataset(t))
	p := ws.panel

	p.mode.SetSelected(clickAll)
	p.clicked("outdoors")
	if got := len(ws.st.visible); got != 2 {
		t.Errorf("all of outdoors shows %d images, want 2", got)
	}
	if got := ws.grids[0].Length(); got != 2 {
		t.Errorf("grid length %d with the filter, want 2", got)
	}
	p.mode.SetSelected(clickNone)
	p.clicked("grass")
	if got := len(ws.st.visible); got != 1 {
		t.Errorf("outdoors without grass shows %d images, want 1", got)
	}
	p.mode.SetSelected(clickAny)
	ws.setFilter(tagger.Filter{})
	p.clicked("dog")
	p.clicked("indoors")
	if got := len(ws.st.visible); got != 2 {
		t.Errorf("any of dog, indoors shows %d images, want 2", got)
	}
	ws.setFilter(tagger.Filter{})

	p.mode.SetSelected(clickSelect)
	p.clicked("cat")
	if got := len(ws.st.selected); got != 3 {
		t.Errorf("clicking cat selected %d images, want 3", got)
	}
	p.search.SetText("door")
	if got := len(p.rows); got != 2 {
		t.Errorf("search door lists %d tags, want 2", got)
	}
}

func TestKeyboardStepsThroughImages(t *testing.T) {
	h := newHarness(t)
	ws := h.open(writeDataset(t))
	first := ws.st.current
	h.s.menu.next.Action()
	if ws.st.current != first+1 {
		t.Fatalf("next moved to %d, want %d", ws.st.current, first+1)
	}
	if ws.editor.shown != ws.ds.Images[first+1] {
		t.Errorf("editor did not follow to the next image")
	}
	h.s.win.Canvas().OnTypedKey()(&fyne.KeyEvent{Name: fyne.KeyLeft})
	if ws.st.current != first {
		t.Errorf("left arrow moved to %d, want %d", ws.st.current, first)
	}
	h.s.menu.prev.Action()
	if ws.st.current != first {
		t.Errorf("previous at the first image moved to %d", ws.st.current)
	}
}

func TestRawCaptionEditIsOneUndoableStep(t *testing.T) {
	h := newHarness(t)
	root := writeDataset(t)
	ws := h.open(root)
	id := imageIndex(t, ws, "plain/e.png")
	ws.tapImage(id, 0)
	ws.editor.raw.SetText("woman, red hat")
	ws.editor.raw.SetText("woman, red hat\nsmiling")
	ws.editor.commitRaw()
	if got := ws.ds.Images[id].Tags; !slices.Equal(got, []string{"woman", "red hat", "smiling"}) {
		t.Fatalf("tags after raw edit = %q", got)
	}
	h.waitFile(filepath.Join(root, "plain", "e.txt"), "woman, red hat, smiling")
	ws.undo()
	if got := ws.ds.Images[id].Tags; len(got) != 0 {
		t.Errorf("tags after undo = %q, want none", got)
	}
}

func TestChipMovesAndRemoves(t *testing.T) {
	h := newHarness(t)
	ws := h.open(writeDataset(t))
	id := imageIndex(t, ws, "10_cat/a.png")
	ws.tapImage(id, 0)
	if !ws.ed.MoveTag(ws.ds.Images[id], 2, 0) {
		t.Fatal("move failed")
	}
	chip := ws.editor.chips.Objects[0].(*tagChip)
	if chip.tag != "indoors" || !chip.lead {
		t.Errorf("first chip = %q (lead %v), want indoors as lead", chip.tag, chip.lead)
	}
	ws.editor.removeAt(1)
	if got := ws.ds.Images[id].Tags; !slices.Equal(got, []string{"indoors", "sitting"}) {
		t.Errorf("tags after removing the second chip = %q", got)
	}
}

func TestAutocompleteSuggestsDatasetTags(t *testing.T) {
	h := newHarness(t)
	ws := h.open(writeDataset(t))
	ws.tapImage(imageIndex(t, ws, "10_cat/d.png"), 0)
	e := ws.editor.add
	e.SetText("out")
	if len(e.items) == 0 || e.items[0].Tag != "outdoors" || e.items[0].Count != 2 {
		t.Fatalf("suggestions for out = %v", e.items)
	}
	e.TypedKey(&fyne.KeyEvent{Name: fyne.KeyDown})
	e.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
	im := ws.ds.Images[imageIndex(t, ws, "10_cat/d.png")]
	if !slices.Equal(im.Tags, []string{"dog", "outdoors"}) {
		t.Errorf("tags after picking a suggestion = %q", im.Tags)
	}
	if e.Text != "" {
		t.Errorf("add field keeps %q after adding", e.Text)
	}
}

func TestProblemFilesAreListed(t *testing.T) {
	h := newHarness(t)
	root := writeDataset(t)
	writeFile(t, filepath.Join(root, "10_cat", "broken.png"), "this is not a png")
	if err := os.WriteFile(filepath.Join(root, "10_cat", "latin1.png"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ws := h.open(root)
	if got := len(ws.ds.Images); got != 8 {
		t.Fatalf("%d images, want 8 (bad files are listed too)", got)
	}
	if got := len(ws.summary.rows); got < 2 {
		t.Errorf("%d problem rows, want at least 2", got)
	}
	if !strings.Contains(ws.summary.images.caption.Text, "2 skipped") {
		t.Errorf("images caption = %q, want 2 skipped", ws.summary.images.caption.Text)
	}
	bad := imageIndex(t, ws, "10_cat/broken.png")
	if st := ws.thumbState(bad); !st.failed {
		t.Error("broken.png is not marked failed in the grid")
	}
	ws.tapImage(bad, 0)
	if len(ws.editor.problems.Objects) == 0 {
		t.Error("the editor shows no problem for broken.png")
	}
	if ws.editor.noImage.Text == "" {
		t.Error("the editor shows no reason why broken.png has no preview")
	}
}

func TestProtectedCaptionIsNeverOverwritten(t *testing.T) {
	h := newHarness(t)
	root := writeDataset(t)
	path := filepath.Join(root, "plain", "e.txt")
	latin1 := "caf\xe9, cr\xe8me"
	writeFile(t, path, latin1)
	ws := h.open(root)
	id := imageIndex(t, ws, "plain/e.png")
	ws.tapImage(id, 0)
	ws.editor.add.SetText("new")
	ws.editor.addTyped()
	if !strings.Contains(ws.editor.state.Text, "Protected") {
		t.Errorf("state = %q, want the protected note", ws.editor.state.Text)
	}
	if err := ws.saver.Flush(); err == nil {
		t.Error("flushing a protected caption reported no error")
	}
	if got := readFile(t, path); got != latin1 {
		t.Errorf("protected caption was rewritten: %q", got)
	}
}

func TestSelectionWithModifiers(t *testing.T) {
	st := &appState{}
	st.selected = map[int]bool{}
	st.visible = []int{0, 1, 2, 3, 4}
	st.tap(1, 0)
	st.tap(3, fyne.KeyModifierShift)
	if got := st.selectedIDs(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("shift range = %v", got)
	}
	st.tap(2, fyne.KeyModifierControl)
	if got := st.selectedIDs(); !slices.Equal(got, []int{1, 3}) {
		t.Errorf("ctrl toggle = %v", got)
	}
	st.tap(0, 0)
	if got := st.selectedIDs(); !slices.Equal(got, []int{0}) || st.current != 0 {
		t.Errorf("plain click = %v, current %d", got, st.current)
	}
	if !st.step(1) || st.current != 1 {
		t.Errorf("step to %d", st.current)
	}
	st.current = 4
	if st.step(1) {
		t.Error("stepped past the end")
	}
}

func TestStartScreenListsRecentDatasets(t *testing.T) {
	h := newHarness(t)
	root := writeDataset(t)
	h.open(root)
	h.s.showStart()
	found := false
	for _, o := range test.LaidOutObjects(h.win.Content()) {
		if b, ok := o.(*widget.Button); ok && strings.HasPrefix(b.Text, filepath.Base(root)) {
			found = true
		}
	}
	if !found {
		t.Errorf("the start screen does not list %s", root)
	}
	s, err := LoadSettings(h.s.state.settingsPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.RecentDatasets) != 1 || s.RecentDatasets[0] != root {
		t.Errorf("saved recent datasets = %q, want [%s]", s.RecentDatasets, root)
	}
}

func TestTagRowClickAndMenu(t *testing.T) {
	h := newHarness(t)
	ws := h.open(writeDataset(t))
	ws.nav.SelectIndex(1)
	var row *tagRow
	for _, o := range test.LaidOutObjects(h.win.Content()) {
		if r, ok := o.(*tagRow); ok && r.tag == "outdoors" {
			row = r
		}
	}
	if row == nil {
		t.Fatal("no row for outdoors in the tag panel")
	}
	ws.panel.mode.SetSelected(clickAll)
	test.Tap(row)
	if got := len(ws.st.visible); got != 2 {
		t.Errorf("clicking outdoors in filter mode shows %d images, want 2", got)
	}
	test.TapSecondary(row)
	menu := h.win.Canvas().Overlays().Top()
	if menu == nil {
		t.Fatal("right click showed no menu")
	}
	for _, o := range test.LaidOutObjects(menu) {
		if txt, ok := o.(*canvas.Text); ok && txt.Text == "Rename in all images…" {
			return
		}
	}
	t.Errorf("the tag menu has no Rename in all images item")
}
