package server

import (
	"reflect"
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
}
