package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/trainer"
)

// replan computes the plan of the current settings off the UI goroutine
// (it opens the dataset) and looks for unfinished runs in the output
// folder. A newer edit makes an older result stale.
func (p *trainPanel) replan() {
	cfg := p.st.cfg
	valid := len(p.st.problems) == 0
	key := fmt.Sprintf("valid=%v\n%s", valid, configKey(cfg))
	if key == p.st.planFor {
		return
	}
	p.st.planFor = key
	if !valid {
		p.st.plan, p.st.planErr = nil, ""
		p.monitor.showPlan()
	}
	go func() {
		unfinished, ufErr := trainer.FindUnfinished(cfg.OutputDir)
		var plan *trainer.Plan
		planErr := ""
		if valid {
			pl, err := trainer.PlanJob(context.Background(), cfg)
			if err != nil {
				planErr = planErrorText(err)
			} else {
				plan = &pl
			}
		}
		p.s.do(func() {
			if p.st.planFor != key {
				return
			}
			if ufErr != nil {
				fyne.LogError("look for unfinished runs", ufErr)
			}
			p.st.unfinished = unfinished
			if len(p.st.problems) == 0 {
				p.st.plan, p.st.planErr = plan, planErr
			}
			p.monitor.showPlan()
			p.monitor.refreshReady()
		})
	}()
}

// configKey identifies a Config's content.
func configKey(cfg trainer.Config) string {
	b, err := cfg.Encode()
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func planErrorText(err error) string {
	var v trainer.ValidationErrors
	if errors.As(err, &v) && len(v) > 0 {
		msgs := make([]string, len(v))
		for i, e := range v {
			msgs[i] = e.Msg
		}
		return strings.Join(msgs, "; ")
	}
	return err.Error()
}

// planView shows the arithmetic of the run before it starts, in kohya's
// terms: images x repeats, buckets, steps per epoch, total steps and the
// time it will take.
type planView struct {
	samples, buckets, perEpoch, total, eta *statTile
	detail                                 *widget.Label
	box                                    fyne.CanvasObject
}

// statTile is a number with what it counts beneath.
type statTile struct {
	value, caption *widget.Label
	box            fyne.CanvasObject
}

func newStatTile(caption string) *statTile {
	t := &statTile{value: widget.NewLabelWithStyle("–", fyne.TextAlignCenter, fyne.TextStyle{Bold: true})}
	t.value.SizeName = theme.SizeNameSubHeadingText
	t.value.Truncation = fyne.TextTruncateEllipsis
	t.caption = widget.NewLabelWithStyle(caption, fyne.TextAlignCenter, fyne.TextStyle{})
	t.caption.SizeName = theme.SizeNameCaptionText
	t.caption.Importance = widget.LowImportance
	t.caption.Truncation = fyne.TextTruncateEllipsis
	t.box = container.NewVBox(t.value, t.caption)
	return t
}

func newPlanView() *planView {
	v := &planView{
		samples:  newStatTile("images × repeats"),
		buckets:  newStatTile("buckets"),
		perEpoch: newStatTile("steps per epoch"),
		total:    newStatTile("total steps"),
		eta:      newStatTile("estimated time"),
	}
	v.detail = widget.NewLabel("")
	v.detail.Wrapping = fyne.TextWrapWord
	v.detail.Importance = widget.LowImportance
	grid := container.NewGridWithColumns(5, v.samples.box, v.buckets.box, v.perEpoch.box, v.total.box, v.eta.box)
	v.box = container.NewVBox(widget.NewSeparator(), grid, v.detail)
	return v
}

// show fills the tiles from plan; secsPerStep is a measured step time (0:
// none yet).
func (v *planView) show(plan *trainer.Plan, planErr string, secsPerStep float64) {
	if plan == nil {
		for _, t := range []*statTile{v.samples, v.buckets, v.perEpoch, v.total, v.eta} {
			t.value.SetText("–")
		}
		v.detail.SetText(planErr)
		return
	}
	v.samples.value.SetText(fmt.Sprintf("%s × → %s", itoa(plan.Images), itoa(plan.ImagesRepeated)))
	v.buckets.value.SetText(itoa(len(plan.Buckets)))
	v.perEpoch.value.SetText(itoa(plan.StepsPerEpoch))
	v.total.value.SetText(fmt.Sprintf("%s (%s)", itoa(plan.TotalSteps), plural(plan.Epochs, "epoch", "epochs")))
	detail := bucketText(plan)
	if secsPerStep > 0 {
		v.eta.value.SetText(duration(time.Duration(secsPerStep * float64(plan.TotalSteps) * float64(time.Second))))
		detail += fmt.Sprintf(" Time from a measured %.2f s per step on this computer, caching not included.", secsPerStep)
	} else {
		v.eta.value.SetText("after step 1")
		detail += " The time is estimated once a step has been measured on this computer."
	}
	v.detail.SetText(detail)
}

// bucketText lists the buckets and the batch arithmetic in one sentence.
func bucketText(p *trainer.Plan) string {
	var b strings.Builder
	b.WriteString("Buckets: ")
	for i, bc := range p.Buckets {
		if i == 4 {
			fmt.Fprintf(&b, ", … %d more", len(p.Buckets)-4)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d×%d (%d)", bc.Reso.W, bc.Reso.H, bc.Count)
	}
	fmt.Fprintf(&b, ". Batch %d", p.BatchSize)
	if p.GradAccum > 1 {
		fmt.Fprintf(&b, " × %d accumulated", p.GradAccum)
	}
	fmt.Fprintf(&b, ": %d batches make %d steps per epoch.", p.BatchesPerEpoch, p.StepsPerEpoch)
	return b.String()
}

// duration formats a long time for people: "45 s", "12 min", "3 h 20 min".
func duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%.0f min", d.Minutes())
	}
	h := int(d.Hours())
	return fmt.Sprintf("%d h %02d min", h, int(d.Minutes())-60*h)
}
