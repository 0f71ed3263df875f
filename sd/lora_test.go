package sd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"lorastudio/nn"
)

// tinyLoRALayout is the layout of the fixtures' tiny UNet
// (testdata/tiny_sd1_ldm*.safetensors): block_out_channels [32, 64],
// CrossAttnDownBlock2D + DownBlock2D, context 32; CLIP width 32, 2 layers.
func tinyLoRALayout() LoRALayout {
	return LoRALayout{
		UNet: UNetConfig{
			InChannels: 4, OutChannels: 4,
			Channels:       []int{32, 64},
			Attention:      []bool{true, false},
			LayersPerBlock: 2, TransformerDepth: 1, ContextDim: 32, Heads: 8,
		},
		TextLayers: 2, TextWidth: 32, TextMLP: 128,
	}
}

func TestLoRALayersSD15(t *testing.T) {
	lay := SD15LoRALayout()
	tests := []struct {
		targets LoRATargets
		te      bool
		want    int
	}{
		{LoRACrossAttention, false, 16 * 4},
		{LoRAAttention, false, 16 * 8},
		{LoRAKohyaFull, false, 16 * 12},
		{LoRACrossAttention, true, 16*4 + 12*6},
		{LoRAKohyaFull, true, 192 + 72},
	}
	for _, tt := range tests {
		layers, err := lay.Layers(tt.targets, tt.te)
		if err != nil {
			t.Fatal(err)
		}
		if len(layers) != tt.want {
			t.Errorf("%s te=%v: %d layers, want %d", tt.targets, tt.te, len(layers), tt.want)
		}
	}
	layers, _ := lay.Layers(LoRAKohyaFull, true)
	want := map[string]LoRALayer{
		"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k":     {In: 768, Out: 320},
		"lora_unet_mid_block_attentions_0_proj_in":                                 {In: 1280, Out: 1280, Conv: true},
		"lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_0_proj":    {In: 320, Out: 2560},
		"lora_unet_up_blocks_1_attentions_1_transformer_blocks_0_ff_net_2":         {In: 5120, Out: 1280},
		"lora_unet_down_blocks_1_attentions_1_transformer_blocks_0_attn1_to_out_0": {In: 640, Out: 640},
		"lora_te_text_model_encoder_layers_11_mlp_fc1":                             {In: 768, Out: 3072},
		"lora_te_text_model_encoder_layers_0_self_attn_q_proj":                     {In: 768, Out: 768},
	}
	found := 0
	for _, l := range layers {
		w, ok := want[l.KohyaName()]
		if !ok {
			continue
		}
		found++
		if l.In != w.In || l.Out != w.Out || l.Conv != w.Conv {
			t.Errorf("%s: %dx%d conv=%v, want %dx%d conv=%v", l.KohyaName(), l.Out, l.In, l.Conv, w.Out, w.In, w.Conv)
		}
	}
	if found != len(want) {
		t.Errorf("found %d of the %d expected layers", found, len(want))
	}
}

