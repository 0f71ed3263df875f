package sd

import (
	"errors"
	"fmt"
	"math"

	"lorastudio/nn"
)

// VAEConfig is the shape of SD's AutoencoderKL (diffusers' config names).
type VAEConfig struct {
	InChannels, OutChannels int   // image channels (3)
	LatentChannels          int   // 4
	Channels                []int // block_out_channels, one per level
	LayersPerBlock          int   // res blocks per encoder level (decoder levels have one more)
}

// SD15VAEConfig is SD 1.x's VAE (83.65M parameters).
func SD15VAEConfig() VAEConfig {
	return VAEConfig{InChannels: 3, OutChannels: 3, LatentChannels: 4, Channels: []int{128, 256, 512, 512}, LayersPerBlock: 2}
}

// TinyVAEConfig is the demo model's VAE: SD 1.x's structure at width 32.
func TinyVAEConfig() VAEConfig {
	return VAEConfig{InChannels: 3, OutChannels: 3, LatentChannels: 4, Channels: []int{32, 64, 128, 128}, LayersPerBlock: 2}
}

// Factor is how much smaller latents are than images (8 for SD).
func (c VAEConfig) Factor() int { return 1 << (len(c.Channels) - 1) }

// Validate reports a configuration the VAE cannot be built from.
func (c VAEConfig) Validate() error {
	if c.InChannels <= 0 || c.OutChannels <= 0 || c.LatentChannels <= 0 || c.LayersPerBlock <= 0 || len(c.Channels) == 0 {
		return fmt.Errorf("vae config: %+v", c)
	}
	for _, ch := range c.Channels {
		if ch <= 0 || ch%vaeGroups != 0 {
			return fmt.Errorf("vae config: %d channels do not split into %d groups", ch, vaeGroups)
		}
	}
	return nil
}

// VAEConfigFromShapes derives the configuration from tensor shapes by
// diffusers name.
func VAEConfigFromShapes(shape func(name string) ([]int, bool)) (VAEConfig, error) {
	var c VAEConfig
	in, ok := shape("encoder.conv_in.weight")
	if !ok || len(in) != 4 {
		return c, errors.New("vae: no encoder.conv_in.weight [C, in, 3, 3]")
	}
	c.InChannels = in[1]
	out, ok := shape("decoder.conv_out.weight")
	if !ok || len(out) != 4 {
		return c, errors.New("vae: no decoder.conv_out.weight [out, C, 3, 3]")
	}
	c.OutChannels = out[0]
	pq, ok := shape("post_quant_conv.weight")
	if !ok || len(pq) != 4 {
		return c, errors.New("vae: no post_quant_conv.weight [z, z, 1, 1]")
	}
	c.LatentChannels = pq[0]
	for {
		w, ok := shape(fmt.Sprintf("encoder.down_blocks.%d.resnets.0.conv2.weight", len(c.Channels)))
		if !ok || len(w) != 4 {
			break
		}
		c.Channels = append(c.Channels, w[0])
	}
	for {
		if _, ok := shape(fmt.Sprintf("encoder.down_blocks.0.resnets.%d.conv1.weight", c.LayersPerBlock)); !ok {
			break
		}
		c.LayersPerBlock++
	}
	return c, c.Validate()
}

const (
	vaeGroups = 32
	vaeEps    = 1e-6
)

// VAE is SD's AutoencoderKL with diffusers' module names. Encode and
// Decode run one image at a time to bound memory; they are not safe for
// concurrent use.
type VAE struct {
	Encoder       *VAEEncoder `st:"encoder"`
	Decoder       *VAEDecoder `st:"decoder"`
	QuantConv     *Conv2d     `st:"quant_conv"`
	PostQuantConv *Conv2d     `st:"post_quant_conv"`
	Config        VAEConfig

	scratch Scratch
}

// VAEEncoder maps an image to the latent distribution's moments.
type VAEEncoder struct {
	ConvIn      *Conv2d         `st:"conv_in"`
	DownBlocks  []*VAEDownBlock `st:"down_blocks"`
	MidBlock    *VAEMidBlock    `st:"mid_block"`
	ConvNormOut *GroupNorm      `st:"conv_norm_out"`
	ConvOut     *Conv2d         `st:"conv_out"`
}

