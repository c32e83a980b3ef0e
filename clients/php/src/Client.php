<?php

declare(strict_types=1);

namespace ChatServer\SideApi;

use ChatServer\SideApi\Exception\ApiException;
use ChatServer\SideApi\Exception\ConnectException;
use ChatServer\SideApi\Exception\ServerException;
use ChatServer\SideApi\Exception\SideApiException;
use ChatServer\SideApi\Exception\TransportException;
use ChatServer\SideApi\Http\CurlTransport;
use ChatServer\SideApi\Http\Response;
use ChatServer\SideApi\Http\Transport;
use ChatServer\SideApi\Result\Disconnected;
use ChatServer\SideApi\Result\GroupPush;

/**
 * The chat server's side API, for the site's PHP code.
 *
 *     $chat = new Client('http://127.0.0.1:9053', getenv('CHAT_API_SECRET'));
 *     $chat->sendToUid('bob', 'Your order shipped');
 *
 * Messages go to accounts, not to connection ids: a push reaches every
 * connection of the account on every node, or is stored for its next init.
 *
 * Errors: the server's refusals throw an ApiException subclass carrying the
 * server's code (getErrorCode()); network failures throw a TransportException
 * (ConnectException: nothing was sent; TimeoutException: it may have been).
 *
 * Retries (on by default, $retries extra attempts with exponential back-off
 * from $backoff seconds, capped at $maxBackoff, with jitter): calls that may be
 * repeated safely (everything but the three pushes) are retried after any
 * network failure and after a 503. The pushes are retried only when the
 * message surely was not taken: the connection was refused before anything
 * was sent, or the server answered 503 "busy" (not sent, try again). They are
 * not retried after a timeout, nor after 503 "unavailable", which for a push
 * can mean "queued, not yet stored, will be delivered": a second attempt could
 * deliver the message twice.
 */
final class Client
{
    /** The server's limit of accounts per /api/online or /api/unread call. */
    public const MAX_ACCOUNTS_PER_CALL = 1000;

    /** The longest query string of one call: the server's header limit is 16 KiB. */
    private const MAX_QUERY_BYTES = 8192;

    private readonly string $baseUrl;
    private readonly Transport $transport;

    /**
     * @param string         $baseUrl        the side API, api.addr: "http://127.0.0.1:9053"
     * @param string         $secret         api.secret
     * @param Transport|null $transport      null: CurlTransport (ext-curl); or a Psr18Transport around the site's client
     * @param string         $from           the sender of sendToUid/sendToGroup/sendToAll when none is given
     * @param float          $timeout        seconds for a whole call (a push waits for the database commit)
     * @param float          $connectTimeout seconds to open the connection
     * @param int            $retries        extra attempts after a retryable failure (0: none)
     * @param float          $backoff        seconds before the first retry; doubled each time
     * @param float          $maxBackoff     the longest wait between two attempts
     */
    public function __construct(
        string $baseUrl,
        private readonly string $secret,
        ?Transport $transport = null,
        private readonly string $from = 'system',
        private readonly float $timeout = 10.0,
        private readonly float $connectTimeout = 2.0,
        private readonly int $retries = 2,
        private readonly float $backoff = 0.1,
        private readonly float $maxBackoff = 2.0,
    ) {
        if (!\preg_match('~^https?://[^/]+~', $baseUrl)) {
            throw new \InvalidArgumentException("baseUrl must be http(s)://host:port, got \"$baseUrl\"");
        }
        if ($secret === '') {
            throw new \InvalidArgumentException('secret must be api.secret, not empty');
        }
        if ($timeout <= 0 || $connectTimeout <= 0 || $retries < 0 || $backoff < 0 || $maxBackoff < 0) {
            throw new \InvalidArgumentException('timeouts must be positive, retries and back-off not negative');
        }
        $this->baseUrl = \rtrim($baseUrl, '/');
        $this->transport = $transport ?? new CurlTransport();
    }

    /**
     * Sends $content from $from to the account $to: pushed to each of its live
     * connections, on any node, or stored for its next init.
     *
     * Wire: POST /api/push {"from","to","content"} -> {"status":"pushed"|"stored"}.
     *
     * Retried only when the message surely was not taken: connection refused
     * (nothing sent) or 503 busy. Not retried after a timeout or a 503
     * unavailable: the server may have queued it, and a resend is a second
     * message (UnavailableException: "queued, not yet stored" is delivered later).
     *
     * @return string "pushed" or "stored"
     * @throws SideApiException
     */
    public function push(string $from, string $to, string $content): string
    {
        $out = $this->call('POST', '/api/push', ['from' => $from, 'to' => $to, 'content' => $content], false);
        return (string) ($out['status'] ?? '');
    }

