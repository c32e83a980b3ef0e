<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Http;

/** An HTTP answer: its status and its body. */
final class Response
{
    public function __construct(
        public readonly int $status,
        public readonly string $body,
    ) {
    }
}
