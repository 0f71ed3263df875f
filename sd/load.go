package sd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"lorastudio/nn"
)

// Layouts a checkpoint can come in.
const (
	LayoutSingleFile = "single-file" // one .safetensors in the LDM/AUTOMATIC1111 layout
	LayoutDiffusers  = "diffusers"   // a folder with unet/, vae/ and text_encoder/
)

// Parts of a Stable Diffusion model, combinable as a set.
type Parts uint8

const (
	PartUNet Parts = 1 << iota
	PartVAE
	PartTextEncoder
	AllParts = PartUNet | PartVAE | PartTextEncoder
)

func (p Parts) String() string {
	var names []string
	for _, x := range []struct {
		p    Parts
		name string
	}{{PartUNet, "UNet"}, {PartVAE, "VAE"}, {PartTextEncoder, "text encoder"}} {
		if p&x.p != 0 {
			names = append(names, x.name)
		}
	}
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}

// ModelConfig is the shape of a whole SD 1.x model.
type ModelConfig struct {
	UNet UNetConfig
	VAE  VAEConfig
	CLIP CLIPConfig
}

// SD15Config is Stable Diffusion 1.x's full-size configuration.
func SD15Config() ModelConfig {
	return ModelConfig{UNet: SD15UNetConfig(), VAE: SD15VAEConfig(), CLIP: SD15CLIPConfig()}
}

// TinyConfig is the demo model: SD 1.x's structure and key names at a
// fraction of the width (UNet 32 channels, VAE 32, CLIP width 32 with the
// real 49,408-token vocabulary), trainable end to end in seconds.
func TinyConfig() ModelConfig {
	return ModelConfig{
		UNet: UNetConfig{
			InChannels: 4, OutChannels: 4,
			Channels:       []int{32, 64, 128, 128},
			Attention:      []bool{true, true, true, false},
			LayersPerBlock: 2, TransformerDepth: 1, ContextDim: 32, Heads: 8,
		},
		VAE:  TinyVAEConfig(),
		CLIP: TinyCLIPConfig(),
	}
}

// Checkpoint is an opened and identified SD 1.x model. Its parts serve
// weights by diffusers name, each converted to float32 on request straight
// from the memory-mapped files, so opening costs only the headers and a
// 2 GB fp16 file is never copied whole into memory. Close unmaps the files;
// weights read before stay valid.
type Checkpoint struct {
	Path   string // the file or folder given to Open
	Layout string // LayoutSingleFile or LayoutDiffusers
	// UNet, VAE and TextEncoder are nil when the file lacks the part (only
	// possible through OpenParts).
	UNet, VAE, TextEncoder *Part
	Config                 ModelConfig

	files []*nn.File
}

// Part is one model part's weights by diffusers name. It implements
// WeightSource.
type Part struct {
	layout string
	refs   map[string]tensorRef
}

type tensorRef struct {
	file *nn.File
	key  string
}

// Tensor reads a weight as float32. want is the shape the model expects;
// a stored shape that differs only by size-1 dimensions (the VAE attention's
// 1x1 convolutions in LDM files, Linear weights in diffusers) is reshaped.
func (p *Part) Tensor(name string, want ...int) (*nn.Tensor, error) {
	r, ok := p.refs[name]
	if !ok {
		return nil, fmt.Errorf("weight %s is missing from %s", name, p.where())
	}
	_, shape, _ := r.file.Info(r.key)
	if !nn.SameShape(shape, want) && !(len(want) > 0 && nn.SameShape(squeeze(shape), squeeze(want))) {
		return nil, fmt.Errorf("weight %s in %s has shape %v, want %v", r.key, r.file.Path(), shape, want)
	}
	t, err := r.file.Float32(r.key)
	if err != nil {
		return nil, fmt.Errorf("weight %s: %w", name, err)
	}
	if len(want) > 0 {
		t = t.Reshape(want...)
	}
	return t, nil
}

// Shape reports a weight's stored shape.
func (p *Part) Shape(name string) ([]int, bool) {
	r, ok := p.refs[name]
	if !ok {
		return nil, false
	}
	_, shape, _ := r.file.Info(r.key)
	return shape, true
}

