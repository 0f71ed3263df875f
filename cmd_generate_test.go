package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"lorastudio/sd"
)

// TestRunGenerate covers the generate command on the demo model: a run with
// a LoRA from a folder saved as a PNG with its parameters, and the exit
// codes of bad input.
func TestRunGenerate(t *testing.T) {
	dir := t.TempDir()
	layers, err := sd.LoRALayoutOf(sd.TinyConfig()).AllLayers()
	if err != nil {
		t.Fatal(err)
	}
	n, err := sd.NewLoRANetwork(layers, 2, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Save(filepath.Join(dir, "style.safetensors"), "F16", nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.png")
	base := []string{"generate", "--demo", "--steps", "2", "--width", "64", "--height", "64", "--seed", "7", "--lora-dir", dir, "--out", out}
	tests := []struct {
		name  string
		extra []string
		code  int
	}{
		{"lora", []string{"--prompt", "a cat <lora:style:0.7>", "--negative", "dog", "--sampler", "ddim"}, 0},
		{"unknown lora", []string{"--prompt", "<lora:nope:1>"}, 1},
		{"bad multiplier", []string{"--prompt", "<lora:style:x>"}, 1},
		{"bad sampler", []string{"--prompt", "a", "--sampler", "plms"}, 1},
		{"bad size", []string{"--prompt", "a", "--width", "65"}, 1},
		{"no model", nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string(nil), base...), tt.extra...)
			if tt.code == 2 {
				args = []string{"generate", "--prompt", "a"}
			}
			if got := run(args); got != tt.code {
				t.Fatalf("exit %d, want %d", got, tt.code)
			}
		})
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("a cat <lora:style:0.7>\nNegative prompt: dog\nSteps: 2, Sampler: DDIM, CFG scale: 7, Seed: 7, Size: 64x64, Model: demo, Lora hashes: \"style: ")
	if !bytes.Contains(data, want) {
		t.Errorf("%s has no parameters text starting %q", out, want)
	}
}
