// The client library's own logic (web/static/chat.umd.js) on fake sockets,
// with Node's test runner: receiver acks, seen ids kept in a storage across
// restarts, history paging. Run by e2e/library_test.go (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ChatClient = require('../static/chat.umd.js');

// fakeServer hands out fake sockets: tests open them, deliver frames and read
// what the client wrote. Pings are answered at once, so init completes.
function fakeServer() {
  const sockets = [];
  const transport = () => {
    const s = {
      sent: [], readyState: 0, closed: false,
      send(d) {
        const f = JSON.parse(d);
        this.sent.push(f);
        if (f.flag === 'ping' && this.autoPong) this.deliver({ flag: 'pong' });
      },
      close() { this.readyState = 3; this.closed = true; },
      open() { this.readyState = 1; this.onopen({}); },
      deliver(f) { this.onmessage({ data: JSON.stringify(f) }); },
      die() { this.readyState = 3; this.onclose({ code: 1006, reason: '' }); },
      frames(flag) { return this.sent.filter((f) => f.flag === flag); },
      autoPong: true,
    };
    sockets.push(s);
    return s;
  };
  return { sockets, transport, last: () => sockets[sockets.length - 1] };
}

// memoryStorage is a Web Storage-shaped map.
function memoryStorage() {
  const m = new Map();
  return {
    map: m,
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
  };
}

function client(server, opts = {}) {
  const c = new ChatClient(Object.assign({
    url: 'ws://fake/', account: 'bob', transport: server.transport,
    heartbeatMs: 3600000, reconnectMinMs: 1, reconnectMaxMs: 1, storage: null,
  }, opts));
  const got = [];
  c.on('message', (m) => got.push(m));
  c.on('group', (m) => got.push(m));
  return { c, got };
}

// online connects and completes the init on a new socket.
function online(server, c) {
  if (c.state === 'closed') c.connect();
  const s = server.last();
  s.open();
  assert.equal(c.state, 'online');
  return s;
}