// Names lists the part's weights by diffusers name, sorted.
func (p *Part) Names() []string {
	names := make([]string, 0, len(p.refs))
	for n := range p.refs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Key returns the file and the key a diffusers name is stored under.
func (p *Part) Key(name string) (path, key string, ok bool) {
	r, ok := p.refs[name]
	if !ok {
		return "", "", false
	}
	return r.file.Path(), r.key, true
}

func (p *Part) where() string {
	files := map[string]bool{}
	for _, r := range p.refs {
		files[r.file.Path()] = true
	}
	var names []string
	for f := range files {
		names = append(names, f)
	}
	slices.Sort(names)
	return strings.Join(names, ", ") + " (" + p.layout + " layout)"
}

func squeeze(shape []int) []int {
	var out []int
	for _, d := range shape {
		if d != 1 {
			out = append(out, d)
		}
	}
	return out
}

// Open opens a full SD 1.x model: a single .safetensors file in the
// AUTOMATIC1111/LDM layout or a diffusers folder. It identifies the model
// before anything is built: other model families, LoRA files, VAE-only
// files and pickles are refused with an error saying what was found.
func Open(path string) (*Checkpoint, error) { return OpenParts(path, AllParts) }

// OpenParts is Open for files that need hold only the parts in need, such
// as a standalone VAE (need PartVAE) or a UNet-only file.
func OpenParts(path string, need Parts) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	var c *Checkpoint
	if st.IsDir() {
		c, err = openDiffusers(path)
	} else if filepath.Base(path) == "model_index.json" {
		c, err = openDiffusers(filepath.Dir(path))
	} else {
		c, err = openSingleFile(path)
	}
	if err != nil {
		return nil, err
	}
	if err := c.finish(need); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close unmaps the checkpoint's files.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		errs = append(errs, f.Close())
	}
	c.files = nil
	return errors.Join(errs...)
}

// Parts reports which parts the checkpoint holds.
func (c *Checkpoint) Parts() Parts {
	var p Parts
	if c.UNet != nil {
		p |= PartUNet
	}
	if c.VAE != nil {
		p |= PartVAE
	}
	if c.TextEncoder != nil {
		p |= PartTextEncoder
	}
	return p
}

// Kind describes the checkpoint for the UI: "SD 1.x single-file checkpoint
// (UNet 320 ch, CLIP 12 layers)".
func (c *Checkpoint) Kind() string {
	var details []string
	if c.UNet != nil {
		details = append(details, fmt.Sprintf("UNet %d ch", c.Config.UNet.Channels[0]))
	}
	if c.VAE != nil {
		details = append(details, fmt.Sprintf("VAE %d ch", c.Config.VAE.Channels[0]))
	}
	if c.TextEncoder != nil {
		details = append(details, fmt.Sprintf("CLIP %d layers, width %d", c.Config.CLIP.Layers, c.Config.CLIP.Width))
	}
	layout := "single-file checkpoint"
	if c.Layout == LayoutDiffusers {
		layout = "diffusers folder"
	}
	return fmt.Sprintf("SD 1.x %s (%s)", layout, strings.Join(details, ", "))
}

// UnsupportedModelError says that a file is not a Stable Diffusion 1.x model
// and what it is instead.
type UnsupportedModelError struct {
	Path  string
	Found string // "an SDXL checkpoint (conditioner.embedders.* keys)"
	Hint  string // what to do instead, may be empty
}

func (e *UnsupportedModelError) Error() string {
	msg := fmt.Sprintf("%s is %s; LoRA Studio supports Stable Diffusion 1.x models (a single-file .safetensors checkpoint or a diffusers folder)", e.Path, e.Found)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// PickleError refuses a PyTorch pickle (.ckpt, .pt, .pth, .bin): loading one
// can run arbitrary code, so it is never opened.
type PickleError struct{ Path string }

func (e *PickleError) Error() string {
	return fmt.Sprintf("%s is a PyTorch pickle file; pickles can run arbitrary code when loaded, so LoRA Studio does not open them. "+
		"Convert it to .safetensors first (for example with AUTOMATIC1111's Checkpoint Merger set to safetensors, "+
		"or diffusers' convert_original_stable_diffusion_to_diffusers.py with --to_safetensors)", e.Path)
}

var pickleExts = map[string]bool{".ckpt": true, ".pt": true, ".pth": true, ".bin": true, ".pkl": true, ".pickle": true}

// checkNotPickle refuses pickles by extension and by content: torch.save
// writes a zip archive ("PK\x03\x04") or a raw pickle (protocol byte 0x80).
func checkNotPickle(path string) error {
	if pickleExts[strings.ToLower(filepath.Ext(path))] {
		return &PickleError{Path: path}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open model: %w", err)
	}
	defer f.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("open model %s: %w", path, err)
	}
	head = head[:n]
	if bytes.HasPrefix(head, []byte("PK\x03\x04")) || (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) {
		return &PickleError{Path: path}
	}
	return nil
}

