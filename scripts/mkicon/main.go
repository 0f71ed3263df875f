// Command mkicon draws the LoRA Studio application icon (a white tag on a
// violet rounded square, with a small spark) and writes it as a PNG.
//
//	go run ./scripts/mkicon -o assets/icon.png
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("o", "assets/icon.png", "output PNG path")
	size := flag.Int("size", 512, "icon edge in pixels")
	flag.Parse()
	if err := writePNG(*out, drawIcon(*size)); err != nil {
		fmt.Fprintln(os.Stderr, "mkicon:", err)
		os.Exit(1)
	}
}

// vec is a point in icon space: the icon spans [-1, 1] on both axes, y down.
type vec struct{ x, y float64 }

var (
	bgTop    = rgb{0x4f, 0x46, 0xe5}
	bgBottom = rgb{0x9d, 0x4e, 0xdd}
	white    = rgb{0xff, 0xff, 0xff}
)

type rgb struct{ r, g, b float64 }

func (c rgb) mix(d rgb, t float64) rgb {
	return rgb{c.r + (d.r-c.r)*t, c.g + (d.g-c.g)*t, c.b + (d.b-c.b)*t}
}

// drawIcon renders with 4x4 supersampling so the edges are anti-aliased.
func drawIcon(size int) *image.NRGBA {
	const ss = 4
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	tag := tagPolygon()
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					p := vec{
						(float64(px)+(float64(sx)+0.5)/ss)/float64(size)*2 - 1,
						(float64(py)+(float64(sy)+0.5)/ss)/float64(size)*2 - 1,
					}
					c, alpha := shade(p, tag)
					r += c.r * alpha
					g += c.g * alpha
					b += c.b * alpha
					a += alpha
				}
			}
			if a == 0 {
				continue
			}
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(math.Round(r / a)),
				G: uint8(math.Round(g / a)),
				B: uint8(math.Round(b / a)),
				A: uint8(math.Round(a / (ss * ss) * 255)),
			})
		}
	}
	return img
}

// shade returns the colour and coverage of one sample.
func shade(p vec, tag []vec) (rgb, float64) {
	if !inRoundedSquare(p, 0.88, 0.36) {
		return rgb{}, 0
	}
	bg := bgTop.mix(bgBottom, (p.x+p.y+2)/4)
	hole := rotate(vec{-0.42, 0})
	if inPolygon(p, tag) && dist(p, hole) > 0.085 {
		return white, 1
	}
	if inSpark(p, vec{0.46, -0.5}, 0.2) || inSpark(p, vec{0.62, -0.22}, 0.1) {
		return white, 1
	}
	return bg, 1
}

func inRoundedSquare(p vec, half, radius float64) bool {
	qx := math.Max(math.Abs(p.x)-(half-radius), 0)
	qy := math.Max(math.Abs(p.y)-(half-radius), 0)
	return math.Abs(p.x) <= half && math.Abs(p.y) <= half && qx*qx+qy*qy <= radius*radius
}

// tagPolygon is a luggage tag pointing to the upper left, rotated 45 degrees.
func tagPolygon() []vec {
	local := []vec{{-0.72, 0}, {-0.42, -0.3}, {0.55, -0.3}, {0.55, 0.3}, {-0.42, 0.3}}
	out := make([]vec, len(local))
	for i, v := range local {
		out[i] = rotate(v)
	}
	return out
}

// rotate turns a point of the tag's own frame into icon space.
func rotate(v vec) vec {
	s, c := math.Sincos(math.Pi / 4)
	return vec{v.x*c - v.y*s + 0.08, v.x*s + v.y*c + 0.08}
}

func inPolygon(p vec, poly []vec) bool {
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		a, b := poly[i], poly[j]
		if (a.y > p.y) != (b.y > p.y) && p.x < (b.x-a.x)*(p.y-a.y)/(b.y-a.y)+a.x {
			in = !in
		}
	}
	return in
}

// inSpark tests a four-pointed star made of two thin diamonds.
func inSpark(p, c vec, r float64) bool {
	dx, dy := math.Abs(p.x-c.x), math.Abs(p.y-c.y)
	return dx/r+dy/(r*0.28) <= 1 || dx/(r*0.28)+dy/r <= 1
}

func dist(a, b vec) float64 { return math.Hypot(a.x-b.x, a.y-b.y) }

func writePNG(path string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".icon-*.png")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := png.Encode(tmp, img); err != nil {
		tmp.Close()
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
