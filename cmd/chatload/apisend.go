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
type apiSender struct {
	url, secret, from string
	size              int
	client            *http.Client
	lastCount         int64 // connections the API node reported for the last announcement
}

func newAPISender(url, secret, from string, size int, timeout time.Duration) *apiSender {
	return &apiSender{url: url, secret: secret, from: from, size: size, client: &http.Client{Timeout: timeout}}
}

// send posts announcement seq; any answer but 200 {"connections":n} fails.
func (a *apiSender) send(ctx context.Context, seq int64) error {
	content := appendContent(nil, kindBroadcast, seq, time.Now().UnixNano(), a.size)
	body, err := json.Marshal(map[string]string{"from": a.from, "content": string(content)})
	if err != nil {
		return fmt.Errorf("broadcast api: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("broadcast api: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.secret)
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
	var out struct {
		Connections *int64 `json:"connections"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Connections == nil {
		return fmt.Errorf("broadcast api: announcement %d: unexpected answer %q", seq, b)
	}
	a.lastCount = *out.Connections
	return nil
}
