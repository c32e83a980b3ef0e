/*
 * ChatClient: a small, dependency-free client for the chat server's WebSocket
 * protocol (see the README's Protocol section).
 *
 * This file is the implementation. It loads three ways:
 *   - <script src="/chat.umd.js"></script>      defines window.ChatClient
 *   - require('./chat.umd.js')                  CommonJS (mini-programs, bundlers)
 *   - import { ChatClient } from '/chat.js'     ES module (chat.js imports this file)
 *
 * What it does for you: sends init on every (re)connection, answers for the
 * link's health with {"flag":"ping"} every heartbeatMs and treats silence (no
 * frame at all for deadAfterMs) as a dead link, reconnects with exponential
 * backoff and jitter, and queues messages sent while disconnected, sending them
 * in order once the server has processed the new init. Every message and group
 * message carries a "cid": the server acknowledges it ("ack" event: pushed to the
 * recipient or stored for later) and the client writes it again after a
 * reconnect until it is acknowledged; the server drops the repeat, so a message
 * written just before a link died is neither lost nor delivered twice.
 */
(function (root, factory) {
  'use strict';
  var ChatClient = factory();
  if (typeof module === 'object' && module && module.exports) {
    module.exports = ChatClient;
    return;
  }
  // Evaluated as an ES module (by chat.js), document.currentScript is null:
  // hand the class over without a global name. A classic script, a worker's
  // importScripts or a page without a document gets the global.
  var asModule = typeof document !== 'undefined' && !document.currentScript;
  if (asModule && typeof Symbol === 'function') {
    root[Symbol.for('chatserver.ChatClient')] = ChatClient;
  } else {
    root.ChatClient = ChatClient;
  }
})(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  var OPEN = 1; // WebSocket.OPEN; not read from the constructor, which may be absent

  // Server error codes on a message that mean "not now" rather than "never": the
  // message stays unacknowledged and is written again at the next connection.
  var TRANSIENT = { busy: true, unavailable: true, rate_limited: true };

  // Server error codes that refuse the init itself: reconnecting would only be
  // refused again, so the client stops (state "closed") and says why.
  var FATAL_AT_INIT = {
    unauthorized: true, bad_field: true, missing_field: true, too_long: true, wrong_sender: true, forbidden: true
  };

  function now() { return Date.now(); }

  function defaultURL() {
    if (typeof location !== 'undefined' && location && location.host) {
      return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
    }
    return '';
  }

  function positive(v, def) { return typeof v === 'number' && v > 0 ? v : def; }

  /**
   * new ChatClient({account, url?, token?, peer?, ...options})
   *
   * account       the account to init as (required)
   * url           ws(s)://host:9052/ ; default: the page's own host, path /
   * token         sent as "token" in init when set (auth.mode: jwt)
   * peer          sent as "to" in init: drain only that sender's offline messages
   * heartbeatMs   {"flag":"ping"} period, default 30000
   * deadAfterMs   no frame at all (pongs included) for this long = dead link,
   *               default 2 * heartbeatMs
   * reconnectMinMs, reconnectMaxMs   backoff bounds, default 500 and 30000
   * maxQueue      messages kept while disconnected, default 1000
   * sendRate, sendBurst   pacing of queued messages (frames/s, burst), default
   *               15 and 30: under the server's default limit (20/s, burst 40)
   * WebSocket     a WebSocket constructor, default globalThis.WebSocket
   * transport     function (url) -> socket; overrides WebSocket. The socket needs
   *               send(string), close(code, reason) and the properties onopen,
   *               onmessage({data}), onclose({code, reason}), onerror; readyState
   *               is read when present. ChatClient.miniProgramTransport(wx) builds
   *               one from wx / uni.
   */
  function ChatClient(options) {
    if (!(this instanceof ChatClient)) return new ChatClient(options);
    var o = options || {};
    if (o.account === undefined || o.account === null || String(o.account) === '') {
      throw new TypeError('ChatClient: options.account is required');
    }
    this.account = String(o.account);
    this.url = o.url || defaultURL();
    if (!this.url) throw new TypeError('ChatClient: options.url is required outside a web page');
    this.token = o.token ? String(o.token) : '';
    this.peer = o.peer === undefined || o.peer === null ? '' : String(o.peer);
    this.heartbeatMs = positive(o.heartbeatMs, 30000);
    this.deadAfterMs = positive(o.deadAfterMs, 2 * this.heartbeatMs);
    this.reconnectMinMs = positive(o.reconnectMinMs, 500);
    this.reconnectMaxMs = Math.max(this.reconnectMinMs, positive(o.reconnectMaxMs, 30000));
    this.maxQueue = positive(o.maxQueue, 1000);
    this.sendRate = typeof o.sendRate === 'number' && o.sendRate >= 0 ? o.sendRate : 15;
    this.sendBurst = positive(o.sendBurst, 30);

    if (typeof o.transport === 'function') {
      this._dialer = o.transport;
    } else {
      var WS = o.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
      if (!WS) throw new TypeError('ChatClient: no WebSocket here; pass options.WebSocket or options.transport');
      this._dialer = function (url) { return new WS(url); };
    }

    this._handlers = {};
    this._queue = [];          // records waiting to be written, oldest first
    this._seq = 0;
    this._state = 'closed';
    this._stopped = true;      // true until connect(), and after close()
    this._ws = null;
    this._syncing = false;     // init sent, its ping not answered yet
    this._everOnline = false;
    this._attempt = 0;
    this._lastFrame = 0;
    this._lastPing = 0;
    this._tokens = this.sendBurst;
    this._refilled = now();
    this._tick = null;
    this._retry = null;
    this._pumpTimer = null;
    this._seen = { set: Object.create(null), order: [] }; // message ids delivered lately
    this._unacked = [];        // records written, not yet acknowledged by the server, oldest first
    // cids must not repeat across page loads (the server remembers a sender's
    // recent cids): a random prefix per client object.
    this._cidBase = Math.random().toString(36).slice(2, 10) + now().toString(36);
  }

  /** Subscribe; returns a function that unsubscribes. Events: state, open,
   *  message, group, announcement, online, error, close, sent, ack, pong, frame. */
  ChatClient.prototype.on = function (event, fn) {
    (this._handlers[event] = this._handlers[event] || []).push(fn);
    var self = this;
    return function () { self.off(event, fn); };
  };

  ChatClient.prototype.off = function (event, fn) {
    var list = this._handlers[event];
    if (!list) return;
    var i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  };

  ChatClient.prototype._emit = function (event, detail) {
    var list = (this._handlers[event] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try {
        list[i].call(this, detail);
      } catch (e) {
        // One failing listener must not break the client or the others.
        if (typeof console !== 'undefined') console.error('ChatClient ' + event + ' listener:', e);
      }
    }
  };

  Object.defineProperty(ChatClient.prototype, 'state', { get: function () { return this._state; } });
  Object.defineProperty(ChatClient.prototype, 'queued', { get: function () { return this._queue.length; } });
  Object.defineProperty(ChatClient.prototype, 'unacked', { get: function () { return this._unacked.length; } });

  ChatClient.prototype._setState = function (state, detail) {
    this._state = state;
    var d = { state: state };
    if (detail) for (var k in detail) if (Object.prototype.hasOwnProperty.call(detail, k)) d[k] = detail[k];
    this._emit('state', d);
  };

  /** Opens the connection (and keeps it open until close()). */
  ChatClient.prototype.connect = function () {
    if (!this._stopped) return this;
    this._stopped = false;
    this._attempt = 0;
    this._dial();
    return this;
  };

  /** Closes for good: no reconnect. Queued messages stay for a later connect(). */
  ChatClient.prototype.close = function () {
    this._stopped = true;
    this._drop(1000, 'closed by the client');
    return this;
  };

  /** While waiting to reconnect: try now (e.g. on the browser's "online" event). */
  ChatClient.prototype.reconnectNow = function () {
    if (this._stopped || this._state !== 'reconnecting') return;
    this._dial();
  };

  /** One-to-one message. Returns the record ({id, cid, to, content, status}) or
   *  null when the queue is full. status is "queued" until written, then "sent"
   *  (a "sent" event says when), then "pushed" (on the recipient's connections)
   *  or "stored" (kept for the recipient's next connection), which an "ack" event
   *  announces with the server's message id as record.messageId; or "failed"
   *  (an "error" event with the record says why). */
  ChatClient.prototype.send = function (to, content) {
    return this._enqueue('msg', to, content);
  };

  /** Message to every member of group id (the sender must be one). */
  ChatClient.prototype.sendGroup = function (id, content) {
    return this._enqueue('group', id, content);
  };

  /** Announcement to every connection ({"flag":"all"}): only for accounts in
   *  the server's broadcast.allowed. */
  ChatClient.prototype.broadcast = function (content) {
    return this._enqueue('all', null, content);
  };

  /** Asks whether account is connected; the answer comes as an "online" event.
   *  Not queued: returns false when not online. */
  ChatClient.prototype.online = function (account) {
    if (this._state !== 'online') return false;
    return this._write({ flag: 'online', to: String(account) });
  };

  ChatClient.prototype._enqueue = function (flag, to, content) {
    if (flag !== 'all' && (to === undefined || to === null || String(to) === '')) {
      throw new TypeError('ChatClient: a recipient is required');
    }
    if (content === undefined || content === null) throw new TypeError('ChatClient: content is required');
    if (this._queue.length >= this.maxQueue) {
      this._emit('error', { code: 'queue_full', message: 'too many messages waiting for the connection' });
      return null;
    }
    var frame = { flag: flag, from: this.account };
    if (to !== null) frame.to = String(to);
    frame.content = String(content);
    var id = ++this._seq;
    // The server acknowledges msg and group frames that carry a cid ("all" has none).
    if (flag !== 'all') frame.cid = this._cidBase + '-' + id;
    var rec = { id: id, cid: frame.cid || null, flag: flag, to: frame.to === undefined ? null : frame.to, content: frame.content, status: 'queued', frame: frame };
    this._queue.push(rec);
    this._pump();
    return rec;
  };

  // _pump writes queued records in order while online, paced by a token bucket.
  ChatClient.prototype._pump = function () {
    if (this._state !== 'online' || this._pumpTimer) return;
    while (this._queue.length) {
      if (this.sendRate > 0) {
        var t = now();
        this._tokens = Math.min(this.sendBurst, this._tokens + (t - this._refilled) * this.sendRate / 1000);
        this._refilled = t;
        if (this._tokens < 1) {
          var self = this;
          this._pumpTimer = setTimeout(function () { self._pumpTimer = null; self._pump(); },
            Math.ceil((1 - this._tokens) * 1000 / this.sendRate));
          return;
        }
        this._tokens -= 1;
      }
      var rec = this._queue[0];
      if (!this._write(rec.frame)) return; // the link failed: it stays first in line
      this._queue.shift();
      if (rec.cid) this._unacked.push(rec);
      if (rec.status === 'queued') {
        rec.status = 'sent';
        this._emit('sent', rec);
      }
    }
  };

  ChatClient.prototype._write = function (frame) {
    var ws = this._ws;
    if (!ws || (ws.readyState !== undefined && ws.readyState !== OPEN)) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      this._lost(0, 'send failed: ' + e);
      return false;
    }
  };

  ChatClient.prototype._dial = function () {
    clearTimeout(this._retry);
    this._retry = null;
    this._setState('connecting', { attempt: this._attempt });
    var ws;
    try {
      ws = this._dialer(this.url);
    } catch (e) {
      this._ws = null;
      this._lost(0, 'cannot open: ' + e);
      return;
    }
    var self = this;
    this._ws = ws;
    this._syncing = false;
    this._lastFrame = now(); // the connect itself gets deadAfterMs
    ws.onopen = function () {
      if (self._ws !== ws) return;
      self._lastFrame = now();
      self._sendInit();
    };
    ws.onmessage = function (ev) {
      if (self._ws !== ws) return;
      self._lastFrame = now();
      self._frame(ev && ev.data);
    };
    ws.onerror = function () { /* a close event follows */ };
    ws.onclose = function (ev) {
      if (self._ws !== ws) return;
      self._lost(ev && ev.code, ev && ev.reason);
    };
    clearInterval(this._tick);
    this._tick = setInterval(function () { self._check(); }, Math.max(10, Math.min(1000, this.heartbeatMs / 4, this.deadAfterMs / 4)));
  };

  // _sendInit binds the new connection, then pings: frames of one connection
  // are handled in order, so the pong says the init and its drain are done.
  ChatClient.prototype._sendInit = function () {
    var init = { flag: 'init', from: this.account };
    if (this.peer) init.to = this.peer;
    if (this.token) init.token = this.token;
    this._syncing = true;
    if (this._write(init)) {
      this._lastPing = now();
      this._write({ flag: 'ping' });
    }
  };

  ChatClient.prototype._check = function () {
    var t = now();
    if (t - this._lastFrame > this.deadAfterMs) {
      this._lost(4000, 'no frame from the server for ' + (t - this._lastFrame) + ' ms');
      return;
    }
    if (this._state === 'online' && t - this._lastPing >= this.heartbeatMs) {
      this._lastPing = t;
      this._write({ flag: 'ping' });
    }
  };

  ChatClient.prototype._frame = function (data) {
    var f;
    try {
      f = JSON.parse(data);
    } catch (e) {
      this._emit('error', { code: 'bad_server_frame', message: 'the server sent a frame that is not JSON' });
      return;
    }
    if (!f || typeof f !== 'object') return;
    this._emit('frame', f);
    var offline = this._syncing; // pushed while the init drains: stored while we were away
    switch (f.flag) {
      case 'pong':
        this._pong();
        return;
      case 'online':
        this._emit('online', { to: f.to, online: f.online === true });
        return;
      case 'error':
        this._serverError(f);
        return;
      case 'ack':
        this._acked(f);
        return;
      case 'all':
        this._emit('announcement', { from: f.from, content: f.content });
        return;
      case undefined:
      case null:
      case '':
        if (f.type === 'heart') { this._pong(); return; }
        if (f.content === undefined || this._duplicate(f.id)) return;
        if (f.group !== undefined && f.group !== null && f.group !== '') {
          this._emit('group', { from: f.from, content: f.content, group: String(f.group), id: f.id, offline: offline });
        } else {
          this._emit('message', { from: f.from, content: f.content, id: f.id, offline: offline });
        }
        return;
      default:
        // A flag this version does not know: ignored, as the protocol asks.
    }
  };

  // _duplicate: a message id seen lately (a message re-delivered, e.g. after a
  // sender's retry) is dropped. Frames without an id are never duplicates.
  var SEEN_IDS = 1000;
  ChatClient.prototype._duplicate = function (id) {
    if (id === undefined || id === null || id === '') return false;
    var key = String(id);
    if (this._seen.set[key]) return true;
    this._seen.set[key] = true;
    this._seen.order.push(key);
    if (this._seen.order.length > SEEN_IDS) delete this._seen.set[this._seen.order.shift()];
    return false;
  };

  ChatClient.prototype._pong = function () {
    this._emit('pong', {});
    if (!this._syncing) return;
    this._syncing = false;
    this._attempt = 0;
    var reconnected = this._everOnline;
    this._everOnline = true;
    this._lastPing = now();
    // What the last connection wrote without an acknowledgement goes first, with
    // the same cids: the server acknowledges what it already had and drops it.
    if (this._unacked.length) {
      this._queue = this._unacked.concat(this._queue);
      this._unacked = [];
    }
    this._setState('online');
    this._emit('open', { reconnected: reconnected });
    this._pump();
  };

  // _unackedIndex finds a written record by its cid.
  ChatClient.prototype._unackedIndex = function (cid) {
    if (cid === undefined || cid === null) return -1;
    for (var i = 0; i < this._unacked.length; i++) if (this._unacked[i].cid === String(cid)) return i;
    return -1;
  };

  ChatClient.prototype._acked = function (f) {
    var i = this._unackedIndex(f.cid);
    if (i < 0) return; // not ours, or acknowledged already
    var rec = this._unacked.splice(i, 1)[0];
    rec.status = f.status === 'stored' ? 'stored' : 'pushed';
    rec.messageId = f.id === undefined ? null : String(f.id);
    this._emit('ack', rec);
  };

  ChatClient.prototype._serverError = function (f) {
    var err = { code: String(f.code || 'unknown'), message: String(f.message || '') };
    var i = this._unackedIndex(f.cid);
    if (i >= 0) {
      // About one message: refused for good, or "not now" (it stays
      // unacknowledged and goes again with the next connection).
      var rec = this._unacked[i];
      err.record = rec;
      if (!TRANSIENT[err.code]) {
        this._unacked.splice(i, 1);
        rec.status = 'failed';
      }
    }
    if (this._syncing && FATAL_AT_INIT[err.code]) {
      err.fatal = true;
      this._emit('error', err);
      this._stopped = true;
      this._drop(1000, 'init refused: ' + err.code, err.code);
      return;
    }
    this._emit('error', err);
  };

  // _lost: the link is gone (closed, failed or silent). Reconnect unless stopped.
  ChatClient.prototype._lost = function (code, reason) {
    if (this._stopped) {
      this._drop(code, reason);
      return;
    }
    this._detach(4000, 'reconnecting');
    this._emit('close', { code: code || 0, reason: reason || '', reconnect: true });
    var base = Math.min(this.reconnectMaxMs, this.reconnectMinMs * Math.pow(2, this._attempt));
    var delay = Math.round(base / 2 + Math.random() * base / 2); // "equal jitter"
    this._attempt++;
    var self = this;
    this._retry = setTimeout(function () { self._dial(); }, delay);
    this._setState('reconnecting', { delay: delay, attempt: this._attempt, code: code || 0, reason: reason || '' });
  };

  // _drop closes for good (stopped).
  ChatClient.prototype._drop = function (code, reason, errorCode) {
    var had = this._ws !== null || this._state !== 'closed';
    this._detach(code === 1000 ? 1000 : 4000, reason);
    clearTimeout(this._retry);
    this._retry = null;
    if (!had) return;
    this._emit('close', { code: code || 0, reason: reason || '', reconnect: false });
    this._setState('closed', errorCode ? { error: errorCode, reason: reason } : { reason: reason || '' });
  };

  // _detach forgets the socket first (late events are ignored), then closes it.
  ChatClient.prototype._detach = function (code, reason) {
    clearInterval(this._tick);
    this._tick = null;
    clearTimeout(this._pumpTimer);
    this._pumpTimer = null;
    this._syncing = false;
    var ws = this._ws;
    this._ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    try { ws.close(code, String(reason || '').slice(0, 120)); } catch (e) { /* already closed */ }
  };

  /**
   * miniProgramTransport(api) adapts wx.connectSocket (WeChat) or
   * uni.connectSocket (uni-app) to the socket shape ChatClient expects:
   *   new ChatClient({url: 'wss://chat.example.com/', account, transport: ChatClient.miniProgramTransport(wx)})
   */
  ChatClient.miniProgramTransport = function (api) {
    return function (url) {
      var sock = { readyState: 0, onopen: null, onmessage: null, onclose: null, onerror: null };
      // uni-app returns the SocketTask only when a callback is passed.
      var task = api.connectSocket({ url: url, complete: function () {} });
      sock.send = function (data) {
        task.send({ data: data });
      };
      sock.close = function (code, reason) {
        if (sock.readyState >= 2) return;
        sock.readyState = 2;
        task.close({ code: code || 1000, reason: reason || '' });
      };
      task.onOpen(function () {
        sock.readyState = 1;
        if (sock.onopen) sock.onopen({});
      });
      task.onMessage(function (m) {
        if (sock.onmessage) sock.onmessage({ data: m && m.data });
      });
      task.onError(function (e) {
        if (sock.onerror) sock.onerror(e);
      });
      task.onClose(function (e) {
        sock.readyState = 3;
        if (sock.onclose) sock.onclose({ code: e && e.code, reason: e && e.reason });
      });
      return sock;
    };
  };

  ChatClient.ChatClient = ChatClient;
  ChatClient.default = ChatClient;
  return ChatClient;
});
