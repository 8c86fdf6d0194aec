package workflow

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"reflect"
	"testing"
)

// fillValue sets v, and everything it holds, to values other than their
// zero by reflection, so that a field added to a type a definition holds
// is filled too and a codec that does not carry it loses it. skip names
// the fields defGob carries elsewhere (Type.Field), left zero; vars is
// what a map[string]any gets.
func fillValue(t *testing.T, v reflect.Value, seed *int, skip map[string]bool, vars map[string]any) {
	t.Helper()
	*seed++
	n := *seed
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("v%d\n", n))
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(-n * 1000003))
	case reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(uint64(n))
	case reflect.Float64:
		v.SetFloat(float64(n) + 0.25)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillValue(t, v.Elem(), seed, skip, vars)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{byte(n), 0, 'x'})
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < 2; i++ {
			fillValue(t, v.Index(i), seed, skip, vars)
		}
	case reflect.Map:
		if v.Type() == reflect.TypeOf(map[string]any{}) {
			v.Set(reflect.ValueOf(vars))
			return
		}
		v.Set(reflect.MakeMap(v.Type()))
		for i := 0; i < 2; i++ {
			elem := reflect.New(v.Type().Elem()).Elem()
			fillValue(t, elem, seed, skip, vars)
			v.SetMapIndex(reflect.ValueOf(fmt.Sprintf("k%d-%d", n, i)), elem)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() || skip[v.Type().Name()+"."+f.Name] {
				continue
			}
			fillValue(t, v.Field(i), seed, skip, vars)
		}
	default:
		t.Fatalf("a definition holds a %s (%s): carry it in defcodec.go and fill it here", v.Type(), v.Kind())
	}
}

// testVars is a vars: value of every kind the encoding keeps.
func testVars() map[string]any {
	return map[string]any{"s": "x", "i": 3, "i64": int64(-1 << 40), "u64": uint64(1 << 63), "f": 0.5, "b": true,
		"nil": nil, "list": []any{"a", 1, nil, []any{}, map[string]any{}}, "map": map[string]any{"k": []any{"x"}},
		"nil list": []any(nil), "nil map": map[string]any(nil)}
}

// filledDefGob is a defGob with every field set.
func filledDefGob(t *testing.T) *defGob {
	t.Helper()
	var d defGob
	seed := 0
	skip := map[string]bool{"Workflow.Steps": true, "Step.Source": true, "Step.When": true, "Step.Until": true}
	fillValue(t, reflect.ValueOf(&d).Elem(), &seed, skip, testVars())
	return &d
}

// TestDefCodecCoversEveryField: every field of a definition, at every
// depth, comes back from its encoding as it was (nil and empty apart).
func TestDefCodecCoversEveryField(t *testing.T) {
	d := filledDefGob(t)
	data, ok := encodeDefGob(d)
	if !ok {
		t.Fatal("encodeDefGob refused a definition")
	}
	got, ok := decodeDefGob(data)
	if !ok {
		t.Fatal("decodeDefGob refused what encodeDefGob wrote")
	}
	if !reflect.DeepEqual(&got, d) {
		t.Errorf("decoded\n%+v\nwant\n%+v", got, *d)
	}
	// Empty lists and maps stay empty, not nil.
	d.Files, d.Edges, d.Steps[0].AgentKeys = []string{}, map[string][]depGob{}, map[string]string{}
	if data, ok = encodeDefGob(d); !ok {
		t.Fatal("encodeDefGob refused a definition")
	}
	if got, ok = decodeDefGob(data); !ok || !reflect.DeepEqual(&got, d) {
		t.Errorf("with empty lists and maps: decoded %v\n%+v", ok, got)
	}
}

// TestDefCodecRefuses: what the encoding cannot give back exactly is not
// encoded, and bytes it did not write whole are not decoded.
func TestDefCodecRefuses(t *testing.T) {
	d := filledDefGob(t)
	data, ok := encodeDefGob(d)
	if !ok {
		t.Fatal("encodeDefGob refused a definition")
	}
	for n := 0; n < len(data); n++ {
		if _, ok := decodeDefGob(data[:n]); ok {
			t.Fatalf("decoded the first %d of %d bytes", n, len(data))
		}
	}
	if _, ok := decodeDefGob(append(append([]byte{}, data...), 0)); ok {
		t.Error("decoded with a trailing byte")
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(d.Sources); err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeDefGob(buf.Bytes()); ok {
		t.Error("decoded a gob")
	}
	deep := any("x")
	for i := 0; i < maxVarDepth+1; i++ {
		deep = []any{deep}
	}
	for name, vars := range map[string]map[string]any{
		"a struct":            {"x": struct{}{}},
		"an int32":            {"x": int32(1)},
		"a map of any keys":   {"x": map[any]any{"k": 1}},
		"nesting over bounds": {"x": deep},
	} {
		d := filledDefGob(t)
		d.Workflow.Vars = vars
		if _, ok := encodeDefGob(d); ok {
			t.Errorf("encoded vars holding %s", name)
		}
	}
	d = filledDefGob(t)
	d.Steps[0].Step.When = &Condition{Source: "true"}
	if _, ok := encodeDefGob(d); ok {
		t.Error("encoded a step whose condition is not in stepGob.When")
	}
}
