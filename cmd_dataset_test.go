package main

import (
	"os"
	"path/filepath"
	"testing"

	"lorastudio/dataset"
)

func TestRunDataset(t *testing.T) {
	demo, err := dataset.ExtractDemo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "a.jpg"), []byte("text, not a photo"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"usable", []string{demo}, 0},
		{"flags", []string{"-batch", "4", "-caption-ext", "caption", demo}, 0},
		{"nothing trainable", []string{bad}, 1},
		{"missing folder", []string{filepath.Join(bad, "nope")}, 1},
		{"no argument", nil, 2},
		{"bad batch", []string{"-batch", "0", demo}, 2},
	}
	stdout := os.Stdout
	defer func() { os.Stdout = stdout }()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for _, tt := range tests {
		os.Stdout = null
		code := runDataset(tt.args)
		os.Stdout = stdout
		if code != tt.code {
			t.Errorf("%s: exit %d, want %d", tt.name, code, tt.code)
		}
	}
}
