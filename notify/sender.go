package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

const (
	// lease is how long a claimed row is this node's to post: longer than a
	// post may take (postTimeout), so that a live node never loses a row it
	// is still posting, and short enough that the rows of a node that died
	// are taken over soon.
	lease       = 30 * time.Second
	postTimeout = 10 * time.Second
	pollEvery   = time.Second // rows another node added, or whose retry came due
	claimBatch  = 32
	maxBackoff  = 10 * time.Minute
)

func encodeEvent(ev any) ([]byte, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("notify: encode event: %w", err)
	}
	return body, nil
}

// Sign is the X-Chat-Signature value: "sha256=" and the hex HMAC-SHA256, keyed
// with secret, of the timestamp, a dot, and the body.
func Sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Run posts the outbox's due events until ctx is done. Every node runs it:
// rows are claimed one by one, so each is posted by one node at a time, and
// rows a dead node left are taken up by the others.
//
// Run also writes the queued outbox rows (writer.go) until ctx is done.
func (n *Notifier) Run(ctx context.Context) {
	writer := make(chan struct{})
	go func() {
		defer close(writer)
		n.writeOps(ctx)
	}()
	defer func() { <-writer }()
	client := &http.Client{Timeout: postTimeout}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		n.sendDue(ctx, client)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.wake:
		}
	}
}

func (n *Notifier) sendDue(ctx context.Context, client *http.Client) {
	for ctx.Err() == nil {
		claimed := n.now()
		rows, err := n.out.Claim(ctx, n.cfg.Node, claimed, lease, claimBatch)
		if err != nil {
			n.log.Warn().Err(err).Msg("notify: outbox unreachable; trying again")
		}
		for i, r := range rows {
			if n.now().After(claimed.Add(lease - postTimeout)) {
				// A post begun now could outlast the claim, and another
				// node could post the row too: leave the rest to come due
				// again when the lease runs out.
				rows = rows[:i]
				break
			}
			if r.Kind == KindMessages && r.Attempts == 0 && n.connected(ctx, r.Account) {
				n.cancelled.Inc()
				if err := n.out.Done(ctx, r.ID); err != nil {
					n.log.Warn().Err(err).Str("event", r.EventID).Msg("notify: outbox not updated")
				}
				continue
			}
			if n.stream != nil && r.Attempts == 0 {
				if err := n.stream.Add(ctx, r.EventID, r.Payload); err != nil {
					// Not posted either: the row comes again, still at
					// its first attempt, and is added then.
					n.log.Warn().Err(err).Str("event", r.EventID).Msg("notify: stream unreachable; trying again")
					if err := n.out.Delay(ctx, r.ID, n.now().Add(n.cfg.RetryBase)); err != nil {
						n.log.Warn().Err(err).Str("event", r.EventID).Msg("notify: outbox not updated")
					}
					continue
				}
			}
			n.settle(ctx, r, n.post(ctx, client, r))
		}
		if err != nil || len(rows) < claimBatch {
			return
		}
	}
}

// wakeSender makes the sender look at the outbox at once.
func (n *Notifier) wakeSender() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// connected says whether account is connected on some node, asked before an
// event's first post: an init on another node may have come before the
// event's row was written, or after its holder wrote it out. If the answer
// cannot be had, the event is sent.
func (n *Notifier) connected(ctx context.Context, account string) bool {
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	on, err := n.online(octx, account)
	return err == nil && on
}

// settle removes a row the site took, gives up on one after MaxAttempts, and
// schedules another attempt otherwise: exponential back-off with jitter, so
// that many events failing together do not come back together.
func (n *Notifier) settle(ctx context.Context, r Row, postErr error) {
	if ctx.Err() != nil {
		return // stopping: the claim runs out and the row is due again
	}
	if postErr == nil {
		n.failingSince.Store(0)
	} else {
		n.failingSince.CompareAndSwap(0, n.now().UnixMilli())
	}
	var err error
	switch {
	case postErr == nil:
		n.sent.Inc()
		err = n.out.Done(ctx, r.ID)
	case r.Attempts+1 >= n.cfg.MaxAttempts:
		n.dead.Inc()
		n.log.Error().Err(postErr).Str("event", r.EventID).Str("account", r.Account).Int("attempts", r.Attempts+1).Msg("notify: event given up")
		err = n.out.Done(ctx, r.ID)
	default:
		d := n.cfg.RetryBase << min(r.Attempts, 20)
		if d > maxBackoff || d <= 0 {
			d = maxBackoff
		}
		d = d/2 + rand.N(d) // between half and one and a half times
		n.log.Debug().Err(postErr).Str("event", r.EventID).Dur("retry_in", d).Msg("notify: post failed")
		err = n.out.Retry(ctx, r.ID, n.now().Add(d))
	}
	if err != nil {
		// The claim runs out and the row is due again: at worst the site
		// gets it twice, and the event id tells it so.
		n.log.Warn().Err(err).Str("event", r.EventID).Msg("notify: outbox not updated")
	}
}

func (n *Notifier) post(ctx context.Context, client *http.Client, r Row) error {
	ts := strconv.FormatInt(n.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.cfg.URL, bytes.NewReader(r.Payload))
	if err != nil {
		return fmt.Errorf("notify: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Chat-Event-Id", r.EventID)
	req.Header.Set("X-Chat-Timestamp", ts)
	req.Header.Set("X-Chat-Signature", Sign(n.cfg.Secret, ts, r.Payload))
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("notify: post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("notify: site answered %s", resp.Status)
	}
	return nil
}
