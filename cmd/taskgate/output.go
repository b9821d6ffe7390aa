package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/taskgate/taskgate/client"
)

// writeJSON writes v indented, for scripts (-o json).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows under a header, in aligned columns.
func table(w io.Writer, header []string, rows [][]string) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// An empty last cell leaves its padding behind.
	for line := range strings.Lines(buf.String()) {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " \n")); err != nil {
			return err
		}
	}
	return nil
}

// fields writes name/value pairs in two aligned columns, skipping empty
// values.
func fields(w io.Writer, pairs ...string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			fmt.Fprintf(tw, "%s\t%s\n", pairs[i], pairs[i+1])
		}
	}
	return tw.Flush()
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// waiting describes where a run waits: its queue position and reason.
func waiting(st *client.RunStatus) string {
	if st.QueuePosition == 0 {
		return st.Reason
	}
	s := fmt.Sprintf("position %d", st.QueuePosition)
	if st.Reason != "" {
		s += ": " + st.Reason
	}
	return s
}

// statusLine draws a run's progress on one line of a terminal, redrawn in
// place each time the status changes and every second (the elapsed time);
// Done clears it. With a nil writer it draws nothing.
type statusLine struct {
	w     io.Writer
	start time.Time
	stop  chan struct{}

	mu   sync.Mutex
	st   *client.RunStatus
	last string
}

func newStatusLine(w io.Writer) *statusLine {
	s := &statusLine{w: w, start: time.Now(), stop: make(chan struct{})}
	if w != nil {
		go s.tick()
	}
	return s
}

func (s *statusLine) tick() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.mu.Lock()
			s.draw()
			s.mu.Unlock()
		case <-s.stop:
			return
		}
	}
}

// Update is a WaitOptions.OnStatus.
func (s *statusLine) Update(st *client.RunStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = st
	s.draw()
}

func (s *statusLine) draw() {
	if s.w == nil || s.st == nil {
		return
	}
	st := s.st
	line := fmt.Sprintf("%s %s", st.Name, st.Phase)
	if st.Attempt > 1 {
		line += fmt.Sprintf(" (attempt %d)", st.Attempt)
	}
	if w := waiting(st); w != "" {
		line += " · " + w
	}
	if st.Node != "" {
		line += " · on " + st.Node
	}
	line += fmt.Sprintf(" · %s", time.Since(s.start).Round(time.Second))
	if line == s.last {
		return
	}
	s.last = line
	// \r and "erase line" redraw in place.
	fmt.Fprintf(s.w, "\r\033[K%s", line)
}

// Done stops the redraws and clears the line.
func (s *statusLine) Done() {
	close(s.stop)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil && s.last != "" {
		fmt.Fprint(s.w, "\r\033[K")
	}
	s.w = nil
}
