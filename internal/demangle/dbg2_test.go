package demangle

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"
)

func TestDevSteps(t *testing.T) {
	path := os.Getenv("DEV_CORPUS")
	if path == "" {
		t.Skip()
	}
	f, _ := os.Open(path)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	maxRatio, maxSteps, maxLen, maxDepth := 0.0, 0, 0, 0
	var worst string
	var slow time.Duration
	var slowSym string
	for sc.Scan() {
		sym := strings.SplitN(sc.Text(), "\t", 2)[0]
		if len(sym) > maxLen {
			maxLen = len(sym)
		}
		st := time.Now()
		p := &parser{s: sym, pos: 2}
		var n node
		func() {
			defer func() { recover() }()
			n = p.mangledName(true)
			if p.pos != len(sym) {
				n = nil
			}
		}()
		if n == nil {
			continue
		}
		pr := &printer{maxSteps: 1 << 30}
		func() {
			defer func() { recover() }()
			pr.print(n)
		}()
		if d := time.Since(st); d > slow {
			slow, slowSym = d, sym
		}
		r := float64(pr.steps) / float64(len(sym))
		if r > maxRatio {
			maxRatio, worst = r, sym
		}
		if pr.steps > maxSteps {
			maxSteps = pr.steps
		}
		if p.depth > maxDepth {
			maxDepth = p.depth
		}
	}
	t.Logf("maxLen %d maxSteps %d maxRatio %.1f (%s) slowest %v %s", maxLen, maxSteps, maxRatio, worst, slow, slowSym[:min(80, len(slowSym))])
}
