package trainer

import "time"

// Event is something a training run reports on its Events channel. The
// concrete types are Planned, Caching, Step, Sample, Saved, Paused, Resumed,
// Finished and Failed. A run sends Finished or Failed last and then closes the
// channel.
type Event interface{ event() }

// Planned is the run's arithmetic, sent once before any work, in kohya's
// terms so users can compare.
type Planned struct {
	Images        int         // trainable images
	ImageRepeats  int         // sum of images x repeats over the folders
	Buckets       []BucketUse // aspect-ratio buckets in use
	BatchSize     int         // images per step
	GradAccum     int         // steps accumulated per optimizer update
	StepsPerEpoch int         // optimizer steps in one epoch
	Epochs        int         // epochs the run will train
	TotalSteps    int         // optimizer steps of the whole run
	StartStep     int         // first step (non-zero when resuming)
	Resumed       bool        // continuing a saved state
}

// BucketUse is one bucket of a plan: its resolution and how many images
// (times repeats) it holds.
type BucketUse struct {
	Width, Height int
	Count         int
}

// Caching reports the progress of the work before the first step: loading
// the base model, then latent and text-embedding caching.
type Caching struct {
	What        string // "model", "latents" or "text"
	Done, Total int
	Reused      int // entries found in the on-disk cache
}

// Step reports one optimizer step.
type Step struct {
	Step, TotalSteps int
	Epoch, Epochs    int
	Loss             float64 // this step's loss
	AvgLoss          float64 // moving average over the current epoch (kohya's loss/average)
	LR               float64 // UNet learning rate used by this step
	TextLR           float64 // text-encoder learning rate (0 when it is frozen)
	StepTime         time.Duration
	ETA              time.Duration
}

// Sample is a preview image written during training.
type Sample struct {
	Path   string
	Prompt string
	Step   int
	Epoch  int
}

// Saved is a LoRA file (and its resume state) written to disk.
type Saved struct {
	Path      string
	StatePath string
	Step      int
	Epoch     int
	Final     bool
}

// Paused and Resumed acknowledge the controls.
type Paused struct{ Step int }

// Resumed acknowledges Resume after Pause.
type Resumed struct{ Step int }

// Finished ends a run that reached its last step or was stopped; Path is the
// LoRA file saved last.
type Finished struct {
	Path    string
	Step    int
	Stopped bool
	Elapsed time.Duration
}

// Failed ends a run with an error; the last good save (if any) is kept.
type Failed struct {
	Err      error
	LastSave string
}

func (Planned) event()  {}
func (Caching) event()  {}
func (Step) event()     {}
func (Sample) event()   {}
func (Saved) event()    {}
func (Paused) event()   {}
func (Resumed) event()  {}
func (Finished) event() {}
func (Failed) event()   {}
