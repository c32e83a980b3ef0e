package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// apiSender sends announcements through the server's side API
// (POST /api/broadcast with a bearer secret) instead of an "all" frame. The
// content carries the send time, taken just before the request, so a
// receiver's latency includes the HTTP call and the node's fan-out.
//
// With centrifugo set it publishes into the announcement channel through
// Centrifugo's HTTP API instead (POST /api/publish, X-API-Key).
type apiSender struct {
	url, secret, from string
	centrifugo        bool
	size              int
	client            *http.Client
	lastCount         int64 // connections the API node reported for the last announcement
}

func newAPISender(url, secret, from string, size int, timeout time.Duration, centrifugo bool) *apiSender {
	return &apiSender{url: url, secret: secret, from: from, size: size, centrifugo: centrifugo, client: &http.Client{Timeout: timeout}}
}

// send posts announcement seq; any answer but 200 {"connections":n} fails.
func (a *apiSender) send(ctx context.Context, seq int64) error {
	content := appendContent(nil, kindBroadcast, seq, time.Now().UnixNano(), a.size)
	msg := map[string]string{"from": a.from, "content": string(content)}
	var body []byte
	var err error
	if a.centrifugo {
		body, err = json.Marshal(map[string]any{"channel": cfAnnounce, "data": msg})
	} else {
		body, err = json.Marshal(msg)
	}
	if err != nil {
		return fmt.Errorf("broadcast api: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("broadcast api: %w", err)
	}
	if a.centrifugo {
		req.Header.Set("X-API-Key", a.secret)
	} else {
		req.Header.Set("Authorization", "Bearer "+a.secret)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("broadcast api: announcement %d: %w", seq, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	if err != nil {
		return fmt.Errorf("broadcast api: announcement %d: read answer: %w", seq, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("broadcast api: announcement %d: %s: %s", seq, res.Status, bytes.TrimSpace(b))
	}
	if a.centrifugo {
		return checkCfAPIAnswer(seq, b)
	}
	var out struct {
		Connections *int64 `json:"connections"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Connections == nil {
		return fmt.Errorf("broadcast api: announcement %d: unexpected answer %q", seq, b)
	}
	a.lastCount = *out.Connections
	return nil
}

// checkCfAPIAnswer accepts Centrifugo's {"result":{...}}; its errors come
// with status 200 as {"error":{"code":..,"message":..}}.
func checkCfAPIAnswer(seq int64, b []byte) error {
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Error != nil || out.Result == nil {
		return fmt.Errorf("centrifugo api: announcement %d: unexpected answer %q", seq, b)
	}
	return nil
}
