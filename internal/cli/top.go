package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
)

// topOptions are owl top's flags.
type topOptions struct {
	interval   time.Duration
	once       bool
	iterations int
	sort       string
}

func newTopCmd(g *globals) *cobra.Command {
	var o topOptions
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show each function's invocations/s, errors, throttles, latency and cold starts, live",
		Long: `Top scrapes the server's /metrics (with the token every command uses) every --interval
and shows, per function, what happened between the last two scrapes: invocations per second
(INV/S), invocations (INV, throttled ones included), errors (ERR: function errors, timeouts
and init errors), throttles (THR), cold starts (COLD), the handler's duration p50 and p99
(interpolated in the duration histogram's buckets, as Prometheus' histogram_quantile does),
CONC, the average number of its invocations running (handler seconds per second), and
ENV B/I/F, its environments busy (or starting), idle and frozen at the last scrape. Above
the table: the invocations running now, environments by state, the memory reserved of the
budget and the asynchronous queue.

On a terminal it refreshes in place until q (or Ctrl-C). Keys: s the next sort column;
i e t p m c o n sort by invocations, errors, throttles, p99, p50, cold starts, concurrency,
name; r reverses. When stdout is not a terminal, or with --once or -n, it prints plain
tables (one with --once) and exits; the first one comes after two scrapes one interval apart.`,
		Example: `  owl top
  owl top --interval 5s --sort p99
  owl top --once`,
		Args: cobra.NoArgs,
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			v, n, err := newTopView(c, o)
			if err != nil {
				return err
			}
			out, outFile := cmd.OutOrStdout(), (*os.File)(nil)
			if f, ok := out.(*os.File); ok && isTTY(f) {
				outFile = f
			}
			if n > 0 || outFile == nil {
				if n == 0 {
					n = 1
				}
				return v.runPlain(cmd.Context(), out, n)
			}
			in, _ := cmd.InOrStdin().(*os.File)
			return v.runLive(cmd.Context(), in, outFile)
		}),
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.interval, "interval", 2*time.Second, "time between scrapes: the window rates and quantiles are over")
	fl.BoolVar(&o.once, "once", false, "print one table (after two scrapes one interval apart) and exit; same as -n 1")
	fl.IntVarP(&o.iterations, "iterations", "n", 0, "print this many plain tables, one per interval, and exit")
	fl.StringVar(&o.sort, "sort", "invocations", "sort column: invocations, errors, throttles, p99, p50, cold, concurrency or name")
	return cmd
}

// topView is owl top's state: where it scrapes, the last scrape, the rows
// of the last window and how they are sorted.
type topView struct {
	c        *client.Client
	interval time.Duration
	col      int  // index in topSorts
	reverse  bool // the sort turned around
	cur      *topSnapshot
	rows     []topRow
	err      error // of the last scrape, shown until one succeeds
}

// newTopView checks the options and returns the view and how many plain
// tables to print (0: live when stdout is a terminal).
func newTopView(c *client.Client, o topOptions) (*topView, int, error) {
	col, err := topSortNamed(o.sort)
	if err != nil {
		return nil, 0, fmt.Errorf("top: --sort: %w", err)
	}
	if o.interval <= 0 {
		return nil, 0, fmt.Errorf("top: --interval %s: give a positive duration such as 2s", o.interval)
	}
	n := o.iterations
	switch {
	case n < 0:
		return nil, 0, fmt.Errorf("top: -n %d: give a positive number of tables", n)
	case o.once && n > 1:
		return nil, 0, fmt.Errorf("top: --once and -n %d: give one of them", n)
	case o.once:
		n = 1
	}
	return &topView{c: c, interval: o.interval, col: col}, n, nil
}

// scrape reads and parses the server's metrics; a refusal says what the
// token lacks.
func (v *topView) scrape(ctx context.Context) (*topSnapshot, error) {
	b, err := v.c.Metrics(ctx)
	at := time.Now() // the answer's time: closer to when the server counted than the request's
	var ae *client.APIError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403):
		return nil, fmt.Errorf("top: %s refused GET /metrics (%w): this token may not read metrics; "+
			`use the server's own token (OWL_TOKEN; eval "$(owl credentials)" on its machine sets it)`, v.c.Endpoint(), err)
	case errors.As(err, &ae) && ae.Status == 404:
		return nil, fmt.Errorf("top: %s has no /metrics (%w): is it an Owl server?", v.c.Endpoint(), err)
	default:
		return nil, fmt.Errorf("top: reading the metrics: %w", err)
	}
	s, err := parseTopSnapshot(bytes.NewReader(b), at)
	if err != nil {
		return nil, fmt.Errorf("top: %s/metrics: %w", v.c.Endpoint(), err)
	}
	return s, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runPlain prints n plain tables, each over one interval, and returns.
