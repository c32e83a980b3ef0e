<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Http;

use ChatServer\SideApi\Exception\ConnectException;
use ChatServer\SideApi\Exception\TimeoutException;
use ChatServer\SideApi\Exception\TransportException;

/**
 * The default transport, on ext-curl. One handle is kept and reused, so calls
 * made one after another share a keep-alive connection.
 */
final class CurlTransport implements Transport
{
    /** @var \CurlHandle|null */
    private $handle = null;

    public function __construct()
    {
        if (!\extension_loaded('curl')) {
            throw new \LogicException('CurlTransport needs ext-curl (apt-get install php-curl); or pass a Psr18Transport to the Client');
        }
    }

    public function send(string $method, string $url, array $headers, ?string $body, float $timeout, float $connectTimeout): Response
    {
        $this->handle ??= \curl_init();
        $h = $this->handle;
        \curl_reset($h);
        $lines = [];
        foreach ($headers as $name => $value) {
            $lines[] = $name . ': ' . $value;
        }
        $lines[] = 'Expect:'; // no 100-continue round trip for larger bodies
        \curl_setopt_array($h, [
            \CURLOPT_URL => $url,
            \CURLOPT_CUSTOMREQUEST => $method,
            \CURLOPT_HTTPHEADER => $lines,
            \CURLOPT_RETURNTRANSFER => true,
            \CURLOPT_FOLLOWLOCATION => false,
            \CURLOPT_NOSIGNAL => true,
            \CURLOPT_TIMEOUT_MS => (int) \ceil($timeout * 1000),
            \CURLOPT_CONNECTTIMEOUT_MS => (int) \ceil($connectTimeout * 1000),
            \CURLOPT_PROTOCOLS => \CURLPROTO_HTTP | \CURLPROTO_HTTPS,
        ]);
        if ($body !== null) {
            \curl_setopt($h, \CURLOPT_POSTFIELDS, $body);
        }
        $out = \curl_exec($h);
        if ($out === false) {
            $errno = \curl_errno($h);
            $what = \sprintf('%s %s: %s', $method, $url, \curl_error($h));
            throw match ($errno) {
                \CURLE_COULDNT_CONNECT, \CURLE_COULDNT_RESOLVE_HOST => new ConnectException($what),
                // A connect timeout left nothing sent; a timeout after it may have.
                \CURLE_OPERATION_TIMEDOUT => \curl_getinfo($h, \CURLINFO_CONNECT_TIME) > 0 || \curl_getinfo($h, \CURLINFO_PRETRANSFER_TIME) > 0
                    ? new TimeoutException($what)
                    : new ConnectException($what),
                default => new TransportException($what),
            };
        }
        return new Response((int) \curl_getinfo($h, \CURLINFO_RESPONSE_CODE), (string) $out);
    }
}
