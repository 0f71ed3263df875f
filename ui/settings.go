package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"lorastudio/atomicfile"
)

// maxRecent bounds the recent-datasets list on the start screen.
const maxRecent = 10

// Settings are the user's preferences that survive a restart.
type Settings struct {
	RecentDatasets []string `json:"recent_datasets"`
	WindowWidth    float32  `json:"window_width"`
	WindowHeight   float32  `json:"window_height"`
	// CaptionExt is the caption file extension, ".txt" or ".caption".
	CaptionExt string `json:"caption_extension"`
}

// CaptionExtensions lists the caption extensions the studio offers.
var CaptionExtensions = []string{".txt", ".caption"}

// DefaultSettings is what a first start uses.
func DefaultSettings() Settings {
	return Settings{WindowWidth: 1360, WindowHeight: 860, CaptionExt: ".txt"}
}

// DefaultSettingsPath is settings.json in the user's config directory.
func DefaultSettingsPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("settings: %w", err)
	}
	return filepath.Join(dir, "lorastudio", "settings.json"), nil
}

// LoadSettings reads path; a missing file gives the defaults. Values that
// make no sense (a tiny window, an unknown extension) fall back to defaults
// so a hand-edited file cannot break the start.
func LoadSettings(path string) (Settings, error) {
	s := DefaultSettings()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read settings %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return DefaultSettings(), fmt.Errorf("read settings %s: %w", path, err)
	}
	def := DefaultSettings()
	if s.WindowWidth < 400 || s.WindowHeight < 300 {
		s.WindowWidth, s.WindowHeight = def.WindowWidth, def.WindowHeight
	}
	if !slices.Contains(CaptionExtensions, s.CaptionExt) {
		s.CaptionExt = def.CaptionExt
	}
	if len(s.RecentDatasets) > maxRecent {
		s.RecentDatasets = s.RecentDatasets[:maxRecent]
	}
	return s, nil
}

// Save writes the settings atomically, so a crash mid-write leaves the
// previous file intact. The file is private to the user (0600), as it has
// always been: it lists the folders they work in.
func (s Settings) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	err = atomicfile.WritePerm(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	return nil
}

// AddRecent puts dir at the front of the recent list, once.
func (s *Settings) AddRecent(dir string) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	list := []string{dir}
	for _, d := range s.RecentDatasets {
		if d != dir && len(list) < maxRecent {
			list = append(list, d)
		}
	}
	s.RecentDatasets = list
}

// RemoveRecent drops dir from the recent list (it was moved or deleted).
func (s *Settings) RemoveRecent(dir string) {
	s.RecentDatasets = slices.DeleteFunc(s.RecentDatasets, func(d string) bool { return d == dir })
}
