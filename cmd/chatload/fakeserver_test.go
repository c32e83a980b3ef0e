package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// fakeServer is a goroutine-per-connection server (gorilla) with an
// in-memory offline store, for what the baseline cannot show: delivery of
// stored messages on init, and a server that, like the old PHP one, does
// not answer {"flag":"ping"}.
type fakeServer struct {
	answerPing bool
	dropEvery  int // > 0: silently drop every dropEvery-th msg frame
	// apiSecret enables POST /api/broadcast (bearer apiSecret), which writes
	// the announcement to every online connection, as the side API does;
	// dupAnnounce > 0 writes it twice to that many of them.
	apiSecret   string
	dupAnnounce int

	msgs      int // msg frames seen, under mu
	allFrames int // "all" frames received from clients, under mu

	mu     sync.Mutex
	online map[string]*fakeConn
	stored map[string][]fakeMsg
}

type fakeMsg struct {
	From    string `json:"from"`
	Content string `json:"content"`
}

type fakeConn struct {
	mu sync.Mutex // gorilla allows one concurrent writer
	ws *websocket.Conn
}

func (c *fakeConn) write(v any) {
	b, _ := json.Marshal(v)
	c.mu.Lock()
	_ = c.ws.WriteMessage(websocket.TextMessage, b)
	c.mu.Unlock()
}

func startFake(t *testing.T, answerPing bool) string {
	t.Helper()
	f := &fakeServer{answerPing: answerPing, online: map[string]*fakeConn{}, stored: map[string][]fakeMsg{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api/broadcast" {
		f.announce(w, r)
		return
	}
	up := websocket.Upgrader{}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &fakeConn{ws: ws}
	defer ws.Close()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var in struct{ Flag, From, To, Content string }
		if json.Unmarshal(data, &in) != nil {
			continue
		}
		switch in.Flag {
		case "init":
			f.mu.Lock()
			f.online[in.From] = c
			pending := f.stored[in.From]
			delete(f.stored, in.From)
			f.mu.Unlock()
			for _, m := range pending {
				c.write(m)
			}
		case "msg":
			f.mu.Lock()
			f.msgs++
			if f.dropEvery > 0 && f.msgs%f.dropEvery == 0 {
				f.mu.Unlock()
				continue
			}
			dst := f.online[in.To]
			if dst == nil {
				f.stored[in.To] = append(f.stored[in.To], fakeMsg{in.From, in.Content})
			}
			f.mu.Unlock()
			if dst != nil {
				dst.write(fakeMsg{in.From, in.Content})
			}
		case "all":
			f.mu.Lock()
			f.allFrames++
			f.mu.Unlock()
		case "ping":
			if f.answerPing {
				c.write(map[string]string{"flag": "pong"})
			}
		}
	}
}

// announce is the side API's POST /api/broadcast {from,content} ->
// {"connections":n}.
func (f *fakeServer) announce(w http.ResponseWriter, r *http.Request) {
	if f.apiSecret == "" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.apiSecret {
		http.Error(w, `{"error":{"code":"unauthorized","message":"bad secret"}}`, http.StatusUnauthorized)
		return
	}
	var in fakeMsg
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.From == "" || in.Content == "" {
		http.Error(w, `{"error":{"code":"bad_request","message":"from and content"}}`, http.StatusBadRequest)
		return
	}
	frame := map[string]string{"flag": "all", "from": in.From, "content": in.Content}
	f.mu.Lock()
	conns := make([]*fakeConn, 0, len(f.online))
	for _, c := range f.online {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for i, c := range conns {
		c.write(frame)
		if i < f.dupAnnounce {
			c.write(frame)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int{"connections": len(conns)})
}
