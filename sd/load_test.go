package sd

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"lorastudio/nn"
)

// TestLoadSingleFileMatchesDiffusersFolder checks the LDM-to-diffusers key
// mapping on real converter output: the single file and the diffusers
// folder hold the same model, so every part must list the same names and
// give bit-identical weights.
func TestLoadSingleFileMatchesDiffusersFolder(t *testing.T) {
	folder := openCheckpoint(t, "testdata/tiny_diffusers", AllParts)
	for _, path := range []string{"testdata/tiny_sd1_ldm.safetensors", "testdata/tiny_sd1_ldm.fp16.safetensors"} {
		single := openCheckpoint(t, path, AllParts)
		if single.Layout != LayoutSingleFile || folder.Layout != LayoutDiffusers {
			t.Fatalf("layouts %q and %q", single.Layout, folder.Layout)
		}
		for _, pp := range []struct {
			name      string
			got, want *Part
		}{{"unet", single.UNet, folder.UNet}, {"vae", single.VAE, folder.VAE}, {"text encoder", single.TextEncoder, folder.TextEncoder}} {
			got, want := pp.got.Names(), pp.want.Names()
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: %d names, folder has %d; only in file: %v; only in folder: %v", path, pp.name, len(got), len(want),
					difference(got, want), difference(want, got))
				continue
			}
			for _, n := range want {
				if strings.HasSuffix(n, "position_ids") {
					continue
				}
				ws, _ := pp.want.Shape(n)
				a, err := pp.got.Tensor(n, ws...)
				if err != nil {
					t.Fatal(err)
				}
				b, err := pp.want.Tensor(n, ws...)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(a.Data, b.Data) {
					t.Fatalf("%s %s %s: values differ from the diffusers folder", path, pp.name, n)
				}
			}
		}
		if !sameConfig(single.Config, folder.Config) {
			t.Errorf("%s: config %+v, folder %+v", path, single.Config, folder.Config)
		}
	}
	want := ModelConfig{
		UNet: UNetConfig{InChannels: 4, OutChannels: 4, Channels: []int{32, 64}, Attention: []bool{true, false},
			LayersPerBlock: 2, TransformerDepth: 1, ContextDim: 32, Heads: 8},
		VAE:  VAEConfig{InChannels: 3, OutChannels: 3, LatentChannels: 4, Channels: []int{32, 32, 32, 64}, LayersPerBlock: 2},
		CLIP: CLIPConfig{VocabSize: 1024, Positions: 77, Width: 32, Layers: 2, Heads: 4, MLP: 128},
	}
	if !sameConfig(folder.Config, want) {
		t.Errorf("config %+v, want %+v", folder.Config, want)
	}
}

func sameConfig(a, b ModelConfig) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// sd15Keys reads testdata/sd15-keys.txt, SD 1.5's single-file key list with
// shapes ("key [d0, d1]" per line).
func sd15Keys(t testing.TB) map[string][]int {
	t.Helper()
	f, err := os.Open("testdata/sd15-keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, dims, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("bad line %q", sc.Text())
		}
		var shape []int
		for _, d := range strings.Split(strings.Trim(dims, "[]"), ",") {
			if d = strings.TrimSpace(d); d != "" {
				n, err := strconv.Atoi(d)
				if err != nil {
					t.Fatalf("bad line %q", sc.Text())
				}
				shape = append(shape, n)
			}
		}
		keys[key] = shape
	}
	return keys
}

// shapeRecorder is a WeightSource that records what a module tree asks for
// and hands out shape-only tensors, so full-size trees bind without memory.
type shapeRecorder map[string][]int

func (r shapeRecorder) Tensor(name string, want ...int) (*nn.Tensor, error) {
	r[name] = want
	return &nn.Tensor{Shape: want}, nil
}