    /**
     * Gateway::sendToUid($uid, $message): push() from the client's default sender.
     *
     * Wire: POST /api/push {"from","to":$uid,"content"} -> {"status":"pushed"|"stored"}.
     * Retries as push().
     *
     * @return string "pushed" or "stored"
     * @throws SideApiException
     */
    public function sendToUid(string $uid, string $content, ?string $from = null): string
    {
        return $this->push($from ?? $this->from, $uid, $content);
    }

    /**
     * Gateway::sendToGroup($group, $message): to every member of the group,
     * pushed to those connected and stored for the others. The sender need not
     * be a member.
     *
     * Wire: POST /api/group/{group}/push {"from","content"} -> {"members","pushed","stored"};
     * 404 not_found when the group has no members. Retries as push().
     *
     * @throws SideApiException
     */
    public function sendToGroup(string $group, string $content, ?string $from = null): GroupPush
    {
        $out = $this->call('POST', '/api/group/' . self::group($group) . '/push', ['from' => $from ?? $this->from, 'content' => $content], false);
        return new GroupPush((int) ($out['members'] ?? 0), (int) ($out['pushed'] ?? 0), (int) ($out['stored'] ?? 0));
    }

    /**
     * Gateway::sendToAll($message): an announcement to every connection on
     * the site, every node; nothing is stored for those offline.
     *
     * Wire: POST /api/broadcast {"from","content"} -> {"connections":n}. Retries as push().
     *
     * @return int the connections it was written to
     * @throws SideApiException
     */
    public function sendToAll(string $content, ?string $from = null): int
    {
        $out = $this->call('POST', '/api/broadcast', ['from' => $from ?? $this->from, 'content' => $content], false);
        return (int) ($out['connections'] ?? 0);
    }

    /**
     * Gateway::isUidOnline($uid): has the account a connection on any node?
     *
     * Wire: GET /api/online?account={uid} -> {"online":{uid:bool}}. Retried.
     *
     * @throws SideApiException
     */
    public function isUidOnline(string $uid): bool
    {
        return $this->online([$uid])[$uid] ?? false;
    }

    /**
     * Which of these accounts are connected, on any node, in as few calls as
     * the server's limits (1000 accounts, a 16 KiB header per call) allow.
     *
     * Wire: GET /api/online?account=a&account=b -> {"online":{"a":true,"b":false}}. Retried.
     *
     * @param list<string> $accounts
     * @return array<string,bool> account => online
     * @throws SideApiException
     */
    public function online(array $accounts): array
    {
        return $this->perAccount('/api/online', 'online', $accounts);
    }

    /**
     * Unread (stored, not yet delivered) messages of one account, per sender.
     *
     * Wire: GET /api/unread?account={account} -> {"unread":{account:{sender:n}}}. Retried.
     *
     * @return array<string,int> sender => count; empty when nothing waits
     * @throws SideApiException
     */
    public function unread(string $account): array
    {
        return $this->unreadMany([$account])[$account] ?? [];
    }

    /**
     * unread() for several accounts at once (1000 per call).
     *
     * Wire: GET /api/unread?account=a&account=b -> {"unread":{"a":{sender:n},"b":{}}}. Retried.
     *
     * @param list<string> $accounts
     * @return array<string,array<string,int>> account => sender => count
     * @throws SideApiException
     */
    public function unreadMany(array $accounts): array
    {
        return $this->perAccount('/api/unread', 'unread', $accounts);
    }

    /**
     * A page of a conversation's history as $account sees it: with one other
     * account ($with), or in a group ($group, $account must be a member), the
     * messages before $before (a message id; null: the newest), oldest first.
     * Needs history.enabled on the server (503 unavailable otherwise).
     *
     * Wire: GET /api/history?account=&with=|group=&before=&limit= ->
     * {"with"|"group","messages":[{"id","seq","from","to"|"group","content","time"}],"more":bool};
     * 403 forbidden for a group $account is not in, 404 not_found for a $before
     * of another conversation. Retried.
     *
     * @return array{messages: list<array<string,mixed>>, more: bool}
     * @throws SideApiException
     */
    public function history(string $account, ?string $with = null, ?string $group = null, ?string $before = null, int $limit = 50): array
    {
        if (($with === null) === ($group === null)) {
            throw new \InvalidArgumentException('history: give exactly one of $with and $group');
        }
        $q = ['account' => $account, 'limit' => $limit];
        if ($with !== null) {
            $q['with'] = $with;
        } else {
            $q['group'] = $group;
        }
        if ($before !== null) {
            $q['before'] = $before;
        }
        $out = $this->call('GET', '/api/history?' . \http_build_query($q), null, true);
        return ['messages' => \array_values((array) ($out['messages'] ?? [])), 'more' => (bool) ($out['more'] ?? false)];
    }

