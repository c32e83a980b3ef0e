package handlers

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"chatserver/hub"
	"chatserver/metrics"
)

// flagSpec is one flag a client frame may carry and the handler method that
// serves it. request marks the flags a client sends to ask for something (the
// unknown_flag error names them); the others answer the server.
type flagSpec struct {
	name    string
	serve   func(*Handler, *hub.Conn, *Frame) error
	request bool
}

// flagSpecs is the one list of the flags: dispatch serves them, the
// chat_frames_in_total metric counts frames by them, and the unknown_flag error
// lists the requests among them.
func flagSpecs() []flagSpec {
	return []flagSpec{
		{"init", (*Handler).init, true},
		{"msg", (*Handler).msg, true},
		{"group", (*Handler).group, true},
		{"all", (*Handler).all, true},
		{"online", (*Handler).online, true},
		{"ping", (*Handler).ping, true},
		{"auth", (*Handler).auth, true},
		{"history", (*Handler).historyFrame, true},
		{"read", (*Handler).readFrame, true},
		{"unread", (*Handler).unreadFrame, true},
		{"conversations", (*Handler).conversationsFrame, true},
		{"recall", (*Handler).recall, true},
		{"edit", (*Handler).edit, true},
		{"sync", (*Handler).syncFrame, true},
		{"pong", (*Handler).pong, false},
		{"ack", (*Handler).receiverAck, false},
	}
}

// route is one flag's handler method and the counter of its frames.
type route struct {
	serve func(*Handler, *hub.Conn, *Frame) error
	in    prometheus.Counter
}

// routes is the flag list made ready for dispatch: looked up once per frame,
// with each metric label's counter made in advance.
type routes struct {
	byFlag map[string]route
	// ping serves frames without a flag (the seed clients' {"type":"heart"},
	// counted as heart, or nothing at all, counted as unknown).
	ping route
	// known lists the requests, for the unknown_flag error.
	known                   string
	heart, unknown, invalid prometheus.Counter
}

func newRoutes(m *metrics.Metrics) routes {
	specs := flagSpecs()
	r := routes{
		byFlag:  make(map[string]route, len(specs)),
		heart:   m.FrameInCounter("heart"),
		unknown: m.FrameInCounter("unknown"),
		invalid: m.FrameInCounter("invalid"),
	}
	var known []string
	for _, s := range specs {
		r.byFlag[s.name] = route{serve: s.serve, in: m.FrameInCounter(s.name)}
		if s.request {
			known = append(known, s.name)
		}
	}
	r.ping = r.byFlag["ping"]
	r.known = strings.Join(known, ", ")
	return r
}

// find returns what serves f, having counted f under its label.
func (r *routes) find(f *Frame) func(*Handler, *hub.Conn, *Frame) error {
	if rt, ok := r.byFlag[f.Flag]; ok {
		rt.in.Inc()
		return rt.serve
	}
	if f.Flag == "" {
		if f.Heart {
			r.heart.Inc()
		} else {
			r.unknown.Inc()
		}
		return r.ping.serve
	}
	r.unknown.Inc()
	return (*Handler).unknownFlag
}

func (h *Handler) ping(c *hub.Conn, f *Frame) error {
	h.reply(c, pongPayload(f.Heart))
	return nil
}

// pong is a client answering a ping of ours, or echoing: nothing to do.
func (h *Handler) pong(*hub.Conn, *Frame) error { return nil }

func (h *Handler) unknownFlag(_ *hub.Conn, f *Frame) error {
	return newError(CodeUnknownFlag, "unknown flag "+quote(f.Flag)+"; known: "+h.routes.known)
}
