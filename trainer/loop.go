package trainer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"lorastudio/sd"
)

// train is the run's goroutine: it loads the model, caches latents and
// text embeddings, trains, saves, and reports all of it. It sends Planned
// first and Finished or Failed last.
func (j *job) train(ctx context.Context) error {
	began := time.Now()
	j.emit(j.planned())
	stopped, err := j.work(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		stopped, err = true, nil
		if j.step > 0 {
			err = j.saveStopped()
		}
	}
	if err != nil {
		j.emit(Failed{Err: err, LastSave: j.lastSave})
		return err
	}
	j.emit(Finished{Path: j.lastSave, Step: j.step, Stopped: stopped, Elapsed: time.Since(began)})
	return nil
}

func (j *job) planned() Planned {
	p := j.plan
	ev := Planned{
		Images: p.Images, ImageRepeats: p.ImagesRepeated, BatchSize: p.BatchSize, GradAccum: p.GradAccum,
		StepsPerEpoch: p.StepsPerEpoch, Epochs: p.Epochs, TotalSteps: p.TotalSteps,
	}
	for _, b := range p.Buckets {
		ev.Buckets = append(ev.Buckets, BucketUse{Width: b.Reso.W, Height: b.Reso.H, Count: b.Count})
	}
	if j.resume != nil {
		ev.StartStep, ev.Resumed = j.resume.Step, true
	}
	return ev
}

func (j *job) emit(e Event) { j.run.events <- e }

// work runs the whole job; stopped reports a Stop (or a cancelled context)
// after which what was trained has been saved.
func (j *job) work(ctx context.Context) (stopped bool, err error) {
	j.emit(Caching{What: "model", Total: 1})
	if err := j.loadModel(); err != nil {
		return false, err
	}
	j.emit(Caching{What: "model", Done: 1, Total: 1})
	if err := j.setupNetwork(); err != nil {
		return false, err
	}
	if err := j.cacheLatents(ctx); err != nil {
		return false, err
	}
	if j.resume != nil && j.resume.VAE != j.vaeID {
		return false, fmt.Errorf("continue %s: the base model's VAE differs from the one the run started with", j.resume.path)
	}
	if err := j.cacheTexts(ctx); err != nil {
		return false, err
	}
	if err := j.dropUnused(); err != nil {
		return false, err
	}
	j.startMetadata()
	return j.loop(ctx)
}

// dropUnused frees the parts of the model training no longer needs (most
// of a gigabyte for SD 1.5): the VAE's encoder once the latents are cached
// (the whole VAE when there are no previews to decode), and the frozen
// text encoder once every caption and preview prompt is encoded.
func (j *job) dropUnused() error {
	if len(j.prompts) == 0 {
		j.model.VAE = nil
	} else {
		j.model.VAE.DropEncoder()
	}
	if j.texts.cached != nil && !j.cfg.TrainsTextEncoder() {
		j.sampleConds = make([]*sd.Conditioning, len(j.prompts))
		for i, p := range j.prompts {
			c, err := j.model.EncodeConditioning(p.Prompt, p.Negative, j.cfg.ClipSkip)
			if err != nil {
				return fmt.Errorf("sample prompt %q: %w", p.Prompt, err)
			}
			j.sampleConds[i] = c
		}
		j.model.Text = nil
	}
	debug.FreeOSMemory()
	return nil
}

// releaseScratch drops the UNet's and VAE's pooled buffers and hands the
// memory back to the system. Previews sample at their own size (512 px by
// default) and share no buffers with training at another, so holding both
// sets would add a gigabyte to the run's peak. The training graphs stay:
// they hold little of their own, and rebuilding them cost a second.
func (j *job) releaseScratch() {
	j.model.UNet.ReleaseMemory()
	if j.model.VAE != nil {
		j.model.VAE.ReleaseMemory()
	}
	debug.FreeOSMemory()
}

// startMetadata fills the run's identity and the ss_* metadata every save
// carries.
func (j *job) startMetadata() {
	j.info.SessionID = rand.Uint32()
	j.info.StartedAt = time.Now()
	if j.resume != nil {
		j.info.SessionID, j.info.StartedAt = j.resume.SessionID, j.resume.StartedAt
	}
	j.info.Plan = j.plan
	j.info.Buckets = j.buckets
	j.info.DatasetDirs = j.ds.DatasetDirs()
	j.info.TagFrequency = j.ds.TagFrequency()
	j.meta = Metadata(&j.cfg, j.info)
}

