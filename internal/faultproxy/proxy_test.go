package faultproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echo serves line echo on loopback.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader, msg string, within time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(within))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	return line, err
}

func TestProxyModes(t *testing.T) {
	p, err := Start(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)

	if got, err := roundTrip(c, r, "a", 2*time.Second); err != nil || got != "a\n" {
		t.Fatalf("pass: got %q, %v", got, err)
	}

	p.Set(Delay, 300*time.Millisecond)
	start := time.Now()
	if got, err := roundTrip(c, r, "b", 3*time.Second); err != nil || got != "b\n" {
		t.Fatalf("delay: got %q, %v", got, err)
	}
	if d := time.Since(start); d < 550*time.Millisecond { // delayed both ways
		t.Fatalf("delay: answered after %v, want at least 2 x 300ms", d)
	}

	p.Set(Blackhole, 0)
	if _, err := roundTrip(c, r, "c", 500*time.Millisecond); err == nil {
		t.Fatal("blackhole: got an answer")
	}
	p.Set(Pass, 0) // what was held goes through once healed
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "c\n" {
		t.Fatalf("after blackhole: got %q, %v", got, err)
	}

	p.Set(Cut, 0)
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("cut: the open connection was not closed")
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		_ = c2.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = c2.Write([]byte("d\n"))
		if _, err := bufio.NewReader(c2).ReadString('\n'); err == nil {
			t.Fatal("cut: a new connection was served")
		}
		c2.Close()
	}

	p.Set(Pass, 0)
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, bufio.NewReader(c3), "e", 2*time.Second); err != nil || got != "e\n" {
		t.Fatalf("healed: got %q, %v", got, err)
	}
}
