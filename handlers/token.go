package handlers

import "chatserver/hub"

// auth takes a fresh token on a bound connection ({"flag":"auth","token":...}):
// with auth.mode jwt, a connection is closed (4003) once the token it was
// authenticated with expires, and a client sends a newer one before that. A
// token that is refused (expired, another account's, badly signed) changes
// nothing: the connection keeps its current token and its expiry. With
// auth.mode none there is nothing to renew and the frame is answered ok, as
// init ignores a token there.
func (h *Handler) auth(c *hub.Conn, f *Frame) error {
	me, e := bound(c)
	if e != nil {
		return e
	}
	if f.Token == "" {
		return newError(CodeMissingField, "token is required")
	}
	if h.cfg.Verifier == nil {
		h.reply(c, authPayload(0))
		return nil
	}
	until, err := h.cfg.Verifier.Verify(f.Token, me)
	if err != nil {
		return newError(CodeUnauthorized, "token refused, the connection keeps its current one: "+err.Error())
	}
	c.SetExpiry(until)
	h.reply(c, authPayload(until.Unix()))
	return nil
}
