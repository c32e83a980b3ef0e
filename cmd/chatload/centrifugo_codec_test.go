package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The commands the tool sends are the JSON Centrifugo's protocol defines.
func TestCentrifugoCommands(t *testing.T) {
	var conn struct {
		ID      int            `json:"id"`
		Connect map[string]any `json:"connect"`
	}
	if err := json.Unmarshal(cfConnectCmd(), &conn); err != nil || conn.ID != cfConnectID || conn.Connect == nil {
		t.Fatalf("connect %s: %+v %v", cfConnectCmd(), conn, err)
	}
	type sub struct {
		ID        int `json:"id"`
		Subscribe struct {
			Channel string `json:"channel"`
		} `json:"subscribe"`
	}
	var subs []sub
	err := parseCfFrame(cfSubscribeCmds("al-1.x"), func(*cfReply) {})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range splitLines(cfSubscribeCmds("al-1.x")) {
		var s sub
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatalf("subscribe line %s: %v", line, err)
		}
		subs = append(subs, s)
	}
	if len(subs) != 2 || subs[0].ID != cfSubAllID || subs[0].Subscribe.Channel != cfAnnounce ||
		subs[1].ID != cfSubOwnID || subs[1].Subscribe.Channel != "chat.u.al-1.x" {
		t.Fatalf("subscribes = %+v", subs)
	}
	b := appendCfPublishHead(nil, 42, "bob", "al")
	b = appendContent(b, kindPair, 7, 99, 20)
	b = append(b, cfPublishTail...)
	var pub struct {
		ID      int `json:"id"`
		Publish struct {
			Channel string            `json:"channel"`
			Data    map[string]string `json:"data"`
		} `json:"publish"`
	}
	if err := json.Unmarshal(b, &pub); err != nil {
		t.Fatalf("publish %s: %v", b, err)
	}
	if pub.ID != 42 || pub.Publish.Channel != "chat.u.bob" || pub.Publish.Data["from"] != "al" {
		t.Fatalf("publish = %+v", pub)
	}
	if k, seq, ns, ok := parseContent([]byte(pub.Publish.Data["content"])); !ok || k != kindPair || seq != 7 || ns != 99 {
		t.Fatalf("content %q", pub.Publish.Data["content"])
	}
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, b[start:i])
			start = i + 1
		}
	}
	return append(out, b[start:])
}

// A frame of the kind Centrifugo sends: several replies and pushes, one per line.
func TestParseCentrifugoFrame(t *testing.T) {
	frame := `{"id":1,"connect":{"client":"c1","version":"6.9.1","ping":25,"pong":true}}` + "\n" +
		`{"id":2,"subscribe":{}}` + "\n" +
		`{}` + "\n" +
		`{"push":{"channel":"chat.all","pub":{"data":{"from":"admin","content":"b.3.12"},"offset":5}}}` + "\n" +
		`{"id":9,"error":{"code":103,"message":"permission \"denied\""}}` + "\n" +
		`{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}`
	var got []cfReply
	if err := parseCfFrame([]byte(frame), func(r *cfReply) { got = append(got, *r) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 {
		t.Fatalf("%d replies, want 6", len(got))
	}
	if r := got[0]; r.id != 1 || !r.hasResult || r.ping {
		t.Errorf("connect reply %+v", r)
	}
	if r := got[1]; r.id != 2 || !r.hasResult {
		t.Errorf("subscribe reply %+v", r)
	}
	if r := got[2]; !r.ping || r.id != 0 {
		t.Errorf("ping %+v", r)
	}
	if r := got[3]; !r.pub || string(r.channel) != "chat.all" || string(r.from) != "admin" || string(r.content) != "b.3.12" {
		t.Errorf("push %+v", r)
	}
	if r := got[4]; r.id != 9 || string(r.errCode) != "103" || string(r.errMsg) != `permission "denied"` || r.hasResult {
		t.Errorf("error %+v", r)
	}
	if r := got[5]; string(r.disc) != "shutdown" || r.pub {
		t.Errorf("disconnect %+v", r)
	}
	for _, bad := range []string{`[]`, `{"id":"x"}`, `{"id":1,`, `{"push":{"pub":{"data":[1]}}}`} {
		if err := parseCfFrame([]byte(bad), func(*cfReply) {}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// The flags that do not map to Centrifugo are refused, and broadcast goes
// through its HTTP API on the same address.
func TestCentrifugoConfig(t *testing.T) {
	c, err := parseConfig([]string{"broadcast", "-protocol", "centrifugo", "-addr", "127.0.0.1:8000", "-api-secret", "k"}, noEnv, &syncWriter{w: new(bytes.Buffer)})
	if err != nil {
		t.Fatal(err)
	}
	if c.protocol != protoCentrifugo || c.broadcastAPI != "http://127.0.0.1:8000/api/publish" {
		t.Fatalf("protocol %q api %q", c.protocol, c.broadcastAPI)
	}
	for _, args := range [][]string{
		{"offline", "-protocol", "centrifugo"},
		{"handover", "-protocol", "centrifugo", "-handover-pid", "1"},
		{"idle", "-protocol", "centrifugo", "-gc-signal"},
		{"pairs", "-protocol", "centrifugo", "-tls"},
		{"broadcast", "-protocol", "centrifugo"}, // no API key
		{"idle", "-protocol", "mqtt"},
	} {
		if _, err := parseConfig(args, noEnv, &syncWriter{w: new(bytes.Buffer)}); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}
