package handlers

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// The frame decoder. Client frames are small flat objects; encoding/json's
// reflection was a tenth of the server's CPU per message. The input is first
// checked with json.Valid, so the scanner below only has to walk well-formed
// JSON: it reads the top-level keys, keeps the fields it knows, and steps over
// every other value. Keys match exactly (as PHP's json_decode does); a repeated
// key keeps its last value.

// kind is the JSON type of a value.
type kind uint8

const (
	kAbsent kind = iota
	kString
	kNumber
	kNull
	kOther // object, array, true, false
)

type field struct {
	kind kind
	raw  []byte // the value as written (strings with their quotes)
}

type fields struct {
	flag, typ, from, to, content, token, cid, ack, id field
	with, group, before, limit                        field // history
	since, sync, recall                               field // sync, init (sync.go)
}

// scanObject reads the top-level members of a valid JSON object.
func scanObject(data []byte) fields {
	var f fields
	i := skipSpace(data, 0)
	i++ // '{'
	for {
		i = skipSpace(data, i)
		if data[i] == '}' {
			return f
		}
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		keyStart := i
		i = skipString(data, i)
		key := data[keyStart+1 : i-1]
		i = skipSpace(data, i)
		i++ // ':'
		i = skipSpace(data, i)
		valStart := i
		k := kindOf(data[i])
		i = skipValue(data, i)
		v := field{kind: k, raw: data[valStart:i]}
		if !f.set(string(key), v) && strings.IndexByte(string(key), '\\') >= 0 {
			f.escapedKey(key, v)
		}
	}
}

// set stores v under a known key and reports whether the key was known.
func (f *fields) set(key string, v field) bool {
	switch key { // a []byte converted in the switch: no allocation
	case "flag":
		f.flag = v
	case "type":
		f.typ = v
	case "from":
		f.from = v
	case "to":
		f.to = v
	case "content":
		f.content = v
	case "token":
		f.token = v
	case "cid":
		f.cid = v
	case "ack":
		f.ack = v
	case "id":
		f.id = v
	case "with":
		f.with = v
	case "group":
		f.group = v
	case "before":
		f.before = v
	case "limit":
		f.limit = v
	case "since":
		f.since = v
	case "sync":
		f.sync = v
	case "recall":
		f.recall = v
	default:
		return false
	}
	return true
}

// escapedKey handles a key written with escapes ("\u0066lag" is "flag").
func (f *fields) escapedKey(raw []byte, v field) {
	var key string
	if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &key) == nil {
		f.set(key, v)
	}
}

func kindOf(c byte) kind {
	switch {
	case c == '"':
		return kString
	case c == '-' || (c >= '0' && c <= '9'):
		return kNumber
	case c == 'n':
		return kNull
	default:
		return kOther
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string starting at data[i] == '"'.
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the value starting at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for ; i < len(data); i++ {
			switch data[i] {
			case '"':
				i = skipString(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default: // number, true, false, null
		for ; i < len(data); i++ {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
		}
		return i
	}
}

// unquote decodes a JSON string token. Most have no escapes and are valid
// UTF-8 (nbio refuses text frames that are not), so they are copied as they are;
// the rest go through encoding/json, which also turns bad bytes into U+FFFD.
func unquote(raw []byte) (string, bool) {
	body := raw[1 : len(raw)-1]
	if strings.IndexByte(string(body), '\\') < 0 && utf8.Valid(body) {
		return string(body), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}
