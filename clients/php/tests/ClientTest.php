<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Tests;

use ChatServer\SideApi\Client;
use ChatServer\SideApi\Exception\BadRequestException;
use ChatServer\SideApi\Exception\ConnectException;
use ChatServer\SideApi\Exception\ForbiddenException;
use ChatServer\SideApi\Exception\NotFoundException;
use ChatServer\SideApi\Exception\TimeoutException;
use ChatServer\SideApi\Exception\UnauthorizedException;
use ChatServer\SideApi\Exception\UnavailableException;
use ChatServer\SideApi\Http\CurlTransport;
use ChatServer\SideApi\Http\Response;
use ChatServer\SideApi\Http\Transport;
use PHPUnit\Framework\TestCase;

/**
 * Every method against the real server; what the accounts' connections
 * received comes from the witness. Accounts are unique per test, so a
 * broadcast in one test does not show in another's frames.
 */
final class ClientTest extends TestCase
{
    private Client $chat;
    private Witness $witness;
    private string $run;

    protected function setUp(): void
    {
        $this->chat = new Client((string) getenv('CHAT_API_URL'), (string) getenv('CHAT_API_SECRET'));
        $this->witness = new Witness((string) getenv('CHAT_WITNESS_URL'));
        $this->run = bin2hex(random_bytes(4));
    }

    private function account(string $name): string
    {
        return $name . '-' . $this->run;
    }

    /** @param list<array<string,mixed>> $frames @return list<string> */
    private static function contents(array $frames): array
    {
        return array_map(static fn (array $f): string => (string) ($f['content'] ?? ''), $frames);
    }

    public function testSendToUidReachesEveryConnectionOfTheAccount(): void
    {
        $bob = $this->account('bob');
        $this->witness->login($bob, 2);
        self::assertSame('pushed', $this->chat->sendToUid($bob, 'Your order shipped'));
        self::assertSame('pushed', $this->chat->push('shop', $bob, 'émoji 🎉 "quoted"'));
        $conns = $this->witness->frames($bob);
        self::assertCount(2, $conns);
        foreach ($conns as $frames) {
            self::assertSame(['Your order shipped', 'émoji 🎉 "quoted"'], self::contents($frames));
            self::assertSame('system', $frames[0]['from']);
            self::assertSame('shop', $frames[1]['from']);
        }
    }

    public function testPushToAnOfflineAccountIsStoredAndCountedUnread(): void
    {
        $dave = $this->account('dave');
        $erin = $this->account('erin');
        self::assertSame('stored', $this->chat->push('alice', $dave, 'one'));
        self::assertSame('stored', $this->chat->push('alice', $dave, 'two'));
        self::assertSame('stored', $this->chat->sendToUid($dave, 'three'));
        self::assertSame(['alice' => 2, 'system' => 1], self::sorted($this->chat->unread($dave)));
        self::assertSame([], $this->chat->unread($erin));
        $many = $this->chat->unreadMany([$dave, $erin]);
        self::assertSame([$dave, $erin], array_keys($many));
        self::assertSame([], $many[$erin]);

        // At the account's next init the stored messages come, in order.
        $this->witness->login($dave);
        self::assertSame([], $this->chat->unread($dave));
    }

    public function testHistoryPagesAConversationOldestFirst(): void
    {
        $dave = $this->account('dave');
        foreach (['h1', 'h2', 'h3'] as $text) {
            $this->chat->push('alice', $dave, $text);
        }
        $page = $this->chat->history($dave, with: 'alice', limit: 2);
        self::assertTrue($page['more']);
        self::assertSame(['h2', 'h3'], array_column($page['messages'], 'content'));
        $older = $this->chat->history('alice', with: $dave, before: $page['messages'][0]['id'], limit: 2);
        self::assertFalse($older['more']);
        self::assertSame(['h1'], array_column($older['messages'], 'content'));
        try {
            $this->chat->history($dave, group: 'nobody-' . $dave);
            self::fail('a group the account is not in must be refused');
        } catch (ForbiddenException $e) {
            self::assertSame('forbidden', $e->getErrorCode());
        }
    }

