package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"lorastudio/nn"
)

// A run saves its LoRA every save_every_n_epochs epochs (kohya's
// "<name>-000001.safetensors"), on SaveNow and Stop
// ("<name>-step00000123.safetensors") and at the end ("<name>.safetensors").
// Except at the end, the resume state is written beside it as
// "<name>.lorastate": one safetensors file (so one atomic write, which a
// kill -9 leaves either old or new) holding the adapters in float32, the
// AdamW moments, and as metadata the step, the random stream's state, the
// settings and the dataset's fingerprint. The extension keeps LoRA loaders
// from listing it. A run that finishes removes it.

const (
	stateExt     = ".lorastate"
	stateKey     = "lorastudio_state"
	stateVersion = 1
)

type saveKind int

const (
	saveEpoch saveKind = iota // every save_every_n_epochs
	saveStep                  // SaveNow and Stop
	saveFinal                 // the end of the run
)

// runState is the metadata of a resume state.
type runState struct {
	Version       int       `json:"version"`
	Config        Config    `json:"config"`
	Step          int       `json:"step"`
	TotalSteps    int       `json:"total_steps"`
	OptimizerStep int       `json:"optimizer_step"`
	RNG           []byte    `json:"rng"` // the run's PCG state
	Fingerprint   string    `json:"dataset_fingerprint"`
	VAE           string    `json:"vae_sha256"`
	ModelSHA256   string    `json:"model_sha256,omitempty"`
	SessionID     uint32    `json:"session_id"`
	StartedAt     time.Time `json:"started_at"`
	Losses        []float64 `json:"loss_window"`
	LastSave      string    `json:"last_save"`

	path string
}

// statePath is where cfg's run keeps its resume state.
func statePath(cfg *Config) string {
	return filepath.Join(cfg.OutputDir, cfg.OutputName+stateExt)
}

// save writes the LoRA of the given kind (epoch is the number of epochs
// the metadata records) and, except at the end, the resume state.
func (j *job) save(kind saveKind, epoch int) error {
	if err := os.MkdirAll(j.cfg.OutputDir, 0o755); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	name := j.cfg.OutputName
	switch kind {
	case saveEpoch:
		name += fmt.Sprintf("-%06d", epoch)
	case saveStep:
		name += fmt.Sprintf("-step%08d", j.step)
	}
	path := filepath.Join(j.cfg.OutputDir, name+".safetensors")
	dtype, err := j.cfg.SaveDType()
	if err != nil {
		return err
	}
	if err := j.net.Save(path, dtype, SaveMetadata(j.meta, &j.cfg, epoch, j.step, time.Now())); err != nil {
		return err
	}
	j.lastSave = path
	ev := Saved{Path: path, Step: j.step, Epoch: epoch, Final: kind == saveFinal}
	state := statePath(&j.cfg)
	if kind == saveFinal {
		if err := os.Remove(state); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the finished run's resume state: %w", err)
		}
	} else {
		if err := j.writeState(state); err != nil {
			return err
		}
		ev.StatePath = state
		j.savedStep = j.step
	}
	j.emit(ev)
	return nil
}

// writeState saves everything a resume needs.
func (j *job) writeState(path string) error {
	rng, err := j.src.MarshalBinary()
	if err != nil {
		return err
	}
	st := runState{
		Version: stateVersion, Config: j.cfg, Step: j.step, TotalSteps: j.plan.TotalSteps,
		OptimizerStep: j.opt.Step, RNG: rng, Fingerprint: j.ds.Fingerprint(), VAE: j.vaeID,
		ModelSHA256: j.info.ModelSHA256, SessionID: j.info.SessionID, StartedAt: j.info.StartedAt,
		Losses: j.losses.Values, LastSave: j.lastSave,
	}
	meta, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tensors := j.net.Tensors()
	for i := range j.opt.M {
		tensors[fmt.Sprintf("optimizer.exp_avg.%d", i)] = nn.FromData(j.opt.M[i], len(j.opt.M[i]))
		tensors[fmt.Sprintf("optimizer.exp_avg_sq.%d", i)] = nn.FromData(j.opt.V[i], len(j.opt.V[i]))
	}
	if err := nn.WriteSafetensors(path, tensors, "F32", map[string]string{stateKey: string(meta)}); err != nil {
		return fmt.Errorf("save resume state: %w", err)
	}
	return nil
}

