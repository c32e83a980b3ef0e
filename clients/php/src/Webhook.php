<?php

declare(strict_types=1);

namespace ChatServer\SideApi;

use ChatServer\SideApi\Exception\WebhookException;

/**
 * Checks the notification events the server posts to notify.url (README,
 * Notifications): the X-Chat-Signature header is "sha256=" and the hex
 * HMAC-SHA256 of "<X-Chat-Timestamp>.<body>" keyed with notify.secret, and a
 * timestamp older (or newer) than $tolerance seconds is refused, so that a
 * recorded request cannot be played again later.
 *
 * Both kinds of event are signed the same way: "offline_messages" (messages
 * stored for an account with no live connection) and, with notify.presence,
 * "presence" (an account online or offline across all nodes, for a "last
 * seen"). A webhook endpoint:
 *
 *     $event = Webhook::fromGlobals(getenv('CHAT_NOTIFY_SECRET'));
 *     // $event['event_id'] (drop a repeat), $event['type'], $event['account'], ...
 *     http_response_code(204);
 *
 * A WebhookException means the request is not the server's (or is stale):
 * answer 400 and do nothing. The server retries any answer but 2xx, up to
 * notify.max_attempts, so a request it did sign is not lost to a passing
 * fault on the site's side.
 */
final class Webhook
{
    /**
     * Verifies one event and returns its decoded body.
     *
     * @return array<string,mixed>
     * @throws WebhookException when a header is missing, the signature does not
     *         match, the timestamp is outside the window, or the body is not JSON
     */
    public static function verify(string $body, ?string $timestamp, ?string $signature, string $secret, int $tolerance = 300, ?int $now = null): array
    {
        if ($secret === '') {
            throw new WebhookException('no secret to check the signature with (notify.secret)');
        }
        if ($timestamp === null || $timestamp === '' || !\ctype_digit($timestamp)) {
            throw new WebhookException('missing or malformed X-Chat-Timestamp');
        }
        if ($signature === null || !\str_starts_with($signature, 'sha256=')) {
            throw new WebhookException('missing or malformed X-Chat-Signature');
        }
        $want = 'sha256=' . \hash_hmac('sha256', $timestamp . '.' . $body, $secret);
        if (!\hash_equals($want, $signature)) {
            throw new WebhookException('signature does not match (wrong notify.secret, or the body was changed)');
        }
        $age = ($now ?? \time()) - (int) $timestamp;
        if (\abs($age) > $tolerance) {
            throw new WebhookException(\sprintf('timestamp %ds away from now, outside the %ds window', $age, $tolerance));
        }
        try {
            $event = \json_decode($body, true, 64, \JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new WebhookException('body is not JSON: ' . $e->getMessage(), 0, $e);
        }
        if (!\is_array($event)) {
            throw new WebhookException('body is not a JSON object');
        }
        return $event;
    }

    /**
     * verify() on the request PHP is serving (php://input and the headers).
     *
     * @return array<string,mixed>
     * @throws WebhookException
     */
    public static function fromGlobals(string $secret, int $tolerance = 300): array
    {
        $body = (string) \file_get_contents('php://input');
        return self::verify(
            $body,
            $_SERVER['HTTP_X_CHAT_TIMESTAMP'] ?? null,
            $_SERVER['HTTP_X_CHAT_SIGNATURE'] ?? null,
            $secret,
            $tolerance,
        );
    }
}
