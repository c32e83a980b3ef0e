package main

import (
	"encoding/json"
	"errors"
)

// fields are the members of a server frame the tool looks at. They alias
// the frame's payload and are valid only while it is being handled.
type fields struct {
	flag, from, content, code, message []byte
	id, cid, status                    []byte // acks (handover scenario)
}

var errBadJSON = errors.New("malformed JSON object")

// scanFields extracts the top-level string members of a JSON object
// without reflection or allocation (escaped strings are decoded with
// encoding/json, the rare case). Unknown members, including nested
// values, are skipped.
func scanFields(b []byte, f *fields) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errBadJSON
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return errBadJSON
		}
		key, j, err := readString(b, i)
		if err != nil {
			return err
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return errBadJSON
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return errBadJSON
		}
		if b[i] == '"' {
			var val []byte
			if val, i, err = readString(b, i); err != nil {
				return err
			}
			f.set(key, val)
		} else if i, err = skipValue(b, i); err != nil {
			return err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return errBadJSON
		}
		switch b[i] {
		case '}':
			return nil
		case ',':
			i = skipSpace(b, i+1)
		default:
			return errBadJSON
		}
	}
	return errBadJSON
}

func (f *fields) set(key, val []byte) {
	switch string(key) {
	case "flag":
		f.flag = val
	case "from":
		f.from = val
	case "content":
		f.content = val
	case "code":
		f.code = val
	case "id":
		f.id = val
	case "cid":
		f.cid = val
	case "status":
		f.status = val
	case "message":
		f.message = val
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// readString reads the string starting at b[i] == '"' and returns its
// decoded value and the index after the closing quote.
func readString(b []byte, i int) ([]byte, int, error) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			if !escaped {
				return b[i+1 : j], j + 1, nil
			}
			var s string
			if err := json.Unmarshal(b[i:j+1], &s); err != nil {
				return nil, 0, errBadJSON
			}
			return []byte(s), j + 1, nil
		}
	}
	return nil, 0, errBadJSON
}

// skipValue skips a non-string value (number, literal, object, array).
func skipValue(b []byte, i int) (int, error) {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			_, j, err := readString(b, i)
			if err != nil {
				return 0, err
			}
			i = j
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i, nil
			}
			depth--
		case ',':
			if depth == 0 {
				return i, nil
			}
		}
		i++
	}
	return 0, errBadJSON
}
