package dataset

import "fmt"

// Severity says whether a problem stops an image from training.
type Severity int

const (
	// Warning: the image trains after a conversion the user may want to
	// know about (grayscale to RGB, alpha composited on white, ...).
	Warning Severity = iota + 1
	// Error: the file is skipped by training.
	Error
)

func (s Severity) String() string {
	switch s {
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// Kind names a problem; the UI may pick an icon by it.
type Kind string

// The problems a scan detects.
const (
	EmptyFile         Kind = "empty file"
	Unreadable        Kind = "unreadable"
	NotAnImage        Kind = "not an image"
	Truncated         Kind = "truncated"
	Corrupt           Kind = "corrupt"
	TooLarge          Kind = "too many pixels"
	SixteenBit        Kind = "16-bit"
	CMYK              Kind = "CMYK"
	Grayscale         Kind = "grayscale"
	Transparent       Kind = "transparency"
	ExtensionMismatch Kind = "extension mismatch"
	CaptionNotUTF8    Kind = "caption not UTF-8"
	CaptionUnreadable Kind = "caption unreadable"
	SharedCaption     Kind = "shared caption"
)

// Problem is one issue with a file.
type Problem struct {
	Severity Severity
	Kind     Kind
	// Detail explains the problem in a sentence fit for the user.
	Detail string
}

func (p Problem) String() string {
	if p.Detail == "" {
		return fmt.Sprintf("%s: %s", p.Severity, p.Kind)
	}
	return fmt.Sprintf("%s: %s: %s", p.Severity, p.Kind, p.Detail)
}
