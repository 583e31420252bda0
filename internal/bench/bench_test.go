package bench

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	m := Summarize("x", "berth", s, 25)
	if m.N != 125 || m.OK != 100 || m.Success != 0.8 {
		t.Errorf("counts: %+v", m)
	}
	if m.P50MS != 50 || m.P95MS != 95 || m.P99MS != 99 || m.MeanMS != 50.5 {
		t.Errorf("percentiles: %+v", m)
	}
	if z := Summarize("x", "berth", nil, 3); z.OK != 0 || z.Success != 0 || z.P50MS != 0 {
		t.Errorf("all failed: %+v", z)
	}
	one := Summarize("x", "berth", []time.Duration{1500 * time.Microsecond}, 0)
	if one.P50MS != 1.5 || one.P99MS != 1.5 {
		t.Errorf("one sample: %+v", one)
	}
}