    public function testConversationsAndUnreadCountsFromTheReadCursors(): void
    {
        $dave = $this->account('dave');
        $this->chat->push('alice', $dave, 'c1');
        $this->chat->push('alice', $dave, 'c2');
        $list = $this->chat->conversations($dave);
        self::assertCount(1, $list);
        self::assertSame('alice', $list[0]['with']);
        self::assertSame(2, $list[0]['unread']);
        self::assertSame('c2', $list[0]['last']['content']);
        $unread = $this->chat->unreadByConversation($dave);
        self::assertSame(2, $unread['total']);
        self::assertSame('alice', $unread['conversations'][0]['with']);
        self::assertSame([], $this->chat->conversations($this->account('nobody')));
    }

    public function testOnlineAnswersForOneOrManyAccounts(): void
    {
        $carol = $this->account('carol');
        $nobody = $this->account('nobody');
        self::assertFalse($this->chat->isUidOnline($carol));
        $this->witness->login($carol);
        self::assertTrue($this->chat->isUidOnline($carol));
        self::assertSame([$carol => true, $nobody => false], $this->chat->online([$carol, $nobody]));
        self::assertSame([], $this->chat->online([]));

        // Past the server's 1000 accounts per call, the client splits the list.
        $accounts = [$nobody];
        for ($i = 0; $i < 1500; $i++) {
            $accounts[] = $this->account("crowd$i");
        }
        $accounts[] = $carol;
        $online = $this->chat->online($accounts);
        self::assertCount(1502, $online);
        self::assertSame([$carol], array_keys(array_filter($online)));
    }

    public function testGroupMembershipAndGroupPush(): void
    {
        $team = $this->account('team');
        [$gina, $hank] = [$this->account('gina'), $this->account('hank')];
        self::assertSame([], $this->chat->groupMembers($team));
        self::assertEqualsCanonicalizing([$gina, $hank], $this->chat->joinGroup($team, [$gina, $hank]));
        self::assertEqualsCanonicalizing([$gina, $hank], $this->chat->joinGroup($team, $gina), 'joining twice changes nothing');
        $this->witness->login($gina);

        $res = $this->chat->sendToGroup($team, 'Meeting moved');
        self::assertSame([2, 1, 1], [$res->members, $res->pushed, $res->stored]);
        [$frames] = $this->witness->frames($gina);
        self::assertSame(['Meeting moved'], self::contents($frames));
        self::assertSame($team, $frames[0]['group'] ?? null);
        self::assertSame(['system' => 1], $this->chat->unread($hank));

        self::assertSame([$gina], $this->chat->leaveGroup($team, [$hank]));
        self::assertSame([$gina], $this->chat->groupMembers($team));
        self::assertSame([], $this->chat->leaveGroup($team, $gina));
        try {
            $this->chat->sendToGroup($team, 'to nobody');
            self::fail('a push to an empty group must throw');
        } catch (NotFoundException $e) {
            self::assertSame('not_found', $e->getErrorCode());
            self::assertSame(404, $e->getStatus());
        }
    }

    public function testSendToAllReachesEveryConnection(): void
    {
        $ivy = $this->account('ivy');
        $jack = $this->account('jack');
        $this->witness->login($ivy);
        $this->witness->login($jack, 2);
        self::assertGreaterThanOrEqual(3, $this->chat->sendToAll('Maintenance at 02:00', 'admin'));
        foreach ([$ivy, $jack] as $account) {
            foreach ($this->witness->frames($account) as $frames) {
                self::assertSame(['Maintenance at 02:00'], self::contents($frames));
                self::assertSame('admin', $frames[0]['from']);
            }
        }
    }

    public function testDisconnectClosesEveryConnectionOfTheAccount(): void
    {
        $mallory = $this->account('mallory');
        $kim = $this->account('kim');
        $this->witness->login($mallory, 2);
        $this->witness->login($kim);
        $res = $this->chat->disconnect($mallory, 'account suspended');
        self::assertSame(2, $res->closed);
        self::assertFalse($res->announced);
        self::assertSame(
            [['code' => 4004, 'text' => 'account suspended'], ['code' => 4004, 'text' => 'account suspended']],
            $this->witness->closed($mallory),
        );
        $deadline = microtime(true) + 10;
        while ($this->chat->isUidOnline($mallory) && microtime(true) < $deadline) {
            usleep(20_000);
        }
        self::assertFalse($this->chat->isUidOnline($mallory));
        self::assertTrue($this->chat->isUidOnline($kim), 'another account is not touched');
        self::assertSame(0, $this->chat->disconnect($mallory)->closed);
    }

