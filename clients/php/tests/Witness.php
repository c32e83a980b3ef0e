<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Tests;

/**
 * The Go side of the suite (e2e/php_client_test.go): real WebSocket
 * connections for accounts, what they received, and fault endpoints in front
 * of the side API.
 */
final class Witness
{
    public function __construct(private readonly string $url)
    {
    }

    /** Opens $n connections that init as $account. */
    public function login(string $account, int $n = 1): void
    {
        $this->call('POST', '/login?account=' . rawurlencode($account) . '&n=' . $n);
    }

    /**
     * What each of the account's connections received since the last look.
     *
     * @return list<list<array<string,mixed>>>
     */
    public function frames(string $account): array
    {
        return $this->call('GET', '/frames?account=' . rawurlencode($account))['connections'];
    }

    /**
     * Waits for the server to close each of the account's connections.
     *
     * @return list<array{code:int,text:string}>
     */
    public function closed(string $account): array
    {
        return $this->call('GET', '/closed?account=' . rawurlencode($account))['connections'];
    }

    /** The base URL of a fault endpoint: busy, unavailable or hang. */
    public function fault(string $mode): string
    {
        return $this->url . '/fault/' . $mode;
    }

    /** How many requests for $path reached the fault endpoint $mode. */
    public function seen(string $mode, string $path): int
    {
        return $this->call('GET', '/seen?mode=' . rawurlencode($mode) . '&path=' . rawurlencode($path))['n'];
    }

    /** @return array<string,mixed> */
    private function call(string $method, string $path): array
    {
        $ctx = stream_context_create(['http' => ['method' => $method, 'ignore_errors' => true, 'timeout' => 30]]);
        $body = file_get_contents($this->url . $path, false, $ctx);
        $status = (int) explode(' ', $http_response_header[0] ?? 'HTTP/1.1 0')[1];
        if ($body === false || $status !== 200) {
            throw new \RuntimeException("witness $method $path: $status $body");
        }
        return json_decode($body, true, 32, JSON_THROW_ON_ERROR);
    }
}
