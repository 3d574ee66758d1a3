package ptrace

import (
	"sync"
	"testing"
	"time"
)

// TestConcurrentAttach attaches to several processes at once, from
// several goroutines, again and again. Each Process has a tracer thread of
// its own; none may take another's events (this hung when a tracer thread
// happened to be the thread that had forked another's target).
func TestConcurrentAttach(t *testing.T) {
	var tgs []*target
	for range 4 {
		tgs = append(tgs, startTarget(t))
	}
	for range 20 {
		var wg sync.WaitGroup
		for _, tg := range tgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := make(chan error, 1)
				go func() {
					p, err := Attach(tg.pid)
					if err == nil {
						err = p.Detach()
					}
					done <- err
				}()
				select {
				case err := <-done:
					if err != nil {
						t.Error(err)
					}
				case <-time.After(20 * time.Second):
					t.Errorf("attaching to %d hung", tg.pid)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}
