<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Http;

use ChatServer\SideApi\Exception\ConnectException;
use ChatServer\SideApi\Exception\TimeoutException;
use ChatServer\SideApi\Exception\TransportException;

/**
 * Sends one HTTP request and returns the answer, whatever its status.
 *
 * The client owns retries and error mapping; a transport only moves bytes. It
 * must tell apart a request that never left (ConnectException: nothing was
 * sent, so even a push may be sent again) from one that may have reached the
 * server (TimeoutException, or any other TransportException).
 */
interface Transport
{
    /**
     * @param array<string,string> $headers
     *
     * @throws ConnectException   the connection could not be opened: nothing was sent
     * @throws TimeoutException   no complete answer in time: the server may have acted
     * @throws TransportException any other failure on the way
     */
    public function send(string $method, string $url, array $headers, ?string $body, float $timeout, float $connectTimeout): Response;
}
