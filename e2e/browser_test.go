package e2e

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"chatserver/config"
	"chatserver/internal/faultproxy"
)

// browserChecks are the "ok <name>:" lines web/test/browser.mjs prints, one per
// scenario; all of them must appear, so a script that stopped early or skipped
// a part cannot pass.
var browserChecks = []string{
	"two-pages", "xss-as-text", "group", "error-shown", "announcement",
	"library-umd", "library-protocol", "mini-program-adapter", "library-close-codes",
	"offline-drain", "restart", "token", "disconnect", "token-refresh", "reload",
	"receipts", "recall", "stream-cut", "history-reload", "screenshots",
}

// browserStream is how many messages browser.mjs streams to the page whose
// connection it cuts (STREAM there).
const browserStream = 120

// browserScreenshots are the files browser.mjs saves.
var browserScreenshots = []string{"alice-desktop.png", "rita-history.png", "bob-recalled.png", "alice-outage.png", "bob-phone-signin.png", "bob-phone.png", "bob-phone-list.png"}

// TestBrowser drives the chat page (web/static) in Debian's headless Chromium
// with playwright-core (web/test/browser.mjs) against the real server on
// loopback: two pages chatting, markup shown as text, a group, an error frame,
// an announcement, the client library alone (classic script, ES module,
// heartbeat, dead link, queue, mini-program adapter), a page closed and its
// messages delivered at the next init, a server restart survived by
// reconnecting, a token typed into the sign-in form, a disconnect by the site
// (4004) shown on the page, the library renewing its token in band and
// after a 4003 close (token expired), read receipts between two tabs and
// unread counts from the server, a message recalled (its placeholder live and
// from history), a page whose connection is cut (through a
// TCP proxy) while a stream of messages comes in and shows each of them once, in
// the order sent (the link first goes silent, as a phone's network does, so
// the server writes into it for a while), and a new tab that reads the conversation back from the
// server's history, scrolling up for older pages. Screenshots go to
// $CHAT_TEST_ARTIFACTS/browser, or to a temporary directory named in the log.
func TestBrowser(t *testing.T) {
	t.Parallel()
	node, chromium := browserPrereqs(t)

	// A fixed port: the pages keep their URL (and origin) across the restart.
	addr := freeLoopbackAddr(t)
	dbPath := filepath.Join(t.TempDir(), "chat.db")
	ts := startServer(t, "embedded", func(c *config.Config) {
		c.Server.Addr = addr
		c.Embed.Path = dbPath // the restarted server reads the same offline rows
		// The stream's sender writes faster than the default 20 frames/s.
		c.Limits.FramesPerSecond, c.Limits.FrameBurst = 1000, 1000
	})
	cfg := ts.cfg
	if code, body := ts.api("PUT", "/api/group/team/members", map[string]any{"accounts": []string{"alice", "bob"}}); code != 200 {
		t.Fatalf("make group team: %d %v", code, body)
	}

	// A second server with auth.mode jwt for the sign-in form's token field
	// and the library's token renewal: no leeway, swept every second.
	const jwtSecret = "browser-secret"
	jts := startServer(t, "embedded", func(c *config.Config) {
		c.Auth.Mode = "jwt"
		c.Auth.JWTSecret = jwtSecret
		c.Auth.JWTLeeway = 0
		c.Server.IdleTimeout = 10 * time.Second
	})
	daveToken := token(t, jwtSecret, "dave", time.Now().Add(time.Hour))

	// A TCP proxy in front of the server: the receiving page of the stream
	// loads through it, and the script cuts its connections mid-stream.
	proxy, err := faultproxy.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })

	shots := browserArtifacts(t)
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "browser.mjs", "http://"+addr+"/", shots)
	cmd.Dir = filepath.Join("..", "web", "test")
	cmd.Env = append(os.Environ(),
		"CHAT_TEST_CHROMIUM="+chromium,
		"CHAT_JWT_PAGE=http://"+jts.app.Addr()+"/",
		"CHAT_JWT_TOKEN="+daveToken,
		"CHAT_JWT_SECRET="+jwtSecret,
		"CHAT_PROXY_PAGE=http://"+proxy.Addr()+"/",
	)
	// Interrupt, not kill: playwright closes Chromium on SIGINT.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	stderr := &lineLogger{t: t, prefix: "node stderr: "}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", node, err)
	}
	waited := false
	defer func() {
		if !waited { // a t.Fatal below: do not leave Chromium behind
			cancel()
			_ = cmd.Wait()
		}
	}()

	// The script asks for server-side steps with "@@ <step>" and waits for
	// "done <step>" on its stdin.
	var out []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out = append(out, line)
		t.Log(line)
		step, ok := strings.CutPrefix(line, "@@ ")
		if !ok {
			continue
		}
		switch step {
		case "broadcast":
			body := map[string]string{"from": "admin", "content": "Maintenance at 02:00 <b>not bold</b>"}
			if code, res := ts.api("POST", "/api/broadcast", body); code != 200 {
				t.Fatalf("broadcast: %d %v", code, res)
			}
		case "disconnect-dave":
			body := map[string]string{"account": "dave", "reason": "signed out by the site"}
			if code, res := jts.api("POST", "/api/disconnect", body); code != 200 || res["closed"] != float64(1) {
				t.Fatalf("disconnect dave: %d %v; want 200 with closed 1", code, res)
			}
		case "blackhole":
			proxy.Set(faultproxy.Blackhole, 0)
		case "cut":
			proxy.Set(faultproxy.Cut, 0)
		case "pass":
			proxy.Set(faultproxy.Pass, 0)
		case "history-written":
			// The history writer commits in batches: the whole stream is
			// in the table before a new tab reads it back.
			eventually(t, "the stream in rita's history with sam", func() bool {
				code, res := ts.api("GET", "/api/history?account=rita&with=sam&limit=200", nil)
				msgs, _ := res["messages"].([]any)
				return code == 200 && len(msgs) >= browserStream
			})
		case "stop":
			ts.stop()
		case "start":
			ts = runServer(t, cfg)
		default:
			t.Fatalf("browser.mjs asked for an unknown step %q", step)
		}
		if _, err := stdin.Write([]byte("done " + step + "\n")); err != nil {
			t.Fatalf("answer %s: %v", step, err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Errorf("reading browser.mjs's output: %v", err)
	}
	err = cmd.Wait()
	waited = true
	stderr.flush()
	t.Logf("browser test took %s; screenshots in %s", time.Since(began).Round(100*time.Millisecond), shots)
	if err != nil {
		t.Fatalf("node browser.mjs: %v (its output is above)", err)
	}

	all := strings.Join(out, "\n")
	for _, name := range browserChecks {
		if !strings.Contains(all, "\nok "+name+":") && !strings.HasPrefix(all, "ok "+name+":") {
			t.Errorf("browser.mjs exited 0 but never printed %q", "ok "+name+": ...")
		}
	}
	if strings.Contains(all, "FAIL") {
		t.Errorf("browser.mjs exited 0 but printed FAIL")
	}
	for _, f := range browserScreenshots {
		if st, err := os.Stat(filepath.Join(shots, f)); err != nil || st.Size() == 0 {
			t.Errorf("screenshot %s missing or empty: %v", f, err)
		}
	}
}

