package ui

import (
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"lorastudio/sd"
	"lorastudio/trainer"
)

// trainForm is the settings form: every field of a training job, grouped
// as kohya_ss users know them, with help under each field.
type trainForm struct {
	p       *trainPanel
	fields  []*trainField
	byKey   map[string]*trainField
	prompts *widget.Entry
	outDir  *widget.Entry
	// loading is set while the form is filled from a Config, so the
	// widgets' change callbacks do not read a half-filled form.
	loading bool
	body    fyne.CanvasObject
}

// targetNames are the LoRA target options with their labels.
var (
	targetOptions = []string{string(sd.LoRACrossAttention), string(sd.LoRAAttention), string(sd.LoRAKohyaFull)}
	targetLabels  = []string{"Cross-attention (attn2 q/k/v/out)", "All attention (attn1 + attn2)", "kohya full (attention, proj, feed-forward)"}
	precisions    = []string{"fp16", "float", "bf16"}
	precisionText = []string{"fp16 (kohya default, half the size)", "float32", "bf16"}
)

func newTrainForm(p *trainPanel) *trainForm {
	f := &trainForm{p: p, byKey: map[string]*trainField{}}
	ch := p.changed

	outName := stringField("output_name", "Name", "File name of the LoRA (name.safetensors) and the name you type in <lora:name:0.8>.", ch,
		func(c *trainer.Config) *string { return &c.OutputName })
	outDir := stringField("output_dir", "Folder", "Where the LoRA, its epoch saves, resume state and samples are written.", ch,
		func(c *trainer.Config) *string { return &c.OutputDir })
	f.outDir = outDir.input.(*widget.Entry)
	browse := widget.NewButtonWithIcon("", theme.FolderOpenIcon(), f.chooseOutputDir)
	outDir.input = container.NewBorder(nil, nil, nil, browse, f.outDir)

	targets := func(c *trainer.Config) *string { s := (*string)(&c.Targets); return s }
	teLR := optionalRateField("text_encoder_lr", "Text encoder LR",
		"Rate for text-encoder adapters when they train; empty uses the learning rate (kohya_ss often uses half).", ch,
		func(c *trainer.Config) **float64 { return &c.TextEncoderLR })
	trainTE := widget.NewCheck("Train text-encoder adapters too", func(bool) { ch() })
	teOn := newField("network_train_unet_only", "Text encoder",
		"Also adapts CLIP's attention and MLP layers; learns prompts better, but each step costs more and text embeddings are no longer cached.",
		trainTE,
		func(c *trainer.Config) error { c.NetworkTrainUNetOnly = !trainTE.Checked; return nil },
		func(c trainer.Config) { trainTE.SetChecked(!c.NetworkTrainUNetOnly) })

	f.prompts = widget.NewMultiLineEntry()
	f.prompts.SetPlaceHolder("a photo of sks dog --w 512 --h 512 --s 20 --l 7 --d 1")
	f.prompts.SetMinRowsVisible(3)
	f.prompts.Wrapping = fyne.TextWrapWord
	f.prompts.OnChanged = func(string) { ch() }
	prompts := newField("sample_prompts", "Sample prompts",
		"One prompt per line, with kohya's --w --h --s (steps) --l (CFG) --d (seed) --n (negative) flags; empty makes no samples.",
		f.prompts, func(*trainer.Config) error { return nil }, func(trainer.Config) {})

	groups := []struct {
		title  string
		icon   fyne.Resource
		fields []*trainField
	}{
		{"Output", theme.DocumentSaveIcon(), []*trainField{
			outName, outDir,
			intField("save_every_n_epochs", "Save every", "Also save the LoRA after every N epochs (0: only at the end).", ch,
				func(c *trainer.Config) *int { return &c.SaveEveryNEpochs }),
			selectField("save_precision", "Precision", "Number format of the saved LoRA file.", precisions, precisionText, ch,
				func(c *trainer.Config) *string { return &c.SavePrecision }),
		}},
		{"Network", theme.GridIcon(), []*trainField{
			intField("network_dim", "Rank", "Size of each adapter (network_dim): higher learns more detail and makes a bigger file.", ch,
				func(c *trainer.Config) *int { return &c.NetworkDim }),
			floatField("network_alpha", "Alpha", "Scales the adapters by alpha / rank; 1 with rank 8 is kohya's gentle default.", ch,
				func(c *trainer.Config) *float64 { return &c.NetworkAlpha }),
			selectField("network_args", "Target layers", "Which UNet layers get adapters; cross-attention is where prompts meet the image.",
				targetOptions, targetLabels, ch, targets),
		}},
		{"Learning rate", theme.MediaFastForwardIcon(), []*trainField{
			floatField("learning_rate", "Learning rate", "How far each step moves the adapters; 1e-4 is the usual start, too high gives NaN.", ch,
				func(c *trainer.Config) *float64 { return &c.LearningRate }),
			optionalRateField("unet_lr", "UNet LR", "Rate for the UNet adapters; empty uses the learning rate.", ch,
				func(c *trainer.Config) **float64 { return &c.UNetLR }),
			teOn, teLR,
			selectField("lr_scheduler", "Scheduler", "How the learning rate changes over the run.", trainer.Schedulers, schedulerLabels(), ch,
				func(c *trainer.Config) *string { return &c.LRScheduler }),
			warmupField(ch),
		}},
		{"Length and batches", theme.HistoryIcon(), []*trainField{
			intField("max_train_epochs", "Epochs", "Passes over every image x its folder's repeats; 0 uses Max steps instead.", ch,
				func(c *trainer.Config) *int { return &c.MaxTrainEpochs }),
			intField("max_train_steps", "Max steps", "Length in optimizer steps, used only when Epochs is 0.", ch,
				func(c *trainer.Config) *int { return &c.MaxTrainSteps }),
			intField("train_batch_size", "Batch size", "Images per step; a bigger batch takes longer per step but fewer steps.", ch,
				func(c *trainer.Config) *int { return &c.TrainBatchSize }),
			intField("gradient_accumulation_steps", "Grad accumulation", "Batches averaged into one optimizer step, like a bigger batch without the memory.", ch,
				func(c *trainer.Config) *int { return &c.GradientAccumulationSteps }),
			int64Field("seed", "Seed", "Fixes the random choices so the same settings give the same LoRA.", ch,
				func(c *trainer.Config) *int64 { return &c.Seed }),
		}},
		{"Images and buckets", theme.MediaPhotoIcon(), []*trainField{
			stringField("resolution", "Resolution", "Training size \"width,height\" or \"size\"; SD 1.x is trained at 512, smaller trains faster.", ch,
				func(c *trainer.Config) *string { return &c.Resolution }),
			checkField("enable_bucket", "Buckets", "Aspect-ratio buckets", "Groups images by shape so they are not cropped to squares.", ch,
				func(c *trainer.Config) *bool { return &c.EnableBucket }),
			intField("min_bucket_reso", "Min bucket side", "Smallest bucket side in pixels.", ch,
				func(c *trainer.Config) *int { return &c.MinBucketReso }),
			intField("max_bucket_reso", "Max bucket side", "Largest bucket side in pixels.", ch,
				func(c *trainer.Config) *int { return &c.MaxBucketReso }),
			intField("bucket_reso_steps", "Bucket step", "Bucket sides are multiples of this (64 for SD 1.x).", ch,
				func(c *trainer.Config) *int { return &c.BucketResoSteps }),
			checkField("bucket_no_upscale", "", "Never upscale small images", "Small images get a bucket of their own size instead of being enlarged.", ch,
				func(c *trainer.Config) *bool { return &c.BucketNoUpscale }),
		}},
		{"Captions", theme.DocumentIcon(), []*trainField{
			checkField("shuffle_caption", "Shuffle", "Shuffle tags each step", "Shuffles the comma-separated tags so no tag order is learned.", ch,
				func(c *trainer.Config) *bool { return &c.ShuffleCaption }),
			intField("keep_tokens", "Keep tokens", "The first N tags stay in front when shuffling (your trigger word).", ch,
				func(c *trainer.Config) *int { return &c.KeepTokens }),
			floatField("caption_dropout_rate", "Caption dropout", "Share of steps trained with an empty caption (0 to 1).", ch,
				func(c *trainer.Config) *float64 { return &c.CaptionDropoutRate }),
			intField("clip_skip", "Clip skip", "Use the CLIP layer N from the end; 1 for SD 1.5, 2 for anime models.", ch,
				func(c *trainer.Config) *int { return &c.ClipSkip }),
		}},
		{"Noise and loss", theme.WarningIcon(), []*trainField{
			floatField("noise_offset", "Noise offset", "Adds a constant to the noise so the LoRA can make darker darks and brighter brights (0.05-0.1).", ch,
				func(c *trainer.Config) *float64 { return &c.NoiseOffset }),
			floatField("min_snr_gamma", "Min-SNR gamma", "Weights the loss by timestep for steadier training; 5 is recommended, 0 is off.", ch,
				func(c *trainer.Config) *float64 { return &c.MinSNRGamma }),
		}},
		{"Samples", theme.MediaPhotoIcon(), []*trainField{
			prompts,
			intField("sample_every_n_epochs", "Every N epochs", "Make sample images after every N epochs (0: off).", ch,
				func(c *trainer.Config) *int { return &c.SampleEveryNEpochs }),
			intField("sample_every_n_steps", "Every N steps", "Make sample images every N steps (0: off).", ch,
				func(c *trainer.Config) *int { return &c.SampleEveryNSteps }),
			selectField("sample_sampler", "Sampler", "The sampler that draws the samples.", trainer.Samplers, trainer.Samplers, ch,
				func(c *trainer.Config) *string { return &c.SampleSampler }),
		}},
	}

	presets := newPresetBar(p)
	box := container.NewVBox(presets, sectionTitle("Base model", theme.ComputerIcon()), p.model.object())
	for _, g := range groups {
		grid := container.New(layout.NewFormLayout())
		for _, fl := range g.fields {
			f.fields = append(f.fields, fl)
			f.byKey[fl.key] = fl
			label := widget.NewLabelWithStyle(fl.label, fyne.TextAlignTrailing, fyne.TextStyle{Bold: true})
			grid.Add(label)
			grid.Add(container.NewVBox(fl.input, fl.msg))
		}
		box.Add(widget.NewSeparator())
		box.Add(sectionTitle(g.title, g.icon))
		box.Add(grid)
	}
	f.body = container.NewVScroll(container.NewPadded(box))
	return f
}

