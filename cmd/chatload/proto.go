package main

// The coordinator and its worker processes talk in JSON lines: one request
// per line on the worker's stdin, one response per line on its stdout,
// matched by ID. Requests run concurrently inside the worker, so a status
// poll is answered while a long connect or pairs run is still going.

type request struct {
	ID   int64  `json:"id"`
	Op   string `json:"op"` // setup, connect, status, bcast_wait, bcast_send, bcast_total, pairs, offline_send, offline_expect, offline_wait, ho_start, ho_stop, close
	Args args   `json:"args"`
}

// args is a union: each op reads the fields it needs.
type args struct {
	Setup    *setupArgs   `json:"setup,omitempty"`
	Accounts []string     `json:"accounts,omitempty"` // connect
	IPOffset int          `json:"ip_offset,omitempty"`
	Account  string       `json:"account,omitempty"` // bcast_send
	Seq      int64        `json:"seq,omitempty"`     // bcast_*
	TimeoutN int64        `json:"timeout_ns,omitempty"`
	Pairs    []pairSpec   `json:"pairs,omitempty"` // pairs, offline_send, offline_expect
	Run      *pairsParams `json:"run,omitempty"`
}

// setupArgs is sent once, before any connect.
type setupArgs struct {
	Addr           string   `json:"addr"`
	Path           string   `json:"path"`
	SrcIPs         []string `json:"src_ips,omitempty"`
	DialConc       int      `json:"dial_conc"`
	ConnectTimeout int64    `json:"connect_timeout_ns"`
	InitWait       int64    `json:"init_wait_ns"` // 0: wait for the pong after init
	Heartbeat      int64    `json:"heartbeat_ns"`
	AppHeartbeat   bool     `json:"app_heartbeat"` // {"flag":"ping"} instead of a ping frame
	Size           int      `json:"size"`          // minimum content length (padding)
	TLS            bool     `json:"tls"`           // wss://
	Insecure       bool     `json:"insecure"`      // accept any certificate
	// AckInit inits with "ack":true (receivers acknowledge what they get) and
	// has senders put a cid on each message (handover scenario).
	AckInit bool `json:"ack_init,omitempty"`
	// Proto is "" for the legacy protocol or protoCentrifugo.
	Proto string `json:"proto,omitempty"`
}

// pairSpec names one sender -> receiver stream of N messages (N is used by
// the offline ops; the pairs op runs for a duration).
type pairSpec struct {
	From string `json:"from"`
	To   string `json:"to"`
	N    int64  `json:"n,omitempty"`
}

type pairsParams struct {
	Rate     float64 `json:"rate"`   // msg/s for this worker; 0 = closed loop, Window in flight per pair
	Window   int     `json:"window"` // in-flight messages per pair when Rate == 0
	Duration int64   `json:"duration_ns"`
	Grace    int64   `json:"grace_ns"`
	// PingConns senders of this worker also send {"flag":"ping"} every
	// PingEvery and time the pong.
	PingConns int   `json:"ping_conns,omitempty"`
	PingEvery int64 `json:"ping_every_ns,omitempty"`
}

type response struct {
	ID     int64       `json:"id"`
	Err    string      `json:"err,omitempty"`
	Conn   *connResult `json:"conn,omitempty"`
	Status *status     `json:"status,omitempty"`
	Bcast  *bcastStat  `json:"bcast,omitempty"`
	Flow   *flowStat   `json:"flow,omitempty"`
	Ho     *hoStat     `json:"ho,omitempty"`
}

type connResult struct {
	OK       int    `json:"ok"`
	Failed   int    `json:"failed"`
	FirstErr string `json:"first_err,omitempty"`
	Nanos    int64  `json:"nanos"`
}

// status is a worker's running counters (progress line and final report).
type status struct {
	Open       int64 `json:"open"`
	Dialed     int64 `json:"dialed"`
	Failed     int64 `json:"failed"`
	Closed     int64 `json:"closed"`
	TextIn     int64 `json:"text_in"`
	Pongs      int64 `json:"pongs"`
	Sent       int64 `json:"sent"`
	Recv       int64 `json:"recv"`
	BcastIn    int64 `json:"bcast_in"`
	Unexpected int64 `json:"unexpected"`
	// Handover scenario: closes with 1012, other closes, reconnects done and
	// connections waiting to reconnect.
	Restarts     int64            `json:"restarts,omitempty"`
	OtherCloses  int64            `json:"other_closes,omitempty"`
	Reconnected  int64            `json:"reconnected,omitempty"`
	Reconnecting int64            `json:"reconnecting,omitempty"`
	Errors       map[string]int64 `json:"errors,omitempty"`
	ErrSample    string           `json:"err_sample,omitempty"`
}

type bcastStat struct {
	SentNs int64 `json:"sent_ns,omitempty"`
	Expect int64 `json:"expect"`
	Count  int64 `json:"count"` // connections that received it (first copies)
	Dup    int64 `json:"dup"`   // further copies to a connection that had it
	LastNs int64 `json:"last_ns"`
	// MaxLatNs is the slowest receipt: receive time minus the send time
	// embedded in the content.
	MaxLatNs int64 `json:"max_lat_ns"`
	// Hist is the per-connection latency of every first copy (bcast_total).
	Hist []histEntry `json:"hist,omitempty"`
}

// flowStat summarises message streams (pairs and offline).
type flowStat struct {
	Sent        int64       `json:"sent"`
	Expected    int64       `json:"expected"`
	Unique      int64       `json:"unique"`
	Dup         int64       `json:"dup"`
	OutOfOrder  int64       `json:"out_of_order"`
	WrongFrom   int64       `json:"wrong_from"`
	FirstSendNs int64       `json:"first_send_ns"`
	LastSendNs  int64       `json:"last_send_ns"`
	LastRecvNs  int64       `json:"last_recv_ns"`
	Behind      int64       `json:"behind"`  // paced sends that were late by more than 10 ms
	Skipped     int64       `json:"skipped"` // pairs (or senders) left out: a connection failed
	Hist        []histEntry `json:"hist,omitempty"`
	MaxLatNs    int64       `json:"max_lat_ns"`
	Ping        *pingStat   `json:"ping,omitempty"` // pairs with PingConns
}
