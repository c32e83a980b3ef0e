package handlers

import (
	"context"
	"time"

	"chatserver/hub"
)

// GroupResult says what became of a group message.
type GroupResult struct {
	Members int // members the message was for (the sender excluded)
	Pushed  int // members it reached live on this node
	Stored  int // members it was stored offline for
}

// group sends a message to every member of a group but the sender, who must be
// a member.
func (h *Handler) group(c *hub.Conn, f *Frame) error {
	from, err := requireSender(c, f)
	if err != nil {
		return err
	}
	if !f.hasTo {
		return newError(CodeMissingField, "to (the group id) is required")
	}
	if !f.hasContent {
		return newError(CodeMissingField, "content is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if f.CID == "" { // legacy: fire and forget, nobody waits for the commit
		_, err = h.pushGroup(ctx, from, f.To, f.Content, h.newID(), true, nil)
		return err
	}
	id := messageID(from, f.CID)
	sa, retry := h.startSenderAck(c, from, f.CID, id)
	if retry { // acknowledged again (or when the first attempt settles), delivered once
		return nil
	}
	if _, err := h.pushGroup(ctx, from, f.To, f.Content, id, true, sa); err != nil {
		sa.cancel()
		return err
	}
	sa.seal()
	return nil
}

// PushGroup delivers content from `from` to every member of group but from:
// online members get {"from","content","group"} on every connection here,
// offline ones get a row that remembers the group. With memberOnly, from must
// be a member (a client); the side API may send as anyone. The member list
// comes from the cache, so a group of thousands costs no query per member.
// Like Push, it answers once the stored rows are committed (or unavailable).
func (h *Handler) PushGroup(ctx context.Context, from, group, content string, memberOnly bool) (GroupResult, error) {
	sa, answer := h.newAPIAck()
	r, err := h.pushGroup(ctx, from, group, content, h.newID(), memberOnly, sa)
	if err != nil {
		sa.cancel()
		return r, err
	}
	sa.seal()
	if _, err := h.waitAPIAck(answer); err != nil {
		return r, err
	}
	return r, nil
}

func (h *Handler) pushGroup(ctx context.Context, from, group, content, id string, memberOnly bool, sa *senderAck) (r GroupResult, err error) {
	if e := checkAccount(from, "from", h.cfg.MaxAccountChars); e != nil {
		return r, e
	}
	if e := checkAccount(group, "group", 64); e != nil {
		return r, e
	}
	if e := h.checkContent(content); e != nil {
		return r, e
	}
	set, err := h.groups.Get(ctx, group)
	if err != nil {
		return r, err
	}
	if set.Len() == 0 {
		if memberOnly {
			return r, newError(CodeForbidden, "you are not a member of group "+quote(group))
		}
		return r, newError(CodeNotFound, "group "+quote(group)+" has no members")
	}
	if memberOnly && !set.Has(from) {
		return r, newError(CodeForbidden, "you are not a member of group "+quote(group))
	}
	members := make([]string, 0, set.Len())
	for _, m := range set.Members() {
		if m != from {
			members = append(members, m)
		}
	}
	// The offline rows of one group message are admitted all or nothing, so a
	// sender past its share of the queue is told busy before anyone gets it,
	// not after half the group. Members online here need no row; those online
	// on other nodes are counted too (at worst a busy a little early).
	away := 0
	for _, m := range members {
		if !h.table.Online(m) {
			away++
		}
	}
	if err := h.queue.Reserve(from, id, away); err != nil {
		return r, storeError(err)
	}
	defer h.queue.Release(id)
	var firstErr error
	now := h.now().Unix()
	r, firstErr = h.fanout(from, content, group, id, members, now, sa)
	r.Members = len(members)
	if firstErr == nil || r.Pushed+r.Stored > 0 { // accepted (for some at least): the conversation has it
		h.recordHistory(id, from, "", group, content, now)
	}
	if r.Pushed > 0 {
		h.metrics.Pushed()
	}
	if firstErr != nil {
		h.log.Error().Err(firstErr).Str("group", group).Int("members", r.Members).Int("reached", r.Pushed+r.Stored).
			Msg("group message reached only some members")
		return r, storeError(firstErr)
	}
	return r, nil
}
