package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// sessionTTY is the terminal of a session's shell: a pseudo-terminal whose
// slave is the shell's controlling terminal (so the shell has job control)
// and the standard input of every command. Commands' stdout and stderr do
// not go through it; what does (writes to /dev/tty, the shell's own
// messages) is read from the master.
type sessionTTY struct {
	master *os.File // the agent's end: input in, terminal output out
	slave  *os.File // the agent's own handle on the slave: termios, sync markers
	path   string   // /dev/pts/N
	sane   unix.Termios
}

// openSessionTTY opens a new pseudo-terminal and sets it up for sessions:
// line mode with signals (Ctrl-C, Ctrl-Z, Ctrl-D work as on a terminal),
// no echo (input is not repeated back), no output processing (bytes pass
// as they are), no flow control (Ctrl-S cannot freeze a session).
func openSessionTTY() (*sessionTTY, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open a terminal: %w", err)
	}
	t := &sessionTTY{master: master}
	ok := false
	defer func() {
		if !ok {
			t.close()
		}
	}()
	var n uint32
	err = control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock: %w", err)
		}
		var err error
		n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("set up a terminal: %w", err)
	}
	t.path = "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	// O_NOCTTY: the agent must never take the terminal as its own.
	t.slave, err = os.OpenFile(t.path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open terminal %s: %w", t.path, err)
	}
	err = control(t.slave, func(fd int) error {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return err
		}
		tio.Iflag &^= unix.IXON | unix.IXOFF | unix.IXANY | unix.INLCR | unix.IGNCR
		tio.Iflag |= unix.ICRNL | unix.IUTF8
		tio.Oflag &^= unix.OPOST
		tio.Lflag &^= unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL | unix.ECHOCTL | unix.ECHOKE | unix.TOSTOP
		tio.Lflag |= unix.ICANON | unix.ISIG | unix.IEXTEN
		tio.Cc[unix.VINTR], tio.Cc[unix.VEOF], tio.Cc[unix.VSUSP] = ctrlC, ctrlD, ctrlZ
		t.sane = *tio
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
			return err
		}
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	})
	if err != nil {
		return nil, fmt.Errorf("set up terminal %s: %w", t.path, err)
	}
	ok = true
	return t, nil
}

// The bytes a terminal sends for Ctrl-C, Ctrl-D and Ctrl-Z.
const (
	ctrlC = 0x03
	ctrlD = 0x04
	ctrlZ = 0x1a
)

// openChild opens the slave again for the shell: a blocking descriptor of
// its own, apart from the agent's non-blocking one.
func (t *sessionTTY) openChild() (*os.File, error) {
	f, err := os.OpenFile(t.path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open terminal %s: %w", t.path, err)
	}
	return f, nil
}

// reset puts back the settings of openSessionTTY, which a program may
// have changed (stty, an editor that died).
func (t *sessionTTY) reset() error {
	return control(t.slave, func(fd int) error {
		tio := t.sane
		return unix.IoctlSetTermios(fd, unix.TCSETSF, &tio)
	})
}

func (t *sessionTTY) close() {
	if t.slave != nil {
		t.slave.Close()
	}
	t.master.Close()
}

// control runs fn on f's descriptor without making f blocking, as Fd would.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// ttyRouter hands terminal output to the command that runs, and finds the
// end of a command's share of it. The terminal has no end of file between
// commands, so after a command ends the agent writes a random marker to
// the slave: everything the terminal delivers before the marker was written
// before the command ended and is the command's; the marker itself and what
// follows are not. Only the agent writes markers and only the agent reads
// the master, so no process in the sandbox can forge or see one.
type ttyRouter struct {
	target *sessionCmd // where output goes; nil: dropped
	marker []byte      // awaited marker, nil if none
	synced chan struct{}
	carry  []byte // tail that may be the start of the marker
}

// route splits data read from the master: it returns what goes to the
// target, and the target.
func (r *ttyRouter) route(data []byte) ([]byte, *sessionCmd) {
	target := r.target
	if r.marker == nil {
		return data, target
	}
	all := append(r.carry, data...)
	if i := bytes.Index(all, r.marker); i >= 0 {
		close(r.synced)
		r.target, r.marker, r.synced, r.carry = nil, nil, nil, nil
		return all[:i], target
	}
	keep := partialSuffix(all, r.marker)
	r.carry = append([]byte(nil), all[len(all)-keep:]...)
	return all[:len(all)-keep], target
}

// partialSuffix is the length of the longest end of data that is a proper
// start of marker.
func partialSuffix(data, marker []byte) int {
	for n := min(len(marker)-1, len(data)); n > 0; n-- {
		if bytes.HasSuffix(data, marker[:n]) {
			return n
		}
	}
	return 0
}

// readTTY reads the master until it is closed, routing what it reads.
func (s *session) readTTY() {
	defer s.t.wg.Done()
	for {
		buf := make([]byte, readChunk)
		n, err := s.tty.master.Read(buf)
		if n > 0 {
			// Added under ttyMu: once syncTTY returns, all of the
			// command's share is in it.
			s.ttyMu.Lock()
			data, target := s.router.route(buf[:n])
			if target != nil {
				target.add(chunk{typ: ttyEventType, data: data})
			}
			s.ttyMu.Unlock()
			if target == nil && len(data) > 0 {
				s.log.Debug("session terminal output dropped: no command runs", "bytes", len(data))
			}
		}
		if err != nil {
			// EIO once no process holds the slave, ErrClosed once the
			// session closes it.
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, unix.EIO) {
				s.log.Warn("session terminal read", "err", err)
			}
			return
		}
	}
}

// ttyEventType is the stream of terminal output: it is what a program
// says to the person at the terminal (a password prompt, the shell's job
// notices), so stderr.
const ttyEventType = "stderr"

// syncTTY waits until the terminal has delivered everything written to it
// before now, routing it to c, or until deadline.
func (s *session) syncTTY(c *sessionCmd, deadline time.Time) {
	s.ttyMu.Lock()
	if s.router.target != c {
		s.ttyMu.Unlock()
		return
	}
	marker := []byte("BERTH-SYNC-" + randomToken(true))
	synced := make(chan struct{})
	s.router.marker, s.router.synced = marker, synced
	s.ttyMu.Unlock()

	_ = s.tty.slave.SetWriteDeadline(deadline)
	_, err := s.tty.slave.Write(marker)
	if err == nil {
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-synced:
		case <-t.C:
			err = errors.New("timed out")
		}
		t.Stop()
	}
	s.ttyMu.Lock()
	defer s.ttyMu.Unlock()
	if s.router.target == c {
		// Not synced: give the held-back tail to c and stop routing to it.
		s.log.Debug("session terminal sync", "err", err)
		if len(s.router.carry) > 0 {
			c.add(chunk{typ: ttyEventType, data: s.router.carry})
		}
		s.router = ttyRouter{}
	}
}
