package dataset

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	// Decoders for every format the studio imports.
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/webp"
)

// inspectImage reads the file once: size, SHA-256, header decode and the
// structural checks that find truncation without decoding pixels. buf is
// reused between calls and returned grown.
func inspectImage(im *Image, maxPixels int, buf []byte) []byte {
	fail := func(k Kind, detail string) {
		im.addProblem(Problem{Severity: Error, Kind: k, Detail: detail})
	}
	f, err := os.Open(im.Path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			fail(Unreadable, "no permission to read the file")
		} else {
			fail(Unreadable, err.Error())
		}
		return buf
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fail(Unreadable, err.Error())
		return buf
	}
	im.Bytes, im.ModTime = st.Size(), st.ModTime()
	if st.Size() == 0 {
		fail(EmptyFile, "the file is 0 bytes")
		return buf
	}
	buf, err = readAllInto(f, buf[:0], st.Size())
	if err != nil {
		fail(Unreadable, err.Error())
		return buf
	}
	im.Hash = sha256.Sum256(buf)
	probeContent(im, buf, maxPixels)
	return buf
}

// readAllInto reads r into buf, growing it to the expected size once.
func readAllInto(r io.Reader, buf []byte, size int64) ([]byte, error) {
	if int64(cap(buf)) < size+1 {
		buf = make([]byte, 0, size+512)
	}
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// probeContent classifies data, the whole content of im's file.
func probeContent(im *Image, data []byte, maxPixels int) {
	fail := func(k Kind, detail string) {
		im.addProblem(Problem{Severity: Error, Kind: k, Detail: detail})
	}
	warn := func(k Kind, detail string) {
		im.addProblem(Problem{Severity: Warning, Kind: k, Detail: detail})
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			ct := http.DetectContentType(data)
			if strings.HasPrefix(ct, "text/") {
				fail(NotAnImage, "the file holds text, not an image")
			} else {
				fail(NotAnImage, fmt.Sprintf("unrecognised content (%s)", ct))
			}
			return
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			fail(Truncated, "the file ends inside the image header")
			return
		}
		fail(Corrupt, fmt.Sprintf("%s header: %v", format, err))
		return
	}
	im.Format = format
	im.Width, im.Height = cfg.Width, cfg.Height
	if cfg.Width <= 0 || cfg.Height <= 0 {
		fail(Corrupt, fmt.Sprintf("impossible size %dx%d", cfg.Width, cfg.Height))
		return
	}
	if px := cfg.Width * cfg.Height; px > maxPixels || cfg.Width > 1<<16 || cfg.Height > 1<<16 {
		fail(TooLarge, fmt.Sprintf("%dx%d is %.1f MP, over the %.0f MP limit", cfg.Width, cfg.Height, float64(px)/1e6, float64(maxPixels)/1e6))
		return
	}
	if want := extFormat(im.Path); want != "" && want != format {
		warn(ExtensionMismatch, fmt.Sprintf("the content is %s but the name ends in %s", strings.ToUpper(format), filepath.Ext(im.Path)))
	}
	switch format {
	case "jpeg":
		if err := checkJPEG(data); err != nil {
			fail(Truncated, err.Error())
			return
		}
		im.Orientation = jpegOrientation(data)
	case "png":
		if err := checkPNG(data); err != nil {
			fail(Truncated, err.Error())
			return
		}
	case "webp":
		if err := checkRIFF(data); err != nil {
			fail(Truncated, err.Error())
			return
		}
	case "bmp":
		if err := checkBMP(data); err != nil {
			fail(Truncated, err.Error())
			return
		}
	}
	if im.Orientation >= 5 {
		im.Width, im.Height = im.Height, im.Width
	}
	switch m := cfg.ColorModel; {
	case m == color.CMYKModel:
		warn(CMYK, "CMYK JPEG: converted to RGB without a colour profile, colours may shift")
	case m == color.Gray16Model:
		warn(SixteenBit, "16-bit grayscale: reduced to 8 bits and RGB for training")
		warn(Grayscale, "grayscale: trained as RGB with equal channels")
	case m == color.GrayModel:
		warn(Grayscale, "grayscale: trained as RGB with equal channels")
	case m == color.RGBA64Model || m == color.NRGBA64Model:
		warn(SixteenBit, "16 bits per channel: reduced to 8 bits for training")
		if m == color.NRGBA64Model {
			warn(Transparent, "has an alpha channel: composited on white for training")
		}
	case m == color.NRGBAModel && format == "png", m == color.NYCbCrAModel:
		warn(Transparent, "has an alpha channel: composited on white for training")
	default:
		if p, ok := m.(color.Palette); ok && paletteHasAlpha(p) {
			warn(Transparent, "palette with transparent entries: composited on white for training")
		}
	}
}

