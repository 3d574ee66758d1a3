package main

import (
	"bufio"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed demo/leaker.c
var demoSource []byte

const demoHelp = `Usage: heapsift demo [flags]

Build the bundled example program (a small service with three leaks) with
the system C compiler, run it, analyze it live with 'heapsift leaks', and
stop it.

Flags:
`

func (e *env) demo(args []string) error {
	fs := e.flagSet("demo", demoHelp)
	var a analysisFlags
	a.register(fs)
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "heapsift-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "leaker.c")
	bin := filepath.Join(dir, "leaker")
	if err := os.WriteFile(src, demoSource, 0o644); err != nil {
		return err
	}
	cc := e.getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if out, err := exec.Command(cc, "-O0", "-g", "-o", bin, src).CombinedOutput(); err != nil {
		return fmt.Errorf("heapsift demo builds its example with a C compiler (%s): %v\n%s", cc, err, out)
	}
	cmd := exec.Command(bin)
	cmd.Stderr = e.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line)
	}()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "ready ") {
			return fmt.Errorf("the demo program did not start: %q", line)
		}
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the demo program did not start within 10s")
	}
	time.Sleep(50 * time.Millisecond) // let it reach pause()
	pid := cmd.Process.Pid
	if !a.json {
		fmt.Fprintf(e.stdout, "$ heapsift leaks %d    # the demo service, built from %s\n\n", pid, "cmd/heapsift/demo/leaker.c")
	}
	s, release, err := e.open(fmt.Sprint(pid), &targetFlags{})
	if err != nil {
		return err
	}
	defer release()
	rep, err := e.analyze(s, &a)
	release()
	if err != nil {
		return err
	}
	if err := e.write(e.stdout, rep, &a); err != nil {
		return err
	}
	return nil
}
