package console

import (
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/tasks"
)

// The charts are SVG drawn here rather than by a charting script: they
// load as images under the console's CSP, need no script, and the three
// shapes they take (stacked bars, step lines) are a few dozen lines.
const (
	chartW, chartH = 720, 240
	padL, padR     = 48, 16
	padT, padB     = 16, 56
)

// finalPhases in the order the bars stack them, with their colours (the
// same as the phase badges of console.css).
var finalPhases = []struct {
	phase tasks.Phase
	color string
}{
	{tasks.PhaseSucceeded, "#1a7f37"},
	{tasks.PhaseFailed, "#cf222e"},
	{tasks.PhaseTimedOut, "#9a6700"},
	{tasks.PhaseAborted, "#57606a"},
}

// seriesColors tell the GPU kinds apart.
var seriesColors = []string{"#0969da", "#8250df", "#bf3989", "#1a7f37", "#9a6700", "#cf222e"}

// chart serves /console/charts/{runs,queue,gpus}.svg to those the API
// shows the queue (GET /queue): the charts are about everyone's runs.
func (c *Console) chart(w http.ResponseWriter, r *http.Request) {
	if status := c.ask(r, "/queue"); status != http.StatusOK {
		http.Error(w, http.StatusText(status), status)
		return
	}
	c.sampler.Start()
	c.sampler.Refresh(r.Context())
	snap := c.sampler.Snapshot()
	var draw func(io.Writer, Snapshot)
	switch chi.URLParam(r, "chart") {
	case "runs":
		draw = drawRuns
	case "queue":
		draw = drawQueue
	case "gpus":
		draw = drawGPUs
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	draw(w, snap)
}

// frame is a chart's axes over the last Window, values 0..top.
type frame struct {
	w     io.Writer
	start time.Time
	top   float64
}

func (f frame) x(t time.Time) float64 {
	return padL + float64(chartW-padL-padR)*t.Sub(f.start).Seconds()/Window.Seconds()
}

func (f frame) y(v float64) float64 {
	return padT + float64(chartH-padT-padB)*(1-v/f.top)
}

// open writes the SVG's head, title, description, axes and grid.
func open(w io.Writer, now time.Time, top int, title, desc string) frame {
	f := frame{w: w, start: now.Add(-Window), top: float64(niceTop(top))}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="t d" font-family="system-ui, sans-serif" font-size="12">`,
		chartW, chartH, chartW, chartH)
	fmt.Fprintf(w, `<title id="t">%s</title><desc id="d">%s</desc>`, html.EscapeString(title), html.EscapeString(desc))
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="#ffffff"/>`, chartW, chartH)
	for i := 0; i <= 4; i++ {
		v := f.top * float64(i) / 4
		y := f.y(v)
		fmt.Fprintf(w, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#d0d7de"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end" fill="#57606a">%s</text>`, padL-6, y+4, trimFloat(v))
	}
	for m := 0; m <= 60; m += 10 {
		x := f.x(f.start.Add(time.Duration(m) * time.Minute))
		label := fmt.Sprintf("-%dm", 60-m)
		if m == 60 {
			label = "now"
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle" fill="#57606a">%s</text>`, x, chartH-padB+16, label)
	}
	return f
}

// legend writes names and colours under the plot.
func legend(w io.Writer, names, colors []string) {
	x := padL
	for i, n := range names {
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" fill="#24292f">%s</text>`,
			x, chartH-20, colors[i], x+14, chartH-11, html.EscapeString(n))
		x += 24 + 7*len(n)
	}
}

func drawRuns(w io.Writer, s Snapshot) {
	first := s.Now.Add(-Window).Unix() / 60
	top, total := 1, 0
	for m := first; m <= s.Now.Unix()/60; m++ {
		n := 0
		for _, c := range s.Ended[m] {
			n += c
		}
		top, total = max(top, n), total+n
	}
	f := open(w, s.Now, top, "Runs per minute by final phase, last hour",
		fmt.Sprintf("%d runs ended in the last hour.", total))
	barW := float64(chartW-padL-padR) / 60
	for m := first + 1; m <= s.Now.Unix()/60; m++ {
		x := f.x(time.Unix(m*60, 0))
		acc := 0
		for _, p := range finalPhases {
			n := s.Ended[m][p.phase]
			if n == 0 {
				continue
			}
			y0, y1 := f.y(float64(acc)), f.y(float64(acc+n))
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d %s</title></rect>`,
				x-barW+1, y1, barW-1, y0-y1, p.color, n, p.phase)
			acc += n
		}
	}
	names, colors := make([]string, len(finalPhases)), make([]string, len(finalPhases))
	for i, p := range finalPhases {
		names[i], colors[i] = string(p.phase), p.color
	}
	legend(w, names, colors)
	_, _ = io.WriteString(w, "</svg>")
}

func drawQueue(w io.Writer, s Snapshot) {
	top := 1
	for _, smp := range s.Samples {
		top = max(top, smp.Waiting)
	}
	now := "no sample yet"
	if n := len(s.Samples); n > 0 {
		now = fmt.Sprintf("%d runs waiting now", s.Samples[n-1].Waiting)
	}
	f := open(w, s.Now, top, "Queue depth, last hour", "Runs queued or waiting for resources; "+now+".")
	steps(f, s, "#0969da", func(smp Sample) (float64, bool) { return float64(smp.Waiting), true })
	legend(w, []string{"waiting runs"}, []string{"#0969da"})
	_, _ = io.WriteString(w, "</svg>")
}

func drawGPUs(w io.Writer, s Snapshot) {
	top := 1
	var kinds []string
	for _, smp := range s.Samples {
		for k, n := range smp.GPUs {
			top = max(top, n)
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	slices.Sort(kinds)
	var now []string
	if n := len(s.Samples); n > 0 {
		last := s.Samples[n-1]
		for _, k := range kinds {
			now = append(now, fmt.Sprintf("%s %d of %d", k, last.GPUsInUse[k], last.GPUs[k]))
		}
	}
	f := open(w, s.Now, top, "GPUs allocated by type, last hour", "In use now: "+lo(strings.Join(now, ", "))+".")
	colors := make([]string, len(kinds))
	for i, k := range kinds {
		colors[i] = seriesColors[i%len(seriesColors)]
		steps(f, s, colors[i], func(smp Sample) (float64, bool) {
			_, ok := smp.GPUs[k]
			return float64(smp.GPUsInUse[k]), ok
		})
	}
	legend(w, kinds, colors)
	_, _ = io.WriteString(w, "</svg>")
}

func lo(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// steps draws a step line through the samples' values, held until now.
func steps(f frame, s Snapshot, color string, value func(Sample) (float64, bool)) {
	var pts []string
	prev := math.NaN()
	for _, smp := range s.Samples {
		v, ok := value(smp)
		if !ok {
			continue
		}
		at := smp.At
		if at.Before(f.start) {
			at = f.start
		}
		x := f.x(at)
		if !math.IsNaN(prev) {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, f.y(prev)))
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, f.y(v)))
		prev = v
	}
	if math.IsNaN(prev) {
		return
	}
	pts = append(pts, fmt.Sprintf("%.1f,%.1f", f.x(s.Now), f.y(prev)))
	fmt.Fprintf(f.w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(pts, " "), color)
}

// niceTop rounds a chart's top up to 1, 2 or 5 times a power of ten, and
// to a multiple of 4 below 20, so the four grid lines fall on whole runs.
func niceTop(n int) int {
	if n <= 4 {
		return 4
	}
	if n <= 20 {
		return (n + 3) / 4 * 4
	}
	p := 1
	for p*10 < n {
		p *= 10
	}
	for _, m := range []int{1, 2, 5, 10} {
		if m*p >= n {
			return m * p
		}
	}
	return n
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%d", int(v))
	}
	return fmt.Sprintf("%.1f", v)
}
