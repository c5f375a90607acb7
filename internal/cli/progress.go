package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/owl-project/owl/internal/client"
)

// progressMinSize is the package size from which an upload shows a progress bar: smaller ones
// are sent before a bar would be seen.
const progressMinSize = 1 << 20

const progressWidth = 30 // cells between the brackets

// progressBar draws "\r[=====>    ]  42% 12.3/29.1 MB" on a terminal. A nil *progressBar draws
// nothing, so callers need no conditions.
type progressBar struct {
	w       io.Writer
	lastPct int
	drawn   bool
}

// newProgressBar returns a bar drawing on w when w is a terminal and the package is large
// enough to be worth one, else nil.
func newProgressBar(w io.Writer, packageSize int) *progressBar {
	if packageSize < progressMinSize || !isTerminal(w) {
		return nil
	}
	return &progressBar{w: w, lastPct: -1}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress returns the callback to give the client, nil for a nil bar.
func (p *progressBar) progress() client.ProgressFunc {
	if p == nil {
		return nil
	}
	return p.update
}

func (p *progressBar) update(sent, total int64) {
	pct := percent(sent, total)
	if pct == p.lastPct { // redraw only when the number changes
		return
	}
	p.lastPct = pct
	p.drawn = true
	fmt.Fprint(p.w, "\r"+renderProgress(sent, total, progressWidth))
}

// finish ends the bar's line, if it drew one.
func (p *progressBar) finish() {
	if p != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}

func percent(sent, total int64) int {
	if total <= 0 {
		return 100
	}
	return int(sent * 100 / total)
}

// renderProgress renders one state of the bar: "[=====>    ]  42% 12.3/29.1 MB".
func renderProgress(sent, total int64, width int) string {
	pct := percent(sent, total)
	filled := pct * width / 100
	var bar string
	switch {
	case filled >= width:
		bar = strings.Repeat("=", width)
	default:
		bar = strings.Repeat("=", filled) + ">" + strings.Repeat(" ", width-filled-1)
	}
	const mb = 1 << 20
	return fmt.Sprintf("[%s] %3d%% %.1f/%.1f MB", bar, pct, float64(sent)/mb, float64(total)/mb)
}

// humanSize renders a byte count for people: "812 B", "4.0 KB", "12.3 MB".
func humanSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
}
