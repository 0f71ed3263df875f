package ui

import (
	"slices"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/tagger"
)

// What a click on a tag in the tag panel does.
const (
	clickSelect = "Select images"
	clickAll    = "Require (all of)"
	clickAny    = "Any of"
	clickNone   = "Exclude (none of)"
)

// Tag list orders.
const (
	sortByCount = "Most used"
	sortByName  = "A–Z"
)

// tagPanel lists every tag of the dataset with its count. A click selects
// the tag's images or adds it to the filter (all of, any of, none of), a
// right click offers bulk actions on the tag; the active filter shows
// above the list with a way to drop each term.
type tagPanel struct {
	ws *workspace

	title    *widget.Label
	search   *widget.Entry
	order    *widget.Select
	mode     *widget.Select
	untagged *widget.Check
	active   *fyne.Container
	list     *widget.List
	rows     []tagger.TagCount
}

func newTagPanel(ws *workspace) *tagPanel {
	p := &tagPanel{ws: ws}
	p.title = widget.NewLabelWithStyle("Tags", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.search = widget.NewEntry()
	p.search.SetPlaceHolder("Search tags")
	p.search.OnChanged = func(string) { p.refresh() }
	p.order = widget.NewSelect([]string{sortByCount, sortByName}, nil)
	p.order.SetSelected(sortByCount)
	p.order.OnChanged = func(string) { p.refresh() }
	p.mode = widget.NewSelect([]string{clickSelect, clickAll, clickAny, clickNone}, nil)
	p.mode.SetSelected(clickSelect)
	p.untagged = widget.NewCheck("Only images without tags", func(on bool) {
		f := p.ws.filter
		f.Untagged = on
		p.ws.setFilter(f)
	})
	p.active = container.New(&flowLayout{})
	p.list = widget.NewList(
		func() int { return len(p.rows) },
		func() fyne.CanvasObject { return newTagRow(p) },
		func(i widget.ListItemID, o fyne.CanvasObject) {
			if i < len(p.rows) {
				o.(*tagRow).set(p.rows[i], p.marker(p.rows[i].Tag))
			}
		},
	)
	p.refresh()
	p.refreshFilter()
	return p
}

// object lays the panel out: title and controls on top, the list filling
// the rest.
func (p *tagPanel) object() fyne.CanvasObject {
	clickLabel := widget.NewLabel("Click a tag to")
	top := container.NewVBox(
		container.NewBorder(nil, nil, nil, p.order, p.title),
		p.search,
		container.NewBorder(nil, nil, clickLabel, nil, p.mode),
		p.untagged,
		p.active,
	)
	return container.NewBorder(top, nil, nil, nil, p.list)
}

// marker shows a tag's part in the filter.
func (p *tagPanel) marker(tag string) fyne.Resource {
	f := p.ws.filter
	switch {
	case slices.Contains(f.AllOf, tag):
		return theme.NewPrimaryThemedResource(theme.ConfirmIcon())
	case slices.Contains(f.AnyOf, tag):
		return theme.NewPrimaryThemedResource(theme.RadioButtonCheckedIcon())
	case slices.Contains(f.NoneOf, tag):
		return theme.NewErrorThemedResource(theme.CancelIcon())
	}
	return theme.NewDisabledResource(theme.RadioButtonIcon())
}

// clicked runs the chosen click action for tag.
func (p *tagPanel) clicked(tag string) {
	if p.mode.Selected == clickSelect {
		p.ws.selectImages(tagger.WithTag(p.ws.ds.Images, tag))
		return
	}
	f := p.ws.filter
	in := func(list []string) bool { return slices.Contains(list, tag) }
	wasAll, wasAny, wasNone := in(f.AllOf), in(f.AnyOf), in(f.NoneOf)
	f.AllOf, f.AnyOf, f.NoneOf = without(f.AllOf, tag), without(f.AnyOf, tag), without(f.NoneOf, tag)
	switch p.mode.Selected {
	case clickAll:
		if !wasAll {
			f.AllOf = append(f.AllOf, tag)
		}
	case clickAny:
		if !wasAny {
			f.AnyOf = append(f.AnyOf, tag)
		}
	case clickNone:
		if !wasNone {
			f.NoneOf = append(f.NoneOf, tag)
		}
	}
	p.ws.setFilter(f)
}

// without returns list minus tag, as a new slice.
func without(list []string, tag string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(t string) bool { return t == tag })
}