func schedulerLabels() []string {
	out := make([]string, len(trainer.Schedulers))
	for i, s := range trainer.Schedulers {
		out[i] = strings.ReplaceAll(s, "_", " ")
	}
	return out
}

func (f *trainForm) object() fyne.CanvasObject { return f.body }

// write fills the form from cfg and the prompts text.
func (f *trainForm) write(cfg trainer.Config, prompts string) {
	f.loading = true
	defer func() { f.loading = false }()
	for _, fl := range f.fields {
		fl.write(cfg)
	}
	f.prompts.SetText(prompts)
	f.p.model.set(cfg.PretrainedModel)
}

// read returns the Config the form describes over st.cfg (which keeps the
// settings the form does not show), and the values that do not parse.
// The prompts text goes to st.prompts, and to its file when it changed.
func (f *trainForm) read(st *trainState) (trainer.Config, trainer.ValidationErrors) {
	cfg := st.cfg
	var problems trainer.ValidationErrors
	for _, fl := range f.fields {
		if err := fl.read(&cfg); err != nil {
			problems = append(problems, trainer.FieldError{Key: fl.key, Msg: err.Error()})
		}
	}
	cfg.PretrainedModel = f.p.model.value()
	st.prompts = f.prompts.Text
	cfg.SamplePrompts = ""
	if strings.TrimSpace(st.prompts) != "" {
		if err := writePrompts(st.promptsPath, st.prompts); err != nil {
			problems = append(problems, trainer.FieldError{Key: "sample_prompts", Msg: err.Error()})
		} else {
			cfg.SamplePrompts = st.promptsPath
		}
	}
	return cfg, problems
}

