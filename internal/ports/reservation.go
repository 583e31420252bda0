package ports

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// filePrefix names reservation files: Dir/port-31134.
const filePrefix = "port-"

// maxReservationSize bounds what we read from a reservation file.
const maxReservationSize = 64 << 10

// reservation is the content of a reserved port's file. A file that exists
// but is empty holds no reservation (it is being examined, or was left by a
// process that died while examining it).
type reservation struct {
	Port    int       `json:"port"`
	Owner   string    `json:"owner"`
	Created time.Time `json:"created"`
	PID     int       `json:"pid"`
	Host    string    `json:"host,omitempty"`
}

func portPath(dir string, port int) string {
	return filepath.Join(dir, filePrefix+strconv.Itoa(port))
}

// portFromName returns the port a reservation file name stands for.
func portFromName(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return 0, false
	}
	p, err := parsePort(s)
	if err != nil || strconv.Itoa(p) != s {
		return 0, false
	}
	return p, true
}

// readReservation reads the locked file f of port. It returns nil, nil for
// an empty file, and an error for content that is not a reservation of port.
func readReservation(f *os.File, port int) (*reservation, error) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, maxReservationSize))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	var r reservation
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parse %s: %w", f.Name(), err)
	}
	if r.Port != port || r.Owner == "" {
		return nil, fmt.Errorf("parse %s: not a reservation of port %d", f.Name(), port)
	}
	return &r, nil
}

// writeReservation replaces the content of the locked file f with r and
// syncs it, so the reservation survives a crash of this process or the host.
func writeReservation(f *os.File, r reservation) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}
