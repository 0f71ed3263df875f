package ui

import (
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// noticeTime is how long a notice stays in the status bar.
const noticeTime = 8 * time.Second

// statusBar runs along the bottom of the workspace: what is shown and
// selected, thumbnail progress while it runs, and whether every edit is
// on disk. A failed save is a button that explains what happened.
type statusBar struct {
	ws *workspace

	counts  *widget.Label
	msg     *widget.Label
	msgTime *time.Timer
	thumbs  *widget.Label
	bar     *widget.ProgressBar
	saved   *widget.Label
	failed  *widget.Button
	lastErr error
	box     *fyne.Container
}

func newStatusBar(ws *workspace) *statusBar {
	b := &statusBar{ws: ws}
	b.counts = widget.NewLabel("")
	b.msg = widget.NewLabel("")
	b.msg.Importance = widget.HighImportance
	b.msg.Truncation = fyne.TextTruncateEllipsis
	b.thumbs = widget.NewLabel("")
	b.thumbs.Importance = widget.LowImportance
	b.bar = widget.NewProgressBar()
	b.bar.TextFormatter = func() string { return "" }
	b.saved = widget.NewLabel("")
	b.failed = widget.NewButtonWithIcon("", theme.NewErrorThemedResource(theme.ErrorIcon()), b.explain)
	b.failed.Importance = widget.LowImportance
	b.failed.Hide()
	progress := container.NewHBox(b.thumbs, container.NewGridWrap(fyne.NewSize(180, b.bar.MinSize().Height), b.bar))
	right := container.NewHBox(progress, b.failed, b.saved)
	b.box = container.NewBorder(widget.NewSeparator(), nil, b.counts, right, b.msg)
	return b
}

func (b *statusBar) object() fyne.CanvasObject { return b.box }

func (b *statusBar) refresh() {
	ws := b.ws
	st := ws.st
	text := plural(len(ws.ds.Images), "image", "images")
	if len(st.visible) != len(ws.ds.Images) {
		text = fmt.Sprintf("%s of %s shown", itoa(len(st.visible)), text)
	}
	if n := len(st.selected); n > 0 {
		text += fmt.Sprintf("  ·  %s selected", itoa(n))
	}
	b.counts.SetText(text)

	done, total, elapsed := ws.thumbs.progress()
	if done < total {
		b.thumbs.SetText(fmt.Sprintf("Thumbnails %s / %s", itoa(done), itoa(total)))
		b.bar.Max = float64(total)
		b.bar.SetValue(float64(done))
		b.thumbs.Show()
		b.bar.Show()
	} else {
		b.thumbs.SetText(fmt.Sprintf("Thumbnails ready in %s", seconds(elapsed)))
		b.bar.Hide()
	}

	pending, failed, err := ws.saves.counts()
	switch {
	case failed > 0:
		b.lastErr = err
		b.failed.SetText(fmt.Sprintf("%s not saved", plural(failed, "caption", "captions")))
		b.failed.Show()
	default:
		b.failed.Hide()
	}
	switch {
	case pending > 0:
		b.saved.SetText(fmt.Sprintf("● Saving %s…", plural(pending, "caption", "captions")))
		b.saved.Importance = widget.WarningImportance
	case failed > 0:
		b.saved.SetText("")
	default:
		b.saved.SetText("✓ All changes saved")
		b.saved.Importance = widget.SuccessImportance
	}
	b.saved.Refresh()
}

// notice shows a short message (the result of a bulk edit) for a while.
func (b *statusBar) notice(text string) {
	b.msg.SetText(text)
	if b.msgTime != nil {
		b.msgTime.Stop()
	}
	b.msgTime = time.AfterFunc(noticeTime, func() {
		b.ws.s.do(func() { b.msg.SetText("") })
	})
}

// setError reports a background failure (the thumbnail cache).
func (b *statusBar) setError(err error) {
	b.lastErr = err
	b.failed.SetText("Thumbnails unavailable")
	b.failed.Show()
}

// explain shows the last save failure with what it means for the edits.
func (b *statusBar) explain() {
	if b.lastErr == nil {
		return
	}
	msg := widget.NewLabel(b.lastErr.Error() + "\n\nThe edits are kept in memory; the studio retries on the next edit and when the dataset is closed.")
	msg.Wrapping = fyne.TextWrapWord
	d := dialog.NewCustom("Captions not saved", "OK", msg, b.ws.s.win)
	d.Resize(fyne.NewSize(520, 240))
	d.Show()
}
