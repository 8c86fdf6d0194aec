package orchestrator

import (
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/bincode"
)

// The state cache's encoding (stateCacheFile, after the blob id). It was
// a gob: a new process's gob decoder first reads and compiles the types
// the stream describes, which made the decoding of a 100-record state
// about 3% of a status's CPU time; this fixed layout decodes without
// reflection. A field added to gitstate.State, StepRecord or RunRecord
// must be added here (TestStateCodecCoversEveryField fails until it is).
//
// Layout (package bincode): stateCodecMagic, then Version and Seq, Uses,
// Steps (in key order), each record's fields in declaration order, with
// FinishedAt as time.MarshalBinary writes it (what gob kept).

// stateCodecMagic starts the encoding: anything else (the gob of an
// earlier binary) is not decoded.
const stateCodecMagic = "cmstate1\n"

// encodeState encodes st; ok is false when it cannot be (a nil record, a
// time MarshalBinary refuses), and then it is not cached.
func encodeState(st *gitstate.State) (data []byte, ok bool) {
	e := &bincode.Encoder{B: []byte(stateCodecMagic)}
	e.Int(int64(st.Version))
	e.Int(st.Seq)
	e.StringMap(st.Uses)
	e.Len(st.Steps == nil, len(st.Steps))
	for _, k := range bincode.SortedKeys(st.Steps) {
		rec := st.Steps[k]
		if rec == nil {
			return nil, false
		}
		e.String(k)
		if !encodeRunRecord(e, &rec.RunRecord) {
			return nil, false
		}
		e.Len(rec.Tasks == nil, len(rec.Tasks))
		for _, tk := range bincode.SortedKeys(rec.Tasks) {
			task := rec.Tasks[tk]
			if task == nil {
				return nil, false
			}
			e.String(tk)
			if !encodeRunRecord(e, task) {
				return nil, false
			}
		}
	}
	return e.B, true
}

func encodeRunRecord(e *bincode.Encoder, r *gitstate.RunRecord) bool {
	at, err := r.FinishedAt.MarshalBinary()
	if err != nil {
		return false
	}
	e.String(r.Fingerprint)
	e.Int(r.Seq)
	e.String(string(at))
	e.String(r.Engine)
	e.String(r.Model)
	e.Int(int64(r.Attempts))
	e.Int(r.TokensIn)
	e.Int(r.TokensOut)
	e.Float(r.CostUSD)
	e.Bool(r.CostKnown)
	e.Int(int64(r.Duration))
	e.Bool(r.Skipped)
	e.String(r.Output)
	e.Int(int64(r.Iteration))
	e.String(r.Files)
	return true
}

func decodeRunRecord(d *bincode.Decoder, r *gitstate.RunRecord) {
	r.Fingerprint = d.String()
	r.Seq = d.Int()
	if err := r.FinishedAt.UnmarshalBinary([]byte(d.String())); err != nil {
		d.Bad = true
	}
	r.Engine = d.String()
	r.Model = d.String()
	r.Attempts = d.Intn()
	r.TokensIn = d.Int()
	r.TokensOut = d.Int()
	r.CostUSD = d.Float()
	r.CostKnown = d.Bool()
	r.Duration = time.Duration(d.Int())
	r.Skipped = d.Bool()
	r.Output = d.String()
	r.Iteration = d.Intn()
	r.Files = d.String()
}

// decodeState decodes what encodeState wrote; ok is false for anything
// else (another format, truncated or trailing bytes).
func decodeState(data []byte) (*gitstate.State, bool) {
	if len(data) < len(stateCodecMagic) || string(data[:len(stateCodecMagic)]) != stateCodecMagic {
		return nil, false
	}
	d := bincode.NewDecoder(data[len(stateCodecMagic):])
	st := &gitstate.State{Version: d.Intn(), Seq: d.Int(), Uses: d.StringMap()}
	if n, isNil := d.Len(); !isNil {
		st.Steps = make(map[string]*gitstate.StepRecord, n)
		for i := 0; i < n && !d.Bad; i++ {
			k := d.String()
			rec := &gitstate.StepRecord{}
			decodeRunRecord(d, &rec.RunRecord)
			if tn, tNil := d.Len(); !tNil {
				rec.Tasks = make(map[string]*gitstate.RunRecord, tn)
				for j := 0; j < tn && !d.Bad; j++ {
					tk := d.String()
					task := &gitstate.RunRecord{}
					decodeRunRecord(d, task)
					rec.Tasks[tk] = task
				}
			}
			st.Steps[k] = rec
		}
	}
	if !d.Done() {
		return nil, false
	}
	return st, true
}
