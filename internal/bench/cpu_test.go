package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// envBurnChild makes the test binary a process of known CPU use: it
// waits for a line on stdin, burns CPU until getrusage says it used the
// duration in the variable, says "burnt", and exits at EOF on stdin.
const envBurnChild = "OWL_BENCH_TEST_BURN"

func burnChild(d time.Duration) {
	in := bufio.NewReader(os.Stdin)
	in.ReadString('\n')
	x := 0
	for {
		for i := range 1_000_000 {
			x += i
		}
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= d {
			break
		}
	}
	fmt.Println("burnt", x)
	io.Copy(io.Discard, in)
}
