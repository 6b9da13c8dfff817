package chat

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// filterToJSON is Hugging Face's tojson: json.dumps(x, ensure_ascii=False,
// indent=indent), i.e. Python's separators (", " and ": "), no HTML
// escaping, non-ASCII kept. Go maps have no order, so keys come out sorted.
func filterToJSON(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	indent := -1
	ensureASCII := false
	for k, v := range params.KwArgs {
		switch k {
		case "indent":
			if !v.IsNil() {
				if !v.IsInteger() {
					return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("tojson: indent must be an integer")))
				}
				indent = v.Integer()
			}
		case "ensure_ascii":
			ensureASCII = v.IsTrue()
		case "sort_keys", "separators":
		default:
			return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("tojson: unexpected argument %q", k)))
		}
	}
	if len(params.Args) > 0 {
		if params.Args[0].IsInteger() {
			indent = params.Args[0].Integer()
		}
	}
	var b strings.Builder
	if err := writeJSON(&b, in.Interface(), indent, 0, ensureASCII); err != nil {
		return exec.AsValue(exec.ErrInvalidCall(err))
	}
	return exec.AsSafeValue(b.String())
}

func writeJSON(b *strings.Builder, v any, indent, depth int, ascii bool) error {
	if depth > 100 {
		return fmt.Errorf("tojson: value nested too deeply")
	}
	newline := func(d int) {
		if indent >= 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", indent*d))
		}
	}
	itemSep := ", "
	if indent >= 0 {
		itemSep = ","
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
		return nil
	case *exec.Value:
		return writeJSON(b, x.Interface(), indent, depth, ascii)
	case exec.Dict:
		return writeJSONDict(b, &x, indent, depth, ascii)
	case *exec.Dict:
		return writeJSONDict(b, x, indent, depth, ascii)
	case string:
		writeJSONString(b, x, ascii)
		return nil
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
		return nil
	case float64:
		writeJSONFloat(b, x)
		return nil
	case float32:
		writeJSONFloat(b, float64(x))
		return nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString(strconv.FormatInt(rv.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		b.WriteString(strconv.FormatUint(rv.Uint(), 10))
	case reflect.Slice, reflect.Array:
		if rv.Len() == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i := range rv.Len() {
			if i > 0 {
				b.WriteString(itemSep)
			}
			newline(depth + 1)
			if err := writeJSON(b, rv.Index(i).Interface(), indent, depth+1, ascii); err != nil {
				return err
			}
		}
		newline(depth)
		b.WriteByte(']')
	case reflect.Map:
		if rv.Len() == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := rv.MapKeys()
		names := make([]string, len(keys))
		byName := make(map[string]reflect.Value, len(keys))
		for i, k := range keys {
			names[i] = fmt.Sprint(k.Interface())
			byName[names[i]] = k
		}
		slices.Sort(names)
		b.WriteByte('{')
		for i, n := range names {
			if i > 0 {
				b.WriteString(itemSep)
			}
			newline(depth + 1)
			writeJSONString(b, n, ascii)
			b.WriteString(": ")
			if err := writeJSON(b, rv.MapIndex(byName[n]).Interface(), indent, depth+1, ascii); err != nil {
				return err
			}
		}
		newline(depth)
		b.WriteByte('}')
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			b.WriteString("null")
			return nil
		}
		return writeJSON(b, rv.Elem().Interface(), indent, depth, ascii)
	default:
		return fmt.Errorf("tojson: cannot encode %T", v)
	}
	return nil
}

// writeJSONDict writes a dict literal of the template, in its order (as
// Python keeps it).
func writeJSONDict(b *strings.Builder, d *exec.Dict, indent, depth int, ascii bool) error {
	if len(d.Pairs) == 0 {
		b.WriteString("{}")
		return nil
	}
	b.WriteByte('{')
	for i, p := range d.Pairs {
		if i > 0 {
			if indent >= 0 {
				b.WriteByte(',')
			} else {
				b.WriteString(", ")
			}
		}
		if indent >= 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", indent*(depth+1)))
		}
		writeJSONString(b, p.Key.String(), ascii)
		b.WriteString(": ")
		if err := writeJSON(b, p.Value, indent, depth+1, ascii); err != nil {
			return err
		}
	}
	if indent >= 0 {
		b.WriteByte('\n')
		b.WriteString(strings.Repeat(" ", indent*depth))
	}
	b.WriteByte('}')
	return nil
}

// writeJSONFloat writes a float the way Python prints a JSON number that
// was decoded from JSON: integral values as integers.
func writeJSONFloat(b *strings.Builder, f float64) {
	switch {
	case math.IsNaN(f):
		b.WriteString("NaN")
	case math.IsInf(f, 1):
		b.WriteString("Infinity")
	case math.IsInf(f, -1):
		b.WriteString("-Infinity")
	case f == math.Trunc(f) && math.Abs(f) < 1e16:
		b.WriteString(strconv.FormatFloat(f, 'f', -1, 64))
	default:
		b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	}
}

func writeJSONString(b *strings.Builder, s string, ascii bool) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || r == utf8.RuneError && !ascii:
				if r == utf8.RuneError {
					b.WriteRune(r)
					continue
				}
				fmt.Fprintf(b, `\u%04x`, r)
			case ascii && r > 0x7E:
				if r > 0xFFFF {
					r -= 0x10000
					fmt.Fprintf(b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
				} else {
					fmt.Fprintf(b, `\u%04x`, r)
				}
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// strftime formats t with the C strftime directives templates use.
func strftime(format string, t time.Time) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		pad := true
		if format[i] == '-' && i+1 < len(format) { // glibc: no padding
			pad = false
			i++
		}
		num := func(n, width int) {
			s := strconv.Itoa(n)
			if pad {
				for len(s) < width {
					s = "0" + s
				}
			}
			b.WriteString(s)
		}
		switch format[i] {
		case 'Y':
			num(t.Year(), 4)
		case 'y':
			num(t.Year()%100, 2)
		case 'm':
			num(int(t.Month()), 2)
		case 'd':
			num(t.Day(), 2)
		case 'e':
			s := strconv.Itoa(t.Day())
			if len(s) < 2 && pad {
				s = " " + s
			}
			b.WriteString(s)
		case 'H':
			num(t.Hour(), 2)
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			num(h, 2)
		case 'M':
			num(t.Minute(), 2)
		case 'S':
			num(t.Second(), 2)
		case 'j':
			num(t.YearDay(), 3)
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'B':
			b.WriteString(t.Month().String())
		case 'b', 'h':
			b.WriteString(t.Month().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}
