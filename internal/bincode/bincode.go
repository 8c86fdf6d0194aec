// Package bincode writes and reads the fixed binary layouts of
// codemachine's caches (the parsed state.yaml, the workflow's
// definition): varints, length-prefixed strings, and maps as their length
// plus one (0 for nil). A gob would carry its types in the stream and a
// new process's decoder compiles them before it reads a value, which for
// these caches cost more than the values themselves; a fixed layout
// decodes without reflection.
package bincode

import (
	"encoding/binary"
	"math"
	"slices"
)

// Encoder appends to B.
type Encoder struct{ B []byte }

// Uint appends v.
func (e *Encoder) Uint(v uint64) { e.B = binary.AppendUvarint(e.B, v) }

// Int appends v.
func (e *Encoder) Int(v int64) { e.B = binary.AppendVarint(e.B, v) }

// String appends s, its length first.
func (e *Encoder) String(s string) {
	e.Uint(uint64(len(s)))
	e.B = append(e.B, s...)
}

// Bytes appends b as String does, keeping nil apart from empty.
func (e *Encoder) Bytes(b []byte) {
	if b == nil {
		e.Uint(0)
		return
	}
	e.Uint(uint64(len(b)) + 1)
	e.B = append(e.B, b...)
}

// Bool appends v as one byte.
func (e *Encoder) Bool(v bool) {
	if v {
		e.B = append(e.B, 1)
	} else {
		e.B = append(e.B, 0)
	}
}

// Float appends v's bits.
func (e *Encoder) Float(v float64) { e.B = binary.LittleEndian.AppendUint64(e.B, math.Float64bits(v)) }

// Len appends the length of a map or slice, keeping nil apart from empty.
func (e *Encoder) Len(isNil bool, n int) {
	if isNil {
		e.Uint(0)
		return
	}
	e.Uint(uint64(n) + 1)
}

// Strings appends a list of strings, nil apart from empty.
func (e *Encoder) Strings(list []string) {
	e.Len(list == nil, len(list))
	for _, s := range list {
		e.String(s)
	}
}

// StringMap appends a map of strings, in key order.
func (e *Encoder) StringMap(m map[string]string) {
	e.Len(m == nil, len(m))
	for _, k := range SortedKeys(m) {
		e.String(k)
		e.String(m[k])
	}
}

// SortedKeys are m's keys in order: an encoding of the same map is the
// same bytes.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Decoder reads what Encoder wrote from B; its first failure sticks (Bad),
// and every read after it returns a zero value.
type Decoder struct {
	B   []byte
	Bad bool
	// all is B as NewDecoder was given it, as a string: the strings read
	// are parts of it, not an allocation each.
	all string
}

// NewDecoder reads b. The strings it returns share one copy of b (kept
// while any of them is), where a Decoder{B: b} allocates each.
func NewDecoder(b []byte) *Decoder { return &Decoder{B: b, all: string(b)} }

func (d *Decoder) fail() {
	d.Bad, d.B = true, nil
}

// Uint reads an unsigned varint.
func (d *Decoder) Uint() uint64 {
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Int reads a signed varint.
func (d *Decoder) Int() int64 {
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Intn reads a signed varint that must fit an int.
func (d *Decoder) Intn() int {
	v := d.Int()
	if int64(int(v)) != v {
		d.fail()
		return 0
	}
	return int(v)
}

// String reads a string.
func (d *Decoder) String() string {
	n := d.Uint()
	if n > uint64(len(d.B)) {
		d.fail()
		return ""
	}
	var s string
	if start := len(d.all) - len(d.B); d.all != "" && start >= 0 {
		s = d.all[start : start+int(n)]
	} else {
		s = string(d.B[:n])
	}
	d.B = d.B[n:]
	return s
}

// Bytes reads what Encoder.Bytes wrote, a copy.
func (d *Decoder) Bytes() []byte {
	n := d.Uint()
	if n == 0 {
		return nil
	}
	if n-1 > uint64(len(d.B)) {
		d.fail()
		return nil
	}
	b := append([]byte{}, d.B[:n-1]...)
	d.B = d.B[n-1:]
	return b
}

// Bool reads a bool.
func (d *Decoder) Bool() bool {
	if len(d.B) == 0 || d.B[0] > 1 {
		d.fail()
		return false
	}
	v := d.B[0] == 1
	d.B = d.B[1:]
	return v
}

// Float reads a float64.
func (d *Decoder) Float() float64 {
	if len(d.B) < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.B))
	d.B = d.B[8:]
	return v
}

// Len reads what Encoder.Len wrote: the length, and whether it was nil.
// A length the bytes left cannot hold (every element takes one byte or
// more) fails before the caller allocates for it.
func (d *Decoder) Len() (int, bool) {
	n := d.Uint()
	if n == 0 {
		return 0, true
	}
	if n-1 > uint64(len(d.B)) {
		d.fail()
		return 0, true
	}
	return int(n - 1), false
}

// Strings reads what Encoder.Strings wrote.
func (d *Decoder) Strings() []string {
	n, isNil := d.Len()
	if isNil {
		return nil
	}
	list := make([]string, n)
	for i := range list {
		list[i] = d.String()
	}
	return list
}

// StringMap reads what Encoder.StringMap wrote.
func (d *Decoder) StringMap() map[string]string {
	n, isNil := d.Len()
	if isNil {
		return nil
	}
	m := make(map[string]string, n)
	for i := 0; i < n && !d.Bad; i++ {
		k := d.String()
		m[k] = d.String()
	}
	return m
}

// Done reports whether everything was read, and nothing failed.
func (d *Decoder) Done() bool { return !d.Bad && len(d.B) == 0 }
