package ui

import (
	"image"
	"image/color"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func TestSettingsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lorastudio", "settings.json")
	want := Settings{
		RecentDatasets: []string{"/data/dogs", "/data/cats"},
		WindowWidth:    1500,
		WindowHeight:   950,
		CaptionExt:     ".caption",
	}
	if err := want.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSettings(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %+v, want %+v", got, want)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("the settings folder holds %d files, want only settings.json (no temp files left)", len(entries))
	}
}

// TestSettingsSaveMode checks settings.json is private when Save makes it
// and keeps the mode a user gave it.
func TestSettingsSaveMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	mode := func() os.FileMode {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if err := DefaultSettings().Save(path); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o600 {
		t.Errorf("new settings file has mode %v, want 0600", m)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := DefaultSettings().Save(path); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o640 {
		t.Errorf("saving changed the mode to %v, want 0640", m)
	}
}

func TestLoadSettingsFallsBack(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		wantErr       bool
		want          Settings
	}{
		{"missing", "", false, DefaultSettings()},
		{"corrupt", "{not json", true, DefaultSettings()},
		{"tiny window", `{"window_width": 10, "window_height": 10, "caption_extension": ".caption"}`, false,
			Settings{WindowWidth: 1360, WindowHeight: 860, CaptionExt: ".caption"}},
		{"unknown extension", `{"window_width": 900, "window_height": 700, "caption_extension": ".exe"}`, false,
			Settings{WindowWidth: 900, WindowHeight: 700, CaptionExt: ".txt"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".json")
			if tc.content != "" {
				writeFile(t, path, tc.content)
			}
			got, err := LoadSettings(path)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAddRecent(t *testing.T) {
	var s Settings
	for i := range maxRecent + 3 {
		s.AddRecent("/d/" + strconv.Itoa(i))
	}
	s.AddRecent("/d/5")
	if len(s.RecentDatasets) != maxRecent {
		t.Fatalf("%d recent, want %d", len(s.RecentDatasets), maxRecent)
	}
	if s.RecentDatasets[0] != "/d/5" || s.RecentDatasets[1] != "/d/12" {
		t.Errorf("recent = %q, want /d/5 first then /d/12", s.RecentDatasets[:2])
	}
	seen := map[string]bool{}
	for _, d := range s.RecentDatasets {
		if seen[d] {
			t.Errorf("%s listed twice", d)
		}
		seen[d] = true
	}
	s.RemoveRecent("/d/5")
	if s.RecentDatasets[0] != "/d/12" {
		t.Errorf("after remove, first = %s", s.RecentDatasets[0])
	}
}

func TestItoa(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := itoa(n); got != want {
			t.Errorf("itoa(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCompactImageKeepsColours(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 7, 5))
	for y := range 5 {
		for x := range 7 {
			src.Set(x, y, color.RGBA{R: 200, G: 40, B: 90, A: 255})
		}
	}
	out := compactImage(src)
	if out.Bounds() != src.Bounds() {
		t.Fatalf("bounds %v, want %v", out.Bounds(), src.Bounds())
	}
	for _, p := range []image.Point{{0, 0}, {6, 4}, {3, 2}} {
		r, g, b, _ := out.At(p.X, p.Y).RGBA()
		if d := max(absDiff(r>>8, 200), absDiff(g>>8, 40), absDiff(b>>8, 90)); d > 3 {
			t.Errorf("pixel %v = %d,%d,%d, want about 200,40,90", p, r>>8, g>>8, b>>8)
		}
	}
	if again := compactImage(out); again != out {
		t.Error("a 4:2:0 image was converted again")
	}
}

func absDiff(a uint32, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
