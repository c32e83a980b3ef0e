package handlers

import (
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
	`{"flag":"msg","content":"` + strings.Repeat("x", 70000) + `"}`,
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
