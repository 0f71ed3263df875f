package ui

import (
	"fmt"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/trainer"
)

// trainField is one setting of the training form: its TOML key (what
// validation errors name), a label, a one-sentence help text that turns
// into the problem when the value is invalid, and how it moves between its
// widget and a trainer.Config.
type trainField struct {
	key   string
	label string
	help  string
	input fyne.CanvasObject
	msg   *widget.Label
	// read stores the widget's value in c; an error is a value that does
	// not parse.
	read  func(c *trainer.Config) error
	write func(c trainer.Config)
	// problem is the message shown now, "" when the value is fine.
	problem string
}

func newField(key, label, help string, input fyne.CanvasObject, read func(*trainer.Config) error, write func(trainer.Config)) *trainField {
	msg := widget.NewLabel(help)
	msg.Wrapping = fyne.TextWrapWord
	msg.SizeName = theme.SizeNameCaptionText
	msg.Importance = widget.LowImportance
	return &trainField{key: key, label: label, help: help, input: input, msg: msg, read: read, write: write}
}

// setProblem shows problem under the field, or the help text when "".
func (f *trainField) setProblem(problem string) {
	if problem == f.problem {
		return
	}
	f.problem = problem
	if problem == "" {
		f.msg.Importance = widget.LowImportance
		f.msg.SetText(f.help)
		return
	}
	f.msg.Importance = widget.DangerImportance
	f.msg.SetText("⚠ " + problem)
}

// entry is a single-line entry that reports every edit to onChange.
func entry(onChange func()) *widget.Entry {
	e := widget.NewEntry()
	e.OnChanged = func(string) { onChange() }
	return e
}

func intField(key, label, help string, onChange func(), ptr func(*trainer.Config) *int) *trainField {
	e := entry(onChange)
	return newField(key, label, help, e,
		func(c *trainer.Config) error {
			n, err := strconv.Atoi(strings.TrimSpace(e.Text))
			if err != nil {
				return fmt.Errorf("%q is not a whole number", e.Text)
			}
			*ptr(c) = n
			return nil
		},
		func(c trainer.Config) { e.SetText(strconv.Itoa(*ptr(&c))) })
}

func int64Field(key, label, help string, onChange func(), ptr func(*trainer.Config) *int64) *trainField {
	e := entry(onChange)
	return newField(key, label, help, e,
		func(c *trainer.Config) error {
			n, err := strconv.ParseInt(strings.TrimSpace(e.Text), 10, 64)
			if err != nil {
				return fmt.Errorf("%q is not a whole number", e.Text)
			}
			*ptr(c) = n
			return nil
		},
		func(c trainer.Config) { e.SetText(strconv.FormatInt(*ptr(&c), 10)) })
}

func floatField(key, label, help string, onChange func(), ptr func(*trainer.Config) *float64) *trainField {
	e := entry(onChange)
	return newField(key, label, help, e,
		func(c *trainer.Config) error {
			x, err := parseNumber(e.Text)
			if err != nil {
				return err
			}
			*ptr(c) = x
			return nil
		},
		func(c trainer.Config) { e.SetText(formatNumber(*ptr(&c))) })
}

// optionalRateField is a learning rate that falls back to learning_rate
// when empty (sd-scripts' unet_lr and text_encoder_lr).
func optionalRateField(key, label, help string, onChange func(), ptr func(*trainer.Config) **float64) *trainField {
	e := entry(onChange)
	e.SetPlaceHolder("same as learning rate")
	return newField(key, label, help, e,
		func(c *trainer.Config) error {
			if strings.TrimSpace(e.Text) == "" {
				*ptr(c) = nil
				return nil
			}
			x, err := parseNumber(e.Text)
			if err != nil {
				return err
			}
			*ptr(c) = &x
			return nil
		},
		func(c trainer.Config) {
			if v := *ptr(&c); v != nil {
				e.SetText(formatNumber(*v))
			} else {
				e.SetText("")
			}
		})
}

func stringField(key, label, help string, onChange func(), ptr func(*trainer.Config) *string) *trainField {
	e := entry(onChange)
	return newField(key, label, help, e,
		func(c *trainer.Config) error { *ptr(c) = strings.TrimSpace(e.Text); return nil },
		func(c trainer.Config) { e.SetText(*ptr(&c)) })
}

func checkField(key, label, text, help string, onChange func(), ptr func(*trainer.Config) *bool) *trainField {
	ch := widget.NewCheck(text, func(bool) { onChange() })
	return newField(key, label, help, ch,
		func(c *trainer.Config) error { *ptr(c) = ch.Checked; return nil },
		func(c trainer.Config) { ch.SetChecked(*ptr(&c)) })
}

// selectField offers options shown as labels (labels[i] names options[i]).
func selectField(key, label, help string, options, labels []string, onChange func(), ptr func(*trainer.Config) *string) *trainField {
	sel := widget.NewSelect(labels, func(string) { onChange() })
	return newField(key, label, help, sel,
		func(c *trainer.Config) error {
			i := sel.SelectedIndex()
			if i < 0 {
				return fmt.Errorf("choose one")
			}
			*ptr(c) = options[i]
			return nil
		},
		func(c trainer.Config) {
			v := *ptr(&c)
			for i, o := range options {
				if strings.EqualFold(o, v) {
					sel.SetSelectedIndex(i)
					return
				}
			}
			sel.ClearSelected()
		})
}

// warmupField reads lr_warmup_steps as a step count ("100") or a share of
// the run ("10%", or "0.1" as sd-scripts writes it).
func warmupField(onChange func()) *trainField {
	e := entry(onChange)
	return newField("lr_warmup_steps", "Warmup",
		"Steps (100) or a share of the run (10%) over which the learning rate ramps up from 0.", e,
		func(c *trainer.Config) error {
			w, err := parseWarmup(e.Text)
			if err != nil {
				return err
			}
			c.LRWarmup = w
			return nil
		},
		func(c trainer.Config) { e.SetText(formatWarmup(c.LRWarmup)) })
}

func parseWarmup(s string) (trainer.Warmup, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return trainer.Warmup{}, nil
	}
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		x, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || x < 0 || x >= 100 {
			return trainer.Warmup{}, fmt.Errorf("%q: want a percentage from 0 to below 100", s)
		}
		return trainer.Warmup{Ratio: x / 100}, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return trainer.Warmup{}, fmt.Errorf("%d steps: want 0 or more", n)
		}
		return trainer.Warmup{Steps: n}, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x < 0 || x >= 1 {
		return trainer.Warmup{}, fmt.Errorf("%q: want steps (100) or a share (10%%)", s)
	}
	return trainer.Warmup{Ratio: x}, nil
}

func formatWarmup(w trainer.Warmup) string {
	if w.Ratio > 0 {
		return strconv.FormatFloat(w.Ratio*100, 'g', -1, 64) + "%"
	}
	return strconv.Itoa(w.Steps)
}

func parseNumber(s string) (float64, error) {
	x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return x, nil
}

// formatNumber writes learning rates as people type them: 1e-4, 0.05, 8.
func formatNumber(x float64) string {
	return strconv.FormatFloat(x, 'g', -1, 64)
}
