package handlers

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Frame is one decoded client frame. Unknown fields are ignored, as the legacy
// server did; known fields are type-checked.
type Frame struct {
	Flag         string
	From         string
	To           string
	Content      string
	Token        string // init: a JWT when auth.mode is jwt
	CID          string // msg, group: the sender's own id, asking for a sender ack
	ReceiverAcks bool   // init "ack": this connection acknowledges what it receives
	ID           string // ack (a receiver ack): the id of the last message received
	// history: the conversation (With an account, or Group), the id of the
	// message to page back from ("" for the newest) and the page size (0:
	// default). read: Group (or To) and ID, the newest message read.
	With, Group, Before string
	Limit               int
	// recall, edit, sync and init's "sync" and "recall" (sync.go).
	Since map[string]int64

	// The flags together, after the strings: no padding between them, so
	// that the frame stays in its allocation size class (192 bytes).
	Heart                      bool // {"type":"heart"}: the seed clients' heartbeat
	Recall                     bool // init "recall": this connection takes recall and edit frames
	hasSince                   bool
	hasFrom, hasTo, hasContent bool
}

// Decode parses a text frame. It returns a protocol error for anything that is
// not a JSON object with well-typed fields; it never panics.
func Decode(data []byte) (Frame, *Error) {
	var f Frame
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return f, newError(CodeBadJSON, "empty frame; send a JSON object")
	}
	if !json.Valid(trimmed) {
		return f, newError(CodeBadJSON, "frame is not valid JSON")
	}
	if trimmed[0] != '{' {
		return f, newError(CodeBadFrame, "frame must be a JSON object like {\"flag\":\"msg\",...}")
	}
	raw := scanObject(trimmed)
	var e *Error
	var typ string
	if f.Flag, _, e = text(raw.flag, "flag"); e != nil {
		return f, e
	}
	if typ, _, e = text(raw.typ, "type"); e != nil {
		return f, e
	}
	f.Heart = typ == "heart"
	if f.From, f.hasFrom, e = account(raw.from, "from"); e != nil {
		return f, e
	}
	if f.To, f.hasTo, e = account(raw.to, "to"); e != nil {
		return f, e
	}
	if f.Content, f.hasContent, e = text(raw.content, "content"); e != nil {
		return f, e
	}
	if f.Token, _, e = text(raw.token, "token"); e != nil {
		return f, e
	}
	if f.CID, _, e = account(raw.cid, "cid"); e != nil {
		return f, e
	}
	if len(f.CID) > 128 {
		return f, newError(CodeBadField, "cid is longer than 128 bytes")
	}
	switch {
	case raw.ack.kind == kOther && string(raw.ack.raw) == "true":
		f.ReceiverAcks = true
	case raw.ack.kind == kAbsent || raw.ack.kind == kNull || (raw.ack.kind == kOther && string(raw.ack.raw) == "false"):
	default:
		return f, newError(CodeBadField, "ack must be true or false")
	}
	if f.ID, _, e = account(raw.id, "id"); e != nil {
		return f, e
	}
	if f.Flag == "history" || f.Flag == "read" { // read for these flags only: other frames stay as legacy clients send them
		if e = historyFields(&f, raw); e != nil {
			return f, e
		}
	}
	if e = changeFields(&f, raw); e != nil {
		return f, e
	}
	if f.Flag == "" && !f.Heart {
		return f, newError(CodeMissingField, "flag is required (init, msg, all, online, ping)")
	}
	return f, nil
}

// text reads an optional JSON string; null counts as absent.
func text(v field, name string) (string, bool, *Error) {
	switch v.kind {
	case kAbsent, kNull:
		return "", false, nil
	case kString:
		if s, ok := unquote(v.raw); ok {
			return s, true, nil
		}
	}
	return "", false, newError(CodeBadField, name+" must be a string")
}

// account reads an optional account name. Seed clients often send numeric user
// ids ({"from":123}); PHP took them as strings, and so do we, for integers only.
func account(v field, name string) (string, bool, *Error) {
	if v.kind == kNumber {
		if bytes.ContainsAny(v.raw, ".eE") {
			return "", false, newError(CodeBadField, name+" must be a string or an integer")
		}
		return string(v.raw), true, nil
	}
	s, ok, e := text(v, name)
	if e != nil {
		return "", false, newError(CodeBadField, name+" must be a string or an integer")
	}
	return s, ok, nil
}

// historyFields reads the fields of a history frame.
func historyFields(f *Frame, raw fields) (e *Error) {
	if f.With, _, e = account(raw.with, "with"); e != nil {
		return e
	}
	if f.Group, _, e = account(raw.group, "group"); e != nil {
		return e
	}
	if f.Before, _, e = text(raw.before, "before"); e != nil {
		return e
	}
	f.Limit, e = count(raw.limit, "limit")
	return e
}

// count reads an optional non-negative integer; null counts as absent (0).
func count(v field, name string) (int, *Error) {
	switch v.kind {
	case kAbsent, kNull:
		return 0, nil
	case kNumber:
		if n, err := strconv.Atoi(string(v.raw)); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, newError(CodeBadField, name+" must be a non-negative integer")
}

// checkAccount validates a present account name against the table's size.
func checkAccount(s, name string, maxChars int) *Error {
	if s == "" {
		return newError(CodeBadField, name+" must not be empty")
	}
	if maxChars > 0 && utf8.RuneCountInString(s) > maxChars {
		return newError(CodeTooLong, name+" is longer than "+strconv.Itoa(maxChars)+" characters")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return newError(CodeBadField, name+" must not contain control characters")
	}
	return nil
}
