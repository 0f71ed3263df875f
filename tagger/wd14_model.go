package tagger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"lorastudio/nn"
)

// The WD14 tagger's network is timm's vit_base_patch16_224 built at img_size
// 448 with class_token=False and global_pool="avg": patch tokens plus a
// learned position embedding, pre-norm blocks, a final LayerNorm on every
// token, then the token mean into the classifier head. Its size (embed
// width, depth, grid, classes) is read from the weight shapes, so the same
// code loads the real 448-pixel model and small test models.

// vitLayerNormEps is timm's LayerNorm epsilon; the model's config.json does
// not override it.
const vitLayerNormEps = 1e-6

// linear is a fully connected layer y = x W^T + b, W [Out, In].
type linear struct {
	Weight, Bias *nn.Tensor
	In, Out      int
}

// Forward computes y [rows, Out] from x [rows, In].
func (l *linear) Forward(y, x []float32, rows int) {
	nn.LinearForward(y, x, l.Weight.Data, l.Bias.Data, rows, l.In, l.Out)
}

// layerNorm normalises each token over its Dim features.
type layerNorm struct {
	Weight, Bias *nn.Tensor
	Dim          int
}

// Forward writes y [rows, Dim] from x; scratch is 2*rows floats.
func (n *layerNorm) Forward(y, x, scratch []float32, rows int) {
	nn.LayerNormForward(y, scratch[:rows], scratch[rows:2*rows], x, n.Weight.Data, n.Bias.Data, rows, n.Dim, vitLayerNormEps)
}

// patchEmbed cuts the image into Patch x Patch squares and projects each
// to Dim features (a Patch-strided convolution).
type patchEmbed struct {
	Weight, Bias *nn.Tensor // [Dim, 3, Patch, Patch], [Dim]
	Patch, Dim   int
}

// Forward writes tokens [b, grid*grid, Dim] (row-major over the grid) from
// images x [b, 3, size, size].
func (p *patchEmbed) Forward(ws *nn.Workspace, tokens, x []float32, b, size int) {
	conv := nn.Conv2d{Cin: 3, Cout: p.Dim, KH: p.Patch, KW: p.Patch, Stride: p.Patch}
	grid := size / p.Patch
	planes := make([]float32, b*p.Dim*grid*grid)
	conv.Forward(ws, planes, x, p.Weight.Data, p.Bias.Data, b, size, size)
	nn.ToTokens(tokens, planes, b, p.Dim, grid*grid)
}

// attention is multi-head self-attention. timm's fused qkv linear is kept
// as three linears over row blocks of its weight (q, k, v in that order),
// so each projection lands in the [tokens, Heads*HeadDim] layout
// nn.AttentionForward reads.
type attention struct {
	Q, K, V, Proj linear
	Heads         int
}

// Forward computes y [b*n, Dim] from the normalised tokens x.
func (a *attention) Forward(ws *nn.Workspace, y, x []float32, b, n int) {
	dim := a.Proj.Out
	rows := b * n
	q := make([]float32, rows*dim)
	k := make([]float32, rows*dim)
	v := make([]float32, rows*dim)
	a.Q.Forward(q, x, rows)
	a.K.Forward(k, x, rows)
	a.V.Forward(v, x, rows)
	out := make([]float32, rows*dim)
	lse := make([]float32, b*a.Heads*n)
	nn.AttentionForward(ws, out, lse, q, k, v, nn.AttnParams{Batch: b, Heads: a.Heads, Tq: n, Tk: n, HeadDim: dim / a.Heads})
	a.Proj.Forward(y, out, rows)
}

// mlp is fc2(GELU_tanh(fc1 x)).
type mlp struct {
	FC1, FC2 linear
}

// Forward computes y [rows, Dim] from x.
func (m *mlp) Forward(y, x []float32, rows int) {
	h := make([]float32, rows*m.FC1.Out)
	m.FC1.Forward(h, x, rows)
	nn.GELUTanh(h, h)
	m.FC2.Forward(y, h, rows)
}

// block is a pre-norm transformer block.
type block struct {
	Norm1 layerNorm
	Attn  attention
	Norm2 layerNorm
	MLP   mlp
}

// Forward updates the tokens t [b*n, Dim] in place.
func (blk *block) Forward(ws *nn.Workspace, t []float32, b, n int) {
	rows, dim := b*n, blk.Norm1.Dim
	h := make([]float32, rows*dim)
	d := make([]float32, rows*dim)
	stats := make([]float32, 2*rows)
	blk.Norm1.Forward(h, t, stats, rows)
	blk.Attn.Forward(ws, d, h, b, n)
	nn.AddInPlace(t, d)
	blk.Norm2.Forward(h, t, stats, rows)
	blk.MLP.Forward(d, h, rows)
	nn.AddInPlace(t, d)
}

// ViTConfig is the size of a tagger ViT.
type ViTConfig struct {
	ImageSize, Patch, Dim, Depth, Heads, MLPHidden, Classes int
}