func (v *topView) runPlain(ctx context.Context, out io.Writer, n int) error {
	prev, err := v.scrape(ctx)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := sleep(ctx, v.interval); err != nil {
			return err
		}
		cur, err := v.scrape(ctx)
		if err != nil {
			return err
		}
		v.cur, v.rows = cur, topRows(prev, cur)
		if i > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "owl top: %s at %s, over the last %s, sorted by %s\n", v.c.Endpoint(),
			cur.at.Format("15:04:05"), cur.at.Sub(prev.at).Round(time.Millisecond), v.sortName())
		if err := printTopTable(out, cur, v.sorted(), 0); err != nil {
			return err
		}
		prev = cur
	}
	return nil
}

// sortName names the sort column, and whether it is reversed.
func (v *topView) sortName() string {
	if v.reverse {
		return topSorts[v.col].name + " (reversed)"
	}
	return topSorts[v.col].name
}

// sorted returns the rows in the view's order.
func (v *topView) sorted() []topRow {
	rows := append([]topRow(nil), v.rows...)
	sortTopRows(rows, v.col, v.reverse)
	return rows
}

// runLive refreshes the view in place on the terminal out every interval
// until q, Ctrl-C or the end of ctx, reading keys from in when it is a
// terminal, and leaves the terminal as it found it.
func (v *topView) runLive(ctx context.Context, in, out *os.File) error {
	prev, err := v.scrape(ctx) // first: a refusal is printed on the normal screen
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var keys <-chan byte
	if in != nil && isTTY(in) {
		restore, err := rawInput(in)
		if err != nil {
			return fmt.Errorf("top: %w", err)
		}
		defer func() { _ = restore() }() // on the way out: nothing better to do with an error
		var stop func()
		keys, stop = readKeys(in)
		defer stop() // before restore: no read is left pending in raw mode
	}
	fmt.Fprint(out, "\x1b[?1049h\x1b[?25l") // the alternate screen, without a cursor
	defer fmt.Fprint(out, "\x1b[?25h\x1b[?1049l")

	v.draw(out)
	tick := time.NewTicker(v.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case k, ok := <-keys:
			if !ok { // the terminal failed: go on without keys
				keys = nil
				continue
			}
			if !v.key(k) {
				return nil
			}
		case <-tick.C:
			cur, err := v.scrape(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if v.err = err; err == nil {
				v.cur, v.rows, prev = cur, topRows(prev, cur), cur
			}
		}
		v.draw(out)
	}
}

// key applies a key press to the view; false means quit.
func (v *topView) key(k byte) bool {
	switch k {
	case 'q', 'Q', 3, 4: // q, Ctrl-C, Ctrl-D
		return false
	case 's':
		v.col, v.reverse = (v.col+1)%len(topSorts), false
	case 'r':
		v.reverse = !v.reverse
	default:
		for i, s := range topSorts {
			if s.key == k {
				v.col, v.reverse = i, false
			}
		}
	}
	return true
}

// draw repaints the terminal out: a header, the keys, and the table (or
// why there is none yet), cut to the terminal's height.
func (v *topView) draw(out *os.File) {
	var b bytes.Buffer
	b.WriteString("\x1b[H\x1b[2J") // home, clear
	fmt.Fprintf(&b, "owl top: %s at %s, every %s, sorted by %s\n", v.c.Endpoint(), time.Now().Format("15:04:05"), v.interval, v.sortName())
	b.WriteString("keys: s next sort · i e t p m c o n sort by a column · r reverse · q quit\n")
	switch {
	case v.err != nil:
		fmt.Fprintf(&b, "%v\n", v.err)
	case v.cur == nil:
		fmt.Fprintf(&b, "waiting %s for a second scrape to compute rates…\n", v.interval)
	}
	if v.cur != nil {
		maxRows := terminalRows(out) - 6 // the lines above, the table's header, a last line
		if maxRows < 1 {
			maxRows = 0
		}
		_ = printTopTable(&b, v.cur, v.sorted(), maxRows) // into a buffer: no error
	}
	_, _ = out.Write(b.Bytes())
}

// readKeys reads key presses from the terminal in (in single-key mode,
// whose reads return every 100 ms) until stop, which waits for the reader
// to end; the channel closes if in fails.
func readKeys(in *os.File) (keys <-chan byte, stop func()) {
	ch, done := make(chan byte), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		buf := make([]byte, 16)
		for {
			n, err := in.Read(buf)
			for _, k := range buf[:n] {
				select {
				case ch <- k:
				case <-done:
					return
				}
			}
			select {
			case <-done:
				return
			default:
			}
			if err != nil && !errors.Is(err, io.EOF) { // EOF: 100 ms without a key
				return
			}
		}
	}()
	return ch, func() { close(done); wg.Wait() }
}