    /**
     * The conversation list of $account as a new device draws it: its
     * one-to-one conversations and its groups, newest message first, each with
     * its last message, its unread count (others' messages past the account's
     * read cursor, among the newest 1000 past it) and the id it has read up to. Needs
     * history.enabled on the server (503 unavailable otherwise).
     *
     * Wire: GET /api/conversations?account= ->
     * {"conversations":[{"with"|"group","last":{"id","seq","from","to","content","time"},"unread":n,"read":id}]}. Retried.
     *
     * @return list<array<string,mixed>>
     * @throws SideApiException
     */
    public function conversations(string $account): array
    {
        $out = $this->call('GET', '/api/conversations?' . \http_build_query(['account' => $account]), null, true);
        return \array_values((array) ($out['conversations'] ?? []));
    }

    /**
     * Unread counts of $account per conversation, from its read cursors (the
     * read frame moves them), and their sum: the conversations with unread
     * messages only. Needs history.enabled; unread() counts stored offline rows
     * instead, and works without it.
     *
     * Wire: GET /api/unread?account=&by=conversation ->
     * {"conversations":[{"with"|"group","unread":n,"read":id}],"total":n}. Retried.
     *
     * @return array{conversations: list<array<string,mixed>>, total: int}
     * @throws SideApiException
     */
    public function unreadByConversation(string $account): array
    {
        $out = $this->call('GET', '/api/unread?' . \http_build_query(['account' => $account, 'by' => 'conversation']), null, true);
        return ['conversations' => \array_values((array) ($out['conversations'] ?? [])), 'total' => (int) ($out['total'] ?? 0)];
    }

    /**
     * Gateway::joinGroup: adds accounts to a group (stored in SQL; effective at
     * once on every node). Adding a member twice changes nothing.
     *
     * Wire: PUT /api/group/{group}/members {"accounts":[...]} -> {"group","members":[...]};
     * 422 too_large past limits.max_group_size. Retried.
     *
     * @param string|list<string> $accounts
     * @return list<string> the members afterwards
     * @throws SideApiException
     */
    public function joinGroup(string $group, string|array $accounts): array
    {
        return $this->changeMembers('PUT', $group, $accounts);
    }

    /**
     * Gateway::leaveGroup / ungroup one by one: removes accounts from a group.
     * Removing a non-member changes nothing.
     *
     * Wire: DELETE /api/group/{group}/members {"accounts":[...]} -> {"group","members":[...]}. Retried.
     *
     * @param string|list<string> $accounts
     * @return list<string> the members afterwards
     * @throws SideApiException
     */
    public function leaveGroup(string $group, string|array $accounts): array
    {
        return $this->changeMembers('DELETE', $group, $accounts);
    }

    /**
     * Gateway::getUidListByGroup: the group's members (accounts, connected or not).
     *
     * Wire: GET /api/group/{group}/members -> {"group","members":[...]} ([] for an unknown group). Retried.
     *
     * @return list<string>
     * @throws SideApiException
     */
    public function groupMembers(string $group): array
    {
        $out = $this->call('GET', '/api/group/' . self::group($group) . '/members', null, true);
        return \array_values(\array_map('strval', (array) ($out['members'] ?? [])));
    }

    /**
     * Gateway::closeClient / Swoole $server->close($fd), per account: closes
     * every connection of the account on every node with close code 4004 and
     * $reason (empty: "disconnected by the site"; at most 123 bytes). It does
     * not ban: the account may connect again at once.
     *
     * Wire: POST /api/disconnect {"account","reason"} -> {"closed":n,"announced":bool};
     * 503 unavailable when the other nodes could not be told (this node's were
     * closed). Retried: closing again closes nothing more than what is connected.
     *
     * @throws SideApiException
     */
    public function disconnect(string $account, string $reason = ''): Disconnected
    {
        $out = $this->call('POST', '/api/disconnect', ['account' => $account, 'reason' => $reason], true);
        return new Disconnected((int) ($out['closed'] ?? 0), (bool) ($out['announced'] ?? false));
    }

    /**
     * @param list<string> $accounts
     * @return array<string,mixed>
     */
    private function perAccount(string $path, string $key, array $accounts): array
    {
        $result = [];
        foreach ($this->queries($accounts) as $query) {
            $out = $this->call('GET', $path . '?' . $query, null, true);
            $result += (array) ($out[$key] ?? []);
        }
        return $result;
    }

