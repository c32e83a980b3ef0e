package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Event is one line of the history: what a client, the API pusher, the fault
// injector or the final inspection saw, with the time it saw it. The checker
// reads nothing else.
type Event struct {
	T    time.Time `json:"t"`
	Kind string    `json:"kind"`
	// Client is the account of the client that saw the event; Conn numbers its
	// connections (1, 2, ...).
	Client string `json:"client,omitempty"`
	Conn   int    `json:"conn,omitempty"`
	// Node is the node index the event happened on; -1: none or every node.
	Node int `json:"node"`
	// ID is the message's own id, carried in its content ("m:alice:12").
	ID    string `json:"id,omitempty"`
	From  string `json:"from,omitempty"`
	To    string `json:"to,omitempty"`
	Group string `json:"group,omitempty"`
	// MsgID is the server's id of the message (ack and delivered frames).
	MsgID  string `json:"msg_id,omitempty"`
	Status string `json:"status,omitempty"`
	Code   string `json:"code,omitempty"`
	Legacy bool   `json:"legacy,omitempty"`
	// Uncertain: a send whose outcome is unknown (an API call that timed out),
	// so it may have taken effect at any later time.
	Uncertain bool   `json:"uncertain,omitempty"`
	Detail    string `json:"detail,omitempty"`
	// Resource samples.
	RSSKB      int64 `json:"rss_kb,omitempty"`
	Goroutines int   `json:"goroutines,omitempty"`
}

// The event kinds.
const (
	evSend       = "send"        // a send attempt (client frame or API call)
	evAck        = "ack"         // the server acknowledged ID (Status pushed|stored)
	evSendError  = "send_error"  // the server refused ID (Code), or the call failed
	evRecv       = "recv"        // Client received ID from From
	evOpen       = "open"        // Client's connection Conn to Node is open (init sent)
	evConnect    = "connect"     // that connection finished init (the pong after init came)
	evDisconnect = "disconnect"  // that connection ended (Detail: why)
	evGroup      = "group"       // Group's members (Detail: comma-separated)
	evFaultStart = "fault_start" // Code: kind, Node: target (-1 all), Detail
	evFaultEnd   = "fault_end"
	evNodeExit   = "node_exit" // Status: expected|unexpected, Detail: exit status
	evLogPanic   = "log_panic" // Detail: the log line
	evPending    = "pending"   // a row left at status=0 at the end (To, From, ID, MsgID)
	evResource   = "resource"  // Code: warm|end
	evPhase      = "phase"     // Detail: faults|heal|final|drained|done
	evNote       = "note"      // Detail: something the report should say
)

// Recorder appends events to memory and to a JSON-lines file.
type Recorder struct {
	mu     sync.Mutex
	events []Event
	w      *bufio.Writer
	f      io.Closer
	now    func() time.Time
}

// newRecorder writes to path ("" = memory only).
func newRecorder(path string) (*Recorder, error) {
	r := &Recorder{now: time.Now}
	if path == "" {
		return r, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	r.f, r.w = f, bufio.NewWriter(f)
	return r, nil
}

// Add stamps e (unless it has a time) and records it.
func (r *Recorder) Add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.T.IsZero() {
		e.T = r.now()
	}
	r.events = append(r.events, e)
	if r.w != nil {
		b, _ := json.Marshal(e)
		_, _ = r.w.Write(append(b, '\n'))
	}
}

// Events returns a copy of the history so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Close flushes the file.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return nil
	}
	err := r.w.Flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.w = nil
	return err
}

// readHistory loads a history file written by a Recorder (for -check).
func readHistory(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("history %s: %w", path, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}
