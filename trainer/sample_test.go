package trainer

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pngText returns the tEXt and iTXt chunks of a PNG file by keyword, checking
// every chunk's CRC.
func pngText(t *testing.T, data []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p := 8; p+12 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[p:]))
		typ, body := string(data[p+4:p+8]), data[p+8:p+8+n]
		if crc32.ChecksumIEEE(data[p+4:p+8+n]) != binary.BigEndian.Uint32(data[p+8+n:]) {
			t.Fatalf("chunk %s: bad CRC", typ)
		}
		switch typ {
		case "tEXt":
			k, v, _ := bytes.Cut(body, []byte{0})
			r := make([]rune, len(v))
			for i, b := range v {
				r[i] = rune(b)
			}
			out[string(k)] = string(r)
		case "iTXt":
			k, rest, _ := bytes.Cut(body, []byte{0})
			parts := bytes.SplitN(rest[2:], []byte{0}, 3)
			out[string(k)] = string(parts[2])
		}
		p += 12 + n
	}
	return out
}

func TestTextChunks(t *testing.T) {
	for _, text := range []string{"sks dog\nSteps: 20", "caf\u00e9 \u00b7", "\u72ac, dog", ""} {
		var buf bytes.Buffer
		buf.Write([]byte("\x89PNG\r\n\x1a\n"))
		buf.Write(textChunk("parameters", text))
		if got := pngText(t, buf.Bytes())["parameters"]; got != text {
			t.Errorf("%q came back as %q", text, got)
		}
	}
}

// TestSamplePreviews trains with a prompts file and sample_every_n_steps:
// previews are written at those steps with the LoRA applied, as PNGs with
// an AUTOMATIC1111 parameters text, and the training itself is unchanged
// by them.
func TestSamplePreviews(t *testing.T) {
	data := demoImages(t, 2, 1, "cat")
	prompts := filepath.Join(t.TempDir(), "prompts.txt")
	if err := os.WriteFile(prompts, []byte("# previews\ncat, sitting --w 64 --h 64 --s 3 --d 7 --l 6\n\ncat --n dog --w 100 --h 64 --s 2 --ss ddim\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := demoJob(t, data, 4)
	plain := drain(t, startRun(t, cfg))

	cfg.OutputDir = filepath.Join(t.TempDir(), "out")
	cfg.SamplePrompts = prompts
	cfg.SampleEveryNSteps = 2
	events := drain(t, startRun(t, cfg))
	var samples []Sample
	for _, e := range events {
		if s, ok := e.(Sample); ok {
			samples = append(samples, s)
		}
	}
	if len(samples) != 4 || samples[0].Step != 2 || samples[3].Step != 4 || samples[1].Prompt != "cat" {
		t.Fatalf("samples %+v", samples)
	}
	for i, s := range steps(events) {
		if s.Loss != steps(plain)[i].Loss {
			t.Errorf("step %d: loss %v with previews, %v without", s.Step, s.Loss, steps(plain)[i].Loss)
		}
	}
	if !strings.HasPrefix(filepath.Base(samples[0].Path), "demo_lora_000002_00_") || !strings.HasSuffix(samples[0].Path, "_7.png") ||
		filepath.Dir(samples[0].Path) != filepath.Join(cfg.OutputDir, "sample") {
		t.Errorf("sample file %s", samples[0].Path)
	}
	raw, err := os.ReadFile(samples[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 64 {
		t.Fatalf("sample decodes to %v, %v", img.Bounds(), err)
	}
	want := "cat, sitting <lora:demo_lora:1>\nSteps: 3, Sampler: Euler a, CFG scale: 6, Seed: 7, Size: 64x64, Model: demo, Version: LoRA Studio"
	if got := pngText(t, raw)["parameters"]; got != want {
		t.Errorf("parameters\n%q\nwant\n%q", got, want)
	}
	raw, err = os.ReadFile(samples[1].Path)
	if err != nil {
		t.Fatal(err)
	}
	// The width is rounded down to the model's 64-pixel grid; no --d: seed + index.
	want = "cat <lora:demo_lora:1>\nNegative prompt: dog\nSteps: 2, Sampler: DDIM, CFG scale: 7.5, Seed: 43, Size: 64x64, Model: demo, Version: LoRA Studio"
	if got := pngText(t, raw)["parameters"]; got != want {
		t.Errorf("parameters\n%q\nwant\n%q", got, want)
	}
}
