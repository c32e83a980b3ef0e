<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Tests;

use ChatServer\SideApi\Client;
use ChatServer\SideApi\Exception\ConnectException;
use ChatServer\SideApi\Exception\NotFoundException;
use ChatServer\SideApi\Exception\TransportException;
use ChatServer\SideApi\Http\Psr18Transport;
use PHPUnit\Framework\TestCase;

/** The client over a site's PSR-18 client instead of ext-curl. */
final class Psr18TransportTest extends TestCase
{
    public function testCallsGoThroughTheSitesClient(): void
    {
        $account = 'psr-' . bin2hex(random_bytes(4));
        $witness = new Witness((string) getenv('CHAT_WITNESS_URL'));
        $witness->login($account);
        $psr = new MiniPsr18();
        $chat = new Client((string) getenv('CHAT_API_URL'), (string) getenv('CHAT_API_SECRET'), new Psr18Transport($psr, $psr, $psr));

        self::assertTrue($chat->isUidOnline($account));
        self::assertSame('pushed', $chat->sendToUid($account, 'through PSR-18'));
        [$frames] = $witness->frames($account);
        self::assertSame(['through PSR-18'], array_map(static fn (array $f) => $f['content'], $frames));
        try {
            $chat->sendToGroup('nobody-' . $account, 'x');
            self::fail('a push to an empty group must throw');
        } catch (NotFoundException $e) {
            self::assertSame('not_found', $e->getErrorCode());
        }
        self::assertCount(3, $psr->sent);
    }

    public function testTheSitesNetworkErrorsAreTransportErrors(): void
    {
        $refused = (string) getenv('CHAT_REFUSED_URL');
        // Unrecognised, a failure may have sent the push: it is not repeated.
        $psr = new MiniPsr18();
        $chat = new Client($refused, 'secret', new Psr18Transport($psr, $psr, $psr), backoff: 0.01);
        try {
            $chat->push('alice', 'bob', 'x');
            self::fail('a network error must throw');
        } catch (TransportException $e) {
            self::assertNotInstanceOf(ConnectException::class, $e);
            self::assertInstanceOf(\RuntimeException::class, $e->getPrevious());
        }
        self::assertCount(1, $psr->sent);

        // Recognised as "nothing sent", it is tried again, like a refused curl connection.
        $psr = new MiniPsr18();
        $notSent = static fn (\Throwable $e): bool => str_contains($e->getMessage(), 'Connection refused');
        $chat = new Client($refused, 'secret', new Psr18Transport($psr, $psr, $psr, $notSent), backoff: 0.01);
        try {
            $chat->push('alice', 'bob', 'x');
            self::fail('a network error must throw');
        } catch (ConnectException) {
        }
        self::assertCount(3, $psr->sent);
    }
}
