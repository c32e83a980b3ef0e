package server

import (
	"reflect"
	"sync"
	"unsafe"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// handshakeFields are the fields in which llib's non-blocking TLS (v1.2.4)
// keeps a server handshake in progress. It never clears them, so every idle
// wss connection would carry its whole finished handshake (the ClientHello, the
// transcript, the key exchange): about 6 KB. They are only read while the
// handshake runs (handshake_server.go, serverHandshake), so once the WebSocket
// upgrade has been read through the TLS connection they are dead weight.
// TestReleaseHandshakeFieldsExist fails if a dependency upgrade renames them.
var handshakeFields = []string{"hs13", "hs", "clientHello"}

// releaseHandshake drops a finished handshake's state from a TLS connection.
func releaseHandshake(ws *websocket.Conn) {
	hc, ok := ws.Conn.(*nbhttp.Conn)
	if !ok {
		return
	}
	if tc, ok := hc.Conn.(*tls.Conn); ok {
		releaseTLSState(tc)
	}
}

// releaseTLSState drops what a TLS connection holds only for its handshake.
func releaseTLSState(tc *tls.Conn) {
	if !tc.ConnectionState().HandshakeComplete {
		return
	}
	v := reflect.ValueOf(tc).Elem()
	// The poller may be reading the connection's next records right now; llib's
	// read path (AppendAndRead) holds closeMux throughout, so hold it too.
	mf := v.FieldByName("closeMux")
	if !mf.IsValid() || mf.Type() != reflect.TypeOf(sync.Mutex{}) {
		return
	}
	mu := (*sync.Mutex)(unsafe.Pointer(mf.UnsafeAddr()))
	mu.Lock()
	defer mu.Unlock()
	for _, name := range handshakeFields {
		clearField(v, name)
	}
	// The buffer the handshake messages were read into (a pooled *[]byte,
	// kept at its full capacity); llib allocates a new one if a post-handshake
	// message ever comes. Only when nothing is pending in it.
	if h := v.FieldByName("hand"); h.IsValid() && !h.IsNil() && h.Elem().Len() == 0 {
		clearField(v, "hand")
	}
}

func clearField(v reflect.Value, name string) {
	f := v.FieldByName(name)
	if !f.IsValid() {
		return
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.Zero(f.Type()))
}