// VAEDecoder maps a latent to an image.
type VAEDecoder struct {
	ConvIn      *Conv2d       `st:"conv_in"`
	MidBlock    *VAEMidBlock  `st:"mid_block"`
	UpBlocks    []*VAEUpBlock `st:"up_blocks"`
	ConvNormOut *GroupNorm    `st:"conv_norm_out"`
	ConvOut     *Conv2d       `st:"conv_out"`
}

// VAEDownBlock is one encoder level: res blocks, then (except on the last
// level) a stride-2 convolution.
type VAEDownBlock struct {
	Resnets      []*ResBlock   `st:"resnets"`
	Downsamplers []*Downsample `st:"downsamplers"`
}

// VAEUpBlock is one decoder level: res blocks, then (except on the last
// level) nearest x2 and a convolution.
type VAEUpBlock struct {
	Resnets    []*ResBlock `st:"resnets"`
	Upsamplers []*Upsample `st:"upsamplers"`
}

// VAEMidBlock is ResBlock, single-head self-attention, ResBlock.
type VAEMidBlock struct {
	Resnets    []*ResBlock     `st:"resnets"`
	Attentions []*VAEAttention `st:"attentions"`
}

// VAEAttention is single-head self-attention over the pixels of a feature
// map, with a residual connection.
type VAEAttention struct {
	GroupNorm *GroupNorm `st:"group_norm"`
	ToQ       *Linear    `st:"to_q"`
	ToK       *Linear    `st:"to_k"`
	ToV       *Linear    `st:"to_v"`
	ToOut     *Linear    `st:"to_out.0"`
}

// NewVAE builds the module tree of cfg with weight placeholders; Bind (or
// LoadVAE) fills them.
func NewVAE(cfg VAEConfig) (*VAE, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ch, levels, z := cfg.Channels, len(cfg.Channels), cfg.LatentChannels
	top := ch[levels-1]
	enc := &VAEEncoder{
		ConvIn:      NewConv2d(cfg.InChannels, ch[0], 3, 1, 1),
		MidBlock:    newVAEMidBlock(top),
		ConvNormOut: NewGroupNorm(top, vaeGroups, vaeEps, true),
		ConvOut:     NewConv2d(top, 2*z, 3, 1, 1),
	}
	prev := ch[0]
	for i, c := range ch {
		b := &VAEDownBlock{}
		for j := range cfg.LayersPerBlock {
			in := c
			if j == 0 {
				in = prev
			}
			b.Resnets = append(b.Resnets, NewResBlock(in, c, 0, vaeEps))
		}
		if i < levels-1 {
			// LDM pads only the right and bottom edges before the stride-2 convolution.
			conv := NewConv2d(c, c, 3, 2, 0)
			conv.Spec.PadBottom, conv.Spec.PadRight = 1, 1
			b.Downsamplers = []*Downsample{{Conv: conv}}
		}
		enc.DownBlocks = append(enc.DownBlocks, b)
		prev = c
	}
	dec := &VAEDecoder{
		ConvIn:      NewConv2d(z, top, 3, 1, 1),
		MidBlock:    newVAEMidBlock(top),
		ConvNormOut: NewGroupNorm(ch[0], vaeGroups, vaeEps, true),
		ConvOut:     NewConv2d(ch[0], cfg.OutChannels, 3, 1, 1),
	}
	prev = top
	for i := range levels {
		c := ch[levels-1-i]
		b := &VAEUpBlock{}
		for j := range cfg.LayersPerBlock + 1 {
			in := c
			if j == 0 {
				in = prev
			}
			b.Resnets = append(b.Resnets, NewResBlock(in, c, 0, vaeEps))
		}
		if i < levels-1 {
			b.Upsamplers = []*Upsample{NewUpsample(c)}
		}
		dec.UpBlocks = append(dec.UpBlocks, b)
		prev = c
	}
	return &VAE{
		Encoder:       enc,
		Decoder:       dec,
		QuantConv:     NewConv2d(2*z, 2*z, 1, 1, 0),
		PostQuantConv: NewConv2d(z, z, 1, 1, 0),
		Config:        cfg,
	}, nil
}

