package sd

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"lorastudio/nn"
)

// UNetConfig is the shape of an SD 1.x UNet (diffusers' UNet2DConditionModel
// with SD 1.x's block pattern): every level has LayersPerBlock ResBlocks (and
// as many SpatialTransformers when Attention says so) and all but the last
// level downsample; the up path mirrors it with one more block per level.
type UNetConfig struct {
	InChannels, OutChannels int
	Channels                []int  // block_out_channels, one per level
	Attention               []bool // whether a level has transformers
	LayersPerBlock          int
	TransformerDepth        int // transformer blocks per SpatialTransformer
	ContextDim              int // text embedding width
	Heads                   int // attention heads (SD 1.x: 8 at every level)
}

// SD15UNetConfig is the configuration of Stable Diffusion 1.x's UNet.
func SD15UNetConfig() UNetConfig {
	return UNetConfig{
		InChannels: 4, OutChannels: 4,
		Channels:       []int{320, 640, 1280, 1280},
		Attention:      []bool{true, true, true, false},
		LayersPerBlock: 2, TransformerDepth: 1, ContextDim: 768, Heads: 8,
	}
}

// TimeDim is the width of the time embedding MLP (4x the first level's).
func (c UNetConfig) TimeDim() int { return 4 * c.Channels[0] }

// Validate reports a configuration the UNet cannot be built from.
func (c UNetConfig) Validate() error {
	switch {
	case c.InChannels <= 0 || c.OutChannels <= 0:
		return fmt.Errorf("unet config: %d input and %d output channels", c.InChannels, c.OutChannels)
	case len(c.Channels) == 0 || len(c.Attention) != len(c.Channels):
		return fmt.Errorf("unet config: %d levels with %d attention flags", len(c.Channels), len(c.Attention))
	case c.LayersPerBlock <= 0 || c.Heads <= 0 || c.ContextDim <= 0:
		return fmt.Errorf("unet config: layers per block %d, heads %d, context %d", c.LayersPerBlock, c.Heads, c.ContextDim)
	}
	for i, ch := range c.Channels {
		if ch <= 0 || ch%32 != 0 {
			return fmt.Errorf("unet config: level %d has %d channels, need a positive multiple of 32 (GroupNorm groups)", i, ch)
		}
		if c.Attention[i] && (ch%c.Heads != 0 || c.TransformerDepth <= 0) {
			return fmt.Errorf("unet config: level %d: %d channels, %d heads, depth %d", i, ch, c.Heads, c.TransformerDepth)
		}
	}
	return nil
}

// UNetConfigFromShapes derives the configuration from a checkpoint's tensor
// shapes by diffusers name (shape reports false for a missing key). SD 1.x
// does not store the head count; it is 8.
func UNetConfigFromShapes(shape func(name string) ([]int, bool)) (UNetConfig, error) {
	c := UNetConfig{Heads: 8}
	in, ok := shape("conv_in.weight")
	if !ok || len(in) != 4 {
		return c, errors.New("unet: no conv_in.weight [C, in, 3, 3]")
	}
	c.InChannels = in[1]
	out, ok := shape("conv_out.weight")
	if !ok || len(out) != 4 {
		return c, errors.New("unet: no conv_out.weight [out, C, 3, 3]")
	}
	c.OutChannels = out[0]
	for i := 0; ; i++ {
		w, ok := shape(fmt.Sprintf("down_blocks.%d.resnets.0.conv1.weight", i))
		if !ok {
			break
		}
		c.Channels = append(c.Channels, w[0])
		p := fmt.Sprintf("down_blocks.%d.attentions.0.", i)
		proj, attn := shape(p + "proj_in.weight")
		c.Attention = append(c.Attention, attn)
		if !attn {
			continue
		}
		if len(proj) != 4 {
			return c, fmt.Errorf("unet: %sproj_in.weight is %v: a linear projection (SD 2.x) is not SD 1.x", p, proj)
		}
		k, ok := shape(p + "transformer_blocks.0.attn2.to_k.weight")
		if !ok || len(k) != 2 {
			return c, fmt.Errorf("unet: no %stransformer_blocks.0.attn2.to_k.weight", p)
		}
		c.ContextDim = k[1]
		if c.TransformerDepth == 0 {
			for _, ok := shape(fmt.Sprintf("%stransformer_blocks.%d.norm1.weight", p, c.TransformerDepth)); ok; _, ok = shape(fmt.Sprintf("%stransformer_blocks.%d.norm1.weight", p, c.TransformerDepth)) {
				c.TransformerDepth++
			}
		}
	}
	if len(c.Channels) == 0 {
		return c, errors.New("unet: no down_blocks.0.resnets.0.conv1.weight")
	}
	for _, ok := shape(fmt.Sprintf("down_blocks.0.resnets.%d.conv1.weight", c.LayersPerBlock)); ok; _, ok = shape(fmt.Sprintf("down_blocks.0.resnets.%d.conv1.weight", c.LayersPerBlock)) {
		c.LayersPerBlock++
	}
	return c, c.Validate()
}

