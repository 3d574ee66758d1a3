package ptrace

import "errors"

// Errors returned (wrapped) by this package; test them with errors.Is.
var (
	// ErrNoProcess: there is no process with that pid. Messages read
	// "no process with pid N".
	ErrNoProcess = errors.New("no process")
	// ErrPermission: the kernel refused to let heapsift trace the
	// process. The message names the likely reason.
	ErrPermission = errors.New("permission denied")
	// ErrSelf: heapsift was asked to trace itself.
	ErrSelf = errors.New("cannot trace heapsift itself")
	// ErrExited: the process exited (or became a zombie) before or while
	// it was being frozen, or its memory is gone.
	ErrExited = errors.New("process exited")
	// ErrDetached: the Process was already released (Detach or Finish).
	ErrDetached = errors.New("process already detached")
	// ErrClosed: the Runner was closed.
	ErrClosed = errors.New("runner closed")
)
