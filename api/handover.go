package api

import (
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"chatserver/cluster"
	"chatserver/handover"
)

// Successor is a process's end of a handover on a single node (README
// "Upgrades"), where two processes on one port route to each other: each asks
// the other where accounts are and hands it, in order, the messages for
// accounts connected there (package handover is the calling end). The new
// process serves these on its side API; the old one, whose side API is closed
// by then, on a loopback listener of its own (HandoverHandler) that it names
// to the new one (start). These calls are the processes' own; the PHP
// application has no use for them.
type Successor interface {
	Here(accounts []string) []bool
	Take(env cluster.Envelope) <-chan []cluster.Outcome
	// PredecessorAt: the old process hands over and answers at addr.
	PredecessorAt(addr string) error
	// PredecessorDone: the old process closed its last connection and
	// committed its last offline rows.
	PredecessorDone()
}

// HandoverHandler serves the handover calls alone, behind the bearer secret:
// the old process's listener for the new one during a handover.
func HandoverHandler(secret string, succ Successor, log zerolog.Logger) http.Handler {
	s := &Server{cfg: Config{Secret: secret}, successor: succ, log: log}
	mux := http.NewServeMux()
	s.handoverRoutes(mux)
	return limitBody(s.authenticate(mux))
}

// outcomeWait bounds the wait for one envelope's outcomes (stored ones wait
// for their commit); a copy without one by then is stored by the old process.
const outcomeWait = 2 * time.Second

func (s *Server) handoverRoutes(mux *http.ServeMux) {
	if s.successor == nil {
		return
	}
	mux.HandleFunc("POST "+handover.PathLocate, s.handoverLocate)
	mux.HandleFunc("POST "+handover.PathEnvelopes, s.handoverEnvelopes)
	mux.HandleFunc("POST "+handover.PathDone, s.handoverDone)
	mux.HandleFunc("POST "+handover.PathStart, s.handoverStart)
}

func (s *Server) handoverStart(w http.ResponseWriter, r *http.Request) {
	var req handover.StartRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := s.successor.PredecessorAt(req.Addr); err != nil {
		s.fail(w, http.StatusBadRequest, "bad_field", err.Error())
		return
	}
	s.log.Info().Str("predecessor", req.Addr).Msg("the previous process on this port hands its connections over; messages for accounts still there go to it")
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (s *Server) handoverLocate(w http.ResponseWriter, r *http.Request) {
	var req handover.LocateRequest
	if !s.decode(w, r, &req) {
		return
	}
	writeJSON(w, http.StatusOK, handover.LocateAnswer{Here: s.successor.Here(req.Accounts)})
}

// handoverEnvelopes handles the envelopes one after another, in the order
// sent, and answers every outcome.
func (s *Server) handoverEnvelopes(w http.ResponseWriter, r *http.Request) {
	var req handover.EnvelopesRequest
	if !s.decode(w, r, &req) {
		return
	}
	ans := handover.EnvelopesAnswer{Outcomes: make([]string, len(req.Envelopes))}
	pending := make([]<-chan []cluster.Outcome, len(req.Envelopes))
	for i, env := range req.Envelopes {
		pending[i] = s.successor.Take(env) // in order: each is in the table before the next
	}
	deadline := time.NewTimer(outcomeWait)
	defer deadline.Stop()
	expired := false
	for i, env := range req.Envelopes {
		if env.Kind == "all" || env.Kind == "disconnect" || len(env.To) == 0 {
			continue
		}
		// Past the deadline, a copy without its outcome is NotTaken: the
		// old process stores it (one row per message id either way).
		var out []cluster.Outcome
		if expired {
			select {
			case out = <-pending[i]:
			default:
			}
		} else {
			select {
			case out = <-pending[i]:
			case <-deadline.C:
				expired = true
			}
		}
		b := make([]byte, len(env.To))
		for j := 0; j < len(b) && j < len(out); j++ {
			b[j] = byte(out[j])
		}
		ans.Outcomes[i] = string(b)
	}
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) handoverDone(w http.ResponseWriter, r *http.Request) {
	s.log.Info().Msg("the previous process on this port has handed over its last connection")
	s.successor.PredecessorDone()
	writeJSON(w, http.StatusOK, map[string]any{})
}