// TestLoadSD15KeyMapping maps SD 1.5's 1,130 single-file keys and checks
// them against what the full-size UNet, VAE and text encoder bind: the same
// names, with shapes equal up to size-1 dimensions.
func TestLoadSD15KeyMapping(t *testing.T) {
	keys := sd15Keys(t)
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	m, err := mapLDMKeys(names)
	if err != nil {
		t.Fatal(err)
	}
	shapeOf := func(part map[string]string) func(string) ([]int, bool) {
		return func(n string) ([]int, bool) {
			k, ok := part[n]
			return keys[k], ok
		}
	}
	ucfg, err := UNetConfigFromShapes(shapeOf(m.unet))
	if err != nil {
		t.Fatal(err)
	}
	vcfg, err := VAEConfigFromShapes(shapeOf(m.vae))
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := CLIPConfigFromShapes(shapeOf(m.text), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !sameConfig(ModelConfig{ucfg, vcfg, ccfg}, SD15Config()) {
		t.Fatalf("detected %+v, want %+v", ModelConfig{ucfg, vcfg, ccfg}, SD15Config())
	}
	unet, _ := NewUNet(ucfg)
	vae, _ := NewVAE(vcfg)
	clip, _ := NewCLIPTextModel(ccfg)
	for _, part := range []struct {
		name   string
		module any
		keys   map[string]string
		count  int
	}{{"unet", unet, m.unet, 686}, {"vae", vae, m.vae, 248}, {"text encoder", clip, m.text, 196}} {
		rec := shapeRecorder{}
		if err := Bind(rec, "", part.module); err != nil {
			t.Fatal(err)
		}
		if len(part.keys) != part.count {
			t.Errorf("%s: %d keys mapped, want %d", part.name, len(part.keys), part.count)
		}
		for n, want := range rec {
			k, ok := part.keys[n]
			if !ok {
				t.Errorf("%s: the model needs %s, no key maps to it", part.name, n)
				continue
			}
			if !slices.Equal(squeeze(keys[k]), squeeze(want)) {
				t.Errorf("%s: %s (%s) is %v in the file, the model wants %v", part.name, n, k, keys[k], want)
			}
		}
		for n, k := range part.keys {
			if _, ok := rec[n]; !ok && !strings.HasSuffix(n, "position_ids") {
				t.Errorf("%s: %s maps to %s, which the model does not use", part.name, k, n)
			}
		}
	}
}

// writeFile writes tensors as a safetensors file in the test's temp dir.
func writeFile(t testing.TB, name string, tensors map[string]*nn.Tensor) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := nn.WriteSafetensors(path, tensors, "F32", nil); err != nil {
		t.Fatal(err)
	}
	return path
}

// fixtureTensors reads every floating-point tensor of a fixture file.
func fixtureTensors(t testing.TB, name string) map[string]*nn.Tensor {
	t.Helper()
	f := fixture(t, name)
	out := map[string]*nn.Tensor{}
	for _, k := range f.Names() {
		if dt, _, _ := f.Info(k); dt == "I64" {
			continue
		}
		out[k] = fixtureTensor(t, f, k)
	}
	return out
}

// edited returns the tiny single-file checkpoint with edit applied.
func edited(t testing.TB, edit func(map[string]*nn.Tensor)) string {
	t.Helper()
	ts := fixtureTensors(t, "tiny_sd1_ldm.safetensors")
	edit(ts)
	return writeFile(t, "edited.safetensors", ts)
}

func tiny(shape ...int) *nn.Tensor { return nn.New(shape...) }

