package main

import (
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// message is what a recipient of msg (and, with flag "all", of a
// broadcast) receives.
type message struct {
	From    string `json:"from"`
	Content string `json:"content"`
}

// Server routes frames between connections bound to accounts.
type Server struct {
	engine *nbhttp.Engine

	mu    sync.RWMutex                            // guards conns and acct
	conns map[*websocket.Conn]string              // every open conn -> bound account
	acct  map[string]map[*websocket.Conn]struct{} // account -> its conns
}

type frame struct {
	Flag    string `json:"flag"`
	From    string `json:"from"`
	To      string `json:"to"`
	Content string `json:"content"`
}

// newServer builds a server for addr (port 0 picks one); s.engine.Start
// listens and then holds the bound address in s.engine.Addrs[0].
func newServer(addr string) *Server {
	s := &Server{
		conns: make(map[*websocket.Conn]string),
		acct:  make(map[string]map[*websocket.Conn]struct{}),
	}
	u := websocket.NewUpgrader()
	u.KeepaliveTime = 60 * time.Second // idle connections are closed after 60 s
	u.CheckOrigin = func(*http.Request) bool { return true }
	u.OnOpen(s.open)
	u.OnMessage(s.message)
	u.OnClose(s.close)
	mux := &http.ServeMux{}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = u.Upgrade(w, r, nil) })
	s.engine = nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{addr},
		Handler:                 mux,
		IOMod:                   nbhttp.IOModNonBlocking,
		NPoller:                 runtime.NumCPU(),
		ReleaseWebsocketPayload: true,
		MaxWriteBufferSize:      4 << 20,
	})
	return s
}
