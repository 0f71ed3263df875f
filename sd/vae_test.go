package sd

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"lorastudio/nn"
)

func TestVAEMatchesDiffusers(t *testing.T) {
	g := fixture(t, "golden_vae.safetensors")
	image := fixtureTensor(t, g, "image")
	for _, fx := range checkpointFixtures {
		t.Run(fx.name, func(t *testing.T) {
			c := openCheckpoint(t, fx.path, AllParts)
			cfg := c.Config.VAE
			if cfg.LatentChannels != 4 || len(cfg.Channels) != 4 || cfg.Channels[3] != 64 || cfg.LayersPerBlock != 2 {
				t.Fatalf("detected config %+v", cfg)
			}
			v, err := LoadVAE(c.VAE, cfg)
			if err != nil {
				t.Fatal(err)
			}
			mean, logvar, err := v.Moments(image)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "latent mean", mean, fixtureTensor(t, g, "latent_mean"), 1e-4)
			checkClose(t, "latent logvar", logvar, fixtureTensor(t, g, "latent_logvar"), 1e-4)

			eps := fixtureTensor(t, g, "sample_eps")
			sample, err := v.Encode(image, eps)
			if err != nil {
				t.Fatal(err)
			}
			nn.Scale(sample.Data, 1/LatentScale)
			checkClose(t, "latent sample", sample, fixtureTensor(t, g, "latent_sample"), 1e-4)

			dec, err := v.decode(fixtureTensor(t, g, "decoder_input"))
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "decoder output", dec, fixtureTensor(t, g, "decoder_output"), 1e-4)

			scaled := mean.Clone()
			nn.Scale(scaled.Data, LatentScale)
			decMean, err := v.Decode(scaled)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "decode(mean)", decMean, fixtureTensor(t, g, "decoder_output_of_mean"), 1e-4)
		})
	}
}

func TestVAEErrors(t *testing.T) {
	v, err := LoadVAE(RandomWeights(2), TinyVAEConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, shape := range [][]int{{1, 3, 60, 64}, {1, 4, 64, 64}, {3, 64, 64}, {1, 3, 0, 8}} {
		if _, _, err := v.Moments(nn.New(shape...)); err == nil {
			t.Errorf("images %v accepted", shape)
		}
	}
	if _, err := v.Encode(nn.New(1, 3, 16, 16), nn.New(1, 4, 3, 2)); err == nil {
		t.Error("noise of the wrong shape accepted")
	}
	for _, shape := range [][]int{{1, 3, 8, 8}, {4, 8, 8}, {1, 4, 0, 2}} {
		if _, err := v.Decode(nn.New(shape...)); err == nil {
			t.Errorf("latents %v accepted", shape)
		}
	}
	out, err := v.Decode(nn.New(2, 4, 3, 5))
	if err != nil || !nn.SameShape(out.Shape, []int{2, 3, 24, 40}) {
		t.Fatalf("decode: %v %v", out, err)
	}
	for _, x := range out.Data {
		if math.IsNaN(float64(x)) {
			t.Fatal("NaN in decoder output")
		}
	}
	v.DropEncoder()
	if _, err := v.Encode(nn.New(1, 3, 16, 16), nil); err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Errorf("encode without the encoder: %v", err)
	}
	if again, err := v.Decode(nn.New(2, 4, 3, 5)); err != nil || !slices.Equal(again.Data, out.Data) {
		t.Errorf("decode after DropEncoder: %v", err)
	}
}

// BenchmarkVAEEncode512 encodes one 512x512 image with the full-size VAE
// (random weights), the cost of caching one training latent.
func BenchmarkVAEEncode512(b *testing.B) {
	v, err := LoadVAE(RandomWeights(1), SD15VAEConfig())
	if err != nil {
		b.Fatal(err)
	}
	img := Noise(rand.New(rand.NewPCG(1, 2)), 1, 3, 512, 512)
	defer reportCPUTime(b)()
	for b.Loop() {
		if _, err := v.Encode(img, nil); err != nil {
			b.Fatal(err)
		}
	}
	peakRSS(b)
}

// BenchmarkVAEDecode512 decodes one 64x64 latent to a 512x512 image, the
// last step of every generated image.
func BenchmarkVAEDecode512(b *testing.B) {
	v, err := LoadVAE(RandomWeights(1), SD15VAEConfig())
	if err != nil {
		b.Fatal(err)
	}
	z := Noise(rand.New(rand.NewPCG(1, 2)), 1, 4, 64, 64)
	defer reportCPUTime(b)()
	for b.Loop() {
		if _, err := v.Decode(z); err != nil {
			b.Fatal(err)
		}
	}
	peakRSS(b)
}