func TestOpenRefusesOtherModels(t *testing.T) {
	const unetKey = ldmUNetPrefix + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
	tests := []struct {
		name string
		path func(t *testing.T) string
		want string // in the error message
	}{
		{"sdxl", func(t *testing.T) string {
			return writeFile(t, "sdxl.safetensors", map[string]*nn.Tensor{
				"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": tiny(4, 2),
				ldmUNetPrefix + "label_emb.0.0.weight":                                             tiny(2, 2),
				ldmUNetPrefix + "input_blocks.0.0.weight":                                          tiny(2, 4, 3, 3),
			})
		}, "SDXL"},
		{"sd2 openclip", func(t *testing.T) string {
			return writeFile(t, "sd2.safetensors", map[string]*nn.Tensor{
				"cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": tiny(6, 2),
				ldmUNetPrefix + "input_blocks.0.0.weight":                            tiny(2, 4, 3, 3),
			})
		}, "2.x"},
		{"sd2 context width", func(t *testing.T) string {
			return edited(t, func(ts map[string]*nn.Tensor) { ts[unetKey] = tiny(32, 1024) })
		}, "2.x"},
		{"sd2 linear proj_in", func(t *testing.T) string {
			return edited(t, func(ts map[string]*nn.Tensor) { ts[ldmUNetPrefix+"input_blocks.1.1.proj_in.weight"] = tiny(32, 32) })
		}, "linear proj_in"},
		{"inpainting", func(t *testing.T) string {
			return edited(t, func(ts map[string]*nn.Tensor) { ts[ldmUNetPrefix+"input_blocks.0.0.weight"] = tiny(32, 9, 3, 3) })
		}, "inpainting"},
		{"lora", func(t *testing.T) string {
			return writeFile(t, "lora.safetensors", map[string]*nn.Tensor{
				"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": tiny(4, 32),
				"lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight":   tiny(32, 4),
				"lora_unet_down_blocks_0_attentions_0_proj_in.alpha":            tiny(),
			})
		}, "LoRA"},
		{"peft lora", func(t *testing.T) string {
			return writeFile(t, "peft.safetensors", map[string]*nn.Tensor{"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": tiny(4, 32)})
		}, "LoRA"},
		{"vae only", func(t *testing.T) string { return vaeOnlyFile(t) }, "VAE-only"},
		{"unet only", func(t *testing.T) string {
			ts := fixtureTensors(t, "tiny_sd1_ldm.safetensors")
			for k := range ts {
				if !strings.HasPrefix(k, ldmUNetPrefix) {
					delete(ts, k)
				}
			}
			return writeFile(t, "unet.safetensors", ts)
		}, "has the UNet but no VAE, text encoder"},
		{"flux", func(t *testing.T) string {
			return writeFile(t, "flux.safetensors", map[string]*nn.Tensor{"double_blocks.0.img_attn.qkv.weight": tiny(6, 2)})
		}, "Flux"},
		{"sd3", func(t *testing.T) string {
			return writeFile(t, "sd3.safetensors", map[string]*nn.Tensor{ldmUNetPrefix + "joint_blocks.0.x_block.attn.qkv.weight": tiny(6, 2)})
		}, "Stable Diffusion 3"},
		{"embedding", func(t *testing.T) string {
			return writeFile(t, "ti.safetensors", map[string]*nn.Tensor{"emb_params": tiny(2, 768)})
		}, "textual-inversion"},
		{"diffusers unet file", func(t *testing.T) string {
			return writeFile(t, "diffusion_pytorch_model.safetensors", map[string]*nn.Tensor{"down_blocks.0.resnets.0.conv1.weight": tiny(2, 2, 3, 3)})
		}, "diffusers UNet weights file"},
		{"not sd", func(t *testing.T) string {
			return writeFile(t, "other.safetensors", map[string]*nn.Tensor{"backbone.layer1.weight": tiny(2, 2)})
		}, "backbone.layer1.weight"},
		{"empty", func(t *testing.T) string { return writeFile(t, "empty.safetensors", map[string]*nn.Tensor{}) }, "no tensors"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path(t)
			c, err := Open(path)
			if err == nil {
				c.Close()
				t.Fatal("opened")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, path) {
				t.Errorf("error %q does not name %q and the file", msg, tc.want)
			}
		})
	}
}