// browserPrereqs returns node and Chromium, or skips when one is missing
// (fails instead under CHAT_TEST_REQUIRE_SERVICES=1: ./scripts/test.sh
// installs them).
func browserPrereqs(t *testing.T) (node, chromium string) {
	t.Helper()
	chromium = os.Getenv("CHAT_TEST_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join("..", "web", "test", "node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "web/test/node_modules (run npm ci in web/test)")
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (Debian package chromium)")
	}
	if len(missing) > 0 {
		msg := "browser test needs " + strings.Join(missing, ", ")
		if os.Getenv("CHAT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + "; CHAT_TEST_REQUIRE_SERVICES=1 turns this skip into a failure (./scripts/test.sh installs them)")
		}
		t.Skip(msg)
	}
	return node, chromium
}

// freeLoopbackAddr returns a loopback address whose port was free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// browserArtifacts is where the screenshots go: kept after the test, so a
// person (or CI) can look at them.
func browserArtifacts(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("CHAT_TEST_ARTIFACTS"); dir != "" {
		dir = filepath.Join(dir, "browser")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir, err := os.MkdirTemp("", "chat-browser-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// lineLogger logs what a child process writes, a line at a time.
type lineLogger struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Log(l.prefix + string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

// flush logs a last line that had no newline.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.t.Log(l.prefix + string(l.buf))
		l.buf = nil
	}
}