// openSingleFile opens an LDM-layout .safetensors and maps its keys.
func openSingleFile(path string) (*Checkpoint, error) {
	if err := checkNotPickle(path); err != nil {
		return nil, err
	}
	f, err := nn.OpenSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	c := &Checkpoint{Path: path, Layout: LayoutSingleFile, files: []*nn.File{f}}
	keys := f.Names()
	if err := identifySingleFile(path, keys); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.mapSingleFile(f, keys); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Checkpoint) mapSingleFile(f *nn.File, keys []string) error {
	m, err := mapLDMKeys(keys)
	if err != nil {
		return fmt.Errorf("open model %s: %w", c.Path, err)
	}
	part := func(layout string, names map[string]string) *Part {
		if len(names) == 0 {
			return nil
		}
		p := &Part{layout: layout, refs: make(map[string]tensorRef, len(names))}
		for n, k := range names {
			p.refs[n] = tensorRef{f, k}
		}
		return p
	}
	c.UNet = part("LDM", m.unet)
	c.VAE = part(m.vaeLayout, m.vae)
	c.TextEncoder = part("LDM", m.text)
	return nil
}

// ldmKeys maps each part's diffusers names to the keys of a single-file
// checkpoint.
type ldmKeys struct {
	unet, vae, text map[string]string
	vaeLayout       string
}

// mapLDMKeys sorts a single file's keys into parts and renames them to
// diffusers names. Keys of no part (model_ema.*, schedule buffers,
// position_ids of other layouts) are left out. A file holding only
// encoder.*/decoder.* keys is a standalone VAE, in LDM or diffusers names.
func mapLDMKeys(keys []string) (ldmKeys, error) {
	m := ldmKeys{unet: map[string]string{}, vae: map[string]string{}, text: map[string]string{}, vaeLayout: "LDM"}
	var unetKeys, vaeKeys []string
	vaePrefix := ldmVAEPrefix
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, ldmUNetPrefix):
			unetKeys = append(unetKeys, strings.TrimPrefix(k, ldmUNetPrefix))
		case strings.HasPrefix(k, ldmVAEPrefix):
			vaeKeys = append(vaeKeys, strings.TrimPrefix(k, ldmVAEPrefix))
		case strings.HasPrefix(k, ldmTextPrefix):
			m.text[textToDiffusers(strings.TrimPrefix(k, ldmTextPrefix))] = k
		}
	}
	if len(unetKeys) == 0 && len(vaeKeys) == 0 && len(m.text) == 0 {
		vaePrefix = ""
		for _, k := range keys {
			if strings.HasPrefix(k, "encoder.") || strings.HasPrefix(k, "decoder.") || strings.HasPrefix(k, "quant_conv.") || strings.HasPrefix(k, "post_quant_conv.") {
				vaeKeys = append(vaeKeys, k)
			}
		}
	}
	if len(unetKeys) > 0 {
		layout, err := detectLDMUNetLayout(unetKeys)
		if err != nil {
			return m, err
		}
		for _, k := range unetKeys {
			if name, ok := layout.diffusers(k); ok {
				m.unet[name] = ldmUNetPrefix + k
			}
		}
	}
	if slices.ContainsFunc(vaeKeys, func(k string) bool { return strings.HasPrefix(k, "encoder.down_blocks.") }) {
		m.vaeLayout = "diffusers"
		for _, k := range vaeKeys {
			m.vae[diffusersVAEAlias(k)] = vaePrefix + k
		}
		return m, nil
	}
	levels := detectLDMVAELevels(vaeKeys)
	for _, k := range vaeKeys {
		if name, ok := ldmVAEToDiffusers(k, levels); ok {
			m.vae[name] = vaePrefix + k
		}
	}
	return m, nil
}

