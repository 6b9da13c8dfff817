package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/mnemo-ai/mnemo/bench/roofline"
)

// Plot size: the data area on the left, the legend in a column on the right.
const (
	plotWidth   = 11 * vg.Inch
	plotHeight  = 7 * vg.Inch
	legendWidth = 2.6 * vg.Inch
)

// WritePlot draws rep as a roofline plot in PNG: x is the arithmetic
// intensity (FLOP per weight byte), y the achieved GFLOP/s (GOP/s for int8
// paths), both logarithmic. The roofs at rep.Threads threads are lines: the
// DRAM read bandwidth as the diagonal intensity × GB/s and each compute peak
// as a horizontal line where it lies below the diagonal. Each case is a
// point, coloured by weight format and shaped by implementation.
func WritePlot(w io.Writer, rep *Report) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("mnemo kernels vs. roofline: %s, %d threads", rep.Machine.Brand, rep.Threads)
	p.X.Label.Text = "arithmetic intensity (FLOP per weight byte)"
	p.Y.Label.Text = "GFLOP/s (GOP/s for int8 paths)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	leg := plot.NewLegend()

	// The x range covers every point with a margin; without points, 0.1..1000.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rep.Results {
		if r.Intensity > 0 && r.Gops > 0 {
			lo, hi = min(lo, r.Intensity), max(hi, r.Intensity)
		}
	}
	if lo > hi {
		lo, hi = 0.1, 1000
	}
	lo, hi = lo/2, hi*2

	peaks := rep.Limits.At(rep.Threads)
	bw := peaks.ReadGBs
	type roof struct {
		label string
		peak  float64
	}
	var roofs []roof
	for _, probe := range roofline.Probes() {
		v, _ := peaks.Value(probe)
		if v > 0 && roofline.Unit(probe) != "GB/s" {
			roofs = append(roofs, roof{fmt.Sprintf("%s %.0f %s", roofLabels[probe], v, roofline.Unit(probe)), v})
			if bw > 0 {
				hi = max(hi, 2*v/bw) // show every knee
			}
		}
	}
	// Sample [from, hi] densely enough for a clean log-log line.
	samples := func(from float64) []float64 {
		var xs []float64
		for x := from; x < hi; x *= 1.05 {
			xs = append(xs, x)
		}
		return append(xs, hi)
	}
	style := 0
	if bw > 0 {
		var xys plotter.XYs
		for _, x := range samples(lo) {
			xys = append(xys, plotter.XY{X: x, Y: x * bw})
		}
		if err := addRoof(p, &leg, xys, fmt.Sprintf("read %.1f GB/s", bw), style); err != nil {
			return err
		}
		style++
	}
	for _, r := range roofs {
		from := lo
		if bw > 0 {
			from = max(lo, r.peak/bw) // the compute roof starts at its knee
		}
		xys := plotter.XYs{{X: from, Y: r.peak}, {X: hi, Y: r.peak}}
		if err := addRoof(p, &leg, xys, r.label, style); err != nil {
			return err
		}
		style++
	}

	// Points grouped by (impl, format): colour by format, glyph by impl.
	var formats, impls []string
	for _, r := range rep.Results {
		if !slices.Contains(formats, r.Format) {
			formats = append(formats, r.Format)
		}
		if !slices.Contains(impls, r.Impl) {
			impls = append(impls, r.Impl)
		}
	}
	glyph := func(i int) draw.GlyphDrawer { return plotutil.Shape(i) }
	for fi, f := range formats {
		for ii, impl := range impls {
			var xys plotter.XYs
			for _, r := range rep.Results {
				if r.Format == f && r.Impl == impl && r.Intensity > 0 && r.Gops > 0 {
					xys = append(xys, plotter.XY{X: r.Intensity, Y: r.Gops})
				}
			}
			if len(xys) == 0 {
				continue
			}
			s, err := plotter.NewScatter(xys)
			if err != nil {
				return fmt.Errorf("plot %s/%s: %w", impl, f, err)
			}
			s.GlyphStyle = draw.GlyphStyle{Color: formatColor(fi), Radius: vg.Points(3.5), Shape: glyph(ii)}
			p.Add(s)
		}
	}
	for fi, f := range formats {
		leg.Add("format "+f, thumb(formatColor(fi), draw.CircleGlyph{}))
	}
	for ii, impl := range impls {
		leg.Add("impl "+impl, thumb(color.Gray{Y: 60}, glyph(ii)))
	}

	// Explicit ranges: log axes need positive limits even with no data.
	ylo, yhi := math.Inf(1), math.Inf(-1)
	for _, r := range rep.Results {
		if r.Intensity > 0 && r.Gops > 0 {
			ylo, yhi = min(ylo, r.Gops), max(yhi, r.Gops)
		}
	}
	for _, r := range roofs {
		ylo, yhi = min(ylo, r.peak), max(yhi, r.peak)
	}
	if bw > 0 {
		ylo, yhi = min(ylo, lo*bw), max(yhi, lo*bw)
	}
	if ylo > yhi {
		ylo, yhi = 1, 1000
	}
	p.X.Min, p.X.Max = lo, hi
	p.Y.Min, p.Y.Max = ylo/1.5, yhi*1.5

	c := vgimg.New(plotWidth+legendWidth, plotHeight)
	dc := draw.New(c)
	p.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
	leg.Top, leg.Left = true, true
	leg.Draw(draw.Crop(dc, plotWidth+vg.Points(6), 0, 0, -vg.Points(24)))
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	return nil
}

func addRoof(p *plot.Plot, leg *plot.Legend, xys plotter.XYs, label string, i int) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("plot roof %s: %w", label, err)
	}
	l.LineStyle.Width = vg.Points(1.5)
	l.LineStyle.Color = color.Gray{Y: uint8(20 + 30*(i%5))}
	l.LineStyle.Dashes = plotutil.Dashes(i)
	p.Add(l)
	leg.Add(label, l)
	return nil
}

// palette is Tableau's 10 colours plus two, for the weight formats.
var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xd6, 0x27, 0x28, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
	{0xbc, 0xbd, 0x22, 0xff}, {0x17, 0xbe, 0xcf, 0xff}, {0x00, 0x00, 0x80, 0xff}, {0x80, 0x80, 0x00, 0xff},
}

func formatColor(i int) color.Color { return palette[i%len(palette)] }

// glyphThumb is a legend icon of one glyph.
type glyphThumb struct{ style draw.GlyphStyle }

func (g glyphThumb) Thumbnail(c *draw.Canvas) { c.DrawGlyph(g.style, c.Center()) }

func thumb(col color.Color, g draw.GlyphDrawer) plot.Thumbnailer {
	return glyphThumb{draw.GlyphStyle{Color: col, Radius: vg.Points(3.5), Shape: g}}
}
