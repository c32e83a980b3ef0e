package handlers

import (
	"strconv"
	"unicode/utf8"
)

// The frames the server sends. Each is built by appending, once per message: a
// message to many connections is encoded one time.

// messagePayload is what a recipient gets: the legacy {"from","content"}, then
// "group" for a group message and "id", the message's id, which old clients
// ignore and new ones use to acknowledge and to drop duplicates.
func messagePayload(from, content, group, id string) []byte {
	b := make([]byte, 0, 48+len(from)+len(content)+len(group)+len(id))
	b = append(b, `{"from":`...)
	b = appendString(b, from)
	b = append(b, `,"content":`...)
	b = appendString(b, content)
	if group != "" {
		b = append(b, `,"group":`...)
		b = appendString(b, group)
	}
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, id)
	}
	return append(b, '}')
}

// announcePayload is a site-wide announcement: the legacy fields plus "flag":"all"
// so that newer clients can show it as such (older ones ignore it).
func announcePayload(from, content string) []byte {
	b := make([]byte, 0, 38+len(from)+len(content))
	b = append(b, `{"from":`...)
	b = appendString(b, from)
	b = append(b, `,"content":`...)
	b = appendString(b, content)
	return append(b, `,"flag":"all"}`...)
}

func errorPayload(e *Error, cid string) []byte {
	b := make([]byte, 0, 48+len(e.Code)+len(e.Message)+len(cid))
	b = append(b, `{"flag":"error","code":`...)
	b = appendString(b, e.Code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	if cid != "" {
		b = append(b, `,"cid":`...)
		b = appendString(b, cid)
	}
	return append(b, '}')
}

func pongPayload(heart bool) []byte {
	if heart {
		return []byte(`{"flag":"pong","type":"heart"}`)
	}
	return []byte(`{"flag":"pong"}`)
}

func onlinePayload(account string, online bool) []byte {
	b := make([]byte, 0, 40+len(account))
	b = append(b, `{"flag":"online","to":`...)
	b = appendString(b, account)
	b = append(b, `,"online":`...)
	b = strconv.AppendBool(b, online)
	return append(b, '}')
}

// authPayload answers an accepted auth frame; expires is when the connection
// is closed unless a newer token comes (unix seconds), 0 when no token is
// checked (auth.mode none).
func authPayload(expires int64) []byte {
	if expires == 0 {
		return []byte(`{"flag":"auth","ok":true}`)
	}
	b := append(make([]byte, 0, 48), `{"flag":"auth","ok":true,"expires":`...)
	b = strconv.AppendInt(b, expires, 10)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD; U+2028
// and U+2029 are escaped so that the frame is also valid JavaScript.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
