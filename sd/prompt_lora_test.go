package sd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParsePromptLoRAs(t *testing.T) {
	tests := []struct {
		prompt, clean string
		refs          []LoRARef
		err           string
	}{
		{"a cat", "a cat", nil, ""},
		{"a cat, <lora:style:0.7>", "a cat, ", []LoRARef{{Name: "style", TE: 0.7, UNet: 0.7}}, ""},
		{"<lora:style>x", "x", []LoRARef{{Name: "style", TE: 1, UNet: 1}}, ""},
		{"<lora:a:0.5:0.8> and <lora:b:1:0:16>", " and ", []LoRARef{
			{Name: "a", TE: 0.5, UNet: 0.8}, {Name: "b", TE: 1, UNet: 0, Dyn: 16}}, ""},
		{"<lora:a:unet=0.3:te=0.2>", "", []LoRARef{{Name: "a", TE: 0.2, UNet: 0.3}}, ""},
		{"<lora:a:0.4:dyn=8>", "", []LoRARef{{Name: "a", TE: 0.4, UNet: 0.4, Dyn: 8}}, ""},
		{"<lora:my lora-v2.1:-0.5>", "", []LoRARef{{Name: "my lora-v2.1", TE: -0.5, UNet: -0.5}}, ""},
		{"<lyco:a:1>", "", []LoRARef{{Name: "a", TE: 1, UNet: 1}}, ""},
		{"no close <lora:a:1", "no close <lora:a:1", nil, ""},
		{"<lora::1>", "", nil, "no LoRA name"},
		{"<lora:a:strong>", "", nil, `te multiplier "strong" is not a number`},
		{"<lora:a:1:x>", "", nil, `unet multiplier "x"`},
		{"<lora:a:1:1:-2>", "", nil, `dyn "-2"`},
		{"<lora:a:1:1:1:1>", "", nil, "at most"},
		{"<lora:a:weight=1>", "", nil, `unknown argument "weight"`},
		{"<hypernet:h:1>", "", nil, `extra network "hypernet" is not supported`},
		{"<lora:a:nan>", "", nil, "not a number"},
		{"<lora:a:1:inf>", "", nil, "not a number"},
	}
	for _, tt := range tests {
		clean, refs, err := ParsePromptLoRAs(tt.prompt)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.prompt, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.prompt, err)
			continue
		}
		if clean != tt.clean || !reflect.DeepEqual(refs, tt.refs) {
			t.Errorf("%q: got %q %+v, want %q %+v", tt.prompt, clean, refs, tt.clean, tt.refs)
		}
	}
}

func FuzzParsePromptLoRAs(f *testing.F) {
	for _, s := range []string{"a cat <lora:x:0.7>", "<lora:a:1:0.5:4>", "<lora:a:te=1:unet=2>", "<x:y>", "<lora:>", "<<lora:a:1>>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prompt string) {
		clean, refs, err := ParsePromptLoRAs(prompt)
		if err != nil {
			return
		}
		if extraNetwork.MatchString(clean) && !extraNetwork.MatchString(prompt) {
			t.Fatalf("%q: clean prompt %q gained a tag", prompt, clean)
		}
		if len(clean) > len(prompt) {
			t.Fatalf("%q: clean prompt %q is longer", prompt, clean)
		}
		for _, r := range refs {
			if r.Name == "" || r.Dyn < 0 || r.TE != r.TE || r.UNet != r.UNet {
				t.Fatalf("%q: bad reference %+v", prompt, r)
			}
		}
	})
}

// writeDemoLoRA saves a LoRA for the demo model with non-zero up matrices.
func writeDemoLoRA(t *testing.T, path string, meta map[string]string) {
	t.Helper()
	layers, err := LoRALayoutOf(TinyConfig()).AllLayers()
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewLoRANetwork(layers, 2, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range n.Modules {
		for i := range m.Up.Data {
			m.Up.Data[i] = 0.01 * float32(i%7-3)
		}
	}
	if err := n.Save(path, "F32", meta); err != nil {
		t.Fatal(err)
	}
}

func TestFindAndResolveLoRAs(t *testing.T) {
	dir := t.TempDir()
	writeDemoLoRA(t, filepath.Join(dir, "style.safetensors"), map[string]string{"ss_output_name": "my_style"})
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeDemoLoRA(t, filepath.Join(dir, "sub", "my_style.safetensors"), nil)
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, err := FindLoRAs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Name != "my_style" || entries[1].Name != "style" || entries[1].Alias != "my_style" {
		t.Fatalf("entries %+v", entries)
	}
	tests := []struct{ name, want, err string }{
		{"style", "style.safetensors", ""},
		{"my_style", filepath.Join("sub", "my_style.safetensors"), ""}, // the stem wins over an alias
		{"other", "", `lora "other": no such file in the LoRA folder (have my_style, style)`},
	}
	for _, tt := range tests {
		got, err := ResolveLoRA(entries, tt.name)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%s: error %v, want %s", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got != filepath.Join(dir, tt.want) {
			t.Errorf("%s: %s %v, want %s", tt.name, got, err, tt.want)
		}
	}
	if _, err := ResolveLoRA(entries[1:], "my_style"); err != nil {
		t.Errorf("alias: %v", err)
	}
	twice := append(entries, LoRAEntry{Name: "style", Path: "other/style.safetensors"})
	if _, err := ResolveLoRA(twice, "style"); err == nil || !strings.Contains(err.Error(), "2 files have that name") {
		t.Errorf("same stem twice: %v", err)
	}
	if _, err := FindLoRAs(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing folder: %v", err)
	}
}

func TestApplyLoRAsMultipliers(t *testing.T) {
	m, err := NewRandomModel(TinyConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "style.safetensors")
	writeDemoLoRA(t, path, nil)
	detach, err := m.ApplyLoRAs([]LoRARef{{Name: "style", TE: 0.25, UNet: 0.75}}, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	count := func(want float32) func(string, *Linear) error {
		return func(name string, l *Linear) error {
			if len(l.Adapters) != 1 || l.Adapters[0].Multiplier != want {
				t.Fatalf("%s: adapters %v, want one at %v", name, l.Adapters, want)
			}
			return nil
		}
	}
	_ = m.UNet.Linears(count(0.75))
	_ = m.Text.Linears(count(0.25))
	detach()
	_ = m.UNet.Linears(func(name string, l *Linear) error {
		if len(l.Adapters) != 0 {
			t.Fatalf("%s still has adapters after detach", name)
		}
		return nil
	})

	if _, err := m.ApplyLoRAs([]LoRARef{{Name: "style", TE: 1, UNet: 1, Dyn: 4}}, []string{path}); err == nil {
		t.Error("dyn accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := os.WriteFile(bad, []byte("not a safetensors file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ApplyLoRAs([]LoRARef{{Name: "bad", TE: 1, UNet: 1}}, []string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v", err)
	}
}