// UNet is SD 1.x's denoising UNet, with diffusers' module names.
type UNet struct {
	Config      UNetConfig
	TimeLinear1 *Linear      `st:"time_embedding.linear_1"`
	TimeLinear2 *Linear      `st:"time_embedding.linear_2"`
	ConvIn      *Conv2d      `st:"conv_in"`
	Down        []*DownBlock `st:"down_blocks"`
	Mid         *MidBlock    `st:"mid_block"`
	Up          []*UpBlock   `st:"up_blocks"`
	NormOut     *GroupNorm   `st:"conv_norm_out"`
	ConvOut     *Conv2d      `st:"conv_out"`

	mu      sync.Mutex
	scratch Scratch
	steps   []step
	train   trainState
}

// DownBlock is one level of the encoder path.
type DownBlock struct {
	Resnets      []*ResBlock           `st:"resnets"`
	Attentions   []*SpatialTransformer `st:"attentions"`
	Downsamplers []*Downsample         `st:"downsamplers"`
}

// MidBlock is the bottleneck: ResBlock, SpatialTransformer, ResBlock.
type MidBlock struct {
	Resnets    []*ResBlock           `st:"resnets"`
	Attentions []*SpatialTransformer `st:"attentions"`
}

// UpBlock is one level of the decoder path.
type UpBlock struct {
	Resnets    []*ResBlock           `st:"resnets"`
	Attentions []*SpatialTransformer `st:"attentions"`
	Upsamplers []*Upsample           `st:"upsamplers"`
}

// NewUNet builds the module tree of cfg with weight placeholders; Bind (or
// LoadUNet) fills them.
func NewUNet(cfg UNetConfig) (*UNet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ch, temb, levels := cfg.Channels, cfg.TimeDim(), len(cfg.Channels)
	u := &UNet{
		Config:      cfg,
		TimeLinear1: NewLinear(ch[0], temb, true),
		TimeLinear2: NewLinear(temb, temb, true),
		ConvIn:      NewConv2d(cfg.InChannels, ch[0], 3, 1, 1),
		NormOut:     NewGroupNorm(ch[0], 32, 1e-5, true),
		ConvOut:     NewConv2d(ch[0], cfg.OutChannels, 3, 1, 1),
	}
	transformer := func(c int) *SpatialTransformer {
		st := NewSpatialTransformer(c, cfg.ContextDim, cfg.Heads)
		for len(st.Blocks) < cfg.TransformerDepth {
			st.Blocks = append(st.Blocks, NewBasicTransformerBlock(c, cfg.ContextDim, cfg.Heads))
		}
		return st
	}
	// skips holds the channel counts the up path will concatenate, in push order.
	skips := []int{ch[0]}
	prev := ch[0]
	for i := range levels {
		d := &DownBlock{}
		for range cfg.LayersPerBlock {
			d.Resnets = append(d.Resnets, NewResBlock(prev, ch[i], temb, 1e-5))
			prev = ch[i]
			if cfg.Attention[i] {
				d.Attentions = append(d.Attentions, transformer(ch[i]))
			}
			skips = append(skips, prev)
		}
		if i < levels-1 {
			d.Downsamplers = []*Downsample{NewDownsample(prev)}
			skips = append(skips, prev)
		}
		u.Down = append(u.Down, d)
	}
	last := ch[levels-1]
	u.Mid = &MidBlock{
		Resnets:    []*ResBlock{NewResBlock(last, last, temb, 1e-5), NewResBlock(last, last, temb, 1e-5)},
		Attentions: []*SpatialTransformer{transformer(last)},
	}
	for i := range levels {
		level := levels - 1 - i
		up := &UpBlock{}
		for range cfg.LayersPerBlock + 1 {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			up.Resnets = append(up.Resnets, NewResBlock(prev+skip, ch[level], temb, 1e-5))
			prev = ch[level]
			if cfg.Attention[level] {
				up.Attentions = append(up.Attentions, transformer(ch[level]))
			}
		}
		if level > 0 {
			up.Upsamplers = []*Upsample{NewUpsample(prev)}
		}
		u.Up = append(u.Up, up)
	}
	u.steps = u.plan()
	return u, nil
}

// LoadUNet builds the UNet of cfg and binds its weights from src.
func LoadUNet(src WeightSource, cfg UNetConfig) (*UNet, error) {
	u, err := NewUNet(cfg)
	if err != nil {
		return nil, err
	}
	if err := Bind(src, "", u); err != nil {
		return nil, fmt.Errorf("load unet: %w", err)
	}
	return u, nil
}

// Linear returns the Linear layer (or 1x1 convolution) with the given
// diffusers name, such as
// "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q", or nil.
func (u *UNet) Linear(name string) *Linear {
	var found *Linear
	stop := errors.New("found")
	_ = Walk("", u, func(n string, m any) error {
		if l, ok := m.(*Linear); ok && n == name {
			found = l
			return stop
		}
		return nil
	})
	return found
}

