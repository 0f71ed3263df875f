package trainer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"

	"lorastudio/dataset"
	"lorastudio/nn"
	"lorastudio/sd"
)

// Latents are cached on disk, one file per image and bucket under
// os.UserCacheDir()/lorastudio/latents/<VAE id>/, named by the image's
// content hash and the bucket size. The VAE id is a hash of the VAE's
// weights: latents depend on nothing else, so every checkpoint sharing a VAE
// (most SD 1.x merges) shares the cache, and a changed image or VAE never
// hits a stale entry.

// latentCacheVersion changes when the encoding changes (it is part of every
// file's metadata).
const latentCacheVersion = "1"

// latentDir returns the cache folder for a VAE, creating it.
func latentDir(vaeID string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(base, "lorastudio", "latents", vaeID[:min(len(vaeID), 16)])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// vaeID is the SHA-256 of the VAE's weights, with their names, in hex.
func vaeID(v *sd.VAE) (string, error) {
	h := sha256.New()
	err := sd.Walk("", v, func(name string, m any) error {
		s := reflect.ValueOf(m).Elem()
		for i := range s.NumField() {
			tag, ok := s.Type().Field(i).Tag.Lookup("st")
			if !ok || s.Field(i).Type() != reflect.TypeFor[*nn.Tensor]() || s.Field(i).IsNil() {
				continue
			}
			t := s.Field(i).Interface().(*nn.Tensor)
			fmt.Fprintf(h, "%s.%s%v\x00", name, tag, t.Shape)
			buf := make([]byte, 4*len(t.Data))
			for k, x := range t.Data {
				binary.LittleEndian.PutUint32(buf[4*k:], math.Float32bits(x))
			}
			h.Write(buf)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash vae: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cacheLatents makes job.latents: every image encoded once at its bucket's
// size, from the disk cache when present. A cache that cannot be written
// only costs the next run the encoding, so write errors are not fatal.
func (j *job) cacheLatents(ctx context.Context) error {
	id, err := vaeID(j.model.VAE)
	if err != nil {
		return err
	}
	j.vaeID = id
	dir, dirErr := latentDir(id)
	total := len(j.images)
	j.latents = make([]*nn.Tensor, total)
	reused := 0
	j.emit(Caching{What: "latents", Total: total})
	for i, im := range j.images {
		if err := ctx.Err(); err != nil {
			return err
		}
		reso := j.buckets.Buckets[j.bucketOf[i]].Reso
		f := j.model.Config.VAE.Factor()
		shape := []int{j.model.Config.VAE.LatentChannels, reso.H / f, reso.W / f}
		path := ""
		if dirErr == nil {
			path = filepath.Join(dir, fmt.Sprintf("%s_%dx%d.safetensors", im.HashHex(), reso.W, reso.H))
		}
		lat := readLatent(path, shape)
		if lat != nil {
			reused++
		} else {
			if lat, err = j.encodeImage(im, reso, shape); err != nil {
				return err
			}
			if path != "" {
				_ = nn.WriteSafetensors(path, map[string]*nn.Tensor{"latents": lat}, "F32", map[string]string{
					"lorastudio_latents": latentCacheVersion,
					"image_sha256":       im.HashHex(),
					"bucket":             reso.String(),
					"vae_sha256":         id,
				})
			}
		}
		j.latents[i] = lat
		j.emit(Caching{What: "latents", Done: i + 1, Total: total, Reused: reused})
	}
	j.model.VAE.ReleaseMemory()
	return nil
}

// encodeImage encodes one image at its bucket's size as sd-scripts caches
// latents: a sample of the VAE's latent distribution, scaled. The sampling
// noise is seeded by the image's content hash, so the latents (and the
// cache) are the same in every run.
func (j *job) encodeImage(im *dataset.Image, reso dataset.Reso, shape []int) (*nn.Tensor, error) {
	pix, err := dataset.LoadForTraining(im.Path, reso)
	if err != nil {
		return nil, err
	}
	img := nn.FromData(pix, 1, 3, reso.H, reso.W)
	seed := binary.LittleEndian.Uint64(im.Hash[:8])
	eps := sd.Noise(rand.New(rand.NewPCG(seed, uint64(reso.W)<<32|uint64(reso.H))), 1, shape[0], shape[1], shape[2])
	lat, err := j.model.VAE.Encode(img, eps)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", im.Path, err)
	}
	return lat.Reshape(shape...), nil
}

// readLatent returns the cached latents at path, or nil when there are none
// of that shape (absent, unreadable or from an older encoding).
func readLatent(path string, shape []int) *nn.Tensor {
	if path == "" {
		return nil
	}
	f, err := nn.OpenSafetensors(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if f.Metadata()["lorastudio_latents"] != latentCacheVersion {
		return nil
	}
	t, err := f.Float32("latents")
	if err != nil || !nn.SameShape(t.Shape, shape) {
		return nil
	}
	for _, x := range t.Data {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil
		}
	}
	return t
}

// textCache encodes captions with the frozen text encoder. While captions
// do not change from step to step (no shuffle, no dropout) every distinct
// caption is encoded once, before training.
type textCache struct {
	model    *sd.Model
	clipSkip int
	cached   map[string]*nn.Tensor // [tokens, width] per caption; nil when not caching
}

// cacheTexts encodes the captions of all images when they can be cached:
// the text encoder is frozen and the captions do not change.
func (j *job) cacheTexts(ctx context.Context) error {
	j.texts = &textCache{model: j.model, clipSkip: j.cfg.ClipSkip}
	rules := j.cfg.captionRules()
	if rules.random() || j.cfg.TrainsTextEncoder() {
		return nil
	}
	j.texts.cached = map[string]*nn.Tensor{}
	var todo []string
	for _, im := range j.images {
		c := rules.apply(im.TrainingCaption(), nil)
		if _, ok := j.texts.cached[c]; !ok {
			j.texts.cached[c] = nil
			todo = append(todo, c)
		}
	}
	j.emit(Caching{What: "text", Total: len(todo)})
	for i, c := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := j.model.EncodePrompts([]string{c}, j.cfg.ClipSkip)
		if err != nil {
			return fmt.Errorf("encode caption %q: %w", c, err)
		}
		j.texts.cached[c] = e.Reshape(e.Shape[1:]...)
		j.emit(Caching{What: "text", Done: i + 1, Total: len(todo)})
	}
	j.model.Text.ReleaseMemory()
	return nil
}

// embed writes the conditioning of captions into dst [len(captions),
// tokens, width].
func (t *textCache) embed(dst *nn.Tensor, captions []string) error {
	if t.cached != nil {
		per := len(dst.Data) / len(captions)
		for i, c := range captions {
			e, ok := t.cached[c]
			if !ok || e == nil || len(e.Data) != per {
				return fmt.Errorf("caption %q was not encoded", c)
			}
			copy(dst.Data[i*per:], e.Data)
		}
		return nil
	}
	e, err := t.model.EncodePrompts(captions, t.clipSkip)
	if err != nil {
		return fmt.Errorf("encode captions: %w", err)
	}
	if len(e.Data) != len(dst.Data) {
		return fmt.Errorf("encode captions: %v, want %v", e.Shape, dst.Shape)
	}
	copy(dst.Data, e.Data)
	return nil
}
