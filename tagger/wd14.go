package tagger

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"

	"lorastudio/dataset"
	"lorastudio/nn"
)

// WD14 is a loaded WD14-style auto-tagger (SmilingWolf's wd-vit-tagger-v3
// and models of its layout): the network and its labels. Its methods may be
// called from one goroutine at a time; the kernels use every core.
type WD14 struct {
	Model  *ViT
	Labels []Label
	// Dir is the folder the model was loaded from.
	Dir string
}

// Files of a tagger model folder, as the Hugging Face repository ships them.
const (
	WD14WeightsFile = "model.safetensors"
	WD14LabelsFile  = "selected_tags.csv"
)

// LoadWD14 loads a tagger from a model folder (model.safetensors and
// selected_tags.csv, optionally config.json) or from the path of its
// model.safetensors with the CSV beside it. The error names the missing or
// wrong file.
func LoadWD14(path string) (*WD14, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load tagger: %w", err)
	}
	dir, weights := path, filepath.Join(path, WD14WeightsFile)
	if !st.IsDir() {
		dir, weights = filepath.Dir(path), path
	}
	labelsPath := filepath.Join(dir, WD14LabelsFile)
	for _, p := range []string{weights, labelsPath} {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			hint := ""
			if _, err := os.Stat(filepath.Join(dir, "model.onnx")); err == nil && p == weights {
				hint = "; the folder has model.onnx, but the tagger reads the timm weights (the v3 repositories ship both)"
			}
			return nil, fmt.Errorf("load tagger: %s is missing (a WD14 tagger folder holds %s and %s, e.g. SmilingWolf/wd-vit-tagger-v3 from Hugging Face)%s",
				p, WD14WeightsFile, WD14LabelsFile, hint)
		}
	}
	cfg, err := readTimmConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("load tagger: %w", err)
	}
	labels, err := ReadLabels(labelsPath)
	if err != nil {
		return nil, fmt.Errorf("load tagger: %w", err)
	}
	f, err := nn.OpenSafetensors(weights)
	if err != nil {
		return nil, fmt.Errorf("load tagger: %w", err)
	}
	defer f.Close()
	m, err := loadViT(f, cfg.ModelArgs.NumHeads)
	if err != nil {
		return nil, fmt.Errorf("load tagger %s: %w", weights, err)
	}
	if m.Config.Classes != len(labels) {
		return nil, fmt.Errorf("load tagger: %s has %d outputs but %s lists %d tags", weights, m.Config.Classes, labelsPath, len(labels))
	}
	return &WD14{Model: m, Labels: labels, Dir: dir}, nil
}

// ImageSize is the side of the square the model sees.
func (t *WD14) ImageSize() int { return t.Model.Config.ImageSize }

// Probabilities returns one probability per label for each image.
func (t *WD14) Probabilities(ctx context.Context, imgs []image.Image) ([][]float32, error) {
	size := t.ImageSize()
	per := 3 * size * size
	x := make([]float32, len(imgs)*per)
	for i, img := range imgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		copy(x[i*per:], Preprocess(img, size))
	}
	return t.ProbabilitiesOf(ctx, x, len(imgs))
}

// ProbabilitiesOf runs preprocessed inputs x [b, 3, size, size].
func (t *WD14) ProbabilitiesOf(ctx context.Context, x []float32, b int) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b == 0 {
		return nil, nil
	}
	logits, err := t.Model.Forward(ctx, x, b)
	if err != nil {
		return nil, err
	}
	Sigmoid(logits)
	n := t.Model.Config.Classes
	out := make([][]float32, b)
	for i := range out {
		out[i] = logits[i*n : (i+1)*n : (i+1)*n]
	}
	return out, nil
}

// Predict tags one image.
func (t *WD14) Predict(ctx context.Context, img image.Image, o SelectOptions) (Prediction, error) {
	probs, err := t.Probabilities(ctx, []image.Image{img})
	if err != nil {
		return Prediction{}, err
	}
	return SelectTags(t.Labels, probs[0], o), nil
}

// FileResult is the prediction for one image file, or why there is none.
type FileResult struct {
	Index      int
	Path       string
	Prediction Prediction
	Err        error
}

// PredictFiles tags image files one after another, decoding the next file
// while the network runs on the current one, and calls fn in order for
// each. Images over maxPixels (0: the dataset default) are refused before
// decoding. It stops early, returning ctx's error, when ctx is cancelled.
func (t *WD14) PredictFiles(ctx context.Context, paths []string, maxPixels int, o SelectOptions, fn func(FileResult)) error {
	type decoded struct {
		x   []float32
		err error
	}
	size := t.ImageSize()
	next := make(chan decoded, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(next)
		for _, p := range paths {
			var d decoded
			img, err := dataset.DecodeImage(p, maxPixels)
			if err != nil {
				d.err = err
			} else {
				d.x = Preprocess(img, size)
			}
			select {
			case next <- d:
			case <-done:
				return
			}
		}
	}()
	for i, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		var d decoded
		select {
		case d = <-next:
		case <-ctx.Done():
			return ctx.Err()
		}
		r := FileResult{Index: i, Path: p, Err: d.err}
		if d.err == nil {
			probs, err := t.ProbabilitiesOf(ctx, d.x, 1)
			if err != nil {
				return err
			}
			r.Prediction = SelectTags(t.Labels, probs[0], o)
		}
		fn(r)
	}
	return nil
}
