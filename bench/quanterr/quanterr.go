// Package quanterr measures the quantization error of mnemo's weight
// formats: it quantizes seeded random matrices with each format (and, where
// it applies, with the error-minimising scale search) and reports the RMSE
// of the dequantized weights relative to the RMS of the float32 originals.
package quanterr

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"text/tabwriter"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// Options sets what Run measures. Zero fields take the defaults.
type Options struct {
	// Rows and Cols are the matrix shape (default 256 × 4096). Cols must
	// be a multiple of 32.
	Rows, Cols int
	// Seed seeds the generator; the matrices are a function of it.
	Seed uint64
	// Types lists the formats to measure (default: every Type but F32).
	Types []format.Type
}

// Distribution names used in Result.Dist.
const (
	Gaussian = "gaussian"   // N(0, 0.02²)
	StudentT = "student-t3" // Student's t, ν = 3, scale 0.02: heavy tails
)

// Result is the error of one format on one matrix.
type Result struct {
	Type   format.Type `json:"type"`
	Search bool        `json:"search"` // format.Options.Search was set
	Dist   string      `json:"dist"`
	// BitsPerWeight is the encoded size of a row per element, scales
	// included (NVFP4's per-tensor scale is not counted).
	BitsPerWeight float64 `json:"bits_per_weight"`
	// RelRMSE is sqrt(mean((w - deq)²)) / sqrt(mean(w²)).
	RelRMSE float64 `json:"rel_rmse"`
	// MaxRelErr is the largest |w - deq| divided by the largest |w|.
	MaxRelErr float64 `json:"max_rel_err"`
}

// Searchable reports whether format.Options.Search changes how t is
// quantized (the MX formats and NVFP4).
func Searchable(t format.Type) bool {
	switch t {
	case format.MXF8E4M3, format.MXF8E5M2, format.MXFP4, format.NVFP4:
		return true
	}
	return false
}

func (o Options) withDefaults() Options {
	if o.Rows <= 0 {
		o.Rows = 256
	}
	if o.Cols <= 0 {
		o.Cols = 4096
	}
	if o.Types == nil {
		for _, t := range format.Types() {
			if t != format.F32 {
				o.Types = append(o.Types, t)
			}
		}
	}
	return o
}

// Run measures every format in opts.Types on a Gaussian and a Student-t
// matrix, without and (for searchable formats) with Search. Results come
// in the order distribution, type, search. It panics if Cols is not a
// multiple of every measured type's block size (programmer error).
func Run(opts Options) []Result {
	opts = opts.withDefaults()
	src := rand.NewPCG(opts.Seed, 0x6d6e656d6f) // "mnemo"
	dists := []struct {
		name string
		rand func() float64
	}{
		{Gaussian, distuv.Normal{Mu: 0, Sigma: 0.02, Src: src}.Rand},
		{StudentT, distuv.StudentsT{Mu: 0, Sigma: 0.02, Nu: 3, Src: src}.Rand},
	}
	var res []Result
	for _, d := range dists {
		w := make([]float32, opts.Rows*opts.Cols)
		for i := range w {
			w[i] = float32(d.rand())
		}
		for _, t := range opts.Types {
			for _, search := range []bool{false, true} {
				if search && !Searchable(t) {
					continue
				}
				r := measure(t, w, opts.Cols, search)
				r.Dist = d.name
				res = append(res, r)
			}
		}
	}
	return res
}

// measure quantizes the rows×cols matrix w row by row and compares.
func measure(t format.Type, w []float32, cols int, search bool) Result {
	opt := format.Options{Search: search, TensorScale: format.NVFP4TensorScale(w)}
	enc := make([]byte, t.RowBytes(cols))
	dec := make([]float32, cols)
	var se, ss, maxErr, amax float64
	for r := 0; r < len(w); r += cols {
		row := w[r : r+cols]
		format.QuantizeRow(t, enc, row, opt)
		format.DequantizeRow(t, dec, enc, opt.TensorScale)
		for j, v := range row {
			e := float64(dec[j]) - float64(v)
			se += e * e
			ss += float64(v) * float64(v)
			maxErr = max(maxErr, math.Abs(e))
			amax = max(amax, math.Abs(float64(v)))
		}
	}
	return Result{
		Type:          t,
		Search:        search,
		BitsPerWeight: 8 * float64(len(enc)) / float64(cols),
		RelRMSE:       math.Sqrt(se / ss),
		MaxRelErr:     maxErr / amax,
	}
}

// Fprint writes results as a table: one line per format and search
// setting, one relative-RMSE column per distribution.
func Fprint(w io.Writer, results []Result) error {
	type key struct {
		t      format.Type
		search bool
	}
	var keys []key
	var dists []string
	cell := map[key]map[string]Result{}
	for _, r := range results {
		k := key{r.Type, r.Search}
		if cell[k] == nil {
			cell[k] = map[string]Result{}
			keys = append(keys, k)
		}
		if !contains(dists, r.Dist) {
			dists = append(dists, r.Dist)
		}
		cell[k][r.Dist] = r
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "format\tsearch\tbits/w\t")
	for _, d := range dists {
		fmt.Fprintf(tw, "%s rel-rmse\t%s max-err\t", d, d)
	}
	fmt.Fprintln(tw)
	for _, k := range keys {
		var bits float64
		for _, r := range cell[k] {
			bits = r.BitsPerWeight
		}
		s := "no"
		if k.search {
			s = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t", k.t, s, bits)
		for _, d := range dists {
			if r, ok := cell[k][d]; ok {
				fmt.Fprintf(tw, "%.3e\t%.3e\t", r.RelRMSE, r.MaxRelErr)
			} else {
				fmt.Fprint(tw, "-\t-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write quantization error table: %w", err)
	}
	return nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
