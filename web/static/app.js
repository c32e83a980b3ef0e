// The chat page. Every text that comes from the server or the user is put into
// the page with textContent (el() below), never parsed as HTML.
import { ChatClient } from './chat.js';

const ONLINE_POLL_MS = 10000; // how often the open conversation's peer is asked about
const KEEP = 200;             // messages kept per conversation (this tab only)
const ERROR_SHOWN_MS = 10000;

const SESSION = 'chat.session';       // sessionStorage: {account, token} of this tab
const LAST_ACCOUNT = 'chat.account';  // localStorage: prefills the sign-in form
const historyKey = (account) => 'chat.history.' + account; // sessionStorage

const $ = (id) => document.getElementById(id);
const ui = {
  me: $('me'), conn: $('conn'), retry: $('retry'), signout: $('signout'),
  notice: $('notice'), noticeFrom: $('notice-from'), noticeText: $('notice-text'), noticeClose: $('notice-close'),
  errors: $('errors'),
  login: $('login'), loginForm: $('login-form'), account: $('account'), token: $('token'), loginError: $('login-error'),
  chat: $('chat'), openForm: $('open-form'), openKind: $('open-kind'), openName: $('open-name'), known: $('known'),
  convs: $('convs'), convsEmpty: $('convs-empty'),
  back: $('back'), convTitle: $('conv-title'), presence: $('presence'), convEmpty: $('conv-empty'),
  messages: $('messages'), composer: $('composer'), text: $('text'),
};

let client = null;
let me = '';
let convs = new Map();  // key -> {key, kind: user|group|all, id, messages, unread, online, last}
let active = null;      // key of the open conversation
const pending = new Map(); // client record id -> message object waiting to be written
let countdown = null;
let saveTimer = null;
const older = new Map(); // conversation key -> {state: idle|loading|done|failed, why} of its history paging

// el builds an element whose text is set with textContent only.
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

const keyOf = (kind, id) => (kind === 'all' ? 'all' : kind + ':' + id);

function conversation(kind, id) {
  const key = keyOf(kind, id);
  let c = convs.get(key);
  if (!c) {
    c = { key, kind, id: kind === 'all' ? '' : String(id), messages: [], unread: 0, online: null, last: 0 };
    convs.set(key, c);
  }
  return c;
}

function titleOf(c) {
  if (c.kind === 'all') return 'Announcements';
  if (c.kind === 'group') return c.id + ' (group)';
  return c.id;
}