// readState reads a resume state's metadata and settings.
func readState(path string) (*runState, error) {
	f, err := nn.OpenSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("read resume state: %w", err)
	}
	defer f.Close()
	raw, ok := f.Metadata()[stateKey]
	if !ok {
		return nil, fmt.Errorf("read resume state %s: not a LoRA Studio resume state (no %s metadata)", path, stateKey)
	}
	st := &runState{path: path}
	if err := json.Unmarshal([]byte(raw), st); err != nil {
		return nil, fmt.Errorf("read resume state %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("read resume state %s: version %d, this LoRA Studio reads version %d", path, st.Version, stateVersion)
	}
	return st, nil
}

// restore puts the saved adapters, optimizer moments, step, random stream
// and loss window into j, whose network and optimizer are built.
func (st *runState) restore(j *job) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("continue %s: "+format, append([]any{st.path}, args...)...)
	}
	if st.ModelSHA256 != j.info.ModelSHA256 {
		return bad("the base model %s is not the one the run started with", j.cfg.PretrainedModel)
	}
	f, err := nn.OpenSafetensors(st.path)
	if err != nil {
		return fmt.Errorf("continue: %w", err)
	}
	defer f.Close()
	load := func(name string, dst []float32) error {
		t, err := f.Float32(name)
		if err != nil {
			return bad("%v", err)
		}
		if len(t.Data) != len(dst) {
			return bad("%s has %d values, want %d", name, len(t.Data), len(dst))
		}
		copy(dst, t.Data)
		return nil
	}
	for name, t := range j.net.Tensors() {
		if strings.HasSuffix(name, ".alpha") {
			continue
		}
		if err := load(name, t.Data); err != nil {
			return err
		}
	}
	for i := range j.opt.M {
		if err := load(fmt.Sprintf("optimizer.exp_avg.%d", i), j.opt.M[i]); err != nil {
			return err
		}
		if err := load(fmt.Sprintf("optimizer.exp_avg_sq.%d", i), j.opt.V[i]); err != nil {
			return err
		}
	}
	j.opt.Step = st.OptimizerStep
	j.src = &rand.PCG{}
	if err := j.src.UnmarshalBinary(st.RNG); err != nil {
		return bad("random state: %v", err)
	}
	j.step, j.savedStep, j.lastSave = st.Step, st.Step, st.LastSave
	j.losses.Values = slices.Clone(st.Losses)
	return nil
}

// Unfinished is a run that stopped (or was killed) before its end and can
// be continued with Continue.
type Unfinished struct {
	StatePath  string
	OutputName string
	Step       int
	TotalSteps int
	Saved      time.Time // when the state was written
	Config     Config
}

// FindUnfinished lists the unfinished runs whose resume states are in dir,
// newest first. A folder without any gives an empty list. States that
// cannot be read are left out of the list and named in the error.
func FindUnfinished(dir string) ([]Unfinished, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*"+stateExt))
	if err != nil {
		return nil, err
	}
	var out []Unfinished
	var bad []error
	for _, p := range paths {
		st, err := readState(p)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		out = append(out, Unfinished{StatePath: p, OutputName: st.Config.OutputName, Step: st.Step, TotalSteps: st.TotalSteps, Saved: info.ModTime(), Config: st.Config})
	}
	slices.SortFunc(out, func(a, b Unfinished) int { return b.Saved.Compare(a.Saved) })
	return out, errors.Join(bad...)
}
