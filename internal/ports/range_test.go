package ports

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in      string
		want    Range
		wantErr string
	}{
		{in: "30000-39999", want: Range{30000, 39999}},
		{in: "1-65535", want: Range{1, 65535}},
		{in: "31000-31000", want: Range{31000, 31000}},
		{in: " 30000 - 39999 ", want: Range{30000, 39999}},
		{in: "", wantErr: "want MIN-MAX"},
		{in: "30000", wantErr: "want MIN-MAX"},
		{in: "-39999", wantErr: "min"},
		{in: "30000-", wantErr: "max"},
		{in: "0-10", wantErr: "out of 1..65535"},
		{in: "1-65536", wantErr: "out of 1..65535"},
		{in: "40000-30000", wantErr: "min > max"},
		{in: "+1-2", wantErr: "not a port number"},
		{in: "1--2", wantErr: "not a port number"},
		{in: "1-2-3", wantErr: "not a port number"},
		{in: "a-b", wantErr: "not a port number"},
		{in: "0x10-0x20", wantErr: "not a port number"},
		{in: "000001-2", wantErr: "not a port number"},
		{in: "99999999999999999999-1", wantErr: "not a port number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRange(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseRange(%q) = %v, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
					t.Fatalf("ParseRange(%q) error %q: want it to contain %q and name the input", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRange(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestRangeString(t *testing.T) {
	if got := (Range{30000, 39999}).String(); got != "30000-39999" {
		t.Fatalf("String() = %q", got)
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"30000-39999", "1-65535", "5-5", "0-1", "2-1", "", "-", "1-", " 1 - 2 ", "65535-65536", "+1-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("ParseRange(%q) error %q does not name the input", s, err)
			}
			return
		}
		if r.Min < 1 || r.Max > 65535 || r.Min > r.Max {
			t.Fatalf("ParseRange(%q) = %v: invalid range accepted", s, r)
		}
		back, err := ParseRange(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRange(%q) = %v, but ParseRange(%q) = %v, %v", s, r, r.String(), back, err)
		}
	})
}

func TestDefaultRanges(t *testing.T) {
	unix := Ranges{
		Agent:  Range{30000, 39999},
		VSCode: Range{40000, 49999},
		App1:   Range{50000, 54999},
		App2:   Range{55000, 59999},
	}
	windows := Ranges{
		Agent:  Range{30000, 34999},
		VSCode: Range{35000, 39999},
		App1:   Range{40000, 44999},
		App2:   Range{45000, 49151},
	}
	tests := []struct {
		goos, release string
		want          Ranges
	}{
		{"linux", "6.8.0-45-generic", unix},
		{"darwin", "23.6.0", unix},
		{"linux", "", unix},
		{"windows", "", windows},
		{"linux", "5.15.153.1-microsoft-standard-WSL2", windows},
		{"linux", "4.4.0-19041-Microsoft", unix}, // WSL1 shares the Linux ranges, as in OpenHands
	}
	for _, tt := range tests {
		if got := DefaultRanges(tt.goos, tt.release); got != tt.want {
			t.Errorf("DefaultRanges(%q, %q) = %+v, want %+v", tt.goos, tt.release, got, tt.want)
		}
	}
	for _, r := range []Range{windows.Agent, windows.VSCode, windows.App1, windows.App2} {
		if r.Max >= 49152 {
			t.Errorf("windows range %s reaches the ephemeral range", r)
		}
	}
}
