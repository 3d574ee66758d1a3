package main

import (
	"fmt"

	"github.com/heapsift/heapsift/stats"
)

const mapsHelp = `Usage: heapsift maps [flags] PID|CORE

The address space by use: the main heap, the thread arenas' heaps
(committed and reserved), mmapped chunks, thread stacks and their guard
pages, each module's image and data, shared memory (SysV, POSIX shm,
memfd, shared anonymous), file mappings and other anonymous memory. For
each: the number of mappings and the virtual size, and for a live process
the resident and swapped sizes (from /proc/PID/smaps and pagemap) and the
open file descriptors by kind. A mapping count that keeps growing between
runs means an mmap leak.

Flags:
`

func (e *env) maps(args []string) error {
	fs := e.flagSet("maps", mapsHelp)
	var a analysisFlags
	var t targetFlags
	fs.BoolVar(&a.json, "json", false, "write the summary as JSON on stdout")
	registerWalkFlags(fs, &a)
	t.register(fs)
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageErr("maps takes one PID or core file")
	}
	s, release, err := e.open(fs.Arg(0), &t)
	if err != nil {
		return err
	}
	defer release()
	var res stats.Residency
	var fds *stats.FDs
	var warns []string
	if info := s.Info(); info.Core == "" {
		proc, err := stats.OpenProc(info.PID)
		if err != nil {
			warns = append(warns, fmt.Sprintf("no resident sizes: %v", err))
		} else {
			defer proc.Close()
			res = proc
		}
		if fds, err = stats.ReadFDs(info.PID); err != nil {
			warns = append(warns, fmt.Sprintf("no file descriptors: %v", err))
		}
	}
	h, err := e.walkHeap(s, &a)
	if err != nil {
		warns = append(warns, fmt.Sprintf("no heap walk (heaps and mmapped chunks count as anonymous memory): %v", err))
		h = nil
	}
	as := stats.Summarize(s, h, res)
	release()
	as.FDs = fds
	as.Warnings = append(as.Warnings, warns...)
	if a.json {
		return stats.WriteJSON(e.stdout, as)
	}
	return stats.WriteMapsText(e.stdout, as)
}