    /**
     * Splits the accounts into ?account=a&account=b queries that each stay
     * within the server's limits: 1000 accounts, and a request header of 16 KiB.
     *
     * @param list<string> $accounts
     * @return list<string>
     */
    private function queries(array $accounts): array
    {
        $queries = [];
        $parts = [];
        $length = 0;
        foreach (\array_unique(\array_map('strval', $accounts)) as $account) {
            $part = 'account=' . \rawurlencode($account);
            if ($parts !== [] && (\count($parts) === self::MAX_ACCOUNTS_PER_CALL || $length + \strlen($part) > self::MAX_QUERY_BYTES)) {
                $queries[] = \implode('&', $parts);
                $parts = [];
                $length = 0;
            }
            $parts[] = $part;
            $length += \strlen($part) + 1;
        }
        if ($parts !== []) {
            $queries[] = \implode('&', $parts);
        }
        return $queries;
    }

    /**
     * @param string|list<string> $accounts
     * @return list<string>
     */
    private function changeMembers(string $method, string $group, string|array $accounts): array
    {
        $out = $this->call($method, '/api/group/' . self::group($group) . '/members', ['accounts' => \array_values((array) $accounts)], true);
        return \array_values(\array_map('strval', (array) ($out['members'] ?? [])));
    }

    private static function group(string $group): string
    {
        if ($group === '') {
            throw new \InvalidArgumentException('the group id must not be empty');
        }
        return \rawurlencode($group);
    }

    /**
     * Makes the call with the retry policy, and returns the decoded answer.
     *
     * @param array<string,mixed>|null $body
     * @return array<string,mixed>
     */
    private function call(string $method, string $path, ?array $body, bool $idempotent): array
    {
        $headers = ['Authorization' => 'Bearer ' . $this->secret, 'Accept' => 'application/json'];
        $payload = null;
        if ($body !== null) {
            $headers['Content-Type'] = 'application/json';
            $payload = \json_encode($body, \JSON_THROW_ON_ERROR | \JSON_UNESCAPED_UNICODE | \JSON_UNESCAPED_SLASHES);
        }
        for ($attempt = 0; ; $attempt++) {
            $more = $attempt < $this->retries;
            try {
                $answer = $this->transport->send($method, $this->baseUrl . $path, $headers, $payload, $this->timeout, $this->connectTimeout);
            } catch (ConnectException $e) {
                if ($more) {
                    $this->pause($attempt);
                    continue;
                }
                throw $e;
            } catch (TransportException $e) {
                if ($more && $idempotent) {
                    $this->pause($attempt);
                    continue;
                }
                throw $e;
            }
            if ($answer->status >= 200 && $answer->status < 300) {
                return $this->decode($answer, $method, $path);
            }
            $error = self::error($answer, $method, $path);
            if ($more && $answer->status === 503 && ($idempotent || $error->getErrorCode() === 'busy')) {
                $this->pause($attempt);
                continue;
            }
            throw $error;
        }
    }

    /** @return array<string,mixed> */
    private function decode(Response $answer, string $method, string $path): array
    {
        try {
            $out = \json_decode($answer->body, true, 32, \JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new ServerException('bad_answer', 'the answer is not JSON: ' . \substr($answer->body, 0, 200), $answer->status, $method, $path);
        }
        if (!\is_array($out)) {
            throw new ServerException('bad_answer', 'the answer is not a JSON object: ' . \substr($answer->body, 0, 200), $answer->status, $method, $path);
        }
        return $out;
    }

    private static function error(Response $answer, string $method, string $path): ApiException
    {
        $out = \json_decode($answer->body, true);
        $err = \is_array($out) && \is_array($out['error'] ?? null) ? $out['error'] : null;
        if ($err === null) { // not the server's answer: a proxy in between, say
            return ApiException::fromAnswer($answer->status, 'http_' . $answer->status, \substr(\trim($answer->body), 0, 200), $method, $path);
        }
        return ApiException::fromAnswer($answer->status, (string) ($err['code'] ?? ''), (string) ($err['message'] ?? ''), $method, $path);
    }

    private function pause(int $attempt): void
    {
        $wait = \min($this->maxBackoff, $this->backoff * (2 ** $attempt));
        $wait *= 0.5 + \mt_rand() / \mt_getrandmax() / 2; // jitter: callers that failed together do not retry together
        \usleep((int) ($wait * 1_000_000));
    }
}