// Tokens is the number of patch tokens.
func (c ViTConfig) Tokens() int { return (c.ImageSize / c.Patch) * (c.ImageSize / c.Patch) }

// ViT is the tagger network.
type ViT struct {
	Config     ViTConfig
	PatchEmbed patchEmbed
	PosEmbed   *nn.Tensor // [1, Tokens, Dim]
	Blocks     []block
	Norm       layerNorm
	Head       linear
}

// Forward returns the logits [b, Classes] of the preprocessed images x
// [b, 3, ImageSize, ImageSize] (BGR, in [-1, 1]). A cancelled ctx stops it
// between blocks.
func (m *ViT) Forward(ctx context.Context, x []float32, b int) ([]float32, error) {
	c := m.Config
	n, dim := c.Tokens(), c.Dim
	var ws nn.Workspace
	t := make([]float32, b*n*dim)
	m.PatchEmbed.Forward(&ws, t, x, b, c.ImageSize)
	for i := range b {
		nn.AddInPlace(t[i*n*dim:(i+1)*n*dim], m.PosEmbed.Data)
	}
	for i := range m.Blocks {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m.Blocks[i].Forward(&ws, t, b, n)
	}
	normed := make([]float32, b*n*dim)
	m.Norm.Forward(normed, t, make([]float32, 2*b*n), b*n)
	pooled := meanTokens(normed, b, n, dim)
	logits := make([]float32, b*c.Classes)
	m.Head.Forward(logits, pooled, b)
	return logits, nil
}

// meanTokens averages [b, n, dim] over the tokens, summing in float64 so
// the 784-token mean of the full model loses nothing to rounding.
func meanTokens(t []float32, b, n, dim int) []float32 {
	out := make([]float32, b*dim)
	acc := make([]float64, dim)
	for i := range b {
		clear(acc)
		for j := range n {
			row := t[(i*n+j)*dim : (i*n+j+1)*dim]
			for k, v := range row {
				acc[k] += float64(v)
			}
		}
		for k := range acc {
			out[i*dim+k] = float32(acc[k] / float64(n))
		}
	}
	return out
}

// Sigmoid turns logits into probabilities in place.
func Sigmoid(x []float32) {
	for i, v := range x {
		x[i] = float32(1 / (1 + math.Exp(-float64(v))))
	}
}

// weightSource is what the loader needs of a safetensors file.
type weightSource interface {
	Info(name string) (dtype string, shape []int, ok bool)
	Float32(name string) (*nn.Tensor, error)
}

// weightReader reads named tensors and checks their shapes, remembering the
// first problem so a loader reads like a list of weights.
type weightReader struct {
	f   weightSource
	err error
}

func (r *weightReader) get(name string, shape ...int) *nn.Tensor {
	if r.err != nil {
		return nil
	}
	_, got, ok := r.f.Info(name)
	if !ok {
		r.err = fmt.Errorf("missing tensor %q", name)
		return nil
	}
	if !nn.SameShape(got, shape) {
		r.err = fmt.Errorf("tensor %q has shape %v, want %v", name, got, shape)
		return nil
	}
	t, err := r.f.Float32(name)
	if err != nil {
		r.err = err
		return nil
	}
	return t
}

func (r *weightReader) readLinear(prefix string, in, out int) linear {
	return linear{Weight: r.get(prefix+".weight", out, in), Bias: r.get(prefix+".bias", out), In: in, Out: out}
}

func (r *weightReader) readLayerNorm(prefix string, dim int) layerNorm {
	return layerNorm{Weight: r.get(prefix+".weight", dim), Bias: r.get(prefix+".bias", dim), Dim: dim}
}

// splitRows cuts a linear's fused output rows into parts linears.
func splitRows(l linear, parts int) []linear {
	out := l.Out / parts
	ls := make([]linear, parts)
	for i := range ls {
		ls[i] = linear{
			Weight: nn.FromData(l.Weight.Data[i*out*l.In:(i+1)*out*l.In], out, l.In),
			Bias:   nn.FromData(l.Bias.Data[i*out:(i+1)*out], out),
			In:     l.In, Out: out,
		}
	}
	return ls
}

// ErrNotViT marks a model file that is not a timm ViT tagger (the SwinV2
// and ConvNeXt taggers need other layers).
var ErrNotViT = errors.New("not a timm ViT tagger (wd-vit-tagger-v3 layout); SwinV2 and ConvNeXt taggers are not supported")

