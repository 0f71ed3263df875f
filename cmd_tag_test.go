package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tinyTagger = "tagger/testdata/wd14/tiny_vit"

// tagDataset makes a dataset folder with the tagger's two synthetic images
// and returns it.
func tagDataset(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "10_girl")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"synth_a.png", "synth_b.png"} {
		b, err := os.ReadFile(filepath.Join("tagger/testdata/wd14", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Dir(dir)
}

func runTagCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = tagCommand(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func readCaption(t *testing.T, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "10_girl", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTagCommand(t *testing.T) {
	root := tagDataset(t)
	// Golden app.py results for the default thresholds (golden_tags.json).
	wantA := ":d, long hair, ^_^, blue eyes, 1girl"
	wantB := ":d, long hair, blue eyes, ^_^, 1girl"

	code, stdout, stderr := runTagCmd(t, "--model", tinyTagger, "--dry-run", "--scores", root)
	if code != 0 {
		t.Fatalf("dry run: exit %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stdout, "10_girl/synth_a.png scores:\n  rating    general 0.894, sensitive 0.909, questionable 0.078, explicit 0.172\n") {
		t.Errorf("scores missing in %q", stdout)
	}
	if !strings.Contains(stdout, "10_girl/synth_a.png: "+wantA+"\n") || !strings.Contains(stdout, "10_girl/synth_b.png: "+wantB+"\n") {
		t.Errorf("dry run output %q", stdout)
	}
	if _, err := os.Stat(filepath.Join(root, "10_girl", "synth_a.txt")); !os.IsNotExist(err) {
		t.Fatalf("dry run wrote a caption: %v", err)
	}

	if code, _, stderr = runTagCmd(t, "--model", tinyTagger, root); code != 0 {
		t.Fatalf("tag: exit %d, stderr %s", code, stderr)
	}
	if got := readCaption(t, root, "synth_a.txt"); got != wantA {
		t.Errorf("synth_a.txt = %q, want %q", got, wantA)
	}

	// Append keeps the user's tags first; lower thresholds add a character.
	capB := filepath.Join(root, "10_girl", "synth_b.txt")
	if err := os.WriteFile(capB, []byte("sks girl, long hair\nsecond line kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runTagCmd(t, "--model", tinyTagger, "--append", "--character-threshold", "0.81",
		"--escape-parens", "--rating-tag", "--undesired", "1girl", root)
	if code != 0 {
		t.Fatalf("append: exit %d, stderr %s", code, stderr)
	}
	want := "sks girl, long hair, sensitive, ganyu \\(genshin impact\\), :d, blue eyes, ^_^\nsecond line kept\n"
	if got := readCaption(t, root, "synth_b.txt"); got != want {
		t.Errorf("synth_b.txt = %q, want %q", got, want)
	}
}

func TestTagCommandProtectsCaptions(t *testing.T) {
	root := tagDataset(t)
	bad := []byte("caf\xe9, latin-1\n")
	capA := filepath.Join(root, "10_girl", "synth_a.txt")
	if err := os.WriteFile(capA, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runTagCmd(t, "--model", tinyTagger, root)
	if code != 1 || !strings.Contains(stderr, "synth_a.png") || !strings.Contains(stderr, "not UTF-8") {
		t.Errorf("exit %d, stderr %q; want 1 and the protected caption named", code, stderr)
	}
	if got, _ := os.ReadFile(capA); !bytes.Equal(got, bad) {
		t.Errorf("protected caption changed to %q", got)
	}
	if got := readCaption(t, root, "synth_b.txt"); got == "" {
		t.Error("the other image was not tagged")
	}
}

func TestTagCommandErrors(t *testing.T) {
	root := tagDataset(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no model flag", []string{root}, 2, "usage"},
		{"no dataset", []string{"--model", tinyTagger}, 2, "usage"},
		{"bad threshold", []string{"--model", tinyTagger, "--threshold", "1.5", root}, 2, "--threshold"},
		{"model folder without weights", []string{"--model", t.TempDir(), root}, 1, "model.safetensors is missing"},
		{"missing dataset", []string{"--model", tinyTagger, filepath.Join(root, "nope")}, 1, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runTagCmd(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}
