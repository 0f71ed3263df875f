package assets

import (
	"embed"
	"io/fs"
)

//go:embed demo
var demo embed.FS

// Demo is the bundled demo dataset: 60 DreamBooth photos (256 px, kohya
// layout img/10_<class>/ with captions) and their credits. Built by
// scripts/mkdemo.
func Demo() fs.FS {
	sub, err := fs.Sub(demo, "demo")
	if err != nil {
		// fs.Sub fails only on an invalid name; "demo" is valid.
		panic(err)
	}
	return sub
}
