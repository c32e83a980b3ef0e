package server

import (
	"reflect"
	"sync"
	"testing"

	"github.com/lesismal/llib/std/crypto/tls"
)

func TestReleaseHandshakeFieldsExist(t *testing.T) {
	typ := reflect.TypeOf(tls.Conn{})
	for _, name := range append(handshakeFields, "hand") {
		f, ok := typ.FieldByName(name)
		if !ok {
			t.Fatalf("llib tls.Conn has no field %q any more: review releaseHandshake for this llib version", name)
		}
		if k := f.Type.Kind(); k != reflect.Pointer {
			t.Fatalf("llib tls.Conn.%s is a %s, not a pointer: review releaseHandshake", name, k)
		}
	}
	if f, ok := typ.FieldByName("closeMux"); !ok || f.Type != reflect.TypeOf(sync.Mutex{}) {
		t.Fatal("llib tls.Conn has no closeMux sync.Mutex any more: review releaseHandshake (it must hold the read path's lock)")
	}
}