// Linears calls fn for every Linear layer inside the transformers (the LoRA
// targets: proj_in, proj_out, attention and feed-forward layers) with its
// diffusers name, in module order.
func (u *UNet) Linears(fn func(name string, l *Linear) error) error {
	return Walk("", u, func(n string, m any) error {
		if l, ok := m.(*Linear); ok && strings.Contains(n, ".attentions.") {
			return fn(n, l)
		}
		return nil
	})
}

// DetachAll removes every LoRA adapter.
func (u *UNet) DetachAll() {
	_ = u.Linears(func(_ string, l *Linear) error {
		l.Detach()
		return nil
	})
}

// check validates the inputs of a forward pass.
func (u *UNet) check(x *nn.Tensor, timesteps []float32, ctx *nn.Tensor) error {
	c := u.Config
	if x == nil || len(x.Shape) != 4 || x.Shape[1] != c.InChannels || len(x.Data) != nn.Numel(x.Shape) {
		return fmt.Errorf("unet: latents %v, want [B, %d, H, W]", x, c.InChannels)
	}
	b, h, w := x.Shape[0], x.Shape[2], x.Shape[3]
	f := 1 << (len(c.Channels) - 1)
	if b <= 0 || h <= 0 || w <= 0 || h%f != 0 || w%f != 0 {
		return fmt.Errorf("unet: latent size %dx%d must be a positive multiple of %d", h, w, f)
	}
	if len(timesteps) != b {
		return fmt.Errorf("unet: %d timesteps for a batch of %d", len(timesteps), b)
	}
	if ctx == nil || len(ctx.Shape) != 3 || ctx.Shape[0] != b || ctx.Shape[2] != c.ContextDim || len(ctx.Data) != nn.Numel(ctx.Shape) {
		return fmt.Errorf("unet: context %v, want [%d, tokens, %d]", ctx, b, c.ContextDim)
	}
	return nil
}

// timeEmbedding returns SiLU(time_embedding(sinusoid(t))) [B, TimeDim]:
// every ResBlock applies SiLU to the embedding first, so it is done once.
func (u *UNet) timeEmbedding(s *Scratch, timesteps []float32) *nn.Tensor {
	b := len(timesteps)
	sin := s.Tensor(b, u.Config.Channels[0])
	nn.TimestepEmbedding(sin.Data, timesteps, u.Config.Channels[0])
	h := u.TimeLinear1.Forward(s, sin)
	s.Release(sin)
	nn.SiLU(h.Data, h.Data)
	e := u.TimeLinear2.Forward(s, h)
	s.Release(h)
	nn.SiLU(e.Data, e.Data)
	return e
}

// Forward predicts the noise for latents [B, 4, H, W] at the given
// timesteps (one per batch item) under the text context [B, tokens, D].
// The result belongs to the caller.
func (u *UNet) Forward(latents *nn.Tensor, timesteps []float32, ctx *nn.Tensor) (*nn.Tensor, error) {
	if err := u.check(latents, timesteps, ctx); err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.run(&u.scratch, latents, timesteps, ctx, false), nil
}

// ForwardTrain is Forward for a training step: every module keeps what
// Backward needs, and trainable adapters keep their inputs.
func (u *UNet) ForwardTrain(latents *nn.Tensor, timesteps []float32, ctx *nn.Tensor) (*nn.Tensor, error) {
	if err := u.check(latents, timesteps, ctx); err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.train.ready = false
	out := u.run(&u.scratch, latents, timesteps, ctx, true)
	u.train.ready = true
	u.train.outShape = append(u.train.outShape[:0], out.Shape...)
	return out, nil
}

// Backward propagates gradOut (d loss / d output of the last ForwardTrain)
// through the UNet, writing the gradients of every trainable adapter
// (Adapter.GradDown, GradUp). With wantCtx it also returns d loss / d context
// (for training the text encoder); otherwise nil.
func (u *UNet) Backward(gradOut *nn.Tensor, wantCtx bool) (*nn.Tensor, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.train.ready {
		return nil, errors.New("unet: Backward without ForwardTrain")
	}
	if gradOut == nil || !nn.SameShape(gradOut.Shape, u.train.outShape) || len(gradOut.Data) != nn.Numel(gradOut.Shape) {
		return nil, fmt.Errorf("unet: output gradient %v, want %v", gradOut, u.train.outShape)
	}
	return u.backward(&u.scratch, gradOut, wantCtx), nil
}

// ReleaseMemory drops the pooled scratch buffers and the activations kept
// for training (after a training run, before generating, say). A Backward
// then needs a new ForwardTrain.
func (u *UNet) ReleaseMemory() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.scratch.Drop()
	u.train = trainState{}
	_ = Walk("", u, func(_ string, m any) error {
		if r, ok := m.(interface{ releaseKept() }); ok {
			r.releaseKept()
		}
		return nil
	})
}
