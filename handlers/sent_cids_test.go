package handlers

import (
	"strconv"
	"testing"
	"time"
)

// Many senders cannot grow the memory past its cap: the least recently active
// sender's cids go first, a sender still active keeps its own, and a cid still
// remembered is answered.
func TestSentCIDsEvictsLeastRecentlyActiveSenders(t *testing.T) {
	m := newSentCIDs(1000)
	clock := time.Unix(1_700_000_000, 0)
	m.now = func() time.Time { return clock }
	for i := 0; i < 100; i++ {
		m.remember("keeper", "k"+strconv.Itoa(i), "stored")
	}
	for s := 0; s < 50; s++ {
		from := "sender" + strconv.Itoa(s)
		for i := 0; i < 100; i++ {
			m.remember(from, strconv.Itoa(i), "pushed")
		}
		m.remember("keeper", "k0", "stored") // keeper stays the most recently active
		if n := m.len(); n > 1000 {
			t.Fatalf("after %d senders %d cids are remembered; want at most 1000", s+1, n)
		}
	}
	if n := m.len(); n != 1000 {
		t.Fatalf("%d cids remembered; want 1000 (full, not emptied)", n)
	}
	if n := len(m.senders); n > 11 {
		t.Fatalf("%d senders remembered; want at most 11 (the cap over 100 cids each, plus the one being trimmed)", n)
	}
	for i := 0; i < 100; i++ {
		if st, ok := m.seen("keeper", "k"+strconv.Itoa(i)); !ok || st != "stored" {
			t.Fatalf("keeper's cid k%d = %q, %v; want stored (an active sender keeps its cids)", i, st, ok)
		}
	}
	if _, ok := m.seen("sender0", "5"); ok {
		t.Fatal("the least recently active sender's cids are still remembered")
	}
	if st, ok := m.seen("sender49", "99"); !ok || st != "pushed" {
		t.Fatalf("the latest sender's last cid = %q, %v; want pushed", st, ok)
	}
}

// A sender keeps its last cidsPerSender cids; a sender silent for cidMemory is
// forgotten, and its cids no longer count against the cap.
func TestSentCIDsPerSenderCapAndExpiry(t *testing.T) {
	m := newSentCIDs(1_000_000)
	clock := time.Unix(1_700_000_000, 0)
	m.now = func() time.Time { return clock }
	for i := 0; i < cidsPerSender+10; i++ {
		m.remember("alice", strconv.Itoa(i), "pushed")
	}
	if n := m.len(); n != cidsPerSender {
		t.Fatalf("alice has %d cids; want %d", n, cidsPerSender)
	}
	if _, ok := m.seen("alice", "0"); ok {
		t.Fatal("alice's oldest cid is remembered past the per-sender cap")
	}
	if _, ok := m.seen("alice", strconv.Itoa(cidsPerSender+9)); !ok {
		t.Fatal("alice's newest cid is forgotten")
	}
	clock = clock.Add(cidMemory + time.Second)
	if _, ok := m.seen("alice", strconv.Itoa(cidsPerSender+9)); ok {
		t.Fatal("a cid is answered after cidMemory")
	}
	m.remember("bob", "1", "stored")
	if n, s := m.len(), len(m.senders); n != 1 || s != 1 {
		t.Fatalf("after alice expired: %d cids of %d senders; want 1 of 1", n, s)
	}
}
