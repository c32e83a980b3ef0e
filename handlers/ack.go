package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"

	"chatserver/hub"
)

// Sender acknowledgements. A client that puts its own "cid" on a msg or group
// frame gets {"flag":"ack","cid":...,"id":...,"status":"pushed"|"stored"} once
// the message is written to every live connection of the recipient or
// committed to the offline table, or an error frame carrying the cid. A cid the
// same sender used before is answered with the first ack and not delivered
// again. Legacy frames (no cid) get no ack, as before.

// messageID is the id of a message sent with a cid: derived from the sender and
// the cid, so a retry after a reconnect, or to another node, or after a
// restart, carries the same id and receivers can drop the duplicate.
func messageID(from, cid string) string {
	sum := sha256.Sum256([]byte(from + "\x00" + cid))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func ackPayload(cid, id, status string) []byte {
	b := make([]byte, 0, 48+len(cid)+len(id))
	b = append(b, `{"flag":"ack","cid":`...)
	b = appendString(b, cid)
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"status":`...)
	b = appendString(b, status)
	return append(b, '}')
}

// settle waits, for a sender who asked for an ack, until a stored message is
// committed; then the ack is sent and remembered.
func (h *Handler) settle(c *hub.Conn, from, cid, id string, stored bool, ticket uint64) error {
	status := "pushed"
	if stored {
		status = "stored"
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.DrainTimeout)
		defer cancel()
		if err := h.store.WaitWritten(ctx, ticket); err != nil {
			// Queued but not yet committed: do not claim it is durable. It will
			// still be written (and delivered) once the database answers.
			return newError(CodeUnavailable, "the message is queued but not yet stored; do not resend it before reconnecting")
		}
	}
	h.acks.remember(from, cid, status)
	h.reply(c, ackPayload(cid, id, status))
	return nil
}
