package ui

import (
	"context"
	"image"
	"slices"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/dataset"
	"lorastudio/tagger"
)

// workspace is an open dataset: its editor, autosave and thumbnails, and
// the screens that show them. It lives from Open until another dataset
// is opened or the window closes.
type workspace struct {
	s  *Studio
	st *appState
	ds *dataset.Dataset
	ed *tagger.Editor

	saver  *dataset.Saver
	saves  saveBook
	thumbs thumbStore
	// stopThumbs cancels the thumbnail run; background counts the
	// goroutines close waits for.
	stopThumbs context.CancelFunc
	background sync.WaitGroup

	filter tagger.Filter
	// pending holds the builders of tabs not shown yet (see lazyTab).
	pending map[*container.TabItem]func() fyne.CanvasObject
	// generate is the Generate screen once it was shown, so close can
	// save its settings.
	generate *generatePanel
	// busy is set while a background job reads the dataset (reorganise);
	// edits from the menu and keyboard wait until it is done.
	busy bool

	nav     *container.AppTabs
	grids   []*widget.GridWrap
	editor  *tagEditor
	panel   *tagPanel
	summary *summaryView
	status  *statusBar

	// bg refreshes what background events (thumbnails, saves) change,
	// at most ten times a second.
	bg *coalescer
}

// showDataset makes ds the open dataset and shows its workspace. The grid
// appears at once; thumbnails are made in the background and fill in.
func (s *Studio) showDataset(ds *dataset.Dataset) {
	s.closeDataset()
	s.state.resetDataset(ds)
	ws := &workspace{s: s, st: s.state, ds: ds}
	ws.saves.states = map[string]dataset.SaveStatus{}
	ws.thumbs.reset(len(ds.Images))
	ws.bg = newCoalescer(100*time.Millisecond, s.do, ws.backgroundRefresh)
	ws.saver = dataset.NewSaver(s.saveDelay, func(path string, st dataset.SaveStatus) {
		ws.saves.set(path, st)
		ws.bg.Trigger()
	})
	ws.ed = tagger.New(ds, ws.saver)
	ws.ed.OnChange = ws.tagsChanged
	s.ws = ws

	s.setContent(ws.build())
	s.win.SetTitle(datasetName(ds.Root) + " — LoRA Studio")
	s.refreshMenu()
	ws.startThumbnails()
}

// build lays out the workspace: a navigation rail on the left, the status
// bar along the bottom.
func (ws *workspace) build() fyne.CanvasObject {
	ws.status = newStatusBar(ws)
	ws.editor = newTagEditor(ws)
	ws.panel = newTagPanel(ws)
	ws.summary = newSummaryView(ws)
	ws.pending = map[*container.TabItem]func() fyne.CanvasObject{}
	ws.nav = container.NewAppTabs(
		container.NewTabItemWithIcon("Dataset", theme.GridIcon(), ws.datasetScreen()),
		container.NewTabItemWithIcon("Tags", theme.DocumentCreateIcon(), ws.tagsScreen()),
		ws.lazyTab("Train", theme.MediaPlayIcon(), func() fyne.CanvasObject { return ws.s.trainTab(ws) }),
		ws.lazyTab("Generate", theme.MediaPhotoIcon(), func() fyne.CanvasObject {
			ws.generate = newGeneratePanel(ws.s)
			return ws.generate.object()
		}),
	)
	ws.nav.OnSelected = func(t *container.TabItem) {
		if build, ok := ws.pending[t]; ok {
			delete(ws.pending, t)
			t.Content = build()
			ws.nav.Refresh()
		}
	}
	ws.nav.SetTabLocation(container.TabLocationLeading)
	ws.editor.show()
	ws.status.refresh()
	return container.NewBorder(nil, ws.status.object(), nil, nil, ws.nav)
}

// lazyTab is a tab whose screen is built the first time it is shown: most
// visits to a dataset never train or generate, and those screens are the
// costliest to build (forms, saved settings read from disk).
func (ws *workspace) lazyTab(title string, icon fyne.Resource, build func() fyne.CanvasObject) *container.TabItem {
	t := container.NewTabItemWithIcon(title, icon, layout.NewSpacer())
	ws.pending[t] = build
	return t
}

