package ptrace

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/heapsift/heapsift/addrspace"
)

// TestDirectReadKeepsCopyOnWrite reads the whole heap of a process that
// shares it copy-on-write with a child it forked: the pages must stay
// shared (process_vm_readv's page pins would make the kernel copy them
// into the target since Linux 5.19), and the Process says how it reads.
func TestDirectReadKeepsCopyOnWrite(t *testing.T) {
	tg := startFixture(t, "cowparent")
	vals := tg.vals
	t.Cleanup(func() { syscall.Kill(int(vals["child"]), syscall.SIGKILL) })
	pid := tg.pid
	before := sharedAnon(pid)
	if before < 16<<20 {
		t.Skipf("the kernel shows only %d bytes shared after fork", before)
	}
	p, err := AttachWith(context.Background(), pid, AttachOptions{})
	if errors.Is(err, ErrPermission) {
		t.Skipf("ptrace not permitted here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer p.Detach()
	buf := make([]byte, vals["len"])
	if _, err := p.ReadAt(buf, addrspace.Addr(vals["buf"])); err != nil {
		t.Fatal(err)
	}
	if buf[0] != 0x5a || buf[len(buf)-1] != 0x5a {
		t.Fatalf("read %#x...%#x", buf[0], buf[len(buf)-1])
	}
	p.Detach()
	t.Logf("shared before %d after %d", before, sharedAnon(pid))
	if after := sharedAnon(pid); after < before-(1<<20) {
		t.Errorf("reading unshared the target's memory: %d MiB shared before, %d MiB after", before>>20, after>>20)
	}
	found := false
	for _, w := range p.Warnings() {
		found = found || strings.Contains(w, "copy-on-write")
	}
	if !found {
		t.Errorf("no warning about copy-on-write sharing: %q", p.Warnings())
	}
}
