package sd

import (
	"context"
	"fmt"
	"image"
	"math/rand/v2"
	"runtime"

	"lorastudio/nn"
)

// GenerateOptions are the settings of one text-to-image run.
type GenerateOptions struct {
	Prompt, NegativePrompt string
	Width, Height          int // pixels; multiples of 64 for SD 1.x
	Steps                  int
	CFGScale               float32
	Sampler                string // see SamplerNames
	Seed                   uint64
	ClipSkip               int // 1 = last layer
	// Conditioning, when set, is the prompt pair already encoded
	// (EncodeConditioning): the text encoder is not used, so a caller that
	// encoded its prompts up front may free it. Prompt and NegativePrompt
	// then only describe the image.
	Conditioning *Conditioning
}

// Conditioning is a prompt and its negative prompt encoded for guidance:
// equally many 77-token chunks each, [1, 77*chunks, width].
type Conditioning struct {
	Cond, Uncond *nn.Tensor
}

// MaxImageSize is the longest side Txt2Img makes, AUTOMATIC1111's limit.
// Decoding 2048x2048 already takes about 8 GB; larger sizes would exhaust
// memory rather than fail cleanly.
const MaxImageSize = 2048

// DefaultGenerateOptions are AUTOMATIC1111's defaults for SD 1.x.
func DefaultGenerateOptions() GenerateOptions {
	return GenerateOptions{Width: 512, Height: 512, Steps: 20, CFGScale: 7, Sampler: "euler_a", ClipSkip: 1}
}

// Txt2Img generates one image. Prompts longer than 75 tokens are encoded in
// 75-token chunks as AUTOMATIC1111 does, the negative prompt padded to the
// same number of chunks. The same options and seed give the same image (the
// noise comes from Go's PCG, so seeds do not reproduce other programs'
// images). progress, when not nil, is called after every sampling step;
// cancelling ctx stops between steps. Not safe for concurrent use with
// other calls on the same Model.
func (m *Model) Txt2Img(ctx context.Context, o GenerateOptions, progress func(step, total int)) (*image.NRGBA, error) {
	unit := m.Config.VAE.Factor() << (len(m.Config.UNet.Channels) - 1)
	if o.Width <= 0 || o.Height <= 0 || o.Width%unit != 0 || o.Height%unit != 0 {
		return nil, fmt.Errorf("txt2img: size %dx%d is not a positive multiple of %d", o.Width, o.Height, unit)
	}
	if o.Width > MaxImageSize || o.Height > MaxImageSize {
		return nil, fmt.Errorf("txt2img: size %dx%d is over %d px a side", o.Width, o.Height, MaxImageSize)
	}
	sampler, err := NewSampler(o.Sampler, o.Steps, NewSchedule())
	if err != nil {
		return nil, fmt.Errorf("txt2img: %w", err)
	}
	c := o.Conditioning
	if c == nil {
		if c, err = m.EncodeConditioning(o.Prompt, o.NegativePrompt, o.ClipSkip); err != nil {
			return nil, fmt.Errorf("txt2img: %w", err)
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5d))
	f := m.Config.VAE.Factor()
	noise := Noise(rng, 1, m.Config.UNet.InChannels, o.Height/f, o.Width/f)
	unet := func(x *nn.Tensor, t float32, c *nn.Tensor) (*nn.Tensor, error) {
		ts := make([]float32, x.Shape[0])
		for i := range ts {
			ts[i] = t
		}
		return m.UNet.Forward(x, ts, c)
	}
	latents, err := Sample(ctx, sampler, noise, Guidance(unet, c.Uncond, o.CFGScale), c.Cond, rng, progress)
	if err != nil {
		return nil, fmt.Errorf("txt2img: %w", err)
	}
	// The decoder takes about a gigabyte of buffers at 512x512: hand the
	// UNet's back first, so a generation's peak is the larger of the two,
	// not their sum.
	m.UNet.ReleaseMemory()
	runtime.GC()
	images, err := m.VAE.Decode(latents)
	m.VAE.ReleaseMemory()
	if err != nil {
		return nil, fmt.Errorf("txt2img: %w", err)
	}
	return ToImage(images, 0), nil
}

// EncodeConditioning encodes a prompt and a negative prompt as equally many
// 77-token chunks (prompts over 75 tokens take several, as in
// AUTOMATIC1111).
func (m *Model) EncodeConditioning(prompt, negative string, clipSkip int) (*Conditioning, error) {
	p := m.Tokenizer.EncodeChunks(prompt)
	n := m.Tokenizer.EncodeChunks(negative)
	empty := m.Tokenizer.EncodeChunks("")[0]
	for len(p) < len(n) {
		p = append(p, empty)
	}
	for len(n) < len(p) {
		n = append(n, empty)
	}
	encode := func(chunks [][]int) (*nn.Tensor, error) {
		var ids []int
		for _, c := range chunks {
			ids = append(ids, c...)
		}
		h, err := m.Text.Forward(ids, len(chunks), clipSkip)
		if err != nil {
			return nil, err
		}
		return h.Reshape(1, len(chunks)*ContextLength, h.Shape[2]), nil
	}
	cond, err := encode(p)
	if err != nil {
		return nil, err
	}
	uncond, err := encode(n)
	if err != nil {
		return nil, err
	}
	return &Conditioning{Cond: cond, Uncond: uncond}, nil
}

// ToImage converts image i of a decoder output [N, 3, H, W] (values in
// [-1, 1], clamped) to 8-bit RGB.
func ToImage(images *nn.Tensor, i int) *image.NRGBA {
	h, w := images.Shape[2], images.Shape[3]
	plane := h * w
	src := images.Data[i*3*plane : (i+1)*3*plane]
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		row := img.Pix[y*img.Stride:]
		for x := range w {
			p := y*w + x
			for c := range 3 {
				v := (src[c*plane+p] + 1) * 127.5
				row[4*x+c] = uint8(min(max(v+0.5, 0), 255))
			}
			row[4*x+3] = 255
		}
	}
	return img
}
