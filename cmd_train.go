package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"lorastudio/dataset"
	"lorastudio/trainer"
)

// runTrain implements `lorastudio train`: it trains a job file (or the demo)
// headless with a progress bar, continues an unfinished run, or exports a
// job to kohya's sd-scripts. Ctrl-C stops the run after the current step
// and saves it so it can be continued. Exit codes: 0 done or stopped, 1 the
// run failed or was refused, 2 a usage error.
func runTrain(args []string) int {
	fl := flag.NewFlagSet("train", flag.ContinueOnError)
	config := fl.String("config", "", "training job `FILE` (TOML with sd-scripts' option names)")
	export := fl.String("export-kohya", "", "write `DIR`/dataset_config.toml and the sd-scripts command for the job instead of training")
	resume := fl.String("resume", "", "continue the unfinished run whose resume state is `FILE` (output_dir/<output_name>.lorastate)")
	demo := fl.Bool("demo", false, "train the built-in demo model on the bundled demo photos")
	demoDir := fl.String("demo-dir", "lorastudio-demo", "with -demo: `DIR` for the demo photos and the LoRA")
	demoSteps := fl.Int("demo-steps", 20, "with -demo: optimizer steps to train")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "usage:\n  lorastudio train --config job.toml [--export-kohya DIR]\n  lorastudio train --resume FILE\n  lorastudio train --demo\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	modes := 0
	for _, set := range []bool{*config != "", *resume != "", *demo} {
		if set {
			modes++
		}
	}
	if modes != 1 || fl.NArg() != 0 || (*export != "" && *config == "") {
		fl.Usage()
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "lorastudio train: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var cfg trainer.Config
	switch {
	case *config != "":
		c, warnings, err := trainer.LoadConfig(*config)
		if err != nil {
			return fail(err)
		}
		for _, w := range warnings {
			fmt.Fprintf(os.Stderr, "warning: %s\n", w)
		}
		cfg = c
	case *demo:
		c, err := demoJob(*demoDir, *demoSteps)
		if err != nil {
			return fail(err)
		}
		cfg = c
		fmt.Printf("demo: training the built-in untrained demo model on %s\n", cfg.TrainDataDir)
	}
	if *export != "" {
		return exportKohya(ctx, cfg, *export)
	}

	var r *trainer.Run
	var err error
	if *resume != "" {
		r, err = trainer.Continue(ctx, *resume)
	} else {
		r, err = trainer.Start(ctx, cfg)
	}
	if err != nil {
		return fail(err)
	}
	fmt.Println(r.Plan())
	ended := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stop() // a second Ctrl-C ends the process at once
			fmt.Fprintln(os.Stderr, "\nstopping after the current step (saving; press Ctrl-C again to quit without saving)")
		case <-ended:
		}
	}()
	bar := newProgress(os.Stdout)
	for e := range r.Events() {
		bar.event(e)
	}
	close(ended)
	if err := r.Wait(); err != nil {
		return 1
	}
	return 0
}

// exportKohya writes the job for sd-scripts.
func exportKohya(ctx context.Context, cfg trainer.Config, dir string) int {
	plan, err := trainer.PlanJob(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lorastudio train: %v\n", err)
		return 1
	}
	ex, err := trainer.ExportKohya(&cfg, dir, &plan)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lorastudio train: %v\n", err)
		return 1
	}
	for _, w := range ex.Warnings {
		fmt.Fprintf(os.Stderr, "warning: %s\n", w)
	}
	fmt.Printf("wrote %s and %s; from an sd-scripts checkout run:\n%s\n", ex.DatasetConfig, ex.Script, ex.Command)
	return 0
}

// demoJob extracts the demo photos under dir and returns a short job that
// trains the demo model on them at 128 px, with a preview at the end.
func demoJob(dir string, steps int) (trainer.Config, error) {
	data, err := dataset.ExtractDemo(filepath.Join(dir, "data"))
	if err != nil {
		return trainer.Config{}, err
	}
	prompts := filepath.Join(dir, "prompts.txt")
	if err := os.WriteFile(prompts, []byte("a photo of a cat --w 128 --h 128 --s 12 --d 1\n"), 0o644); err != nil {
		return trainer.Config{}, err
	}
	c := trainer.Defaults()
	c.PretrainedModel = trainer.DemoModel
	c.TrainDataDir = data
	c.OutputDir = dir
	c.OutputName = "demo_lora"
	c.Resolution = "128"
	c.EnableBucket = false
	c.MaxTrainEpochs = 0
	c.MaxTrainSteps = steps
	c.LearningRate = 1e-3
	c.SamplePrompts = prompts
	c.SampleEveryNEpochs = 1
	return c, nil
}

// progress draws the run's events: a bar redrawn in place on a terminal,
// a line every few seconds otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	last     time.Time
	inBar    bool
	state    string // the resume state saved last
}

func newProgress(f *os.File) *progress {
	st, err := f.Stat()
	return &progress{w: f, terminal: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

// line replaces the bar (on a terminal) or prints s on a new line.
func (p *progress) line(s string, final bool) {
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		p.inBar = !final
		if final {
			fmt.Fprintln(p.w)
		}
		return
	}
	if final || time.Since(p.last) >= 5*time.Second {
		fmt.Fprintln(p.w, s)
		p.last = time.Now()
	}
}

// say prints a message on its own line, after any bar.
func (p *progress) say(format string, args ...any) {
	if p.inBar {
		fmt.Fprintln(p.w)
		p.inBar = false
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progress) event(e trainer.Event) {
	switch e := e.(type) {
	case trainer.Planned:
		if e.Resumed {
			p.say("continuing at step %d", e.StartStep)
		}
	case trainer.Caching:
		switch {
		case e.What == "model" && e.Done == 0:
			p.say("loading the model")
		case e.What == "latents":
			p.line(fmt.Sprintf("caching latents %d/%d (%d from the cache)", e.Done, e.Total, e.Reused), e.Done == e.Total)
		case e.What != "model":
			p.line(fmt.Sprintf("encoding %s %d/%d", e.What, e.Done, e.Total), e.Done == e.Total)
		}
	case trainer.Step:
		const width = 24
		filled := width * e.Step / max(1, e.TotalSteps)
		p.line(fmt.Sprintf("step %d/%d [%s%s] epoch %d/%d loss %.4f (avg %.4f) lr %.2e %.2f s/step ETA %s",
			e.Step, e.TotalSteps, strings.Repeat("#", filled), strings.Repeat(".", width-filled),
			e.Epoch, e.Epochs, e.Loss, e.AvgLoss, e.LR, e.StepTime.Seconds(), e.ETA.Round(time.Second)), e.Step == e.TotalSteps)
	case trainer.Saved:
		p.say("saved %s", e.Path)
		if e.StatePath != "" {
			p.state = e.StatePath
		}
	case trainer.Sample:
		p.say("sample %s", e.Path)
	case trainer.Paused:
		p.say("paused at step %d", e.Step)
	case trainer.Resumed:
		p.say("resumed at step %d", e.Step)
	case trainer.Finished:
		switch {
		case e.Stopped && p.state != "":
			p.say("stopped at step %d after %s; continue with: lorastudio train --resume %s", e.Step, e.Elapsed.Round(time.Second), p.state)
		case e.Stopped:
			p.say("stopped before training began")
		default:
			p.say("done: %s (%d steps in %s)", e.Path, e.Step, e.Elapsed.Round(time.Second))
		}
	case trainer.Failed:
		p.say("")
		fmt.Fprintf(os.Stderr, "lorastudio train: %v\n", e.Err)
	}
}
