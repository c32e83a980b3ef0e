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
 *
 * With a token (auth.mode jwt) the server closes the connection when the token
 * expires (close 4003). Give getToken and the client asks the page for a fresh
 * token shortly before the expiry and sends it in band ({"flag":"auth"}); if the
 * server closes with 4003 anyway, it asks again and reconnects with the new one.
 * A connection closed by the site (4004) or refused for having too many
 * connections (4005) is not reopened on its own. A server handing its
 * connections over to a new process (an upgrade) closes with 1012 and says
 * within how long to come back; the client reconnects at a random moment in
 * that window, so that the clients of a server do not all come back at once.
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
    unauthorized: true, bad_field: true, missing_field: true, too_long: true, wrong_sender: true, forbidden: true,
    too_many_connections: true
  };

  // Server close codes (README, "Close codes") the client does not simply
  // reconnect after: the token expired (ask getToken, then reconnect), or the
  // site cut the account off, or it has too many connections (stop).
  var CLOSE_TOKEN_EXPIRED = 4003;
  var STOP_ON_CLOSE = { 4004: 'disconnected', 4005: 'too_many_connections' };

  // Close 1012 (service restart): the server hands its connections over to a
  // new process; its reason ends "reconnect within <ms> ms" (README, "Upgrades").
  var CLOSE_RESTART = 1012;
  var RESTART_WINDOW = /reconnect within (\d+) ms/;

  // restartWindow is the window a 1012's reason gives, in ms, or -1 if none.
  function restartWindow(code, reason) {
    if (code !== CLOSE_RESTART) return -1;
    var m = RESTART_WINDOW.exec(String(reason || ''));
    return m ? parseInt(m[1], 10) : -1;
  }

  // setTimeout's longest delay (about 24.8 days).
  var MAX_TIMER = 2147483647;

  function now() { return Date.now(); }

  function defaultURL() {
    if (typeof location !== 'undefined' && location && location.host) {
      return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
    }
    return '';
  }

  function positive(v, def) { return typeof v === 'number' && v > 0 ? v : def; }

  // base64url decodes to a string of bytes, or null; written out because
  // mini-programs have no atob.
  var B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  function base64url(s) {
    var out = '', acc = 0, bits = 0;
    for (var i = 0; i < s.length; i++) {
      var v = B64URL.indexOf(s.charAt(i));
      if (v < 0) return null;
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out += String.fromCharCode((acc >> bits) & 0xff);
        acc &= (1 << bits) - 1;
      }
    }
    return out;
  }

  // tokenExpiry reads a JWT's exp (ms since the epoch) without checking it;
  // 0 when the token is not a JWT or has no exp.
  function tokenExpiry(token) {
    var text = base64url(String(token || '').split('.')[1] || '');
    if (!text) return 0;
    try {
      var exp = JSON.parse(text).exp;
      return typeof exp === 'number' && exp > 0 ? exp * 1000 : 0;
    } catch (e) {
      return 0;
    }
  }

  // defaultStorage is the page's localStorage, or null where there is none
  // (Node, a worker, a mini-program) or it may not be used (privacy settings
  // make reading it throw).
  function defaultStorage() {
    try {
      if (typeof localStorage !== 'undefined' && localStorage && typeof localStorage.getItem === 'function') {
        localStorage.getItem('chatclient.probe');
        return localStorage;
      }
    } catch (e) { /* disabled */ }
    return null;
  }

  /*
   * SeenIds remembers the ids of the messages delivered lately, the last
   * perConversation of each conversation ("u:<sender>" or "g:<group>"), so
   * that a message that comes again (re-delivered after a link died before the
   * receiver's ack, or after a page reload) is dropped. With a storage
   * (getItem/setItem/removeItem of strings: localStorage, sessionStorage,
   * ChatClient.miniProgramStorage(uni)) the ids survive a restart: they are
   * read when the client is made, and each new id is written before the
   * message is handed to the page, so an id is stored before it is
   * acknowledged. Storage keys: <prefix> lists the conversations (at most
   * maxConversations, the least recently written dropped first), and
   * <prefix>.<conversation> holds that conversation's ids, oldest first.
   * Writes merge with what is stored, so two tabs sharing a storage keep each
   * other's ids; ids another tab writes later are not read back (that tab
   * showed the message, this one has not).
   */
  function SeenIds(storage, prefix, perConversation, maxConversations) {
    this.storage = storage || null;
    this.prefix = prefix;
    this.per = perConversation;
    this.maxConvs = maxConversations;
    this.convs = Object.create(null); // conversation -> {set, order}
    if (this.storage) this._load();
  }

  SeenIds.prototype._key = function (conv) { return this.prefix + '.' + encodeURIComponent(conv); };

  SeenIds.prototype._read = function (key) {
    try {
      var v = JSON.parse(this.storage.getItem(key) || '[]');
      return Array.isArray(v) ? v : [];
    } catch (e) {
      return [];
    }
  };

  SeenIds.prototype._write = function (key, list) {
    try {
      this.storage.setItem(key, JSON.stringify(list));
    } catch (e) { /* full or refused: the ids stay in memory */ }
  };

  SeenIds.prototype._load = function () {
    var convs = this._read(this.prefix);
    for (var i = 0; i < convs.length; i++) {
      var ids = this._read(this._key(String(convs[i])));
      for (var j = 0; j < ids.length; j++) this._remember(String(convs[i]), String(ids[j]));
    }
  };

  SeenIds.prototype._remember = function (conv, id) {
    var c = this.convs[conv];
    if (!c) c = this.convs[conv] = { set: Object.create(null), order: [] };
    if (c.set[id]) return;
    c.set[id] = true;
    c.order.push(id);
    if (c.order.length > this.per) delete c.set[c.order.shift()];
  };

  SeenIds.prototype.has = function (conv, id) {
    var c = this.convs[conv];
    return !!(c && c.set[id]);
  };

  SeenIds.prototype.add = function (conv, id) {
    this._remember(conv, id);
    if (!this.storage) return;
    var key = this._key(conv);
    var ids = this._read(key);
    if (ids.indexOf(id) < 0) ids.push(id);
    if (ids.length > this.per) ids = ids.slice(ids.length - this.per);
    this._write(key, ids);
    var convs = this._read(this.prefix);
    if (convs[convs.length - 1] === conv) return;
    var at = convs.indexOf(conv);
    if (at >= 0) convs.splice(at, 1);
    convs.push(conv);
    while (convs.length > this.maxConvs) {
      try { this.storage.removeItem(this._key(String(convs.shift()))); } catch (e) { /* ignore */ }
    }
    this._write(this.prefix, convs);
  };

  /**
   * new ChatClient({account, url?, token?, peer?, ...options})
   *
   * account       the account to init as (required)
   * url           ws(s)://host:9052/ ; default: the page's own host, path /
   * token         sent as "token" in init when set (auth.mode: jwt)
   * getToken      function () -> token or a promise of one: asked for a fresh
   *               token refreshBeforeMs before the current one's exp (sent in
   *               an auth frame), and when the server closes with 4003 (token
   *               expired; the client then reconnects with the new token).
   *               Without it a 4003 stops the client (state "closed", error
   *               "token_expired").
   * refreshBeforeMs  how long before exp getToken is asked, default 60000 (at
   *               most half the token's remaining life); 0: only after a 4003
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
   * ack           receiver acknowledgements (init "ack":true, then
   *               {"flag":"ack","id"} for what came), default true: a message
   *               pushed to a connection that dies before the ack comes again at
   *               the next init (and is dropped if its id was seen). false: the
   *               legacy behaviour, written to the socket counts as delivered.
   * ackDelayMs    acks are sent this long after the last message (one ack
   *               covers every earlier message), default 100; at once after
   *               64 unacknowledged messages
   * storage       where seen message ids are kept across restarts: an object
   *               with getItem/setItem/removeItem of strings (localStorage,
   *               sessionStorage, ChatClient.miniProgramStorage(uni)); default
   *               localStorage where there is one; null: memory only
   * seenIds       ids kept per conversation, default 200
   * seenConversations  conversations whose ids are stored, default 50
   * historyLimit  messages per loadOlder page, default 50 (1..200)
   * readState     ask for the unread counts after every init ("unread" event),
   *               which also subscribes the connection to read receipts
   *               ("read" events), default true
   * recall        init with "recall":true: this connection takes recall and
   *               edit frames ("recall", "edit" events), also those owed while
   *               none of the account's connections took them; default true
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
    this.getToken = typeof o.getToken === 'function' ? o.getToken : null;
    this.refreshBeforeMs = typeof o.refreshBeforeMs === 'number' && o.refreshBeforeMs >= 0 ? o.refreshBeforeMs : 60000;
    this.peer = o.peer === undefined || o.peer === null ? '' : String(o.peer);
    this.heartbeatMs = positive(o.heartbeatMs, 30000);
    this.deadAfterMs = positive(o.deadAfterMs, 2 * this.heartbeatMs);
    this.reconnectMinMs = positive(o.reconnectMinMs, 500);
    this.reconnectMaxMs = Math.max(this.reconnectMinMs, positive(o.reconnectMaxMs, 30000));
    this.maxQueue = positive(o.maxQueue, 1000);
    this.sendRate = typeof o.sendRate === 'number' && o.sendRate >= 0 ? o.sendRate : 15;
    this.sendBurst = positive(o.sendBurst, 30);
    this.ack = o.ack !== false;
    this.ackDelayMs = typeof o.ackDelayMs === 'number' && o.ackDelayMs >= 0 ? o.ackDelayMs : 100;
    this.historyLimit = Math.min(200, positive(o.historyLimit, 50));

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
    this._refreshTimer = null; // asks getToken before the token expires
    this._renewing = null;     // while getToken is asked: who waits for its answer
    this._askedAt = 0;         // exp of the token getToken was last asked to replace
    var storage = o.storage === undefined ? defaultStorage() : o.storage;
    this._seen = new SeenIds(storage, 'chatclient.seen.' + encodeURIComponent(this.account),
      positive(o.seenIds, 200), positive(o.seenConversations, 50));
    this._toAck = '';          // id of the last message received and not yet acknowledged
    this._toAckCount = 0;
    this._ackTimer = null;
    this._requests = [];       // history requests waiting for their answer, oldest first
    this._cursors = Object.create(null); // conversation -> {before, more, loading} for loadOlder
    this._lastRead = Object.create(null); // conversation -> the id last marked read
    this.readState = o.readState !== false;
    this.recallFrames = o.recall !== false;
    this._unacked = [];        // records written, not yet acknowledged by the server, oldest first
    // cids must not repeat across page loads (the server remembers a sender's
    // recent cids): a random prefix per client object.
    this._cidBase = Math.random().toString(36).slice(2, 10) + now().toString(36);
  }

  /** Subscribe; returns a function that unsubscribes. Events: state, open,
   *  message, group, announcement, online, error, close, sent, ack, auth, history,
   *  unread, conversations, read, recall, edit, pong, frame. */
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
    this._flushAck();
    this._drop(1000, 'closed by the client');
    return this;
  };

  /** A fresh token for this account (auth.mode jwt): kept for the next init,
   *  and sent now in an auth frame when online, so that the connection is not
   *  closed when the current token expires. The server answers with an "auth"
   *  event ({expires}) or an "error" event (unauthorized: the connection keeps
   *  its current token). Returns whether the frame was written. */
  ChatClient.prototype.refreshToken = function (token) {
    if (token === undefined || token === null || String(token) === '') {
      throw new TypeError('ChatClient: refreshToken needs a token');
    }
    this.token = String(token);
    if (this._state !== 'online') return false;
    return this._write({ flag: 'auth', token: this.token });
  };

  // _scheduleRefresh asks getToken refreshBeforeMs before the token's exp (at
  // most half its remaining life before it), while online; once per token: if
  // getToken gave one that expires no later, it is not asked again until the
  // server closes with 4003.
  ChatClient.prototype._scheduleRefresh = function () {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    if (!this.getToken || this.refreshBeforeMs <= 0 || this._state !== 'online') return;
    var exp = tokenExpiry(this.token);
    if (!exp || exp <= this._askedAt) return;
    var left = exp - now();
    var delay = Math.max(0, left - Math.min(this.refreshBeforeMs, left / 2));
    var self = this;
    if (delay > MAX_TIMER) {
      this._refreshTimer = setTimeout(function () { self._scheduleRefresh(); }, MAX_TIMER);
      return;
    }
    this._refreshTimer = setTimeout(function () {
      self._refreshTimer = null;
      self._askedAt = exp;
      self._renew(function (token) { self.refreshToken(token); });
    }, delay);
  };

  // _renew asks getToken (once for all who ask while it is asked) and hands a
  // non-empty answer to use; a failure or an empty answer goes to fail, or is
  // reported as an "error" event (token_refresh_failed).
  ChatClient.prototype._renew = function (use, fail) {
    var waiter = { use: use, fail: fail };
    if (this._renewing) {
      this._renewing.push(waiter);
      return;
    }
    this._renewing = [waiter];
    var self = this;
    var done = function (token, err) {
      var waiters = self._renewing;
      self._renewing = null;
      if (self._stopped) return;
      var ok = token !== undefined && token !== null && String(token) !== '';
      var msg = err ? 'getToken failed: ' + (err && err.message ? err.message : err) : 'getToken gave no token';
      for (var i = 0; i < waiters.length; i++) {
        if (ok) waiters[i].use(String(token));
        else if (waiters[i].fail) waiters[i].fail(msg);
        else self._emit('error', { code: 'token_refresh_failed', message: msg });
      }
    };
    var p;
    try {
      p = Promise.resolve(this.getToken());
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(function (t) { done(t, null); }, function (e) { done(null, e || 'rejected'); });
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
    if (this.ack) init.ack = true;
    if (this.recallFrames) init.recall = true;
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
      case 'auth':
        if (f.ok === true) {
          this._emit('auth', { expires: typeof f.expires === 'number' ? f.expires : null });
          this._scheduleRefresh();
        }
        return;
      case 'all':
        this._emit('announcement', { from: f.from, content: f.content });
        return;
      case 'history':
        this._answer(f);
        this._emit('history', { 'with': f['with'], group: f.group, messages: Array.isArray(f.messages) ? f.messages : [], more: f.more === true });
        return;
      case 'unread':
        this._answer(f);
        this._emit('unread', { conversations: Array.isArray(f.conversations) ? f.conversations : [], total: typeof f.total === 'number' ? f.total : 0 });
        return;
      case 'conversations':
        this._answer(f);
        this._emit('conversations', { conversations: Array.isArray(f.conversations) ? f.conversations : [] });
        return;
      case 'sync':
        this._answer(f);
        return;
      case 'read':
      case 'recall':
      case 'edit':
        this._event(f);
        return;
      case undefined:
      case null:
      case '':
        if (f.type === 'heart') { this._pong(); return; }
        if (f.content === undefined) return;
        var group = f.group !== undefined && f.group !== null && f.group !== '' ? String(f.group) : '';
        if (!this._duplicate(group ? 'g:' + group : 'u:' + f.from, f.id)) {
          if (group) {
            this._emit('group', { from: f.from, content: f.content, group: group, id: f.id, offline: offline });
          } else {
            this._emit('message', { from: f.from, content: f.content, id: f.id, offline: offline });
          }
        }
        this._received(f.id); // a duplicate too: the server waits for its ack
        return;
      default:
        // A flag this version does not know: ignored, as the protocol asks.
    }
  };

  // _duplicate: a message id seen lately in conversation conv (a message
  // re-delivered after a drop, a restart or a sender's retry) is dropped; a
  // new one is remembered (and stored) before the page sees it. Frames without
  // an id are never duplicates.
  ChatClient.prototype._duplicate = function (conv, id) {
    if (id === undefined || id === null || id === '') return false;
    var key = String(id);
    if (this._seen.has(conv, key)) return true;
    this._seen.add(conv, key);
    return false;
  };

  // Receiver acks: a message received is acknowledged ackDelayMs after the
  // last one (an ack covers every earlier message of the connection), or at
  // once when many wait.
  var ACK_AT_ONCE = 64;
  ChatClient.prototype._received = function (id) {
    if (!this.ack || id === undefined || id === null || id === '') return;
    this._toAck = String(id);
    this._toAckCount++;
    if (this._toAckCount >= ACK_AT_ONCE || this.ackDelayMs === 0) {
      this._flushAck();
      return;
    }
    if (this._ackTimer) return;
    var self = this;
    this._ackTimer = setTimeout(function () { self._ackTimer = null; self._flushAck(); }, this.ackDelayMs);
  };

  ChatClient.prototype._flushAck = function () {
    clearTimeout(this._ackTimer);
    this._ackTimer = null;
    if (!this._toAck) return;
    var id = this._toAck;
    this._toAck = '';
    this._toAckCount = 0;
    this._write({ flag: 'ack', id: id });
  };

  /** One page of a conversation's history ({"flag":"history"}): query is
   *  {with: account} or {group: id}, plus before (a message id: the page
   *  just older than it; absent: the newest) and limit (1..200). Returns a
   *  promise of {messages: [{id, seq, from, to, group, content, time}, ...]
   *  oldest first, more}; it is sent once online (again after a reconnect if
   *  its answer had not come) and rejected with an Error whose code is the
   *  server's (forbidden, not_found, unavailable, ...) or "closed" after
   *  close(). */
  ChatClient.prototype.history = function (query) {
    var q = query || {};
    var frame = { flag: 'history' };
    var key;
    if (q.group !== undefined && q.group !== null && String(q.group) !== '') {
      frame.group = String(q.group);
      key = 'g:' + frame.group;
    } else if (q['with'] !== undefined && q['with'] !== null && String(q['with']) !== '') {
      frame['with'] = String(q['with']);
      key = 'u:' + frame['with'];
    } else {
      throw new TypeError('ChatClient: history needs with (an account) or group');
    }
    if (q.before !== undefined && q.before !== null && String(q.before) !== '') frame.before = String(q.before);
    if (typeof q.limit === 'number' && q.limit > 0) frame.limit = Math.floor(q.limit);
    return this._request(frame, function (f) { return f.flag === 'history' && convOf(f) === key; })
      .then(function (f) { return { messages: Array.isArray(f.messages) ? f.messages : [], more: f.more === true }; });
  };

  // convOf names the conversation a frame is about: "g:<group>", or "u:<peer>"
  // with the peer in field (default "with").
  function convOf(f, field) {
    if (f.group !== undefined && f.group !== null && f.group !== '') return 'g:' + f.group;
    var peer = f[field || 'with'];
    return peer === undefined || peer === null ? '' : 'u:' + peer;
  }

  // _request writes frame once online (again after a reconnect until
  // answered) and returns a promise of the first frame match accepts, or of
  // the refusal: error frames carry the cid of the frame they refuse. Frames
  // of a connection are answered in order, so the oldest waiting request a
  // frame matches is the one it answers.
  ChatClient.prototype._request = function (frame, match) {
    frame.cid = this._cidBase + '-r' + (++this._seq);
    var self = this;
    return new Promise(function (resolve, reject) {
      var req = { frame: frame, match: match, resolve: resolve, reject: reject, written: false };
      self._requests.push(req);
      if (self._state === 'online') req.written = self._write(frame);
    });
  };

  // _answer resolves the oldest written request f answers; false if none.
  ChatClient.prototype._answer = function (f) {
    for (var i = 0; i < this._requests.length; i++) {
      var req = this._requests[i];
      if (req.written && req.match(f)) {
        this._requests.splice(i, 1);
        req.resolve(f);
        return true;
      }
    }
    return false;
  };

  // convFrame builds a frame about a one-to-one conversation (field "to" or
  // "with" = peer) or a group's ("group").
  function convFrame(flag, field, peer, group, what) {
    var f = { flag: flag };
    if (group) {
      if (group === undefined || group === null || String(group) === '') throw new TypeError('ChatClient: ' + what + ' needs a group');
      f.group = String(group);
    } else {
      if (peer === undefined || peer === null || String(peer) === '') throw new TypeError('ChatClient: ' + what + ' needs an account');
      f[field] = String(peer);
    }
    return f;
  }

  function needId(id, what) {
    if (id === undefined || id === null || String(id) === '') throw new TypeError('ChatClient: ' + what + ' needs a message id');
    return String(id);
  }

  /** Read receipts ({"flag":"read"}): tells the server (and peer, and this
   *  account's other connections) that every message of the conversation up
   *  to id was read. Returns a promise, resolved when the server took it,
   *  rejected with its refusal (e.g. bad_field: the cursor is already past
   *  id; it only moves forward). A read of the id last marked is not sent
   *  again. */
  ChatClient.prototype.markRead = function (peer, id) { return this._markRead(peer, '', id); };
  ChatClient.prototype.markReadGroup = function (group, id) { return this._markRead('', group, id); };

  ChatClient.prototype._markRead = function (peer, group, id) {
    var frame = convFrame('read', 'to', peer, group, 'markRead');
    frame.id = needId(id, 'markRead');
    var key = convOf(frame, 'to');
    if (this._lastRead[key] === frame.id) return Promise.resolve({ id: frame.id });
    this._lastRead[key] = frame.id;
    var self = this;
    return this._request(frame, function (f) {
      return f.flag === 'read' && f.ok === true && String(f.id) === frame.id && convOf(f, 'to') === key;
    }).then(function () { return { id: frame.id }; }, function (err) {
      if (self._lastRead[key] === frame.id) delete self._lastRead[key];
      throw err;
    });
  };

  /** Unread counts from the server ({"flag":"unread"}): a promise of
   *  {conversations: [{with | group, unread, read}], total}; also an "unread"
   *  event. Asked by the client after every init unless readState is false. */
  ChatClient.prototype.unread = function () {
    return this._request({ flag: 'unread' }, function (f) { return f.flag === 'unread'; }).then(function (f) {
      return { conversations: Array.isArray(f.conversations) ? f.conversations : [], total: typeof f.total === 'number' ? f.total : 0 };
    });
  };

  /** This account's conversations ({"flag":"conversations"}): a promise of
   *  {conversations: [{with | group, last, unread, read}]}, newest first. */
  ChatClient.prototype.conversations = function () {
    return this._request({ flag: 'conversations' }, function (f) { return f.flag === 'conversations'; }).then(function (f) {
      return { conversations: Array.isArray(f.conversations) ? f.conversations : [] };
    });
  };

  /** Takes back a message this account sent ({"flag":"recall"}): its
   *  recipients get a "recall" event, history shows it recalled. A promise,
   *  resolved when the server took it, rejected with its refusal. */
  ChatClient.prototype.recall = function (peer, id) { return this._change('recall', peer, '', id); };
  ChatClient.prototype.recallGroup = function (group, id) { return this._change('recall', '', group, id); };

  /** Replaces the content of a message this account sent ({"flag":"edit"}):
   *  its recipients get an "edit" event. A promise, as recall. */
  ChatClient.prototype.edit = function (peer, id, content) { return this._change('edit', peer, '', id, content); };
  ChatClient.prototype.editGroup = function (group, id, content) { return this._change('edit', '', group, id, content); };

  ChatClient.prototype._change = function (flag, peer, group, id, content) {
    var frame = convFrame(flag, 'to', peer, group, flag);
    frame.from = this.account;
    frame.id = needId(id, flag);
    if (flag === 'edit') {
      if (content === undefined || content === null) throw new TypeError('ChatClient: edit needs content');
      frame.content = String(content);
    }
    var me = this.account;
    return this._request(frame, function (f) {
      // The server's answer to the sender: ok, or the change as this
      // account's other connections get it.
      return f.flag === flag && String(f.id) === frame.id && (f.ok === true || f.from === undefined || String(f.from) === me);
    }).then(function () { return { id: frame.id }; });
  };

  /** What the conversations got since the seqs given ({"flag":"sync"}):
   *  since maps an account, or "g:" and a group, to the last seq seen there.
   *  A promise of {conversations: [{with | group, since, messages, more}]}. */
  ChatClient.prototype.sync = function (since, options) {
    var frame = { flag: 'sync', since: since || {} };
    if (options && typeof options.limit === 'number' && options.limit > 0) frame.limit = Math.floor(options.limit);
    return this._request(frame, function (f) { return f.flag === 'sync'; }).then(function (f) {
      return { conversations: Array.isArray(f.conversations) ? f.conversations : [] };
    });
  };

  // _event handles a read, recall or edit frame: the answer to a request of
  // ours ("ok"), or news for the page (an event), or both.
  ChatClient.prototype._event = function (f) {
    var answered = this._answer(f);
    if (f.ok === true && answered) return;
    var e = { from: f.from, to: f.to, group: f.group, id: f.id };
    if (f.flag === 'read') {
      if (typeof f.count === 'number') e.count = f.count;
      // this account read it on another connection: not a receipt, a sync
      e.mine = f.from !== undefined && String(f.from) === this.account;
    } else {
      e.mine = f.from !== undefined && String(f.from) === this.account;
      if (f.flag === 'edit') {
        e.content = f.content;
        e.edited = f.edited;
      }
    }
    this._emit(f.flag, e);
  };

  /** The page of history just older than what loadOlder gave for peer so far
   *  (the newest page the first time): a promise of {messages, more}, as
   *  history(). Calls while one is on its way share its answer; once a page
   *  said more: false, the answer is an empty page. */
  ChatClient.prototype.loadOlder = function (peer, options) {
    return this._older('u:', 'with', peer, options);
  };

  /** loadOlder for group id. */
  ChatClient.prototype.loadOlderGroup = function (id, options) {
    return this._older('g:', 'group', id, options);
  };

  /** Whether loadOlder(peer) may give more: false once a page said there is
   *  nothing older. */
  ChatClient.prototype.hasOlder = function (peer) {
    var c = this._cursors['u:' + peer];
    return !c || c.more;
  };

  ChatClient.prototype.hasOlderGroup = function (id) {
    var c = this._cursors['g:' + id];
    return !c || c.more;
  };

  ChatClient.prototype._older = function (prefix, field, id, options) {
    if (id === undefined || id === null || String(id) === '') throw new TypeError('ChatClient: loadOlder needs a conversation');
    var key = prefix + String(id);
    var cur = this._cursors[key] || (this._cursors[key] = { before: '', more: true, loading: null });
    if (cur.loading) return cur.loading;
    if (!cur.more) return Promise.resolve({ messages: [], more: false });
    var q = { limit: (options && options.limit) || this.historyLimit };
    q[field] = String(id);
    if (cur.before) q.before = cur.before;
    cur.loading = this.history(q).then(function (page) {
      cur.loading = null;
      if (page.messages.length) cur.before = String(page.messages[0].id);
      cur.more = page.more && page.messages.length > 0;
      return page;
    }, function (err) {
      cur.loading = null;
      throw err;
    });
    return cur.loading;
  };

  // _requestFailed rejects the request an error frame's cid names; false if
  // it names none.
  ChatClient.prototype._requestFailed = function (f) {
    if (f.cid === undefined || f.cid === null) return false;
    for (var i = 0; i < this._requests.length; i++) {
      var req = this._requests[i];
      if (req.frame.cid === String(f.cid)) {
        this._requests.splice(i, 1);
        var err = new Error(String(f.message || f.code || 'refused'));
        err.code = String(f.code || 'unknown');
        req.reject(err);
        return true;
      }
    }
    return false;
  };

  ChatClient.prototype._rejectRequests = function (code, message) {
    var reqs = this._requests;
    this._requests = [];
    for (var i = 0; i < reqs.length; i++) {
      var err = new Error(message);
      err.code = code;
      reqs[i].reject(err);
    }
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
    this._scheduleRefresh();
    this._pump();
    // Requests not answered on the last connection go again.
    for (var i = 0; i < this._requests.length; i++) {
      if (!this._requests[i].written) this._requests[i].written = this._write(this._requests[i].frame);
    }
    // The unread counts; asking also subscribes this connection to read
    // receipts. A server without read state refuses it: nothing to report.
    if (this.readState) this.unread().then(null, function () {});
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
    if (this._requestFailed(f)) return;
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

  // _lost: the link is gone (closed, failed or silent). Reconnect unless
  // stopped, or closed by the server for a reason a reconnect does not mend.
  ChatClient.prototype._lost = function (code, reason) {
    if (this._stopped) {
      this._drop(code, reason);
      return;
    }
    if (STOP_ON_CLOSE[code]) {
      this._stopped = true;
      this._drop(code, reason, STOP_ON_CLOSE[code]);
      return;
    }
    if (code === CLOSE_TOKEN_EXPIRED) {
      this._expired(code, reason);
      return;
    }
    this._detach(4000, 'reconnecting');
    this._emit('close', { code: code || 0, reason: reason || '', reconnect: true });
    var delay;
    var within = restartWindow(code, reason);
    if (within >= 0) {
      // A planned handover: the new process is up; come back at a random
      // moment of the window it gives (no backoff: nothing failed).
      delay = Math.round(Math.random() * Math.min(within, this.reconnectMaxMs));
    } else {
      var base = Math.min(this.reconnectMaxMs, this.reconnectMinMs * Math.pow(2, this._attempt));
      delay = Math.round(base / 2 + Math.random() * base / 2); // "equal jitter"
      this._attempt++;
    }
    var self = this;
    this._retry = setTimeout(function () { self._dial(); }, delay);
    this._setState('reconnecting', { delay: delay, attempt: this._attempt, code: code || 0, reason: reason || '' });
  };

  // _expired: the server closed with 4003. With getToken, reconnect at once
  // with the token it gives; without it, or if it fails, stop.
  ChatClient.prototype._expired = function (code, reason) {
    var self = this;
    var stop = function (why) {
      self._stopped = true;
      self._drop(code, why || reason, 'token_expired');
    };
    if (!this.getToken) {
      stop();
      return;
    }
    this._detach(4000, 'reconnecting');
    this._emit('close', { code: code, reason: reason || '', reconnect: true });
    this._setState('reconnecting', { delay: 0, attempt: this._attempt, code: code, reason: reason || '' });
    this._renew(function (token) {
      self.token = token;
      self._dial();
    }, function (msg) {
      stop(String(reason || 'token expired') + '; ' + msg);
    });
  };

  // _drop closes for good (stopped).
  ChatClient.prototype._drop = function (code, reason, errorCode) {
    var had = this._ws !== null || this._state !== 'closed';
    this._detach(code === 1000 ? 1000 : 4000, reason);
    clearTimeout(this._retry);
    this._retry = null;
    this._rejectRequests('closed', 'the client was closed' + (reason ? ': ' + reason : ''));
    if (!had) return;
    this._emit('close', { code: code || 0, reason: reason || '', reconnect: false });
    this._setState('closed', errorCode ? { error: errorCode, reason: reason } : { reason: reason || '' });
  };

  // _detach forgets the socket first (late events are ignored), then closes it.
  ChatClient.prototype._detach = function (code, reason) {
    clearInterval(this._tick);
    this._tick = null;
    clearTimeout(this._refreshTimer); // scheduled again once online
    this._refreshTimer = null;
    clearTimeout(this._pumpTimer);
    this._pumpTimer = null;
    // What the server had not been told we got comes again at the next init.
    clearTimeout(this._ackTimer);
    this._ackTimer = null;
    this._toAck = '';
    this._toAckCount = 0;
    for (var i = 0; i < this._requests.length; i++) this._requests[i].written = false;
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

  /**
   * miniProgramStorage(api) adapts wx / uni synchronous storage
   * (getStorageSync, setStorageSync, removeStorageSync) to the storage option:
   *   new ChatClient({..., storage: ChatClient.miniProgramStorage(uni)})
   */
  ChatClient.miniProgramStorage = function (api) {
    return {
      getItem: function (key) {
        var v = api.getStorageSync(key); // "" when the key is not there
        return typeof v === 'string' && v !== '' ? v : null;
      },
      setItem: function (key, value) { api.setStorageSync(key, String(value)); },
      removeItem: function (key) { api.removeStorageSync(key); }
    };
  };

  ChatClient.ChatClient = ChatClient;
  ChatClient.default = ChatClient;
  return ChatClient;
});
