package server

import (
	"bytes"
	"testing"
)

func TestTLSBuffers(t *testing.T) {
	b := newTLSBuffers()

	small := b.Malloc(18)
	if len(*small) != 18 || cap(*small) >= smallTLSBuffer {
		t.Fatalf("Malloc(18): len %d cap %d; want its own small allocation", len(*small), cap(*small))
	}
	copy(*small, "an idle ping frame")

	// Growing a small buffer past the threshold moves it to a pooled one and
	// keeps its bytes.
	grown := b.Realloc(small, 600)
	if len(*grown) != 600 || !bytes.HasPrefix(*grown, []byte("an idle ping frame")) {
		t.Fatalf("Realloc(600): len %d, starts %q", len(*grown), (*grown)[:18])
	}
	b.Free(grown)

	big := b.Malloc(bytesMinRead)
	if len(*big) != bytesMinRead || cap(*big) < smallTLSBuffer {
		t.Fatalf("Malloc(%d): len %d cap %d; want a pooled buffer", bytesMinRead, len(*big), cap(*big))
	}
	big = b.AppendString(b.Append(big, '!'), "?")
	if n := len(*big); n != bytesMinRead+2 || string((*big)[n-2:]) != "!?" {
		t.Fatalf("Append: len %d, ends %q", n, (*big)[n-2:])
	}
	b.Free(big)
	b.Free(nil) // llib frees what it may never have allocated
}

// bytesMinRead is the smallest read buffer llib asks for (bytes.MinRead).
const bytesMinRead = bytes.MinRead
