package reuseport

import (
	"net"
	"testing"
)

// TestTwoListenersShareAPort: a second shared listener binds the port a
// shared one holds, and both accept; a port held without the option is
// refused.
func TestTwoListenersShareAPort(t *testing.T) {
	if !Supported() {
		t.Skip("SO_REUSEPORT is used on Linux only")
	}
	a, err := Listen("tcp", "127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Listen("tcp", a.Addr().String(), true)
	if err != nil {
		t.Fatalf("second listener on %s: %v", a.Addr(), err)
	}
	defer b.Close()
	// With the first one closed, every connection reaches the second.
	_ = a.Close()
	for range 5 {
		c, err := net.Dial("tcp", b.Addr().String())
		if err != nil {
			t.Fatalf("dial after the first listener closed: %v", err)
		}
		s, err := b.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		_ = c.Close()
	}

	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if ln, err := Listen("tcp", plain.Addr().String(), true); err == nil {
		_ = ln.Close()
		t.Fatalf("a shared listener bound %s, held by a listener without SO_REUSEPORT", plain.Addr())
	}
	if ln, err := Listen("tcp", b.Addr().String(), false); err == nil {
		_ = ln.Close()
		t.Fatalf("a listener without SO_REUSEPORT bound %s, held by a shared one", b.Addr())
	}
}
