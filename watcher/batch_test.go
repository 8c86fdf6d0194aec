package watcher

import (
	"reflect"
	"testing"
	"time"
)

func TestBatcherTiming(t *testing.T) {
	const quiet, maxWait = 300 * time.Millisecond, 2 * time.Second
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name   string
		events []time.Duration // when a change arrives, from t0
		notDue time.Duration   // a moment at which the batch must still wait
		due    time.Duration   // the first moment it is due
	}{
		{name: "one change waits for the quiet window", events: []time.Duration{0}, notDue: ms(299), due: ms(300)},
		{name: "each change restarts the window", events: []time.Duration{0, ms(200), ms(400)}, notDue: ms(699), due: ms(700)},
		{name: "a steady stream is cut at the max wait",
			events: []time.Duration{0, ms(250), ms(500), ms(750), ms(1000), ms(1250), ms(1500), ms(1750), ms(1999)},
			notDue: ms(1999), due: ms(2000)},
		{name: "a late change after a pause", events: []time.Duration{0, ms(290)}, notDue: ms(589), due: ms(590)},
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBatcher(quiet, maxWait)
			if b.due(t0) {
				t.Fatal("an empty batcher is due")
			}
			for i, at := range tt.events {
				b.add(t0.Add(at), "/r/f"+string(rune('a'+i%3)))
			}
			if b.due(t0.Add(tt.notDue)) {
				t.Errorf("due at %v, want not before %v", tt.notDue, tt.due)
			}
			if !b.due(t0.Add(tt.due)) {
				t.Errorf("not due at %v", tt.due)
			}
			if got := b.deadline(); !got.Equal(t0.Add(tt.due)) {
				t.Errorf("deadline = %v, want %v", got.Sub(t0), tt.due)
			}
		})
	}
}

func TestBatcherTake(t *testing.T) {
	t0 := time.Now()
	b := newBatcher(time.Second, time.Second)
	for _, p := range []string{"/r/b", "/r/a", "/r/b", "/r/c"} {
		b.add(t0, p)
	}
	got := b.take()
	if want := (Batch{Paths: []string{"/r/a", "/r/b", "/r/c"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("take = %+v, want %+v", got, want)
	}
	if !b.empty() {
		t.Error("not empty after take")
	}
	b.addOverflow(t0)
	if got := b.take(); !got.Overflow || len(got.Paths) != 0 {
		t.Errorf("overflow batch = %+v", got)
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name     string
		old, new Batch
		want     Batch
	}{
		{"into empty", Batch{}, Batch{Paths: []string{"/a"}}, Batch{Paths: []string{"/a"}}},
		{"union sorted", Batch{Paths: []string{"/b", "/d"}}, Batch{Paths: []string{"/a", "/b"}},
			Batch{Paths: []string{"/a", "/b", "/d"}}},
		{"overflow sticks", Batch{Overflow: true}, Batch{Paths: []string{"/a"}}, Batch{Paths: []string{"/a"}, Overflow: true}},
		{"overflow from new", Batch{Paths: []string{"/a"}}, Batch{Overflow: true}, Batch{Paths: []string{"/a"}, Overflow: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := merge(tt.old, tt.new); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("merge = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{0: "NONE", Create: "CREATE", Create | Write: "CREATE|WRITE", Remove | Rename | Chmod: "REMOVE|RENAME|CHMOD"} {
		if got := op.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", op, got, want)
		}
	}
}