// redial waits for the client's next socket after a drop (the backoff is 1 ms).
async function redial(server, n) {
  for (let i = 0; i < 200 && server.sockets.length < n; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(server.sockets.length, n, 'the client did not dial again');
  return server.last();
}

test('receiver acks are on by default: init asks for them and the last id received is acknowledged', () => {
  const server = fakeServer();
  const { c, got } = client(server, { ackDelayMs: 0 });
  const s = online(server, c);
  assert.equal(s.sent[0].flag, 'init');
  assert.equal(s.sent[0].ack, true);
  assert.equal(s.sent[0].recall, true, 'init does not take recall and edit frames');
  s.deliver({ from: 'alice', content: 'one', id: 'a1' });
  s.deliver({ from: 'alice', content: 'two', id: 'a2' });
  assert.deepEqual(s.frames('ack').map((f) => f.id), ['a1', 'a2']);
  assert.deepEqual(got.map((m) => m.content), ['one', 'two']);
  c.close();
});

test('acks wait for ackDelayMs but go at once when many messages wait', () => {
  const server = fakeServer();
  const { c } = client(server, { ackDelayMs: 3600000 });
  const s = online(server, c);
  for (let i = 1; i <= 63; i++) s.deliver({ from: 'alice', content: 'm' + i, id: 'id' + i });
  assert.equal(s.frames('ack').length, 0, 'acked before the delay or the count');
  s.deliver({ from: 'alice', content: 'm64', id: 'id64' });
  assert.deepEqual(s.frames('ack').map((f) => f.id), ['id64']);
  s.deliver({ from: 'alice', content: 'm65', id: 'id65' });
  c.close(); // close acknowledges what came
  assert.deepEqual(s.frames('ack').map((f) => f.id), ['id64', 'id65']);
});

test('ack: false keeps the legacy init and sends no ack', () => {
  const server = fakeServer();
  const { c, got } = client(server, { ack: false, ackDelayMs: 0 });
  const s = online(server, c);
  assert.equal(s.sent[0].ack, undefined);
  const r = fakeServer();
  const noRecall = client(r, { recall: false });
  assert.equal(online(r, noRecall.c).sent[0].recall, undefined);
  noRecall.c.close();
  s.deliver({ from: 'alice', content: 'one', id: 'a1' });
  assert.equal(s.frames('ack').length, 0);
  assert.equal(got.length, 1);
  c.close();
});

test('a message re-delivered after a drop is dropped, and acknowledged on the new connection', async () => {
  const server = fakeServer();
  const { c, got } = client(server, { ackDelayMs: 3600000 });
  const s0 = online(server, c);
  s0.deliver({ from: 'alice', content: 'one', id: 'a1' });
  s0.deliver({ from: 'alice', content: 'two', id: 'a2' });
  s0.die(); // before the ack: the server stores both again
  const s1 = await redial(server, 2);
  s1.autoPong = false;
  s1.open();
  s1.deliver({ from: 'alice', content: 'one', id: 'a1' });
  s1.deliver({ from: 'alice', content: 'two', id: 'a2' });
  s1.deliver({ from: 'alice', content: 'three', id: 'a3' });
  s1.deliver({ flag: 'pong' });
  assert.deepEqual(got.map((m) => m.content), ['one', 'two', 'three']);
  assert.equal(got[2].offline, true);
  assert.equal(s0.frames('ack').length, 0);
  c.close();
  assert.deepEqual(s1.frames('ack').map((f) => f.id), ['a3'], 'the new connection must acknowledge up to the last');
});

test('seen ids survive a restart through the storage; another conversation with the same id is not a duplicate', () => {
  const storage = memoryStorage();
  const server = fakeServer();
  const first = client(server, { storage, ackDelayMs: 0 });
  const s0 = online(server, first.c);
  s0.deliver({ from: 'alice', content: 'one', id: 'x1' });
  s0.deliver({ from: 'carol', content: 'hey', id: 'x2', group: 'team' });
  first.c.close();

  const second = client(server, { storage, ackDelayMs: 0 });
  const s1 = online(server, second.c);
  s1.deliver({ from: 'alice', content: 'one', id: 'x1' });                   // stored before the restart
  s1.deliver({ from: 'carol', content: 'hey', id: 'x2', group: 'team' });    // likewise
  s1.deliver({ from: 'alice', content: 'new', id: 'x3' });
  s1.deliver({ from: 'dave', content: 'same id, other conversation', id: 'x1' });
  assert.deepEqual(second.got.map((m) => m.content), ['new', 'same id, other conversation']);
  assert.deepEqual(s1.frames('ack').map((f) => f.id), ['x1', 'x2', 'x3', 'x1'], 'duplicates must be acknowledged too');
  second.c.close();

  // Another account on the same storage keeps its own ids.
  const other = client(server, { storage, account: 'erin', ackDelayMs: 0 });
  const s2 = online(server, other.c);
  s2.deliver({ from: 'alice', content: 'one', id: 'x1' });
  assert.equal(other.got.length, 1);
  other.c.close();
});

test('the storage is bounded: seenIds per conversation, seenConversations conversations', () => {
  const storage = memoryStorage();
  const server = fakeServer();
  const { c } = client(server, { storage, seenIds: 3, seenConversations: 2, ackDelayMs: 0 });
  const s = online(server, c);
  for (let i = 1; i <= 5; i++) s.deliver({ from: 'alice', content: 'm', id: 'a' + i });
  s.deliver({ from: 'carol', content: 'm', id: 'c1' });
  s.deliver({ from: 'dave', content: 'm', id: 'd1' });
  c.close();
  const keys = [...storage.map.keys()].sort();
  assert.deepEqual(keys, ['chatclient.seen.bob', 'chatclient.seen.bob.u%3Acarol', 'chatclient.seen.bob.u%3Adave']);
  assert.deepEqual(JSON.parse(storage.getItem('chatclient.seen.bob')), ['u:carol', 'u:dave']);

  const again = client(server, { storage, seenIds: 3, seenConversations: 2 });
  const s1 = online(server, again.c);
  s1.deliver({ from: 'alice', content: 'dropped from the storage', id: 'a5' });
  s1.deliver({ from: 'dave', content: 'seen', id: 'd1' });
  assert.deepEqual(again.got.map((m) => m.content), ['dropped from the storage']);
  again.c.close();
});

test('the per-conversation list keeps the newest ids', () => {
  const storage = memoryStorage();
  const server = fakeServer();
  const { c } = client(server, { storage, seenIds: 3 });
  const s = online(server, c);
  for (let i = 1; i <= 5; i++) s.deliver({ from: 'alice', content: 'm', id: 'a' + i });
  c.close();
  assert.deepEqual(JSON.parse(storage.getItem('chatclient.seen.bob.u%3Aalice')), ['a3', 'a4', 'a5']);
});

test('two clients sharing a storage (two tabs) keep each other\'s ids, and each shows what it gets live', () => {
  const storage = memoryStorage();
  const server = fakeServer();
  const tab1 = client(server, { storage });
  const s1 = online(server, tab1.c);
  const tab2 = client(server, { storage });
  const s2 = online(server, tab2.c);
  s1.deliver({ from: 'alice', content: 'to both', id: 'b1' });
  s2.deliver({ from: 'alice', content: 'to both', id: 'b1' });
  s2.deliver({ from: 'alice', content: 'second', id: 'b2' });
  s1.deliver({ from: 'alice', content: 'second', id: 'b2' });
  assert.equal(tab1.got.length, 2);
  assert.equal(tab2.got.length, 2);
  assert.deepEqual(JSON.parse(storage.getItem('chatclient.seen.bob.u%3Aalice')), ['b1', 'b2']);
  tab1.c.close();
  tab2.c.close();
});

test('a storage that throws is ignored: the ids stay in memory', () => {
  const server = fakeServer();
  const broken = { getItem() { throw new Error('denied'); }, setItem() { throw new Error('full'); }, removeItem() {} };
  const { c, got } = client(server, { storage: broken });
  const s = online(server, c);
  s.deliver({ from: 'alice', content: 'one', id: 'z1' });
  s.deliver({ from: 'alice', content: 'one', id: 'z1' });
  assert.equal(got.length, 1);
  c.close();
});

test('miniProgramStorage maps getItem/setItem/removeItem onto getStorageSync/setStorageSync/removeStorageSync', () => {
  const kept = new Map();
  const uni = {
    getStorageSync: (k) => (kept.has(k) ? kept.get(k) : ''), // wx and uni give "" for a missing key
    setStorageSync: (k, v) => kept.set(k, v),
    removeStorageSync: (k) => kept.delete(k),
  };
  const storage = ChatClient.miniProgramStorage(uni);
  assert.equal(storage.getItem('nothing'), null);
  const server = fakeServer();
  const first = client(server, { storage });
  online(server, first.c).deliver({ from: 'alice', content: 'one', id: 'w1' });
  first.c.close();
  assert.deepEqual(JSON.parse(kept.get('chatclient.seen.bob.u%3Aalice')), ['w1']);
  const second = client(server, { storage });
  online(server, second.c).deliver({ from: 'alice', content: 'one', id: 'w1' });
  assert.equal(second.got.length, 0, 'the app restarted and got the same message again');
  second.c.close();
});

test('loadOlder pages back from the newest page, with before = the oldest id so far', async () => {
  const server = fakeServer();
  const { c } = client(server);
  const s = online(server, c);
  const p1 = c.loadOlder('alice', { limit: 2 });
  const q1 = s.frames('history')[0];
  assert.equal(q1.with, 'alice');
  assert.equal(q1.before, undefined);
  assert.equal(q1.limit, 2);
  assert.ok(q1.cid);
  assert.equal(c.loadOlder('alice'), p1, 'a second call while the first is on its way shares it');
  s.deliver({ flag: 'history', with: 'alice', messages: [{ id: 'h3', content: '3' }, { id: 'h4', content: '4' }], more: true });
  assert.deepEqual((await p1).messages.map((m) => m.id), ['h3', 'h4']);
  assert.equal(c.hasOlder('alice'), true);

  const p2 = c.loadOlder('alice', { limit: 2 });
  assert.equal(s.frames('history')[1].before, 'h3');
  s.deliver({ flag: 'history', with: 'alice', messages: [{ id: 'h2', content: '2' }], more: false });
  assert.equal((await p2).more, false);
  assert.equal(c.hasOlder('alice'), false);
  assert.deepEqual(await c.loadOlder('alice'), { messages: [], more: false });
  assert.equal(s.frames('history').length, 2, 'nothing older: no frame');

  const g = c.loadOlderGroup('team');
  assert.equal(s.frames('history')[2].group, 'team');
  s.deliver({ flag: 'history', group: 'team', messages: [], more: false });
  assert.equal((await g).messages.length, 0);
  c.close();
});

test('a history request refused by the server is rejected with its code; others are not disturbed', async () => {
  const server = fakeServer();
  const { c } = client(server);
  const errors = [];
  c.on('error', (e) => errors.push(e));
  const s = online(server, c);
  const secret = c.loadOlderGroup('secret');
  const mine = c.loadOlder('alice');
  const [qs, qa] = s.frames('history');
  s.deliver({ flag: 'error', code: 'forbidden', message: 'not a member', cid: qs.cid });
  await assert.rejects(secret, (e) => e.code === 'forbidden');
  s.deliver({ flag: 'history', with: 'alice', messages: [{ id: 'h1' }], more: false });
  assert.equal((await mine).messages.length, 1);
  assert.equal(errors.length, 0, 'a refused history request is the promise\'s, not an error event');
  assert.equal(qa.with, 'alice');
  c.close();
});

test('history asked while offline goes once online; one unanswered when the link dies goes again', async () => {
  const server = fakeServer();
  const { c } = client(server);
  const p = c.loadOlder('alice');
  const s0 = online(server, c);
  assert.equal(s0.frames('history').length, 1);
  s0.die();
  const s1 = await redial(server, 2);
  s1.open();
  const again = s1.frames('history');
  assert.equal(again.length, 1);
  assert.equal(again[0].with, 'alice');
  s1.deliver({ flag: 'history', with: 'alice', messages: [{ id: 'h1' }], more: true });
  assert.equal((await p).messages[0].id, 'h1');
  const q = c.loadOlder('alice');
  c.close();
  await assert.rejects(q, (e) => e.code === 'closed');
});

// The read state, recalls and edits: written against the frames of the
// README's Protocol section ({"flag":"read"|"unread"|"conversations"|"recall"|"edit"}).

test('after every init the client asks for the unread counts (which subscribes it to receipts) and reports them', async () => {
  const server = fakeServer();
  const { c } = client(server);
  const counts = [];
  c.on('unread', (u) => counts.push(u));
  const errors = [];
  c.on('error', (e) => errors.push(e));
  const s = online(server, c);
  const [q] = s.frames('unread');
  assert.ok(q && q.cid, 'no unread frame after init');
  s.deliver({ flag: 'unread', conversations: [{ with: 'alice', unread: 3, read: 'a1' }, { group: 'team', unread: 1 }], total: 4 });
  assert.equal(counts.length, 1);
  assert.equal(counts[0].total, 4);
  assert.deepEqual(counts[0].conversations.map((x) => (x.with || x.group) + '=' + x.unread), ['alice=3', 'team=1']);
  c.close();

  // A server without read state refuses the frame: no error event.
  const old = fakeServer();
  const o = client(old);
  o.c.on('error', (e) => errors.push(e));
  const s2 = online(old, o.c);
  s2.deliver({ flag: 'error', code: 'unknown_flag', message: 'unknown flag "unread"', cid: s2.frames('unread')[0].cid });
  await new Promise((r) => setImmediate(r));
  assert.equal(errors.length, 0, 'a refused unread frame surfaced as an error event');
  o.c.close();

  const quiet = fakeServer();
  const n = client(quiet, { readState: false });
  assert.equal(online(quiet, n.c).frames('unread').length, 0);
  n.c.close();
});

test('markRead sends a read frame once per id and resolves on the server\'s ok; a refusal rejects and allows a retry', async () => {
  const server = fakeServer();
  const { c } = client(server, { readState: false });
  const s = online(server, c);
  const p = c.markRead('alice', 'a2');
  const [r] = s.frames('read');
  assert.deepEqual([r.to, r.id, typeof r.cid], ['alice', 'a2', 'string']);
  s.deliver({ flag: 'read', to: 'alice', id: 'a2', ok: true });
  assert.deepEqual(await p, { id: 'a2' });
  await c.markRead('alice', 'a2');
  assert.equal(s.frames('read').length, 1, 'the same id marked twice was sent twice');

  const g = c.markReadGroup('team', 'g9');
  const rg = s.frames('read')[1];
  assert.deepEqual([rg.group, rg.id, rg.to], ['team', 'g9', undefined]);
  s.deliver({ flag: 'error', code: 'bad_field', message: 'the cursor is already past', cid: rg.cid });
  await assert.rejects(g, (e) => e.code === 'bad_field');
  c.markReadGroup('team', 'g9').catch(() => {}); // rejected by close() below
  assert.equal(s.frames('read').length, 3, 'a refused read could not be tried again');
  c.close();
});

test('receipts arrive as read events: the peer read mine, I read on another connection, a group count', () => {
  const server = fakeServer();
  const { c } = client(server, { readState: false });
  const reads = [];
  c.on('read', (e) => reads.push(e));
  const s = online(server, c);
  s.deliver({ flag: 'read', from: 'alice', to: 'bob', id: 'b7' });
  s.deliver({ flag: 'read', from: 'bob', to: 'alice', id: 'a3' });
  s.deliver({ flag: 'read', group: 'team', id: 'b8', count: 2 });
  assert.deepEqual(reads.map((e) => [e.from, e.to, e.group, e.id, e.mine, e.count]), [
    ['alice', 'bob', undefined, 'b7', false, undefined],
    ['bob', 'alice', undefined, 'a3', true, undefined],
    [undefined, undefined, 'team', 'b8', false, 2],
  ]);
  c.close();
});

test('recall and edit send their frames and resolve on the answer; others\' arrive as events', async () => {
  const server = fakeServer();
  const { c } = client(server, { readState: false });
  const events = [];
  c.on('recall', (e) => events.push(['recall', e.from, e.group || e.to, e.id, e.mine]));
  c.on('edit', (e) => events.push(['edit', e.from, e.group || e.to, e.id, e.content]));
  const s = online(server, c);
  const p = c.recall('alice', 'b1');
  const [r] = s.frames('recall');
  assert.deepEqual([r.from, r.to, r.id], ['bob', 'alice', 'b1']);
  s.deliver({ flag: 'recall', ok: true, id: 'b1', cid: r.cid });
  assert.deepEqual(await p, { id: 'b1' });
  const e = c.editGroup('team', 'b2', 'fixed');
  const [ed] = s.frames('edit');
  assert.deepEqual([ed.group, ed.id, ed.content], ['team', 'b2', 'fixed']);
  s.deliver({ flag: 'error', code: 'forbidden', message: 'not yours', cid: ed.cid });
  await assert.rejects(e, (x) => x.code === 'forbidden');
  s.deliver({ flag: 'recall', from: 'alice', id: 'a5' });
  s.deliver({ flag: 'edit', from: 'carol', group: 'team', id: 'c1', content: 'new text', edited: 1700000000 });
  assert.deepEqual(events, [['recall', 'alice', undefined, 'a5', false], ['edit', 'carol', 'team', 'c1', 'new text']]);
  assert.throws(() => c.recall('alice'), TypeError);
  c.close();
});

test('sync asks what conversations got since the seqs given', async () => {
  const server = fakeServer();
  const { c } = client(server, { readState: false });
  const s = online(server, c);
  const p = c.sync({ alice: 41, 'g:team': 7 }, { limit: 20 });
  const [q] = s.frames('sync');
  assert.deepEqual([q.since, q.limit], [{ alice: 41, 'g:team': 7 }, 20]);
  s.deliver({ flag: 'sync', conversations: [{ with: 'alice', since: 41, messages: [{ id: 'a9', seq: 42 }], more: false }] });
  assert.equal((await p).conversations[0].messages[0].seq, 42);
  c.close();
});