    public function testRefusalsAreTypedWithTheServersCode(): void
    {
        $bad = new Client((string) getenv('CHAT_API_URL'), 'wrong secret');
        try {
            $bad->isUidOnline('anyone');
            self::fail('a wrong secret must throw');
        } catch (UnauthorizedException $e) {
            self::assertSame(['unauthorized', 401], [$e->getErrorCode(), $e->getStatus()]);
        }
        foreach ([
            'too_long' => fn () => $this->chat->disconnect('anyone', str_repeat('x', 124)),
            'bad_field' => fn () => $this->chat->joinGroup($this->account('g'), ['']),
            'missing_field' => fn () => $this->chat->joinGroup($this->account('g'), []),
        ] as $code => $call) {
            try {
                $call();
                self::fail("$code: the call must throw");
            } catch (BadRequestException $e) {
                self::assertSame([$code, 400], [$e->getErrorCode(), $e->getStatus()]);
                self::assertStringContainsString($code, $e->getMessage());
            }
        }
        $this->expectException(\InvalidArgumentException::class);
        new Client('127.0.0.1:9053', 'secret');
    }

    public function testPushIsRetriedOnBusyAndDeliveredOnce(): void
    {
        $lee = $this->account('lee');
        $chat = new Client($this->witness->fault('busy'), (string) getenv('CHAT_API_SECRET'), backoff: 0.01);
        self::assertSame('stored', $chat->push('alice', $lee, 'after two busy answers'));
        self::assertSame(3, $this->witness->seen('busy', '/api/push'));
        self::assertSame(['alice' => 1], $this->chat->unread($lee));

        $none = new Client($this->witness->fault('busy'), (string) getenv('CHAT_API_SECRET'), retries: 0);
        $this->expectException(UnavailableException::class);
        $none->sendToAll('not retried with retries: 0');
    }

    public function testPushIsNotRetriedOnUnavailableButReadsAre(): void
    {
        $chat = new Client($this->witness->fault('unavailable'), (string) getenv('CHAT_API_SECRET'), backoff: 0.01);
        try {
            $chat->push('alice', $this->account('may'), 'queued, maybe');
            self::fail('503 unavailable must throw');
        } catch (UnavailableException $e) {
            self::assertSame(['unavailable', 503], [$e->getErrorCode(), $e->getStatus()]);
        }
        self::assertSame(1, $this->witness->seen('unavailable', '/api/push'), 'a push that may be queued is not sent again');
        try {
            $chat->groupMembers('g');
            self::fail('503 unavailable must throw');
        } catch (UnavailableException) {
        }
        self::assertSame(3, $this->witness->seen('unavailable', '/api/group/g/members'), 'a read is tried three times');
    }

    public function testPushIsNotRetriedAfterATimeoutButReadsAre(): void
    {
        $chat = new Client($this->witness->fault('hang'), (string) getenv('CHAT_API_SECRET'), timeout: 0.3, backoff: 0.01);
        try {
            $chat->sendToGroup('g', 'maybe sent');
            self::fail('a call with no answer must time out');
        } catch (TimeoutException) {
        }
        self::assertSame(1, $this->witness->seen('hang', '/api/group/g/push'));
        try {
            $chat->unread('someone');
            self::fail('a call with no answer must time out');
        } catch (TimeoutException) {
        }
        self::assertSame(3, $this->witness->seen('hang', '/api/unread'));
    }

    public function testConnectionRefusedIsRetriedEvenForAPush(): void
    {
        // Nothing was sent, so even a push is tried again: three tries reach curl.
        $counting = new class () implements Transport {
            public int $sent = 0;
            private CurlTransport $curl;

            public function __construct()
            {
                $this->curl = new CurlTransport();
            }

            public function send(string $method, string $url, array $headers, ?string $body, float $timeout, float $connectTimeout): Response
            {
                $this->sent++;
                return $this->curl->send($method, $url, $headers, $body, $timeout, $connectTimeout);
            }
        };
        $chat = new Client((string) getenv('CHAT_REFUSED_URL'), 'secret', $counting, backoff: 0.01);
        try {
            $chat->push('alice', 'bob', 'never sent');
            self::fail('a refused connection must throw');
        } catch (ConnectException) {
        }
        self::assertSame(3, $counting->sent);
    }

    /** @param array<string,int> $a @return array<string,int> */
    private static function sorted(array $a): array
    {
        ksort($a);
        return $a;
    }
}
