package handlers

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var seeds = []string{
	`{"flag":"init","from":"alice","to":"bob"}`,
	`{"flag":"init","from":"alice"}`,
	`{"flag":"init","from":"alice","to":""}`,
	`{"flag":"msg","from":"alice","to":"bob","content":"hi"}`,
	`{"flag":"all","from":"admin","content":"notice"}`,
	`{"flag":"group","from":"a","to":"g1","content":"x"}`,
	`{"flag":"online","to":"bob"}`,
	`{"flag":"ping"}`,
	`{"type":"heart"}`,
	`{"flag":"msg","from":123,"to":-4,"content":"\u0000\ud83d\ude00"}`,
	`{"flag":"msg","from":"alice","to":"bob","content":"hi"`,
	`[1,2,3]`, `null`, `""`, `{}`, ` `, `{"flag":null}`, `{"flag":"msg","from":1e3}`,
	`{"flag":"msg","content":"` + strings.Repeat("x", 3000) + `"}`,
}

// FuzzDecode: any input decodes or is refused with a protocol error; it never
// panics, and a decoded frame always has a flag or is a heartbeat.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := Decode(data)
		if err != nil {
			if err.Code == "" || err.Message == "" {
				t.Fatalf("error without code or message: %+v", err)
			}
			return
		}
		if fr.Flag == "" && !fr.Heart {
			t.Fatalf("decoded %q to a frame with neither flag nor heartbeat", data)
		}
	})
}

// FuzzHandle: whatever a client sends, the handler answers with at most one
// frame to the sender (none for a valid msg, init or all) and never panics.
func FuzzHandle(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fx := newFixture(t)
		c, fc := fx.conn("c")
		fx.send(c, `{"flag":"init","from":"alice"}`)
		fc.payloads(t)
		fx.h.Handle(c, true, data)
		if got := fc.payloads(t); len(got) > 1 {
			// all reaches the sender too; online/ping/error are one reply.
			t.Fatalf("%q produced %d frames to the sender: %v", data, len(got), got)
		}
	})
}

// referenceFields decodes the five known members with encoding/json (exact,
// case-sensitive keys, last one wins), the behaviour scanObject must match.
func referenceFields(data []byte) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return nil, false
	}
	return m, true
}

// FuzzScanMatchesEncodingJSON: for every valid JSON object, the hand-written
// scanner finds the same raw values as encoding/json for the keys we read.
func FuzzScanMatchesEncodingJSON(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"flag":"a","flag":"b","\u0066rom":"x","nested":{"flag":"no","a":[1,"}",{"b":"]"}]},"to":"y\"z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		trimmed := bytes.TrimLeft(data, " \t\r\n")
		if !json.Valid(trimmed) || len(trimmed) == 0 || trimmed[0] != '{' {
			return
		}
		ref, ok := referenceFields(trimmed)
		if !ok {
			return
		}
		got := scanObject(trimmed)
		short := func(b []byte) string {
			if len(b) > 60 {
				return string(b[:30]) + "..." + string(b[len(b)-30:])
			}
			return string(b)
		}
		for name, fld := range map[string]field{"flag": got.flag, "type": got.typ, "from": got.from, "to": got.to, "content": got.content, "token": got.token, "cid": got.cid, "ack": got.ack, "id": got.id} {
			want, present := ref[name]
			if !present {
				if fld.kind != kAbsent {
					t.Fatalf("%q: scanner found %s=%s; encoding/json found none", short(data), name, short(fld.raw))
				}
				continue
			}
			if !bytes.Equal(bytes.TrimSpace(want), fld.raw) {
				t.Fatalf("%q: %s = %s; encoding/json says %s", short(data), name, short(fld.raw), short(want))
			}
			if fld.kind == kString {
				var s string
				_ = json.Unmarshal(want, &s)
				if u, ok := unquote(fld.raw); !ok || u != s {
					t.Fatalf("%q: %s unquoted to %q; want %q", short(data), name, short([]byte(u)), short([]byte(s)))
				}
			}
		}
	})
}