// startThumbnails runs the thumbnailer over every image; each delivery
// lands in the store and the grids pick it up on the next refresh.
func (ws *workspace) startThumbnails() {
	ctx, cancel := context.WithCancel(context.Background())
	ws.stopThumbs = cancel
	// The thumbnailer gets copies: the UI goroutine owns the Images and
	// may rename their folder meanwhile.
	images := make([]*dataset.Image, len(ws.ds.Images))
	for i, im := range ws.ds.Images {
		c := *im
		images[i] = &c
	}
	dir := ws.s.thumbDir
	ws.background.Add(1)
	go func() {
		defer ws.background.Done()
		t, err := dataset.NewThumbnailer(dataset.ThumbOptions{Dir: dir, MaxPixels: ws.ds.MaxPixels})
		if err != nil {
			ws.s.do(func() { ws.status.setError(err) })
			return
		}
		start := time.Now()
		_ = t.Run(ctx, images, func(th dataset.Thumb) {
			if th.Image != nil {
				th.Image = compactImage(th.Image)
			}
			ws.thumbs.set(th, time.Since(start))
			ws.bg.Trigger()
		})
	}()
}

// backgroundRefresh shows what the background goroutines delivered.
func (ws *workspace) backgroundRefresh() {
	if ws.s.ws != ws {
		return
	}
	for _, g := range ws.grids {
		g.Refresh()
	}
	ws.status.refresh()
	ws.editor.refreshSaveState()
	ws.editor.refreshPreviewPlaceholder()
}

// tagsChanged follows every edit, undo and redo (on the UI goroutine).
func (ws *workspace) tagsChanged(changed []*dataset.Image) {
	ws.applyFilter(true)
	ws.panel.refresh()
	ws.summary.refresh()
	for _, im := range changed {
		if im == ws.st.currentImage() {
			ws.editor.refreshTags()
			break
		}
	}
	ws.editor.refreshSaveState()
	ws.s.refreshMenu()
	ws.status.refresh()
}

// setFilter changes the tag filter and what the grids show.
func (ws *workspace) setFilter(f tagger.Filter) {
	ws.editor.commitRaw()
	ws.filter = f
	ws.applyFilter(false)
	if !slices.Contains(ws.st.visible, ws.st.current) {
		ws.st.current, ws.st.anchor = -1, -1
		if len(ws.st.visible) > 0 {
			ws.st.current, ws.st.anchor = ws.st.visible[0], ws.st.visible[0]
		}
		ws.editor.show()
	}
	ws.editor.refreshPosition()
	ws.panel.refreshFilter()
	ws.status.refresh()
}

// applyFilter recomputes the visible images. With keepCurrent the image
// in the editor stays visible even when an edit made it fail the filter,
// so editing never makes the current image vanish.
func (ws *workspace) applyFilter(keepCurrent bool) {
	vis := make([]int, 0, len(ws.ds.Images))
	for i, im := range ws.ds.Images {
		if (keepCurrent && i == ws.st.current) || ws.filter.Match(im.Tags) {
			vis = append(vis, i)
		}
	}
	ws.st.visible = vis
	ws.refreshGrids()
}

// refreshGrids redraws the grids' visible cells.
func (ws *workspace) refreshGrids() {
	for _, g := range ws.grids {
		g.Refresh()
	}
}

// selection is what a bulk edit applies to.
func (ws *workspace) selection() []*dataset.Image {
	ids := ws.st.selectedIDs()
	out := make([]*dataset.Image, len(ids))
	for i, id := range ids {
		out[i] = ws.ds.Images[id]
	}
	return out
}

// visibleImages are the images the filter shows.
func (ws *workspace) visibleImages() []*dataset.Image {
	out := make([]*dataset.Image, len(ws.st.visible))
	for i, id := range ws.st.visible {
		out[i] = ws.ds.Images[id]
	}
	return out
}

