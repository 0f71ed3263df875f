package dataset

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"lorastudio/atomicfile"
)

// ErrCaptionEncoding marks a caption file that is not valid UTF-8.
var ErrCaptionEncoding = errors.New("caption is not valid UTF-8")

// ErrCaptionLocked is returned when saving a caption that must not be
// overwritten.
var ErrCaptionLocked = errors.New("caption file is protected (not UTF-8 or unreadable) and is not overwritten")

// maxCaptionBytes bounds what is read of a caption file; kohya's captions
// are one line, a megabyte is far beyond any real one.
const maxCaptionBytes = 1 << 20

// Caption is a parsed caption file.
type Caption struct {
	// Tags are the comma-separated tags of the first line, trimmed,
	// empty tags dropped.
	Tags []string
	// Tail is everything after the first line (kept on save).
	Tail string
	// CRLF is set when the first line ended in "\r\n".
	CRLF bool
}

// ParseTags splits a caption line into trimmed, non-empty tags.
func ParseTags(line string) []string {
	parts := strings.Split(line, ",")
	tags := make([]string, 0, len(parts))
	for _, p := range parts {
		if t := strings.TrimSpace(p); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// FormatCaption joins tags the way kohya writes them: ", " separated.
func FormatCaption(tags []string) string { return strings.Join(tags, ", ") }

// ParseCaption parses the content of a caption file.
func ParseCaption(text string) (Caption, error) {
	if !utf8.ValidString(text) {
		return Caption{}, ErrCaptionEncoding
	}
	text = strings.TrimPrefix(text, "\uFEFF")
	first, tail, found := strings.Cut(text, "\n")
	var c Caption
	if strings.HasSuffix(first, "\r") {
		first = strings.TrimSuffix(first, "\r")
		c.CRLF = true
	}
	if found {
		c.Tail = tail
	}
	c.Tags = ParseTags(first)
	return c, nil
}

// Format renders the caption file content for c.
func (c Caption) Format() string {
	line := FormatCaption(c.Tags)
	if c.Tail == "" {
		return line
	}
	if c.CRLF {
		return line + "\r\n" + c.Tail
	}
	return line + "\n" + c.Tail
}

// ReadCaption reads and parses a caption file. A missing file returns an
// error matching fs.ErrNotExist; invalid UTF-8 one matching
// ErrCaptionEncoding.
func ReadCaption(path string) (Caption, error) {
	f, err := os.Open(path)
	if err != nil {
		return Caption{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Caption{}, fmt.Errorf("read caption %s: %w", path, err)
	}
	if st.IsDir() {
		return Caption{}, fmt.Errorf("read caption %s: is a folder", path)
	}
	if st.Size() > maxCaptionBytes {
		return Caption{}, fmt.Errorf("read caption %s: %d bytes, more than a caption can be", path, st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := readFull(f, b); err != nil {
		return Caption{}, fmt.Errorf("read caption %s: %w", path, err)
	}
	c, err := ParseCaption(string(b))
	if err != nil {
		return Caption{}, fmt.Errorf("read caption %s: %w", path, err)
	}
	return c, nil
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// captionFile is what a save of im writes.
func (im *Image) captionFile() string {
	return Caption{Tags: im.Tags, Tail: im.captionTail, CRLF: im.crlf}.Format()
}

// SaveCaption writes im's tags to its caption file at once (atomically).
// Most callers use a Saver instead, which debounces.
func (im *Image) SaveCaption() error {
	if im.CaptionLocked {
		return fmt.Errorf("save caption %s: %w", im.CaptionPath, ErrCaptionLocked)
	}
	if err := atomicfile.WriteBytes(im.CaptionPath, []byte(im.captionFile())); err != nil {
		return fmt.Errorf("save caption: %w", err)
	}
	im.HasCaption = true
	return nil
}
