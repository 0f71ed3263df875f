package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"lorastudio/sd"
	"lorastudio/trainer"
)

// runGenerate implements `lorastudio generate`: one text-to-image run with
// AUTOMATIC1111's prompt syntax for LoRAs, saved as a PNG carrying its
// parameters. Exit codes: 0 saved, 1 the run failed, 2 a usage error.
func runGenerate(args []string) int {
	def := sd.DefaultGenerateOptions()
	fl := flag.NewFlagSet("generate", flag.ContinueOnError)
	model := fl.String("model", "", "base model: a Stable Diffusion 1.x checkpoint `FILE` or diffusers folder")
	demo := fl.Bool("demo", false, "use the built-in untrained demo model (its images are noise)")
	prompt := fl.String("prompt", "", "the `prompt`; <lora:NAME:TE[:UNET]> applies NAME.safetensors from --lora-dir")
	negative := fl.String("negative", "", "the negative `prompt`")
	steps := fl.Int("steps", def.Steps, "sampling steps")
	cfg := fl.Float64("cfg", float64(def.CFGScale), "classifier-free guidance scale")
	sampler := fl.String("sampler", def.Sampler, "sampler: "+strings.Join(trainer.Samplers, ", "))
	seed := fl.Int64("seed", -1, "noise seed; -1 picks one at random")
	width := fl.Int("width", def.Width, "image width in pixels (a multiple of 64 for SD 1.x)")
	height := fl.Int("height", def.Height, "image height in pixels")
	clipSkip := fl.Int("clip-skip", def.ClipSkip, "text-encoder layers to skip from the end (1 = none)")
	loraDir := fl.String("lora-dir", "", "`DIR` holding the LoRA files the prompt names")
	out := fl.String("out", "out.png", "output PNG `FILE`")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "usage:\n  lorastudio generate --model FILE|--demo --prompt \"... <lora:name:0.7>\" [--negative ...] [--lora-dir DIR] [--out out.png]\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if (*model == "") == !*demo || fl.NArg() != 0 {
		fmt.Fprintln(fl.Output(), "lorastudio generate: give exactly one of --model and --demo")
		fl.Usage()
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "lorastudio generate: %v\n", err)
		return 1
	}
	name, err := trainer.ParseSampler(*sampler)
	if err != nil {
		return fail(err)
	}
	if *steps < 1 {
		return fail(fmt.Errorf("--steps %d: want at least 1", *steps))
	}
	if *clipSkip < 1 {
		return fail(fmt.Errorf("--clip-skip %d: want at least 1", *clipSkip))
	}
	if *seed < 0 {
		*seed = int64(rand.Uint32())
	}
	req := trainer.GenerateRequest{
		GenerateOptions: sd.GenerateOptions{
			Prompt: *prompt, NegativePrompt: *negative, Width: *width, Height: *height, Steps: *steps,
			CFGScale: float32(*cfg), Sampler: name, Seed: uint64(*seed), ClipSkip: *clipSkip,
		},
		LoRADir: *loraDir,
		Model:   *model,
	}
	// Check the prompt before the (slow) model load.
	if _, _, err := sd.ParsePromptLoRAs(*prompt); err != nil {
		return fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := newProgress(os.Stdout)
	start := time.Now()
	var m *sd.Model
	if *demo {
		req.Model = trainer.DemoModel
		m, err = sd.NewRandomModel(sd.TinyConfig(), trainer.DemoSeed)
	} else {
		bar.say("loading %s", *model)
		m, err = sd.LoadModel(*model)
	}
	if err != nil {
		return fail(err)
	}
	hashed := make(chan string, 1)
	go func() {
		// AUTOMATIC1111's "Model hash" is the file's SHA-256; a diffusers
		// folder has none. Hashing reads the whole file, so it runs
		// beside the sampling.
		h := ""
		if st, err := os.Stat(*model); err == nil && !st.IsDir() {
			h, _, _ = sd.FileHashes(*model)
		}
		hashed <- h
	}()
	if *demo {
		bar.say("demo: the built-in demo model is untrained; its images are noise")
	} else {
		bar.say("loaded %s in %s", m.Name, time.Since(start).Round(100*time.Millisecond))
	}
	last := time.Now()
	first := last
	g, err := trainer.Generate(ctx, m, req, func(step, total int) {
		now := time.Now()
		const width = 24
		filled := width * step / max(1, total)
		perStep := now.Sub(first).Seconds() / float64(step)
		eta := time.Duration(perStep*float64(total-step)) * time.Second
		bar.line(fmt.Sprintf("step %d/%d [%s%s] %.2f s/step (last %.2f s) ETA %s", step, total,
			strings.Repeat("#", filled), strings.Repeat(".", width-filled), perStep, now.Sub(last).Seconds(), eta.Round(time.Second)), step == total)
		last = now
	})
	if err != nil {
		return fail(err)
	}
	if !*demo {
		req.ModelHash = <-hashed
		if req.ModelHash != "" {
			g.Parameters = trainer.Parameters(req.GenerateOptions, req.Model, req.ModelHash, g.LoRAHashes)
		}
	}
	if err := trainer.WritePNG(*out, g.Image, g.Parameters); err != nil {
		return fail(err)
	}
	bar.say("saved %s (seed %d, %s)", *out, *seed, time.Since(start).Round(100*time.Millisecond))
	return 0
}
