package trainer

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParsePromptLine(t *testing.T) {
	cases := []struct {
		line string
		want samplePrompt
	}{
		{"a photo of sks dog", samplePrompt{Prompt: "a photo of sks dog", Width: 512, Height: 512, Steps: 30, Scale: 7.5}},
		{"sks dog, grass --n blurry, lowres --w 640 --h 384 --d 123 --l 5.5 --s 20 --ss k_euler",
			samplePrompt{Prompt: "sks dog, grass", Negative: "blurry, lowres", Width: 640, Height: 384, Seed: 123, HasSeed: true, Scale: 5.5, Steps: 20, Sampler: "euler"}},
		{"x --S 5000 --W 64", samplePrompt{Prompt: "x", Width: 64, Height: 512, Steps: 1000, Scale: 7.5}},
		{"x --s 0 --unknown 3 --cn ctl.png", samplePrompt{Prompt: "x", Width: 512, Height: 512, Steps: 1, Scale: 7.5}},
		{"x--w 64", samplePrompt{Prompt: "x--w 64", Width: 512, Height: 512, Steps: 30, Scale: 7.5}},
	}
	for _, c := range cases {
		got, err := parsePromptLine(c.line)
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.line, got, c.want)
		}
	}
	for _, bad := range []string{"x --ss plms", "x --d 99999999999999999999", "x --l 1.2.3"} {
		if _, err := parsePromptLine(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParsePromptLine(f *testing.F) {
	f.Add("sks dog --n bad --w 640 --h 384 --d 1 --l 7 --s 20 --ss ddim")
	f.Add(" -- --w --h 9999999999999999999999")
	f.Fuzz(func(t *testing.T, line string) {
		p, err := parsePromptLine(line)
		if err == nil && (p.Steps < 1 || p.Steps > 1000 || p.Width < 0 || p.Height < 0) {
			t.Errorf("%q: %+v", line, p)
		}
	})
}

// samePrompts are one set of prompts written in each of sd-scripts' three
// prompt file formats.
var samePrompts = map[string]string{
	"prompts.txt": `# previews
sks dog, grass --n blurry, lowres --w 640 --h 384 --d 123 --l 5.5 --s 20 --ss k_euler

a photo of sks dog --h 384 --cn ctl.png
x --S 5000 --W 64 --h 384
`,
	"prompts.toml": `[prompt]
height = 384

[[prompt.subset]]
prompt = "sks dog, grass"
negative_prompt = "blurry, lowres"
width = 640
seed = 123
scale = 5.5
sample_steps = 20
sample_sampler = "k_euler"

[[prompt.subset]]
prompt = "a photo of sks dog"

[[prompt.subset]]
prompt = "x"
sample_steps = 5000
width = 64
`,
	"inline.TOML": `prompt = { height = 384, subset = [
	{ prompt = "sks dog, grass", negative_prompt = "blurry, lowres", width = 640, seed = 123, scale = 5.5, sample_steps = 20, sample_sampler = "k_euler" },
	{ prompt = "a photo of sks dog" },
	{ prompt = "x", sample_steps = 5000, width = 64, enum = 9 },
] }
`,
	"prompts.json": `[
	{"prompt": "sks dog, grass", "negative_prompt": "blurry, lowres", "width": 640, "height": 384,
	 "seed": 123, "scale": 5.5, "sample_steps": 20, "sample_sampler": "k_euler"},
	"a photo of sks dog --h 384",
	{"prompt": "x", "sample_steps": 5000, "width": 64, "height": 384,
	 "seed": null, "negative_prompt": null, "controlnet_image": null, "enum": 2}
]
`,
}

func TestReadSamplePromptsFormats(t *testing.T) {
	want := []samplePrompt{
		{Prompt: "sks dog, grass", Negative: "blurry, lowres", Width: 640, Height: 384, Seed: 123, HasSeed: true, Scale: 5.5, Steps: 20, Sampler: "euler"},
		{Prompt: "a photo of sks dog", Width: 512, Height: 384, Steps: 30, Scale: 7.5},
		{Prompt: "x", Width: 64, Height: 384, Steps: 1000, Scale: 7.5},
	}
	dir := t.TempDir()
	for name, text := range samePrompts {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readSamplePrompts(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

func TestReadSamplePromptsErrors(t *testing.T) {
	const sub = "[[prompt.subset]]\nprompt = \"a\"\n"
	cases := []struct {
		name, text, want string
	}{
		{"p.txt", "# only a comment\n\n", "holds no prompts"},
		{"p.txt", "x --ss plms", "line 1: --ss plms: sampler"},
		{"p.txt", "ok\n\xff\xfe", "not UTF-8"},
		{"p.txt", "ok\nhuge --w 100000 --h 512", `prompt "huge": size 100000x512 is over 2048 px a side`},
		{"p.json", `[{"prompt": "tall", "height": 4096}]`, "over 2048 px"},
		{"p.toml", "[prompt\n", "toml: line 2"},
		{"p.toml", "", "no [prompt] table"},
		{"p.toml", "prompt = \"a\"\n", `prompt is "a", want a [prompt] table`},
		{"p.toml", "[[prompt]]\nprompt = \"a\"\n", "prompt is a list"},
		{"p.toml", "[prompt]\nwidth = 512\n", "no [[prompt.subset]] tables"},
		{"p.toml", "[prompt]\nsubset = 3\n", "prompt.subset is 3"},
		{"p.toml", "[prompt]\nsubset = [{ prompt = \"a\" }, 1]\n", "prompt.subset 2 is 1, want a table"},
		{"p.toml", "[prompt]\nsubset = []\n", "holds no prompts"},
		{"p.toml", "[general]\nx = 1\n[prompt]\n" + sub, `unknown key "general"`},
		{"p.toml", "[prompt]\nwidth = 512\n" + sub + "width = 640\n", "prompt.subset 1: width is also set in [prompt]"},
		{"p.toml", "[prompt]\n" + sub + sub + "steps = 20\n", `prompt.subset 2: unknown key "steps"`},
		{"p.toml", "[prompt]\n" + sub + "width = \"512\"\n", `width: "512", want an integer`},
		{"p.toml", "[prompt]\n" + sub + "height = -64\n", "height: -64, want a size"},
		{"p.toml", "[prompt]\n" + sub + "width = 99999999999\n", "want a size"},
		{"p.toml", "[prompt]\n" + sub + "seed = 1.5\n", "seed: 1.5, want an integer"},
		{"p.toml", "[prompt]\n" + sub + "sample_steps = true\n", "sample_steps: true, want an integer"},
		{"p.toml", "[prompt]\n" + sub + "scale = nan\n", "scale: NaN"},
		{"p.toml", "[prompt]\n" + sub + "scale = -1\n", "scale: -1, want a CFG scale"},
		{"p.toml", "[prompt]\n" + sub + "scale = \"7\"\n", "want a number"},
		{"p.toml", "[prompt]\nprompt = 3\n[[prompt.subset]]\n", "prompt: 3, want a string"},
		{"p.toml", "[prompt]\n" + sub + "sample_sampler = \"plms\"\n", `sample_sampler: sampler "plms"`},
		{"p.toml", "[prompt]\n" + sub + "sample_sampler = \" \"\n", "sample_sampler: empty"},
		{"p.toml", "[prompt]\n" + sub + "controlnet_image = \"c.png\"\n", "ControlNet samples are not supported"},
		{"p.toml", "[prompt]\n" + sub + "negative_prompt = [\"a\"]\n", "negative_prompt: a list, want a string"},
		{"p.toml", "[prompt]\n\xc3" + sub, "not UTF-8"},
		{"p.json", `[{"prompt": "a",}]`, "line 1: invalid character"},
		{"p.json", "[\n{\"prompt\": \"a\"},\n{x}\n]", "line 3"},
		{"p.json", `[{"prompt": "a"}] x`, "more data after the list"},
		{"p.json", `[{"prompt": "a"}] [1]`, "more data after the list"},
		{"p.json", `[{"prompt": "a"}`, "unexpected EOF"},
		{"p.json", `{"prompt": "a"}`, "the file is a table, want a list"},
		{"p.json", `[]`, "holds no prompts"},
		{"p.json", `["a", 3]`, "prompt 2: 3, want an object or a prompt line"},
		{"p.json", `[null]`, "prompt 1: null, want an object"},
		{"p.json", `[{"width": 512.0}]`, "width: 512.0, want an integer"},
		{"p.json", `[{"seed": 99999999999999999999}]`, "seed: 99999999999999999999, want an integer"},
		{"p.json", `[{"sample_steps": null}]`, "sample_steps: null, want an integer"},
		{"p.json", `[{"prompt": null}]`, "prompt: null, want a string"},
		{"p.json", `[{"scale": 1e999}]`, "scale: 1e999, want a number"},
		{"p.json", `[{"cfg_scale": 7}]`, `unknown key "cfg_scale"`},
		{"p.json", `[{"subset": [{"prompt": "a"}]}]`, `unknown key "subset"`},
		{"p.json", `["a --ss plms"]`, "prompt 1: --ss plms"},
		{"p.json", "[\"\xff\"]", "not UTF-8"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		path := filepath.Join(dir, c.name)
		if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := readSamplePrompts(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: error %v, want %q", c.name, c.text, err, c.want)
		}
	}
	if _, err := readSamplePrompts(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestSamplePromptsText(t *testing.T) {
	dir := t.TempDir()
	want := "sks dog, grass --n blurry, lowres --w 640 --h 384 --s 20 --l 5.5 --d 123 --ss euler\n" +
		"a photo of sks dog --w 512 --h 384 --s 30 --l 7.5\n" +
		"x --w 64 --h 384 --s 1000 --l 7.5\n"
	for name, text := range samePrompts {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := SamplePromptsText(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "prompts.txt" {
			want := text
			if got != want {
				t.Errorf("%s: text file changed:\n%s", name, got)
			}
			continue
		}
		if got != want {
			t.Errorf("%s:\n%s\nwant\n%s", name, got, want)
		}
	}
	for _, c := range []struct{ text, want string }{
		{`[{"prompt": "a --w 64"}]`, `" --"`},
		{`[{"prompt": "a", "negative_prompt": "b\nc"}]`, "line break"},
		{`[{"prompt": "# a"}]`, "comment line"},
		{`[{"width": 64}]`, "blank"},
		{`[{"prompt": "a", "seed": -1}]`, "seed -1"},
		{`[3]`, "want an object"},
	} {
		path := filepath.Join(dir, "p.json")
		if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := SamplePromptsText(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.text, err, c.want)
		}
	}
}

// FuzzReadSamplePrompts feeds the three readers anything: no panic, every
// prompt they accept is in range, and a line written for it reads back to
// the same prompt.
func FuzzReadSamplePrompts(f *testing.F) {
	exts := []string{".txt", ".toml", ".json"}
	for name, text := range samePrompts {
		f.Add(uint8(slices.Index(exts, strings.ToLower(filepath.Ext(name)))), []byte(text))
	}
	f.Add(uint8(1), []byte("[prompt]\nscale = inf\nsubset = [{prompt = \"a -\", negative_prompt = \" -- \", seed = -3}]\n"))
	f.Add(uint8(2), []byte(`["", " --w 9 --s -1", {"prompt": "\u2028", "scale": 0.1e-300, "width": 0}]`))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		prompts, err := parseSamplePrompts(exts[int(kind)%len(exts)], data)
		if err != nil {
			return
		}
		for _, p := range prompts {
			if p.Steps < minSampleSteps || p.Steps > maxSampleSteps || p.Width < 0 || p.Height < 0 ||
				p.Scale < 0 || math.IsInf(p.Scale, 0) || math.IsNaN(p.Scale) ||
				(p.Sampler != "" && !slices.Contains(Samplers, p.Sampler)) {
				t.Fatalf("out of range: %+v", p)
			}
			line, err := formatPromptLine(p)
			if err != nil {
				continue
			}
			back, err := parsePromptLine(line)
			if err != nil || !reflect.DeepEqual(back, p) {
				t.Fatalf("%+v written as %q reads back as %+v, %v", p, line, back, err)
			}
		}
	})
}