function timeOf(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// ---- connection ----

function start(account, token) {
  me = account;
  try {
    localStorage.setItem(LAST_ACCOUNT, account);
    sessionStorage.setItem(SESSION, JSON.stringify({ account, token }));
  } catch (e) { /* storage disabled: the page still works */ }
  restore();
  // The ids of the messages shown are kept where this tab keeps its
  // conversations (sessionStorage): a message that comes again after a reload
  // is dropped by the library, and another tab shows what it gets.
  let storage = null;
  try { storage = sessionStorage; } catch (e) { /* disabled: ids in memory only */ }
  client = new ChatClient({ account, token: token || undefined, storage });
  client.on('state', onState);
  client.on('message', (m) => received(conversation('user', m.from), { dir: 'in', from: m.from, text: m.content, offline: m.offline, id: m.id }));
  client.on('group', (m) => received(conversation('group', m.group), { dir: 'in', from: m.from, text: m.content, offline: m.offline, id: m.id }));
  client.on('announcement', (m) => {
    received(conversation('all'), { dir: 'announce', from: m.from, text: m.content });
    showNotice(m.from, m.content);
  });
  client.on('online', onOnline);
  client.on('read', onRead);
  client.on('unread', onUnread);
  client.on('recall', (e) => onChange('recall', e));
  client.on('edit', (e) => onChange('edit', e));
  client.on('error', (e) => {
    if (e.record) settle(e.record);
    showError(e.code, e.message);
  });
  client.on('sent', onSent);
  client.on('ack', settle);
  client.on('open', (o) => {
    if (!o.reconnected) listConversations();
    pollPresence();
    const c = convs.get(active);
    if (c && !older.has(c.key)) loadOlder(c); // the newest page, once per page load
  });
  ui.me.textContent = account;
  ui.login.hidden = true;
  ui.chat.hidden = false;
  ui.signout.hidden = false;
  ui.loginError.textContent = '';
  ui.chat.classList.toggle('show-conv', active !== null); // a reload keeps the open conversation
  render();
  client.connect();
}

function signOut(reason) {
  if (client) client.close();
  client = null;
  try {
    sessionStorage.removeItem(SESSION);
    if (me) sessionStorage.removeItem(historyKey(me));
  } catch (e) { /* ignore */ }
  me = '';
  convs = new Map();
  active = null;
  pending.clear();
  older.clear();
  ui.me.textContent = '';
  ui.chat.hidden = true;
  ui.signout.hidden = true;
  ui.retry.hidden = true;
  ui.login.hidden = false;
  ui.loginError.textContent = reason || '';
  setConn('closed', 'Offline');
  document.title = 'Chat';
  ui.account.focus();
}

function setConn(state, text) {
  ui.conn.dataset.state = state;
  ui.conn.textContent = text;
}

function onState(s) {
  clearInterval(countdown);
  countdown = null;
  ui.retry.hidden = s.state !== 'reconnecting';
  switch (s.state) {
    case 'connecting':
      setConn('connecting', s.attempt > 0 ? 'Connecting… (attempt ' + (s.attempt + 1) + ')' : 'Connecting…');
      break;
    case 'online':
      setConn('online', 'Online');
      break;
    case 'reconnecting': {
      const at = Date.now() + s.delay;
      const tick = () => setConn('reconnecting', 'Reconnecting in ' + Math.max(0, Math.ceil((at - Date.now()) / 1000)) + ' s');
      tick();
      countdown = setInterval(tick, 250);
      break;
    }
    case 'closed':
      setConn('closed', 'Offline');
      if (s.error) signOut(closedWhy(s));
      break;
  }
}

// closedWhy says why the client stopped, for the sign-in form.
function closedWhy(s) {
  switch (s.error) {
    case 'token_expired':
      return 'Your token expired. Sign in again with a new one.';
    case 'disconnected':
      return 'The site disconnected this account' + (s.reason && s.reason !== 'disconnected by the site' ? ': ' + s.reason : '') + '.';
    case 'too_many_connections':
      return 'This account has too many open connections. Close another tab or device, then sign in again.';
    default:
      return 'The server refused the sign-in (' + s.error + '). Check the account and the token.';
  }
}

// ---- messages ----

function received(c, m) {
  m.at = Date.now();
  const open = c.key === active && document.visibilityState === 'visible';
  if (!open && m.dir !== 'out') c.unread++;
  add(c, m);
  if (open) markRead(c);
}

// ---- read receipts, unread counts, recalls and edits (server read state) ----

// markRead tells the server (and so the peer) that the open conversation was
// read up to its newest message from the other side: once for a burst of
// messages (READ_AFTER_MS after the first), not once per message.
const READ_AFTER_MS = 300;
let readTimer = null;
let readUnsupported = false; // the server has no read state (unknown_flag)

function markRead(c) {
  if (!client || !c || c.kind === 'all' || readUnsupported || readTimer) return;
  readTimer = setTimeout(() => {
    readTimer = null;
    const open = convs.get(active);
    if (!client || !open || open.kind === 'all' || document.visibilityState !== 'visible') return;
    const last = [...open.messages].reverse().find((m) => m.dir === 'in' && m.id && !m.recalled);
    if (!last || open.readUpTo === last.id) return;
    open.readUpTo = last.id;
    const p = open.kind === 'group' ? client.markReadGroup(open.id, last.id) : client.markRead(open.id, last.id);
    p.catch((e) => {
      if (open.readUpTo === last.id) open.readUpTo = '';
      if (e && e.code === 'unknown_flag') readUnsupported = true;
      else if (e && e.code !== 'closed' && e.code !== 'bad_field') showError(e.code, 'read receipt: ' + e.message);
    });
  }, READ_AFTER_MS);
}

// convOfEvent finds the conversation a read, recall or edit event is about.
function convOfEvent(e) {
  if (e.group) return convs.get(keyOf('group', e.group));
  return convs.get(keyOf('user', e.mine ? e.to : e.from));
}

// onRead: the peer read up to e.id (my messages up to it get the read mark),
// a group's members counted, or I read it on another tab (no unread left).
function onRead(e) {
  const c = convOfEvent(e);
  if (!c) return;
  const at = c.messages.findIndex((m) => m.id === String(e.id));
  if (e.mine) {
    c.readUpTo = String(e.id);
    c.unread = at < 0 ? 0 : c.messages.slice(at + 1).filter((m) => m.dir === 'in').length;
    renderList();
    save();
    return;
  }
  const upTo = at < 0 ? c.messages.length - 1 : at;
  let changed = false;
  for (let i = 0; i <= upTo; i++) {
    const m = c.messages[i];
    if (m.dir !== 'out' || !m.id) continue;
    if (typeof e.count === 'number') {
      if (i === at && m.readBy !== e.count) { m.readBy = e.count; changed = true; }
    } else if (!m.read) {
      m.read = true;
      changed = true;
    }
  }
  if (changed) {
    if (c.key === active) renderConversation(true);
    save();
  }
}

// onUnread: the server's unread counts (after each init): it lists the
// conversations with unread messages, so the others have none (read on
// another tab or device meanwhile); those this tab did not know are added.
function onUnread(u) {
  for (const c of convs.values()) if (c.kind !== 'all') c.unread = 0;
  for (const s of u.conversations) {
    const c = s.group ? conversation('group', s.group) : s.with ? conversation('user', s.with) : null;
    if (!c) continue;
    const open = c.key === active && document.visibilityState === 'visible';
    c.unread = open ? 0 : Number(s.unread) || 0;
    if (s.read) c.readUpTo = String(s.read);
  }
  renderList();
  markRead(convs.get(active));
  save();
}

// listConversations adds the account's conversations the server knows
// ({"flag":"conversations"}) with their newest message, so that a new tab or
// device lists them; once per page load. An older server refuses it: nothing.
function listConversations() {
  const account = me;
  client.conversations().then((l) => {
    if (account !== me) return;
    for (const s of l.conversations) {
      const c = s.group ? conversation('group', s.group) : s.with ? conversation('user', s.with) : null;
      if (c && s.last && s.last.id) mergeHistory(c, [s.last]);
    }
    renderList();
    if (convs.get(active)) renderConversation(true);
    save();
  }, () => {});
}

// onChange applies a recall or an edit to the message it names (the
// sender's own other tabs get it without the conversation: ids are unique).
function onChange(kind, e) {
  let c = convOfEvent(e);
  let m = c && c.messages.find((x) => x.id === String(e.id));
  for (const other of m ? [] : convs.values()) {
    m = other.messages.find((x) => x.id === String(e.id));
    if (m) {
      c = other;
      break;
    }
  }
  if (!m) return;
  if (kind === 'recall') {
    m.recalled = true;
    m.text = '';
  } else {
    m.text = String(e.content ?? '');
    m.edited = true;
  }
  if (c.key === active) renderConversation(true);
  renderList();
  save();
}

let recallOff = false; // the server has no recall (unknown_flag, or history or its window off)

function recallMessage(c, m) {
  if (!client || !m.id) return;
  const p = c.kind === 'group' ? client.recallGroup(c.id, m.id) : client.recall(c.id, m.id);
  p.then(() => onChange('recall', { id: m.id, group: c.kind === 'group' ? c.id : undefined, mine: true, to: c.id }), (e) => {
    showError(e.code || 'error', 'recall: ' + e.message);
    if (e.code === 'unknown_flag' || (e.code === 'unavailable' && /not enabled/.test(e.message))) {
      recallOff = true;
      renderConversation(true);
    }
  });
}

function add(c, m) {
  c.messages.push(m); // the saved copy keeps the newest KEEP
  c.last = m.at;
  if (c.key === active) {
    ui.messages.append(bubble(c, m));
    scrollDown();
  }
  renderList();
  save();
}

function send(text) {
  const c = convs.get(active);
  if (!client || !c || c.kind === 'all') return;
  const rec = c.kind === 'group' ? client.sendGroup(c.id, text) : client.send(c.id, text);
  if (!rec) return; // queue full: an error is shown
  const m = { dir: 'out', from: me, text, at: Date.now(), status: rec.status, rid: rec.id };
  pending.set(rec.id, m); // until the server acknowledges it (or refuses it)
  add(c, m);
}

function onSent(rec) {
  const m = pending.get(rec.id);
  if (!m) return;
  if (!rec.cid) pending.delete(rec.id); // no ack will come
  restatus(m, 'sent');
}

// settle: the server acknowledged a message (pushed or stored) or refused it.
function settle(rec) {
  const m = pending.get(rec.id);
  if (!m || rec.status === 'sent') return; // "not now": it goes again on the next connection
  pending.delete(rec.id);
  if (rec.messageId) {
    m.id = rec.messageId;
    // History may have shown it before the ack came: keep this one.
    for (const c of convs.values()) {
      const i = c.messages.findIndex((x) => x !== m && x.id === m.id);
      if (i >= 0 && c.messages.includes(m)) {
        c.messages.splice(i, 1);
        if (c.key === active) renderConversation(true);
      }
    }
  }
  restatus(m, rec.status);
}

// ---- history: the server's copy of the conversation, paged back ----

// fromHistory turns a message of a history page into one of the page's.
function fromHistory(h) {
  const mine = String(h.from) === me;
  return {
    dir: mine ? 'out' : 'in', from: String(h.from ?? ''), text: h.recalled ? '' : String(h.content ?? ''),
    at: (Number(h.time) || 0) * 1000, id: String(h.id), seq: Number(h.seq) || 0, history: true,
    recalled: !!h.recalled, edited: !!h.edited,
  };
}

// mergeHistory puts the messages of a page (oldest first) that c does not
// have into c.messages, each next to its neighbours of the page that c has;
// where it has none, before the first message with a higher seq (one from
// history) or not older (one received live); returns how many it added or
// changed (recalled or edited since).
function mergeHistory(c, page) {
  const byId = new Map();
  for (const m of c.messages) if (m.id) byId.set(m.id, m);
  let after = null;
  let added = 0;
  page.forEach((h, i) => {
    const have = byId.get(String(h.id));
    if (have) {
      after = have;
      // Recalled or edited since this tab got it.
      if (h.recalled && !have.recalled) {
        have.recalled = true;
        have.text = '';
        added++;
      } else if (h.edited && !h.recalled && have.text !== String(h.content ?? '')) {
        have.text = String(h.content ?? '');
        have.edited = true;
        added++;
      }
      return;
    }
    const m = fromHistory(h);
    let at;
    if (after) {
      at = c.messages.indexOf(after) + 1;
    } else {
      const next = page.slice(i + 1).map((x) => byId.get(String(x.id))).find(Boolean);
      at = next ? c.messages.indexOf(next) : c.messages.findIndex((x) => (x.seq ? x.seq > m.seq : x.at >= m.at));
      if (at < 0) at = c.messages.length;
    }
    c.messages.splice(at, 0, m);
    byId.set(m.id, m);
    after = m;
    added++;
  });
  if (added && c.messages.length) c.last = Math.max(c.last, c.messages[c.messages.length - 1].at);
  return added;
}

// loadOlder asks for c's next older page (the newest the first time) and
// keeps asking while the pages bring nothing this tab did not have (a
// reloaded tab has its recent messages already), up to a few pages. A failed
// conversation is asked again only with retry (opened again).
async function loadOlder(c, retry) {
  if (!client || c.kind === 'all') return;
  const st = older.get(c.key);
  if (st && st.state !== 'idle' && !(retry && st.state === 'failed')) return;
  older.set(c.key, { state: 'loading' });
  renderOlder(c);
  try {
    for (let i = 0; i < 10; i++) {
      const page = c.kind === 'group' ? await client.loadOlderGroup(c.id) : await client.loadOlder(c.id);
      const atTop = c.key === active ? { top: ui.messages.scrollTop, height: ui.messages.scrollHeight } : null;
      const added = mergeHistory(c, page.messages);
      if (added && c.key === active) {
        renderConversation(false);
        ui.messages.scrollTop = ui.messages.scrollHeight - atTop.height + atTop.top; // keep what was in view
      }
      if (added) markRead(c);
      if (!page.more) {
        older.set(c.key, { state: 'done' });
        break;
      }
      older.set(c.key, { state: 'idle' });
      if (added) break;
    }
  } catch (e) {
    older.set(c.key, { state: 'failed', why: e && e.code ? e.code : String(e) });
  }
  if (older.get(c.key).state === 'loading') older.set(c.key, { state: 'idle' });
  renderOlder(c);
  renderList();
  save();
  // A conversation shorter than the view has no scroll bar to pull: go on.
  if (c.key === active && older.get(c.key).state === 'idle' && ui.messages.scrollHeight <= ui.messages.clientHeight + 40) loadOlder(c);
}

function renderOlder(c) {
  const li = ui.messages.querySelector('li.older');
  if (!li || !c || c.key !== active) return;
  const st = older.get(c.key) || { state: 'idle' };
  li.dataset.state = st.state;
  li.textContent = {
    idle: 'Scroll up for older messages',
    loading: 'Loading older messages…',
    done: 'The beginning of the conversation',
    failed: 'Older messages cannot be loaded' + (st.why ? ' (' + st.why + ')' : ''),
  }[st.state];
}

function restatus(m, status) {
  m.status = status;
  const li = ui.messages.querySelector('li[data-rid="' + Number(m.rid) + '"]');
  if (li) li.replaceWith(bubble(convs.get(active), m));
  save();
}

function onOnline(a) {
  const c = convs.get(keyOf('user', a.to));
  if (!c) return;
  c.online = a.online;
  renderList();
  if (c.key === active) renderPresence(c);
}

function pollPresence() {
  const c = convs.get(active);
  if (client && c && c.kind === 'user') client.online(c.id);
}

// ---- rendering ----

function bubble(c, m) {
  const li = el('li', 'msg ' + m.dir);
  li.dataset.status = m.status || '';
  if (m.rid) li.dataset.rid = String(m.rid);
  if (m.id) li.dataset.id = m.id;
  if (m.history) li.dataset.history = 'true';
  if (m.read) li.dataset.read = 'true';
  if (typeof m.readBy === 'number') li.dataset.readBy = String(m.readBy);
  if (m.recalled) {
    li.dataset.recalled = 'true';
    li.classList.add('recalled');
    if (m.dir === 'announce' || (c.kind === 'group' && m.dir === 'in')) li.append(el('span', 'who', m.from));
    li.append(el('span', 'body', m.dir === 'out' ? 'You recalled this message' : 'This message was recalled'));
    li.append(el('span', 'meta', timeOf(m.at)));
    return li;
  }
  if (m.offline) li.dataset.offline = 'true';
  if (m.dir === 'announce' || (c.kind === 'group' && m.dir === 'in')) li.append(el('span', 'who', m.from));
  li.append(el('span', 'body', m.text));
  let meta = timeOf(m.at);
  if (m.status === 'queued') meta += ' · waiting for the connection';
  if (m.status === 'failed') meta += ' · not sent';
  if (m.status === 'pushed') meta += ' · delivered';
  if (m.status === 'stored') meta += ' · saved for when they connect';
  if (m.read) meta += ' · read';
  if (typeof m.readBy === 'number') meta += ' · read by ' + m.readBy;
  if (m.edited) meta += ' · edited';
  if (m.offline) meta += ' · received while you were away';
  const line = el('span', 'meta', meta);
  if (m.dir === 'out' && m.id && c.kind !== 'all' && !recallOff) {
    const b = el('button', 'link recall', 'Recall');
    b.type = 'button';
    b.addEventListener('click', () => recallMessage(c, m));
    line.append(' ', b);
  }
  li.append(line);
  return li;
}

function renderList() {
  const list = [...convs.values()].sort((a, b) => b.last - a.last);
  const items = list.map((c) => {
    const b = el('button');
    b.type = 'button';
    b.dataset.key = c.key;
    if (c.key === active) b.setAttribute('aria-current', 'true');
    const dot = el('span', 'dot');
    dot.dataset.kind = c.kind;
    if (c.kind === 'user' && c.online !== null) dot.dataset.online = String(c.online);
    const last = c.messages[c.messages.length - 1];
    b.append(dot, el('span', 'title', titleOf(c)), el('span', 'preview', last ? (last.dir === 'out' ? 'You: ' : '') + last.text : ''));
    if (c.unread > 0) b.append(el('span', 'badge', c.unread));
    b.addEventListener('click', () => openConversation(c.key));
    const li = el('li');
    li.append(b);
    return li;
  });
  ui.convs.replaceChildren(...items);
  ui.convsEmpty.hidden = items.length > 0;
  ui.known.replaceChildren(...list.filter((c) => c.kind !== 'all').map((c) => {
    const o = el('option');
    o.value = c.id;
    return o;
  }));
  const unread = list.reduce((n, c) => n + c.unread, 0);
  document.title = unread > 0 ? '(' + unread + ') Chat' : 'Chat';
}

function renderPresence(c) {
  if (!c || c.kind !== 'user') {
    ui.presence.textContent = c && c.kind === 'group' ? 'group' : '';
    ui.presence.dataset.online = '';
    return;
  }
  ui.presence.dataset.online = c.online === null ? '' : String(c.online);
  ui.presence.textContent = c.online === null ? '' : c.online ? 'online' : 'offline';
}

// renderConversation draws the open conversation; scrolled to the newest
// unless keep (the caller restores the position).
function renderConversation(keep) {
  const c = convs.get(active);
  ui.convEmpty.hidden = !!c;
  ui.composer.hidden = !c || c.kind === 'all';
  ui.convTitle.textContent = c ? titleOf(c) : '';
  renderPresence(c);
  const items = c ? c.messages.map((m) => bubble(c, m)) : [];
  if (c && c.kind !== 'all') items.unshift(el('li', 'older'));
  ui.messages.replaceChildren(...items);
  renderOlder(c);
  if (!keep) scrollDown();
}

function render() {
  renderList();
  renderConversation();
}

function scrollDown() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function openConversation(key) {
  active = key;
  const c = convs.get(key);
  if (c) c.unread = 0;
  ui.chat.classList.add('show-conv');
  render();
  pollPresence();
  if (c) loadOlder(c, true);
  markRead(c);
  save();
  if (!ui.composer.hidden && window.matchMedia('(min-width: 701px)').matches) ui.text.focus();
}

function showNotice(from, text) {
  ui.noticeFrom.textContent = from ? 'from ' + from : '';
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
}

function showError(code, message) {
  const li = el('li');
  li.dataset.code = code;
  const close = el('button', 'link', '×');
  close.type = 'button';
  close.setAttribute('aria-label', 'Dismiss');
  close.addEventListener('click', () => li.remove());
  li.append(el('span', 'code', code), el('span', 'text', message), close);
  ui.errors.append(li);
  while (ui.errors.children.length > 4) ui.errors.firstElementChild.remove();
  setTimeout(() => li.remove(), ERROR_SHOWN_MS);
}

// ---- this tab's copy of the conversations (survives a reload, not the tab) ----

function save() {
  clearTimeout(saveTimer);
  const account = me;
  saveTimer = setTimeout(() => {
    if (!account || account !== me) return;
    const data = [...convs.values()].map((c) => ({
      kind: c.kind, id: c.id, unread: c.unread, last: c.last,
      messages: c.messages.slice(-KEEP).map((m) => ({
        dir: m.dir, from: m.from, text: m.text, at: m.at, status: m.status, offline: m.offline, id: m.id, seq: m.seq, history: m.history,
        read: m.read, readBy: m.readBy, recalled: m.recalled, edited: m.edited,
      })),
    }));
    try {
      sessionStorage.setItem(historyKey(account), JSON.stringify({ active, convs: data }));
    } catch (e) { /* full or disabled: keep going without */ }
  }, 300);
}

function restore() {
  convs = new Map();
  active = null;
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(historyKey(me)) || 'null');
  } catch (e) { /* ignore a broken copy */ }
  if (!saved || !Array.isArray(saved.convs)) return;
  for (const s of saved.convs) {
    if (!s || !['user', 'group', 'all'].includes(s.kind)) continue;
    const c = conversation(s.kind, s.id);
    c.unread = Number(s.unread) || 0;
    c.last = Number(s.last) || 0;
    c.messages = (Array.isArray(s.messages) ? s.messages : []).map((m) => ({
      dir: ['in', 'out', 'announce'].includes(m.dir) ? m.dir : 'in',
      from: String(m.from ?? ''), text: String(m.text ?? ''), at: Number(m.at) || 0,
      // A message still queued when the tab reloaded was never written.
      status: m.status === 'queued' ? 'failed' : m.status, offline: !!m.offline,
      id: typeof m.id === 'string' && m.id ? m.id : undefined, seq: Number(m.seq) || undefined, history: !!m.history,
      read: !!m.read, readBy: typeof m.readBy === 'number' ? m.readBy : undefined, recalled: !!m.recalled, edited: !!m.edited,
    }));
  }
  if (typeof saved.active === 'string' && convs.has(saved.active)) active = saved.active;
}