// showProblems flags each field with its problem and clears the others.
func (f *trainForm) showProblems(problems trainer.ValidationErrors) {
	for _, fl := range f.fields {
		fl.setProblem(problems.Field(fl.key))
	}
}

// setEnabled locks the form while a run uses its settings.
func (f *trainForm) setEnabled(on bool) {
	for _, fl := range f.fields {
		setDisabled(fl.input, !on)
	}
	f.p.model.setEnabled(on)
}

// setDisabled disables every widget inside o.
func setDisabled(o fyne.CanvasObject, off bool) {
	switch w := o.(type) {
	case fyne.Disableable:
		if off {
			w.Disable()
		} else {
			w.Enable()
		}
	case *fyne.Container:
		for _, c := range w.Objects {
			setDisabled(c, off)
		}
	}
}

func (f *trainForm) chooseOutputDir() {
	d := dialog.NewFolderOpen(func(u fyne.ListableURI, err error) {
		if err != nil {
			dialog.ShowError(err, f.p.s.win)
			return
		}
		if u != nil {
			f.outDir.SetText(u.Path())
		}
	}, f.p.s.win)
	d.Resize(fyne.NewSize(820, 560))
	d.Show()
}

// fieldLabel names a TOML key for the Start button's reason.
func (f *trainForm) fieldLabel(key string) string {
	switch key {
	case "pretrained_model_name_or_path":
		return "Base model"
	case "train_data_dir":
		return "Dataset"
	}
	if fl := f.byKey[key]; fl != nil && fl.label != "" {
		return fl.label
	}
	return key
}

// reason says why Start is disabled, naming the first problem.
func (f *trainForm) reason(problems trainer.ValidationErrors) string {
	if len(problems) == 0 {
		return ""
	}
	first := problems[0]
	msg := fmt.Sprintf("%s: %s", f.fieldLabel(first.Key), first.Msg)
	if len(problems) > 1 {
		msg += fmt.Sprintf(" (and %s)", plural(len(problems)-1, "more problem", "more problems"))
	}
	return msg
}
