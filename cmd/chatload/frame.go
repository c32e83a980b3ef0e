package main

import (
	"bufio"
	"bytes"
	crand "crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opCont  = 0x0
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

const maxFramePayload = 16 << 20

var errFrameTooBig = errors.New("frame payload over 16 MiB")

// appendFrame appends one final, masked client frame to dst.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n < 1<<16:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	k := rand.Uint32()
	key := [4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range dst[start:] {
		dst[start+i] ^= key[i&3]
	}
	return dst
}

// parseFrame reads one frame from b. n == 0 means b holds no complete
// frame yet. A masked payload is unmasked in place.
func parseFrame(b []byte) (fin bool, op byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return false, 0, nil, 0, nil
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0F
	masked := b[1]&0x80 != 0
	plen, h := uint64(b[1]&0x7F), 2
	switch plen {
	case 126:
		if len(b) < 4 {
			return false, 0, nil, 0, nil
		}
		plen, h = uint64(b[2])<<8|uint64(b[3]), 4
	case 127:
		if len(b) < 10 {
			return false, 0, nil, 0, nil
		}
		plen = 0
		for _, c := range b[2:10] {
			plen = plen<<8 | uint64(c)
		}
		h = 10
	}
	if plen > maxFramePayload {
		return false, 0, nil, 0, errFrameTooBig
	}
	if masked {
		h += 4
	}
	total := h + int(plen)
	if len(b) < total {
		return false, 0, nil, 0, nil
	}
	payload = b[h:total]
	if masked {
		key := b[h-4 : h]
		for i := range payload {
			payload[i] ^= key[i&3]
		}
	}
	return fin, op, payload, total, nil
}

// upgradeRequest builds the client handshake and returns it with the key.
func upgradeRequest(host, path string) (req []byte, key string, err error) {
	var nonce [16]byte
	if _, err := crand.Read(nonce[:]); err != nil {
		return nil, "", fmt.Errorf("handshake key: %w", err)
	}
	key = base64.StdEncoding.EncodeToString(nonce[:])
	req = fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host, key)
	return req, key, nil
}

// checkUpgrade validates the server's handshake response headers.
func checkUpgrade(hdr []byte, key string) error {
	res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(hdr)), nil)
	if err != nil {
		return fmt.Errorf("handshake response: %w", err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("handshake: status %s", res.Status)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if res.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return errors.New("handshake: bad Sec-WebSocket-Accept")
	}
	return nil
}