// diffusersWeights lists the accepted weight files of a diffusers part, in
// order of preference.
var diffusersWeights = map[string][]string{
	"unet":         {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"},
	"vae":          {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"},
	"text_encoder": {"model.safetensors", "model.fp16.safetensors"},
}

// openDiffusers opens a diffusers pipeline folder.
func openDiffusers(dir string) (*Checkpoint, error) {
	if err := identifyDiffusers(dir); err != nil {
		return nil, err
	}
	c := &Checkpoint{Path: dir, Layout: LayoutDiffusers}
	for _, sub := range []string{"unet", "vae", "text_encoder"} {
		f, err := openDiffusersPart(dir, sub)
		if err != nil {
			c.Close()
			return nil, err
		}
		if f == nil {
			continue
		}
		c.files = append(c.files, f)
		p := &Part{layout: "diffusers", refs: map[string]tensorRef{}}
		for _, k := range f.Names() {
			if sub == "vae" {
				p.refs[diffusersVAEAlias(k)] = tensorRef{f, k}
			} else {
				p.refs[k] = tensorRef{f, k}
			}
		}
		switch sub {
		case "unet":
			c.UNet = p
		case "vae":
			c.VAE = p
		default:
			c.TextEncoder = p
		}
	}
	return c, nil
}

// openDiffusersPart opens dir/sub's weights, or returns nil when the
// sub-folder does not exist.
func openDiffusersPart(dir, sub string) (*nn.File, error) {
	folder := filepath.Join(dir, sub)
	if st, err := os.Stat(folder); err != nil || !st.IsDir() {
		return nil, nil
	}
	for _, name := range diffusersWeights[sub] {
		p := filepath.Join(folder, name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := checkNotPickle(p); err != nil {
			return nil, err
		}
		f, err := nn.OpenSafetensors(p)
		if err != nil {
			return nil, fmt.Errorf("open model: %w", err)
		}
		return f, nil
	}
	entries, _ := os.ReadDir(folder)
	for _, e := range entries {
		if pickleExts[strings.ToLower(filepath.Ext(e.Name()))] {
			return nil, &PickleError{Path: filepath.Join(folder, e.Name())}
		}
		if strings.HasSuffix(e.Name(), ".safetensors.index.json") {
			return nil, fmt.Errorf("open model %s: sharded weights (%s) are not supported; save the model unsharded", folder, e.Name())
		}
	}
	return nil, fmt.Errorf("open model %s: no %s in %s", dir, strings.Join(diffusersWeights[sub], " or "), folder)
}

// finish checks the parts against SD 1.x and derives the configuration.
func (c *Checkpoint) finish(need Parts) error {
	have := c.Parts()
	if missing := need &^ have; missing != 0 {
		if have == PartVAE {
			return &UnsupportedModelError{Path: c.Path, Found: "a VAE-only file (no UNet or text encoder)",
				Hint: "choose a full checkpoint; a separate VAE can be loaded on top of one"}
		}
		if have == 0 {
			return &UnsupportedModelError{Path: c.Path, Found: "not a Stable Diffusion model (no UNet, VAE or text encoder weights found)"}
		}
		return fmt.Errorf("open model %s: the file has the %s but no %s (%s layout)", c.Path, have, missing, c.Layout)
	}
	if c.UNet != nil {
		if err := checkSD1UNet(c.Path, c.UNet); err != nil {
			return err
		}
		cfg, err := UNetConfigFromShapes(c.UNet.Shape)
		if err != nil {
			return fmt.Errorf("open model %s: %w", c.Path, err)
		}
		c.Config.UNet = cfg
	}
	if c.VAE != nil {
		cfg, err := VAEConfigFromShapes(c.VAE.Shape)
		if err != nil {
			return fmt.Errorf("open model %s: %w", c.Path, err)
		}
		c.Config.VAE = cfg
	}
	if c.TextEncoder != nil {
		heads := 0
		if c.Layout == LayoutDiffusers {
			heads = diffusersHeads(filepath.Join(c.Path, "text_encoder", "config.json"))
		}
		cfg, err := CLIPConfigFromShapes(c.TextEncoder.Shape, heads)
		if err != nil {
			return fmt.Errorf("open model %s: %w", c.Path, err)
		}
		c.Config.CLIP = cfg
	}
	if c.UNet != nil && c.TextEncoder != nil && c.Config.UNet.ContextDim != c.Config.CLIP.Width {
		return fmt.Errorf("open model %s: the UNet cross-attends to %d-wide text embeddings but the text encoder is %d wide",
			c.Path, c.Config.UNet.ContextDim, c.Config.CLIP.Width)
	}
	if c.UNet != nil && c.VAE != nil && c.Config.UNet.InChannels != c.Config.VAE.LatentChannels {
		return fmt.Errorf("open model %s: the UNet takes %d channels but the VAE makes %d-channel latents",
			c.Path, c.Config.UNet.InChannels, c.Config.VAE.LatentChannels)
	}
	return nil
}

// diffusersHeads reads num_attention_heads from a transformers config.json,
// 0 when absent.
func diffusersHeads(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var cfg struct {
		Heads int `json:"num_attention_heads"`
	}
	if json.Unmarshal(raw, &cfg) != nil || cfg.Heads < 0 {
		return 0
	}
	return cfg.Heads
}