// errNonFinite marks a step whose loss or gradients are NaN or infinite.
var errNonFinite = errors.New("not finite")

// loop trains from the current step to the end.
func (j *job) loop(ctx context.Context) (stopped bool, err error) {
	p := j.plan
	if j.src == nil {
		j.src = rand.NewPCG(uint64(j.cfg.Seed), 0x747261696e) // "train"
	}
	j.rng = rand.New(j.src)
	j.losses.Size = p.StepsPerEpoch
	noise := sd.NewSchedule()
	rules := j.cfg.captionRules()
	var batches []batch
	batchesOf := -1
	var recent []time.Duration
	for j.step < p.TotalSteps {
		stop, err := j.control(ctx)
		if err != nil {
			return false, err
		}
		if stop {
			return true, j.saveStopped()
		}
		epoch, within := j.step/p.StepsPerEpoch, j.step%p.StepsPerEpoch
		if epoch != batchesOf {
			batches = epochBatches(j.bucketOf, j.repeats, len(j.buckets.Buckets), p.BatchSize, j.cfg.Seed, epoch)
			batchesOf = epoch
		}
		lo := within * p.GradAccum
		micro := batches[lo:min(lo+p.GradAccum, len(batches))]
		began := time.Now()
		loss, lr, err := j.optimizerStep(micro, rules, noise)
		if errors.Is(err, errNonFinite) {
			kept := "no LoRA was saved yet"
			if j.lastSave != "" {
				kept = "the last good save " + j.lastSave + " is kept"
			}
			return false, fmt.Errorf("step %d (epoch %d): %w; training stopped and %s. The learning rate %g is probably too high: lower it (typical 1e-4) or keep max_grad_norm at 1", j.step+1, epoch+1, err, kept, lr)
		}
		if err != nil {
			return false, fmt.Errorf("step %d: %w", j.step+1, err)
		}
		j.step++
		took := time.Since(began)
		recent = append(recent, took)
		if len(recent) > 20 {
			recent = recent[1:]
		}
		var mean time.Duration
		for _, d := range recent {
			mean += d
		}
		mean /= time.Duration(len(recent))
		ev := Step{
			Step: j.step, TotalSteps: p.TotalSteps, Epoch: epoch + 1, Epochs: p.Epochs,
			Loss: loss, AvgLoss: j.losses.add(j.step-1, loss), LR: lr,
			StepTime: took, ETA: mean * time.Duration(p.TotalSteps-j.step),
		}
		if j.cfg.TrainsTextEncoder() {
			ev.TextLR = j.cfg.EffectiveTextEncoderLR() * j.sched.Factor(j.step-1)
		}
		j.emit(ev)
		epochEnd := within == p.StepsPerEpoch-1 || j.step == p.TotalSteps
		if n := j.cfg.SaveEveryNEpochs; epochEnd && n > 0 && (epoch+1)%n == 0 && j.step < p.TotalSteps {
			if err := j.save(saveEpoch, epoch+1); err != nil {
				return false, err
			}
		}
		if j.sampleDue(epochEnd, epoch+1) {
			if err := j.sample(ctx, epochEnd, epoch+1); err != nil && ctx.Err() == nil {
				return false, err
			}
		}
	}
	if err := j.save(saveFinal, p.Epochs); err != nil {
		return false, err
	}
	return false, nil
}

// control applies the controls between steps: it saves on SaveNow, holds
// while paused and reports whether the run must stop.
func (j *job) control(ctx context.Context) (stop bool, err error) {
	announced := false
	for {
		paused, stopped, saveNow := j.run.controls()
		if saveNow {
			if err := j.save(saveStep, j.step/j.plan.StepsPerEpoch); err != nil {
				return false, err
			}
		}
		if stopped || ctx.Err() != nil {
			return true, nil
		}
		if !paused {
			if announced {
				j.emit(Resumed{Step: j.step})
			}
			return false, nil
		}
		if !announced {
			j.emit(Paused{Step: j.step})
			announced = true
		}
		select {
		case <-j.run.wake:
		case <-ctx.Done():
		}
	}
}

// saveStopped saves what a stopped run trained, unless its resume state is
// already at this step.
func (j *job) saveStopped() error {
	if j.savedStep == j.step || (j.step == 0 && j.resume == nil) {
		return nil
	}
	return j.save(saveStep, j.step/j.plan.StepsPerEpoch)
}

