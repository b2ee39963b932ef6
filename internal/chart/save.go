package chart

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Save writes rows of plots, top row first, to path as PNG (.png) or SVG
// (.svg). Rows share the height equally; the plots of a row share its
// width, and their axes are aligned; when every row has as many plots, the
// axes of a column line up too.
func Save(path string, width, height vg.Length, rows ...[]*plot.Plot) error {
	if len(rows) == 0 {
		return fmt.Errorf("chart: %s: nothing to draw", path)
	}
	var c vg.CanvasWriterTo
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".png":
		// 144 dpi: labels stay sharp when the picture is shown scaled down.
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(144))}
	case ".svg":
		c = vgsvg.New(width, height)
	default:
		return fmt.Errorf("chart: %s: extension %q is neither .png nor .svg", path, ext)
	}
	dc := draw.New(c)
	pad := draw.Tiles{PadX: vg.Points(16), PadY: vg.Points(16), PadTop: vg.Points(4), PadBottom: vg.Points(4),
		PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	if cols := len(rows[0]); cols > 0 && !slices.ContainsFunc(rows, func(r []*plot.Plot) bool { return len(r) != cols }) {
		// Rows of equal length form one grid: a column's axes line up
		// from top to bottom (a timeline's plots share their time axis).
		pad.Rows, pad.Cols = len(rows), cols
		for r, cvs := range plot.Align(rows, pad, dc) {
			for i, cv := range cvs {
				rows[r][i].Draw(cv)
			}
		}
	} else {
		strips := draw.Tiles{Rows: len(rows), Cols: 1, PadY: vg.Points(8)}
		for r, row := range rows {
			if len(row) == 0 {
				continue
			}
			t := pad
			t.Rows, t.Cols, t.PadY = 1, len(row), 0
			for i, cv := range plot.Align([][]*plot.Plot{row}, t, strips.At(dc, 0, r))[0] {
				row[i].Draw(cv)
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("chart: %s: %w", path, err)
	}
	return f.Close()
}
