package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"slices"
)

// The failover plot is drawn with the standard library only: a stacked
// bar per failover (its steps) above, the distribution (CDF) of failover
// times per series below. Axis ticks are labelled in milliseconds with a
// 3x5 pixel font; colours are explained in the legend strip and in
// docs/failover.md.

var glyphs = map[rune][5]string{
	'0': {"###", "#.#", "#.#", "#.#", "###"}, '1': {".#.", "##.", ".#.", ".#.", "###"},
	'2': {"###", "..#", "###", "#..", "###"}, '3': {"###", "..#", "###", "..#", "###"},
	'4': {"#.#", "#.#", "###", "..#", "..#"}, '5': {"###", "#..", "###", "..#", "###"},
	'6': {"###", "#..", "###", "#.#", "###"}, '7': {"###", "..#", "..#", "..#", "..#"},
	'8': {"###", "#.#", "###", "#.#", "###"}, '9': {"###", "#.#", "###", "..#", "###"},
	'.': {"...", "...", "...", "...", ".#."}, 'm': {"...", "...", "###", "###", "#.#"},
	's': {"...", ".##", ".#.", "..#", "##."}, '%': {"#.#", "..#", ".#.", "#..", "#.#"},
	' ': {"...", "...", "...", "...", "..."}, 'n': {"...", "...", "##.", "#.#", "#.#"},
	'k': {"#..", "#.#", "##.", "#.#", "#.#"}, 'i': {".#.", "...", ".#.", ".#.", ".#."},
	'l': {"#..", "#..", "#..", "#..", "###"}, 't': {".#.", "###", ".#.", ".#.", ".##"},
	'o': {"...", "###", "#.#", "#.#", "###"}, 'p': {"...", "###", "#.#", "###", "#.."},
	'x': {"...", "#.#", ".#.", ".#.", "#.#"}, '-': {"...", "...", "###", "...", "..."},
	',': {"...", "...", "...", ".#.", "#.."},
}

func drawText(img *image.RGBA, x, y int, s string, c color.Color) {
	const scale = 2
	for _, r := range s {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs[' ']
		}
		for gy, row := range g {
			for gx, px := range row {
				if px == '#' {
					draw.Draw(img, image.Rect(x+gx*scale, y+gy*scale, x+(gx+1)*scale, y+(gy+1)*scale), image.NewUniform(c), image.Point{}, draw.Src)
				}
			}
		}
		x += 4 * scale
	}
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

func msLabel(ns int64) string { return fmt.Sprintf("%.3gms", float64(ns)/1e6) }

var (
	colDetect = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	colPerm   = color.RGBA{0xff, 0x7f, 0x0e, 0xff}
	colCatch  = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	colFirst  = color.RGBA{0x2c, 0xa0, 0x2c, 0xff}
	colClient = color.RGBA{0xa0, 0xa0, 0xa0, 0xff}
	seriesCol = []color.RGBA{{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}}
)

func writeFailoverPNG(path string, series []failoverSeries) error {
	const W, H, left, right = 1200, 820, 90, 20
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	fill(img, img.Bounds(), color.White)
	black := color.Black
	grey := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}

	// Top: one stacked bar per failover, series side by side.
	top := image.Rect(left, 40, W-right, 390)
	var maxNs int64 = 1
	total := 0
	for _, s := range series {
		for _, f := range s.Faults {
			maxNs = max(maxNs, f.FailoverNs)
			total++
		}
	}
	gap := 8
	slots := total + gap*max(len(series)-1, 0)
	barW := max(1, top.Dx()/max(slots, 1))
	y := func(ns int64, r image.Rectangle, maxV int64) int {
		return r.Max.Y - int(float64(ns)/float64(maxV)*float64(r.Dy()))
	}
	for t := 0; t <= 4; t++ {
		v := maxNs * int64(t) / 4
		yy := y(v, top, maxNs)
		fill(img, image.Rect(top.Min.X, yy, top.Max.X, yy+1), grey)
		drawText(img, 4, yy-5, msLabel(v), black)
	}
	x := top.Min.X
	for si, s := range series {
		for _, f := range s.Faults {
			b := f.Steps
			prev := int64(0)
			seg := func(ns int64, c color.Color) {
				if ns <= 0 {
					return
				}
				fill(img, image.Rect(x, y(prev+ns, top, maxNs), x+max(barW-1, 1), y(prev, top, maxNs)), c)
				prev += ns
			}
			if b.Complete {
				seg(b.DetectNs, colDetect)
				seg(b.PermissionNs, colPerm)
				seg(b.CatchUpNs, colCatch)
				seg(b.FirstCommitNs, colFirst)
			}
			seg(f.FailoverNs-prev, colClient)
			x += barW
		}
		fill(img, image.Rect(x-barW*len(s.Faults), top.Max.Y+2, x, top.Max.Y+6), seriesCol[si%len(seriesCol)])
		x += gap * barW
	}
	fill(img, image.Rect(top.Min.X, top.Max.Y, top.Max.X, top.Max.Y+1), black)
	// Legend: detection, permission, prepare+catch-up, first commit, to client.
	lx := left
	for _, l := range []struct {
		c    color.Color
		name string
	}{{colDetect, "1"}, {colPerm, "2"}, {colCatch, "3"}, {colFirst, "4"}, {colClient, "5"}} {
		fill(img, image.Rect(lx, 12, lx+14, 26), l.c)
		drawText(img, lx+18, 14, l.name, black)
		lx += 50
	}

	// Bottom: CDF of failover times per series.
	bot := image.Rect(left, 440, W-right, H-40)
	var maxF int64 = 1
	for _, s := range series {
		for _, f := range s.Faults {
			maxF = max(maxF, f.FailoverNs)
		}
	}
	for t := 0; t <= 4; t++ {
		v := maxF * int64(t) / 4
		xx := bot.Min.X + int(float64(v)/float64(maxF)*float64(bot.Dx()-1))
		fill(img, image.Rect(xx, bot.Min.Y, xx+1, bot.Max.Y), grey)
		drawText(img, xx-20, bot.Max.Y+8, msLabel(v), black)
	}
	for t := 0; t <= 4; t++ {
		yy := bot.Max.Y - t*bot.Dy()/4
		fill(img, image.Rect(bot.Min.X, yy, bot.Max.X, yy+1), grey)
		drawText(img, 20, yy-5, fmt.Sprintf("%d%%", t*25), black)
	}
	for si, s := range series {
		var v []int64
		for _, f := range s.Faults {
			v = append(v, f.FailoverNs)
		}
		slices.Sort(v)
		c := seriesCol[si%len(seriesCol)]
		px, py := bot.Min.X, bot.Max.Y
		for i, ns := range v {
			xx := bot.Min.X + int(float64(ns)/float64(maxF)*float64(bot.Dx()-1))
			yy := bot.Max.Y - (i+1)*bot.Dy()/len(v)
			fill(img, image.Rect(px, py-1, xx+1, py+1), c) // horizontal
			fill(img, image.Rect(xx-1, yy, xx+1, py+1), c) // vertical
			px, py = xx, yy
		}
		fill(img, image.Rect(W-200, 450+si*20, W-186, 464+si*20), c)
		drawText(img, W-180, 452+si*20, fmt.Sprintf("%d %s", s.Nodes, map[faultKind]string{faultKill: "kill", faultFreeze: "stop"}[s.Kind]), black)
	}
	fill(img, image.Rect(bot.Min.X, bot.Max.Y, bot.Max.X, bot.Max.Y+1), black)
	fill(img, image.Rect(bot.Min.X, bot.Min.Y, bot.Min.X+1, bot.Max.Y), black)

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
