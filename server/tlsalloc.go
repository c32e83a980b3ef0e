package server

import "github.com/lesismal/nbio/mempool"

// smallTLSBuffer is the size below which a TLS buffer is its own allocation
// rather than a pooled one. llib keeps the last decrypted record of each
// connection (tls.Conn.inputBuf) until the next one arrives; from a pool every
// buffer is at least 1 KiB, so an idle connection whose last record was a ping
// or a chat frame would hold 1 KiB for a dozen bytes. Exact allocations cost
// what they hold; the read buffers (at least bytes.MinRead = 512) and large
// records still come from the pool.
const smallTLSBuffer = 512

// tlsBuffers is the allocator llib's TLS connections take their record buffers
// from (nbhttp.Config.TLSAllocator).
type tlsBuffers struct {
	pool mempool.Allocator
}

func newTLSBuffers() tlsBuffers { return tlsBuffers{pool: mempool.DefaultMemPool} }

// Malloc returns a buffer of len size.
func (b tlsBuffers) Malloc(size int) *[]byte {
	if size < smallTLSBuffer {
		buf := make([]byte, size)
		return &buf
	}
	return b.pool.Malloc(size)
}

// Realloc returns a buffer of len size holding buf's bytes; buf may be freed.
func (b tlsBuffers) Realloc(buf *[]byte, size int) *[]byte {
	if size <= cap(*buf) {
		*buf = (*buf)[:size]
		return buf
	}
	grown := b.Malloc(size)
	copy(*grown, *buf)
	b.Free(buf)
	return grown
}

// Append appends to buf, growing it as append does.
func (b tlsBuffers) Append(buf *[]byte, more ...byte) *[]byte {
	*buf = append(*buf, more...)
	return buf
}

// AppendString appends to buf, growing it as append does.
func (b tlsBuffers) AppendString(buf *[]byte, more string) *[]byte {
	*buf = append(*buf, more...)
	return buf
}

// Free hands a pool-sized buffer back to the pool and leaves a small one to
// the garbage collector, so the pool only ever holds buffers worth reusing.
func (b tlsBuffers) Free(buf *[]byte) {
	if buf == nil || cap(*buf) < smallTLSBuffer {
		return
	}
	b.pool.Free(buf)
}
