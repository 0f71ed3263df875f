package assets

import _ "embed"

// Icon is the application icon, drawn by scripts/mkicon.
//
//go:embed icon.png
var Icon []byte
