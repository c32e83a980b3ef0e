package handlers

import (
	"context"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"chatserver/cluster"
	"chatserver/hub"
)

// Disconnected is what Disconnect did.
type Disconnected struct {
	Closed    int  // connections of the account closed on this node
	Announced bool // the other nodes were told to close theirs (several nodes)
}

// Disconnect closes every connection of account on this node with close 4004
// and reason (empty: the code's own text), and with several nodes tells the
// others to close theirs (the side API's /api/disconnect). Each connection
// closes the way any connection does: what it had not acknowledged, and what
// was held for it while its backlog loaded, goes back to the offline pool,
// and messages that arrive after the close are stored for its next init.
// Nothing keeps the account from connecting again.
func (h *Handler) Disconnect(account, reason string) (Disconnected, error) {
	if e := checkAccount(account, "account", h.cfg.MaxAccountChars); e != nil {
		return Disconnected{}, e
	}
	if e := checkReason(reason); e != nil {
		return Disconnected{}, e
	}
	d := Disconnected{Closed: h.closeAccount(account, reason)}
	if remote := h.remoteNow(); remote != nil {
		ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
		defer cancel()
		if err := remote.Control(ctx, cluster.Envelope{Kind: "disconnect", To: []string{account}, Content: reason}); err != nil {
			h.log.Error().Err(err).Str("account", account).Int("closed", d.Closed).
				Msg("disconnect not sent to the other nodes")
			return d, newError(CodeUnavailable, "closed "+strconv.Itoa(d.Closed)+" connections of "+quote(account)+
				" on this node, but the other nodes could not be told (Redis unreachable); call again")
		}
		d.Announced = true
	}
	h.log.Info().Str("account", account).Int("closed", d.Closed).Bool("announced", d.Announced).
		Msg("account disconnected by the site")
	return d, nil
}

// closeAccount closes account's connections on this node with close 4004 and
// returns how many. The frames they still had waiting for the rate limit are
// dropped, not served at the close: the site cut the account off.
func (h *Handler) closeAccount(account, reason string) int {
	conns := h.table.Conns(account)
	for _, c := range conns {
		c.Run(func() { h.dropDelayed(c) }) // on c's flow, before the close is handled there
		c.CloseWith(hub.CloseDisconnected, reason)
	}
	return len(conns)
}

// checkReason validates a close reason given by the site: it travels in the
// close frame, which holds at most hub.MaxReasonBytes of UTF-8 text.
func checkReason(s string) *Error {
	switch {
	case len(s) > hub.MaxReasonBytes:
		return newError(CodeTooLong, "reason is longer than "+strconv.Itoa(hub.MaxReasonBytes)+" bytes (a close frame's limit)")
	case !utf8.ValidString(s):
		return newError(CodeBadField, "reason must be UTF-8 text")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return newError(CodeBadField, "reason must not contain control characters")
	}
	return nil
}