func newVAEMidBlock(c int) *VAEMidBlock {
	return &VAEMidBlock{
		Resnets: []*ResBlock{NewResBlock(c, c, 0, vaeEps), NewResBlock(c, c, 0, vaeEps)},
		Attentions: []*VAEAttention{{
			GroupNorm: NewGroupNorm(c, vaeGroups, vaeEps, false),
			ToQ:       NewLinear(c, c, true),
			ToK:       NewLinear(c, c, true),
			ToV:       NewLinear(c, c, true),
			ToOut:     NewLinear(c, c, true),
		}},
	}
}

// LoadVAE builds the VAE of cfg and binds its weights from src.
func LoadVAE(src WeightSource, cfg VAEConfig) (*VAE, error) {
	v, err := NewVAE(cfg)
	if err != nil {
		return nil, err
	}
	if err := Bind(src, "", v); err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	return v, nil
}

// ReleaseMemory drops the pooled scratch buffers.
func (v *VAE) ReleaseMemory() { v.scratch.Drop() }

// DropEncoder frees the encoder's weights (130 MB of SD's VAE) for a
// caller that only decodes from now on, such as a training run whose
// latents are all cached. Encode then fails.
func (v *VAE) DropEncoder() { v.Encoder, v.QuantConv = nil, nil }

// Moments returns the latent distribution of images [N, C, H, W] with
// values in [-1, 1] (H and W multiples of 8): its mean and its log-variance,
// clamped to [-30, 20] as diffusers does, both [N, z, H/8, W/8] and unscaled.
func (v *VAE) Moments(images *nn.Tensor) (mean, logvar *nn.Tensor, err error) {
	c := v.Config
	if v.Encoder == nil {
		return nil, nil, fmt.Errorf("vae encode: the encoder was dropped")
	}
	if len(images.Shape) != 4 || images.Shape[1] != c.InChannels {
		return nil, nil, fmt.Errorf("vae encode: images %v, want [N, %d, H, W]", images.Shape, c.InChannels)
	}
	n, h, w := images.Shape[0], images.Shape[2], images.Shape[3]
	f := c.Factor()
	if h == 0 || w == 0 || h%f != 0 || w%f != 0 {
		return nil, nil, fmt.Errorf("vae encode: image size %dx%d is not a multiple of %d", w, h, f)
	}
	z := c.LatentChannels
	lh, lw := h/f, w/f
	mean, logvar = nn.New(n, z, lh, lw), nn.New(n, z, lh, lw)
	per, lat := c.InChannels*h*w, z*lh*lw
	for i := range n {
		m := v.moments(nn.FromData(images.Data[i*per:(i+1)*per], 1, c.InChannels, h, w))
		copy(mean.Data[i*lat:], m.Data[:lat])
		lv := logvar.Data[i*lat : (i+1)*lat]
		for j, x := range m.Data[lat:] {
			lv[j] = min(max(x, -30), 20)
		}
		v.scratch.Release(m)
	}
	return mean, logvar, nil
}

// Encode returns the scaled latents LatentScale * (mean + std*eps) the UNet
// works on, for images [N, C, H, W] in [-1, 1]. eps [N, z, H/8, W/8] is the
// sampling noise; nil takes the mean (the deterministic encoding).
func (v *VAE) Encode(images, eps *nn.Tensor) (*nn.Tensor, error) {
	mean, logvar, err := v.Moments(images)
	if err != nil {
		return nil, err
	}
	if eps != nil && !nn.SameShape(eps.Shape, mean.Shape) {
		return nil, fmt.Errorf("vae encode: noise %v for latents %v", eps.Shape, mean.Shape)
	}
	for i, m := range mean.Data {
		x := m
		if eps != nil {
			x += float32(math.Exp(0.5*float64(logvar.Data[i]))) * eps.Data[i]
		}
		mean.Data[i] = LatentScale * x
	}
	return mean, nil
}

// Decode turns scaled latents [N, z, h, w] (what samplers produce) into
// images [N, C, 8h, 8w] with values around [-1, 1].
func (v *VAE) Decode(latents *nn.Tensor) (*nn.Tensor, error) {
	z := latents.Clone()
	nn.Scale(z.Data, 1/LatentScale)
	return v.decode(z)
}

