package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mnemo-ai/mnemo/bench/roofline"
)

// WriteJSON writes rep as indented JSON (see Report; Version is
// SchemaVersion).
func WriteJSON(w io.Writer, rep *Report) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	if err := e.Encode(rep); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// roofLabels names the probes in tables and plots.
var roofLabels = map[string]string{
	roofline.ReadDRAM:  "read (DRAM)",
	roofline.ReadCache: "read (L2)",
	roofline.ReadGo:    "read (pure Go)",
	roofline.FMAZMM:    "fp32 FMA zmm",
	roofline.FMAYMM:    "fp32 FMA ymm",
	roofline.BF16ZMM:   "bf16 dot zmm",
	roofline.VNNIZMM:   "int8 VNNI zmm",
	roofline.VNNIYMM:   "int8 VNNI ymm",
	roofline.Int8ZMM:   "int8 madd zmm",
	roofline.Int8YMM:   "int8 madd ymm",
}

// WriteTable writes rep as aligned text: the machine, the roofs for one
// thread and for rep.Threads threads, then one line per case.
func WriteTable(w io.Writer, rep *Report) error {
	ew := &errWriter{w: w}
	m := rep.Machine
	fmt.Fprintf(ew, "machine: %s (family %#x model %#x), %d logical cores, GOMAXPROCS %d, %s\n",
		m.Brand, m.Family, m.Model, m.Threads, m.GOMAXPROCS, m.GoVersion)
	single, multi := rep.Limits.Single, rep.Limits.Multi
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "roof\t1 thread\t%s\tunit\tkernel\t\n", threads(multi.Threads))
	for _, p := range roofline.Probes() {
		v1, _ := single.Value(p)
		vn, _ := multi.Value(p)
		if v1 == 0 && vn == 0 {
			continue
		}
		note := ""
		if p == roofline.ReadDRAM {
			note = single.ReadImpl
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", roofLabels[p], num(v1), num(vn), roofline.Unit(p), note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Results) > 0 {
		fmt.Fprintf(ew, "\nkernels on %s (M = 1 against the DRAM read roof, M > 1 against the path's compute roof)\n", threads(rep.Threads))
	}
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(rep.Results) > 0 {
		fmt.Fprint(tw, "impl\ttier\tformat\tprec\tpath\tshape\tM\ttime\tGB/s\tG/s\tunit\troof\tof roof\t\n")
	}
	for _, r := range rep.Results {
		frac := "-"
		roof := "-"
		if r.Roof != "" {
			roof = r.Roof
		}
		if r.Fraction > 0 {
			frac = fmt.Sprintf("%.0f%%", 100*r.Fraction)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%dx%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Impl, r.Tier, r.Format, r.Precision, r.Path, r.N, r.K, r.M,
			dur(r.Seconds), num(r.GBs), num(r.Gops), r.Unit, roof, frac)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return ew.err
}

// num formats a rate with three significant digits ("-" for zero).
func num(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func dur(s float64) string {
	d := time.Duration(s * 1e9)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", s)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3gms", s*1e3)
	default:
		return fmt.Sprintf("%.3gµs", s*1e6)
	}
}

// RoofSummary returns a one-line summary of the main roofs at rep.Threads
// threads, e.g. "read 31.2 GB/s, fp32 FMA zmm 235 GFLOP/s (2 threads)".
func RoofSummary(rep *Report) string {
	p := rep.Limits.At(rep.Threads)
	var parts []string
	for _, probe := range []string{roofline.ReadDRAM, roofline.FMAZMM, roofline.FMAYMM, roofline.BF16ZMM, roofline.VNNIZMM, roofline.Int8YMM} {
		if v, _ := p.Value(probe); v > 0 {
			parts = append(parts, fmt.Sprintf("%s %s %s", roofLabels[probe], num(v), roofline.Unit(probe)))
		}
	}
	return fmt.Sprintf("%s (%s)", strings.Join(parts, ", "), threads(p.Threads))
}

func threads(n int) string {
	if n == 1 {
		return "1 thread"
	}
	return fmt.Sprintf("%d threads", n)
}

// errWriter remembers the first write error so formatted output can be
// checked once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