// selectImages selects ims (a tag click, a summary group) and makes the
// first one current.
func (ws *workspace) selectImages(ims []*dataset.Image) {
	ids := make([]int, 0, len(ims))
	for _, im := range ims {
		if i := ws.ds.Index(im.Path); i >= 0 {
			ids = append(ids, i)
		}
	}
	ws.st.selectOnly(ids)
	if len(ids) > 0 {
		ws.st.current, ws.st.anchor = ids[0], ids[0]
		ws.applyFilter(true)
		ws.scrollToCurrent()
		ws.editor.show()
	}
	ws.refreshGrids()
	ws.status.refresh()
}

// tapImage handles a click on a thumbnail.
func (ws *workspace) tapImage(id int, mod fyne.KeyModifier) {
	ws.editor.commitRaw()
	ws.st.tap(id, mod)
	ws.refreshGrids()
	ws.editor.show()
	ws.status.refresh()
}

// step moves the editor to the previous or next visible image.
func (ws *workspace) step(delta int) {
	ws.editor.commitRaw()
	if ws.st.step(delta) {
		ws.refreshGrids()
		ws.scrollToCurrent()
		ws.editor.show()
		ws.status.refresh()
	}
}

func (ws *workspace) scrollToCurrent() {
	if pos := slices.Index(ws.st.visible, ws.st.current); pos >= 0 {
		for _, g := range ws.grids {
			g.ScrollTo(pos)
		}
	}
}

// undo and redo revert or repeat the last tag edit, single or bulk.
func (ws *workspace) undo() {
	ws.editor.commitRaw()
	ws.ed.Undo()
}

func (ws *workspace) redo() {
	ws.editor.commitRaw()
	ws.ed.Redo()
}

// close stops the background work and writes pending edits. Studio.leave
// has asked the user about edits that cannot be written; here a failure
// is only logged.
func (ws *workspace) close() {
	ws.editor.commitRaw()
	if ws.generate != nil {
		// Its settings are saved after edits settle: an edit just before
		// the close would be lost.
		ws.generate.persist.Flush()
	}
	if ws.stopThumbs != nil {
		ws.stopThumbs()
	}
	ws.background.Wait()
	if err := ws.saver.Close(); err != nil {
		fyne.LogError("close dataset "+ws.ds.Root, err)
	}
}

// saveBook is the save state of every caption that is not saved yet,
// written by the Saver's goroutine and read by the UI.
type saveBook struct {
	mu     sync.Mutex
	states map[string]dataset.SaveStatus
}

func (b *saveBook) set(path string, st dataset.SaveStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st.State == dataset.Saved {
		delete(b.states, path)
	} else {
		b.states[path] = st
	}
}

func (b *saveBook) get(path string) dataset.SaveStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st, ok := b.states[path]; ok {
		return st
	}
	return dataset.SaveStatus{State: dataset.Saved}
}

// counts returns how many captions are pending and failed, and the first
// failure.
func (b *saveBook) counts() (pending, failed int, firstErr error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, st := range b.states {
		switch st.State {
		case dataset.Pending:
			pending++
		case dataset.Failed:
			failed++
			if firstErr == nil {
				firstErr = st.Err
			}
		}
	}
	return pending, failed, firstErr
}

// thumbStore holds the delivered thumbnails by image index; worker
// goroutines write it, the UI reads it.
type thumbStore struct {
	mu      sync.Mutex
	imgs    []image.Image
	errs    []error
	done    int
	total   int
	elapsed time.Duration
}

func (t *thumbStore) reset(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.imgs, t.errs, t.done, t.total = make([]image.Image, n), make([]error, n), 0, n
}

func (t *thumbStore) set(th dataset.Thumb, elapsed time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if th.Index < len(t.imgs) {
		t.imgs[th.Index], t.errs[th.Index] = th.Image, th.Err
	}
	t.done, t.elapsed = th.Done, elapsed
}

func (t *thumbStore) get(i int) image.Image {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i < 0 || i >= len(t.imgs) {
		return nil
	}
	return t.imgs[i]
}

// progress reports thumbnails made, of how many, and the time taken.
func (t *thumbStore) progress() (done, total int, elapsed time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done, t.total, t.elapsed
}
