package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/corefile"
	"github.com/heapsift/heapsift/ptrace"
)

// vanished is a space whose process died while it was read.
type vanished struct{ addrspace.Space }

func (vanished) Gone() error {
	return fmt.Errorf("pid 42 died while heapsift read it: %w", ptrace.ErrExited)
}

// TestGoneTargetGivesNoVerdicts: when the target dies during an analysis
// (killed while frozen), whatever was not read by then would count as
// leaked, so there must be an error and no report. (ptrace's
// TestGoneWhenKilled shows that a killed process reports Gone.)
func TestGoneTargetGivesNoVerdicts(t *testing.T) {
	core, _ := gcoreOf(t, "plain")
	c, err := corefile.Open(core, corefile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e, _, _ := testEnv(t)
	if _, err := e.analyze(c, &analysisFlags{}); err != nil {
		t.Fatalf("the core itself: %v", err)
	}
	rep, err := e.analyze(vanished{c}, &analysisFlags{})
	if err == nil || !strings.Contains(err.Error(), "the target died during the analysis; no verdicts") {
		t.Errorf("report %v, error %v", rep != nil, err)
	}
}
