<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Tests;

/**
 * The least of a PSR-18 client and the PSR-17 factories, for the adapter's
 * test: the shapes Psr18Transport calls (createRequest, withHeader,
 * createStream, withBody, sendRequest, getStatusCode, getBody), with a real
 * HTTP call underneath (PHP's http stream wrapper). No PSR package is
 * installed here; a site passes Guzzle or Symfony's.
 */
final class MiniPsr18
{
    /** @var list<string> the URLs sent, in order */
    public array $sent = [];

    public function createRequest(string $method, string $uri): MiniRequest
    {
        return new MiniRequest($method, $uri, [], '');
    }

    public function createStream(string $content = ''): string
    {
        return $content;
    }

    public function sendRequest(MiniRequest $request): MiniResponse
    {
        $this->sent[] = $request->uri;
        $headers = [];
        foreach ($request->headers as $name => $value) {
            $headers[] = "$name: $value";
        }
        $ctx = stream_context_create(['http' => [
            'method' => $request->method,
            'header' => $headers,
            'content' => $request->body,
            'ignore_errors' => true,
            'timeout' => 10,
        ]]);
        $body = @file_get_contents($request->uri, false, $ctx);
        if ($body === false) {
            throw new \RuntimeException('network error: ' . (error_get_last()['message'] ?? 'unknown'));
        }
        return new MiniResponse((int) explode(' ', $http_response_header[0])[1], $body);
    }
}

final class MiniRequest
{
    /** @param array<string,string> $headers */
    public function __construct(
        public readonly string $method,
        public readonly string $uri,
        public readonly array $headers,
        public readonly string $body,
    ) {
    }

    public function withHeader(string $name, string $value): self
    {
        return new self($this->method, $this->uri, [$name => $value] + $this->headers, $this->body);
    }

    public function withBody(string $body): self
    {
        return new self($this->method, $this->uri, $this->headers, $body);
    }
}

final class MiniResponse
{
    public function __construct(private readonly int $status, private readonly string $body)
    {
    }

    public function getStatusCode(): int
    {
        return $this->status;
    }

    public function getBody(): string
    {
        return $this->body;
    }
}
