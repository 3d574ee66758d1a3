package demangle

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestDevCorpus(t *testing.T) {
	path := os.Getenv("DEV_CORPUS")
	if path == "" {
		t.Skip()
	}
	f, _ := os.Open(path)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	total, ok, bad, unsupported := 0, 0, 0, 0
	mm, _ := os.Create("/tmp/mismatch.txt")
	un, _ := os.Create("/tmp/unsupported.txt")
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "\t", 2)
		sym, want := parts[0], parts[1]
		total++
		got, good := Symbol(sym)
		_, st := demangle(sym, false)
		if st == statusBug {
			fmt.Fprintf(mm, "BUG %s\n", sym)
		}
		if !good {
			if want != sym {
				unsupported++
				fmt.Fprintf(un, "%s\t%s\n", sym, want)
			}
			continue
		}
		if got != want {
			bad++
			fmt.Fprintf(mm, "%s\n  want %s\n  got  %s\n", sym, want, got)
			continue
		}
		ok++
	}
	t.Logf("total %d ok %d mismatch %d unsupported(c++filt ok) %d", total, ok, bad, unsupported)
}
