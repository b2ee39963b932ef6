package main

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// stepProgress reports steps of a long run (failovers of a benchmark
// series). On a terminal it is a bar redrawn in place; elsewhere (a CI log,
// tee) it prints one line per finished step, since redraws would pile up
// into one long line.
type stepProgress struct {
	w           io.Writer
	label       string
	done, total int
	bar         *progressbar.ProgressBar // nil off a terminal
}

func newStepProgress(w io.Writer, label string, total int) *stepProgress {
	p := &stepProgress{w: w, label: label, total: total}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	}
	return p
}

// Step records one finished step; note (say, its duration) is shown with it.
func (p *stepProgress) Step(note string) {
	p.done++
	if p.bar == nil {
		fmt.Fprintf(p.w, "%s: %d/%d %s\n", p.label, p.done, p.total, note)
		return
	}
	p.bar.Describe(p.label + " " + note)
	_ = p.bar.Add(1) // writes to the terminal; nothing to recover on error
}