func TestOpenRefusesPickles(t *testing.T) {
	dir := t.TempDir()
	zipPickle := []byte("PK\x03\x04archive/data.pkl")
	rawPickle := []byte{0x80, 0x02, 'c', 'c', 'o', 'l'}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"model.ckpt", []byte("{}")},
		{"model.pt", zipPickle},
		{"model.pth", rawPickle},
		{"model.bin", zipPickle},
		{"disguised.safetensors", zipPickle},
		{"raw.safetensors", rawPickle},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path)
		var pe *PickleError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "safetensors") || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// A diffusers folder whose UNet is only a pickle.
	folder := copyFolder(t, "testdata/tiny_diffusers")
	os.Remove(filepath.Join(folder, "unet", "diffusion_pytorch_model.safetensors"))
	os.WriteFile(filepath.Join(folder, "unet", "diffusion_pytorch_model.bin"), zipPickle, 0o644)
	_, err := Open(folder)
	var pe *PickleError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "diffusion_pytorch_model.bin") {
		t.Errorf("diffusers pickle: %v", err)
	}
}

func TestOpenBrokenFiles(t *testing.T) {
	raw, err := os.ReadFile("testdata/tiny_sd1_ldm.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", raw[:len(raw)-1000], "truncated"},
		{"header only", raw[:4000], "truncated"},
		{"tiny", raw[:5], "too short"},
		{"garbage", []byte("not a model at all, just some text that is long enough"), "safetensors"},
	} {
		path := filepath.Join(dir, tc.name+".safetensors")
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing file: %v", err)
	}
}

