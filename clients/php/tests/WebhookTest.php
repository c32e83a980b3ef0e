<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Tests;

use ChatServer\SideApi\Exception\WebhookException;
use ChatServer\SideApi\Webhook;
use PHPUnit\Framework\TestCase;

/**
 * Webhook::verify against an event the real server posted (captured by the Go
 * test that runs this suite, see e2e/php_client_test.go), and against the
 * ways a forged or replayed one differs from it.
 */
final class WebhookTest extends TestCase
{
    private string $body;
    private string $ts;
    private string $sig;
    private string $secret;

    protected function setUp(): void
    {
        $file = (string) getenv('CHAT_WEBHOOK_BODY_FILE');
        self::assertNotSame('', $file, 'CHAT_WEBHOOK_BODY_FILE: the server\'s captured event');
        $this->body = (string) file_get_contents($file);
        $this->ts = (string) getenv('CHAT_WEBHOOK_TIMESTAMP');
        $this->sig = (string) getenv('CHAT_WEBHOOK_SIGNATURE');
        $this->secret = (string) getenv('CHAT_WEBHOOK_SECRET');
    }

    public function testTheServersEventVerifies(): void
    {
        $event = Webhook::verify($this->body, $this->ts, $this->sig, $this->secret);
        self::assertSame('webhookprobe', $event['account']);
        self::assertNotEmpty($event['event_id']);
    }

    public function testTheServersPresenceEventVerifies(): void
    {
        $file = (string) getenv('CHAT_WEBHOOK_PRESENCE_BODY_FILE');
        self::assertNotSame('', $file, 'CHAT_WEBHOOK_PRESENCE_BODY_FILE: the server\'s captured presence event');
        $body = (string) file_get_contents($file);
        $ts = (string) getenv('CHAT_WEBHOOK_PRESENCE_TIMESTAMP');
        $sig = (string) getenv('CHAT_WEBHOOK_PRESENCE_SIGNATURE');
        $event = Webhook::verify($body, $ts, $sig, $this->secret);
        self::assertSame('presence', $event['type']);
        self::assertSame('presenceprobe', $event['account']);
        self::assertSame('online', $event['state']);
        self::assertIsInt($event['at']);
        self::assertNotEmpty($event['event_id']);
        $this->expectException(WebhookException::class);
        Webhook::verify(str_replace('online', 'offline', $body), $ts, $sig, $this->secret);
    }

    public function testForgedOrReplayedEventsAreRefused(): void
    {
        $cases = [
            'wrong secret' => fn () => Webhook::verify($this->body, $this->ts, $this->sig, $this->secret . 'x'),
            'changed body' => fn () => Webhook::verify($this->body . ' ', $this->ts, $this->sig, $this->secret),
            'changed timestamp' => fn () => Webhook::verify($this->body, (string) ((int) $this->ts + 1), $this->sig, $this->secret),
            'no signature' => fn () => Webhook::verify($this->body, $this->ts, null, $this->secret),
            'no timestamp' => fn () => Webhook::verify($this->body, null, $this->sig, $this->secret),
            'replayed an hour later' => fn () => Webhook::verify($this->body, $this->ts, $this->sig, $this->secret, 300, (int) $this->ts + 3600),
            'no secret' => fn () => Webhook::verify($this->body, $this->ts, $this->sig, ''),
        ];
        foreach ($cases as $name => $call) {
            try {
                $call();
                self::fail($name . ': accepted');
            } catch (WebhookException $e) {
                self::assertNotSame('', $e->getMessage(), $name);
            }
        }
    }
}
