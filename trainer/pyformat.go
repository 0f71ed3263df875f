package trainer

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// kohya builds its metadata as str() of Python values and json.dumps() of
// dicts; AUTOMATIC1111 and civitai parse those strings, so they are
// reproduced exactly here.

// pyFloat is Python's repr(float): the shortest digits that round-trip,
// positional for exponents -4 to 15 with at least one digit after the point
// ("0.0001", "1.0", "1234567.0"), scientific outside ("1e-05", "1e+16").
func pyFloat(x float64) string {
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(x, 'e', -1, 64) // -d.ddde±XX
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		esign := "+"
		if exp < 0 {
			esign, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, esign, exp)
	}
	point := exp + 1 // digits before the decimal point
	switch {
	case point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		return sign + digits + strings.Repeat("0", point-len(digits)) + ".0"
	}
	return sign + digits[:point] + "." + digits[point:]
}

// pyBool is str(bool).
func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// pyOptFloat is str() of an Optional[float]: "None" when nil.
func pyOptFloat(x *float64) string {
	if x == nil {
		return "None"
	}
	return pyFloat(*x)
}

// pyFloatOrNone is str() of a float option whose sd-scripts default is None
// and whose 0 means off: "None" for 0.
func pyFloatOrNone(x float64) string {
	if x == 0 {
		return "None"
	}
	return pyFloat(x)
}

// pyObject is a JSON object whose keys keep their order, like a Python dict.
type pyObject []pyItem

type pyItem struct {
	Key   string
	Value any
}

// pyJSON is json.dumps(v) with Python's defaults: ", " and ": " separators,
// non-ASCII escaped as \uXXXX, floats as repr, NaN and Infinity bare. Go
// maps are written with their keys sorted (numerically when all keys are
// integers, as kohya's bucket indexes), pyObject in its order.
func pyJSON(v any) string {
	var b strings.Builder
	writePyJSON(&b, reflect.ValueOf(v))
	return b.String()
}

func writePyJSON(b *strings.Builder, v reflect.Value) {
	if !v.IsValid() {
		b.WriteString("null")
		return
	}
	if v.Type() == reflect.TypeFor[pyObject]() {
		b.WriteByte('{')
		for i, it := range v.Interface().(pyObject) {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyString(b, it.Key)
			b.WriteString(": ")
			writePyJSON(b, reflect.ValueOf(it.Value))
		}
		b.WriteByte('}')
		return
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			b.WriteString("null")
			return
		}
		writePyJSON(b, v.Elem())
	case reflect.Bool:
		if v.Bool() {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			b.WriteString("NaN")
		case math.IsInf(f, 1):
			b.WriteString("Infinity")
		case math.IsInf(f, -1):
			b.WriteString("-Infinity")
		default:
			b.WriteString(pyFloat(f))
		}
	case reflect.String:
		writePyString(b, v.String())
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			b.WriteString("null")
			return
		}
		b.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyJSON(b, v.Index(i))
		}
		b.WriteByte(']')
	case reflect.Map:
		if v.IsNil() {
			b.WriteString("null")
			return
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, fmt.Sprint(k.Interface()))
		}
		sortKeys(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyString(b, k)
			b.WriteString(": ")
			writePyJSON(b, v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())))
		}
		b.WriteByte('}')
	default:
		writePyString(b, fmt.Sprint(v.Interface()))
	}
}

// sortKeys sorts numerically when every key is an integer, else by string.
func sortKeys(keys []string) {
	for _, k := range keys {
		if _, err := strconv.Atoi(k); err != nil {
			slices.Sort(keys)
			return
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
}

// writePyString escapes like json.dumps with ensure_ascii: everything
// outside printable ASCII becomes \uXXXX (UTF-16 surrogate pairs above
// U+FFFF), with the short forms \" \\ \b \f \n \r \t.
func writePyString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			switch {
			case r >= 0x20 && r <= 0x7e:
				b.WriteRune(r)
			case r > 0xffff:
				r -= 0x10000
				fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			default:
				fmt.Fprintf(b, `\u%04x`, r)
			}
		}
	}
	b.WriteByte('"')
}
