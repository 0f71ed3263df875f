package ui

import (
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// maxLogLines bounds the log pane; older lines scroll away.
const maxLogLines = 5000

// logPane lists the run's events, newest at the bottom, with a button to
// copy them all.
type logPane struct {
	win   fyne.Window
	lines []string
	list  *widget.List
	box   fyne.CanvasObject
}

func newLogPane(win fyne.Window) *logPane {
	l := &logPane{win: win}
	l.list = widget.NewList(
		func() int { return len(l.lines) },
		func() fyne.CanvasObject {
			t := widget.NewLabel("")
			t.TextStyle = fyne.TextStyle{Monospace: true}
			t.Truncation = fyne.TextTruncateEllipsis
			return t
		},
		func(id widget.ListItemID, o fyne.CanvasObject) { o.(*widget.Label).SetText(l.lines[id]) })
	copyAll := widget.NewButtonWithIcon("Copy log", theme.ContentCopyIcon(), func() {
		fyne.CurrentApp().Clipboard().SetContent(strings.Join(l.lines, "\n"))
	})
	copyAll.Importance = widget.LowImportance
	l.box = container.NewBorder(nil, container.NewHBox(copyAll), nil, nil, l.list)
	return l
}

func (l *logPane) object() fyne.CanvasObject { return l.box }

func (l *logPane) add(lines []string) {
	if len(lines) == 0 {
		return
	}
	l.lines = append(l.lines, lines...)
	if n := len(l.lines) - maxLogLines; n > 0 {
		l.lines = append([]string(nil), l.lines[n:]...)
	}
	l.list.Refresh()
	l.list.ScrollToBottom()
}

// showErrorText shows an error whose text can be selected and copied.
func showErrorText(win fyne.Window, title, text string) {
	body := widget.NewMultiLineEntry()
	body.SetText(text)
	body.Wrapping = fyne.TextWrapWord
	body.SetMinRowsVisible(6)
	icon := widget.NewIcon(theme.ErrorIcon())
	copyBtn := widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() { fyne.CurrentApp().Clipboard().SetContent(text) })
	content := container.NewBorder(container.NewHBox(icon, widget.NewLabelWithStyle(title, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})),
		container.NewHBox(copyBtn), nil, nil, body)
	d := dialog.NewCustom("Error", "Close", content, win)
	d.Resize(fyne.NewSize(640, 360))
	d.Show()
}

// showReport shows an intro line and a list (such as ignored settings)
// that can be copied.
func showReport(win fyne.Window, title, intro string, lines []string) {
	head := widget.NewLabel(intro)
	head.Wrapping = fyne.TextWrapWord
	content := fyne.CanvasObject(head)
	if len(lines) > 0 {
		body := widget.NewMultiLineEntry()
		body.SetText(strings.Join(lines, "\n"))
		body.Wrapping = fyne.TextWrapWord
		body.SetMinRowsVisible(8)
		content = container.NewBorder(head, nil, nil, nil, body)
	}
	d := dialog.NewCustom(title, "OK", content, win)
	d.Resize(fyne.NewSize(680, 420))
	d.Show()
}