// refresh reloads the counts, applying the search and the order.
func (p *tagPanel) refresh() {
	all := p.ws.ed.Counts()
	q := strings.ToLower(strings.TrimSpace(p.search.Text))
	rows := all[:0:0]
	for _, r := range all {
		if q == "" || strings.Contains(strings.ToLower(r.Tag), q) {
			rows = append(rows, r)
		}
	}
	if p.order.Selected == sortByName {
		slices.SortFunc(rows, func(a, b tagger.TagCount) int {
			return strings.Compare(strings.ToLower(a.Tag), strings.ToLower(b.Tag))
		})
	}
	p.rows = rows
	if q == "" {
		p.title.SetText("Tags (" + itoa(len(all)) + ")")
	} else {
		p.title.SetText("Tags (" + itoa(len(rows)) + " of " + itoa(len(all)) + ")")
	}
	p.list.Refresh()
}

// refreshFilter shows the active filter terms, each removable.
func (p *tagPanel) refreshFilter() {
	f := p.ws.filter
	p.active.RemoveAll()
	term := func(kind, tag string, drop func(*tagger.Filter)) {
		b := widget.NewButtonWithIcon(kind+" "+tag, theme.CancelIcon(), func() {
			nf := p.ws.filter
			drop(&nf)
			p.ws.setFilter(nf)
		})
		b.Importance = widget.LowImportance
		p.active.Add(b)
	}
	for _, t := range f.AllOf {
		term("has", t, func(nf *tagger.Filter) { nf.AllOf = without(nf.AllOf, t) })
	}
	for _, t := range f.AnyOf {
		term("any", t, func(nf *tagger.Filter) { nf.AnyOf = without(nf.AnyOf, t) })
	}
	for _, t := range f.NoneOf {
		term("not", t, func(nf *tagger.Filter) { nf.NoneOf = without(nf.NoneOf, t) })
	}
	if !f.Empty() {
		reset := widget.NewButton("Clear filter", func() { p.ws.setFilter(tagger.Filter{}) })
		p.active.Add(reset)
	}
	p.untagged.Checked = f.Untagged
	p.untagged.Refresh()
	p.active.Refresh()
	p.list.Refresh()
}

// tagRow is one tag in the panel: a click runs the panel's click action,
// a right click offers every action for the tag.
type tagRow struct {
	widget.BaseWidget
	p     *tagPanel
	tag   string
	icon  *widget.Icon
	name  *widget.Label
	count *widget.Label
}

func newTagRow(p *tagPanel) *tagRow {
	r := &tagRow{p: p, icon: widget.NewIcon(nil), name: widget.NewLabel(""), count: widget.NewLabel("")}
	r.name.Truncation = fyne.TextTruncateEllipsis
	r.count.Importance = widget.LowImportance
	r.ExtendBaseWidget(r)
	return r
}

func (r *tagRow) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(container.NewBorder(nil, nil, r.icon, r.count, r.name))
}

func (r *tagRow) set(tc tagger.TagCount, marker fyne.Resource) {
	r.tag = tc.Tag
	r.name.SetText(tc.Tag)
	r.count.SetText(itoa(tc.Count))
	r.icon.SetResource(marker)
}

func (r *tagRow) Tapped(*fyne.PointEvent) {
	if r.tag != "" {
		r.p.clicked(r.tag)
	}
}

// TappedSecondary shows the tag's actions.
func (r *tagRow) TappedSecondary(e *fyne.PointEvent) {
	if r.tag == "" {
		return
	}
	p, tag := r.p, r.tag
	filter := func(mode string) func() {
		return func() {
			prev := p.mode.Selected
			p.mode.Selected = mode
			p.clicked(tag)
			p.mode.Selected = prev
		}
	}
	menu := fyne.NewMenu("",
		fyne.NewMenuItem("Select its images", filter(clickSelect)),
		fyne.NewMenuItem("Show only images with it", filter(clickAll)),
		fyne.NewMenuItem("Hide images with it", filter(clickNone)),
		fyne.NewMenuItemSeparator(),
		fyne.NewMenuItem("Rename in all images…", func() { p.ws.showBulkDialogFor(bulkReplace, tag) }),
		fyne.NewMenuItem("Remove from all images…", func() { p.ws.showBulkDialogFor(bulkRemove, tag) }),
		fyne.NewMenuItem("Put first in all images…", func() { p.ws.showBulkDialogFor(bulkTrigger, tag) }),
	)
	if c := fyne.CurrentApp().Driver().CanvasForObject(r); c != nil {
		widget.ShowPopUpMenuAtPosition(menu, c, e.AbsolutePosition)
	}
}