// ---- wiring ----

ui.loginForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const account = ui.account.value.trim();
  if (!account) return;
  start(account, ui.token.value.trim());
  ui.token.value = '';
});

ui.signout.addEventListener('click', () => signOut(''));
ui.retry.addEventListener('click', () => client && client.reconnectNow());
window.addEventListener('online', () => client && client.reconnectNow());
ui.noticeClose.addEventListener('click', () => { ui.notice.hidden = true; });

ui.openForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = ui.openName.value.trim();
  if (!id) return;
  const kind = ui.openKind.value === 'group' ? 'group' : 'user';
  conversation(kind, id);
  ui.openName.value = '';
  openConversation(keyOf(kind, id));
});

ui.back.addEventListener('click', () => {
  active = null;
  ui.chat.classList.remove('show-conv');
  render();
  save();
});

ui.composer.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = ui.text.value;
  if (!text.trim()) return;
  send(text);
  ui.text.value = '';
  ui.text.focus();
});

ui.text.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    ui.composer.requestSubmit();
  }
});

// Scrolled (nearly) to the top: the next older page.
ui.messages.addEventListener('scroll', () => {
  const c = convs.get(active);
  if (c && ui.messages.scrollTop < 60) loadOlder(c);
});

document.addEventListener('visibilitychange', () => {
  const c = convs.get(active);
  if (document.visibilityState === 'visible' && c && c.unread) {
    c.unread = 0;
    renderList();
    save();
  }
  markRead(c);
});

setInterval(pollPresence, ONLINE_POLL_MS);

(function boot() {
  let session = null;
  try {
    ui.account.value = localStorage.getItem(LAST_ACCOUNT) || '';
    session = JSON.parse(sessionStorage.getItem(SESSION) || 'null');
  } catch (e) { /* storage disabled */ }
  if (session && typeof session.account === 'string' && session.account) {
    start(session.account, typeof session.token === 'string' ? session.token : '');
  } else {
    ui.account.focus();
  }
})();
