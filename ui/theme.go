package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
)

// studioTheme is Fyne's default theme with the icon's violet as the accent,
// so primary buttons, focus rings and selections match the brand.
type studioTheme struct{ fyne.Theme }

// NewTheme returns the studio theme; main installs it with Settings().SetTheme.
func NewTheme() fyne.Theme { return studioTheme{theme.DefaultTheme()} }

var (
	accent      = color.NRGBA{R: 0x7c, G: 0x5c, B: 0xf0, A: 0xff}
	accentLight = color.NRGBA{R: 0x6a, G: 0x4b, B: 0xe0, A: 0xff}
)

func (t studioTheme) Color(name fyne.ThemeColorName, v fyne.ThemeVariant) color.Color {
	switch name {
	case theme.ColorNamePrimary, theme.ColorNameHyperlink:
		if v == theme.VariantLight {
			return accentLight
		}
		return accent
	case theme.ColorNameFocus:
		return color.NRGBA{R: 0x7c, G: 0x5c, B: 0xf0, A: 0x99}
	case theme.ColorNameSelection:
		return color.NRGBA{R: 0x7c, G: 0x5c, B: 0xf0, A: 0x55}
	}
	return t.Theme.Color(name, v)
}