// optimizerStep runs the micro-batches of one optimizer step, averaging
// their gradients (as accelerate's gradient accumulation does), clips them
// and updates the adapters. It returns the mean loss and the UNet's
// learning rate.
func (j *job) optimizerStep(micro []batch, rules captionRules, noise *sd.Schedule) (loss, lr float64, err error) {
	factor := j.sched.Factor(j.step)
	lr = j.cfg.EffectiveUNetLR() * factor
	for _, g := range j.grads {
		clear(g)
	}
	scale := 1 / float32(j.plan.GradAccum)
	for _, b := range micro {
		l, err := j.microStep(b, rules, noise, scale)
		if err != nil {
			return 0, lr, err
		}
		loss += l
	}
	loss /= float64(len(micro))
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, lr, fmt.Errorf("the loss is %v: %w", loss, errNonFinite)
	}
	if norm := ClipGradNorm(j.grads, j.cfg.MaxGradNorm); math.IsNaN(norm) || math.IsInf(norm, 0) {
		return loss, lr, fmt.Errorf("the gradient norm is %v: %w", norm, errNonFinite)
	}
	lrs := make([]float64, len(j.params))
	for i, base := range j.baseLR {
		lrs[i] = base * factor
	}
	return loss, lr, j.opt.Update(j.params, j.grads, lrs)
}

// microStep trains on one micro-batch as sd-scripts does: its captions
// through the caption rules, t ~ U{0..999}, epsilon noise (plus the noise
// offset per sample and channel) added to the cached latents, the UNet's
// prediction against that noise, weighted by min-SNR. The gradients, times
// scale, are added to j.grads.
func (j *job) microStep(b batch, rules captionRules, noise *sd.Schedule, scale float32) (float64, error) {
	first := j.latents[b.images[0]]
	c, h, w := first.Shape[0], first.Shape[1], first.Shape[2]
	n := len(b.images)
	g, err := j.graph(n, h, w)
	if err != nil {
		return 0, err
	}
	captions := make([]string, n)
	for i, idx := range b.images {
		captions[i] = rules.apply(j.images[idx].TrainingCaption(), j.rng)
	}
	if g.ids != nil {
		for i, c := range captions {
			for k, id := range j.model.Tokenizer.Encode(c) {
				g.ids.Data[i*sd.ContextLength+k] = float32(id)
			}
		}
	} else if err := j.texts.embed(g.context, captions); err != nil {
		return 0, err
	}
	ts := make([]int, n)
	weights := make([]float32, n)
	for i := range ts {
		ts[i] = j.rng.IntN(sd.TrainTimesteps)
		g.timesteps.Data[i] = float32(ts[i])
		weights[i] = minSNRWeight(noise, ts[i], j.cfg.MinSNRGamma)
	}
	eps := g.target
	for i := range eps.Data {
		eps.Data[i] = float32(j.rng.NormFloat64())
	}
	if off := j.cfg.NoiseOffset; off > 0 {
		plane := h * w
		for k := range n * c {
			d := float32(off * j.rng.NormFloat64())
			for i := k * plane; i < (k+1)*plane; i++ {
				eps.Data[i] += d
			}
		}
	}
	x0 := g.noisy
	per := c * h * w
	for i, idx := range b.images {
		copy(x0.Data[i*per:(i+1)*per], j.latents[idx].Data)
	}
	noisy, err := noise.AddNoise(x0, eps, ts)
	if err != nil {
		return 0, err
	}
	copy(g.noisy.Data, noisy.Data)
	return g.run(weights, j.grads, scale)
}

// keptGraphs bounds the training graphs kept at once. Each holds its
// nodes' activations and gradients (about 300 MB for SD 1.5 at 512x512),
// and a bucketed dataset has a shape per bucket (and per short last
// batch); rebuilding a graph costs far less than a step.
const keptGraphs = 2

// graph returns the training graph for micro-batches of n latents h x w,
// building it when it is not among the ones used last.
func (j *job) graph(n, h, w int) (*stepGraph, error) {
	key := [3]int{n, h, w}
	for i, g := range j.graphs {
		if g.key == key {
			copy(j.graphs[1:i+1], j.graphs[:i])
			j.graphs[0] = g
			return g, nil
		}
	}
	if len(j.graphs) == keptGraphs {
		j.graphs[keptGraphs-1].vm.Close()
		j.graphs = j.graphs[:keptGraphs-1]
	}
	g, err := newStepGraph(j.model, j.order, j.cfg.TrainsTextEncoder(), j.cfg.ClipSkip, n, h, w)
	if err != nil {
		return nil, err
	}
	g.key = key
	j.graphs = append([]*stepGraph{g}, j.graphs...)
	return g, nil
}