// inferViTConfig reads the model size from the weight shapes. heads comes
// from config.json when the folder has one (0 otherwise: then timm's
// ViT-B rule of 64-wide heads).
func inferViTConfig(f weightSource, heads int) (ViTConfig, error) {
	shape := func(name string) []int {
		_, s, ok := f.Info(name)
		if !ok {
			return nil
		}
		return s
	}
	pe, pos, head := shape("patch_embed.proj.weight"), shape("pos_embed"), shape("head.weight")
	if pe == nil || pos == nil || head == nil || shape("blocks.0.attn.qkv.weight") == nil {
		if shape("layers.0.blocks.0.attn.qkv.weight") != nil || shape("stem.0.weight") != nil {
			return ViTConfig{}, ErrNotViT
		}
		return ViTConfig{}, fmt.Errorf("%w: needs patch_embed.proj.weight, pos_embed, blocks.0.attn.qkv.weight and head.weight", ErrNotViT)
	}
	if shape("cls_token") != nil {
		return ViTConfig{}, fmt.Errorf("%w: has a class token (the WD14 ViT has none)", ErrNotViT)
	}
	if len(pe) != 4 || pe[1] != 3 || pe[2] != pe[3] || pe[2] < 1 {
		return ViTConfig{}, fmt.Errorf("patch_embed.proj.weight has shape %v, want [dim, 3, patch, patch]", pe)
	}
	c := ViTConfig{Patch: pe[2], Dim: pe[0]}
	if len(pos) != 3 || pos[0] != 1 || pos[2] != c.Dim {
		return ViTConfig{}, fmt.Errorf("pos_embed has shape %v, want [1, tokens, %d]", pos, c.Dim)
	}
	grid := int(math.Round(math.Sqrt(float64(pos[1]))))
	if grid*grid != pos[1] || grid < 1 {
		return ViTConfig{}, fmt.Errorf("pos_embed has %d tokens, not a square grid", pos[1])
	}
	c.ImageSize = grid * c.Patch
	if len(head) != 2 || head[1] != c.Dim || head[0] < 1 {
		return ViTConfig{}, fmt.Errorf("head.weight has shape %v, want [classes, %d]", head, c.Dim)
	}
	c.Classes = head[0]
	for shape("blocks."+strconv.Itoa(c.Depth)+".attn.qkv.weight") != nil {
		c.Depth++
	}
	fc1 := shape("blocks.0.mlp.fc1.weight")
	if len(fc1) != 2 {
		return ViTConfig{}, fmt.Errorf("blocks.0.mlp.fc1.weight has shape %v, want [hidden, %d]", fc1, c.Dim)
	}
	c.MLPHidden = fc1[0]
	c.Heads = heads
	if c.Heads == 0 {
		c.Heads = max(1, c.Dim/64)
	}
	if c.Dim%c.Heads != 0 {
		return ViTConfig{}, fmt.Errorf("embed width %d does not split into %d heads", c.Dim, c.Heads)
	}
	return c, nil
}

// loadViT builds the network from an open safetensors file.
func loadViT(f weightSource, heads int) (*ViT, error) {
	c, err := inferViTConfig(f, heads)
	if err != nil {
		return nil, err
	}
	r := &weightReader{f: f}
	m := &ViT{
		Config: c,
		PatchEmbed: patchEmbed{
			Weight: r.get("patch_embed.proj.weight", c.Dim, 3, c.Patch, c.Patch),
			Bias:   r.get("patch_embed.proj.bias", c.Dim),
			Patch:  c.Patch, Dim: c.Dim,
		},
		PosEmbed: r.get("pos_embed", 1, c.Tokens(), c.Dim),
		Norm:     r.readLayerNorm("norm", c.Dim),
		Head:     r.readLinear("head", c.Dim, c.Classes),
		Blocks:   make([]block, c.Depth),
	}
	for i := range m.Blocks {
		p := "blocks." + strconv.Itoa(i) + "."
		blk := block{
			Norm1: r.readLayerNorm(p+"norm1", c.Dim),
			Norm2: r.readLayerNorm(p+"norm2", c.Dim),
			MLP:   mlp{FC1: r.readLinear(p+"mlp.fc1", c.Dim, c.MLPHidden), FC2: r.readLinear(p+"mlp.fc2", c.MLPHidden, c.Dim)},
		}
		qkv := r.readLinear(p+"attn.qkv", c.Dim, 3*c.Dim)
		proj := r.readLinear(p+"attn.proj", c.Dim, c.Dim)
		if r.err != nil {
			break
		}
		s := splitRows(qkv, 3)
		blk.Attn = attention{Q: s[0], K: s[1], V: s[2], Proj: proj, Heads: c.Heads}
		m.Blocks[i] = blk
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// timmConfig is the part of a timm config.json the loader uses.
type timmConfig struct {
	Architecture string `json:"architecture"`
	ModelArgs    struct {
		NumHeads int `json:"num_heads"`
	} `json:"model_args"`
}

// readTimmConfig reads config.json beside the weights; a missing file is
// not an error (the weights alone define the model).
func readTimmConfig(dir string) (timmConfig, error) {
	var c timmConfig
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read %s: %w", path, err)
	}
	if c.Architecture != "" && !strings.HasPrefix(c.Architecture, "vit_") {
		return c, fmt.Errorf("%s: architecture %q: %w", path, c.Architecture, ErrNotViT)
	}
	return c, nil
}
