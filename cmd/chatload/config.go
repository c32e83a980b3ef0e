package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is every flag of the tool; each scenario reads what it needs.
type config struct {
	scenario       string
	addr, path     string
	conns          int
	prefix         string
	workers        int
	perWorker      int
	srcIPs         []string
	dialConc       int
	connectTimeout time.Duration
	initWait       time.Duration
	heartbeat      time.Duration
	appHeartbeat   bool
	size           int
	pids           []int // -pid: the server's processes (several nodes: summed)
	metricsURL     string
	json           bool
	broadcaster    string
	maxTime        time.Duration
	protocol       string // "" (legacy) or protoCentrifugo

	steps     []int // idle
	settleMax time.Duration
	gcSignal  bool
	tls       bool
	insecure  bool
	hold      time.Duration

	k            int // broadcast
	roundTimeout time.Duration
	broadcastAPI string // POST each announcement here instead of sending an "all" frame
	apiSecret    string

	pairs     int // pairs
	rate      float64
	duration  time.Duration
	window    int
	grace     time.Duration
	pingConns int
	pingEvery time.Duration
	faultPID  int

	handoverPID     int // handover
	handoverSignal  string
	before, after   time.Duration
	handoverTimeout time.Duration

	messages     int // offline
	accounts     int
	dsn          string
	offlineWait  time.Duration
	writeTimeout time.Duration
	drainTimeout time.Duration
}

var scenarios = []string{"idle", "broadcast", "pairs", "offline", "handover"}

const usageHead = `chatload: load generator for the legacy chat protocol (init/msg/all/ping),
or, with -protocol centrifugo, Centrifugo's JSON client protocol (idle, broadcast, pairs).

usage: chatload SCENARIO [flags]     SCENARIO: idle | broadcast | pairs | offline | handover

  idle       open -conns connections (or up to the last of -steps), report the
             connect+init rate and, with -pid, the server's RSS per connection
  broadcast  -conns connections (one is -broadcaster); -k "all" frames one after
             another, fan-out completion p50/p99/max and deliveries/s
  pairs      -pairs sender->receiver pairs for -duration at -rate msg/s total
             (0 = closed loop, -window in flight per pair); latency, loss, order
  offline    -messages to -accounts absent receivers, then they init; rows/s
             written (with -mysql-dsn) and drained, loss and order
  handover   -conns connections, -pairs of them chatting at -rate msg/s (cids,
             receiver acks); SIGUSR2 to -handover-pid after -before; every
             connection closed comes back (1012: within the window its reason
             gives); close and reconnect rates, the move's length, and
             acknowledged messages lost

exit status: 0 all delivered; 2 the run completed but found failed connects,
missing or duplicated broadcast deliveries, or lost, duplicated or reordered messages (the
result is printed all the same); 1 the run could not be done.

flags:
`

