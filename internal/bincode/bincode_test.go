package bincode

import (
	"math"
	"reflect"
	"testing"
)

// TestRoundTrip: every value comes back as written, nil apart from empty,
// and every truncation of the bytes fails instead of reading zeros.
func TestRoundTrip(t *testing.T) {
	e := &Encoder{}
	e.Uint(math.MaxUint64)
	e.Int(math.MinInt64)
	e.String("a\x00b")
	e.Bytes(nil)
	e.Bytes([]byte{})
	e.Bool(true)
	e.Float(-0.5)
	e.Strings(nil)
	e.Strings([]string{})
	e.Strings([]string{"x", ""})
	e.StringMap(map[string]string{"b": "2", "a": "1"})
	e.StringMap(nil)
	e.Int(-7)
	read := func(d *Decoder) []any {
		return []any{d.Uint(), d.Int(), d.String(), d.Bytes(), d.Bytes(), d.Bool(), d.Float(),
			d.Strings(), d.Strings(), d.Strings(), d.StringMap(), d.StringMap(), d.Intn()}
	}
	want := []any{uint64(math.MaxUint64), int64(math.MinInt64), "a\x00b", []byte(nil), []byte{}, true, -0.5,
		[]string(nil), []string{}, []string{"x", ""}, map[string]string{"a": "1", "b": "2"}, map[string]string(nil), -7}
	for _, d := range []*Decoder{{B: e.B}, NewDecoder(e.B)} {
		if got := read(d); !reflect.DeepEqual(got, want) || !d.Done() {
			t.Fatalf("read %#v (done %v), want %#v", got, d.Done(), want)
		}
	}
	for n := 0; n < len(e.B); n++ {
		for _, d := range []*Decoder{{B: e.B[:n]}, NewDecoder(e.B[:n])} {
			read(d)
			if d.Done() {
				t.Fatalf("the first %d of %d bytes read as whole", n, len(e.B))
			}
		}
	}
	huge := &Encoder{}
	huge.Uint(math.MaxUint64)
	if n, _ := (&Decoder{B: huge.B}).Len(); n != 0 {
		t.Errorf("a length of 2^64-1 read as %d", n)
	}
}

// TestNewDecoderSharesStrings: the strings a NewDecoder reads are parts
// of its one copy of the bytes, not an allocation each.
func TestNewDecoderSharesStrings(t *testing.T) {
	e := &Encoder{}
	for i := 0; i < 100; i++ {
		e.String("a string of some length")
	}
	d := NewDecoder(e.B)
	if allocs := testing.AllocsPerRun(50, func() {
		if d.String() == "" {
			t.Fatal("read an empty string")
		}
	}); allocs != 0 {
		t.Errorf("reading a string allocated %v times", allocs)
	}
}
