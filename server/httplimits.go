package server

import "net/http"

// Plain HTTP on the WebSocket port is an upgrade or a page, both GETs without a
// body. nbio reads a request whole before calling the handler (a Content-Length
// body is buffered until it is complete, a chunked one chunk by chunk), so the
// bounds below are what stops a request from costing what its sender claims.

// maxRequestBodyBytes bounds a chunked body as it is buffered (nbio's
// MaxHTTPBodySize); any body at all is refused by refuseBody.
const maxRequestBodyBytes = 4 << 10

// readLimit bounds what nbio buffers for one connection before the handler or
// frame parser can use it (nbio's ReadLimit, 64 MiB by default): a request's
// header and Content-Length body, and a WebSocket connection's partial frame.
// It must hold the largest frame we accept plus one read, or a legal frame
// split across reads would close the connection.
func readLimit(cfg Config) int {
	const frameHeader = 14
	return cfg.MaxFrameBytes + frameHeader + cfg.ReadBufferBytes + 4<<10
}

// refuseBody answers 413 and closes the connection when a request brings a
// body, and reports whether it did.
func refuseBody(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength <= 0 && len(r.TransferEncoding) == 0 {
		return false
	}
	r.Close = true // nbio closes the connection once the answer is written
	w.Header().Set("Connection", "close")
	http.Error(w, "request bodies are not accepted here", http.StatusRequestEntityTooLarge)
	return true
}
