<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Http;

use ChatServer\SideApi\Exception\ConnectException;
use ChatServer\SideApi\Exception\TransportException;

/**
 * Sends the calls through a PSR-18 client the site already has (Guzzle,
 * Symfony HttpClient, ...). The PSR interfaces are only needed when this class
 * is used; the package itself requires none of them.
 *
 * Timeouts are the PSR-18 client's own (PSR-18 has no per-request timeout):
 * configure them on it. Its NetworkExceptionInterface is taken as "may have been
 * sent" (a push is then not retried), except when the site passes
 * $notSent, a check that recognises its client's connection-refused error.
 */
final class Psr18Transport implements Transport
{
    /** @var \Closure(\Throwable):bool */
    private \Closure $notSent;

    /**
     * @param \Psr\Http\Client\ClientInterface          $client
     * @param \Psr\Http\Message\RequestFactoryInterface $requests
     * @param \Psr\Http\Message\StreamFactoryInterface  $streams
     * @param (callable(\Throwable):bool)|null          $notSent true when the error means nothing was sent
     */
    public function __construct(
        private readonly object $client,
        private readonly object $requests,
        private readonly object $streams,
        ?callable $notSent = null,
    ) {
        $this->notSent = $notSent !== null ? \Closure::fromCallable($notSent) : static fn (\Throwable $e): bool => false;
    }

    public function send(string $method, string $url, array $headers, ?string $body, float $timeout, float $connectTimeout): Response
    {
        $request = $this->requests->createRequest($method, $url);
        foreach ($headers as $name => $value) {
            $request = $request->withHeader($name, $value);
        }
        if ($body !== null) {
            $request = $request->withBody($this->streams->createStream($body));
        }
        try {
            $answer = $this->client->sendRequest($request);
        } catch (\Throwable $e) {
            $what = \sprintf('%s %s: %s', $method, $url, $e->getMessage());
            if (($this->notSent)($e)) {
                throw new ConnectException($what, 0, $e);
            }
            throw new TransportException($what, 0, $e);
        }
        return new Response($answer->getStatusCode(), (string) $answer->getBody());
    }
}
