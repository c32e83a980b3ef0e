package hub

import (
	"strconv"
	"time"
)

// CloseCode is a WebSocket close code the server sends. Every code it sends is
// listed here, each with its reason text (the close frame's reason) and what a
// client should do about it. README's close-code line mirrors this list.
type CloseCode int

const (
	// CloseGoingAway: the server is shutting down. Reconnect (the address may
	// lead to another node); nothing was lost.
	CloseGoingAway CloseCode = 1001

	// CloseRestart: this server process hands its connections over to a new
	// one on the same address (an upgrade, README "Upgrades"); the reason
	// says within how many milliseconds to reconnect (RestartReason), and
	// clients pick a random moment in that window, so that the reconnects
	// are spread. Nothing was lost: what the connection had not
	// acknowledged is stored for its next init.
	CloseRestart CloseCode = 1012

	// CloseTooBig: a frame larger than server.max_frame_bytes. nbio sends this
	// one itself when it reads such a frame; it is listed so that the set is
	// complete. Do not resend the same frame.
	CloseTooBig CloseCode = 1009

	// CloseIdle: the connection sent nothing, not even a ping or a pong, for
	// server.idle_timeout. Reconnect when there is something to say.
	CloseIdle CloseCode = 4001

	// CloseExpired: the token the connection was authenticated with
	// (auth.mode jwt) expired, and no newer one came in an auth frame. Get a
	// fresh token and reconnect with it.
	CloseExpired CloseCode = 4003

	// CloseDisconnected: the site closed every connection of the account (the
	// side API's /api/disconnect); the close frame's reason is the site's own
	// text when it gave one. Do not reconnect on your own: the site decides
	// (a client may offer the user to sign in again).
	CloseDisconnected CloseCode = 4004

	// CloseAccountFull: an init for an account that already has
	// limits.connections_per_account connections on this node; the init was
	// refused with a too_many_connections error frame first. Close another
	// connection (tab, device) of the account before connecting again.
	CloseAccountFull CloseCode = 4005

	// CloseQueueFull: the connection fell more than offline.drain_queue live
	// messages behind while its backlog was loading (it did not read fast
	// enough). The messages it missed are stored offline; reconnect and init.
	CloseQueueFull CloseCode = 4008

	// CloseUnacked: an acknowledging connection left more than
	// limits.max_unacked messages unacknowledged, or acknowledged nothing of
	// its backlog for offline.drain_timeout. What it had not acknowledged is
	// stored again; reconnect and init.
	CloseUnacked CloseCode = 4009

	// CloseTooFast: the connection sent over limits.frames_per_second for so
	// long that more frames waited for their turn than the bound allows
	// (limits.max_delayed_frames, or limits.max_delayed_bytes for all
	// connections together). The frames still waiting were not served; those
	// served before were. Slow down, reconnect and init.
	CloseTooFast CloseCode = 4029
)

// MaxReasonBytes is the longest reason a close frame carries: a control
// frame's payload is at most 125 bytes, 2 of them the code.
const MaxReasonBytes = 123

// Reason is the text sent with the code in the close frame.
func (c CloseCode) Reason() string {
	switch c {
	case CloseGoingAway:
		return "server shutting down"
	case CloseRestart:
		return "service restart"
	case CloseTooBig:
		return "message too big"
	case CloseIdle:
		return "idle timeout"
	case CloseExpired:
		return "token expired"
	case CloseDisconnected:
		return "disconnected by the site"
	case CloseAccountFull:
		return "too many connections for this account"
	case CloseQueueFull:
		return "too many messages queued while loading the backlog"
	case CloseUnacked:
		return "too many unacknowledged messages"
	case CloseTooFast:
		return "too many frames waiting for the rate limit"
	}
	return ""
}

// RestartReason is the reason of a CloseRestart: "service restart; reconnect
// within <ms> ms". Clients that read it (the JavaScript library) wait a random
// time up to <ms> before they reconnect; others see a 1012 close.
func RestartReason(within time.Duration) string {
	return CloseRestart.Reason() + "; reconnect within " + strconv.FormatInt(within.Milliseconds(), 10) + " ms"
}