func TestLoadMissingAndMisshapenWeights(t *testing.T) {
	const (
		fc1  = "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc1.weight"
		attn = "first_stage_model.decoder.mid.attn_1.v.weight"
		res  = "first_stage_model.encoder.down.1.block.0.conv1.weight"
	)
	for _, tc := range []struct {
		name string
		edit func(map[string]*nn.Tensor)
		load func(c *Checkpoint) error
		want []string
	}{
		{"missing text weight", func(ts map[string]*nn.Tensor) { delete(ts, fc1) }, loadText,
			[]string{"text_model.encoder.layers.1.mlp.fc1.weight", "missing"}},
		{"misshapen text weight", func(ts map[string]*nn.Tensor) { ts[fc1] = tiny(128, 31) }, loadText,
			[]string{fc1, "[128 31]", "[128 32]"}},
		{"missing vae attention", func(ts map[string]*nn.Tensor) { delete(ts, attn) }, loadVAE,
			[]string{"decoder.mid_block.attentions.0.to_v.weight", "missing"}},
		{"misshapen vae conv", func(ts map[string]*nn.Tensor) { ts[res] = tiny(32, 32, 3, 1) }, loadVAE,
			[]string{res, "[32 32 3 1]", "[32 32 3 3]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := edited(t, tc.edit)
			c, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = tc.load(c)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func loadText(c *Checkpoint) error {
	_, err := LoadCLIPTextModel(c.TextEncoder, c.Config.CLIP)
	return err
}

func loadVAE(c *Checkpoint) error {
	_, err := LoadVAE(c.VAE, c.Config.VAE)
	return err
}

// vaeOnlyFile writes the tiny model's VAE as a standalone file with LDM
// names (encoder.down.0...), as AUTOMATIC1111's separate VAEs are.
func vaeOnlyFile(t testing.TB) string {
	ts := fixtureTensors(t, "tiny_sd1_ldm.safetensors")
	vae := map[string]*nn.Tensor{}
	for k, v := range ts {
		if rest, ok := strings.CutPrefix(k, ldmVAEPrefix); ok {
			vae[rest] = v
		}
	}
	return writeFile(t, "vae.safetensors", vae)
}

func TestOpenStandaloneVAE(t *testing.T) {
	g := fixture(t, "golden_vae.safetensors")
	c := openCheckpoint(t, vaeOnlyFile(t), PartVAE)
	if c.Parts() != PartVAE {
		t.Fatalf("parts %v", c.Parts())
	}
	v, err := LoadVAE(c.VAE, c.Config.VAE)
	if err != nil {
		t.Fatal(err)
	}
	mean, _, err := v.Moments(fixtureTensor(t, g, "image"))
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "standalone vae mean", mean, fixtureTensor(t, g, "latent_mean"), 1e-4)
}

func copyFolder(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestOpenDiffusersFolders(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(dir string)
		want string
	}{
		{"sdxl pipeline", func(dir string) {
			os.WriteFile(filepath.Join(dir, "model_index.json"), []byte(`{"_class_name": "StableDiffusionXLPipeline"}`), 0o644)
		}, "SDXL"},
		{"text_encoder_2", func(dir string) { os.Mkdir(filepath.Join(dir, "text_encoder_2"), 0o755) }, "SDXL"},
		{"flux transformer", func(dir string) { os.Mkdir(filepath.Join(dir, "transformer"), 0o755) }, "transformer"},
		{"inpainting class", func(dir string) {
			os.WriteFile(filepath.Join(dir, "model_index.json"), []byte(`{"_class_name": "StableDiffusionInpaintPipeline"}`), 0o644)
		}, "inpainting"},
		{"bad model_index", func(dir string) { os.WriteFile(filepath.Join(dir, "model_index.json"), []byte(`{`), 0o644) }, "model_index.json"},
		{"no vae", func(dir string) { os.RemoveAll(filepath.Join(dir, "vae")) }, "no VAE"},
		{"empty vae folder", func(dir string) {
			os.Remove(filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors"))
		}, "diffusion_pytorch_model.safetensors"},
		{"sharded", func(dir string) {
			os.Remove(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"))
			os.WriteFile(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors.index.json"), []byte(`{}`), 0o644)
		}, "sharded"},
		{"empty folder", func(dir string) {
			for _, s := range []string{"unet", "vae", "text_encoder", "scheduler"} {
				os.RemoveAll(filepath.Join(dir, s))
			}
		}, "not a diffusers model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFolder(t, "testdata/tiny_diffusers")
			tc.edit(dir)
			c, err := Open(dir)
			if err == nil {
				c.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name %q and the folder", err, tc.want)
			}
		})
	}
	// The fp16 variant file name is accepted, and model_index.json may be given instead of the folder.
	dir := copyFolder(t, "testdata/tiny_diffusers")
	os.Rename(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"), filepath.Join(dir, "unet", "diffusion_pytorch_model.fp16.safetensors"))
	os.WriteFile(filepath.Join(dir, "model_index.json"), []byte(`{"_class_name": "StableDiffusionPipeline"}`), 0o644)
	c, err := Open(filepath.Join(dir, "model_index.json"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestRandomWeights(t *testing.T) {
	r := RandomWeights(42)
	a, _ := r.Tensor("down_blocks.0.resnets.0.conv1.weight", 320, 320, 3, 3)
	b, _ := r.Tensor("down_blocks.0.resnets.0.conv1.weight", 320, 320, 3, 3)
	c, _ := RandomWeights(43).Tensor("down_blocks.0.resnets.0.conv1.weight", 320, 320, 3, 3)
	d, _ := r.Tensor("down_blocks.0.resnets.0.conv2.weight", 320, 320, 3, 3)
	if !slices.Equal(a.Data, b.Data) || slices.Equal(a.Data, c.Data) || slices.Equal(a.Data, d.Data) {
		t.Fatal("weights must depend on exactly the seed and the name")
	}
	var sum, sq float64
	for _, x := range a.Data {
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	n := float64(len(a.Data))
	if std, want := math.Sqrt(sq/n-(sum/n)*(sum/n)), 1/math.Sqrt(320*9); math.Abs(std/want-1) > 0.02 {
		t.Errorf("conv std %g, want %g", std, want)
	}
	for _, tc := range []struct {
		name string
		want float32
	}{{"text_model.final_layer_norm.weight", 1}, {"text_model.final_layer_norm.bias", 0},
		{"down_blocks.0.attentions.0.norm.weight", 1}, {"encoder.mid_block.attentions.0.group_norm.bias", 0}} {
		x, _ := r.Tensor(tc.name, 8)
		for _, v := range x.Data {
			if v != tc.want {
				t.Fatalf("%s = %g, want %g", tc.name, v, tc.want)
			}
		}
	}
	if _, err := r.Tensor("x.weight"); err == nil {
		t.Error("no shape accepted")
	}
	if _, err := r.Tensor("x.weight", 3, 0); err == nil {
		t.Error("zero dimension accepted")
	}
}

// TestLoadUNetMatchesDiffusers runs the UNet loaded through Open from every
// layout, the 4-level SD 1.5-shaped UNet-only file included, against
// diffusers' outputs.
func TestLoadUNetMatchesDiffusers(t *testing.T) {
	g := fixture(t, "golden_unet.safetensors")
	latents := fixtureTensor(t, g, "latents")
	ctx := fixtureTensor(t, g, "encoder_hidden_states")
	var ts []float32
	for _, v := range fixtureInts(t, g, "timesteps") {
		ts = append(ts, float32(v))
	}
	cases := []struct{ name, path, want string }{{"sd15like unet-only fp16", "testdata/sd15like_unet_ldm.fp16.safetensors", "out_sd15like"}}
	for _, fx := range checkpointFixtures {
		cases = append(cases, struct{ name, path, want string }{fx.name, fx.path, "out_tiny"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := openCheckpoint(t, tc.path, PartUNet)
			u, err := LoadUNet(c.UNet, c.Config.UNet)
			if err != nil {
				t.Fatal(err)
			}
			out, err := u.Forward(latents, ts, ctx)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, tc.want, out, fixtureTensor(t, g, tc.want), 1e-4)
		})
	}
}

func TestOpenBF16(t *testing.T) {
	ts := fixtureTensors(t, "tiny_sd1_ldm.safetensors")
	path := filepath.Join(t.TempDir(), "bf16.safetensors")
	if err := nn.WriteSafetensors(path, ts, "BF16", nil); err != nil {
		t.Fatal(err)
	}
	c := openCheckpoint(t, path, AllParts)
	const name, key = "text_model.encoder.layers.0.mlp.fc1.weight", ldmTextPrefix + "text_model.encoder.layers.0.mlp.fc1.weight"
	got, err := c.TextEncoder.Tensor(name, 128, 32)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range ts[key].Data {
		if d := math.Abs(float64(got.Data[i] - v)); d > math.Abs(float64(v))/128 {
			t.Fatalf("value %d: bf16 %g from %g", i, got.Data[i], v)
		}
	}
	if _, err := LoadModelFrom(c); err != nil {
		t.Fatal(err)
	}
}

// FuzzLDMKeyMapping feeds arbitrary key lists (one key per line) to the
// single-file key mapping: it must never panic, and every name it produces
// must be non-empty and map back to one of the keys.
func FuzzLDMKeyMapping(f *testing.F) {
	for _, seed := range []string{
		"model.diffusion_model.input_blocks.3.0.op.weight\nmodel.diffusion_model.output_blocks.2.1.conv.weight\nmodel.diffusion_model.output_blocks.5.0.in_layers.0.weight",
		"model.diffusion_model.middle_block.1.proj_in.weight\nfirst_stage_model.decoder.up.0.block.2.nin_shortcut.weight",
		"encoder.mid.attn_1.q.weight\ndecoder.up.9.upsample.conv.bias\nquant_conv.weight",
		"model.diffusion_model.output_blocks.-1.0.x\nmodel.diffusion_model.input_blocks.0.0.\nmodel.diffusion_model.time_embed.0.",
		"cond_stage_model.transformer.embeddings.token_embedding.weight",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, list string) {
		keys := strings.Split(list, "\n")
		m, err := mapLDMKeys(keys)
		if err != nil {
			return
		}
		for _, part := range []map[string]string{m.unet, m.vae, m.text} {
			for name, key := range part {
				if name == "" || !slices.Contains(keys, key) {
					t.Fatalf("name %q from key %q", name, key)
				}
			}
		}
	})
}