func TestParseLoRATargets(t *testing.T) {
	tests := []struct {
		in   string
		want LoRATargets
		ok   bool
	}{
		{"", LoRACrossAttention, true},
		{"cross_attention", LoRACrossAttention, true},
		{"Cross-Attention", LoRACrossAttention, true},
		{"attention", LoRAAttention, true},
		{"kohya full", LoRAKohyaFull, true},
		{"kohya_full", LoRAKohyaFull, true},
		{"conv", "", false},
	}
	for _, tt := range tests {
		got, err := ParseLoRATargets(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseLoRATargets(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestNewLoRANetworkInit(t *testing.T) {
	layers, err := SD15LoRALayout().Layers(LoRACrossAttention, false)
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewLoRANetwork(layers, 8, 0, 42)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.NumParams(), 795648; got != want {
		t.Errorf("%d parameters, want %d", got, want)
	}
	for _, m := range n.Modules {
		if m.Alpha != 8 || m.Scale() != 1 {
			t.Fatalf("%s: alpha %v scale %v, want alpha 0 to mean rank", m.KohyaName(), m.Alpha, m.Scale())
		}
		for _, v := range m.Up.Data {
			if v != 0 {
				t.Fatalf("%s: lora_up not zero", m.KohyaName())
			}
		}
		bound := 1 / math.Sqrt(float64(m.In))
		var maxAbs, sum, sumSq float64
		for _, v := range m.Down.Data {
			maxAbs = max(maxAbs, math.Abs(float64(v)))
			sum += float64(v)
			sumSq += float64(v) * float64(v)
		}
		if maxAbs > bound || maxAbs < 0.95*bound {
			t.Errorf("%s: max |down| %v, want just under the bound %v", m.KohyaName(), maxAbs, bound)
		}
		// U(-b, b) has variance b^2/3.
		count := float64(len(m.Down.Data))
		if v := sumSq/count - (sum/count)*(sum/count); math.Abs(v/(bound*bound/3)-1) > 0.1 {
			t.Errorf("%s: variance %v, want %v", m.KohyaName(), v, bound*bound/3)
		}
	}
	again, _ := NewLoRANetwork(layers, 8, 0, 42)
	other, _ := NewLoRANetwork(layers, 8, 0, 43)
	if !slices.Equal(again.Modules[5].Down.Data, n.Modules[5].Down.Data) {
		t.Error("the same seed gave different weights")
	}
	if slices.Equal(other.Modules[5].Down.Data, n.Modules[5].Down.Data) {
		t.Error("different seeds gave the same weights")
	}
	for _, bad := range []struct {
		rank  int
		alpha float32
	}{{0, 1}, {-1, 1}, {4, -1}, {4, float32(math.NaN())}} {
		if _, err := NewLoRANetwork(layers, bad.rank, bad.alpha, 1); err == nil {
			t.Errorf("rank %d alpha %v: no error", bad.rank, bad.alpha)
		}
	}
}

// TestReadKohyaFixture reads the reference LoRA made with kohya's module
// naming: rank 4, alpha 2, attn2 of the tiny UNet's 6 transformer blocks.
func TestReadKohyaFixture(t *testing.T) {
	f, err := ReadLoRAFile("testdata/lora_tiny_kohya.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["ss_network_dim"] != "4" || f.Metadata["ss_network_alpha"] != "2.0" {
		t.Errorf("metadata %v", f.Metadata)
	}
	all, err := tinyLoRALayout().AllLayers()
	if err != nil {
		t.Fatal(err)
	}
	n, err := f.Network(all)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tinyLoRALayout().Layers(LoRACrossAttention, false)
	if len(n.Modules) != len(want) {
		t.Fatalf("%d modules, want %d", len(n.Modules), len(want))
	}
	for i, m := range n.Modules {
		if m.Module != want[i].Module || m.Rank != 4 || m.Alpha != 2 || m.Scale() != 0.5 {
			t.Errorf("module %d: %s rank %d alpha %v, want %s rank 4 alpha 2", i, m.Module, m.Rank, m.Alpha, want[i].Module)
		}
	}
	// Merging must reproduce y = W x + scale * up(down(x)).
	m := n.Module("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k")
	if m == nil {
		t.Fatal("module not found by diffusers path")
	}
	checkMerge(t, m, 0.7)
}

func checkMerge(t *testing.T, m *LoRAModule, mult float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	w := nn.New(m.Out, m.In)
	x := make([]float32, m.In)
	for i := range w.Data {
		w.Data[i] = float32(rng.NormFloat64())
	}
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	want := make([]float64, m.Out)
	down := make([]float64, m.Rank)
	for r := range m.Rank {
		for i := range m.In {
			down[r] += float64(m.Down.Data[r*m.In+i]) * float64(x[i])
		}
	}
	for o := range m.Out {
		for i := range m.In {
			want[o] += float64(w.Data[o*m.In+i]) * float64(x[i])
		}
		var up float64
		for r := range m.Rank {
			up += float64(m.Up.Data[o*m.Rank+r]) * down[r]
		}
		want[o] += float64(mult) * float64(m.Scale()) * up
	}
	if err := m.AddDelta(w, mult); err != nil {
		t.Fatal(err)
	}
	var worst float64
	for o := range m.Out {
		var got float64
		for i := range m.In {
			got += float64(w.Data[o*m.In+i]) * float64(x[i])
		}
		worst = max(worst, math.Abs(got-want[o]))
	}
	if worst > 1e-4 {
		t.Errorf("%s: merged output differs from the injected one by %g", m.KohyaName(), worst)
	}
}

func TestMergeShapes(t *testing.T) {
	layers, _ := tinyLoRALayout().Layers(LoRAKohyaFull, true)
	n, err := NewLoRANetwork(layers, 4, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, m := range n.Modules {
		for i := range m.Up.Data {
			m.Up.Data[i] = float32(rng.NormFloat64())
		}
	}
	for _, name := range []string{
		"mid_block.attentions.0.proj_in", // 1x1 conv
		"up_blocks.1.attentions.1.transformer_blocks.0.ff.net.2",
		"text_model.encoder.layers.1.mlp.fc1",
	} {
		checkMerge(t, n.Module(name), 0.5)
	}
	// Merge goes through the callback for every module and rejects a wrong shape.
	calls := 0
	err = n.Merge(func(l LoRALayer) (*nn.Tensor, error) {
		calls++
		if l.Conv {
			return nn.New(l.Out, l.In, 1, 1), nil
		}
		return nn.New(l.Out, l.In), nil
	}, 1)
	if err != nil || calls != len(n.Modules) {
		t.Errorf("Merge: %v after %d calls, want nil after %d", err, calls, len(n.Modules))
	}
	err = n.Merge(func(l LoRALayer) (*nn.Tensor, error) { return nn.New(l.In, l.Out+1), nil }, 1)
	if err == nil || !strings.Contains(err.Error(), "lora_") {
		t.Errorf("wrong weight shape: error %v, want one naming the module", err)
	}
}

func TestSaveRoundTrip(t *testing.T) {
	lay := SD15LoRALayout()
	for _, dtype := range []string{"F16", "F32", "BF16"} {
		t.Run(dtype, func(t *testing.T) {
			layers, _ := lay.Layers(LoRAAttention, true)
			n, err := NewLoRANetwork(layers, 4, 1, 9)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 6))
			for _, m := range n.Modules {
				for i := range m.Up.Data {
					m.Up.Data[i] = float32(rng.NormFloat64()) * 0.01
				}
			}
			path := filepath.Join(t.TempDir(), "out.safetensors")
			meta := map[string]string{"ss_network_dim": "4", "ss_output_name": "out", "modelspec.title": "out"}
			if err := n.Save(path, dtype, meta); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(raw[8:], []byte(`{"`)) {
				t.Errorf("header starts %q, want {\"", raw[8:10])
			}
			st, err := nn.OpenSafetensors(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range st.Names() {
				if dt, _, _ := st.Info(name); dt != dtype {
					t.Errorf("%s: dtype %s, want %s (alpha is cast too)", name, dt, dtype)
				}
			}
			if dt, shape, ok := st.Info("lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha"); !ok || len(shape) != 0 {
				t.Errorf("alpha: %s %v %v, want a 0-d tensor", dt, shape, ok)
			}
			got := st.Metadata()
			st.Close()
			dataHash, err := SafetensorsDataHash(path)
			if err != nil {
				t.Fatal(err)
			}
			if got["sshs_model_hash"] != dataHash || got["ss_output_name"] != "out" {
				t.Errorf("sshs_model_hash %q, the file's data hash %q", got["sshs_model_hash"], dataHash)
			}
			if len(got["sshs_legacy_hash"]) != 8 {
				t.Errorf("sshs_legacy_hash %q", got["sshs_legacy_hash"])
			}

			f, err := ReadLoRAFile(path)
			if err != nil {
				t.Fatal(err)
			}
			back, err := f.Network(layers)
			if err != nil {
				t.Fatal(err)
			}
			tol := map[string]float64{"F32": 0, "F16": 1.0 / 1024, "BF16": 1.0 / 128}[dtype]
			for i, m := range back.Modules {
				o := n.Modules[i]
				if m.Module != o.Module || m.Rank != o.Rank || m.Alpha != o.Alpha || !slices.Equal(m.Down.Shape, o.Down.Shape) {
					t.Fatalf("module %d: %s rank %d alpha %v %v, want %s rank %d alpha %v %v", i, m.Module, m.Rank, m.Alpha, m.Down.Shape, o.Module, o.Rank, o.Alpha, o.Down.Shape)
				}
				for j, v := range m.Down.Data {
					if d := math.Abs(float64(v - o.Down.Data[j])); d > tol*math.Abs(float64(o.Down.Data[j]))+1e-7 {
						t.Fatalf("%s down[%d]: %v, saved %v", m.Module, j, v, o.Down.Data[j])
					}
				}
			}
		})
	}
}

// TestLegacyHashMatchesSSOnlyFile checks sshs_legacy_hash against the
// definition: the legacy hash of the file written with only the ss_*
// metadata. The network is larger than 1 MiB so the hashed window lies in
// the tensor data.
func TestLegacyHashMatchesSSOnlyFile(t *testing.T) {
	layers, _ := SD15LoRALayout().Layers(LoRACrossAttention, false)
	n, _ := NewLoRANetwork(layers, 8, 1, 3)
	dir := t.TempDir()
	meta := map[string]string{"ss_network_dim": "8", "ss_tag_frequency": `{"10_sks dog": {"dog": 3, "é": 1}}`, "modelspec.title": "x"}
	path := filepath.Join(dir, "a.safetensors")
	if err := n.Save(path, "F16", meta); err != nil {
		t.Fatal(err)
	}
	ssOnly := filepath.Join(dir, "ss.safetensors")
	if err := nn.WriteSafetensors(ssOnly, n.Tensors(), "F16", map[string]string{"ss_network_dim": "8", "ss_tag_frequency": meta["ss_tag_frequency"]}); err != nil {
		t.Fatal(err)
	}
	fd, err := os.Open(ssOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	want, err := LegacyHash(bufio.NewReader(fd))
	if err != nil {
		t.Fatal(err)
	}
	st, err := nn.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := st.Metadata()["sshs_legacy_hash"]; got != want {
		t.Errorf("sshs_legacy_hash %s, want %s", got, want)
	}
}

func TestLegacyHashShortInput(t *testing.T) {
	got, err := LegacyHash(bytes.NewReader(make([]byte, 100)))
	if err != nil || got != "e3b0c442" { // SHA-256 of nothing
		t.Errorf("LegacyHash(short) = %q, %v", got, err)
	}
	data := make([]byte, 0x100000+0x10000+5)
	for i := range data {
		data[i] = byte(i * 7)
	}
	a, _ := LegacyHash(bytes.NewReader(data))
	data[0x100000+0x10000] ^= 1 // outside the window
	b, _ := LegacyHash(bytes.NewReader(data))
	data[0x100000] ^= 1 // inside
	c, _ := LegacyHash(bytes.NewReader(data))
	if a != b || a == c {
		t.Errorf("window: %s %s %s", a, b, c)
	}
}

func TestRustJSONString(t *testing.T) {
	var b bytes.Buffer
	writeRustJSONString(&b, "a\"b\\c\n\t\x01\x7f<&>é")
	if want := `"a\"b\\c\n\t\u0001` + "\x7f<&>é\""; b.String() != want {
		t.Errorf("got %s, want %s", b.String(), want)
	}
	header, n, err := rustSafetensorsHeader(map[string]*nn.Tensor{"b": nn.New(2, 3), "a": nn.FromData([]float32{1})}, "F16", map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"__metadata__":{"k":"v"},"a":{"dtype":"F16","shape":[],"data_offsets":[0,2]},"b":{"dtype":"F16","shape":[2,3],"data_offsets":[2,14]}}`
	for len(want)%8 != 0 {
		want += " "
	}
	if got := string(header[8:]); got != want || binary.LittleEndian.Uint64(header) != uint64(len(want)) || n != 14 {
		t.Errorf("header %q (%d data bytes), want %q", got, n, want)
	}
}

func TestReadLoRAFileErrors(t *testing.T) {
	dir := t.TempDir()
	ok := func() map[string]*nn.Tensor {
		return map[string]*nn.Tensor{
			"lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_q.lora_down.weight": nn.New(4, 1280),
			"lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_q.lora_up.weight":   nn.New(1280, 4),
			"lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_q.alpha":            nn.FromData([]float32{1}),
		}
	}
	const q = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_q"
	tests := []struct {
		name   string
		edit   func(map[string]*nn.Tensor)
		meta   map[string]string
		errHas string
	}{
		{"missing up", func(m map[string]*nn.Tensor) { delete(m, q+".lora_up.weight") }, nil, "no lora_up"},
		{"rank mismatch", func(m map[string]*nn.Tensor) { m[q+".lora_up.weight"] = nn.New(1280, 3) }, nil, "rank"},
		{"lycoris key", func(m map[string]*nn.Tensor) { m[q+".hada_w1_a"] = nn.New(4, 4) }, nil, "unsupported part"},
		{"foreign key", func(m map[string]*nn.Tensor) { m["unet.down.weight"] = nn.New(4, 4) }, nil, "not a kohya LoRA key"},
		{"sdxl te", func(m map[string]*nn.Tensor) { m["lora_te1_text_model_x.alpha"] = nn.FromData([]float32{1}) }, nil, "SDXL"},
		{"sdxl meta", func(map[string]*nn.Tensor) {}, map[string]string{"ss_base_model_version": "sdxl_base_v1-0"}, "SDXL"},
		{"sd2", func(map[string]*nn.Tensor) {}, map[string]string{"ss_v2": "True"}, "2.x"},
		{"3x3 conv", func(m map[string]*nn.Tensor) { m[q+".lora_down.weight"] = nn.New(4, 1280, 3, 3) }, nil, "3x3"},
		{"vector alpha", func(m map[string]*nn.Tensor) { m[q+".alpha"] = nn.New(2) }, nil, "scalar"},
	}
	for i, tt := range tests {
		tensors := ok()
		tt.edit(tensors)
		path := filepath.Join(dir, strconv.Itoa(i)+".safetensors")
		if err := nn.WriteSafetensors(path, tensors, "F32", tt.meta); err != nil {
			t.Fatal(err)
		}
		_, err := ReadLoRAFile(path)
		if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want one naming the file and containing %q", tt.name, err, tt.errHas)
		}
	}
	if _, err := ReadLoRAFile(filepath.Join(dir, "missing.safetensors")); err == nil {
		t.Error("missing file: no error")
	}
	notST := filepath.Join(dir, "x.safetensors")
	os.WriteFile(notST, []byte("hello world, not a safetensors file"), 0o644)
	if _, err := ReadLoRAFile(notST); err == nil {
		t.Error("garbage file: no error")
	}

	// A well-formed file whose modules do not fit the model.
	path := filepath.Join(dir, "ok.safetensors")
	if err := nn.WriteSafetensors(path, ok(), "F16", nil); err != nil {
		t.Fatal(err)
	}
	f, err := ReadLoRAFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tiny, _ := tinyLoRALayout().AllLayers()
	if _, err := f.Network(tiny); err == nil || !strings.Contains(err.Error(), "1280") {
		t.Errorf("SD1.5 LoRA on the tiny model: error %v, want a shape mismatch", err)
	}
	sd15, _ := SD15LoRALayout().Layers(LoRAAttention, false)
	if _, err := f.Network(sd15[:3]); err == nil || !strings.Contains(err.Error(), q) {
		t.Errorf("module outside the layer list: error %v", err)
	}
}

func TestA1111LayerName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q", "diffusion_model_input_blocks_1_1_transformer_blocks_0_attn2_to_q"},
		{"lora_unet_down_blocks_2_attentions_1_proj_in", "diffusion_model_input_blocks_8_1_proj_in"},
		{"lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_2", "diffusion_model_middle_block_1_transformer_blocks_0_ff_net_2"},
		{"lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0", "diffusion_model_output_blocks_3_1_transformer_blocks_0_attn1_to_out_0"},
		{"lora_unet_up_blocks_3_attentions_2_proj_out", "diffusion_model_output_blocks_11_1_proj_out"},
		{"lora_te_text_model_encoder_layers_11_mlp_fc2", "transformer_text_model_encoder_layers_11_mlp_fc2"},
		{"lora_unet_down_blocks_1_resnets_0_conv1", "diffusion_model_input_blocks_4_0_in_layers_2"},
		{"lora_unet_mid_block_resnets_1_time_emb_proj", "diffusion_model_middle_block_2_emb_layers_1"},
		{"lora_unet_up_blocks_0_upsamplers_0_conv", "diffusion_model_output_blocks_2_1_conv"},
		{"lora_unet_up_blocks_2_upsamplers_0_conv", "diffusion_model_output_blocks_8_2_conv"},
		{"lora_unet_down_blocks_1_downsamplers_0_conv", "diffusion_model_input_blocks_6_0_op"},
		{"lora_unet_time_embedding_linear_2", "diffusion_model_time_embed_2"},
		{"lora_unet_conv_in", "diffusion_model_input_blocks_0_0"},
		{"something_else", "something_else"},
	}
	for _, tt := range tests {
		if got := A1111LayerName(tt.in); got != tt.want {
			t.Errorf("A1111LayerName(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// readKeyList reads testdata/sd15-keys.txt: "key [d0, d1, ...]" per line.
func readKeyList(t *testing.T, path string) map[string][]int {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		name, dims, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		var shape []int
		for _, d := range strings.Split(strings.Trim(dims, "[]"), ",") {
			if d = strings.TrimSpace(d); d == "" {
				continue
			}
			v, err := strconv.Atoi(d)
			if err != nil {
				t.Fatalf("%s: bad line %q", path, line)
			}
			shape = append(shape, v)
		}
		keys[name] = shape
	}
	return keys
}

func fileShapes(t *testing.T, path string) map[string][]int {
	t.Helper()
	st, err := nn.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	shapes := map[string][]int{}
	for _, name := range st.Names() {
		_, shape, _ := st.Info(name)
		shapes[name] = shape
	}
	return shapes
}

// TestA1111ResolvesSavedFiles saves a LoRA for every target option (with and
// without the text encoder) and checks that every key maps under
// AUTOMATIC1111's name conversion to a weight of SD 1.5 with the right shape.
func TestA1111ResolvesSavedFiles(t *testing.T) {
	sd15 := readKeyList(t, "testdata/sd15-keys.txt")
	if len(sd15) != 1130 {
		t.Fatalf("%d SD 1.5 keys, want 1130", len(sd15))
	}
	dir := t.TempDir()
	for _, targets := range []LoRATargets{LoRACrossAttention, LoRAAttention, LoRAKohyaFull} {
		for _, te := range []bool{false, true} {
			layers, err := SD15LoRALayout().Layers(targets, te)
			if err != nil {
				t.Fatal(err)
			}
			n, err := NewLoRANetwork(layers, 2, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, string(targets)+strconv.FormatBool(te)+".safetensors")
			if err := n.Save(path, "F16", nil); err != nil {
				t.Fatal(err)
			}
			shapes := fileShapes(t, path)
			if len(shapes) != 3*len(layers) {
				t.Errorf("%s te=%v: %d keys, want %d", targets, te, len(shapes), 3*len(layers))
			}
			for _, l := range layers {
				for _, k := range []string{".lora_down.weight", ".lora_up.weight", ".alpha"} {
					if _, ok := shapes[l.KohyaName()+k]; !ok {
						t.Errorf("%s te=%v: no key %s", targets, te, l.KohyaName()+k)
					}
				}
			}
			if err := A1111Check(shapes, sd15); err != nil {
				t.Errorf("%s te=%v: %v", targets, te, err)
			}
		}
	}
	// And a mistake is caught: a wrong name and a wrong shape.
	bad := map[string][]int{
		"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_kk.lora_down.weight": {2, 768},
		"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_kk.lora_up.weight":   {320, 2},
		"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight":  {2, 320},
		"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight":    {320, 2},
	}
	err := A1111Check(bad, sd15)
	if err == nil || !strings.Contains(err.Error(), "to_kk") || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("A1111Check on bad keys: %v", err)
	}
}

// TestA1111ResolvesFixture checks the reference kohya LoRA against the keys
// of the tiny original-LDM checkpoint it was made for.
func TestA1111ResolvesFixture(t *testing.T) {
	ckpt := fileShapes(t, "testdata/tiny_sd1_ldm.fp16.safetensors")
	if err := A1111CheckFiles("testdata/lora_tiny_kohya.safetensors", "testdata/tiny_sd1_ldm.fp16.safetensors"); err != nil {
		t.Error(err)
	}
	// The tiny UNet's LoRA does not fit the SD1.5-shaped one (other widths).
	err := A1111CheckFiles("testdata/lora_tiny_kohya.safetensors", "testdata/sd15like_unet_ldm.fp16.safetensors")
	if err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("tiny LoRA on the SD1.5-shaped UNet: %v", err)
	}
	layers, _ := tinyLoRALayout().AllLayers()
	n, err := NewLoRANetwork(layers, 2, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := n.Save(path, "F16", nil); err != nil {
		t.Fatal(err)
	}
	if err := A1111Check(fileShapes(t, path), ckpt); err != nil {
		t.Error(err)
	}
}

func FuzzA1111LayerName(f *testing.F) {
	f.Add("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q")
	f.Add("lora_unet_up_blocks_99999999999999999999_attentions_0_x")
	f.Add("lora_te_text_model_encoder_layers_3_self_attn_q_proj")
	f.Fuzz(func(t *testing.T, name string) {
		a, b := A1111LayerName(name), A1111LayerName(name)
		if a != b {
			t.Fatalf("not deterministic: %q %q", a, b)
		}
		A1111Resolve(name, map[string]string{a: "w"})
	})
}

func FuzzReadLoRAFile(f *testing.F) {
	seed, err := os.ReadFile("testdata/lora_tiny_kohya.safetensors")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:200])
	f.Add([]byte("{}"))
	layers, _ := tinyLoRALayout().AllLayers()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "x.safetensors")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		lf, err := ReadLoRAFile(path)
		if err != nil {
			return
		}
		if n, err := lf.Network(layers); err == nil {
			for _, m := range n.Modules {
				if len(m.Down.Data) != m.Rank*m.In || len(m.Up.Data) != m.Out*m.Rank {
					t.Fatalf("%s: inconsistent module", m.KohyaName())
				}
			}
		}
	})
}
