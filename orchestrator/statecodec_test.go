package orchestrator

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/codemachine/codemachine/gitstate"
)

// fillRunRecord sets every field of r to a value other than its zero,
// distinct per seed, by reflection: a field added to RunRecord is filled
// too, and a codec that does not carry it loses it.
func fillRunRecord(t *testing.T, r *gitstate.RunRecord, seed int) {
	t.Helper()
	v := reflect.ValueOf(r).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Interface().(type) {
		case time.Time:
			f.Set(reflect.ValueOf(time.Date(2026, 12, 7, 1, 2, 3, 4+seed, time.FixedZone("", 3600))))
			continue
		case time.Duration:
			f.SetInt(int64(time.Second) * int64(seed+i+1))
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString(fmt.Sprintf("%s-%d\nline", v.Type().Field(i).Name, seed))
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(-(seed + i + 1) * 1000003))
		case reflect.Float64:
			f.SetFloat(0.125 * float64(seed+i+1))
		case reflect.Bool:
			f.SetBool(true)
		default:
			t.Fatalf("RunRecord.%s is a %s: give it a value here and carry it in statecodec.go", v.Type().Field(i).Name, f.Type())
		}
	}
}

// TestStateCodecCoversEveryField: every field of a state, its records and
// their tasks comes back from the cache's encoding as it was (nil maps as
// nil, empty ones empty), and as a gob of it decodes.
func TestStateCodecCoversEveryField(t *testing.T) {
	if n := reflect.TypeOf(gitstate.State{}).NumField(); n != 4 {
		t.Fatalf("gitstate.State has %d fields: carry the new ones in statecodec.go and update this test", n)
	}
	if n := reflect.TypeOf(gitstate.StepRecord{}).NumField(); n != 2 {
		t.Fatalf("gitstate.StepRecord has %d fields: carry the new ones in statecodec.go and update this test", n)
	}
	st := &gitstate.State{Version: 3, Seq: 1 << 40, Uses: map[string]string{"https://x/y.git@v1": "abc", "z@main": ""},
		Steps: map[string]*gitstate.StepRecord{"plain": {}, "empty-tasks": {Tasks: map[string]*gitstate.RunRecord{}}}}
	fe := &gitstate.StepRecord{Tasks: map[string]*gitstate.RunRecord{}}
	fillRunRecord(t, &fe.RunRecord, 0)
	for i := 1; i <= 3; i++ {
		task := &gitstate.RunRecord{}
		fillRunRecord(t, task, i)
		fe.Tasks[fmt.Sprintf("T%d", i)] = task
	}
	st.Steps["foreach"] = fe
	one := &gitstate.StepRecord{}
	fillRunRecord(t, &one.RunRecord, 9)
	st.Steps["one"] = one

	data, ok := encodeState(st)
	if !ok {
		t.Fatal("encodeState refused a state")
	}
	got, ok := decodeState(data)
	if !ok {
		t.Fatal("decodeState refused what encodeState wrote")
	}
	// Times compare by their instant and offset, as gob kept them.
	var viaGob gitstate.State
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		t.Fatal(err)
	}
	if err := gob.NewDecoder(&buf).Decode(&viaGob); err != nil {
		t.Fatal(err)
	}
	for id, rec := range st.Steps {
		g := got.Steps[id]
		if g == nil {
			t.Fatalf("step %s lost", id)
		}
		if !g.FinishedAt.Equal(rec.FinishedAt) || g.FinishedAt.String() != viaGob.Steps[id].FinishedAt.String() {
			t.Errorf("step %s: FinishedAt %v, want %v", id, g.FinishedAt, viaGob.Steps[id].FinishedAt)
		}
		for tk, task := range rec.Tasks {
			if !g.Tasks[tk].FinishedAt.Equal(task.FinishedAt) {
				t.Errorf("task %s/%s: FinishedAt %v, want %v", id, tk, g.Tasks[tk].FinishedAt, task.FinishedAt)
			}
		}
	}
	// With the times' locations made alike, the rest compares whole.
	norm := func(s *gitstate.State) {
		for _, rec := range s.Steps {
			rec.FinishedAt = rec.FinishedAt.UTC()
			for _, task := range rec.Tasks {
				task.FinishedAt = task.FinishedAt.UTC()
			}
		}
	}
	norm(st)
	norm(got)
	if !reflect.DeepEqual(got, st) {
		t.Errorf("decoded %+v\nwant %+v", got, st)
	}
	if got.Steps["plain"].Tasks != nil || got.Steps["empty-tasks"].Tasks == nil {
		t.Error("a nil task map and an empty one did not come back as they were")
	}
}

// TestStateCodecRefusesOtherBytes: a gob of an earlier binary, a
// truncated encoding, trailing bytes or a corrupted length are not
// decoded (and do not panic or allocate by a length read from the file).
func TestStateCodecRefusesOtherBytes(t *testing.T) {
	st := &gitstate.State{Version: 1, Seq: 2, Steps: map[string]*gitstate.StepRecord{}}
	for i := 0; i < 5; i++ {
		rec := &gitstate.StepRecord{}
		fillRunRecord(t, &rec.RunRecord, i)
		st.Steps[fmt.Sprint("s", i)] = rec
	}
	data, ok := encodeState(st)
	if !ok {
		t.Fatal("encodeState refused a state")
	}
	for n := 0; n < len(data); n++ {
		if _, ok := decodeState(data[:n]); ok {
			t.Fatalf("decoded the first %d of %d bytes", n, len(data))
		}
	}
	if _, ok := decodeState(append(append([]byte{}, data...), 0)); ok {
		t.Error("decoded with a trailing byte")
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeState(buf.Bytes()); ok {
		t.Error("decoded a gob")
	}
	huge := append([]byte(stateCodecMagic), 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)
	if _, ok := decodeState(huge); ok {
		t.Error("decoded a map of 2^63 entries")
	}
	if _, ok := encodeState(&gitstate.State{Steps: map[string]*gitstate.StepRecord{"s": nil}}); ok {
		t.Error("encoded a nil record")
	}
}