// decode is diffusers' AutoencoderKL.decode: unscaled latents to images.
func (v *VAE) decode(z *nn.Tensor) (*nn.Tensor, error) {
	c := v.Config
	if len(z.Shape) != 4 || z.Shape[1] != c.LatentChannels || z.Shape[2] == 0 || z.Shape[3] == 0 {
		return nil, fmt.Errorf("vae decode: latents %v, want [N, %d, h, w]", z.Shape, c.LatentChannels)
	}
	n, h, w := z.Shape[0], z.Shape[2], z.Shape[3]
	f := c.Factor()
	out := nn.New(n, c.OutChannels, h*f, w*f)
	per, img := c.LatentChannels*h*w, c.OutChannels*h*f*w*f
	for i := range n {
		y := v.decodeOne(nn.FromData(z.Data[i*per:(i+1)*per], 1, c.LatentChannels, h, w))
		copy(out.Data[i*img:], y.Data)
		v.scratch.Release(y)
	}
	return out, nil
}

// moments is quant_conv(encoder(x)) for one image: [1, 2z, h, w].
func (v *VAE) moments(x *nn.Tensor) *nn.Tensor {
	s := &v.scratch
	e := v.Encoder
	h := e.ConvIn.Forward(s, x)
	for _, b := range e.DownBlocks {
		for _, r := range b.Resnets {
			h = r.forwardOwned(s, h)
		}
		for _, d := range b.Downsamplers {
			h = replace(s, h, d.Forward(s, h))
		}
	}
	h = e.MidBlock.forward(s, h)
	h = replace(s, h, e.ConvNormOut.Forward(s, h))
	h = replace(s, h, e.ConvOut.Forward(s, h))
	return replace(s, h, v.QuantConv.Forward(s, h))
}

// decodeOne is decoder(post_quant_conv(z)) for one latent.
func (v *VAE) decodeOne(z *nn.Tensor) *nn.Tensor {
	s := &v.scratch
	d := v.Decoder
	h := v.PostQuantConv.Forward(s, z)
	h = replace(s, h, d.ConvIn.Forward(s, h))
	h = d.MidBlock.forward(s, h)
	for _, b := range d.UpBlocks {
		for _, r := range b.Resnets {
			h = r.forwardOwned(s, h)
		}
		for _, u := range b.Upsamplers {
			h = replace(s, h, u.Forward(s, h))
		}
	}
	h = replace(s, h, d.ConvNormOut.Forward(s, h))
	return replace(s, h, d.ConvOut.Forward(s, h))
}

// replace releases old and returns next: the step of a sequential chain.
func replace(s *Scratch, old, next *nn.Tensor) *nn.Tensor {
	s.Release(old)
	return next
}

// forward takes ownership of x and returns the block's output.
func (m *VAEMidBlock) forward(s *Scratch, x *nn.Tensor) *nn.Tensor {
	h := m.Resnets[0].forwardOwned(s, x)
	h = replace(s, h, m.Attentions[0].Forward(s, h))
	return m.Resnets[1].forwardOwned(s, h)
}

// Forward maps x [N, C, H, W] to x + attention(GroupNorm(x)) over its H*W
// positions.
func (a *VAEAttention) Forward(s *Scratch, x *nn.Tensor) *nn.Tensor {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	hw := h * w
	g := a.GroupNorm.Forward(s, x)
	tok := s.Tensor(n, hw, c)
	nn.ToTokens(tok.Data, g.Data, n, c, hw)
	s.Release(g)
	q := a.ToQ.Forward(s, tok)
	k := a.ToK.Forward(s, tok)
	vv := a.ToV.Forward(s, tok)
	s.Release(tok)
	o := s.Tensor(n, hw, c)
	lse := s.Tensor(n * hw)
	nn.AttentionForward(&s.WS, o.Data, lse.Data, q.Data, k.Data, vv.Data, nn.AttnParams{
		Batch: n, Heads: 1, Tq: hw, Tk: hw, HeadDim: c, Scale: float32(1 / math.Sqrt(float64(c))),
	})
	s.Release(q, k, vv, lse)
	p := a.ToOut.Forward(s, o)
	s.Release(o)
	out := s.Tensor(x.Shape...)
	nn.FromTokens(out.Data, p.Data, n, c, hw)
	s.Release(p)
	nn.AddInPlace(out.Data, x.Data)
	return out
}
