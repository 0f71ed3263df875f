package dataset

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"os"

	"github.com/disintegration/imaging"
)

// DecodeImage decodes the image file at path with its EXIF orientation
// applied. It checks the header first and refuses images over maxPixels
// (0 means DefaultMaxPixels) before any pixel is decoded.
func DecodeImage(path string, maxPixels int) (image.Image, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if cfg.Width*cfg.Height > maxPixels || cfg.Width > 1<<16 || cfg.Height > 1<<16 {
		return nil, fmt.Errorf("decode %s: %dx%d is over the %d pixel limit", path, cfg.Width, cfg.Height, maxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if format == "jpeg" {
		img = orient(img, jpegOrientation(data))
	}
	return img, nil
}

// orient applies an EXIF orientation (1..8) to img.
func orient(img image.Image, o int) image.Image {
	switch o {
	case 2:
		return imaging.FlipH(img)
	case 3:
		return imaging.Rotate180(img)
	case 4:
		return imaging.FlipV(img)
	case 5:
		return imaging.Transpose(img)
	case 6:
		return imaging.Rotate270(img)
	case 7:
		return imaging.Transverse(img)
	case 8:
		return imaging.Rotate90(img)
	}
	return img
}

// flattenOnWhite returns img as opaque RGBA, alpha composited on white;
// grayscale, CMYK, paletted and 16-bit images become 8-bit RGB here.
func flattenOnWhite(img image.Image) *image.RGBA {
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Over)
	return dst
}

// ResizeToBucket scales img to cover the bucket (the size kohya's bucket
// manager computes) and crops the centre: the pixels training sees.
func ResizeToBucket(img image.Image, bucket Reso) *image.RGBA {
	b := img.Bounds()
	flat := flattenOnWhite(img)
	rs := CoverSize(b.Dx(), b.Dy(), bucket)
	var resized image.Image = flat
	switch {
	case rs.W == b.Dx() && rs.H == b.Dy():
	case rs.W*rs.H < b.Dx()*b.Dy():
		// Box at a downscale is area averaging, as OpenCV's INTER_AREA
		// which sd-scripts uses when shrinking.
		resized = imaging.Resize(flat, rs.W, rs.H, imaging.Box)
	default:
		resized = imaging.Resize(flat, rs.W, rs.H, imaging.Lanczos)
	}
	left := (rs.W - bucket.W) / 2
	top := (rs.H - bucket.H) / 2
	out := image.NewRGBA(image.Rect(0, 0, bucket.W, bucket.H))
	draw.Draw(out, out.Bounds(), resized, image.Pt(left, top), draw.Src)
	return out
}

// LoadForTraining decodes the image at path (EXIF orientation applied,
// alpha composited on white), scales it to cover bucket, crops the centre
// and returns it as float32 CHW (3 x bucket.H x bucket.W) in [-1, 1], the
// normalisation Stable Diffusion's VAE expects.
func LoadForTraining(path string, bucket Reso) ([]float32, error) {
	if bucket.W <= 0 || bucket.H <= 0 {
		return nil, fmt.Errorf("load %s: invalid bucket %dx%d", path, bucket.W, bucket.H)
	}
	img, err := DecodeImage(path, 0)
	if err != nil {
		return nil, fmt.Errorf("load for training: %w", err)
	}
	return RGBToCHW(ResizeToBucket(img, bucket)), nil
}

// RGBToCHW converts an opaque RGBA image to float32 CHW in [-1, 1].
func RGBToCHW(img *image.RGBA) []float32 {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	out := make([]float32, 3*w*h)
	plane := w * h
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		for x := range w {
			i := y*w + x
			out[i] = float32(row[4*x])/127.5 - 1
			out[plane+i] = float32(row[4*x+1])/127.5 - 1
			out[2*plane+i] = float32(row[4*x+2])/127.5 - 1
		}
	}
	return out
}
