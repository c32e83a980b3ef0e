package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Centrifugo's client protocol (JSON, protocol v2), so the same scenarios
// can be measured against it: a connect command, then one subscribe to the
// announcement channel and one to the account's personal channel (sent
// together once connect is answered, as its SDKs do); one-to-one messages are
// publish commands into the receiver's personal channel, announcements are
// published through its HTTP API. Frames may carry several replies, one JSON
// object per line; an empty object is the server's ping, answered with an
// empty object. The message body is {"from":..,"content":..} as in ours, so
// the receiving side (pairTrack, onBroadcast) is shared.

// protoCentrifugo is the -protocol value (and setupArgs.Proto) for Centrifugo.
const protoCentrifugo = "centrifugo"

// cfAnnounce is the channel every connection subscribes to and announcements go to.
const cfAnnounce = "chat.all"

// Command ids of the handshake; later commands (publishes) count up from cfFirstFreeID.
const (
	cfConnectID   = 1
	cfSubAllID    = 2
	cfSubOwnID    = 3
	cfFirstFreeID = 4
)

// cfPersonal is the account's personal channel.
func cfPersonal(account string) string { return "chat.u." + account }

func cfConnectCmd() []byte {
	return []byte(`{"id":1,"connect":{"name":"chatload"}}`)
}

// cfSubscribeCmds is the two subscribe commands in one frame.
func cfSubscribeCmds(account string) []byte {
	b := []byte(`{"id":2,"subscribe":{"channel":"` + cfAnnounce + `"}}` + "\n" + `{"id":3,"subscribe":{"channel":`)
	b = strconv.AppendQuote(b, cfPersonal(account))
	return append(b, `}}`...)
}

// appendCfPublishHead appends a publish command into to's personal channel
// up to the content of its data {"from":from,"content":...}; the caller
// appends the content (appendContent: nothing to escape) and cfPublishTail.
// Account names are [A-Za-z0-9.-]: no quoting is needed either.
func appendCfPublishHead(dst []byte, id uint32, to, from string) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, uint64(id), 10)
	dst = append(dst, `,"publish":{"channel":"`...)
	dst = append(dst, cfPersonal(to)...)
	dst = append(dst, `","data":{"from":"`...)
	dst = append(dst, from...)
	return append(dst, `","content":"`...)
}

const cfPublishTail = `"}}}`

// cfReply is one reply or push of a frame. Its slices alias the frame.
type cfReply struct {
	id        uint32
	ping      bool   // the empty object: answer with an empty object
	hasResult bool   // connect/subscribe/publish result present
	errCode   []byte // error.code (a number), nil if none
	errMsg    []byte
	channel   []byte // push.channel
	pub       bool   // push carries a publication
	from      []byte // push.pub.data.from
	content   []byte // push.pub.data.content
	disc      []byte // push.disconnect.reason, if the server disconnects
}

// parseCfFrame calls fn for each line of a frame. A line that is not a
// JSON object fails the frame (the lines before it were handled).
func parseCfFrame(payload []byte, fn func(*cfReply)) error {
	for len(payload) > 0 {
		line := payload
		if i := bytes.IndexByte(payload, '\n'); i >= 0 {
			line, payload = payload[:i], payload[i+1:]
		} else {
			payload = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r cfReply
		if err := parseCfReply(line, &r); err != nil {
			return err
		}
		fn(&r)
	}
	return nil
}

func parseCfReply(b []byte, r *cfReply) error {
	n := 0
	err := eachMember(b, func(key, val []byte) error {
		n++
		switch string(key) {
		case "id":
			id, err := strconv.ParseUint(string(val), 10, 32)
			if err != nil {
				return errBadJSON
			}
			r.id = uint32(id)
		case "connect", "subscribe", "publish":
			r.hasResult = true
		case "error":
			return eachMember(val, func(k, v []byte) error {
				switch string(k) {
				case "code":
					r.errCode = v
				case "message":
					r.errMsg = v
				}
				return nil
			})
		case "push":
			return parseCfPush(val, r)
		}
		return nil
	})
	r.ping = err == nil && n == 0
	return err
}

func parseCfPush(b []byte, r *cfReply) error {
	return eachMember(b, func(key, val []byte) error {
		switch string(key) {
		case "channel":
			r.channel = val
		case "pub":
			r.pub = true
			return eachMember(val, func(k, v []byte) error {
				if string(k) != "data" {
					return nil
				}
				var f fields
				if err := scanFields(v, &f); err != nil {
					return err
				}
				r.from, r.content = f.from, f.content
				return nil
			})
		case "disconnect":
			return eachMember(val, func(k, v []byte) error {
				if string(k) == "reason" {
					r.disc = v
				}
				return nil
			})
		}
		return nil
	})
}

var errNotObject = errors.New("not a JSON object")

// eachMember calls fn with each top-level member of the JSON object b: a
// string's decoded value, or any other value's raw bytes.
func eachMember(b []byte, fn func(key, val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotObject
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
		var val []byte
		if b[i] == '"' {
			if val, i, err = readString(b, i); err != nil {
				return err
			}
		} else {
			start := i
			if i, err = skipValue(b, i); err != nil {
				return err
			}
			val = b[start:i]
		}
		if err := fn(key, val); err != nil {
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

// onCentrifugo handles one reply or push on c (in the poller).
func (wk *worker) onCentrifugo(c *wsConn, r *cfReply) {
	switch {
	case r.ping:
		_ = c.writeText([]byte(`{}`))
	case r.errCode != nil:
		wk.st.serverError(r.errCode, r.errMsg)
		if r.id > 0 && r.id < cfFirstFreeID {
			c.fail(fmt.Errorf("centrifugo: command %d: error %s: %s", r.id, r.errCode, r.errMsg))
		}
	case r.id == cfConnectID && r.hasResult:
		if err := c.writeText(cfSubscribeCmds(c.account)); err != nil {
			c.signal(err)
		}
	case (r.id == cfSubAllID || r.id == cfSubOwnID) && r.hasResult:
		if c.cfSubs.Add(1) == 2 {
			c.signal(nil)
		}
	case r.id >= cfFirstFreeID:
		wk.st.pongs.Add(1) // a publish answered
	case r.pub && string(r.channel) == cfAnnounce:
		wk.st.bcastIn.Add(1)
		wk.onBroadcast(c, r.content)
	case r.pub:
		if t := c.track.Load(); t != nil && r.content != nil {
			wk.st.recv.Add(1)
			t.receive(r.from, r.content)
			return
		}
		wk.st.unexpected.Add(1)
	case r.disc != nil:
		wk.st.serverError([]byte("disconnect"), r.disc)
	default:
		wk.st.unexpected.Add(1)
	}
}