// parseConfig reads the flags; getenv supplies CHAT_API_SECRET when
// -api-secret is not given.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("chatload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	var srcIPs, steps, pids string
	fs.StringVar(&c.scenario, "scenario", "", "scenario (alternative to the first argument)")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:9100", "server host:port (loopback or the server under test); several nodes: a comma-separated list, each account connects to one by a hash of its name")
	fs.StringVar(&c.path, "path", "/", "WebSocket path")
	fs.StringVar(&c.protocol, "protocol", "legacy", "client protocol: legacy, or centrifugo (Centrifugo's JSON protocol: connect, subscribe to "+cfAnnounce+" and to the account's personal channel, publish into the receiver's; -path is then usually /connection/websocket; idle, broadcast and pairs only)")
	fs.IntVar(&c.conns, "conns", 1000, "connections (idle, broadcast; pairs default -conns/2 pairs)")
	fs.StringVar(&c.prefix, "prefix", "", "account prefix, [A-Za-z0-9.-] (default: random per run)")
	fs.IntVar(&c.workers, "workers", 0, "worker processes (0: enough for -per-worker each)")
	fs.IntVar(&c.perWorker, "per-worker", 9000, "max connections per worker process (fd limit)")
	fs.StringVar(&srcIPs, "src-ips", "", "comma-separated source IPs; off: let the kernel pick (default: a random 127.a.b.x per 5,000 conns to a loopback target)")
	fs.IntVar(&c.dialConc, "dial-concurrency", 64, "concurrent dials per worker")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 10*time.Second, "per connection: dial + handshake + init")
	fs.DurationVar(&c.initWait, "init-wait", 0, "servers that do not answer {\"flag\":\"ping\"}: sleep this long after init instead")
	fs.DurationVar(&c.heartbeat, "heartbeat", 25*time.Second, "ping every connection this often (0: never)")
	fs.BoolVar(&c.appHeartbeat, "heartbeat-app", false, "heartbeat with {\"flag\":\"ping\"} instead of a WebSocket ping frame")
	fs.IntVar(&c.size, "size", 0, "pad message content to at least this many bytes")
	fs.StringVar(&pids, "pid", "", "server PID: sample its RSS (idle) and CPU time (other scenarios); several nodes: a comma-separated list, summed")
	fs.StringVar(&c.metricsURL, "metrics-url", "", "server Prometheus endpoint: also sample go_memstats_heap_inuse_bytes")
	fs.BoolVar(&c.json, "json", false, "print the result as JSON instead of a table")
	fs.StringVar(&c.broadcaster, "broadcaster", "admin", "account that sends \"all\" frames")
	fs.DurationVar(&c.maxTime, "max-time", 30*time.Minute, "hard limit for the whole run")
	fs.StringVar(&steps, "steps", "", "idle: connection counts to sample at, e.g. 5000,10000,19000")
	fs.BoolVar(&c.tls, "tls", false, "connect with TLS (wss://)")
	fs.BoolVar(&c.insecure, "insecure", false, "with -tls: accept any certificate (a test certificate)")
	fs.BoolVar(&c.gcSignal, "gc-signal", false, "idle: send SIGUSR1 to -pid before each sample (chatserver and the baseline then run a full GC and return free memory to the OS)")
	fs.DurationVar(&c.settleMax, "settle-max", 20*time.Second, "idle: max wait for the server RSS to settle at a step")
	fs.DurationVar(&c.hold, "hold", 0, "idle: keep the connections open this long after the last step")
	fs.IntVar(&c.k, "k", 20, "broadcast: number of \"all\" frames")
	fs.DurationVar(&c.roundTimeout, "round-timeout", 10*time.Second, "broadcast: max wait for one fan-out to complete")
	fs.StringVar(&c.broadcastAPI, "broadcast-api", "", "broadcast: POST each announcement to this side API URL (http://HOST:PORT/api/broadcast, from -broadcaster) instead of an \"all\" frame; every connection is then a receiver")
	fs.StringVar(&c.apiSecret, "api-secret", "", "broadcast: bearer secret for -broadcast-api (default: $CHAT_API_SECRET); with -protocol centrifugo, its HTTP API key")
	fs.IntVar(&c.pairs, "pairs", 0, "pairs: sender->receiver pairs (0: -conns/2)")
	fs.Float64Var(&c.rate, "rate", 0, "pairs/offline: total msg/s (0: flat out)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "pairs: sending time")
	fs.IntVar(&c.window, "window", 0, "pairs: in-flight messages per pair when -rate 0 (0: max(1, 2000/pairs))")
	fs.DurationVar(&c.grace, "grace", 5*time.Second, "pairs: wait this long after sending for stragglers; broadcast: after the last round, for late copies (duplicates)")
	fs.IntVar(&c.pingConns, "ping-conns", 0, "pairs: this many senders also send {\"flag\":\"ping\"} every -ping-every and time the pong (p50/p99/max)")
	fs.DurationVar(&c.pingEvery, "ping-every", 200*time.Millisecond, "pairs: ping period of the -ping-conns connections")
	fs.IntVar(&c.faultPID, "fault-pid", 0, "pairs: send SIGUSR1 to this process when sending starts and SIGUSR2 when it is over (cmd/faultproxy: black-hole, then pass)")
	fs.IntVar(&c.handoverPID, "handover-pid", 0, "handover: the old server process, to send SIGUSR2 (start the new one beside it first)")
	fs.StringVar(&c.handoverSignal, "handover-signal", "USR2", "handover: the signal for -handover-pid: USR2 (hand over), or TERM (a plain restart, for comparison: every connection closed at once)")
	fs.DurationVar(&c.before, "before", 3*time.Second, "handover: chatting before SIGUSR2")
	fs.DurationVar(&c.after, "after", 3*time.Second, "handover: chatting once every connection is back")
	fs.DurationVar(&c.handoverTimeout, "handover-timeout", 2*time.Minute, "handover: max wait for every connection to be closed and back")
	fs.IntVar(&c.messages, "messages", 10000, "offline: messages in total")
	fs.IntVar(&c.accounts, "accounts", 100, "offline: receiver accounts (one sender each)")
	fs.StringVar(&c.dsn, "mysql-dsn", "", "offline: MySQL DSN to watch app_offline fill up (go-sql-driver format)")
	fs.DurationVar(&c.offlineWait, "offline-wait", 5*time.Second, "offline without -mysql-dsn: wait this long before receivers connect")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 60*time.Second, "offline: max wait for all rows to be written")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 60*time.Second, "offline: max wait for all messages to be delivered")

	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		c.scenario, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.scenario == "" && fs.NArg() > 0 {
		c.scenario = fs.Arg(0)
	}
	var err error
	if c.steps, err = parseSteps(steps); err != nil {
		return nil, err
	}
	if srcIPs != "" {
		c.srcIPs = strings.Split(srcIPs, ",")
	}
	if c.pids, err = parsePIDs(pids); err != nil {
		return nil, err
	}
	if c.apiSecret == "" && getenv != nil {
		c.apiSecret = getenv("CHAT_API_SECRET")
	}
	return c, c.validate()
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9.-]{1,32}$`)

func (c *config) validate() error {
	if !slices.Contains(scenarios, c.scenario) {
		return fmt.Errorf("scenario %q: want one of %s", c.scenario, strings.Join(scenarios, ", "))
	}
	if c.prefix == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		c.prefix = "cl" + hex.EncodeToString(b[:]) + "-"
	}
	if !prefixRE.MatchString(c.prefix) || !prefixRE.MatchString(c.broadcaster) {
		return errors.New("-prefix and -broadcaster: 1-32 characters of [A-Za-z0-9.-]")
	}
	for _, a := range strings.Split(c.addr, ",") {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("-addr %q: %w", a, err)
		}
	}
	for _, ip := range c.srcIPs {
		if net.ParseIP(ip) == nil && ip != "off" {
			return fmt.Errorf("-src-ips: %q is not an IP", ip)
		}
	}
	switch {
	case c.conns < 1 || c.perWorker < 1 || c.dialConc < 1:
		return errors.New("-conns, -per-worker and -dial-concurrency must be positive")
	case c.k < 1 || c.messages < 1 || c.accounts < 1:
		return errors.New("-k, -messages and -accounts must be positive")
	case c.rate < 0 || c.size < 0 || c.window < 0 || c.pairs < 0:
		return errors.New("-rate, -size, -window and -pairs must not be negative")
	case c.heartbeat > 0 && c.heartbeat < time.Second:
		return errors.New("-heartbeat: at least 1s")
	case c.pingConns < 0 || c.faultPID < 0:
		return errors.New("-ping-conns and -fault-pid must not be negative")
	case c.pingConns > 0 && c.pingEvery < time.Millisecond:
		return errors.New("-ping-every: at least 1ms")
	}
	switch c.protocol {
	case "legacy", "":
		c.protocol = ""
	case protoCentrifugo:
		if c.scenario != "idle" && c.scenario != "broadcast" && c.scenario != "pairs" {
			return fmt.Errorf("-protocol centrifugo: scenario %s does not map to it (idle, broadcast, pairs)", c.scenario)
		}
		if c.gcSignal {
			return errors.New("-protocol centrifugo: no -gc-signal (Centrifugo does not handle SIGUSR1: it would exit)")
		}
		if c.tls || c.appHeartbeat || c.initWait > 0 || c.pingConns > 0 {
			return errors.New("-protocol centrifugo: -tls, -heartbeat-app, -init-wait and -ping-conns are not supported")
		}
		if c.scenario == "broadcast" && c.broadcastAPI == "" {
			c.broadcastAPI = "http://" + strings.Split(c.addr, ",")[0] + "/api/publish"
		}
	default:
		return fmt.Errorf("-protocol %q: want legacy or centrifugo", c.protocol)
	}
	if c.broadcastAPI != "" {
		u, err := url.Parse(c.broadcastAPI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-broadcast-api %q: want http://HOST:PORT/api/broadcast (Centrifugo: /api/publish)", c.broadcastAPI)
		}
		if c.apiSecret == "" {
			return errors.New("-broadcast-api needs -api-secret or CHAT_API_SECRET (Centrifugo: its http_api.key)")
		}
	}
	if c.scenario == "handover" {
		switch {
		case c.handoverPID <= 0:
			return errors.New("handover: -handover-pid (the old server process) is required")
		case c.pairs > c.conns/2:
			return fmt.Errorf("handover: -pairs %d need %d connections; -conns is %d", c.pairs, 2*c.pairs, c.conns)
		case c.rate <= 0 && c.pairs > 0:
			return errors.New("handover: -rate (msg/s for all pairs) must be positive")
		case c.handoverSignal != "USR2" && c.handoverSignal != "TERM":
			return fmt.Errorf("handover: -handover-signal %q: want USR2 or TERM", c.handoverSignal)
		}
	}
	if c.pairs == 0 && c.scenario != "handover" {
		c.pairs = max(c.conns/2, 1)
	}
	if c.pingConns > c.pairs {
		return fmt.Errorf("-ping-conns %d: at most -pairs (%d)", c.pingConns, c.pairs)
	}
	if c.window == 0 {
		c.window = max(1, 2000/c.pairs)
	}
	c.accounts = min(c.accounts, c.messages)
	return nil
}

// parsePIDs reads "123" or "123,456" (several server processes).
func parsePIDs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-pid %q: want a PID or a comma-separated list of PIDs", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseSteps(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || (len(out) > 0 && n <= out[len(out)-1]) {
			return nil, fmt.Errorf("-steps %q: want increasing positive counts", s)
		}
		out = append(out, n)
	}
	return out, nil
}