// extFormat is the format a file name promises.
func extFormat(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jpg", ".jpeg":
		return "jpeg"
	case ".png":
		return "png"
	case ".webp":
		return "webp"
	case ".bmp":
		return "bmp"
	}
	return ""
}

func paletteHasAlpha(p color.Palette) bool {
	for _, c := range p {
		if _, _, _, a := c.RGBA(); a != 0xffff {
			return true
		}
	}
	return false
}

// checkJPEG walks the marker segments up to the first start-of-scan and
// requires an end-of-image marker after it. Entropy-coded data never holds
// 0xFFD9 (0xFF bytes are stuffed), so a file cut short has none; skipping
// the segments first keeps an EXIF thumbnail's EOI from fooling the check.
func checkJPEG(data []byte) error {
	i := 2
	for {
		if i+4 > len(data) {
			return errors.New("the JPEG ends before its image data")
		}
		if data[i] != 0xFF {
			return fmt.Errorf("JPEG marker expected at byte %d", i)
		}
		marker := data[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 {
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if marker == 0xDA {
			if bytes.LastIndex(data[i:], []byte{0xFF, 0xD9}) < 0 {
				return errors.New("the JPEG is cut short: no end-of-image marker after its image data")
			}
			return nil
		}
		i += 2 + n
	}
}

// jpegOrientation returns the EXIF orientation tag (1..8) of a JPEG, 1
// when absent or unreadable.
func jpegOrientation(data []byte) int {
	i := 2
	for i+4 <= len(data) && data[i] == 0xFF {
		marker := data[i+1]
		if marker == 0xDA || marker == 0xD9 {
			return 1
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if marker == 0xE1 && i+4+n-2 <= len(data) {
			if o := exifOrientation(data[i+4 : i+2+n]); o != 0 {
				return o
			}
		}
		i += 2 + n
	}
	return 1
}

// exifOrientation reads tag 0x0112 from an APP1 payload ("Exif\0\0" + TIFF).
func exifOrientation(app1 []byte) int {
	if len(app1) < 14 || string(app1[:6]) != "Exif\x00\x00" {
		return 0
	}
	tiff := app1[6:]
	var bo binary.ByteOrder
	switch string(tiff[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	ifd := int(bo.Uint32(tiff[4:]))
	if ifd+2 > len(tiff) || ifd < 8 {
		return 0
	}
	entries := int(bo.Uint16(tiff[ifd:]))
	for e := range entries {
		p := ifd + 2 + 12*e
		if p+12 > len(tiff) {
			return 0
		}
		if bo.Uint16(tiff[p:]) == 0x0112 {
			o := int(bo.Uint16(tiff[p+8:]))
			if o >= 1 && o <= 8 {
				return o
			}
			return 0
		}
	}
	return 0
}

// checkPNG walks the chunks and requires a complete IEND.
func checkPNG(data []byte) error {
	i := 8
	for {
		if i+8 > len(data) {
			return errors.New("the PNG is cut short: its final IEND chunk is missing")
		}
		n := int(binary.BigEndian.Uint32(data[i:]))
		typ := string(data[i+4 : i+8])
		end := i + 12 + n
		if n < 0 || end > len(data) {
			return fmt.Errorf("the PNG is cut short inside its %s chunk", typ)
		}
		if typ == "IEND" {
			return nil
		}
		i = end
	}
}

// checkRIFF compares a WebP's RIFF length with the file length.
func checkRIFF(data []byte) error {
	if len(data) < 12 {
		return errors.New("the WebP is cut short")
	}
	if want := int(binary.LittleEndian.Uint32(data[4:])) + 8; want > len(data) {
		return fmt.Errorf("the WebP is cut short: %d of %d bytes", len(data), want)
	}
	return nil
}

// checkBMP requires the pixel array the header describes.
func checkBMP(data []byte) error {
	if len(data) < 30 {
		return errors.New("the BMP is cut short")
	}
	offset := int(binary.LittleEndian.Uint32(data[10:]))
	w := int(int32(binary.LittleEndian.Uint32(data[18:])))
	h := int(int32(binary.LittleEndian.Uint32(data[22:])))
	bpp := int(binary.LittleEndian.Uint16(data[28:]))
	if h < 0 {
		h = -h
	}
	compression := uint32(0)
	if len(data) >= 34 {
		compression = binary.LittleEndian.Uint32(data[30:])
	}
	if compression != 0 && compression != 3 {
		return nil // compressed pixel arrays have no fixed size
	}
	stride := ((w*bpp + 31) / 32) * 4
	if want := offset + stride*h; want > len(data) {
		return fmt.Errorf("the BMP is cut short: %d of %d bytes", len(data), want)
	}
	return nil
}
